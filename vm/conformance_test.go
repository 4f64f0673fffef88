package vm_test

import (
	"testing"

	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/vm"
)

func interp(p *vm.Program) (vm.Runner, error) { return p, nil }

// TestConformance runs the bpf_conformance corpus on the interpreter.
func TestConformance(t *testing.T) {
	conformance.Check(t, "interpreter", interp)
}
