package scenario

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testprogs"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// vmProgram is a program of the VM scenario in its two context layouts.
type vmProgram struct {
	name   string
	insns  []asm.Instruction // struct vswitch_md context (interpreter, JIT)
	kinsns []asm.Instruction // struct xdp_md context (kernel)
	count  int               // instructions one run executes
	frame  []byte
}

func vmPrograms() []vmProgram {
	zero := make([]byte, 64)
	entry := asm.MustAssemble("mov %r0, 2\nexit")
	return []vmProgram{
		// The cost of a run that does nothing: each engine's fixed
		// overhead, to read the others against.
		{"Entry", entry, entry, 2, zero},
		{"ALUBlock", testprogs.ALUBlock(), testprogs.ALUBlock(), testprogs.ALUBlockInsns, zero},
		{"Loop", testprogs.Loop(), testprogs.Loop(), testprogs.LoopInsns, zero},
		{"ParseIPv4", testprogs.ParseIPv4(testprogs.CtxVswitch), testprogs.ParseIPv4(testprogs.CtxXDP),
			testprogs.ParseIPv4Insns, testprogs.Frame64()},
	}
}

// vmRounds is the number of timed rounds per figure; the fastest counts
// (the others were disturbed by something else on the machine).
const vmRounds = 5

// vmBudget is the time spent on one program on one engine.
func vmBudget(o Options) time.Duration {
	return min(max(o.Duration/10, 50*time.Millisecond), 400*time.Millisecond)
}

func runVM(ctx context.Context, o Options, logf func(string, ...any)) []VMResult {
	budget := vmBudget(o)
	var out []VMResult
	for _, p := range vmPrograms() {
		if ctx.Err() != nil {
			break
		}
		rs := []VMResult{
			{Program: p.name, Engine: "interp", Insns: p.count},
			{Program: p.name, Engine: "jit", Insns: p.count},
			{Program: p.name, Engine: "kernel", Insns: p.count},
		}
		ret, err := measureEngine(&rs[0], p, budget, false)
		if err != nil {
			rs[0].Skipped = err.Error()
		}
		jret, err := measureEngine(&rs[1], p, budget, true)
		switch {
		case err != nil:
			rs[1].Skipped = err.Error()
		case rs[0].Skipped == "" && jret != ret:
			rs[1].Skipped = fmt.Sprintf("jit returned %#x, interpreter %#x: not comparable", jret, ret)
			rs[1].NsPerRun, rs[1].NsPerInsn = 0, 0
		}
		if err := measureKernel(&rs[2], p, budget); err != nil {
			rs[2].Skipped = err.Error()
		}
		k, j := rs[2], rs[1]
		for i := range rs {
			r := &rs[i]
			if r.Skipped != "" {
				continue
			}
			if k.Skipped == "" && k.NsPerRun > 0 {
				r.XKernel = r.NsPerRun / k.NsPerRun
			}
			if j.Skipped == "" && j.NsPerRun > 0 {
				r.XJIT = r.NsPerRun / j.NsPerRun
			}
		}
		for _, r := range rs {
			if r.Skipped != "" {
				logf("vm %s %s: %s", r.Program, r.Engine, r.Skipped)
			} else {
				logf("vm %s %s: %.2f ns/run", r.Program, r.Engine, r.NsPerRun)
			}
		}
		out = append(out, rs...)
	}
	return out
}

// measureEngine times p on the interpreter or the JIT: ns per run, the
// fastest of vmRounds rounds of about budget/vmRounds each.
func measureEngine(r *VMResult, p vmProgram, budget time.Duration, useJIT bool) (uint64, error) {
	prog, err := vm.Load(p.insns, vm.Options{Name: p.name})
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	var runner vm.Runner = prog
	if useJIT {
		code, err := jit.Compile(prog)
		if err != nil {
			return 0, err
		}
		defer code.Close()
		runner = code
	}
	env := vm.NewEnv()
	frame := append([]byte(nil), p.frame...)
	ret, err := env.RunFrame(runner, frame, 0)
	if err != nil {
		return 0, fmt.Errorf("run: %w", err)
	}
	if !useJIT && env.Executed != uint64(p.count) {
		return 0, fmt.Errorf("executed %d instructions, want %d", env.Executed, p.count)
	}
	// The engine's own repeat loop (vm.Env.RunRepeat), as the kernel's
	// test run repeats a program: an engine that runs batches (the JIT)
	// enters its code once per round. Timed here around the whole loop
	// (RunRepeat's own mean is in whole ns). Calibrate: double n until
	// one round takes a tenth of its share.
	round := budget / vmRounds
	n := 1
	for {
		start := time.Now()
		res, _ := env.RunRepeat(runner, frame, 0, n)
		el := time.Since(start)
		if res.Failed() {
			return 0, fmt.Errorf("run: %w", res.Err())
		}
		if el >= round/10 || n >= 1<<30 {
			n = int(float64(n) * float64(round) / float64(max(el, time.Microsecond)))
			break
		}
		n *= 2
	}
	n = max(n, 1)
	best := math.Inf(1)
	for k := 0; k < vmRounds; k++ {
		start := time.Now()
		env.RunRepeat(runner, frame, 0, n)
		best = min(best, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	r.NsPerRun = best
	r.NsPerInsn = best / float64(p.count)
	return ret, nil
}

// measureKernel runs p under BPF_PROG_TEST_RUN as an XDP program and
// takes the kernel's own mean duration per run (wall time would count
// installing the program in the XDP dispatcher on every call).
func measureKernel(r *VMResult, p vmProgram, budget time.Duration) error {
	if err := kernel.Available(); err != nil {
		return fmt.Errorf("skipped: kernel eBPF: %v", err)
	}
	kp, err := kernel.LoadProgram(kernel.XDP, p.kinsns)
	if err != nil {
		return fmt.Errorf("kernel refused the program: %v", err)
	}
	defer kp.Close()
	frame := append([]byte(nil), p.frame...)
	// Calibrate on 1000 runs, then size the repeat to a round's share.
	_, _, d, err := kp.TestRun(frame, 1000)
	if err != nil {
		return err
	}
	per := max(d, time.Nanosecond)
	repeat := int(min(max(int64(budget/vmRounds/per), 1000), 1<<30))
	best := math.Inf(1)
	for k := 0; k < vmRounds; k++ {
		_, _, d, err := kp.TestRun(frame, repeat)
		if err != nil {
			return err
		}
		best = min(best, float64(d.Nanoseconds()))
	}
	r.NsPerRun = best
	r.NsPerInsn = best / float64(p.count)
	return nil
}
