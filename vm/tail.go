package vm

// Tail calls made in local functions (see the package doc, "The stack").
// The interpreter keeps one call depth for the whole run; runState.base
// is the depth of the running program's main frame. A tail call made at a
// depth above base pushes a level (the program to return to, its base and
// its stack floor) and makes that depth the new base; the exit of a frame
// at depth base pops it.

// pushLevel records the running program before a tail call made in a
// local function whose frame pointer is r10: the target's main frame
// replaces the function's, and the stack floor moves down to the
// target's program stack.
func (e *Env) pushLevel(r10 uint64) {
	st := &e.st
	e.levels[st.level] = level{prog: e.prog, base: st.base, floor: e.regions[0].Start}
	st.level++
	st.base = st.depth
	st.odd |= oddLevels
	e.setFloor(r10 - ProgramStackSize)
}

// popLevel returns from the main frame of a tail-called program to the
// program whose function it replaced, which it binds again. It reports
// true when the level was RunTail's sentinel: the continuation is done,
// and regs[0..5] go back to its caller.
func (e *Env) popLevel(regs *[16]uint64) bool {
	st := &e.st
	st.level--
	l := &e.levels[st.level]
	e.setFloor(l.floor)
	if st.level == 0 {
		st.odd &^= oddLevels
	}
	if l.prog == nil {
		copy(e.cont.regs[:6], regs[:6])
		e.cont.count, e.cont.budget = st.count, st.budget
		e.Executed = st.count
		st.base = 0
		return true
	}
	e.bind(l.prog)
	st.base = l.base
	l.prog = nil
	return false
}

// oddStart is the start of a run when runState.odd is set: it drops the
// levels a run cut short left behind and, for RunTail, starts the
// continuation: regs from it, the count, the budget and the tail calls
// of the run so far, and a sentinel level below the target's main frame.
func (e *Env) oddStart(regs *[16]uint64) {
	st := &e.st
	cont := st.odd&oddCont != 0
	e.unwind()
	if !cont {
		return
	}
	c := &e.cont
	copy(regs[:11], c.regs[:])
	st.count, st.budget = c.count, c.budget
	e.tailCalls = c.tailCalls
	e.setFloor(c.floor)
	// Depth 0 is the sentinel frame; the target's main frame is depth 1.
	e.frames[0] = frame{}
	e.levels[0] = level{floor: c.floor}
	st.depth, st.base, st.level = 1, 1, 1
	st.odd = oddLevels
}

// unwind drops the interpreter's levels and puts the stack floor back
// under the main frame.
func (e *Env) unwind() {
	st := &e.st
	for st.level > 0 {
		st.level--
		e.levels[st.level] = level{}
	}
	st.base, st.odd = 0, 0
	e.setFloor(e.StackTop() - ProgramStackSize)
}

// RunTail continues a run of another engine on the interpreter, for a
// tail call into p that the engine cannot run itself: p starts at its
// first instruction with the registers regs (r10 the frame pointer of the
// frame it takes over, ProgramStackSize above the current stack floor),
// the run's instruction count and budget so far, and the tail calls the
// run made, and runs until its main frame exits (its own tail calls and
// local calls included). It then returns the count and the budget left,
// with regs[0..5] as p left them (r0 its result); a fault stops it as in
// Run, with Executed set. The engine decides what the exit means: the end
// of the run, or a return to the caller of the function the tail call
// replaced.
func (e *Env) RunTail(p *Program, regs *[11]uint64, count, budget uint64) (uint64, uint64, error) {
	e.cont = contState{regs: *regs, count: count, budget: budget, tailCalls: e.tailCalls, floor: e.regions[0].Start}
	e.st.odd |= oddCont
	_, err := p.Run(e, regs[1], regs[2])
	if err != nil {
		return e.Executed, 0, err
	}
	copy(regs[:6], e.cont.regs[:6])
	return e.cont.count, e.cont.budget, nil
}

// StackFloor returns the lowest address the running program may touch on
// the stack (region 0 starts there): ProgramStackSize below its main
// frame.
func (e *Env) StackFloor() uint64 { return e.regions[0].Start }

// SetStackFloor moves the stack floor, for an engine that runs a tail call
// made in a local function (floor: the function's frame pointer less
// ProgramStackSize) and returns from it (the caller's floor again). It
// panics if floor is not in the stack, at least ProgramStackSize below
// its top.
func (e *Env) SetStackFloor(floor uint64) { e.setFloor(floor) }

// ResetStack puts the stack floor back under the main frame and drops the
// interpreter's state of tail calls made in functions: an engine calls it
// when a run it made lower the floor ends, also by a fault.
func (e *Env) ResetStack() { e.unwind() }
