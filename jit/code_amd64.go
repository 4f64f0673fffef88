//go:build linux

package jit

import (
	"fmt"
	"math"
	"runtime"

	"github.com/govswitch/vswitch/vm"
)

// codeImpl is the machine code of a Code on linux/amd64.
type codeImpl struct {
	m       *mapping
	cleanup runtime.Cleanup
	base    uintptr // address of the code
	start   uintptr // entry of a run
	resume  uintptr // entry after a helper
	pc0     uintptr // code of instruction 0 (where a tail call lands)
	// calls: the program makes local calls and needs call frames.
	calls bool
	// windows: the program checks memory accesses inline against the
	// argument regions, whose windows Run computes.
	windows bool
}

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
		coldFrom: out.coldFrom,
		stubFrom: out.stubFrom,
		stubs:    out.stubNames,
		size:     len(out.code),
	}
	c.impl = codeImpl{
		m:       m,
		base:    base,
		start:   base + uintptr(out.start),
		resume:  base + uintptr(out.resume),
		pc0:     base + uintptr(out.offsets[0]),
		calls:   out.localCalls,
		windows: out.windows,
	}
	c.impl.cleanup = runtime.AddCleanup(c, func(m *mapping) { m.release() }, m)
	return c, nil
}

// Close releases the machine code. c must not be running, and Run fails
// with ErrClosed afterwards. If Best attached c to its program, Close
// detaches it.
func (c *Code) Close() error {
	if c.attached != nil {
		c.prog.Native.CompareAndSwap(c.attached, nil)
	}
	c.impl.cleanup.Stop()
	c.impl.base = 0
	return c.impl.m.release()
}

// nativeOf returns the compiled code of p, compiling and attaching it if
// needed (a tail call into a program that was never compiled), or nil.
func nativeOf(p *vm.Program) *Code {
	if c, ok := Best(p).(*Code); ok && c.impl.base != 0 {
		return c
	}
	return nil
}

// Run runs the compiled program, as (*vm.Program).Run does: r1 and r2 are
// the initial values of those registers, r10 is the top of env's stack and
// the other registers start at zero. The error is a *vm.Error held by env
// (valid until its next run), or ErrClosed. Run does not allocate.
func (c *Code) Run(env *vm.Env, r1, r2 uint64) (uint64, error) {
	if c.impl.base == 0 {
		return 0, ErrClosed
	}
	if c.impl.calls {
		return c.runFrames(env, r1, r2)
	}
	var x nativeCtx
	c.setup(&x, env, r1, r2)
	r0 := callNative(c.impl.start, &x)
	runtime.KeepAlive(c)
	if x.exit == 0 {
		env.Executed = x.count
		return r0, nil
	}
	return serve(env, &x, nil, c)
}

// runFrames is Run for programs with local calls: it provides the call
// frames, which other runs need not clear.
func (c *Code) runFrames(env *vm.Env, r1, r2 uint64) (uint64, error) {
	var x nativeCtx
	var f frameStack
	c.setup(&x, env, r1, r2)
	x.frames = framesAddr(&f)
	r0 := callNative(c.impl.start, &x)
	runtime.KeepAlive(c)
	if x.exit == 0 {
		env.Executed = x.count
		return r0, nil
	}
	return serve(env, &x, &f, c)
}

// setup prepares env and x for the first entry.
func (c *Code) setup(x *nativeCtx, env *vm.Env, r1, r2 uint64) {
	env.BeginRun(c.prog)
	x.regs[1], x.regs[2] = r1, r2
	x.regs[10] = env.StackTop()
	x.budget = env.Budget
	if x.budget == 0 {
		x.budget = vm.DefaultBudget
	}
	x.stackBase = env.StackBase()
	x.clock = env.Clock
	x.regionTable = tableAddr(env)
	if c.impl.windows {
		setWindows(x, *env.RegionTable())
	}
}

// framesVariant continues a run whose tail call reached a program with
// local calls: it provides the frames.
func framesVariant(env *vm.Env, x *nativeCtx, cur *Code, entry uintptr) (uint64, error) {
	var f frameStack
	return loop(env, x, &f, cur, entry)
}

// serve handles an exit of the machine code of cur (a helper call or a
// fault), then goes on entering it until the run ends.
func serve(env *vm.Env, x *nativeCtx, frames *frameStack, cur *Code) (uint64, error) {
	entry, r0, err, done := handleExit(env, x, frames, &cur)
	if done {
		return r0, err
	}
	if entry == 0 {
		return framesVariant(env, x, cur, cur.impl.resume)
	}
	return loop(env, x, frames, cur, entry)
}

// loop enters the machine code of cur at entry and serves its exits until
// the run ends.
func loop(env *vm.Env, x *nativeCtx, frames *frameStack, cur *Code, entry uintptr) (uint64, error) {
	for {
		x.exit = 0
		if frames != nil {
			x.frames = framesAddr(frames)
		}
		r0 := callNative(entry, x)
		// The code must stay mapped while it runs, even if the caller
		// drops its last reference to cur during the call.
		runtime.KeepAlive(cur)
		if x.exit == 0 {
			env.Executed = x.count
			return r0, nil
		}
		var err error
		var done bool
		entry, r0, err, done = handleExit(env, x, frames, &cur)
		if done {
			return r0, err
		}
		if entry == 0 {
			return framesVariant(env, x, cur, cur.impl.resume)
		}
	}
}

// handleExit serves one exit of the machine code: it records a fault, or
// runs the helper and handles a tail call. It returns where to enter next
// (0 when the run must go on with call frames it does not have yet), or
// the result of the run when done.
func handleExit(env *vm.Env, x *nativeCtx, frames *frameStack, cur **Code) (entry uintptr, r0 uint64, err error, done bool) {
	code := uint8(x.exit)
	kind := vm.Kind(x.exit >> 8)
	aux := uint16(x.exit >> 16)
	pc := int(x.exit >> 32)
	if code == exitFault {
		e := env.Fault(kind, pc, x.count)
		switch kind {
		case vm.KindRead, vm.KindWrite, vm.KindMisaligned:
			e.Addr, e.Size = x.addr, uint64(aux)
		}
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
		return 0, 0, e, true
	}
	ret, herr := fn(env, x.regs[1], x.regs[2], x.regs[3], x.regs[4], x.regs[5])
	if herr != nil {
		env.TakeCharge()
		e := env.Fault(vm.KindHelper, pc, x.count)
		e.Helper, e.Err = int32(id), herr
		return 0, 0, e, true
	}
	x.regs[0] = ret
	if c := env.TakeCharge(); c != 0 {
		x.budget = vm.SubBudget(x.budget, c)
	}
	// Helpers may have added or removed regions.
	x.regionTable = tableAddr(env)
	setWindows(x, *env.RegionTable())
	next := env.TakeTailCall()
	if next == nil {
		return (*cur).impl.resume, 0, nil, false
	}
	// The new program starts over in the main frame; the registers, the
	// count and the budget carry over.
	env.Bind(next)
	x.regs[10] = env.StackTop()
	x.depth = 0
	nc := nativeOf(next)
	if nc == nil {
		r0, err := runInterp(env, next, x)
		return 0, r0, err, true
	}
	x.resume = nc.impl.pc0
	*cur = nc
	if nc.impl.calls && frames == nil {
		return 0, 0, nil, false
	}
	return nc.impl.resume, 0, nil, false
}

// runInterp finishes a run on the interpreter after a tail call into a
// program that could not be compiled. The interpreter starts from its own
// initial state (r1 and r2 carry over, the count restarts), which is all
// a program may rely on after a tail call.
func runInterp(env *vm.Env, p *vm.Program, x *nativeCtx) (uint64, error) {
	done := x.count
	r0, err := p.Run(env, x.regs[1], x.regs[2])
	env.Executed += done
	return r0, err
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
