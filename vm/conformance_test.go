package vm_test

import (
	"fmt"
	"testing"

	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/vm"
)

func interp(p *vm.Program) (vm.Runner, error) { return p, nil }

// TestConformance runs the bpf_conformance corpus on the interpreter.
func TestConformance(t *testing.T) {
	cases, err := conformance.Load(conformance.Dir())
	if err != nil {
		t.Fatal(err)
	}
	passed, failed := 0, 0
	for _, c := range cases {
		o := conformance.RunCase(c, interp)
		if o.Pass {
			passed++
			continue
		}
		failed++
		t.Errorf("%s: want %#x, got %#x (err: %v)", c.Name, c.Result, o.Got, o.Err)
	}
	fmt.Printf("conformance (interpreter): %d passed, %d failed\n", passed, failed)
	if passed != 313 {
		t.Errorf("want all 313 cases to pass, %d did", passed)
	}
}
