//go:build linux

package jit

import (
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// TestReferences follows the references that keep code mapped through
// what an env does: every one taken is dropped once, so that a closed
// code ends with none (and stays closed).
func TestReferences(t *testing.T) {
	p := vm.MustLoad(asm.MustAssemble("mov %r0, 1\nexit"), vm.Options{})
	a, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	refs := func(c *Code) uint64 { return c.impl.state.Load() &^ closedBit }
	env := vm.NewEnv()
	a.Run(env, 0, 0)
	a.Run(env, 0, 0)
	if refs(a) != 1 {
		t.Fatalf("a run by one env: %d references, want 1 (the env's)", refs(a))
	}
	a.Close()
	if _, err := a.Run(env, 0, 0); err != ErrClosed {
		t.Fatalf("run after Close: %v", err)
	}
	b.Run(env, 0, 0)
	b.Run(env, 0, 0)
	if st := a.impl.state.Load(); st != closedBit {
		t.Errorf("closed code after its env moved on: state %#x, want closed with no reference", st)
	}
	if refs(b) != 1 {
		t.Errorf("b: %d references, want 1", refs(b))
	}
	b.Close()
}
