//go:build linux

package jit

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/govswitch/vswitch/vm"
)

// codeImpl is the machine code of a Code on linux/amd64.
type codeImpl struct {
	m       *mapping
	cleanup runtime.Cleanup
	// state counts the references that keep the code mapped (acquire,
	// release) and has closedBit set once Close was called: the code
	// stays mapped until the last reference is released, and no run
	// starts after Close. A reference is an env that ran the code last
	// (see use) or a tail call in progress.
	state      atomic.Uint64
	base       uintptr // address of the code
	start      uintptr // entry of a run
	startFrame uintptr // entry of a frame run
	resume     uintptr // entry after a helper
	nested     uintptr // entry after a helper while levels are pushed (nested_entry)
	subRet     uintptr // return from a local call (local_return), 0 without local calls
	pc0        uintptr // code of instruction 0 (where a tail call lands)
	pc0Frame   uintptr // the same in the copy for frame runs
	frameStart uintptr // entry of a batch: starts the frame at nativeCtx.bFrames
	// calls: the program makes local calls and needs call frames.
	calls bool
	// windows: the program checks memory accesses inline against the
	// argument regions, whose windows Run computes.
	windows bool
}

const closedBit = 1 << 63

// callNative enters machine code (trampoline_amd64.s).
//
//go:noescape
func callNative(entry uintptr, ctx *nativeCtx) (r0 uint64)

// Compile compiles p to machine code. It fails only for lack of memory or
// on a platform without a JIT (the error then wraps ErrNotSupported): every
// program vm.Load accepts can be compiled.
func Compile(p *vm.Program) (*Code, error) {
	out, err := compile(p)
	if err != nil {
		return nil, fmt.Errorf("jit: program %q: %w", p.Name, err)
	}
	m, err := newMapping(out.code)
	if err != nil {
		return nil, fmt.Errorf("jit: program %q: %w", p.Name, err)
	}
	base := addrOfCode(m.mem)
	c := &Code{
		prog:     p,
		offsets:  out.offsets,
		proven:   out.proven,
		coldFrom: out.coldFrom,
		stubFrom: out.stubFrom,
		stubs:    out.stubNames,
		generic:  [2]int{out.genericFrom, out.genericTo},
		size:     len(out.code),
	}
	c.impl = codeImpl{
		m:          m,
		base:       base,
		start:      base + uintptr(out.start),
		startFrame: base + uintptr(out.startFrame),
		resume:     base + uintptr(out.resume),
		nested:     base + uintptr(out.nested),
		pc0:        base + uintptr(out.pc0),
		pc0Frame:   base + uintptr(out.pc0F),
		frameStart: base + uintptr(out.frameStart),
		calls:      out.localCalls,
		windows:    out.windows,
	}
	if out.subRet >= 0 {
		c.impl.subRet = base + uintptr(out.subRet)
	}
	c.impl.cleanup = runtime.AddCleanup(c, func(m *mapping) { m.release() }, m)
	return c, nil
}

// acquire takes a reference to c; it fails once c is closed.
func (c *Code) acquire() bool {
	if c.impl.state.Add(1)&closedBit != 0 {
		c.release()
		return false
	}
	return true
}

// release drops a reference: the last one of a closed Code unmaps it.
func (c *Code) release() {
	if c.impl.state.Add(^uint64(0)) == closedBit {
		c.impl.m.release()
	}
}

// Close releases the machine code. Runs that started before stay safe:
// the memory is unmapped when the last of them has returned and its env
// runs something else (or at once if no env ran the code; the garbage
// collector releases it with the last such env otherwise). Runs that start
// after Close fail with ErrClosed. If Best attached c to its program,
// Close detaches it. Close is safe to call concurrently with runs and more
// than once.
func (c *Code) Close() error {
	if c.attached != nil {
		c.prog.Native.CompareAndSwap(c.attached, nil)
	}
	for {
		old := c.impl.state.Load()
		if old&closedBit != 0 {
			return nil
		}
		if c.impl.state.CompareAndSwap(old, old|closedBit) {
			if old == 0 {
				c.impl.cleanup.Stop()
				return c.impl.m.release()
			}
			return nil
		}
	}
}

// nativeOf returns the compiled code of p, compiling and attaching it if
// needed (a tail call into a program that was never compiled), acquired
// for a run; nil if there is none.
func nativeOf(p *vm.Program) *Code {
	if c, ok := Best(p).(*Code); ok && c.acquire() {
		return c
	}
	return nil
}

// session is the JIT's state kept with an env (vm.Env.Pin): the context
// shared with the machine code, the call frames, and a reference to the
// code the env ran last, so that it stays mapped. It lives on the heap,
// where it does not move, and is reused by every run on the env: a run
// neither clears nor allocates it, and runs of the same code again need no
// atomic operation (about 10 ns each on this machine class, more than a
// short program). The reference is released when the env runs another
// code, when a run finds the code closed, or by the garbage collector with
// the env.
//
// Tail calls made in local functions push levels: the program that made
// the call, its code and where its frames are, to return to when the
// target's main frame exits. The machine code knows nothing of them: a
// program's frames are a window of the session's frames (nativeCtx.frames
// and depth), and while levels are pushed Go enters the machine code
// through nested_entry, which returns to Go at the target's exit
// (exitLevel) instead of ending the run.
type session struct {
	x      nativeCtx
	frames frameStack
	rep    repeatState
	env    *vm.Env
	orig   *Code // the code called: the env's reference
	// cur is the code running: orig, or a tail call's target. Every
	// code in cur or in levels other than orig holds a reference of its
	// own (acquired, dropped with drop).
	cur *Code
	// tailed is set once a run made a tail call, until end cleans up.
	tailed  bool
	levels  [vm.MaxTailCalls]level
	nlevels int
	bLeft   uint64 // nativeCtx.bLeft of the batch while levels are pushed (0 there)
	// inGo is set when the current frame ended in Go (a fault, or a tail
	// call finished on the interpreter) rather than in frame_done.
	inGo bool
	args uint64 // env.ArgsGen when the windows were set
	// results are RunFrames' results: the current frame's is
	// results[len(results)-bLeft].
	results []vm.FrameResult
}

// level is a program that made a tail call in a local function: the
// target returns to the function's caller in it.
type level struct {
	code   *Code
	prog   *vm.Program
	depth  uint64  // nativeCtx.depth: the function's depth
	frames uintptr // nativeCtx.frames
	floor  uint64  // the program's stack floor
}

// repeatState is RunRepeat's frame header and result, which the machine
// code reads and writes.
type repeatState struct {
	hdr [3]uintptr
	res vm.FrameResult
}

// sessionOf returns env's session, ready for a run of c, or nil if c is
// closed.
func sessionOf(c *Code, env *vm.Env) *session {
	s, _ := env.Pinned().(*session)
	if s == nil {
		s = &session{env: env}
		s.x.stackBase = env.StackTop() - vm.ProgramStackSize
		s.x.stackTop = env.StackTop()
		s.x.regionTable = tableAddr(env)
		s.x.frames = framesAddr(&s.frames)
		env.Pin(s)
	}
	s.end() // a run that a helper's panic cut short kept its tail calls' state
	if s.orig != c {
		if !c.acquire() {
			return nil
		}
		if s.orig != nil {
			s.orig.release()
		}
		s.orig = c
	} else if c.impl.state.Load()&closedBit != 0 {
		s.orig, s.cur = nil, nil
		c.release()
		return nil
	}
	s.cur = c
	env.BeginRun(c.prog)
	x := &s.x
	x.budget = env.Budget
	if x.budget == 0 {
		x.budget = vm.DefaultBudget
	}
	x.budget0 = x.budget
	x.regs[10] = x.stackTop
	x.clock = env.Clock
	x.cpu = uint64(env.CPU)
	x.bLeft, x.bStop = 0, 0
	x.depth = 0 // a run that faulted inside a local call left it
	if c.impl.windows {
		setWindows(x, *env.RegionTable())
	}
	s.args = env.ArgsGen()
	return s
}

// end cleans up after a run that made tail calls: it releases their
// targets and the levels, and puts the frames and the stack floor back
// under the main frame.
func (s *session) end() {
	if s.tailed {
		s.unwind()
		s.drop(s.cur)
		s.cur = s.orig
		s.tailed = false
	}
}

// drop releases c's reference unless c is the env's own.
func (s *session) drop(c *Code) {
	if c != nil && c != s.orig {
		c.release()
	}
}

// unwind drops the levels (a fault in a tail-called program), giving the
// batch its frame count back, and puts the frames and the stack floor
// back under the main frame.
func (s *session) unwind() {
	x := &s.x
	if s.nlevels > 0 {
		x.bLeft = s.bLeft
	}
	for s.nlevels > 0 {
		s.nlevels--
		s.drop(s.levels[s.nlevels].code)
		s.levels[s.nlevels] = level{}
	}
	x.depth = 0
	x.frames = framesAddr(&s.frames)
	x.stackBase = x.stackTop - vm.ProgramStackSize
	s.env.ResetStack()
}

// entry is where Go enters the running code after a helper: through
// nested_entry while levels are pushed.
func (s *session) entry() uintptr {
	if s.nlevels > 0 {
		return s.cur.impl.nested
	}
	return s.cur.impl.resume
}

// Run runs the compiled program, as (*vm.Program).Run does: r1 and r2 are
// the initial values of those registers, r10 is the top of env's stack and
// the other registers start at zero. The error is a *vm.Error held by env
// (valid until its next run), or ErrClosed. Run does not allocate.
func (c *Code) Run(env *vm.Env, r1, r2 uint64) (uint64, error) {
	s := sessionOf(c, env)
	if s == nil {
		return 0, ErrClosed
	}
	s.x.regs[1], s.x.regs[2] = r1, r2
	entry := c.impl.start
	if env.FrameRun() && r1 == env.MDAddr() {
		// A frame run (RunFrame): the proofs for frame runs hold.
		s.x.md = uintptr(r1)
		entry = c.impl.startFrame
	} else {
		s.x.md = 0
	}
	r0, err := s.enter(entry)
	s.end()
	return r0, err
}

// RunFrames runs the program on each frame in one entry into the machine
// code, which starts every frame and writes every result itself; Go steps
// in only for helpers, faults and tail calls. See vm.Env.RunFrames, which
// calls it with env prepared for frame runs.
func (c *Code) RunFrames(env *vm.Env, frames [][]byte, res []vm.FrameResult) {
	if len(frames) == 0 {
		return
	}
	res = res[:len(frames)]
	s := sessionOf(c, env)
	if s == nil {
		for k := range res {
			res[k] = vm.FrameResult{}
			res[k].SetError(ErrClosed)
		}
		return
	}
	x := &s.x
	x.md = uintptr(env.MDAddr())
	x.ingress = uint64(env.MD.IngressPort)
	x.flood = env.FloodSlot
	// frames and res are on the heap (vm.Env keeps them), so that the
	// machine code may hold their addresses across helper calls.
	x.bFrames = uintptr(unsafe.Pointer(unsafe.SliceData(frames)))
	x.bStride = sizeSlice
	x.bRes = uintptr(unsafe.Pointer(unsafe.SliceData(res)))
	x.bResStride = sizeResult
	x.bLeft = uint64(len(frames))
	s.results = res
	s.batch()
	s.results = nil
}

// RunRepeat runs the program n times on frame in one entry into the
// machine code (see vm.Env.RunRepeat), stopping after a run that fails,
// and leaves the last run's outcome in res. It returns the number of runs.
func (c *Code) RunRepeat(env *vm.Env, frame []byte, n int, res *vm.FrameResult) int {
	if n < 1 {
		return 0
	}
	s := sessionOf(c, env)
	if s == nil {
		*res = vm.FrameResult{}
		res.SetError(ErrClosed)
		return 1
	}
	x := &s.x
	x.md = uintptr(env.MDAddr())
	x.ingress = uint64(env.MD.IngressPort)
	x.flood = 0
	s.rep.hdr = *(*[3]uintptr)(unsafe.Pointer(&frame))
	x.bFrames = uintptr(unsafe.Pointer(&s.rep.hdr))
	x.bRes = uintptr(unsafe.Pointer(&s.rep.res))
	x.bStride, x.bResStride = 0, 0
	x.bLeft = uint64(n)
	// Stop at the first failure: the runs left are not run.
	runs := n - int(s.batchUntilFailure())
	*res = s.rep.res
	return runs
}

// batch runs the frames of a batch: the machine code from frame_start
// until it returns, Go for what the machine code cannot finish.
func (s *session) batch() {
	env, x := s.env, &s.x
	for {
		s.inGo = false
		r0, err := s.enter(s.orig.impl.frameStart)
		if s.inGo {
			// The frame ended in Go: record it and step over it.
			env.FinishFrame(&s.results[len(s.results)-int(x.bLeft)], r0, err)
			s.advance()
		}
		if x.bLeft == 0 {
			break
		}
		if s.inGo || x.bStop != 0 {
			// The next frame starts over with the original program's
			// regions, as a run of its own would.
			x.bStop = 0
			s.end()
			env.BeginRun(s.orig.prog)
		}
	}
	s.end()
}

// batchUntilFailure is batch for RunRepeat: it stops after a run that
// failed and returns the number of runs left.
func (s *session) batchUntilFailure() uint64 {
	env, x := s.env, &s.x
	for {
		s.inGo = false
		r0, err := s.enter(s.orig.impl.frameStart)
		if s.inGo {
			env.FinishRun(&s.rep.res, r0, err)
			x.bLeft--
			if s.rep.res.Failed() {
				break
			}
		}
		if x.bLeft == 0 {
			break
		}
		if s.inGo || x.bStop != 0 {
			x.bStop = 0
			s.end()
			env.BeginRun(s.orig.prog)
		}
	}
	s.end()
	return x.bLeft
}

// advance steps a batch over its current frame, as frame_done does.
func (s *session) advance() {
	x := &s.x
	x.bFrames += uintptr(x.bStride)
	x.bRes += uintptr(x.bResStride)
	x.bLeft--
}

// enter enters the machine code of s.cur at entry and serves its exits
// until it returns for good: at the exit of a single run or when a batch
// returns, or when a frame ends in Go (s.inGo). It sets env.Executed.
func (s *session) enter(entry uintptr) (uint64, error) {
	x := &s.x
	for {
		x.exit = 0
		r0 := callNative(entry, x)
		if x.exit == 0 {
			s.env.Executed = x.count
			return r0, nil
		}
		var err error
		var done bool
		entry, r0, err, done = s.handleExit()
		if done {
			s.inGo = true
			return r0, err
		}
	}
}

// handleExit serves one exit of the machine code: it records a fault, or
// runs the helper and handles a tail call. It returns where to enter next,
// or the result of the run when done.
func (s *session) handleExit() (entry uintptr, r0 uint64, err error, done bool) {
	env, x := s.env, &s.x
	code := uint8(x.exit)
	kind := vm.Kind(x.exit >> 8)
	aux := uint16(x.exit >> 16)
	pc := int(x.exit >> 32)
	if code == exitLevel {
		return s.levelExit(x.regs[0])
	}
	if code == exitFault {
		e := env.Fault(kind, pc, x.count)
		switch kind {
		case vm.KindRead, vm.KindWrite, vm.KindMisaligned:
			e.Addr, e.Size = x.addr, uint64(aux)
		}
		s.unwind()
		return 0, 0, e, true
	}
	id := uint64(aux)
	if code == exitCallx {
		id = x.addr
	}
	fn := env.Program().HelperFunc(id)
	if fn == nil {
		e := env.Fault(vm.KindBadHelper, pc, x.count)
		e.Helper = int32(min(id, math.MaxInt32))
		s.unwind()
		return 0, 0, e, true
	}
	ret, herr := fn(env, x.regs[1], x.regs[2], x.regs[3], x.regs[4], x.regs[5])
	if herr != nil {
		env.TakeCharge()
		e := env.Fault(vm.KindHelper, pc, x.count)
		e.Helper, e.Err = int32(id), herr
		s.unwind()
		return 0, 0, e, true
	}
	x.regs[0] = ret
	if c := env.TakeCharge(); c != 0 {
		x.budget = vm.SubBudget(x.budget, c)
	}
	// The windows follow the argument regions, which helpers do not
	// change (they add dynamic regions, which the region search sees).
	if env.ArgsChanged(s.args) {
		s.args = env.ArgsGen()
		setWindows(x, *env.RegionTable())
	}
	if env.DynamicRegions() {
		x.bStop = 1 // the next frame of a batch must not see them
	}
	next := env.TakeTailCall()
	if next == nil {
		return s.entry(), 0, nil, false
	}
	// The target starts at its first instruction in the current frame,
	// with the registers as they are (r1 the context); the count and the
	// budget carry over. Made in a local function, the tail call replaces
	// the function: a level remembers where to return when the target's
	// main frame exits. In a batch, the next frame goes back to the
	// original program through Go.
	x.bStop = 1
	s.tailed = true
	if x.depth > 0 {
		s.pushLevel()
	} else {
		s.drop(s.cur)
	}
	s.cur = nil
	env.Bind(next)
	setWindows(x, *env.RegionTable()) // the target may use them where the caller did not
	nc := nativeOf(next)
	if nc == nil {
		return s.runInterp(next)
	}
	if nc == s.orig {
		nc.release() // the env holds a reference to it already
	}
	s.cur = nc
	// The target's proofs for frame runs hold if this is one and r1 is
	// still the context (which a tail call passes on).
	x.resume = nc.impl.pc0
	if x.md != 0 && x.regs[1] == uint64(x.md) {
		x.resume = nc.impl.pc0Frame
	}
	return s.entry(), 0, nil, false
}

// pushLevel records the running program before a tail call made in the
// local function at nativeCtx.depth: the target's main frame replaces the
// function's, its frames start at the function's record, and its stack
// floor is vm.ProgramStackSize below the function's frame. The running
// code's reference moves into the level.
func (s *session) pushLevel() {
	x := &s.x
	if s.nlevels == 0 {
		// frame_done must return to nested_entry at the target's exit.
		s.bLeft, x.bLeft = x.bLeft, 0
	}
	s.levels[s.nlevels] = level{code: s.cur, prog: s.env.Program(), depth: x.depth, frames: x.frames, floor: x.stackBase}
	s.nlevels++
	x.frames += uintptr(x.depth) * uintptr(sizeFrame)
	x.depth = 0
	x.stackBase = x.regs[10] - vm.ProgramStackSize
	s.env.SetStackFloor(x.stackBase)
}

// levelExit goes on after the main frame of a tail call's target exited
// with r0 (r1..r5 in nativeCtx.regs): with no level pushed the run is
// done; otherwise the level's program resumes at the return from the
// function the target replaced (local_return, with the depth of that
// function).
func (s *session) levelExit(r0 uint64) (entry uintptr, _ uint64, _ error, done bool) {
	x := &s.x
	if s.nlevels == 0 {
		s.env.Executed = x.count
		return 0, r0, nil, true
	}
	x.regs[0] = r0
	s.nlevels--
	l := &s.levels[s.nlevels]
	s.drop(s.cur)
	s.cur = l.code
	s.env.Bind(l.prog)
	x.depth, x.frames, x.stackBase = l.depth, l.frames, l.floor
	s.env.SetStackFloor(l.floor)
	setWindows(x, *s.env.RegionTable())
	*l = level{}
	if s.nlevels == 0 {
		x.bLeft = s.bLeft
	}
	x.resume = s.cur.impl.subRet
	return s.entry(), 0, nil, false
}

// runInterp runs a tail call's target that could not be compiled on the
// interpreter, from its first instruction with the registers, the count,
// the budget and the tail calls of the run so far, until its main frame
// exits; then the run goes on as after the exit of compiled code.
func (s *session) runInterp(p *vm.Program) (uintptr, uint64, error, bool) {
	x := &s.x
	count, budget, err := s.env.RunTail(p, &x.regs, x.count, x.budget)
	if err != nil {
		s.unwind()
		return 0, 0, err, true
	}
	x.count, x.budget = count, budget
	return s.levelExit(x.regs[0])
}

// image returns a copy of the machine code, nil once closed.
func (c *Code) image() []byte {
	m := c.impl.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return nil
	}
	return append([]byte(nil), m.mem[:c.size]...)
}
