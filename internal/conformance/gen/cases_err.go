package main

import (
	"fmt"
	"strings"

	"github.com/govswitch/vswitch/asm"
)

// Error cases. The expected error is vswitch's (ARCHITECTURE.md, "Safety
// of untrusted programs"): what can be decided before running is refused
// at load time with the instruction and the reason; a run that breaks a
// rule stops with a typed fault naming the instruction. The kernel must
// refuse every one of these programs too; its reason is recorded.

const (
	loadRule  = "refused at load time (the validator's rule)"
	faultRule = "a run-time fault: the program stops, the process does not"
)

func invalid(pc int, reason string) string {
	return fmt.Sprintf("invalid program: at insn %d: %s", pc, reason)
}

func fault(pc int, kind string) string {
	return fmt.Sprintf("fault at insn %d: %s", pc, kind)
}

func exit() asm.Instruction { return asm.Instruction{Op: asm.OpExit} }

func validationSpecs() []*spec {
	type c struct {
		name, what string
		text       string            // assembly, or
		raw        []asm.Instruction // raw slots
		err        string
	}
	cases := []c{
		{"err-unknown-opcode", "opcode 0xff is not an instruction",
			"", []asm.Instruction{{Op: 0xff}, exit()}, invalid(0, "unknown opcode 0xff")},
		{"err-unknown-jump-opcode", "jump operation 0xf0 does not exist",
			"", []asm.Instruction{{Op: 0xb7}, {Op: 0xf5}, exit()}, invalid(1, "unknown opcode 0xf5")},
		{"err-ldxsdw", "there is no sign-extending 8-byte load",
			"", []asm.Instruction{{Op: 0x99, Dst: 0, Src: 10, Off: -8}, exit()}, invalid(0, "unknown opcode 0x99")},
		{"err-legacy-packet-load", "BPF_ABS loads (0x20, ldabsw) are not supported",
			"", []asm.Instruction{{Op: 0x20}, exit()}, invalid(0, "legacy packet loads (BPF_ABS/BPF_IND) are not supported: read the frame through ctx->data")},
		{"err-jump-out-of-range", "a jump past the end of the program",
			"ja +5\nexit", nil, invalid(0, "jump to 6 is out of range (program has 2 slots)")},
		{"err-jump-before-start", "a jump before the first instruction",
			"mov %r0, 0\nja -3\nexit", nil, invalid(1, "jump to -1 is out of range (program has 3 slots)")},
		{"err-jump-into-lddw", "a jump to the second slot of lddw",
			"mov %r0, 0\njeq %r0, 0, +1\nlddw %r0, 1\nexit", nil, invalid(1, "jump to 3 lands in the middle of lddw")},
		{"err-call-local-out-of-range", "a local call past the end of the program",
			"call local +5\nexit", nil, invalid(0, "jump to 6 is out of range (program has 2 slots)")},
		{"err-write-r10", "r10, the frame pointer, is read-only",
			"mov %r10, 0\nexit", nil, invalid(0, "write to the read-only frame pointer r10")},
		{"err-load-into-r10", "a load may not write r10",
			"ldxdw %r10, [%r10-8]\nexit", nil, invalid(0, "write to the read-only frame pointer r10")},
		{"err-fetch-into-r10", "an atomic fetch writes its source register, here r10",
			"lock fetch add [%r10-8], %r10\nexit", nil, invalid(0, "write to the read-only frame pointer r10 (the fetch result goes to the source register)")},
		{"err-fall-through", "the last instruction is not exit or ja",
			"mov %r0, 0", nil, invalid(0, "execution can fall through past the end of the program (last instruction must be exit or ja)")},
		{"err-function-fall-through", "a function whose last instruction is not exit or ja",
			"call local f\nexit\nf:\nmov %r0, 1", nil, invalid(2, "execution can fall through past the end of the function at 2 (last instruction must be exit or ja)")},
		{"err-lddw-truncated", "lddw without its second slot",
			"", []asm.Instruction{{Op: asm.OpLDDW, Imm: 1}}, invalid(0, "lddw is missing its second slot")},
		{"err-lddw-second-slot", "the second slot of lddw with an opcode",
			"", []asm.Instruction{{Op: asm.OpLDDW, Imm: 1}, {Op: 0x07}, exit()}, invalid(1, "second slot of lddw must have only an immediate")},
		{"err-bad-dst-register", "register r11 does not exist",
			"", []asm.Instruction{{Op: 0xb7, Dst: 11}, exit()}, invalid(0, "bad destination register r11")},
		{"err-bad-src-register", "register r12 does not exist",
			"", []asm.Instruction{{Op: 0xbf, Src: 12}, exit()}, invalid(0, "bad source register r12")},
		{"err-recursion", "a function that calls itself",
			"call local f\nexit\nf:\ncall local f\nexit", nil, invalid(2, "recursive call (the call graph must be acyclic)")},
		{"err-unknown-helper", "a call to a helper id that does not exist",
			"call 9999\nexit", nil, invalid(0, "unknown helper 9999")},
		{"err-kfunc", "a call to a kernel function (src 2)",
			"call runtime 5\nexit", nil, invalid(0, "call to kernel function 5: kfuncs need a kernel")},
		{"err-call-unknown-source", "a call with source 3",
			"", []asm.Instruction{{Op: asm.OpCall, Src: 3, Imm: 1}, exit()}, invalid(0, "call with unknown source 3")},
		{"err-lddw-btf-id", "lddw of a BTF id (src 3)",
			"", []asm.Instruction{{Op: asm.OpLDDW, Src: 3, Imm: 1}, {}, exit()}, invalid(0, "lddw with pseudo source 3 needs a kernel (BTF ids, kfuncs or map indexes are not supported)")},
		{"err-byte-swap-width", "a byte swap of 8 bits",
			"", []asm.Instruction{{Op: asm.ClassALU64 | asm.ALUEnd, Imm: 8}, exit()}, invalid(0, "byte swap width must be 16, 32 or 64, not 8")},
		{"err-atomic-byte", "an atomic operation on one byte",
			"", []asm.Instruction{{Op: asm.ClassSTX | asm.ModeATOMIC | asm.SizeB, Dst: 10, Src: 1, Off: -8}, exit()}, invalid(0, "atomic operations are 32 or 64 bits wide")},
		{"err-atomic-unknown-operation", "atomic operation 0x2 does not exist",
			"", []asm.Instruction{{Op: asm.ClassSTX | asm.ModeATOMIC | asm.SizeDW, Dst: 10, Src: 1, Off: -8, Imm: 2}, exit()}, invalid(0, "unknown atomic operation 0x2")},
		{"err-exit-reserved", "exit with a non-zero immediate",
			"", []asm.Instruction{{Op: asm.OpExit, Imm: 1}}, invalid(0, "reserved fields of exit must be zero")},
		{"err-ja32-offset", "ja32 with a non-zero offset field",
			"", []asm.Instruction{{Op: asm.OpJA32, Off: 1}, exit()}, invalid(0, "reserved fields of ja32 must be zero")},
		{"err-neg-register-form", "neg has no register form (0x8f)",
			"", []asm.Instruction{{Op: asm.ClassALU64 | asm.ALUNeg | asm.SrcX}, exit()}, invalid(0, "reserved fields of neg must be zero")},
		{"err-movsx32-from-32", "movsx with offset 32 exists only in the 64-bit form",
			"", []asm.Instruction{{Op: asm.ClassALU | asm.ALUMov | asm.SrcX, Src: 1, Off: 32}, exit()}, invalid(0, "offset must be zero (or select a signed or sign-extending form)")},
		{"err-div-offset-2", "division with offset 2 (only 0, unsigned, and 1, signed, exist)",
			"", []asm.Instruction{{Op: asm.ClassALU64 | asm.ALUDiv, Off: 2, Imm: 1}, exit()}, invalid(0, "offset must be zero (or select a signed or sign-extending form)")},
		{"err-alu-register-with-immediate", "add with a register operand and a non-zero immediate",
			"", []asm.Instruction{{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcX, Src: 1, Imm: 1}, exit()}, invalid(0, "immediate must be zero with a register operand")},
		{"err-alu-immediate-with-source", "add with an immediate operand and a source register",
			"", []asm.Instruction{{Op: asm.ClassALU64 | asm.ALUAdd, Src: 1, Imm: 1}, exit()}, invalid(0, "source register must be zero with an immediate operand")},
		{"err-jump-register-with-immediate", "jeq with a register operand and a non-zero immediate",
			"", []asm.Instruction{{Op: 0xb7}, {Op: 0xb7, Dst: 1}, {Op: asm.ClassJMP | asm.JmpJEQ | asm.SrcX, Src: 1, Imm: 1}, exit()}, invalid(2, "immediate must be zero with a register operand")},
		{"err-load-immediate", "ldxdw with a non-zero immediate",
			"", []asm.Instruction{{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeDW, Src: 10, Off: -8, Imm: 1}, exit()}, invalid(0, "immediate of a load must be zero")},
		{"err-store-immediate-source", "stdw (immediate store) with a source register",
			"", []asm.Instruction{{Op: asm.ClassST | asm.ModeMEM | asm.SizeDW, Dst: 10, Src: 1, Off: -8}, exit()}, invalid(0, "source register of an immediate store must be zero")},
		{"err-store-register-immediate", "stxdw with a non-zero immediate",
			"", []asm.Instruction{{Op: asm.ClassSTX | asm.ModeMEM | asm.SizeDW, Dst: 10, Src: 1, Off: -8, Imm: 1}, exit()}, invalid(0, "immediate of a store must be zero")},
	}
	var out []*spec
	for _, c := range cases {
		out = append(out, &spec{
			name:   c.name,
			what:   []string{c.what},
			asm:    c.text,
			raw:    c.raw,
			err:    c.err,
			errWhy: loadRule,
			direct: true,
		})
	}
	// A chain of 9 frames: one more than the 8 the ISA allows.
	var b strings.Builder
	b.WriteString("call local f1\nexit\n")
	for k := 1; k <= 8; k++ {
		fmt.Fprintf(&b, "f%d:\n", k)
		if k < 8 {
			fmt.Fprintf(&b, "call local f%d\n", k+1)
		} else {
			b.WriteString("mov %r0, 0\n")
		}
		b.WriteString("exit\n")
	}
	out = append(out,
		&spec{
			name:   "err-call-depth-9",
			what:   []string{"a chain of 9 frames, one more than allowed"},
			asm:    b.String(),
			err:    invalid(0, "call chain of 9 frames from here, more than 8"),
			errWhy: loadRule,
			direct: true,
		},
		&spec{
			name:     "err-map-missing",
			what:     []string{"lddw of map 5; the harness has 2 maps"},
			raw:      []asm.Instruction{{Op: asm.OpLDDW, Dst: 1, Src: asm.PseudoMapFD, Imm: 5}, {}, exit()},
			err:      invalid(0, "reference to map 5, but the program has 2 maps"),
			errWhy:   loadRule,
			noKernel: "the kernel takes map file descriptors: there is no map 5 to give it",
		},
	)
	return out
}

func faultSpecs() []*spec {
	mk := func(name, what, text string, mem []byte, err string) *spec {
		return &spec{name: name, what: []string{what}, asm: text, mem: mem, err: err, errWhy: faultRule}
	}
	return []*spec{
		mk("fault-read-past-end", "an 8-byte load that straddles the end of the memory",
			"ldxdw %r0, [%r1+12]\nexit", memBytes, fault(0, "out-of-bounds read")),
		mk("fault-read-before-start", "a load one byte before the memory",
			"ldxb %r0, [%r1-1]\nexit", memBytes, fault(0, "out-of-bounds read")),
		mk("fault-read-null", "a load through r1 = 0 (no memory)",
			"mov %r0, 1\nldxb %r0, [%r1+0]\nexit", nil, fault(1, "out-of-bounds read")),
		mk("fault-read-below-stack", "a load below the lowest stack frame (8 frames of 512 bytes)",
			"ldxdw %r0, [%r10-4104]\nexit", nil, fault(0, "out-of-bounds read")),
		mk("fault-write-past-end", "a one-byte store just past the memory",
			"stb [%r1+16], 1\nmov %r0, 0\nexit", memBytes, fault(0, "out-of-bounds write")),
		mk("fault-write-above-stack", "a store at r10, above the stack",
			"mov %r0, 0\nstdw [%r10+0], 1\nexit", nil, fault(1, "out-of-bounds write")),
		mk("fault-atomic-past-end", "an atomic add that straddles the end of the memory",
			"mov %r2, 1\nlock add [%r1+12], %r2\nmov %r0, 0\nexit", memBytes, fault(1, "out-of-bounds write")),
		mk("fault-atomic-misaligned", "an 8-byte atomic add at an address that is not a multiple of 8",
			"mov %r2, 1\nlock add [%r1+1], %r2\nmov %r0, 0\nexit", memBytes, fault(1, "misaligned atomic access")),
		mk("fault-atomic32-misaligned", "a 4-byte atomic fetch-add at an address that is not a multiple of 4",
			"mov %r2, 1\nlock fetch add32 [%r1+2], %r2\nmov %r0, 0\nexit", memBytes, fault(1, "misaligned atomic access")),
		{
			name:   "fault-infinite-loop",
			what:   []string{"a loop that never ends runs out of the instruction budget"},
			asm:    "mov %r0, 0\nloop:\nadd %r0, 1\nja loop",
			err:    fault(2, "instruction budget exhausted"),
			errWhy: faultRule + " (each run has an instruction budget)",
			direct: true,
		},
		{
			name:     "fault-callx-unknown-helper",
			what:     []string{"callx to a helper id that does not exist"},
			asm:      "mov %r2, 9999\ncall %r2\nexit",
			err:      "fault at insn 1: call to unknown helper (helper 9999)",
			errWhy:   faultRule,
			noKernel: "Linux has no callx instruction",
		},
		{
			name:   "fault-tail-call-not-a-map",
			what:   []string{"bpf_tail_call with r2 = 0, not a map"},
			asm:    "mov %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit",
			err:    "fault at insn 2: helper failed (helper 12: not a map handle of this program)",
			errWhy: faultRule + " (a helper refuses arguments the kernel's verifier would refuse)",
			direct: true,
		},
		{
			name:   "fault-tail-call-wrong-map",
			what:   []string{"bpf_tail_call on map[1], an array, not a program array"},
			raw:    asm.MustAssemble("lddw %r2, map[1]\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit"),
			err:    "fault at insn 3: helper failed (helper 12: helper does not apply to this map type)",
			errWhy: faultRule + " (a helper refuses arguments the kernel's verifier would refuse)",
			direct: true,
		},
	}
}
