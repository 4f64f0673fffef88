package asm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SyntaxError is an assembler error that names the source line.
type SyntaxError struct {
	Line int    // 1-based source line
	Text string // the line as written
	Err  error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d (%s): %v", e.Line, strings.TrimSpace(e.Text), e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Assemble translates assembly text into instructions. One instruction or
// label (`name:`) a line; `#` starts a comment. Jump and local-call targets
// are `+N`/`-N` (slots, relative to the next instruction) or labels. The
// first `exit` also defines the label `exit` unless the source defines it.
func Assemble(src string) ([]Instruction, error) {
	type pending struct {
		line int
		text string
		slot int
	}
	labels := map[string]int{}
	var stmts []pending
	slot := 0
	firstExit := -1
	for n, line := range strings.Split(src, "\n") {
		text := line
		if c := strings.IndexByte(text, '#'); c >= 0 {
			text = text[:c]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if strings.HasSuffix(text, ":") {
			name := strings.TrimSpace(strings.TrimSuffix(text, ":"))
			if !isIdent(name) {
				return nil, &SyntaxError{n + 1, line, fmt.Errorf("bad label %q", name)}
			}
			if _, dup := labels[name]; dup {
				return nil, &SyntaxError{n + 1, line, fmt.Errorf("label %q defined twice", name)}
			}
			labels[name] = slot
			continue
		}
		stmts = append(stmts, pending{n + 1, text, slot})
		mn := strings.Fields(text)[0]
		switch {
		case mn == "lddw":
			slot += 2
		case mn == "exit" && firstExit < 0:
			firstExit = slot
			slot++
		default:
			slot++
		}
	}
	if _, ok := labels["exit"]; !ok && firstExit >= 0 {
		labels["exit"] = firstExit
	}
	insns := make([]Instruction, 0, slot)
	for _, st := range stmts {
		got, err := assembleLine(st.text, labels, st.slot)
		if err != nil {
			return nil, &SyntaxError{st.line, st.text, err}
		}
		insns = append(insns, got...)
	}
	return insns, nil
}

// MustAssemble is Assemble for tests and constant programs: it panics on error.
func MustAssemble(src string) []Instruction {
	insns, err := Assemble(src)
	if err != nil {
		panic(err)
	}
	return insns
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for n, c := range s {
		if c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || n > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

var (
	aluOps = invert(aluNames)
	jmpOps = invert(jmpNames)
	sizes  = invert(sizeNames)
)

func invert[K comparable](m map[K]string) map[string]K {
	r := make(map[string]K, len(m))
	for k, v := range m {
		r[v] = k
	}
	return r
}

func parseReg(s string) (uint8, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "%r") && !strings.HasPrefix(s, "r") {
		return 0, fmt.Errorf("want a register, have %q", s)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(s, "%"), "r"))
	if err != nil || n < 0 || n > 10 {
		return 0, fmt.Errorf("bad register %q (r0..r10)", s)
	}
	return uint8(n), nil
}

func isReg(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "%r") || len(s) >= 2 && s[0] == 'r' && s[1] >= '0' && s[1] <= '9'
}

// parseInt parses signed decimal or 0x hex (optionally negative).
func parseInt(s string) (int64, bool, error) {
	s = strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, false, fmt.Errorf("bad number %q", s)
	}
	if neg {
		if v > 1<<63 {
			return 0, false, fmt.Errorf("number -%s out of range", s)
		}
		return -int64(v), true, nil
	}
	return int64(v), false, nil
}

func parseImm32(s string) (int32, error) {
	v, neg, err := parseInt(s)
	if err != nil {
		return 0, err
	}
	if neg && v < math.MinInt32 || !neg && uint64(v) > math.MaxUint32 {
		return 0, fmt.Errorf("immediate %s does not fit in 32 bits", s)
	}
	return int32(v), nil
}

func parseOff(s string) (int16, error) {
	v, neg, err := parseInt(s)
	if err != nil {
		return 0, err
	}
	if neg && v < math.MinInt16 || !neg && v > math.MaxInt16 {
		return 0, fmt.Errorf("offset %s does not fit in 16 bits", s)
	}
	return int16(v), nil
}

// parseMem parses `[%rN+off]`, `[%rN-off]` or `[%rN]`.
func parseMem(s string) (uint8, int16, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return 0, 0, fmt.Errorf("want a memory operand like [%%r1+4], have %q", s)
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	cut := strings.IndexAny(s, "+-")
	if cut < 0 {
		r, err := parseReg(s)
		return r, 0, err
	}
	r, err := parseReg(s[:cut])
	if err != nil {
		return 0, 0, err
	}
	off, err := parseOff(strings.ReplaceAll(s[cut:], " ", ""))
	return r, off, err
}

// target resolves a jump target: +N, -N or a label, relative to slot+1.
func target(s string, labels map[string]int, slot int, bits int) (int64, error) {
	s = strings.TrimSpace(s)
	var d int64
	if s != "" && (s[0] == '+' || s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		v, _, err := parseInt(s)
		if err != nil {
			return 0, err
		}
		d = v
	} else {
		at, ok := labels[s]
		if !ok {
			return 0, fmt.Errorf("unknown label %q", s)
		}
		d = int64(at - slot - 1)
	}
	if bits == 16 && (d < math.MinInt16 || d > math.MaxInt16) || d < math.MinInt32 || d > math.MaxInt32 {
		return 0, fmt.Errorf("jump distance %d does not fit in %d bits", d, bits)
	}
	return d, nil
}

func splitOperands(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for n := range parts {
		parts[n] = strings.TrimSpace(parts[n])
	}
	return parts
}

func want(ops []string, n int, form string) error {
	if len(ops) != n {
		return fmt.Errorf("want %s", form)
	}
	return nil
}

// assembleLine assembles one statement that starts at the given slot.
func assembleLine(text string, labels map[string]int, slot int) ([]Instruction, error) {
	text = strings.TrimSpace(text)
	mn, rest, _ := strings.Cut(text, " ")
	mn = strings.ToLower(mn)
	ops := splitOperands(rest)
	one := func(i Instruction, err error) ([]Instruction, error) {
		if err != nil {
			return nil, err
		}
		return []Instruction{i}, nil
	}

	switch {
	case mn == ".raw":
		if err := want(ops, 1, ".raw 0xSLOT"); err != nil {
			return nil, err
		}
		v, err := strconv.ParseUint(ops[0], 0, 64)
		if err != nil {
			return nil, fmt.Errorf("bad raw slot %q", ops[0])
		}
		var b [8]byte
		for n := range b {
			b[n] = byte(v >> (8 * n))
		}
		return []Instruction{DecodeOne(b[:])}, nil
	case mn == "exit":
		return one(Instruction{Op: OpExit}, want(ops, 0, "exit"))
	case mn == "ja" || mn == "ja32":
		if err := want(ops, 1, mn+" TARGET"); err != nil {
			return nil, err
		}
		if mn == "ja32" {
			d, err := target(ops[0], labels, slot, 32)
			return one(Instruction{Op: OpJA32, Imm: int32(d)}, err)
		}
		d, err := target(ops[0], labels, slot, 16)
		return one(Instruction{Op: OpJA, Off: int16(d)}, err)
	case mn == "call":
		f := strings.Fields(rest)
		switch {
		case len(f) == 2 && f[0] == "local":
			d, err := target(f[1], labels, slot, 32)
			return one(Instruction{Op: OpCall, Src: PseudoCall, Imm: int32(d)}, err)
		case len(f) == 2 && f[0] == "runtime":
			imm, err := parseImm32(f[1])
			return one(Instruction{Op: OpCall, Src: PseudoKfuncCal, Imm: imm}, err)
		case len(f) == 1 && isReg(f[0]):
			r, err := parseReg(f[0])
			return one(Instruction{Op: OpCallX, Dst: r}, err)
		case len(f) == 1:
			imm, err := parseImm32(f[0])
			return one(Instruction{Op: OpCall, Imm: imm}, err)
		}
		return nil, fmt.Errorf("want call N, call %%rN or call local TARGET")
	case mn == "lddw":
		if err := want(ops, 2, "lddw %rD, IMM64"); err != nil {
			return nil, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(ops[1], "map[") {
			idx, off, hasOff := strings.Cut(strings.TrimPrefix(ops[1], "map["), "]")
			id, err := parseImm32(idx)
			if err != nil {
				return nil, err
			}
			if !hasOff || off == "" {
				return []Instruction{{Op: OpLDDW, Dst: dst, Src: PseudoMapFD, Imm: id}, {}}, nil
			}
			o, err := parseImm32(strings.TrimPrefix(off, "+"))
			if err != nil {
				return nil, err
			}
			return []Instruction{{Op: OpLDDW, Dst: dst, Src: PseudoMapValue, Imm: id}, {Imm: o}}, nil
		}
		v, _, err := parseInt(ops[1])
		if err != nil {
			return nil, err
		}
		s := LoadImm64(dst, uint64(v))
		return s[:], nil
	case mn == "lock":
		return one(assembleAtomic(rest))
	case strings.HasPrefix(mn, "ldx"):
		return one(assembleLoad(mn, ops))
	case strings.HasPrefix(mn, "stx"):
		size, ok := sizes[mn[3:]]
		if !ok {
			return nil, fmt.Errorf("unknown instruction %q", mn)
		}
		if err := want(ops, 2, mn+" [%rD+OFF], %rS"); err != nil {
			return nil, err
		}
		dst, off, err := parseMem(ops[0])
		if err != nil {
			return nil, err
		}
		src, err := parseReg(ops[1])
		return one(Instruction{Op: ClassSTX | ModeMEM | size, Dst: dst, Src: src, Off: off}, err)
	case strings.HasPrefix(mn, "st") && len(mn) <= 4:
		size, ok := sizes[mn[2:]]
		if !ok {
			return nil, fmt.Errorf("unknown instruction %q", mn)
		}
		if err := want(ops, 2, mn+" [%rD+OFF], IMM"); err != nil {
			return nil, err
		}
		dst, off, err := parseMem(ops[0])
		if err != nil {
			return nil, err
		}
		imm, err := parseImm32(ops[1])
		return one(Instruction{Op: ClassST | ModeMEM | size, Dst: dst, Off: off, Imm: imm}, err)
	}
	if i, ok, err := assembleEnd(mn, ops); ok {
		return one(i, err)
	}
	if i, ok, err := assembleJump(mn, ops, labels, slot); ok {
		return one(i, err)
	}
	if i, ok, err := assembleALU(mn, ops); ok {
		return one(i, err)
	}
	return nil, fmt.Errorf("unknown instruction %q", mn)
}

func assembleLoad(mn string, ops []string) (Instruction, error) {
	mode := uint8(ModeMEM)
	sz := mn[3:]
	if strings.HasPrefix(sz, "s") && sz != "" {
		mode, sz = ModeMEMSX, sz[1:]
	}
	size, ok := sizes[sz]
	if !ok || mode == ModeMEMSX && size == SizeDW {
		return Instruction{}, fmt.Errorf("unknown instruction %q", mn)
	}
	if err := want(ops, 2, mn+" %rD, [%rS+OFF]"); err != nil {
		return Instruction{}, err
	}
	dst, err := parseReg(ops[0])
	if err != nil {
		return Instruction{}, err
	}
	src, off, err := parseMem(ops[1])
	return Instruction{Op: ClassLDX | mode | size, Dst: dst, Src: src, Off: off}, err
}

func assembleAtomic(rest string) (Instruction, error) {
	// lock [fetch] OP[32] [%rD+OFF], %rS
	ops := splitOperands(rest)
	if len(ops) != 2 {
		return Instruction{}, fmt.Errorf("want lock [fetch] OP[32] [%%rD+OFF], %%rS")
	}
	f := strings.Fields(ops[0])
	if len(f) < 2 {
		return Instruction{}, fmt.Errorf("want lock [fetch] OP[32] [%%rD+OFF], %%rS")
	}
	mem := strings.Join(f[len(f)-1:], "")
	name := strings.Join(f[:len(f)-1], " ")
	size := uint8(SizeDW)
	if strings.HasSuffix(name, "32") {
		size, name = SizeW, strings.TrimSuffix(name, "32")
	}
	var imm int32 = -1
	for k, v := range atomicNames {
		if v == name {
			imm = k
		}
	}
	if imm < 0 {
		return Instruction{}, fmt.Errorf("unknown atomic operation %q", name)
	}
	dst, off, err := parseMem(mem)
	if err != nil {
		return Instruction{}, err
	}
	src, err := parseReg(ops[1])
	return Instruction{Op: ClassSTX | ModeATOMIC | size, Dst: dst, Src: src, Off: off, Imm: imm}, err
}

func assembleEnd(mn string, ops []string) (Instruction, bool, error) {
	var op uint8
	var width string
	switch {
	case strings.HasPrefix(mn, "le"):
		op, width = ClassALU|ALUEnd|SrcK, mn[2:]
	case strings.HasPrefix(mn, "be"):
		op, width = ClassALU|ALUEnd|SrcX, mn[2:]
	case strings.HasPrefix(mn, "bswap"):
		op, width = ClassALU64|ALUEnd, mn[5:]
	case strings.HasPrefix(mn, "swap"):
		op, width = ClassALU64|ALUEnd, mn[4:]
	default:
		return Instruction{}, false, nil
	}
	if width != "16" && width != "32" && width != "64" {
		return Instruction{}, false, nil
	}
	if err := want(ops, 1, mn+" %rD"); err != nil {
		return Instruction{}, true, err
	}
	dst, err := parseReg(ops[0])
	w, _ := strconv.Atoi(width)
	return Instruction{Op: op, Dst: dst, Imm: int32(w)}, true, err
}

func assembleJump(mn string, ops []string, labels map[string]int, slot int) (Instruction, bool, error) {
	class := uint8(ClassJMP)
	name := mn
	if strings.HasSuffix(name, "32") {
		class, name = ClassJMP32, strings.TrimSuffix(name, "32")
	}
	op, ok := jmpOps[name]
	if !ok {
		return Instruction{}, false, nil
	}
	if err := want(ops, 3, mn+" %rD, %rS|IMM, TARGET"); err != nil {
		return Instruction{}, true, err
	}
	dst, err := parseReg(ops[0])
	if err != nil {
		return Instruction{}, true, err
	}
	d, err := target(ops[2], labels, slot, 16)
	if err != nil {
		return Instruction{}, true, err
	}
	i := Instruction{Op: class | op, Dst: dst, Off: int16(d)}
	if isReg(ops[1]) {
		i.Op |= SrcX
		i.Src, err = parseReg(ops[1])
	} else {
		i.Imm, err = parseImm32(ops[1])
	}
	return i, true, err
}

func assembleALU(mn string, ops []string) (Instruction, bool, error) {
	if strings.HasPrefix(mn, "movsx") {
		// movsx{8,16,32}{64,32}
		s := mn[5:]
		class := uint8(ClassALU64)
		switch {
		case strings.HasSuffix(s, "64"):
			s = strings.TrimSuffix(s, "64")
		case strings.HasSuffix(s, "32"):
			class, s = ClassALU, strings.TrimSuffix(s, "32")
		default:
			return Instruction{}, false, nil
		}
		if s != "8" && s != "16" && s != "32" {
			return Instruction{}, false, nil
		}
		if err := want(ops, 2, mn+" %rD, %rS"); err != nil {
			return Instruction{}, true, err
		}
		dst, err := parseReg(ops[0])
		if err != nil {
			return Instruction{}, true, err
		}
		src, err := parseReg(ops[1])
		off, _ := strconv.Atoi(s)
		return Instruction{Op: class | ALUMov | SrcX, Dst: dst, Src: src, Off: int16(off)}, true, err
	}
	class := uint8(ClassALU64)
	name := mn
	if strings.HasSuffix(name, "32") {
		class, name = ClassALU, strings.TrimSuffix(name, "32")
	} else if strings.HasSuffix(name, "64") {
		name = strings.TrimSuffix(name, "64")
	}
	var off int16
	switch name {
	case "sdiv":
		name, off = "div", 1
	case "smod":
		name, off = "mod", 1
	}
	op, ok := aluOps[name]
	if !ok {
		return Instruction{}, false, nil
	}
	if op == ALUNeg {
		if err := want(ops, 1, mn+" %rD"); err != nil {
			return Instruction{}, true, err
		}
		dst, err := parseReg(ops[0])
		return Instruction{Op: class | op, Dst: dst}, true, err
	}
	if err := want(ops, 2, mn+" %rD, %rS|IMM"); err != nil {
		return Instruction{}, true, err
	}
	dst, err := parseReg(ops[0])
	if err != nil {
		return Instruction{}, true, err
	}
	i := Instruction{Op: class | op, Dst: dst, Off: off}
	if isReg(ops[1]) {
		i.Op |= SrcX
		i.Src, err = parseReg(ops[1])
	} else {
		i.Imm, err = parseImm32(ops[1])
	}
	return i, true, err
}
