package jit_test

import (
	"errors"
	"fmt"
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
	cases, err := conformance.Load(conformance.Dir())
	if err != nil {
		t.Fatal(err)
	}
	passed, failed := 0, 0
	for _, c := range cases {
		o := conformance.RunCase(c, compileEngine)
		if o.Pass {
			passed++
			continue
		}
		failed++
		t.Errorf("%s: want %#x, got %#x (err: %v)", c.Name, c.Result, o.Got, o.Err)
	}
	fmt.Printf("conformance (jit): %d passed, %d failed\n", passed, failed)
	if passed != 313 {
		t.Errorf("want all 313 cases to pass, %d did", passed)
	}
}
