package jit_test

import (
	"testing"

	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// compileEngine runs programs on the JIT only: a compile failure is a
// failure, not a fallback.
func compileEngine(p *vm.Program) (vm.Runner, error) {
	c, err := jit.Compile(p)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TestConformance runs the project's own corpus (testdata/conformance) on
// the JIT.
func TestConformance(t *testing.T) {
	skipIfUnsupported(t)
	conformance.CheckOwn(t, "jit", compileEngine)
}

// TestConformanceExternal runs the bpf_conformance corpus on the JIT, when
// it is on this machine.
func TestConformanceExternal(t *testing.T) {
	skipIfUnsupported(t)
	conformance.CheckExternal(t, "jit", compileEngine)
}
