package jit_test

import (
	"errors"
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

// TestConformance runs the bpf_conformance corpus on the JIT.
func TestConformance(t *testing.T) {
	if _, err := jit.Compile(vm.MustLoad(exitProg, vm.Options{})); errors.Is(err, jit.ErrNotSupported) {
		t.Skip(err)
	}
	conformance.Check(t, "jit", compileEngine)
}
