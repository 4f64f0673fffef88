package vm

// Hooks for engines other than the interpreter (package jit). They expose
// exactly the state the interpreter keeps privately, so that another engine
// can give the same answers, faults and instruction counts. Programs and
// ordinary callers do not need them.

// BeginRun prepares e for a run of p by an external engine, as the
// interpreter's Run does: p's regions are installed after the stack and the
// argument regions, and the tail call count starts over.
func (e *Env) BeginRun(p *Program) {
	e.bind(p)
	e.tailCalls = 0
	e.tail = nil
	e.charged = 0
}

// TakeCharge returns what the helper that just returned charged with
// Charge, and clears it. The engine takes it from the run's budget
// (SubBudget), as the interpreter does.
func (e *Env) TakeCharge() uint64 {
	c := e.charged
	e.charged = 0
	return c
}

// SubBudget returns budget less charge, or 0 when the charge is larger:
// the budget left to a run after a helper's charge.
func SubBudget(budget, charge uint64) uint64 {
	if charge >= budget {
		return 0
	}
	return budget - charge
}

// Bind makes p the running program after a tail call: its regions replace
// the previous program's (the stack and argument regions stay).
func (e *Env) Bind(p *Program) { e.bind(p) }

// TakeTailCall returns the program a helper asked to tail call into with
// TailCall during the last helper call, and clears the request; nil if
// there is none.
func (e *Env) TakeTailCall() *Program {
	p := e.tail
	e.tail = nil
	return p
}

// RegionTable returns the env's region table: [0] the stack, [1], [2]
// and [3] the argument regions (for frame runs: the context's writable
// tail, the frame, the context's read-only head), then the running
// program's map regions, then the regions helpers added during the run. Helpers may grow or shrink it, so
// an engine must read it again after every helper call. Engines read it;
// they must not change it.
func (e *Env) RegionTable() *[]Region { return &e.regions }

// Pin keeps v, an engine's object, with the env until the next Pin; Pinned
// returns it. The JIT pins the code the env last ran, so that further runs
// of that code on this env need no atomic operation to keep it mapped.
func (e *Env) Pin(v any) { e.pin = v }

// Pinned returns what Pin kept.
func (e *Env) Pinned() any { return e.pin }

// FrameRun reports whether the env's argument regions are those of a
// frame run (RunFrame, RunFrames, RunRepeat): then a run with r1 at
// MDAddr is a frame run, for which the proofs marked ProvenFrame hold.
func (e *Env) FrameRun() bool { return e.frameRun }

// ArgsGen returns a number that changes whenever the argument regions do
// (SetArg, SetArgBytes, the context of frame runs), except for the frame
// region of a batch, which the engine sets itself; ArgsChanged compares it.
func (e *Env) ArgsGen() uint64 { return e.argsGen }

// ArgsChanged reports whether the argument regions changed since gen.
func (e *Env) ArgsChanged(gen uint64) bool { return e.argsGen != gen }

// DynamicRegions reports whether helpers added regions during the run
// (AddRegion) that are still there.
func (e *Env) DynamicRegions() bool { return len(e.regions) > e.nFixed }

// StackBase returns the lowest address of the stack (StackTop - StackSize).
func (e *Env) StackBase() uint64 { return e.stackBase }

// Fault records a run-time fault of kind k at instruction pc of the running
// program after executed instructions, exactly as the interpreter records
// its own: it sets e.Executed and returns the env's *Error, whose Addr,
// Size, Helper and Err the engine fills in for the kinds that have them.
func (e *Env) Fault(k Kind, pc int, executed uint64) *Error {
	e.Executed = executed
	e.fault = Error{PC: pc, Insn: e.prog.orig[pc], Kind: k}
	return &e.fault
}

// HelperFunc returns the implementation of helper id for the running
// program (after a tail call, the new program's), or nil when the program
// may not call it. callx uses it to check its register operand.
func (p *Program) HelperFunc(id uint64) HelperFunc {
	if id >= uint64(len(p.helpers)) {
		return nil
	}
	return p.helpers[id]
}
