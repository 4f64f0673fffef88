package main

import (
	"fmt"
	"math/bits"
)

// A small model of the arithmetic and comparisons of RFC 9669, written
// from the RFC's tables (section 4 "Arithmetic and jump instructions").
// The generator checks every answer of the kernel against it, and uses it
// where the kernel refuses a program the ISA defines (an immediate shift
// of 64, a division by an immediate zero).

// aluOp is an arithmetic operation as the corpus names it.
type aluOp string

// alu64 is dst OP src on 64 bits. src is the register value, or the
// immediate sign-extended to 64 bits.
func alu64(op aluOp, dst, src uint64) uint64 {
	switch op {
	case "add":
		return dst + src
	case "sub":
		return dst - src
	case "mul":
		return dst * src
	case "div":
		if src == 0 {
			return 0
		}
		return dst / src
	case "sdiv":
		if src == 0 {
			return 0
		}
		// Go defines MinInt64 / -1 as MinInt64, as the RFC does.
		return uint64(int64(dst) / int64(src))
	case "mod":
		if src == 0 {
			return dst
		}
		return dst % src
	case "smod":
		if src == 0 {
			return dst
		}
		// Truncated: the result has the dividend's sign. MinInt64 % -1 = 0.
		return uint64(int64(dst) % int64(src))
	case "or":
		return dst | src
	case "and":
		return dst & src
	case "xor":
		return dst ^ src
	case "lsh":
		return dst << (src & 63)
	case "rsh":
		return dst >> (src & 63)
	case "arsh":
		return uint64(int64(dst) >> (src & 63))
	case "mov":
		return src
	case "neg":
		return -dst
	}
	panic(fmt.Sprintf("model: no alu64 %q", op))
}

// alu32 is dst OP src on the low 32 bits, zero-extended to 64.
func alu32(op aluOp, dst64, src64 uint64) uint64 {
	dst, src := uint32(dst64), uint32(src64)
	var r uint32
	switch op {
	case "add":
		r = dst + src
	case "sub":
		r = dst - src
	case "mul":
		r = dst * src
	case "div":
		if src != 0 {
			r = dst / src
		}
	case "sdiv":
		if src != 0 {
			r = uint32(int32(dst) / int32(src))
		}
	case "mod":
		r = dst
		if src != 0 {
			r = dst % src
		}
	case "smod":
		r = dst
		if src != 0 {
			r = uint32(int32(dst) % int32(src))
		}
	case "or":
		r = dst | src
	case "and":
		r = dst & src
	case "xor":
		r = dst ^ src
	case "lsh":
		r = dst << (src & 31)
	case "rsh":
		r = dst >> (src & 31)
	case "arsh":
		r = uint32(int32(dst) >> (src & 31))
	case "mov":
		r = src
	case "neg":
		r = -dst
	default:
		panic(fmt.Sprintf("model: no alu32 %q", op))
	}
	return uint64(r)
}

// movsx sign-extends the low `from` bits of src; to 32 bits (then
// zero-extended) for the 32-bit form.
func movsx(from int, is32 bool, src uint64) uint64 {
	var v int64
	switch from {
	case 8:
		v = int64(int8(src))
	case 16:
		v = int64(int16(src))
	case 32:
		v = int64(int32(src))
	}
	if is32 {
		return uint64(uint32(v))
	}
	return uint64(v)
}

// byteOrder is le/be/bswap of width bits on a little-endian machine: le
// truncates (zero-extends) to the width, be and bswap swap the bytes of
// the low `width` bits.
func byteOrder(kind string, width int, v uint64) uint64 {
	if kind == "le" {
		switch width {
		case 16:
			return uint64(uint16(v))
		case 32:
			return uint64(uint32(v))
		}
		return v
	}
	switch width {
	case 16:
		return uint64(bits.ReverseBytes16(uint16(v)))
	case 32:
		return uint64(bits.ReverseBytes32(uint32(v)))
	}
	return bits.ReverseBytes64(v)
}

// jmpOp is a conditional jump as the corpus names it.
type jmpOp string

var jmpOps = []jmpOp{"jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"}

// taken reports whether the jump is taken for dst and src (the register,
// or the immediate sign-extended to 64 bits); JMP32 compares the low 32
// bits.
func taken(op jmpOp, is32 bool, dst, src uint64) bool {
	a, b := dst, src
	sa, sb := int64(dst), int64(src)
	if is32 {
		a, b = uint64(uint32(dst)), uint64(uint32(src))
		sa, sb = int64(int32(dst)), int64(int32(src))
	}
	switch op {
	case "jeq":
		return a == b
	case "jne":
		return a != b
	case "jgt":
		return a > b
	case "jge":
		return a >= b
	case "jlt":
		return a < b
	case "jle":
		return a <= b
	case "jset":
		return a&b != 0
	case "jsgt":
		return sa > sb
	case "jsge":
		return sa >= sb
	case "jslt":
		return sa < sb
	case "jsle":
		return sa <= sb
	}
	panic(fmt.Sprintf("model: no jump %q", op))
}
