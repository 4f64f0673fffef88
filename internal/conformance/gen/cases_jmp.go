package main

import (
	"fmt"
	"strings"
)

// Jump cases: each file tries one conditional jump on up to 8 operand
// pairs and returns a mask with bit k set when the jump was taken for
// pair k, so one file covers the boundaries of one opcode.

var (
	// Pairs for register operands of 64-bit jumps: equal, around zero,
	// around the signed and unsigned extremes, and values that differ
	// only in their upper half.
	jmp64RegPairs = []pair{
		{"", 0, 0},
		{"", 1, 0},
		{"", neg1, 0},
		{"", 0, neg1},
		{"", intMin64, intMax64},
		{"", intMax64, intMin64},
		{"", 0x100000000, 0},
		{"", 0xffffffff, 0x100000000},
	}
	// Pairs for immediates (sign-extended to 64 bits).
	jmp64ImmPairs = []pair{
		{"", 5, 5},
		{"", 6, 5},
		{"", 0, neg1},
		{"", neg1, neg1},
		{"", 0xffffffff, neg1},
		{"", intMin64, 0x7fffffff},
		{"", 0x80000000, 0xffffffff80000000},
		{"", 0x100000005, 5},
	}
	// Pairs for 32-bit jumps: the upper halves differ from the lower ones
	// to show that only the lower 32 bits are compared.
	jmp32RegPairs = []pair{
		{"", 0x100000000, 0},
		{"", 0xffffffff00000005, 5},
		{"", 0x80000000, 0x7fffffff},
		{"", 0x7fffffff, 0x80000000},
		{"", 0xffffffff, 0},
		{"", 0x100000000, 0xffffffff},
		{"", 0x1234567800000001, 0x8765432100000002},
		{"", 0xffffffff80000000, 0x80000000},
	}
	jmp32ImmPairs = []pair{
		{"", 0x100000005, 5},
		{"", 0x80000000, 0x7fffffff},
		{"", 0x7fffffff, 0x80000000},
		{"", 0xffffffff, 0},
		{"", 0, 0xffffffff},
		{"", 0xffffffff00000006, 5},
		{"", 0x80000000, 0x80000000},
		{"", 0x1ffffffff, 0xfffffffe},
	}
)

func jumpCase(op jmpOp, is32, imm bool) *spec {
	pairs := jmp64RegPairs
	switch {
	case is32 && imm:
		pairs = jmp32ImmPairs
	case is32:
		pairs = jmp32RegPairs
	case imm:
		pairs = jmp64ImmPairs
	}
	form, cls := "reg", "jmp"
	if imm {
		form = "imm"
	}
	if is32 {
		cls = "jmp32"
	}
	mn := string(op) + suffix32(is32)
	var b strings.Builder
	var what []string
	want := uint64(0)
	b.WriteString("mov %r0, 0\n")
	for k, p := range pairs {
		operand := "%r2"
		fmt.Fprintf(&b, "lddw %%r1, %#x\n", p.dst)
		if imm {
			operand = fmt.Sprint(int32(uint32(p.src)))
		} else {
			fmt.Fprintf(&b, "lddw %%r2, %#x\n", p.src)
		}
		fmt.Fprintf(&b, "%s %%r1, %s, +1\nja +1\nor %%r0, %d\n", mn, operand, 1<<k)
		t := taken(op, is32, p.dst, p.src)
		if t {
			want |= 1 << k
		}
		if imm {
			what = append(what, fmt.Sprintf("bit %d: %#x %s %d: %v", k, p.dst, op, int32(uint32(p.src)), t))
		} else {
			what = append(what, fmt.Sprintf("bit %d: %#x %s %#x: %v", k, p.dst, op, p.src, t))
		}
	}
	b.WriteString("exit")
	return &spec{
		name: fmt.Sprintf("%s-%s-%s", cls, op, form),
		what: append([]string{fmt.Sprintf("%s, %s operand; r0 has bit k set if the jump is taken for pair k:", mn, form)}, what...),
		asm:  b.String(),
		isa:  u64(want),
	}
}

func jumpSpecs() []*spec {
	var out []*spec
	for _, is32 := range []bool{false, true} {
		for _, op := range jmpOps {
			for _, imm := range []bool{false, true} {
				out = append(out, jumpCase(op, is32, imm))
			}
		}
	}
	out = append(out,
		&spec{
			name: "ja-forward-backward",
			what: []string{"ja forward over code, then backward into a block that exits"},
			asm: `
				mov %r0, 1
				ja fwd
			back:
				add %r0, 10
				exit
			fwd:
				add %r0, 100
				ja back`,
			isa: u64(111),
		},
		&spec{
			name: "ja32-forward-backward",
			what: []string{"ja32 (32-bit offset in imm) forward, then backward"},
			asm: `
				mov %r0, 1
				ja32 fwd
			back:
				add %r0, 10
				exit
			fwd:
				add %r0, 100
				ja32 back`,
			isa: u64(111),
		},
		&spec{
			name: "ja32-beyond-16-bits",
			what: []string{
				"ja32 forward and backward over 32800 slots, more than ja's 16-bit offset reaches;",
				"the padding is reachable only through a jump that is not taken",
			},
			asm: `
				mov %r0, 1
				jne %r0, 1, pad
				ja32 fwd
			back:
				add %r0, 10
				exit
			pad:
			` + strings.Repeat("lddw %r0, 0\n", 16400) + `
			fwd:
				add %r0, 100
				ja32 back`,
			isa: u64(111),
		},
		&spec{
			name: "ja-offset-zero",
			what: []string{"ja +0 and ja32 +0 fall through to the next instruction"},
			asm:  "mov %r0, 3\nja +0\nja32 +0\nadd %r0, 4\nexit",
			isa:  u64(7),
		},
		&spec{
			name: "jump-long-forward",
			what: []string{"a conditional jump over 300 instructions (beyond any short encoding a JIT may use)"},
			asm:  "mov %r0, 1\njeq %r0, 1, +300\n" + strings.Repeat("add %r0, 2\n", 300) + "add %r0, 40\nexit",
			isa:  u64(41),
		},
		&spec{
			name: "jump-long-backward",
			what: []string{"a loop whose backward jump spans 200 instructions, run 3 times"},
			asm:  "mov %r0, 0\nmov %r1, 0\nloop:\n" + strings.Repeat("add %r0, 1\n", 200) + "add %r1, 1\njlt %r1, 3, loop\nexit",
			isa:  u64(600),
		},
		&spec{
			name: "loop-bounded",
			what: []string{"a counted loop of 1000 iterations summing its counter"},
			asm:  "mov %r0, 0\nmov %r1, 0\nloop:\nadd %r0, %r1\nadd %r1, 1\njlt %r1, 1000, loop\nexit",
			isa:  u64(999 * 1000 / 2),
		},
		&spec{
			name: "exit-in-middle",
			what: []string{"exit before the end of the program ends the run"},
			asm:  "mov %r0, 5\njeq %r0, 6, +1\nexit\nmov %r0, 6\nexit",
			isa:  u64(5),
		},
	)
	return out
}
