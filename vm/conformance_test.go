package vm_test

import (
	"testing"

	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/vm"
)

func interp(p *vm.Program) (vm.Runner, error) { return p, nil }

// TestConformance runs the project's own corpus (testdata/conformance) on
// the interpreter.
func TestConformance(t *testing.T) {
	conformance.CheckOwn(t, "interpreter", interp)
}

// TestConformanceExternal runs the bpf_conformance corpus on the
// interpreter, when it is on this machine.
func TestConformanceExternal(t *testing.T) {
	conformance.CheckExternal(t, "interpreter", interp)
}
