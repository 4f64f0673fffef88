package jit_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

var exitProg = asm.MustAssemble("mov %r0, 42\nexit")

func skipIfUnsupported(t testing.TB) {
	t.Helper()
	if _, err := jit.Compile(vm.MustLoad(exitProg, vm.Options{})); errors.Is(err, jit.ErrNotSupported) {
		t.Skip(err)
	}
}

// Test helpers, beside the base ones. They are deterministic so that both
// engines see the same results.
const (
	helperMix     = 100 // r0 = r1 + 3*r2 ^ r3 - r4 + r5<<1
	helperFail    = 101 // fails when r1 == 7, else r0 = r1
	helperRegion  = 102 // makes the 64-byte dynamic block readable and writable, r0 = its address
	helperTail    = 103 // tail call into tailTarget (r0 = 0), or r0 = 1 past the limit
	helperCounter = 104 // r0 = number of calls in this run (per env)
	helperTailMe  = 105 // tail call into tailLoop (r0 = 0), or r0 = 1 past the limit
	helperTailRun = 106 // tail call into the running program (r0 = 0), or r0 = 1 past the limit
)

var (
	errHelper  = errors.New("helper refused r1 = 7")
	dynamic    = make([]byte, 64)
	tailTarget *vm.Program // the target of helper 103: has a local call and a helper call
	tailLoop   *vm.Program // the target of helper 105: tail calls itself until the limit
)

func init() {
	tailTarget = vm.MustLoad(asm.MustAssemble(`
		add %r0, 5
		mov %r6, %r1
		stdw [%r10-8], 3
		call 104
		mov %r7, %r0
		call local f
		add %r0, %r7
		exit
	f:
		ldxdw %r0, [%r10+504]
		add %r0, %r6
		exit`), vm.Options{Helpers: testHelpers()})
	tailLoop = vm.MustLoad(asm.MustAssemble(`
		add %r6, 1
		stxdw [%r10-16], %r6
		call 105
		mov %r0, %r6
		exit`), vm.Options{Helpers: testHelpers()})
}

type helperState struct{ calls uint64 }

func testHelpers() *vm.Helpers {
	hs := vm.BaseHelpers()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	// Deterministic stand-ins for the base helpers that are not (callx
	// reaches any registered id).
	must(hs.Register(vm.Helper{ID: vm.HelperKtimeGetNS, Fn: func(_ *vm.Env, r1, _, _, _, _ uint64) (uint64, error) {
		return 1_000_000 + r1, nil
	}}))
	must(hs.Register(vm.Helper{ID: vm.HelperGetPrandomU32, Fn: func(_ *vm.Env, _, r2, _, _, _ uint64) (uint64, error) {
		return uint64(uint32(r2 * 0x9e3779b9)), nil
	}}))
	must(hs.Register(vm.Helper{ID: helperMix, Name: "mix", Fn: func(_ *vm.Env, r1, r2, r3, r4, r5 uint64) (uint64, error) {
		return r1 + 3*r2 ^ r3 - r4 + r5<<1, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperFail, Name: "fail", Fn: func(_ *vm.Env, r1, _, _, _, _ uint64) (uint64, error) {
		if r1 == 7 {
			return 0, errHelper
		}
		return r1, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperRegion, Name: "region", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		a := vm.AddrOf(dynamic)
		env.RemoveRegion(a)
		env.AddRegion(vm.Region{Start: a, Size: uint64(len(dynamic)), Writable: true})
		return a, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperTail, Name: "tail", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if tailTarget == nil || !env.TailCall(tailTarget) {
			return 1, nil
		}
		return 0, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperTailMe, Name: "tailme", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if tailLoop == nil || !env.TailCall(tailLoop) {
			return 1, nil
		}
		return 0, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperTailRun, Name: "tailrun", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		if !env.TailCall(env.Program()) {
			return 1, nil
		}
		return 0, nil
	}}))
	must(hs.Register(vm.Helper{ID: helperCounter, Name: "counter", Fn: func(env *vm.Env, _, _, _, _, _ uint64) (uint64, error) {
		st, _ := env.User.(*helperState)
		if st == nil {
			return 0, nil
		}
		st.calls++
		return st.calls, nil
	}}))
	return hs
}

// outcome is everything a run can be compared on.
type outcome struct {
	R0       uint64
	Err      string // "" or the fault's fields
	Executed uint64
	Stack    []byte
	Mem      []byte
	Dynamic  []byte
}

func (o outcome) String() string {
	return fmt.Sprintf("r0=%#x err=%q executed=%d", o.R0, o.Err, o.Executed)
}

func faultString(err error) string {
	if err == nil {
		return ""
	}
	var e *vm.Error
	if !errors.As(err, &e) {
		return "not a *vm.Error: " + err.Error()
	}
	return fmt.Sprintf("kind=%v pc=%d addr=%#x size=%d helper=%d err=%v", e.Kind, e.PC, e.Addr, e.Size, e.Helper, e.Err)
}

// differ runs the program on both engines with the same env, memory and
// addresses, and returns both outcomes.
type differ struct {
	env *vm.Env
	mem []byte
}

func newDiffer() *differ {
	return &differ{env: vm.NewEnv(), mem: make([]byte, 0, 4096)}
}

func (d *differ) run(r vm.Runner, mem []byte, budget uint64) outcome {
	env := d.env
	clear(env.Stack())
	clear(dynamic)
	env.Budget = budget
	env.User = &helperState{}
	d.mem = append(d.mem[:0], mem...)
	env.SetArgBytes(0, d.mem)
	env.SetArg(1, vm.Region{})
	var addr uint64
	if len(d.mem) > 0 {
		addr = vm.AddrOf(d.mem)
	}
	r0, err := r.Run(env, addr, uint64(len(d.mem)))
	return outcome{
		R0:       r0,
		Err:      faultString(err),
		Executed: env.Executed,
		Stack:    bytes.Clone(env.Stack()),
		Mem:      bytes.Clone(d.mem),
		Dynamic:  bytes.Clone(dynamic),
	}
}

// compare runs p on both engines and reports any difference.
func (d *differ) compare(p *vm.Program, mem []byte, budget uint64) (interp, native outcome, diff string) {
	c, err := jit.Compile(p)
	if err != nil {
		return interp, native, "compile: " + err.Error()
	}
	defer c.Close()
	interp = d.run(p, mem, budget)
	native = d.run(c, mem, budget)
	var diffs []string
	if interp.R0 != native.R0 {
		diffs = append(diffs, fmt.Sprintf("r0: interp %#x, jit %#x", interp.R0, native.R0))
	}
	if interp.Err != native.Err {
		diffs = append(diffs, fmt.Sprintf("fault: interp %q, jit %q", interp.Err, native.Err))
	}
	if interp.Executed != native.Executed {
		diffs = append(diffs, fmt.Sprintf("executed: interp %d, jit %d", interp.Executed, native.Executed))
	}
	for _, m := range []struct {
		name string
		a, b []byte
	}{{"stack", interp.Stack, native.Stack}, {"mem", interp.Mem, native.Mem}, {"dynamic", interp.Dynamic, native.Dynamic}} {
		if !bytes.Equal(m.a, m.b) {
			k := 0
			for k < len(m.a) && m.a[k] == m.b[k] {
				k++
			}
			diffs = append(diffs, fmt.Sprintf("%s differs from byte %d: interp % x, jit % x", m.name, k, m.a[k:min(k+8, len(m.a))], m.b[k:min(k+8, len(m.b))]))
		}
	}
	if len(diffs) == 0 {
		return interp, native, ""
	}
	return interp, native, fmt.Sprint(diffs)
}

func loadText(t testing.TB, text string) *vm.Program {
	t.Helper()
	insns, err := asm.Assemble(text)
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p
}

// TestClockInline: bpf_ktime_get_ns answers from Env.Clock inside the
// machine code, the same as the interpreter; without a clock it asks Go.
func TestClockInline(t *testing.T) {
	skipIfUnsupported(t)
	p := vm.MustLoad(asm.MustAssemble("mov %r6, 7\ncall 5\nadd %r0, %r6\nexit"), vm.Options{Helpers: vm.BaseHelpers()})
	code, err := jit.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer code.Close()
	for _, r := range []vm.Runner{p, code} {
		env := vm.NewEnv()
		env.Clock = 1000
		got, err := r.Run(env, 0, 0)
		if err != nil || got != 1007 || env.Executed != 4 {
			t.Errorf("%T with a clock: %d, %v, executed %d", r, got, err, env.Executed)
		}
		env.Clock = 0
		if got, err := r.Run(env, 0, 0); err != nil || got <= 7 {
			t.Errorf("%T without a clock: %d, %v", r, got, err)
		}
		env.Budget = 1 // two instructions run before the call's check
		if _, err := r.Run(env, 0, 0); err == nil {
			t.Errorf("%T: the budget is not checked at the call", r)
		}
	}
}
