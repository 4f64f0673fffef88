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
		size:     len(out.code),
	}
	c.impl = codeImpl{
		m:      m,
		base:   base,
		start:  base + uintptr(out.start),
		resume: base + uintptr(out.resume),
		pc0:    base + uintptr(out.offsets[0]),
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
	env.BeginRun(c.prog)
	var x nativeCtx
	x.regs[1], x.regs[2] = r1, r2
	x.regs[10] = env.StackTop()
	x.budget = env.Budget
	if x.budget == 0 {
		x.budget = vm.DefaultBudget
	}
	x.stackBase = env.StackBase()
	x.regionTable = tableAddr(env)
	setWindows(&x, *env.RegionTable())
	cur := c
	entry := c.impl.start
	for {
		x.exit = 0
		r0 := callNative(entry, &x)
		if x.exit == 0 {
			env.Executed = x.count
			runtime.KeepAlive(cur)
			return r0, nil
		}
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
			runtime.KeepAlive(cur)
			return 0, e
		}
		id := uint64(aux)
		if code == exitCallx {
			id = x.addr
		}
		fn := env.Program().HelperFunc(id)
		if fn == nil {
			e := env.Fault(vm.KindBadHelper, pc, x.count)
			e.Helper = int32(min(id, math.MaxInt32))
			runtime.KeepAlive(cur)
			return 0, e
		}
		ret, err := fn(env, x.regs[1], x.regs[2], x.regs[3], x.regs[4], x.regs[5])
		if err != nil {
			e := env.Fault(vm.KindHelper, pc, x.count)
			e.Helper, e.Err = int32(id), err
			runtime.KeepAlive(cur)
			return 0, e
		}
		x.regs[0] = ret
		if next := env.TakeTailCall(); next != nil {
			// The new program starts over in the main frame; the
			// registers, the count and the budget carry over.
			env.Bind(next)
			x.regs[10] = env.StackTop()
			x.depth = 0
			nc := nativeOf(next)
			if nc == nil {
				return runInterp(env, next, &x)
			}
			runtime.KeepAlive(cur)
			cur = nc
			x.resume = nc.impl.pc0
		}
		// Helpers may have added or removed regions.
		x.regionTable = tableAddr(env)
		setWindows(&x, *env.RegionTable())
		entry = cur.impl.resume
	}
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
