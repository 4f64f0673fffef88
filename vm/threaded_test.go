package vm_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
	"github.com/govswitch/vswitch/vm/internal/threadgen"
)

// TestThreadedUpToDate: interp_threaded.go is what threadgen makes of
// interp.go (run `go generate ./vm` after changing runSwitch).
func TestThreadedUpToDate(t *testing.T) {
	src, err := os.ReadFile("interp.go")
	if err != nil {
		t.Fatal(err)
	}
	want, err := threadgen.Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("interp_threaded.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, have) {
		t.Fatal("interp_threaded.go is stale: run `go generate ./vm`")
	}
}

// detHelpers are helpers 5, 7 and 8 with fixed answers, so that two runs
// of one program can be compared, and helperTailRun.
func detHelpers() *vm.Helpers {
	hs := &vm.Helpers{}
	for id, v := range map[int32]uint64{vm.HelperKtimeGetNS: 12345, vm.HelperGetPrandomU32: 7, vm.HelperGetSmpProcessorID: 0} {
		v := v
		hs.Register(vm.Helper{ID: id, Fn: func(*vm.Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) { return v, nil }})
	}
	hs.Register(vm.Helper{ID: helperTailRun, Name: "tailrun", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if !env.TailCall(env.Program()) {
			return 1, nil
		}
		return 0, nil
	}})
	return hs
}

// helperTailRun tail-calls the running program (r0 0), or returns 1 past
// the limit.
const helperTailRun = 106

type switchRunner struct{ p *vm.Program }

func (s switchRunner) Run(env *vm.Env, r1, r2 uint64) (uint64, error) {
	return vm.RunSwitch(s.p, env, r1, r2)
}

func switchEngine(p *vm.Program) (vm.Runner, error) { return switchRunner{p}, nil }

// TestConformanceSwitch runs the own corpus on the switch interpreter.
func TestConformanceSwitch(t *testing.T) {
	conformance.CheckOwn(t, "switch interpreter", switchEngine)
}

// TestConformanceSwitchExternal runs the bpf_conformance corpus on the
// switch interpreter, when it is on this machine.
func TestConformanceSwitchExternal(t *testing.T) {
	conformance.CheckExternal(t, "switch interpreter", switchEngine)
}

// outcome runs r on mem, in env and buf (the same ones for both
// interpreters, so that addresses in faults agree), and summarizes what
// happened; stack is the stack after the run (a copy).
func outcome(r vm.Runner, env *vm.Env, buf, mem []byte) (summary string, stack []byte) {
	copy(buf, mem)
	clear(env.Stack())
	env.SetArgBytes(0, buf)
	r0, err := r.Run(env, vm.AddrOf(buf), uint64(len(buf)))
	return fmt.Sprintf("r0=%#x err=%v executed=%d floor=%#x mem=%x", r0, err, env.Executed, env.StackTop()-env.StackFloor(), buf), bytes.Clone(env.Stack())
}

// checkSame requires the threaded and the switch interpreter to agree on
// everything a run leaves behind. reset, if not nil, runs before each run
// (to restore the maps).
func checkSame(t *testing.T, p *vm.Program, mem []byte, reset func()) {
	t.Helper()
	env := vm.NewEnv()
	env.Budget = 10000
	buf := make([]byte, len(mem))
	if reset != nil {
		reset()
	}
	a, as := outcome(p, env, buf, mem)
	if reset != nil {
		reset()
	}
	b, bs := outcome(switchRunner{p}, env, buf, mem)
	if a != b {
		t.Fatalf("threaded and switch interpreters differ:\nthreaded %.300s\nswitch   %.300s", a, b)
	}
	if !bytes.Equal(as, bs) {
		k := 0
		for as[k] == bs[k] {
			k++
		}
		t.Fatalf("threaded and switch interpreters leave different stacks: from byte %d below the top, % x and % x",
			len(as)-k, as[k:min(k+8, len(as))], bs[k:min(k+8, len(bs))])
	}
}

// TestThreadedMatchesSwitch compares the two interpreters on every case of
// the own corpus, and of the bpf_conformance corpus when it is here.
func TestThreadedMatchesSwitch(t *testing.T) {
	cases, err := conformance.Load(conformance.OwnDir())
	if err != nil {
		t.Fatal(err)
	}
	if dir, err := conformance.ExternalDir(); err == nil {
		ext, err := conformance.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, ext...)
	}
	hs := detHelpers()
	if err := maps.RegisterHelpers(hs); err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, c := range cases {
		h, err := conformance.NewHarness()
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.Load(c, hs)
		if err != nil {
			continue
		}
		loaded++
		checkSame(t, p, c.Mem, func() {
			if err := h.Data.Update(make([]byte, 4), make([]byte, 8), 0); err != nil {
				t.Fatal(err)
			}
		})
	}
	if loaded == 0 {
		t.Fatal("no case loaded")
	}
}

// FuzzThreaded: arbitrary programs and memory, both interpreters agree.
func FuzzThreaded(f *testing.F) {
	f.Add(asm.Encode(asm.MustAssemble("mov %r0, 1\nexit")), []byte{1, 2, 3})
	f.Add(asm.Encode(asm.MustAssemble("ldxdw %r0, [%r1+0]\nlock fetch add [%r1+0], %r0\nexit")), make([]byte, 8))
	f.Add(asm.Encode(asm.MustAssemble("loop:\nadd %r0, 1\njlt %r0, 50, loop\nexit")), []byte{})
	f.Add(asm.Encode(asm.MustAssemble("call local g\nexit\ng:\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit")), []byte{})
	// Tail calls of the running program from a function: 34 nested runs.
	f.Add(asm.Encode(asm.MustAssemble("add %r6, 1\ncall local g\nadd %r0, %r6\nexit\ng:\nstxdw [%r10-8], %r1\ncall 106\nldxdw %r0, [%r10-8]\nexit")), []byte{1})
	f.Fuzz(func(t *testing.T, code, mem []byte) {
		insns, err := asm.Decode(code[:len(code)/8*8])
		if err != nil {
			t.Fatal(err)
		}
		p, err := vm.Load(insns, vm.Options{Helpers: detHelpers()})
		if err != nil {
			return
		}
		checkSame(t, p, mem, nil)
	})
}
