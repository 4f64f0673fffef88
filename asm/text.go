package asm

import (
	"fmt"
	"strconv"
	"strings"
)

var aluNames = map[uint8]string{
	ALUAdd: "add", ALUSub: "sub", ALUMul: "mul", ALUDiv: "div", ALUOr: "or",
	ALUAnd: "and", ALULsh: "lsh", ALURsh: "rsh", ALUNeg: "neg", ALUMod: "mod",
	ALUXor: "xor", ALUMov: "mov", ALUArsh: "arsh",
}

var jmpNames = map[uint8]string{
	JmpJEQ: "jeq", JmpJGT: "jgt", JmpJGE: "jge", JmpJSET: "jset", JmpJNE: "jne",
	JmpJSGT: "jsgt", JmpJSGE: "jsge", JmpJLT: "jlt", JmpJLE: "jle", JmpJSLT: "jslt",
	JmpJSLE: "jsle",
}

var sizeNames = map[uint8]string{SizeB: "b", SizeH: "h", SizeW: "w", SizeDW: "dw"}

var atomicNames = map[int32]string{
	AtomicAdd: "add", AtomicOr: "or", AtomicAnd: "and", AtomicXor: "xor",
	AtomicAdd | AtomicFetch: "fetch add", AtomicOr | AtomicFetch: "fetch or",
	AtomicAnd | AtomicFetch: "fetch and", AtomicXor | AtomicFetch: "fetch xor",
	AtomicXchg: "xchg", AtomicCmpXchg: "cmpxchg",
}

func reg(r uint8) string { return "%r" + strconv.Itoa(int(r)) }

func memOperand(r uint8, off int16) string {
	if off < 0 {
		return fmt.Sprintf("[%s-%d]", reg(r), -int(off))
	}
	return fmt.Sprintf("[%s+%d]", reg(r), off)
}

func rel(off int64) string {
	if off < 0 {
		return strconv.FormatInt(off, 10)
	}
	return "+" + strconv.FormatInt(off, 10)
}

// format renders one instruction without checking that it is canonical.
// next is the following slot, used by lddw. ok is false for instructions
// that have no text form.
func format(i, next Instruction) (s string, ok bool) {
	op := i.Op & 0xf0
	switch i.Class() {
	case ClassALU, ClassALU64:
		suffix := ""
		if i.Class() == ClassALU {
			suffix = "32"
		}
		if op == ALUEnd {
			name := "le"
			if i.Class() == ClassALU64 {
				name = "bswap"
			} else if i.Op&SrcX != 0 {
				name = "be"
			}
			return fmt.Sprintf("%s%d %s", name, i.Imm, reg(i.Dst)), true
		}
		name, ok := aluNames[op&0xf0]
		if !ok {
			return "", false
		}
		if op == ALUNeg {
			return fmt.Sprintf("%s%s %s", name, suffix, reg(i.Dst)), true
		}
		if (op == ALUDiv || op == ALUMod) && i.Off == 1 {
			name = "s" + name
		}
		if op == ALUMov && i.Off != 0 {
			return fmt.Sprintf("movsx%d%s %s, %s", i.Off, map[bool]string{true: "32", false: "64"}[suffix != ""], reg(i.Dst), reg(i.Src)), true
		}
		if i.Op&SrcX != 0 {
			return fmt.Sprintf("%s%s %s, %s", name, suffix, reg(i.Dst), reg(i.Src)), true
		}
		return fmt.Sprintf("%s%s %s, %d", name, suffix, reg(i.Dst), i.Imm), true
	case ClassJMP, ClassJMP32:
		suffix := ""
		if i.Class() == ClassJMP32 {
			suffix = "32"
		}
		switch op {
		case JmpJA:
			if i.Class() == ClassJMP32 {
				return "ja32 " + rel(int64(i.Imm)), true
			}
			return "ja " + rel(int64(i.Off)), true
		case JmpExit:
			return "exit", true
		case JmpCall:
			if i.Op&SrcX != 0 {
				return "call " + reg(i.Dst), true
			}
			switch i.Src {
			case PseudoCall:
				return "call local " + rel(int64(i.Imm)), true
			case PseudoKfuncCal:
				return fmt.Sprintf("call runtime %d", i.Imm), true
			}
			return fmt.Sprintf("call %d", i.Imm), true
		}
		name, ok := jmpNames[op]
		if !ok {
			return "", false
		}
		if i.Op&SrcX != 0 {
			return fmt.Sprintf("%s%s %s, %s, %s", name, suffix, reg(i.Dst), reg(i.Src), rel(int64(i.Off))), true
		}
		return fmt.Sprintf("%s%s %s, %d, %s", name, suffix, reg(i.Dst), i.Imm, rel(int64(i.Off))), true
	case ClassLD:
		if i.Op != OpLDDW {
			return "", false
		}
		switch i.Src {
		case 0:
			return fmt.Sprintf("lddw %s, %#x", reg(i.Dst), Imm64(i, next)), true
		case PseudoMapFD:
			return fmt.Sprintf("lddw %s, map[%d]", reg(i.Dst), i.Imm), true
		case PseudoMapValue:
			return fmt.Sprintf("lddw %s, map[%d]+%d", reg(i.Dst), i.Imm, uint32(next.Imm)), true
		}
		return "", false
	case ClassLDX:
		size := sizeNames[i.Op&0x18]
		switch i.Op & 0xe0 {
		case ModeMEM:
			return fmt.Sprintf("ldx%s %s, %s", size, reg(i.Dst), memOperand(i.Src, i.Off)), true
		case ModeMEMSX:
			return fmt.Sprintf("ldxs%s %s, %s", size, reg(i.Dst), memOperand(i.Src, i.Off)), true
		}
	case ClassST:
		if i.Op&0xe0 == ModeMEM {
			return fmt.Sprintf("st%s %s, %d", sizeNames[i.Op&0x18], memOperand(i.Dst, i.Off), i.Imm), true
		}
	case ClassSTX:
		switch i.Op & 0xe0 {
		case ModeMEM:
			return fmt.Sprintf("stx%s %s, %s", sizeNames[i.Op&0x18], memOperand(i.Dst, i.Off), reg(i.Src)), true
		case ModeATOMIC:
			name, ok := atomicNames[i.Imm]
			if !ok {
				return "", false
			}
			suffix := ""
			switch i.Op & 0x18 {
			case SizeW:
				suffix = "32"
			case SizeDW:
			default:
				return "", false
			}
			return fmt.Sprintf("lock %s%s %s, %s", name, suffix, memOperand(i.Dst, i.Off), reg(i.Src)), true
		}
	}
	return "", false
}

// String returns the text form of a single-slot instruction, or a `.raw`
// directive holding its encoding when it has no canonical text form. An
// lddw needs its second slot: use Format.
func (i Instruction) String() string { return Format(i, Instruction{}) }

// Format returns the text form of i; next is the slot after it (only used
// for lddw). Instructions without a canonical text form, such as those with
// non-zero reserved fields, print as `.raw 0xOPCODE...` (the slot as a
// little-endian 64-bit number), which the assembler reads back.
func Format(i, next Instruction) string {
	s, ok := format(i, next)
	if ok {
		got, err := assembleLine(s, nil, 0)
		if err == nil && len(got) >= 1 && got[0] == i && (!i.IsLDDW() || len(got) == 2 && got[1] == next) {
			return s
		}
	}
	return raw(i)
}

// FormatNamed is Format with the maps of lddw map[N] (and map[N]+OFF)
// named: mapNames[N] is printed instead of N, as bpftool and a reader of
// the C source name them. The text no longer assembles.
func FormatNamed(i, next Instruction, mapNames []string) string {
	s := Format(i, next)
	if i.IsLDDW() && (i.Src == PseudoMapFD || i.Src == PseudoMapValue) && i.Imm >= 0 && int(i.Imm) < len(mapNames) && mapNames[i.Imm] != "" {
		s = strings.Replace(s, fmt.Sprintf("map[%d]", i.Imm), "map["+mapNames[i.Imm]+"]", 1)
	}
	return s
}

func raw(i Instruction) string {
	b := i.Encode(nil)
	var v uint64
	for n := 7; n >= 0; n-- {
		v = v<<8 | uint64(b[n])
	}
	return fmt.Sprintf(".raw %#016x", v)
}

// Disassemble returns one line per instruction (an lddw is one line that
// covers two slots). It never fails: what has no text form prints as `.raw`.
func Disassemble(insns []Instruction) []string {
	var lines []string
	for n := 0; n < len(insns); n++ {
		i := insns[n]
		if i.IsLDDW() && n+1 < len(insns) {
			s := Format(i, insns[n+1])
			lines = append(lines, s)
			if !strings.HasPrefix(s, ".raw") {
				n++
			}
			continue
		}
		if i.IsLDDW() {
			lines = append(lines, raw(i)) // truncated lddw
			continue
		}
		lines = append(lines, Format(i, Instruction{}))
	}
	return lines
}
