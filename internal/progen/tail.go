package progen

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/govswitch/vswitch/asm"
)

// Tail calls. Programs that make them come in sets: map[0] is a program
// array whose slot k holds program k of the set (or nothing), map[1] an
// array of one 8-byte element, zero before the run. The program in slot 0
// is the one run, with r1 the context (an XDP program in the kernel). Its
// result is r0 (the kernel gives the low 32 bits of it) and the element
// of map[1], which the programs use as a counter or as a trace of what
// ran in which order.

// TailCase is a hand-written set of programs that make tail calls, from
// their main frames and from local functions, with Linux's answer.
type TailCase struct {
	Name  string
	What  string
	Progs [][]asm.Instruction // by slot of map[0]; nil for an empty slot
	// R0 and Value are what a run of Progs[0] returns and leaves in
	// map[1] when it does not fault.
	R0, Value uint64
	// Fault, when not empty, is how the run's error starts instead: the
	// case shows what vswitch refuses at run time (the kernel refuses the
	// program at load time, so Kernel is false).
	Fault string
	// Kernel says whether the kernel's verifier accepts the programs (and
	// computes R0 and Value): the cases that touch the stack in ways only
	// vswitch's run-time checks allow are not for it.
	Kernel bool
}

// TailSlots is the size of the program arrays of tail call sets.
const TailSlots = 8

// counter is the tail of a function that counts its runs in map[1] and
// tail-calls slot 0, then returns the count (with add added) when the
// tail call fails.
func counter(add int) string {
	return fmt.Sprintf(`
		lddw %%r6, map[1]+0
		ldxdw %%r0, [%%r6+0]
		add %%r0, 1
		stxdw [%%r6+0], %%r0
		lddw %%r2, map[0]
		mov %%r3, 0
		call 12
		ldxdw %%r0, [%%r6+0]
		add %%r0, %d
		exit`, add)
}

// chain is a program whose main frame calls functions f1..fk nested, each
// with a value of its own on its stack that it adds to r0 after the call
// (main 1000 and 100, fi 10*i); fk stores 10*k, then counts and
// tail-calls the program itself (counter).
func chain(k int) string {
	var b strings.Builder
	b.WriteString("stdw [%r10-8], 1000\ncall local f1\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nadd %r0, 100\nexit\n")
	for i := 1; i < k; i++ {
		fmt.Fprintf(&b, "f%d:\nstdw [%%r10-8], %d\ncall local f%d\nldxdw %%r1, [%%r10-8]\nadd %%r0, %%r1\nexit\n", i, 10*i, i+1)
	}
	fmt.Fprintf(&b, "f%d:\nstdw [%%r10-8], %d\n", k, 10*k)
	// fk's own value, read after the failed tail call (r6 is the counter).
	b.WriteString(strings.Replace(counter(0), "add %r0, 0\n\t\texit", "ldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit", 1))
	return b.String()
}

// TailCases returns the hand-written tail call sets.
func TailCases() []TailCase {
	prog := func(text string) []asm.Instruction { return asm.MustAssemble(text) }
	var cases []TailCase
	cases = append(cases, TailCase{
		Name:  "main-limit",
		What:  "tail calls from the main frame only: 34 runs (the first and 33 tail calls), the last goes on",
		Progs: [][]asm.Instruction{prog(counter(0))},
		R0:    34, Value: 34, Kernel: true,
	})
	for k := 1; k <= 7; k++ {
		// 34 runs nest, each in the frame of the previous run's fk: the
		// last run's fk returns 34 + 10k; every run's main and f1..fk-1
		// then add their values on the way out. With k = 7 that is
		// 34*7+1 = 239 frames, vm.MaxFrames.
		sum := 1100
		for i := 1; i < k; i++ {
			sum += 10 * i
		}
		cases = append(cases, TailCase{
			Name:  fmt.Sprintf("function-depth-%d", k),
			What:  fmt.Sprintf("a function at depth %d tail-calls the program until the limit: 34 nested runs of %d frames", k, k+1),
			Progs: [][]asm.Instruction{prog(chain(k))},
			R0:    uint64(34 + 10*k + 34*sum), Value: 34, Kernel: true,
		})
	}
	cases = append(cases, TailCase{
		Name: "alternate",
		What: "odd runs tail-call from the main frame, even runs from a function: 17 of the 34 runs return through a function",
		Progs: [][]asm.Instruction{prog(`
			lddw %r6, map[1]+0
			ldxdw %r7, [%r6+0]
			add %r7, 1
			stxdw [%r6+0], %r7
			jset %r7, 1, frommain
			call local f
			add %r0, 1000
			exit
		frommain:
			lddw %r2, map[0]
			mov %r3, 0
			call 12
			ldxdw %r0, [%r6+0]
			exit
		f:
			lddw %r2, map[0]
			mov %r3, 0
			call 12
			lddw %r6, map[1]+0
			ldxdw %r0, [%r6+0]
			add %r0, 10
			exit`)},
		R0: 44 + 17*1000, Value: 34, Kernel: true,
	})
	// mixed: A's function fa tail-calls B, whose function fb tail-calls
	// an empty slot (which fails), then C: C returns 40 to B's main
	// (fb's caller), which adds 100 and its stack's 5 and returns 145 to
	// A's main (fa's caller), whose r6..r9 and stack are intact.
	mixedR0 := uint64(145)
	for _, v := range []uint64{1, 2, 3, 4, 7} {
		mixedR0 = mixedR0*16 + v
	}
	cases = append(cases, TailCase{
		Name: "mixed",
		What: "three programs: a tail call from a function into a program whose function tail-calls an empty slot, then a third program",
		Progs: [][]asm.Instruction{
			prog(`
				mov %r6, 1
				mov %r7, 2
				mov %r8, 3
				mov %r9, 4
				stdw [%r10-16], 7
				call local fa
				lsh %r0, 4
				add %r0, %r6
				lsh %r0, 4
				add %r0, %r7
				lsh %r0, 4
				add %r0, %r8
				lsh %r0, 4
				add %r0, %r9
				lsh %r0, 4
				ldxdw %r1, [%r10-16]
				add %r0, %r1
				exit
			fa:
				mov %r6, %r1
				mov %r7, 11
				mov %r8, 12
				mov %r9, 13
				stdw [%r10-16], 17
				lddw %r2, map[0]
				mov %r3, 1
				call 12
				mov %r0, 999
				exit`),
			prog(`
				mov %r6, 21
				mov %r7, 22
				mov %r8, 23
				mov %r9, 24
				stdw [%r10-8], 5
				call local fb
				add %r0, 100
				ldxdw %r1, [%r10-8]
				add %r0, %r1
				exit
			fb:
				mov %r6, %r1
				stdw [%r10-8], 50
				lddw %r2, map[0]
				mov %r3, 3
				call 12
				mov %r1, %r6
				lddw %r2, map[0]
				mov %r3, 2
				call 12
				mov %r0, 888
				exit`),
			prog(`
				mov %r6, 31
				stdw [%r10-8], 60
				mov %r0, 40
				exit`),
		},
		R0: mixedR0, Kernel: true,
	})
	cases = append(cases, TailCase{
		Name: "empty-slot-in-function",
		What: "tail calls from a function to an empty slot and past the end of the array fail, and the function goes on",
		Progs: [][]asm.Instruction{prog(`
			call local f
			add %r0, 1
			exit
		f:
			mov %r6, %r1
			lddw %r2, map[0]
			mov %r3, 5
			call 12
			mov %r1, %r6
			lddw %r2, map[0]
			mov %r3, 100
			call 12
			mov %r0, 7
			exit`)},
		R0: 8, Kernel: true,
	})
	callTarget := func(target string) [][]asm.Instruction {
		return [][]asm.Instruction{
			prog(`
				stdw [%r10-8], 77
				call local f
				add %r0, 1
				exit
			f:
				stdw [%r10-8], 88
				lddw %r2, map[0]
				mov %r3, 1
				call 12
				mov %r0, 0
				exit`),
			prog(target),
		}
	}
	cases = append(cases,
		TailCase{
			Name:  "target-reads-caller-frame",
			What:  "the target of a tail call made in a function runs in the function's frame: the frame above is its caller's",
			Progs: callTarget("ldxdw %r0, [%r10+504]\nexit"),
			R0:    78,
		},
		TailCase{
			Name:  "target-in-function-frame",
			What:  "the target of a tail call made in a function finds the function's stack as it was",
			Progs: callTarget("ldxdw %r0, [%r10-8]\nexit"),
			R0:    89,
		},
		TailCase{
			Name:  "target-below-its-stack",
			What:  "the target of a tail call made in a function has 8 frames of stack below its own, like any program, and no more",
			Progs: callTarget("ldxdw %r0, [%r10-4104]\nexit"),
			Fault: "at insn 0 (ldxdw %r0, [%r10-4104]): out-of-bounds read",
		},
		TailCase{
			Name:  "target-at-its-stack-floor",
			What:  "the lowest 8 bytes of the 8 frames below the target's main frame",
			Progs: callTarget("ldxdw %r0, [%r10-4096]\nexit"),
			R0:    1,
		},
	)
	return cases
}

// TailConfig says what GenerateTail makes. The zero value means defaults.
type TailConfig struct {
	// Progs is the number of programs in the set (in slots 0..Progs-1 of
	// map[0], some left empty); 0 means 1 to 4.
	Progs int
	// Funcs bounds the local functions of each program (at most 7, so
	// that a program has at most 8 frames); 0 means 4.
	Funcs int
	// Units bounds the pieces of code of each function (a trace of what
	// ran, stack stores and loads, arithmetic, local calls, tail calls);
	// 0 means 6.
	Units int
}

// maxInvocations bounds the function invocations of one run of a
// generated program, so that 34 runs stay far within the default budget.
const maxInvocations = 48

// GenerateTail returns a random set of programs that make tail calls, by
// slot of map[0] (nil for an empty slot; slot 0 always has one), for
// differential tests of tail calls against the kernel: the kernel's
// verifier accepts them (loaded with BTF function information) and they
// compute their result from what runs in which order. Each function keeps
// the context in r6 and a value in r7; it has up to 32 bytes of stack, all
// written before they are read; it may call functions after it (the call
// graph is acyclic: at most 8 frames) and tail-call any slot, also empty
// ones and past the end of the array, maybe only on some runs (a jump on
// map[1], which also records a trace of the run: value*31 + tag at each
// trace point). It returns r7 mixed with the results of its calls.
func GenerateTail(rng *rand.Rand, cfg TailConfig) [][]asm.Instruction {
	if cfg.Progs <= 0 {
		cfg.Progs = 1 + rng.IntN(4)
	}
	cfg.Progs = min(cfg.Progs, TailSlots)
	if cfg.Funcs <= 0 {
		cfg.Funcs = 4
	}
	cfg.Funcs = min(cfg.Funcs, 7)
	if cfg.Units <= 0 {
		cfg.Units = 6
	}
	out := make([][]asm.Instruction, cfg.Progs)
	tag := 0
	for k := range out {
		if k > 0 && rng.IntN(5) == 0 {
			continue // an empty slot
		}
		t := &tailGen{rng: rng, cfg: cfg, slots: cfg.Progs, tag: &tag}
		out[k] = asm.MustAssemble(t.program())
	}
	return out
}

type tailGen struct {
	rng   *rand.Rand
	cfg   TailConfig
	slots int
	tag   *int
	b     strings.Builder
	label int
}

// program writes main and its functions: function i calls only
// functions after it, and the invocations of a run stay bounded
// (maxInvocations).
func (t *tailGen) program() string {
	n := t.rng.IntN(t.cfg.Funcs + 1)
	// Each function is called by one before it (the kernel refuses
	// unreachable code), and maybe by others.
	calls := make([][]int, n+1)
	for j := 1; j <= n; j++ {
		p := t.rng.IntN(j)
		calls[p] = append(calls[p], j)
	}
	size := make([]int, n+1) // invocations of a call of function i, its callees included
	bodies := make([]string, n+1)
	for i := n; i >= 0; i-- {
		size[i] = 1
		bodies[i] = t.function(i, n, calls[i], size)
	}
	var b strings.Builder
	for i, body := range bodies {
		if i > 0 {
			fmt.Fprintf(&b, "f%d:\n", i)
		}
		b.WriteString(body)
	}
	return b.String()
}

func (t *tailGen) emit(format string, args ...any) {
	fmt.Fprintf(&t.b, format+"\n", args...)
}

// function returns the code of function i of n (0 is main), which calls
// at least the functions in calls. size holds the invocation counts of
// the functions after i; size[i] grows with the calls i makes.
func (t *tailGen) function(i, n int, calls []int, size []int) string {
	t.b.Reset()
	slots := t.rng.IntN(5) // 8-byte stack slots, at most 32 bytes
	t.emit("mov %%r6, %%r1")
	t.emit("mov %%r7, %d", t.rng.IntN(1000))
	for s := 1; s <= slots; s++ {
		t.emit("stdw [%%r10-%d], %d", 8*s, t.rng.IntN(1000))
	}
	t.trace()
	units := 1 + t.rng.IntN(t.cfg.Units)
	// The calls that make the functions reachable, at random places.
	at := map[int][]int{}
	for _, j := range calls {
		u := t.rng.IntN(units)
		at[u] = append(at[u], j)
		size[i] += size[j]
	}
	call := func(j int) {
		t.emit("mov %%r1, %%r6")
		t.emit("call local f%d", j)
		t.emit("mul %%r7, 7")
		t.emit("add %%r7, %%r0")
	}
	for u := range units {
		for _, j := range at[u] {
			call(j)
		}
		cond := t.rng.IntN(4) == 0
		skip := ""
		if cond {
			// Only on some runs: when a bit of the trace is set.
			t.label++
			skip = fmt.Sprintf("L%d", t.label)
			t.emit("lddw %%r4, map[1]+0")
			t.emit("ldxdw %%r5, [%%r4+0]")
			t.emit("jset %%r5, %d, %s", 1<<t.rng.IntN(8), skip)
		}
		switch r := t.rng.IntN(10); {
		case r < 2:
			t.trace()
		case r < 4 && slots > 0:
			s := 1 + t.rng.IntN(slots)
			if t.rng.IntN(2) == 0 {
				t.emit("ldxdw %%r5, [%%r10-%d]", 8*s)
				t.emit("add %%r7, %%r5")
			} else {
				t.emit("stxdw [%%r10-%d], %%r7", 8*s)
			}
		case r < 5:
			t.emit("mul %%r7, 3")
			t.emit("xor %%r7, %d", t.rng.IntN(1<<16))
		case r < 8 && i < n:
			j := i + 1 + t.rng.IntN(n-i)
			if size[i]+size[j] > maxInvocations {
				t.trace()
				break
			}
			size[i] += size[j]
			call(j)
		default:
			slot := t.rng.IntN(t.slots + 1)
			if t.rng.IntN(8) == 0 {
				slot = TailSlots + t.rng.IntN(4) // past the end of the array
			}
			t.emit("mov %%r1, %%r6")
			t.emit("lddw %%r2, map[0]")
			t.emit("mov %%r3, %d", slot)
			t.emit("call 12")
			t.trace()
		}
		if cond {
			t.emit("%s:", skip)
		}
	}
	t.trace()
	t.emit("mov %%r0, %%r7")
	t.emit("exit")
	return t.b.String()
}

// trace records a tag in map[1]: value = value*31 + tag.
func (t *tailGen) trace() {
	*t.tag++
	t.emit("lddw %%r4, map[1]+0")
	t.emit("ldxdw %%r5, [%%r4+0]")
	t.emit("mul %%r5, 31")
	t.emit("add %%r5, %d", *t.tag)
	t.emit("stxdw [%%r4+0], %%r5")
}
