// Package jit compiles validated eBPF programs to x86-64 machine code.
//
// Compile turns a *vm.Program into a *Code whose Run gives exactly the
// interpreter's answers: the same r0, the same memory writes, the same
// faults (kind, instruction, address, size) and the same instruction count
// in vm.Env.Executed, with every safety check of the interpreter (memory
// regions, instruction budget, call depth). The code lives in memory that is
// mapped read-write, filled, then made read-execute; Close or the garbage
// collector releases it.
//
// No cgo is involved: the machine code is entered through one small
// assembly trampoline, and it never calls Go. A helper call returns to Go
// with an exit code, Go runs the helper, and the machine code is entered
// again where it left off (the technique of wazero's compiler engine).
//
// What a switch pays per frame is kept in the machine code:
//
//   - Batches (vm.Env.RunFrames, RunRepeat): the machine code starts each
//     frame itself (context, frame region, registers) and writes each
//     frame's result; Go steps in for helpers, faults and tail calls.
//   - Proven accesses: memory accesses that vm's load-time analysis proved
//     in bounds have no check. Context and frame proofs hold only in frame
//     runs, so programs that have them are compiled twice: a generic copy
//     with those accesses checked, and a copy that frame runs use.
//   - Map lookups on arrays, per-CPU arrays, hashes, per-CPU hashes and
//     LRU hashes are done in machine code over the maps' own memory (see
//     maps_amd64.go); other helpers, and map updates and deletes, leave
//     the machine code as above.
//
// Local calls keep the callers' state in the env's session, one record
// per frame, and r10 moves 512 bytes down per call (vm's stack model,
// see package vm, "The stack"). A tail call made in a local function
// leaves the machine code like any helper call: Go pushes a level (the
// program and code to return to, where its frames are) and enters the
// target, whose frames and stack floor start at the function's frame;
// the machine code knows only the running program's call depth and a
// window of the frame records, so that programs without such tail calls
// run exactly as before. While a level is pushed, Go enters the code
// through its nested_entry stub, which turns the exit of the target's
// main frame into a return to Go, and Go resumes the caller at its
// local_return stub.
//
// A Code may be closed while runs are in progress (vm.Env keeps a
// reference to the code it ran last): see Close.
//
// The JIT exists for linux/amd64. Elsewhere Compile returns an error
// wrapping ErrNotSupported and Best returns the interpreter, so that
// callers never have to care.
package jit

import (
	"errors"
	"runtime"

	"github.com/govswitch/vswitch/vm"
)

// ErrNotSupported is wrapped by Compile's error on platforms without a JIT.
var ErrNotSupported = errors.New("jit: not supported on " + runtime.GOOS + "/" + runtime.GOARCH)

// ErrClosed is returned by Run on a Code whose memory was released.
var ErrClosed = errors.New("jit: code is closed")

// Code is a program compiled to machine code. It implements vm.Runner and,
// like the program, is safe for concurrent runs, each with its own Env.
type Code struct {
	prog     *vm.Program
	offsets  []int // native offset of each instruction slot, -1 for lddw's second (the copy for frame runs)
	proven   []bool
	generic  [2]int // the generic copy, when frame runs have their own
	coldFrom int
	stubFrom int
	stubs    map[int]string // offsets of the shared stubs, by name
	size     int
	impl     codeImpl
	attached *vm.Native // what Best stored in prog.Native, detached by Close
}

// Program returns the program c was compiled from.
func (c *Code) Program() *vm.Program { return c.prog }

// Size returns the number of bytes of machine code.
func (c *Code) Size() int { return c.size }

// Best returns the fastest runner of p: its compiled code, compiling it
// and attaching it to p.Native on first use, or p itself (the interpreter)
// where there is no JIT or compilation failed. Code attached this way is
// released by the garbage collector with the program.
func Best(p *vm.Program) vm.Runner {
	if n := p.Native.Load(); n != nil && n.Runner != nil {
		return n.Runner
	}
	c, err := Compile(p)
	if err != nil {
		return p
	}
	n := &vm.Native{Runner: c, Size: c.size}
	if !p.Native.CompareAndSwap(nil, n) {
		c.Close()
		if n := p.Native.Load(); n != nil && n.Runner != nil {
			return n.Runner
		}
		return p
	}
	c.attached = n
	return c
}
