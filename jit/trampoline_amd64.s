//go:build linux

#include "textflag.h"

// func callNative(entry uintptr, ctx *nativeCtx) (r0 uint64)
//
// Enters machine code at entry with r12 = ctx. The machine code runs on
// this goroutine's stack without growing it (it pushes at most a few words
// and never calls Go) and returns with RET, r0 in AX. It uses BP as eBPF's
// r10, so Go's frame pointer is kept in ctx.savedBP (offset 0). Every other
// register is caller-saved in Go's ABI0; the ABI wrapper restores R14 (g)
// and X15 on return.
TEXT ·callNative(SB), NOSPLIT, $0-24
	MOVQ ctx+8(FP), R12
	MOVQ BP, 0(R12)
	MOVQ entry+0(FP), AX
	CALL AX
	MOVQ ctx+8(FP), R12
	MOVQ 0(R12), BP
	MOVQ AX, r0+16(FP)
	RET
