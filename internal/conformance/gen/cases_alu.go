package main

import (
	"fmt"
	"math"
)

const (
	intMin64 = uint64(1) << 63
	intMax64 = uint64(math.MaxInt64)
	neg1     = ^uint64(0)
	mixed    = uint64(0x123456789abcdef0)
)

func neg(v uint64) uint64 { return -v }

// pair is a dst, src operand pair with a name for the file.
type pair struct {
	label    string
	dst, src uint64
}

// Operand pairs of each group of operations. src values that fit a
// sign-extended 32-bit immediate are also tried as immediates.
var (
	arithPairs = []pair{
		{"small", 5, 3},
		{"neg-small", neg(5), 3},
		{"wrap", neg1, 2},
		{"intmax-1", intMax64, 1},
		{"intmin-neg1", intMin64, neg1},
		{"u32max-1", 0xffffffff, 1},
		{"i32min-neg1", 0x80000000, neg1},
		{"mixed", mixed, 0x0fedcba987654321},
		{"high-imm", 0x100000005, 0x7fffffff},
	}
	divPairs = []pair{
		{"7-by-2", 7, 2},
		{"by-zero", 7, 0},
		{"by-one", mixed, 1},
		{"by-neg1", 5, neg1},
		{"neg7-by-2", neg(7), 2},
		{"intmin-by-neg1", intMin64, neg1},
		{"i32min-by-neg1", 0x80000000, neg1},
		{"high-by-2", 0x100000009, 2},
		{"mixed", mixed, 0x100000003},
		{"by-i32min", 0xfedcba9876543210, 0xffffffff80000000},
	}
	sdivPairs = []pair{
		{"7-by-2", 7, 2},
		{"neg7-by-2", neg(7), 2},
		{"7-by-neg2", 7, neg(2)},
		{"neg7-by-neg2", neg(7), neg(2)},
		{"by-zero", neg(7), 0},
		{"by-one", neg(7), 1},
		{"intmin-by-neg1", intMin64, neg1},
		{"i32min-by-neg1", 0xffffffff80000000, neg1},
		{"u32-i32min-by-neg1", 0x80000000, neg1},
		{"high-neg7-by-2", 0x1fffffff9, 2},
	}
	bitPairs = []pair{
		{"mixed", mixed, 0x0ff00ff00ff00ff0},
		{"neg", neg1, 0x8000000000000001},
		{"imm-neg", 0x00000000ffff0000, neg(0x100)},
		{"imm-pos", 0xffff0000ffff0000, 0x7fff00ff},
	}
	movPairs = []pair{
		{"imm-neg1", 0x1234, neg1},
		{"imm-i32min", 0x1234, 0xffffffff80000000},
		{"imm-pos", neg1, 0x7fffffff},
		{"high", 0, 0xfedcba9876543210},
	}
	negValues = []pair{
		{"zero", 0, 0},
		{"one", 1, 0},
		{"intmin", intMin64, 0},
		{"i32min", 0x80000000, 0},
		{"high", 0x100000005, 0},
	}
)

// shift counts; each is tried with dst values that show sign and zero
// filling.
var (
	shiftDsts = []pair{
		{"signbit", 0x8000000000000001, 0},
		{"mixed32", 0x0000000087654321, 0},
	}
	shiftCounts64 = []uint64{0, 1, 31, 32, 33, 63, 64, 65}
	shiftCounts32 = []uint64{0, 1, 15, 31, 32, 33}
)

// fitsImm reports whether v is what a 32-bit immediate sign-extends to,
// for 64-bit operations; for 32-bit ones every value's low half fits.
func fitsImm(v uint64, is32 bool) bool {
	return is32 || int64(v) >= math.MinInt32 && int64(v) <= math.MaxInt32
}

func aluName(is32 bool) string {
	if is32 {
		return "alu32"
	}
	return "alu64"
}

func suffix32(is32 bool) string {
	if is32 {
		return "32"
	}
	return ""
}

// binaryCase is `r0 = A; r0 OP= B` with B in r1 or an immediate.
func binaryCase(op aluOp, is32, imm bool, p pair) *spec {
	form := "reg"
	if imm {
		form = "imm"
	}
	var want uint64
	if is32 {
		want = alu32(op, p.dst, p.src)
	} else {
		want = alu64(op, p.dst, p.src)
	}
	mn := string(op) + suffix32(is32)
	text := fmt.Sprintf("lddw %%r0, %#x\n", p.dst)
	operand := "%r1"
	if imm {
		operand = fmt.Sprint(int32(uint32(p.src)))
	} else {
		text += fmt.Sprintf("lddw %%r1, %#x\n", p.src)
	}
	text += fmt.Sprintf("%s %%r0, %s\nexit", mn, operand)
	what := fmt.Sprintf("%s %s, %s operand: %#x %s %#x", aluName(is32), op, form, p.dst, op, p.src)
	if imm {
		what = fmt.Sprintf("%s %s, immediate %d: %#x %s imm", aluName(is32), op, int32(uint32(p.src)), p.dst, op)
	}
	return &spec{
		name:   fmt.Sprintf("%s-%s-%s-%s", aluName(is32), op, form, p.label),
		what:   []string{what},
		asm:    text,
		isa:    u64(want),
		isaWhy: isaRef(op, is32, p.src),
	}
}

// isaRef names the rule of RFC 9669 a result follows, where it is not
// plain arithmetic.
func isaRef(op aluOp, is32 bool, src uint64) string {
	w := 64
	if is32 {
		w, src = 32, uint64(uint32(src))
	}
	switch op {
	case "div", "sdiv":
		if src == 0 {
			return "division by zero gives 0"
		}
	case "mod", "smod":
		if src == 0 {
			return "modulo by zero leaves dst unchanged"
		}
	case "lsh", "rsh", "arsh":
		return fmt.Sprintf("the shift count is masked to %d bits", map[int]int{64: 6, 32: 5}[w])
	}
	if is32 {
		return "32-bit operations zero-extend their result"
	}
	return ""
}

func aluSpecs() []*spec {
	var out []*spec
	groups := []struct {
		ops   []aluOp
		pairs []pair
	}{
		{[]aluOp{"add", "sub", "mul"}, arithPairs},
		{[]aluOp{"div", "mod"}, divPairs},
		{[]aluOp{"sdiv", "smod"}, sdivPairs},
		{[]aluOp{"or", "and", "xor"}, bitPairs},
		{[]aluOp{"mov"}, movPairs},
	}
	for _, is32 := range []bool{false, true} {
		for _, g := range groups {
			for _, op := range g.ops {
				for _, p := range g.pairs {
					out = append(out, binaryCase(op, is32, false, p))
					if fitsImm(p.src, is32) {
						out = append(out, binaryCase(op, is32, true, p))
					}
				}
			}
		}
		counts := shiftCounts64
		if is32 {
			counts = shiftCounts32
		}
		for _, op := range []aluOp{"lsh", "rsh", "arsh"} {
			for _, d := range shiftDsts {
				for _, c := range counts {
					p := pair{fmt.Sprintf("%s-by-%d", d.label, c), d.dst, c}
					out = append(out, binaryCase(op, is32, false, p))
					out = append(out, binaryCase(op, is32, true, p))
				}
			}
			// A register count with high bits set: only its low bits count.
			out = append(out, binaryCase(op, is32, false, pair{"count-high-bits", 0x8000000000000001, 0xffffffff00000021}))
		}
		for _, p := range negValues {
			var want uint64
			if is32 {
				want = alu32("neg", p.dst, 0)
			} else {
				want = alu64("neg", p.dst, 0)
			}
			out = append(out, &spec{
				name:   fmt.Sprintf("%s-neg-%s", aluName(is32), p.label),
				what:   []string{fmt.Sprintf("%s neg of %#x", aluName(is32), p.dst)},
				asm:    fmt.Sprintf("lddw %%r0, %#x\nneg%s %%r0\nexit", p.dst, suffix32(is32)),
				isa:    u64(want),
				isaWhy: isaRef("neg", is32, 0),
			})
		}
	}
	// A 32-bit operation leaves dst's upper half zero even when the
	// result is dst itself.
	out = append(out, &spec{
		name:   "alu32-mov-self-zero-extends",
		what:   []string{"mov32 %r0, %r0 clears the upper half of r0"},
		asm:    "lddw %r0, 0xfedcba9876543210\nmov32 %r0, %r0\nexit",
		isa:    u64(0x76543210),
		isaWhy: "32-bit operations zero-extend their result",
	})
	out = append(out, movsxSpecs()...)
	out = append(out, endSpecs()...)
	return out
}

func movsxSpecs() []*spec {
	var out []*spec
	values := []pair{
		{"pos", 0, 0x7f7f7f7f7f7f7f7f},
		{"neg", 0, 0x8080808080808080},
		{"mixed", 0, 0x1234567880ff80ff},
		{"high", 0, 0xffffffff7fff7f7f},
	}
	for _, f := range []struct {
		from int
		is32 bool
	}{{8, false}, {16, false}, {32, false}, {8, true}, {16, true}} {
		to := 64
		if f.is32 {
			to = 32
		}
		mn := fmt.Sprintf("movsx%d%d", f.from, to)
		for _, v := range values {
			out = append(out, &spec{
				name: fmt.Sprintf("%s-%s", mn, v.label),
				what: []string{fmt.Sprintf("%s: sign-extend the low %d bits of %#x to %d bits", mn, f.from, v.src, to)},
				// r0 starts with other bits set, so that a missing
				// zero-extension of the 32-bit form shows.
				asm:    fmt.Sprintf("lddw %%r0, 0xaaaaaaaaaaaaaaaa\nlddw %%r1, %#x\n%s %%r0, %%r1\nexit", v.src, mn),
				isa:    u64(movsx(f.from, f.is32, v.src)),
				isaWhy: "MOVSX sign-extends; the 32-bit form then zero-extends",
			})
		}
	}
	return out
}

func endSpecs() []*spec {
	var out []*spec
	values := []pair{
		{"a", 0, 0x0123456789abcdef},
		{"b", 0, 0xfedcba9876543210},
	}
	for _, kind := range []string{"le", "be", "bswap"} {
		for _, w := range []int{16, 32, 64} {
			for _, v := range values {
				why := "le truncates to the width on a little-endian machine"
				if kind != "le" {
					why = "the low bytes are swapped, the rest zeroed"
				}
				out = append(out, &spec{
					name:   fmt.Sprintf("%s%d-%s", kind, w, v.label),
					what:   []string{fmt.Sprintf("%s%d of %#x", kind, w, v.src)},
					asm:    fmt.Sprintf("lddw %%r0, %#x\n%s%d %%r0\nexit", v.src, kind, w),
					isa:    u64(byteOrder(kind, w, v.src)),
					isaWhy: why,
				})
			}
		}
	}
	return out
}
