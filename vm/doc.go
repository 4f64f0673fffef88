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
// owns the stack (8 frames of 512 bytes).
package vm
