// Package vm validates eBPF programs and runs them on an interpreter.
//
// A program is validated once by Load into an immutable Program; running it
// cannot fail on anything validation could have caught. At run time every
// load, store and atomic is checked against the memory the program was
// given (its Regions: the context, the frame, its stack, map values); a
// violation, an exhausted instruction budget or a failing helper stops the
// run with an *Error that names the instruction. Nothing a program does can
// crash the process.
//
// Pointers in registers are real addresses. The memory a run may touch is
// described by Regions held in an Env, one per worker goroutine, which also
// owns the stack (see "The stack" below).
//
// Forwarding programs run on frames: RunFrame runs one, RunFrames a batch
// (with per-frame results by value and the switch's flood sets), RunRepeat
// one frame many times, timed (prog run --repeat). In frame runs the
// context's data and data_end are read-only. Load also runs a range
// analysis (analyze.go) whose proofs let an engine drop the checks of
// accesses it proved in bounds; the interpreter checks everything.
//
// # The stack
//
// A frame is StackFrameSize (512) bytes; r10 points at its top. The main
// frame is at the top of the Env's stack, and a local call's frame is the
// next 512 bytes below its caller's. A program has MaxCallDepth (8)
// frames: Load refuses call chains deeper than that, as the kernel's
// verifier does (MAX_CALL_FRAMES), and the engines check it again at run
// time (KindCallDepth).
//
// A tail call (bpf_tail_call, helper 12) replaces the frame it is made
// in, as in Linux: the target starts at its first instruction in that
// frame, with the registers as they are (r1 the context); the count, the
// budget and the tail calls made carry over, at most MaxTailCalls (33) in
// a run. Made in the main frame, it replaces the program for the rest of
// the run. Made in a local function, it replaces only the function: the
// target's main frame is the function's frame, its own calls go below,
// and when its main frame exits, r0 (and r1..r5, as after any call)
// returns to the function's caller, in the program that called the
// function, whose r6..r9 and frame are as they were. So frames nest
// beyond MaxCallDepth only through tail calls made in functions, each at
// most MaxCallDepth-1 deeper than the last: a run has at most MaxFrames
// (8 + 33*7 = 239) frames, and the Env's stack is that big (StackSize,
// 122,368 bytes), with every frame's 512 bytes inside it, whatever the
// program does (the kernel bounds the stack statically and more
// tightly: 512 bytes over a call chain, and less than 256 in the frames
// above a function that makes a tail call).
//
// What a program may touch on the stack (region 0 of the Env's regions)
// runs from ProgramStackSize (8 frames) below its main frame to the top
// of the stack: its own 8 frames, and the frames of the calls in
// progress above them. For a run without tail calls made in functions
// that is the top 8 frames, as it always was; while a tail call made in a
// function runs, the floor (Env.StackFloor) moves down under the
// target's 8 frames, and back when it returns. A fault or the next run
// puts it back under the main frame.
//
// # The budget: how long one run can take
//
// A run may not hold its worker for long: the Go scheduler never preempts
// machine code, and a frame that takes long stalls its port. Every run
// has a budget (Env.Budget, DefaultBudget = 1,000,000 units) and pays for
// all of its work in the same units, about a nanosecond of the slowest
// work each stands for:
//
//   - one unit per instruction executed (Env.Executed counts these alone);
//   - CallCost (16) per helper call, what a call costs the engines;
//   - what the helper charges for its own work (Env.Charge), from the
//     sizes involved, never from the data: package maps charges 8 per
//     word written into a map (an atomic store, 6-12 ns here), a probe of
//     a hash map 96 plus a unit per key word (a lookup in a map of
//     millions of elements misses every cache), the words a ring buffer
//     record copies, 1000 for a trace_printk line;
//   - i+1 for a checked access (or a helper's pointer) found in region i
//     past the FixedRegions, the length of the region search.
//
// The run faults (KindBudget) at its first backward jump or call after the
// budget is spent, so a run does at most one helper call's work past it.
// Both engines charge exactly the same, so they fault at the same
// instruction. Measured on this machine class (2 vCPUs, shared, load
// 11-14; `go test ./maps -run '^$' -bench Budget -benchtime 10x`), the
// costliest programs known spend the default budget in at most 2 ms on
// the interpreter and 1.2 ms on the JIT: a loop of ALU instructions 1.3 ms
// (interpreter) and 0.2 ms (JIT), searches past 64 maps 0.9 and 0.4 ms,
// helper calls 0.4 and 0.6 ms, lookups in a hash map of a million
// elements 1.8 and 0.4 ms, updates of 1 MiB values 1.0 and 1.1 ms.
// Before the budget counted helper work, one frame looping over 1 MiB
// updates took 30-57 s.
package vm
