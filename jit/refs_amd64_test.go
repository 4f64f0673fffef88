//go:build linux

package jit

import (
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/progen"
	"github.com/govswitch/vswitch/maps"
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

// TestReferencesTailLevels: the codes of tail calls' targets, held by the
// levels of tail calls made in functions while their targets run, are
// released when the run ends, by an exit or by a fault.
func TestReferencesTailLevels(t *testing.T) {
	var set [][]asm.Instruction
	for _, c := range progen.TailCases() {
		if c.Name == "mixed" {
			set = c.Progs
		}
	}
	pa, err := maps.New(maps.Spec{Name: "progs", Type: maps.ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: progen.TailSlots})
	if err != nil {
		t.Fatal(err)
	}
	data, err := maps.New(maps.Spec{Name: "data", Type: maps.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	var progs []*vm.Program
	for k, in := range set {
		p := vm.MustLoad(in, vm.Options{Helpers: maps.Helpers(), Maps: []vm.Map{pa, data}})
		if err := pa.(*maps.ProgramArray).SetProgram(uint32(k), p); err != nil {
			t.Fatal(err)
		}
		progs = append(progs, p)
	}
	a, err := Compile(progs[0])
	if err != nil {
		t.Fatal(err)
	}
	refs := func(c *Code) uint64 { return c.impl.state.Load() &^ closedBit }
	env := vm.NewEnv()
	for _, budget := range []uint64{0, 30} { // 30: a fault in B's function, a level down
		env.Budget = budget
		_, err := a.Run(env, 0, 0)
		if (budget == 0) != (err == nil) {
			t.Fatalf("budget %d: %v", budget, err)
		}
		if refs(a) != 1 {
			t.Errorf("budget %d: the code run has %d references, want 1 (the env's)", budget, refs(a))
		}
		for k, p := range progs[1:] {
			c, ok := p.Native.Load().Runner.(*Code)
			if !ok {
				t.Fatalf("the target in slot %d has no code", k+1)
			}
			if refs(c) != 0 {
				t.Errorf("budget %d: the target in slot %d has %d references after the run, want 0", budget, k+1, refs(c))
			}
		}
	}
	for _, p := range progs[1:] {
		c := p.Native.Load().Runner.(*Code)
		c.Close()
		if st := c.impl.state.Load(); st != closedBit {
			t.Errorf("a closed target: state %#x, want closed with no reference", st)
		}
	}
	a.Close()
}
