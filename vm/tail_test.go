package vm_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/progen"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// tailSet loads a set of programs that make tail calls (internal/progen's
// convention): map[0] a program array, map[1] one 8-byte element.
func tailSet(t testing.TB, insns [][]asm.Instruction, hs *vm.Helpers) ([]*vm.Program, maps.Map) {
	t.Helper()
	pa, err := maps.New(maps.Spec{Name: "progs", Type: maps.ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: progen.TailSlots})
	if err != nil {
		t.Fatal(err)
	}
	data, err := maps.New(maps.Spec{Name: "data", Type: maps.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if hs == nil {
		hs = maps.Helpers()
	}
	progs := make([]*vm.Program, len(insns))
	for k, in := range insns {
		if in == nil {
			continue
		}
		p, err := vm.Load(in, vm.Options{Helpers: hs, Maps: []vm.Map{pa, data}})
		if err != nil {
			t.Fatalf("slot %d: %v", k, err)
		}
		if err := pa.(*maps.ProgramArray).SetProgram(uint32(k), p); err != nil {
			t.Fatal(err)
		}
		progs[k] = p
	}
	return progs, data
}

func mapValue(t testing.TB, m maps.Map) uint64 {
	t.Helper()
	b, err := m.Lookup(make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

func mainFloor(env *vm.Env) bool { return env.StackFloor() == env.StackTop()-vm.ProgramStackSize }

// TestTailCases runs internal/progen's hand-written tail call sets, whose
// results the kernel gave, on both interpreters.
func TestTailCases(t *testing.T) {
	for _, c := range progen.TailCases() {
		t.Run(c.Name, func(t *testing.T) {
			progs, data := tailSet(t, c.Progs, nil)
			var first string
			for _, r := range []vm.Runner{progs[0], switchRunner{progs[0]}} {
				env := vm.NewEnv() // a zeroed stack, as the cases assume
				r0, err := env.RunFrame(r, make([]byte, 64), 0)
				v := mapValue(t, data)
				switch {
				case c.Fault != "":
					if err == nil || !strings.HasPrefix(err.Error(), c.Fault) {
						t.Errorf("%T: r0 %#x, err %v; want the fault %q", r, r0, err, c.Fault)
					}
				case err != nil || r0 != c.R0 || v != c.Value:
					t.Errorf("%T: r0 %#x, map[1] %d, err %v; want r0 %#x, map[1] %d", r, r0, v, err, c.R0, c.Value)
				}
				if !mainFloor(env) {
					t.Errorf("%T: the stack floor is not back under the main frame", r)
				}
				o := fmt.Sprint(r0, env.Executed)
				if e, ok := err.(*vm.Error); ok {
					// The address, as an offset from the env's stack.
					o += fmt.Sprint(e.Kind, e.PC, e.Insn, e.Addr-env.StackTop())
				}
				if first == "" {
					first = o
				} else if o != first {
					t.Errorf("switch interpreter: %s, threaded: %s", o, first)
				}
				if err := data.Update(make([]byte, 4), make([]byte, 8), 0); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTailStackFloor: while a tail call made in a function runs, the
// stack the program may touch starts 8 frames below its main frame (the
// function's frame); the frames of the calls in progress above stay.
func TestTailStackFloor(t *testing.T) {
	hs := maps.Helpers()
	if err := hs.Register(vm.Helper{ID: 200, Name: "floor", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if tbl := env.RegionTable(); (*tbl)[0].Start != env.StackFloor() || (*tbl)[0].Start+(*tbl)[0].Size != env.StackTop() {
			return 0, fmt.Errorf("region 0 %+v is not the stack from the floor %#x to the top", (*tbl)[0], env.StackFloor())
		}
		return env.StackFloor(), nil
	}}); err != nil {
		t.Fatal(err)
	}
	progs, _ := tailSet(t, [][]asm.Instruction{
		asm.MustAssemble(`
			call 200
			mov %r6, %r10
			sub %r6, %r0
			call local f
			lsh %r0, 16
			add %r0, %r6
			exit
		f:
			call local g
			exit
		g:
			lddw %r2, map[0]
			mov %r3, 1
			call 12
			exit`),
		asm.MustAssemble("call 200\nmov %r1, %r10\nsub %r1, %r0\nmov %r0, %r1\nexit"),
	}, hs)
	env := vm.NewEnv()
	for _, r := range []vm.Runner{progs[0], switchRunner{progs[0]}} {
		r0, err := r.Run(env, 0, 0)
		if want := uint64(vm.ProgramStackSize<<16 | vm.ProgramStackSize); err != nil || r0 != want {
			t.Errorf("%T: %#x, %v; want r10 - floor = %#x in main and in the target", r, r0, err, vm.ProgramStackSize)
		}
		if !mainFloor(env) {
			t.Errorf("%T: the stack floor is not back under the main frame", r)
		}
	}
}

// TestTailFaultUnwinds: a fault in a tail-called program names its
// instruction, and the next run starts with the main frame's stack.
func TestTailFaultUnwinds(t *testing.T) {
	var c progen.TailCase
	for _, tc := range progen.TailCases() {
		if tc.Name == "target-below-its-stack" {
			c = tc
		}
	}
	progs, _ := tailSet(t, c.Progs, nil)
	below := vm.MustLoad(asm.MustAssemble("ldxdw %r0, [%r10-4104]\nexit"), vm.Options{})
	floor := vm.MustLoad(asm.MustAssemble("stdw [%r10-4096], 5\nldxdw %r0, [%r10-4096]\nexit"), vm.Options{})
	env := vm.NewEnv()
	for _, r := range []vm.Runner{progs[0], switchRunner{progs[0]}} {
		_, err := r.Run(env, 0, 0)
		var e *vm.Error
		if !asError(err, &e) || e.Kind != vm.KindRead || e.PC != 0 || e.Insn != progs[1].Instructions()[0] {
			t.Fatalf("%T: %v, want a read fault at the target's instruction 0", r, err)
		}
		if !mainFloor(env) {
			t.Errorf("%T: the floor stays down after the fault", r)
		}
		if r0, err := floor.Run(env, 0, 0); err != nil || r0 != 5 {
			t.Errorf("after the fault, the main program's lowest stack bytes: %d, %v", r0, err)
		}
		if _, err := below.Run(env, 0, 0); err == nil {
			t.Error("after the fault, a main program reads below its 8 frames")
		}
	}
}

func asError(err error, e **vm.Error) bool {
	v, ok := err.(*vm.Error)
	*e = v
	return ok
}

// TestTailHelperPanic: a helper that panics inside a tail-called program
// leaves the interpreter's levels; the next run drops them.
func TestTailHelperPanic(t *testing.T) {
	hs := maps.Helpers()
	if err := hs.Register(vm.Helper{ID: 201, Name: "panic", Fn: func(*vm.Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) {
		panic("helper panics")
	}}); err != nil {
		t.Fatal(err)
	}
	progs, _ := tailSet(t, [][]asm.Instruction{
		asm.MustAssemble("call local f\nexit\nf:\nlddw %r2, map[0]\nmov %r3, 1\ncall 12\nexit"),
		asm.MustAssemble("call 201\nexit"),
	}, hs)
	plain := vm.MustLoad(asm.MustAssemble("mov %r6, 1\ncall local f\nadd %r0, %r6\nexit\nf:\nmov %r0, 41\nexit"), vm.Options{})
	below := vm.MustLoad(asm.MustAssemble("ldxdw %r0, [%r10-4104]\nexit"), vm.Options{})
	for _, r := range []vm.Runner{progs[0], switchRunner{progs[0]}} {
		env := vm.NewEnv()
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the helper did not panic")
				}
			}()
			r.Run(env, 0, 0)
		}()
		if r0, err := plain.Run(env, 0, 0); err != nil || r0 != 42 {
			t.Errorf("%T: the run after the panic: %d, %v; want 42", r, r0, err)
		}
		if !mainFloor(env) {
			t.Errorf("%T: the floor stays down after the next run", r)
		}
		if _, err := below.Run(env, 0, 0); err == nil {
			t.Errorf("%T: after the panic, a main program reads below its 8 frames", r)
		}
	}
}

// TestRunTail: the interpreter continues another engine's run from a
// tail call's target, as that engine left it, until the target's main
// frame exits.
func TestRunTail(t *testing.T) {
	progs, data := tailSet(t, [][]asm.Instruction{
		asm.MustAssemble(`
			add %r6, %r0
			stxdw [%r10-8], %r7
			call local f
			add %r0, %r6
			ldxdw %r1, [%r10-8]
			add %r0, %r1
			mov %r5, 77
			exit
		f:
			mov %r6, %r1
			lddw %r2, map[0]
			mov %r3, 1
			call 12
			exit`),
		asm.MustAssemble(`
			lddw %r6, map[1]+0
			ldxdw %r0, [%r6+0]
			add %r0, 1
			stxdw [%r6+0], %r0
			lddw %r2, map[0]
			mov %r3, 1
			call 12
			mov %r0, 1000
			exit`),
	}, nil)
	env := vm.NewEnv()
	env.Budget = 5000
	// As an engine at depth 3 of a run that made 30 tail calls: the
	// target runs in that frame, with the floor 8 frames below it.
	r10 := env.StackTop() - 3*vm.StackFrameSize
	for range 30 {
		env.TailCall(progs[0])
	}
	env.SetStackFloor(r10 - vm.ProgramStackSize)
	regs := [11]uint64{0: 5, 6: 100, 7: 20, 10: r10}
	count, budget, err := env.RunTail(progs[0], &regs, 40, 900)
	// progs[0] tail-calls progs[1] from f: 3 more tail calls, the last one
	// fails; progs[1] returns 1000 to progs[0]'s main, which adds r0 and
	// r6 as they were given (in r6, which the calls keep) and r7 (from
	// its stack).
	if want := uint64(1000 + 5 + 100 + 20); err != nil || regs[0] != want || regs[5] != 77 {
		t.Errorf("RunTail: r0 %d, r5 %d, %v; want %d, 77", regs[0], regs[5], err, want)
	}
	if v := mapValue(t, data); v != 3 {
		t.Errorf("the target ran %d times, want 3 (the run had 3 tail calls left)", v)
	}
	// Instructions: main 3 + f 5 + (progs[1] 9) * 2 + progs[1] to the end
	// 11, then main's 5 after the call.
	if want := uint64(40 + 3 + 5 + 9*2 + 11 + 5); count != want || env.Executed != want {
		t.Errorf("count %d (Executed %d), want %d", count, env.Executed, want)
	}
	if want := uint64(900 - 4*vm.CallCost); budget != want {
		t.Errorf("budget left %d, want %d", budget, want)
	}
	if env.StackFloor() != r10-vm.ProgramStackSize {
		t.Errorf("the floor is %#x after RunTail, want the engine's %#x", env.StackFloor(), r10-vm.ProgramStackSize)
	}
	// A fault ends it with the count at the fault, and the floor back
	// under the main frame.
	bad := vm.MustLoad(asm.MustAssemble("mov %r0, 1\nldxdw %r0, [%r10-4104]\nexit"), vm.Options{})
	_, _, err = env.RunTail(bad, &regs, 7, 900)
	if err == nil || !strings.HasPrefix(err.Error(), "at insn 1 ") || env.Executed != 9 {
		t.Errorf("a fault: %v, executed %d; want a fault at insn 1 after 9", err, env.Executed)
	}
	if !mainFloor(env) {
		t.Error("the floor stays down after a fault in RunTail")
	}
}

// TestTailNoAllocs: runs that make tail calls from functions do not
// allocate.
func TestTailNoAllocs(t *testing.T) {
	for _, c := range progen.TailCases() {
		progs, _ := tailSet(t, c.Progs, nil)
		env := vm.NewEnv()
		frame := make([]byte, 64)
		if n := testing.AllocsPerRun(100, func() { env.RunFrame(progs[0], frame, 0) }); n != 0 {
			t.Errorf("%s: %v allocations per run", c.Name, n)
		}
	}
}
