// Package testprogs holds the programs the engines are benchmarked and
// compared on: the same text runs on the interpreter, the JIT and the
// kernel, so that figures are comparable.
package testprogs

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/govswitch/vswitch/asm"
)

// ALUBlock is a straight line of about 100 mixed ALU instructions that
// leaves its result in r0. Executed: ALUBlockInsns instructions.
func ALUBlock() []asm.Instruction {
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("mov %r0, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\n")
	ops := []string{"add", "sub", "mul", "xor", "or", "and", "lsh", "rsh", "arsh"}
	for n := 0; n < 95; n++ {
		op := ops[rng.IntN(len(ops))]
		if rng.IntN(3) == 0 {
			op += "32"
		}
		d := []int{0, 2, 3, 4, 5}[rng.IntN(5)]
		switch {
		case strings.HasPrefix(op, "lsh") || strings.HasPrefix(op, "rsh") || strings.HasPrefix(op, "arsh"):
			fmt.Fprintf(&b, "%s %%r%d, %d\n", op, d, rng.IntN(31))
		case rng.IntN(2) == 0:
			fmt.Fprintf(&b, "%s %%r%d, %d\n", op, d, rng.Int32N(1<<20)-1<<19)
		default:
			fmt.Fprintf(&b, "%s %%r%d, %%r%d\n", op, d, []int{0, 2, 3, 4, 5}[rng.IntN(5)])
		}
	}
	b.WriteString("exit\n")
	return asm.MustAssemble(b.String())
}

// ALUBlockInsns is the number of instructions one run of ALUBlock executes.
const ALUBlockInsns = 101

// Loop is a counted loop of 1000 iterations of 6 instructions.
func Loop() []asm.Instruction {
	return asm.MustAssemble(`
		mov %r0, 0
		mov %r1, 0
		mov %r2, 0x5555
	loop:
		add %r0, %r1
		lsh %r0, 1
		xor %r0, %r2
		rsh %r0, 1
		add %r1, 1
		jlt %r1, 1000, loop
		exit`)
}

// LoopInsns is the number of instructions one run of Loop executes.
const LoopInsns = 3 + 6*1000 + 1

// Ctx selects the layout of the context a packet program reads.
type Ctx int

const (
	// CtxVswitch is struct vswitch_md: 64-bit data and data_end at 0 and 8.
	CtxVswitch Ctx = iota + 1
	// CtxXDP is the kernel's struct xdp_md: 32-bit data and data_end at 0 and 4.
	CtxXDP
)

// ParseIPv4 parses Ethernet and IPv4 headers and returns the last two bits
// of the destination address as a port (255 for anything that is not a
// well-formed IPv4 frame).
func ParseIPv4(ctx Ctx) []asm.Instruction {
	load := "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\n"
	if ctx == CtxXDP {
		load = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n"
	}
	return asm.MustAssemble(load + `
		mov %r0, 255
		mov %r4, %r2
		add %r4, 34
		jgt %r4, %r3, out
		ldxh %r5, [%r2+12]
		jne %r5, 0x0008, out
		ldxb %r5, [%r2+14]
		mov %r6, %r5
		rsh %r6, 4
		jne %r6, 4, out
		and %r5, 15
		jlt %r5, 5, out
		ldxb %r6, [%r2+23]
		jeq %r6, 1, out
		ldxh %r6, [%r2+20]
		and %r6, 0xff3f
		jne %r6, 0, out
		ldxw %r6, [%r2+30]
		be32 %r6
		mov %r0, %r6
		and %r0, 3
	out:
		exit`)
}

// ParseIPv4Insns is the number of instructions a run of ParseIPv4 executes
// on Frame64.
const ParseIPv4Insns = 24

// Frame64 returns a 64-byte Ethernet/IPv4/UDP frame to 10.0.0.6 that
// ParseIPv4 maps to port 2.
func Frame64() []byte {
	f := make([]byte, 64)
	copy(f[0:], []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[14:]
	ip[0] = 0x45
	ip[2], ip[3] = 0, 50
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 6})
	return f
}
