package jit_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/progen"
	"github.com/govswitch/vswitch/internal/testenv"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// Tail calls, made from main frames and from local functions: the sets
// of programs of internal/progen (TailCases, whose results come from the
// kernel, and GenerateTail) on the interpreter, the JIT, the JIT whose
// tail call targets run on the interpreter (vm.Env.RunTail), the JIT's
// batches, and the kernel.

// tailSet is a set of programs loaded into a program array (map[0]) with
// map[1], an array of one 8-byte element.
type tailSet struct {
	progs []*vm.Program
	array *maps.ProgramArray
	data  maps.Map
}

func loadTailSet(t testing.TB, insns [][]asm.Instruction) *tailSet {
	t.Helper()
	pa, err := maps.New(maps.Spec{Name: "progs", Type: maps.ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: progen.TailSlots})
	if err != nil {
		t.Fatal(err)
	}
	data, err := maps.New(maps.Spec{Name: "data", Type: maps.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := &tailSet{array: pa.(*maps.ProgramArray), data: data, progs: make([]*vm.Program, len(insns))}
	for k, in := range insns {
		if in == nil {
			continue
		}
		p, err := vm.Load(in, vm.Options{Name: fmt.Sprintf("slot%d", k), Helpers: maps.Helpers(), Maps: []vm.Map{s.array, s.data}})
		if err != nil {
			t.Fatalf("slot %d: %v\n%s", k, err, listing(in))
		}
		if err := s.array.SetProgram(uint32(k), p); err != nil {
			t.Fatal(err)
		}
		s.progs[k] = p
	}
	return s
}

func (s *tailSet) setValue(t testing.TB, v uint64) {
	t.Helper()
	if err := s.data.Update(make([]byte, 4), binary.LittleEndian.AppendUint64(nil, v), 0); err != nil {
		t.Fatal(err)
	}
}

func (s *tailSet) value(t testing.TB) uint64 {
	t.Helper()
	b, err := s.data.Lookup(make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

// tailOutcome is what a run of a set leaves.
type tailOutcome struct {
	R0, Value, Executed uint64
	Err                 string
	Floor               bool // the env's stack floor is back under the main frame
}

func (o tailOutcome) String() string {
	return fmt.Sprintf("r0=%#x map[1]=%#x executed=%d err=%q floor-reset=%v", o.R0, o.Value, o.Executed, o.Err, o.Floor)
}

// engine is a way to run a set's slot 0.
type tailEngine struct {
	name string
	// runner returns what runs slot 0, and undoes what it did after.
	runner func(t testing.TB, s *tailSet) (vm.Runner, func())
}

var tailEngines = []tailEngine{
	{"interp", func(t testing.TB, s *tailSet) (vm.Runner, func()) { return s.progs[0], func() {} }},
	{"jit", func(t testing.TB, s *tailSet) (vm.Runner, func()) {
		c, err := jit.Compile(s.progs[0])
		if err != nil {
			t.Fatal(err)
		}
		return c, func() { c.Close() }
	}},
	// The JIT with every tail call's target on the interpreter, as when
	// the target cannot be compiled (vm.Env.RunTail).
	{"jit+interp-targets", func(t testing.TB, s *tailSet) (vm.Runner, func()) {
		c, err := jit.Compile(s.progs[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.progs {
			if p != nil {
				p.Native.Store(&vm.Native{Runner: p})
			}
		}
		return c, func() {
			for _, p := range s.progs {
				if p != nil {
					p.Native.Store(nil)
				}
			}
			c.Close()
		}
	}},
}

// runTail runs slot 0 of s on env with the engine, map[1] zero and the
// stack cleared first.
func runTail(t testing.TB, env *vm.Env, s *tailSet, e tailEngine) tailOutcome {
	t.Helper()
	r, done := e.runner(t, s)
	defer done()
	s.setValue(t, 0)
	clear(env.Stack())
	r0, err := env.RunFrame(r, make([]byte, 64), 0)
	o := tailOutcome{R0: r0, Value: s.value(t), Executed: env.Executed, Floor: env.StackFloor() == env.StackTop()-vm.ProgramStackSize}
	if err != nil {
		o.Err = err.Error()
	}
	return o
}

func setListing(progs [][]asm.Instruction) string {
	var b strings.Builder
	for k, p := range progs {
		if p != nil {
			fmt.Fprintf(&b, "slot %d:\n%s", k, listing(p))
		}
	}
	return b.String()
}

// TestTailCases runs the hand-written sets on every engine: each gives
// the kernel's answer (or the fault the case expects), and they agree on
// the instruction count.
func TestTailCases(t *testing.T) {
	skipIfUnsupported(t)
	env := vm.NewEnv()
	for _, c := range progen.TailCases() {
		t.Run(c.Name, func(t *testing.T) {
			s := loadTailSet(t, c.Progs)
			var first tailOutcome
			for k, e := range tailEngines {
				o := runTail(t, env, s, e)
				switch {
				case c.Fault != "" && !strings.HasPrefix(o.Err, c.Fault):
					t.Errorf("%s: %v, want the fault %q", e.name, o, c.Fault)
				case c.Fault == "" && (o.Err != "" || o.R0 != c.R0 || o.Value != c.Value):
					t.Errorf("%s: %v, want r0=%#x map[1]=%#x", e.name, o, c.R0, c.Value)
				case !o.Floor:
					t.Errorf("%s: the stack floor is not back under the main frame after the run", e.name)
				}
				if k == 0 {
					first = o
				} else if o != first {
					t.Errorf("%s: %v\ninterp: %v", e.name, o, first)
				}
			}
		})
	}
}

// TestTailBudget runs the hand-written sets with budgets that run out at
// every depth: the engines fault at the same instruction of the same
// program after the same count.
func TestTailBudget(t *testing.T) {
	skipIfUnsupported(t)
	env := vm.NewEnv()
	defer func() { env.Budget = 0 }()
	for _, c := range progen.TailCases() {
		s := loadTailSet(t, c.Progs)
		for _, budget := range []uint64{10, 40, 100, 300, 700, 1500, 4000} {
			env.Budget = budget
			var first tailOutcome
			for k, e := range tailEngines {
				o := runTail(t, env, s, e)
				if k == 0 {
					first = o
				} else if o != first {
					t.Errorf("%s, budget %d: %s: %v\ninterp: %v", c.Name, budget, e.name, o, first)
				}
			}
		}
	}
}

// TestTailBatch runs sets in batches (RunFrames, as the switch runs
// programs): each frame gives what a run of its own gives on the
// interpreter, also after a frame that faulted or ran out of budget in a
// tail-called program.
func TestTailBatch(t *testing.T) {
	skipIfUnsupported(t)
	for _, c := range progen.TailCases() {
		for _, budget := range []uint64{0, 300} {
			s := loadTailSet(t, c.Progs)
			frames := make([][]byte, 5)
			for k := range frames {
				frames[k] = make([]byte, 64)
			}
			// The interpreter, frame by frame: map[1] carries over. The
			// same env for every engine, so that faults name the same
			// addresses.
			env := vm.NewEnv()
			env.Budget = budget
			s.setValue(t, 0)
			want := make([]vm.FrameResult, len(frames))
			for k, f := range frames {
				r0, err := env.RunFrame(s.progs[0], f, 3)
				env.FinishFrame(&want[k], r0, err)
			}
			wantValue := s.value(t)
			for _, e := range tailEngines[1:] {
				r, done := e.runner(t, s)
				s.setValue(t, 0)
				got := make([]vm.FrameResult, len(frames))
				env.RunFrames(r, frames, 3, got)
				done()
				for k := range frames {
					if fmt.Sprint(got[k].Err(), got[k].R0, got[k].Executed) != fmt.Sprint(want[k].Err(), want[k].R0, want[k].Executed) {
						t.Errorf("%s, budget %d, %s: frame %d: r0 %#x, executed %d, %v; the interpreter %#x, %d, %v",
							c.Name, budget, e.name, k, got[k].R0, got[k].Executed, got[k].Err(), want[k].R0, want[k].Executed, want[k].Err())
					}
				}
				if v := s.value(t); v != wantValue {
					t.Errorf("%s, budget %d, %s: map[1] %#x after the batch, the interpreter %#x", c.Name, budget, e.name, v, wantValue)
				}
				if env.StackFloor() != env.StackTop()-vm.ProgramStackSize {
					t.Errorf("%s, %s: the stack floor is not back under the main frame after the batch", c.Name, e.name)
				}
			}
		}
	}
}

// compareTail runs a generated set on every engine (and the kernel, when
// kernelToo) and reports the first difference.
func compareTail(t testing.TB, env *vm.Env, progs [][]asm.Instruction, kernelToo bool) string {
	s := loadTailSet(t, progs)
	var first tailOutcome
	for k, e := range tailEngines {
		o := runTail(t, env, s, e)
		if k == 0 {
			first = o
			if o.Err != "" {
				return "interp: " + o.Err
			}
		} else if o != first {
			return fmt.Sprintf("%s: %v\ninterp: %v", e.name, o, first)
		}
	}
	if kernelToo {
		ret, value, err := kernel.RunTailCalls(progs, progen.TailSlots, 8)
		if err != nil {
			return "kernel: " + err.Error()
		}
		if v := binary.LittleEndian.Uint64(value); ret != uint32(first.R0) || v != first.Value {
			return fmt.Sprintf("kernel: r0 %#x map[1] %#x; interp %v", ret, v, first)
		}
	}
	return ""
}

// TestTailGenerated compares generated tail call sets on every engine and
// the kernel.
func TestTailGenerated(t *testing.T) {
	skipIfUnsupported(t)
	n := 400
	if testing.Short() {
		n = 40
	}
	kernelToo := kernel.Available() == nil
	if !kernelToo {
		t.Log("without the kernel (needs Linux and root): our engines only")
	}
	env := vm.NewEnv()
	for seed := range uint64(n) {
		progs := progen.GenerateTail(rand.New(rand.NewPCG(seed, 12)), progen.TailConfig{Funcs: 1 + int(seed%7)})
		if diff := compareTail(t, env, progs, kernelToo); diff != "" {
			t.Fatalf("seed %d: %s\n%s", seed, diff, setListing(progs))
		}
	}
}

// TestTailKernelRefusesWithoutBTF documents why the kernel runs the sets
// with BTF function information: without it, a tail call in a function is
// refused.
func TestTailKernelRefusesWithoutBTF(t *testing.T) {
	testenv.Need(t, "kernel eBPF (the reference)", kernel.Available())
	c := progen.TailCases()[1] // function-depth-1
	pa, err := kernel.CreateMap(kernel.ProgArray, 4, 4, progen.TailSlots, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	data, err := kernel.CreateMap(kernel.Array, 4, 8, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	if p, err := kernel.LoadProgramWithMaps(kernel.XDP, c.Progs[0], []*kernel.Map{pa, data}); err == nil {
		p.Close()
		t.Fatal("the kernel loads a tail call in a function without BTF")
	}
}

// FuzzTail compares generated tail call sets on our engines: the fuzzer
// picks the seed and the shape.
func FuzzTail(f *testing.F) {
	skipIfUnsupported(f)
	for k := range uint64(8) {
		f.Add(k, uint8(k))
	}
	env := vm.NewEnv()
	f.Fuzz(func(t *testing.T, seed uint64, shape uint8) {
		cfg := progen.TailConfig{Progs: 1 + int(shape%4), Funcs: 1 + int(shape/4%7), Units: 2 + int(shape/32)}
		progs := progen.GenerateTail(rand.New(rand.NewPCG(seed, uint64(shape))), cfg)
		if diff := compareTail(t, env, progs, false); diff != "" {
			t.Fatalf("%s\n%s", diff, setListing(progs))
		}
	})
}

// TestTailNoAllocs: JIT runs that make tail calls from functions do not
// allocate (once the targets are compiled).
func TestTailNoAllocs(t *testing.T) {
	skipIfUnsupported(t)
	for _, c := range progen.TailCases() {
		s := loadTailSet(t, c.Progs)
		code, err := jit.Compile(s.progs[0])
		if err != nil {
			t.Fatal(err)
		}
		env := vm.NewEnv()
		frame := make([]byte, 64)
		frames := [][]byte{frame, frame, frame}
		res := make([]vm.FrameResult, len(frames))
		env.RunFrame(code, frame, 0) // compiles the targets
		if n := testing.AllocsPerRun(100, func() { env.RunFrame(code, frame, 0) }); n != 0 {
			t.Errorf("%s: %v allocations per run", c.Name, n)
		}
		if n := testing.AllocsPerRun(100, func() { env.RunFrames(code, frames, 0, res) }); n != 0 {
			t.Errorf("%s: %v allocations per batch", c.Name, n)
		}
		code.Close()
	}
}
