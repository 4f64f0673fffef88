package vm

import (
	"runtime"
	"time"

	"github.com/govswitch/vswitch/asm"
)

// ReturnFlood is what a forwarding program returns to flood a frame to
// every port but the ingress one.
const ReturnFlood = 254

// FrameResult is the outcome of one frame of Env.RunFrames. It holds no
// pointer to memory of the run: a fault is described by value (Kind, PC,
// Insn...), and an *Error is made only when Err is called.
type FrameResult struct {
	R0       uint64 // the program's return value; 0 after a fault
	Executed uint64 // instruction slots executed, as Env.Executed
	// Flood is the flood set the program wrote into Env.FloodSlot, when
	// R0 is ReturnFlood and FloodSlot is set (the slot is zeroed for the
	// next frame); zero otherwise.
	Flood  [4]uint64
	RingNr uint8 // ctx->ring_nr after the run
	Kind   Kind  // why the run faulted; 0 when it did not
	engine bool  // the run failed in the engine (err), not in the program
	// The fault, when Kind is not 0: the instruction (of the program that
	// was running: after a tail call, the target), and for the kinds
	// that have them the address and size of the access or the helper.
	Helper int32
	PC     int32
	Insn   asm.Instruction
	Addr   uint64
	Size   uint64
	// err is the helper's error (KindHelper) or the engine's error; it
	// is left as it was when the run succeeds (machine code does not
	// write pointers), so it means something only with Kind or engine.
	err error
}

// Failed reports whether the run did not complete: a fault, or an engine
// error (a closed engine). The frame should then be dropped.
func (r *FrameResult) Failed() bool { return r.Kind != 0 || r.engine }

// Err returns nil, the fault as an *Error (allocated by this call: keep it
// off the hot path), or the engine's error.
func (r *FrameResult) Err() error {
	switch {
	case r.Kind != 0:
		var herr error
		if r.Kind == KindHelper {
			herr = r.err
		}
		return &Error{PC: int(r.PC), Insn: r.Insn, Kind: r.Kind, Addr: r.Addr, Size: r.Size, Helper: r.Helper, Err: herr}
	case r.engine:
		return r.err
	}
	return nil
}

// SetError records err as the outcome of the run: a fault from the
// env's *Error, or any other error as an engine error. Engines use it.
func (r *FrameResult) SetError(err error) {
	if e, ok := err.(*Error); ok {
		r.R0, r.Kind, r.PC, r.Insn, r.Addr, r.Size, r.Helper, r.err = 0, e.Kind, int32(e.PC), e.Insn, e.Addr, e.Size, e.Helper, e.Err
		return
	}
	r.R0, r.engine, r.err = 0, true, err
}

// BatchRunner is a Runner that runs many frames in one entry: the JIT
// implements it. Env.RunFrames and Env.RunRepeat prepare the env (the
// context regions, the ingress port) and call it; engines without it are
// run frame by frame behind the same calls.
type BatchRunner interface {
	Runner
	// RunFrames runs frames as Env.RunFrames describes, with the env
	// prepared for frame runs (BeginFrames).
	RunFrames(env *Env, frames [][]byte, res []FrameResult)
	// RunRepeat runs frame n times (n >= 1), stopping after the first
	// run that fails, and leaves the last run's outcome in res; it
	// returns the number of runs.
	RunRepeat(env *Env, frame []byte, n int, res *FrameResult) int
}

// RunFrames runs the forwarding program r on each frame in order, as
// RunFrame would, and writes frame k's outcome to res[k] (res must be at
// least as long as frames). Each frame gets the same context as with
// RunFrame: data and data_end over the frame, ingress_port, ring_nr 0
// and writable. Faults, the budget (Env.Budget) and the counts stay per
// frame: a frame that faults is recorded in its result and the next frame
// runs. Runs of a batch do not allocate.
//
// Flood sets: when Env.FloodSlot is set and a frame returns ReturnFlood
// (254), the 32 bytes at FloodSlot are copied to that frame's
// FrameResult.Flood and zeroed before the next frame runs; a frame that
// returns anything else leaves the slot as it is (so that it applies to
// the next flood). This is what a switch does for flood groups: it points
// FloodSlot at its worker's slot of the program's per-CPU vswitch_flood
// map once per batch, and reads each flooded frame's set from its result.
//
// An engine that implements BatchRunner (the JIT) enters its machine
// code once per batch; any other is run frame by frame. After the call,
// e.MD and e.Executed describe the last frame.
func (e *Env) RunFrames(r Runner, frames [][]byte, ingress uint32, res []FrameResult) {
	if len(frames) == 0 {
		return
	}
	res = res[:len(frames)]
	e.batch, e.results = frames, res
	e.setContext(ingress)
	if b, ok := r.(BatchRunner); ok {
		b.RunFrames(e, frames, res)
		return
	}
	md := e.MDAddr()
	for k, f := range frames {
		e.frame = f
		e.setFrame(f)
		r0, err := r.Run(e, md, 0)
		e.FinishFrame(&res[k], r0, err)
	}
}

// RunRepeat runs r on frame n times as RunFrame does (Env.FloodSlot is not
// used), as `bpftool prog run --repeat` does in the kernel: the frame is not restored between
// runs, so a program that changes it sees its own changes. It stops after
// the first run that fails. It returns the last run's outcome and the
// mean time of a run, measured around the whole loop, so that an engine
// that implements BatchRunner (the JIT) pays its entry once. The time is
// the CPU time of the thread that ran the loop (where the system has it;
// wall time elsewhere): the kernel's test run does not count the time it
// was rescheduled either, so the two compare on a busy machine too. Unless
// Env.Clock is set, bpf_ktime_get_ns gives every run the time of the
// call, as a switch gives every frame of a batch its batch's time.
func (e *Env) RunRepeat(r Runner, frame []byte, ingress uint32, n int) (FrameResult, time.Duration) {
	var res FrameResult
	if n < 1 {
		return res, 0
	}
	if e.Clock == 0 {
		e.Clock = Ktime()
		defer func() { e.Clock = 0 }()
	}
	e.frame = frame
	e.setContext(ingress)
	md := e.MDAddr()
	b, batch := r.(BatchRunner)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpu := threadTime()
	start := time.Now()
	runs := 0
	if batch {
		runs = b.RunRepeat(e, frame, n, &res)
	} else {
		for runs < n {
			e.setFrame(frame)
			r0, err := r.Run(e, md, 0)
			runs++
			if err != nil {
				res.SetError(err)
				res.Executed = e.Executed
				break
			}
			res.R0 = r0
		}
		if !res.Failed() {
			res.Executed, res.RingNr = e.Executed, e.MD.RingNr
		}
	}
	elapsed := time.Since(start)
	if cpu1, ok := threadTime(); cpu && ok {
		elapsed = cpu1 - cpu0
	}
	return res, elapsed / time.Duration(runs)
}

// BeginFrames prepares e for a batch of frame runs by an engine, as
// RunFrames does before it calls the engine: it is for engines' tests and
// benchmarks that call BatchRunner methods directly.
func (e *Env) BeginFrames(ingress uint32) { e.setContext(ingress) }

// SetFrame points the context and the frame region at frame, as the
// frame runs of a batch do before each frame. Engines that run a batch
// frame by frame use it.
func (e *Env) SetFrame(frame []byte) {
	e.frame = frame
	e.setFrame(frame)
}

// FinishFrame writes the outcome of a frame run to res, as the engines
// do at the end of each frame of RunFrames: r0 and err from the run,
// Executed and the ring from the env, the flood set (see RunFrames).
func (e *Env) FinishFrame(res *FrameResult, r0 uint64, err error) { e.finish(res, r0, err, true) }

// FinishRun is FinishFrame without the flood set, for the runs of
// RunRepeat (which run as RunFrame does).
func (e *Env) FinishRun(res *FrameResult, r0 uint64, err error) { e.finish(res, r0, err, false) }

// finish is FinishFrame, with or without the flood set.
func (e *Env) finish(res *FrameResult, r0 uint64, err error, flood bool) {
	*res = FrameResult{R0: r0, Executed: e.Executed, RingNr: e.MD.RingNr}
	if err != nil {
		res.SetError(err)
		return
	}
	if flood && r0 == ReturnFlood && e.FloodSlot != 0 {
		res.Flood = takeFlood(e.FloodSlot)
	}
}

// RunFrames runs p on a batch of frames, for Env.RunFrames (BatchRunner).
// The interpreter has no entry to amortize beyond a Go call, so its batch
// is a loop around its run, without going through the Runner interface.
func (p *Program) RunFrames(env *Env, frames [][]byte, res []FrameResult) {
	md := env.MDAddr()
	for k, f := range frames {
		env.setFrame(f)
		r0, err := p.Run(env, md, 0)
		env.FinishFrame(&res[k], r0, err)
	}
}

// RunRepeat runs p on frame n times, for Env.RunRepeat (BatchRunner).
func (p *Program) RunRepeat(env *Env, frame []byte, n int, res *FrameResult) int {
	md := env.MDAddr()
	for runs := 1; ; runs++ {
		env.setFrame(frame)
		r0, err := p.Run(env, md, 0)
		if err != nil || runs == n {
			env.finish(res, r0, err, false)
			return runs
		}
	}
}
