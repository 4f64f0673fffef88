package jit_test

import (
	"fmt"
	"strings"
	"testing"
)

// pitfall is a program that exercises something an x86 code generator
// easily gets wrong. Every case runs on both engines, which must agree on
// everything; want, when set, is checked too.
type pitfall struct {
	name   string
	text   string
	mem    []byte
	want   any    // uint64 r0, or a string the fault must contain
	budget uint64 // 0: the default
}

func mem16() []byte {
	b := make([]byte, 16)
	for k := range b {
		b[k] = byte(0x11 * (k + 1))
	}
	return b
}

var pitfalls = []pitfall{
	// Shifts by a register: x86 wants the count in cl, and r4 lives in rcx.
	{name: "lsh dst rcx", text: "mov %r4, 0x1234\nmov %r1, 4\nlsh %r4, %r1\nmov %r0, %r4\nexit", want: uint64(0x12340)},
	{name: "lsh rcx by rcx", text: "mov %r4, 3\nlsh %r4, %r4\nmov %r0, %r4\nexit", want: uint64(24)},
	{name: "lsh by rcx masked", text: "mov %r4, 65\nmov %r0, 1\nlsh %r0, %r4\nadd %r0, %r4\nexit", want: uint64(2 + 65)},
	{name: "rsh keeps r4", text: "mov %r4, 7\nmov %r2, 1\nmov %r3, 0x100\nrsh %r3, %r2\nmov %r0, %r3\nadd %r0, %r4\nexit", want: uint64(0x80 + 7)},
	{name: "arsh dst rcx src r0", text: "mov %r4, -256\nmov %r0, 4\narsh %r4, %r0\nmov %r0, %r4\nexit", want: uint64(0xfffffffffffffff0)},
	{name: "lsh32 dst rcx zero-extends", text: "lddw %r4, 0xffffffff00000001\nmov %r1, 33\nlsh32 %r4, %r1\nmov %r0, %r4\nexit", want: uint64(2)},
	{name: "arsh32 by reg 0 zero-extends", text: "lddw %r0, 0xffffffff80000000\nmov %r1, 0\narsh32 %r0, %r1\nexit", want: uint64(0x80000000)},
	{name: "lsh32 by reg 32 zero-extends", text: "lddw %r0, 0x1ffffffff\nmov %r2, 32\nlsh32 %r0, %r2\nexit", want: uint64(0xffffffff)},
	{name: "lsh32 by imm 0 zero-extends", text: "lddw %r0, 0x1ffffffff\nlsh32 %r0, 0\nexit", want: uint64(0xffffffff)},
	{name: "rsh by imm 0", text: "lddw %r0, 0x1ffffffff\nrsh %r0, 0\nexit", want: uint64(0x1ffffffff)},
	{name: "rsh32 dst rcx by rcx", text: "lddw %r4, 0xf00000020\nrsh32 %r4, %r4\nmov %r0, %r4\nexit", want: uint64(0x20)},

	// mul/div/mod and rax (r0) / rdx (r3).
	{name: "div keeps r0 r3", text: "mov %r0, 100\nmov %r3, 7\nmov %r1, 1000\ndiv %r1, %r3\nadd %r0, %r1\nlsh %r3, 16\nadd %r0, %r3\nexit", want: uint64(100 + 142 + 7<<16)},
	{name: "div dst r0 src r3", text: "mov %r0, 100\nmov %r3, 7\ndiv %r0, %r3\nlsh %r3, 16\nadd %r0, %r3\nexit", want: uint64(14 + 7<<16)},
	{name: "mod dst r3", text: "mov %r0, 5\nmov %r3, 100\nmov %r1, 7\nmod %r3, %r1\nlsh %r3, 16\nadd %r0, %r3\nexit", want: uint64(5 + 2<<16)},
	{name: "div dst r3 src r0", text: "mov %r0, 7\nmov %r3, 100\ndiv %r3, %r0\nlsh %r3, 8\nadd %r0, %r3\nexit", want: uint64(7 + 14<<8)},
	{name: "mod dst r0 src r0", text: "mov %r0, 7\nmod %r0, %r0\nexit", want: uint64(0)},
	{name: "div dst r3 src r3", text: "mov %r3, 9\ndiv %r3, %r3\nmov %r0, %r3\nexit", want: uint64(1)},
	{name: "mod32 dst r3 src r0", text: "lddw %r3, 0x300000011\nmov %r0, 5\nmod32 %r3, %r0\nlsh %r0, 8\nadd %r0, %r3\nexit", want: uint64(2 + 5<<8)},
	{name: "div by zero reg", text: "mov %r0, 5\nmov %r1, 0\ndiv %r0, %r1\nexit", want: uint64(0)},
	{name: "mod by zero reg", text: "mov %r0, 5\nmov %r1, 0\nmod %r0, %r1\nexit", want: uint64(5)},
	{name: "mod32 by zero zero-extends", text: "lddw %r0, 0x100000005\nmov %r1, 0\nmod32 %r0, %r1\nexit", want: uint64(5)},
	{name: "div32 by zero upper bits of divisor", text: "mov %r0, 5\nlddw %r1, 0x100000000\ndiv32 %r0, %r1\nexit", want: uint64(0)},
	{name: "div by imm 0", text: "mov %r0, 5\ndiv %r0, 0\nexit", want: uint64(0)},
	{name: "mod by imm 0", text: "mov %r0, 5\nmod %r0, 0\nexit", want: uint64(5)},
	{name: "sdiv min/-1", text: "lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit", want: uint64(0x8000000000000000)},
	{name: "smod min/-1", text: "lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit", want: uint64(0)},
	{name: "sdiv32 min/-1", text: "mov32 %r0, 0x80000000\nmov %r1, -1\nsdiv32 %r0, %r1\nexit", want: uint64(0x80000000)},
	{name: "smod32 min/-1", text: "mov32 %r0, 0x80000000\nmov %r1, -1\nsmod32 %r0, %r1\nexit", want: uint64(0)},
	{name: "sdiv imm -1", text: "lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", want: uint64(0x8000000000000000)},
	{name: "sdiv32 imm -1 upper", text: "lddw %r0, 0x1fffffff6\nsdiv32 %r0, -1\nexit", want: uint64(10)},
	{name: "smod negative", text: "mov %r0, -7\nsmod %r0, 3\nexit", want: uint64(0xffffffffffffffff)},
	{name: "div unsigned by imm -1", text: "mov %r0, -1\ndiv %r0, -1\nexit", want: uint64(1)},
	{name: "div32 unsigned by imm -1", text: "mov %r0, -1\ndiv32 %r0, -1\nexit", want: uint64(1)},
	{name: "sdiv by zero", text: "mov %r0, -5\nmov %r2, 0\nsdiv %r0, %r2\nexit", want: uint64(0)},
	{name: "smod32 by zero", text: "lddw %r0, 0xfffffffffffffffb\nmov %r2, 0\nsmod32 %r0, %r2\nexit", want: uint64(0xfffffffb)},
	{name: "mul keeps rdx", text: "mov %r3, 11\nmov %r1, 3\nmov %r2, 5\nmul %r1, %r2\nmov %r0, %r3\nlsh %r0, 8\nadd %r0, %r1\nexit", want: uint64(11<<8 + 15)},
	{name: "mul32 zero-extends", text: "lddw %r0, 0xffffffff\nmul32 %r0, 0xffff\nexit", want: uint64(0xffff0001)},
	{name: "mul imm negative", text: "mov %r0, 3\nmul %r0, -2\nexit", want: uint64(0xfffffffffffffffa)},

	// Immediates are sign-extended to 64 bits, and 32-bit results
	// zero-extended.
	{name: "mov -1", text: "mov %r0, -1\nexit", want: uint64(0xffffffffffffffff)},
	{name: "mov32 -1", text: "mov32 %r0, -1\nexit", want: uint64(0xffffffff)},
	{name: "or 0x80000000", text: "mov %r0, 0\nor %r0, 0x80000000\nexit", want: uint64(0xffffffff80000000)},
	{name: "and imm keeps sign", text: "lddw %r0, 0x123456789abcdef0\nand %r0, -16\nexit", want: uint64(0x123456789abcdef0)},
	{name: "jgt unsigned vs -1", text: "mov %r0, 1\nlddw %r1, 0xfffffffffffffffe\njgt %r1, -1, +1\nmov %r0, 2\nexit", want: uint64(2)},
	{name: "jeq32 -1", text: "mov %r0, 1\nmov32 %r1, -1\njeq32 %r1, -1, +1\nmov %r0, 2\nexit", want: uint64(1)},
	{name: "jeq64 0xffffffff vs -1", text: "mov %r0, 1\nmov32 %r1, -1\njeq %r1, -1, +1\nmov %r0, 2\nexit", want: uint64(2)},
	{name: "jset imm sign", text: "mov %r0, 1\nlddw %r1, 0x8000000000000000\njset %r1, 0x80000000, +1\nmov %r0, 2\nexit", want: uint64(1)},
	{name: "jset32", text: "mov %r0, 1\nlddw %r1, 0x100000000\njset32 %r1, -1, +1\nmov %r0, 2\nexit", want: uint64(2)},
	{name: "jsgt32 vs jsgt", text: "mov %r0, 0\nmov32 %r1, 0x80000000\njsgt32 %r1, 0, +1\nadd %r0, 1\njsgt %r1, 0, +1\nadd %r0, 2\nexit", want: uint64(1)},
	{name: "stdw -1", text: "stdw [%r10-8], -1\nldxdw %r0, [%r10-8]\nexit", want: uint64(0xffffffffffffffff)},
	{name: "stw -1", text: "stdw [%r10-8], 0\nstw [%r10-8], -1\nldxdw %r0, [%r10-8]\nexit", want: uint64(0xffffffff)},
	{name: "sth sb", text: "stdw [%r10-8], 0\nsth [%r10-8], -2\nstb [%r10-6], 0x7f\nldxdw %r0, [%r10-8]\nexit", want: uint64(0x7ffffe)},
	{name: "add32 0 zero-extends", text: "mov %r0, -1\nadd32 %r0, 0\nexit", want: uint64(0xffffffff)},
	{name: "mov32 self zero-extends", text: "mov %r0, -1\nmov32 %r0, %r0\nexit", want: uint64(0xffffffff)},
	{name: "neg32", text: "mov %r0, 1\nneg32 %r0\nexit", want: uint64(0xffffffff)},
	{name: "neg", text: "mov %r0, 1\nneg %r0\nexit", want: uint64(0xffffffffffffffff)},
	{name: "le16 le32 le64", text: "lddw %r0, 0x1122334455667788\nmov %r1, %r0\nmov %r2, %r0\nle16 %r0\nle32 %r1\nle64 %r2\nadd %r0, %r1\nadd %r0, %r2\nexit", want: uint64(0x7788 + 0x55667788 + 0x1122334455667788)},
	{name: "be16", text: "lddw %r0, 0x1122334455667788\nbe16 %r0\nexit", want: uint64(0x8877)},
	{name: "be32", text: "lddw %r0, 0x1122334455667788\nbe32 %r0\nexit", want: uint64(0x88776655)},
	{name: "be64", text: "lddw %r0, 0x1122334455667788\nbe64 %r0\nexit", want: uint64(0x8877665544332211)},
	{name: "bswap16 on r1", text: "lddw %r1, 0x1122334455667788\nbswap16 %r1\nmov %r0, %r1\nexit", want: uint64(0x8877)},
	{name: "movsx8 sil", text: "mov %r2, 0x80\nmovsx864 %r0, %r2\nexit", want: uint64(0xffffffffffffff80)},
	{name: "movsx8 32", text: "mov %r1, 0xff\nmovsx832 %r0, %r1\nexit", want: uint64(0xffffffff)},
	{name: "movsx16 64", text: "mov %r1, 0x8000\nmovsx1664 %r0, %r1\nexit", want: uint64(0xffffffffffff8000)},
	{name: "movsx32 64", text: "mov32 %r1, 0x80000000\nmovsx3264 %r0, %r1\nexit", want: uint64(0xffffffff80000000)},
	{name: "ldxsb ldxsh ldxsw", text: "stdw [%r10-8], -2\nldxsb %r0, [%r10-8]\nldxsh %r1, [%r10-8]\nldxsw %r2, [%r10-8]\nadd %r0, %r1\nadd %r0, %r2\nexit", want: uint64(0xfffffffffffffffa)},
	{name: "stxb from sil dil bpl", text: "mov %r1, 0x41\nmov %r2, 0x42\nstxb [%r10-1], %r1\nstxb [%r10-2], %r2\nstxb [%r10-3], %r10\nldxh %r0, [%r10-2]\nexit", want: uint64(0x4142)},

	// lddw.
	{name: "lddw 0", text: "lddw %r0, 0\nexit", want: uint64(0)},
	{name: "lddw small", text: "lddw %r0, 0x7fffffff\nexit", want: uint64(0x7fffffff)},
	{name: "lddw u32", text: "lddw %r0, 0xffffffff\nexit", want: uint64(0xffffffff)},
	{name: "lddw negative", text: "lddw %r0, 0xffffffff80000000\nexit", want: uint64(0xffffffff80000000)},
	{name: "lddw full", text: "lddw %r9, 0x123456789abcdef0\nmov %r0, %r9\nexit", want: uint64(0x123456789abcdef0)},

	// Atomics of every width and operation.
	{name: "atomic add64", text: "stdw [%r10-8], 40\nmov %r1, 2\nlock add [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", want: uint64(42)},
	{name: "atomic add32 upper untouched", text: "stdw [%r10-8], -1\nmov %r1, 1\nlock add32 [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", want: uint64(0xffffffff00000000)},
	{name: "atomic or and xor", text: "stdw [%r10-8], 0xf0\nmov %r1, 0x0f\nlock or [%r10-8], %r1\nmov %r1, 0x3c\nlock and [%r10-8], %r1\nmov %r1, 0x101\nlock xor32 [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit", want: uint64(0x13d)},
	{name: "atomic fetch add", text: "stdw [%r10-8], 40\nmov %r1, 2\nlock fetch add [%r10-8], %r1\nldxdw %r0, [%r10-8]\nlsh %r0, 8\nadd %r0, %r1\nexit", want: uint64(42<<8 + 40)},
	{name: "atomic fetch add32 zero-extends", text: "stdw [%r10-8], -1\nlddw %r1, 0xffffffff00000001\nlock fetch add32 [%r10-8], %r1\nmov %r0, %r1\nexit", want: uint64(0xffffffff)},
	{name: "atomic fetch or r0", text: "stdw [%r10-8], 0x10\nmov %r0, 1\nlock fetch or [%r10-8], %r0\nldxdw %r1, [%r10-8]\nlsh %r1, 8\nadd %r0, %r1\nexit", want: uint64(0x11<<8 + 0x10)},
	{name: "atomic fetch and r3", text: "stdw [%r10-8], 0x1f\nmov %r3, 0x31\nmov %r0, 7\nlock fetch and [%r10-8], %r3\nldxdw %r1, [%r10-8]\nlsh %r1, 16\nlsh %r3, 8\nadd %r0, %r1\nadd %r0, %r3\nexit", want: uint64(0x11<<16 + 0x1f<<8 + 7)},
	{name: "atomic fetch xor32", text: "stdw [%r10-8], -1\nlddw %r2, 0xff0000000f\nlock fetch xor32 [%r10-8], %r2\nldxdw %r1, [%r10-8]\nmov %r0, %r2\nxor %r0, %r1\nexit", want: uint64(0xffffffff ^ 0xfffffffffffffff0)},
	{name: "atomic xchg", text: "stdw [%r10-8], 5\nmov %r1, 9\nlock xchg [%r10-8], %r1\nldxdw %r0, [%r10-8]\nlsh %r0, 8\nadd %r0, %r1\nexit", want: uint64(9<<8 + 5)},
	{name: "atomic xchg32", text: "stdw [%r10-8], -1\nlddw %r1, 0x700000009\nlock xchg32 [%r10-8], %r1\nldxdw %r0, [%r10-8]\nadd %r0, %r1\nexit", want: uint64(8)},
	{name: "cmpxchg success", text: "stdw [%r10-8], 5\nmov %r0, 5\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nldxdw %r2, [%r10-8]\nlsh %r2, 8\nadd %r0, %r2\nexit", want: uint64(9<<8 + 5)},
	{name: "cmpxchg failure", text: "stdw [%r10-8], 5\nmov %r0, 6\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nldxdw %r2, [%r10-8]\nlsh %r2, 8\nadd %r0, %r2\nexit", want: uint64(5<<8 + 5)},
	{name: "cmpxchg32 success zero-extends r0", text: "stdw [%r10-8], 5\nlddw %r0, 0xffffffff00000005\nmov %r1, 9\nlock cmpxchg32 [%r10-8], %r1\nexit", want: uint64(5)},
	{name: "cmpxchg32 failure", text: "stdw [%r10-8], 5\nlddw %r0, 0xffffffff00000006\nmov %r1, 9\nlock cmpxchg32 [%r10-8], %r1\nldxdw %r1, [%r10-8]\nlsh %r1, 32\nadd %r0, %r1\nexit", want: uint64(5<<32 + 5)},
	{name: "cmpxchg src r0", text: "stdw [%r10-8], 5\nmov %r0, 5\nlock cmpxchg [%r10-8], %r0\nexit", want: uint64(5)},
	// Atomic fetches into r10 are refused at load (see vm's validator tests).
	{name: "atomic on mem", mem: mem16(), text: "mov %r2, 3\nlock fetch add [%r1+8], %r2\nldxdw %r0, [%r1+8]\nsub %r0, %r2\nexit", want: uint64(3)},
	{name: "atomic misaligned", mem: mem16(), text: "mov %r2, 3\nlock add [%r1+4], %r2\nexit", want: "misaligned"},
	{name: "atomic32 misaligned stack", text: "mov %r2, 3\nlock add32 [%r10-6], %r2\nexit", want: "misaligned"},
	{name: "atomic out of bounds", mem: mem16(), text: "mov %r2, 3\nlock add [%r1+16], %r2\nexit", want: "WRITE"},

	// Memory checks.
	{name: "read past mem", mem: mem16(), text: "ldxw %r0, [%r1+13]\nexit", want: "READ"},
	{name: "read last byte", mem: mem16(), text: "ldxb %r0, [%r1+15]\nexit", want: uint64(0x10)},
	{name: "read before mem", mem: mem16(), text: "ldxb %r0, [%r1-1]\nexit", want: "READ"},
	{name: "write past mem", mem: mem16(), text: "stw [%r1+14], 1\nexit", want: "WRITE"},
	{name: "write whole mem", mem: mem16(), text: "stdw [%r1+0], -1\nstdw [%r1+8], 7\nldxdw %r0, [%r1+4]\nexit", want: uint64(0x7ffffffff)},
	{name: "read above stack", text: "ldxb %r0, [%r10+0]\nexit", want: "READ"},
	{name: "read stack base", text: "ldxdw %r0, [%r10-4096]\nexit", want: uint64(0)},
	{name: "read below stack", text: "ldxdw %r0, [%r10-4097]\nexit", want: "READ"},
	{name: "stack through copy", text: "mov %r1, %r10\nstdw [%r1-16], 9\nldxdw %r0, [%r10-16]\nexit", want: uint64(9)},
	{name: "null", text: "mov %r1, 0\nldxb %r0, [%r1+0]\nexit", want: "READ"},
	{name: "wrap around", text: "mov %r1, -1\nldxdw %r0, [%r1+0]\nexit", want: "READ"},
	{name: "wrap around stack base", text: "mov %r1, %r10\nsub %r1, 4097\nldxdw %r0, [%r1+0]\nexit", want: "READ"},
	{name: "no mem", text: "ldxb %r0, [%r1+0]\nexit", want: "READ"},
	{name: "fault mid block count", mem: mem16(), text: "mov %r0, 1\nmov %r2, 2\nldxdw %r3, [%r1+12]\nmov %r4, 4\nmov %r5, 5\nexit", want: "READ"},

	// Helpers.
	{name: "helper args and kept regs", text: "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\nmov %r6, 6\nmov %r9, 9\ncall 100\nadd %r0, %r1\nadd %r0, %r2\nadd %r0, %r3\nadd %r0, %r4\nadd %r0, %r5\nadd %r0, %r6\nadd %r0, %r9\nexit"},
	{name: "helper error", text: "mov %r1, 7\ncall 101\nexit", want: "helper refused"},
	{name: "callx valid", text: "mov %r1, 5\nmov %r8, 101\ncall %r8\nexit", want: uint64(5)},
	{name: "callx garbage", text: "lddw %r3, 0xdeadbeefcafe\ncall %r3\nexit", want: "unknown helper"},
	{name: "callx negative", text: "mov %r3, -1\ncall %r3\nexit", want: "unknown helper"},
	{name: "callx zero", text: "mov %r3, 0\ncall %r3\nexit", want: "unknown helper"},
	{name: "callx unregistered", text: "mov %r3, 99\ncall %r3\nexit", want: "unknown helper"},
	{name: "dynamic region", text: "call 102\nmov %r6, %r0\nstdw [%r6+56], 77\nldxdw %r0, [%r6+56]\nexit", want: uint64(77)},
	{name: "dynamic region bounds", text: "call 102\nstdw [%r0+60], 77\nexit", want: "WRITE"},
	{name: "helper in a loop", text: "mov %r6, 0\nloop:\ncall 104\nadd %r6, 1\njlt %r6, 20, loop\nexit", want: uint64(20)},

	// Tail calls: the target starts at its first instruction in the
	// current frame with the registers as they are; the count and the
	// budget carry over. Made in a local function, it replaces the
	// function: its exit returns to the function's caller.
	{name: "tail call", text: "mov %r1, 9\nmov %r0, 1\ncall 103\nmov %r0, 77\nexit"},
	{name: "tail call from a local call", text: "call local f\nexit\nf:\nmov %r1, 4\ncall 103\nexit"},
	{name: "tail call from a local call returns to its caller", text: "mov %r6, 3\ncall local f\nmul %r0, 1000\nadd %r0, %r6\nexit\nf:\nmov %r1, 4\ncall 103\nexit"},
	{name: "tail call chain from a local call", text: "call local f\nadd %r0, 1000\nexit\nf:\nmov %r6, 0\ncall 105\nmov %r0, 99\nexit", want: uint64(1033)},
	{name: "tail call chain to the limit", text: "mov %r6, 0\ncall 105\nmov %r0, 99\nexit", want: uint64(33)},
	{name: "tail call chain budget", text: "mov %r6, 0\ncall 105\nexit", want: "budget", budget: 50},

	// Budget.
	{name: "budget ja", text: "ja -1\nexit", want: "budget", budget: 1000},
	{name: "budget loop", text: "mov %r0, 0\nloop:\nadd %r0, 1\nmov %r1, 2\njgt %r0, 0, loop\nexit", want: "budget", budget: 10000},
	{name: "budget exact", text: "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit", want: uint64(10), budget: 22},
	{name: "budget exact minus one", text: "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit", want: "budget", budget: 18},
	{name: "budget at call", text: "mov %r0, 0\nmov %r1, 0\nmov %r2, 0\ncall 100\nexit", want: "budget", budget: 3},
	// A call costs vm.CallCost: a budget below it becomes 0, it does not
	// wrap around (the JIT's charge once did, and ran on unbounded).
	{name: "budget below the call cost", text: "mov %r6, 0\nloop:\ncall 104\nadd %r6, 1\njlt %r6, 1000000, loop\nexit", want: "budget", budget: 40},
	{name: "budget ja32", text: "mov %r0, 0\nloop:\nadd %r0, 1\nja32 loop\nexit", want: "budget", budget: 500},
	{name: "default budget", text: "loop:\nja loop\nexit", want: "budget"},
}

func TestPitfalls(t *testing.T) {
	skipIfUnsupported(t)
	d := newDiffer()
	for _, tc := range append(pitfalls, generatedPitfalls()...) {
		t.Run(tc.name, func(t *testing.T) {
			p := loadText(t, tc.text)
			in, got, diff := d.compare(p, tc.mem, tc.budget)
			if diff != "" {
				t.Fatalf("engines differ: %s", diff)
			}
			switch want := tc.want.(type) {
			case uint64:
				if got.Err != "" || got.R0 != want {
					t.Errorf("got %v, want r0=%#x", got, want)
				}
			case string:
				if !strings.Contains(strings.ToUpper(got.Err), strings.ToUpper(want)) {
					t.Errorf("got %v, want a fault containing %q", got, want)
				}
			}
			_ = in
		})
	}
}

// generatedPitfalls builds the cases that need long programs.
func generatedPitfalls() []pitfall {
	var out []pitfall
	// A forward jump over 100 instructions and a backward one: rel8 no
	// longer reaches.
	var b strings.Builder
	b.WriteString("mov %r0, 1\nmov %r1, 0\njeq %r1, 0, far\n")
	for k := 0; k < 100; k++ {
		b.WriteString("lddw %r0, 0x123456789\n")
	}
	b.WriteString("far:\nadd %r0, 1\nexit\n")
	out = append(out, pitfall{name: "forward jump past rel8", text: b.String(), want: uint64(2)})

	b.Reset()
	b.WriteString("mov %r0, 0\nmov %r6, 0\nloop:\n")
	for k := 0; k < 60; k++ {
		fmt.Fprintf(&b, "add %%r0, %d\n", k)
	}
	b.WriteString("add %r6, 1\njlt %r6, 5, loop\nexit\n")
	out = append(out, pitfall{name: "backward jump past rel8", text: b.String(), want: uint64(5 * 59 * 60 / 2)})

	// Displacements right around the rel8 limit, both directions.
	for n := 10; n <= 40; n++ {
		b.Reset()
		b.WriteString("mov %r0, 0\nmov %r6, 0\nja over\nback:\n")
		for k := 0; k < n; k++ {
			b.WriteString("add %r0, 1\n")
		}
		b.WriteString("exit\nover:\nadd %r6, 1\n")
		for k := 0; k < n; k++ {
			b.WriteString("add %r0, 2\n")
		}
		b.WriteString("jlt %r6, 1000, back\nexit\n")
		out = append(out, pitfall{name: fmt.Sprintf("jumps over %d insns", n), text: b.String(), want: uint64(3 * n)})
	}

	// Local calls 8 frames deep, each writing its own frame and reading
	// its caller's through a pointer.
	b.Reset()
	b.WriteString("stdw [%r10-8], 1\nmov %r1, %r10\nmov %r6, 100\ncall local f1\nadd %r0, %r6\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n")
	for k := 1; k <= 7; k++ {
		fmt.Fprintf(&b, "f%d:\nldxdw %%r2, [%%r1-8]\nadd %%r2, 1\nstxdw [%%r10-8], %%r2\nstxdw [%%r1-16], %%r2\nmov %%r1, %%r10\nmov %%r6, %d\n", k, k)
		if k < 7 {
			fmt.Fprintf(&b, "call local f%d\nadd %%r0, %%r6\nexit\n", k+1)
		} else {
			b.WriteString("mov %r0, %r10\nexit\n")
		}
	}
	out = append(out, pitfall{name: "local calls 8 deep", text: b.String()})

	// Budget exhaustion inside a loop of a called function.
	out = append(out, pitfall{name: "budget in a callee loop", budget: 5000, want: "budget",
		text: "mov %r6, 1\ncall local f\nexit\nf:\nmov %r0, 0\nloop:\nadd %r0, 1\njne %r0, 0, loop\nexit\n"})
	return out
}
