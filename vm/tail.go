package vm

import (
	"errors"

	"github.com/govswitch/vswitch/asm"
)

// Tail calls made in local functions (see the package doc, "The stack").
// The interpreter keeps one call depth for the whole run; runState.base
// is the depth of the running program's main frame. A tail call made at a
// depth above base pushes a level (the program to return to, its base and
// its stack floor) and makes that depth the new base; the exit of the
// frame at depth base pops it (slow).
//
// While levels are pushed (runState.odd), Env.regsProg stays nil, so that
// the next run's begin takes its slow path and drops the levels if this
// run stopped inside a tail-called program (a fault unwinds at once; a
// helper's panic leaves them).

// begin binds p for a new run: bind, after dropping the levels a run cut
// short left behind.
func (e *Env) begin(p *Program) {
	if e.regsProg == p {
		e.prog = p
		e.regions = e.regions[:e.nFixed]
		return
	}
	if e.st.odd {
		e.unwind()
	}
	e.bind(p)
}

// pushLevel records the running program before a tail call made in a
// local function whose frame pointer is r10: the target's main frame
// replaces the function's, and the stack floor moves down to the
// target's program stack.
func (e *Env) pushLevel(r10 uint64) {
	st := &e.st
	e.levels[st.level] = level{prog: e.prog, base: st.base, floor: e.regions[0].Start}
	st.level++
	st.base = st.depth
	st.odd = true
	e.setFloor(r10 - ProgramStackSize)
}

// popLevel returns from the main frame of a tail-called program to the
// program whose function it replaced, which it binds again. It reports
// true when the level was RunTail's sentinel: the continuation is done,
// and regs[0..5] go back to its caller.
func (e *Env) popLevel(regs *[16]uint64) bool {
	st := &e.st
	st.level--
	l := e.levels[st.level]
	e.levels[st.level] = level{}
	e.setFloor(l.floor)
	st.base = l.base
	st.odd = st.level > 0
	if l.prog == nil {
		copy(e.cont.regs[:6], regs[:6])
		e.cont.count, e.cont.budget = st.count, st.budget
		e.Executed = st.count
		return true
	}
	e.bind(l.prog)
	if st.odd {
		e.regsProg = nil
	}
	return false
}

// unwind drops the interpreter's levels and puts the stack floor back
// under the main frame.
func (e *Env) unwind() {
	st := &e.st
	for st.level > 0 {
		st.level--
		e.levels[st.level] = level{}
	}
	st.base, st.odd = 0, false
	e.setFloor(e.StackTop() - ProgramStackSize)
}

// errContDone ends the interpreter's run of RunTail's continuation.
var errContDone = errors.New("vm: continuation done")

// contStub is what RunTail runs: a call of contHelper, whose tail call
// the interpreter takes for the start of the continuation (startCont).
var contStub = func() *Program {
	hs := &Helpers{}
	if err := hs.Register(Helper{ID: 1, Name: "continue", Fn: contHelper}); err != nil {
		panic(err)
	}
	return MustLoad([]asm.Instruction{{Op: asm.OpCall, Imm: 1}, {Op: asm.OpExit}}, Options{Name: "continuation", Helpers: hs})
}()

func contHelper(e *Env, _, _, _, _, _ uint64) (uint64, error) {
	e.tail = e.cont.prog
	return 0, nil
}

// startCont starts RunTail's continuation in place of contStub's tail
// call: the registers, the count, the budget, the tail calls and the
// stack floor of the other engine's run, and a sentinel level below the
// target's main frame, whose exit ends the continuation.
func (e *Env) startCont(regs *[16]uint64) {
	st := &e.st
	c := &e.cont
	c.pending = false
	copy(regs[:11], c.regs[:])
	st.count, st.budget = c.count, c.budget
	e.tailCalls = c.tailCalls
	e.setFloor(c.floor)
	// Depth 0 is the sentinel frame; the target's main frame is depth 1.
	e.frames[0] = frame{}
	e.levels[0] = level{floor: c.floor}
	st.depth, st.base, st.level = 1, 1, 1
	st.odd = true
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
	e.cont = contState{pending: true, prog: p, regs: *regs, count: count, budget: budget, tailCalls: e.tailCalls, floor: e.regions[0].Start}
	_, err := contStub.Run(e, regs[1], regs[2])
	e.cont.pending, e.cont.prog = false, nil
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
