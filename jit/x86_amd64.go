//go:build linux

package jit

import "encoding/binary"

// An x86-64 encoder: just the instructions the compiler emits, each
// function appending one instruction. Jumps name labels; a buffer is
// emitted in passes until every jump has the smallest encoding its
// displacement allows (see assembler.resolve).

// xreg is an x86-64 general purpose register, numbered as encoded.
type xreg uint8

const (
	rax xreg = iota
	rcx
	rdx
	rbx
	rsp
	rbp
	rsi
	rdi
	r8
	r9
	r10
	r11
	r12
	r13
	r14
	r15
)

// Condition codes (the low nibble of Jcc).
type cond uint8

const (
	condB  cond = 0x2 // below (unsigned <)
	condAE cond = 0x3 // above or equal (unsigned >=)
	condE  cond = 0x4
	condNE cond = 0x5
	condBE cond = 0x6 // below or equal (unsigned <=)
	condA  cond = 0x7 // above (unsigned >)
	condL  cond = 0xc // less (signed <)
	condGE cond = 0xd
	condLE cond = 0xe
	condG  cond = 0xf
)

func (c cond) invert() cond { return c ^ 1 }

// Group 1 ALU operations: the /digit of 0x81/0x83 and, times 8 plus 1, the
// opcode of the "op r/m, r" form.
type aluOp uint8

const (
	aluAdd aluOp = 0
	aluOr  aluOp = 1
	aluAnd aluOp = 4
	aluSub aluOp = 5
	aluXor aluOp = 6
	aluCmp aluOp = 7
)

// Group 2 shifts: the /digit of 0xc1/0xd3.
type shiftOp uint8

const (
	shRol shiftOp = 0
	shShl shiftOp = 4
	shShr shiftOp = 5
	shSar shiftOp = 7
)

type label int32

type fixup struct {
	at    int   // offset of the displacement
	size  int   // 1 or 4
	end   int   // offset of the end of the instruction (displacements are from here)
	label label // target
	jump  int   // index of the jump among the relaxable ones, or -1
}

// assembler is a code buffer with labels.
type assembler struct {
	b       []byte
	labels  []int // offset of each label in the current pass, -1 if unbound
	fixups  []fixup
	long    []bool // per relaxable jump: needs rel32
	allLong bool   // every jump rel32
	njump   int
}

// reset starts a new pass; labels must be created again in the same order.
func (a *assembler) reset() {
	a.b = a.b[:0]
	a.labels = a.labels[:0]
	a.fixups = a.fixups[:0]
	a.njump = 0
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

func (a *assembler) bind(l label) { a.labels[l] = len(a.b) }

func (a *assembler) pos() int { return len(a.b) }

// resolve writes every displacement. It reports false if a short jump
// cannot reach its target: that jump is marked long and the caller must
// emit the code again.
func (a *assembler) resolve() bool {
	ok := true
	for _, f := range a.fixups {
		d := a.labels[f.label] - f.end
		if f.size == 1 {
			if d < -128 || d > 127 {
				a.long[f.jump] = true
				ok = false
				continue
			}
			a.b[f.at] = byte(int8(d))
			continue
		}
		binary.LittleEndian.PutUint32(a.b[f.at:], uint32(int32(d)))
	}
	return ok
}

func (a *assembler) byte1(v ...byte) { a.b = append(a.b, v...) }

func (a *assembler) imm8(v int8)   { a.b = append(a.b, byte(v)) }
func (a *assembler) imm16(v int16) { a.b = binary.LittleEndian.AppendUint16(a.b, uint16(v)) }
func (a *assembler) imm32(v int32) { a.b = binary.LittleEndian.AppendUint32(a.b, uint32(v)) }
func (a *assembler) imm64(v uint64) {
	a.b = binary.LittleEndian.AppendUint64(a.b, v)
}

func fits8(v int64) bool  { return v >= -128 && v <= 127 }
func fits32(v int64) bool { return v >= -1<<31 && v < 1<<31 }

// rex emits a REX prefix when one is needed: a 64-bit operand (w), an
// extended register in the reg, index or base field, or a byte operand
// that would otherwise mean AH..BH (byteRegs).
func (a *assembler) rex(w bool, r, x, b xreg, byteRegs bool) {
	v := byte(0x40)
	if w {
		v |= 8
	}
	v |= byte(r>>3&1) << 2
	v |= byte(x>>3&1) << 1
	v |= byte(b >> 3 & 1)
	if v != 0x40 || byteRegs {
		a.b = append(a.b, v)
	}
}

func (a *assembler) modrmRR(r, rm xreg) { a.b = append(a.b, 0xc0|byte(r&7)<<3|byte(rm&7)) }

// modrmMem encodes [base+disp] with r (a register or an opcode digit) in
// the reg field.
func (a *assembler) modrmMem(r byte, base xreg, disp int32) {
	rb := byte(base & 7)
	var mod byte
	switch {
	case disp == 0 && rb != 5:
		mod = 0
	case fits8(int64(disp)):
		mod = 1
	default:
		mod = 2
	}
	a.b = append(a.b, mod<<6|(r&7)<<3|rb)
	if rb == 4 {
		a.b = append(a.b, 0x24) // SIB: no index, base rsp/r12
	}
	switch mod {
	case 1:
		a.imm8(int8(disp))
	case 2:
		a.imm32(disp)
	}
}

// opRR emits "op rm, r" (or "op r, rm", depending on the opcode) with
// register operands.
func (a *assembler) opRR(w bool, op []byte, r, rm xreg) {
	a.rex(w, r, 0, rm, false)
	a.b = append(a.b, op...)
	a.modrmRR(r, rm)
}

// opRM emits an instruction whose r/m operand is [base+disp].
func (a *assembler) opRM(w bool, op []byte, r xreg, base xreg, disp int32) {
	a.rex(w, r, 0, base, false)
	a.b = append(a.b, op...)
	a.modrmMem(byte(r), base, disp)
}

// aluRR emits "op dst, src".
func (a *assembler) aluRR(w bool, op aluOp, dst, src xreg) {
	a.opRR(w, []byte{byte(op)<<3 | 1}, src, dst)
}

// aluRI emits "op dst, imm" with imm sign-extended to the operand size.
func (a *assembler) aluRI(w bool, op aluOp, dst xreg, imm int32) {
	if fits8(int64(imm)) {
		a.opRR(w, []byte{0x83}, xreg(op), dst)
		a.imm8(int8(imm))
		return
	}
	if dst == rax {
		a.rex(w, 0, 0, 0, false)
		a.b = append(a.b, byte(op)<<3|5)
		a.imm32(imm)
		return
	}
	a.opRR(w, []byte{0x81}, xreg(op), dst)
	a.imm32(imm)
}

// aluRM emits "op dst, [base+disp]" (64-bit).
func (a *assembler) aluRM(op aluOp, dst, base xreg, disp int32) {
	a.opRM(true, []byte{byte(op)<<3 | 3}, dst, base, disp)
}

// aluMR emits "op qword [base+disp], src" (64-bit).
func (a *assembler) aluMR(op aluOp, base xreg, disp int32, src xreg) {
	a.opRM(true, []byte{byte(op)<<3 | 1}, src, base, disp)
}

// cmov emits "cmovcc dst, src" (64-bit).
func (a *assembler) cmov(c cond, dst, src xreg) { a.opRR(true, []byte{0x0f, 0x40 | byte(c)}, dst, src) }

// aluMI emits "op qword [base+disp], imm".
func (a *assembler) aluMI(op aluOp, base xreg, disp int32, imm int32) {
	if fits8(int64(imm)) {
		a.opRM(true, []byte{0x83}, xreg(op), base, disp)
		a.imm8(int8(imm))
		return
	}
	a.opRM(true, []byte{0x81}, xreg(op), base, disp)
	a.imm32(imm)
}

// testRR emits "test a, b".
func (a *assembler) testRR(w bool, x, y xreg) { a.opRR(w, []byte{0x85}, y, x) }

// testRI emits "test r, imm" (imm sign-extended for 64 bits).
func (a *assembler) testRI(w bool, r xreg, imm int32) {
	if r == rax {
		a.rex(w, 0, 0, 0, false)
		a.b = append(a.b, 0xa9)
		a.imm32(imm)
		return
	}
	a.opRR(w, []byte{0xf7}, 0, r)
	a.imm32(imm)
}

// movRR emits "mov dst, src"; the 32-bit form zero-extends.
func (a *assembler) movRR(w bool, dst, src xreg) { a.opRR(w, []byte{0x89}, src, dst) }

// movImm32 emits "mov r32, imm32", zero-extending to 64 bits.
func (a *assembler) movImm32(r xreg, v uint32) {
	a.rex(false, 0, 0, r, false)
	a.b = append(a.b, 0xb8+byte(r&7))
	a.imm32(int32(v))
}

// movImm64 loads v into r with the shortest encoding.
func (a *assembler) movImm64(r xreg, v uint64) {
	switch {
	case v == 0:
		a.aluRR(false, aluXor, r, r)
	case v <= 0xffffffff:
		a.movImm32(r, uint32(v))
	case fits32(int64(v)):
		a.opRR(true, []byte{0xc7}, 0, r)
		a.imm32(int32(v))
	default:
		a.rex(true, 0, 0, r, false)
		a.b = append(a.b, 0xb8+byte(r&7))
		a.imm64(v)
	}
}

// load emits a zero-extending load of n bytes: movzx for 1 and 2, mov for 4
// and 8.
func (a *assembler) load(n int, dst, base xreg, disp int32) {
	switch n {
	case 1:
		a.opRM(false, []byte{0x0f, 0xb6}, dst, base, disp)
	case 2:
		a.opRM(false, []byte{0x0f, 0xb7}, dst, base, disp)
	case 4:
		a.opRM(false, []byte{0x8b}, dst, base, disp)
	default:
		a.opRM(true, []byte{0x8b}, dst, base, disp)
	}
}

// loadSX emits a sign-extending load of n bytes into a 64-bit register.
func (a *assembler) loadSX(n int, dst, base xreg, disp int32) {
	switch n {
	case 1:
		a.opRM(true, []byte{0x0f, 0xbe}, dst, base, disp)
	case 2:
		a.opRM(true, []byte{0x0f, 0xbf}, dst, base, disp)
	default:
		a.opRM(true, []byte{0x63}, dst, base, disp)
	}
}

// store emits a store of the low n bytes of src.
func (a *assembler) store(n int, base xreg, disp int32, src xreg) {
	switch n {
	case 1:
		a.rex(false, src, 0, base, src >= rsp && src <= rdi)
		a.b = append(a.b, 0x88)
		a.modrmMem(byte(src), base, disp)
	case 2:
		a.b = append(a.b, 0x66)
		a.opRM(false, []byte{0x89}, src, base, disp)
	case 4:
		a.opRM(false, []byte{0x89}, src, base, disp)
	default:
		a.opRM(true, []byte{0x89}, src, base, disp)
	}
}

// storeImm emits a store of n bytes of imm (sign-extended for 8 bytes).
func (a *assembler) storeImm(n int, base xreg, disp int32, imm int32) {
	switch n {
	case 1:
		a.opRM(false, []byte{0xc6}, 0, base, disp)
		a.imm8(int8(imm))
	case 2:
		a.b = append(a.b, 0x66)
		a.opRM(false, []byte{0xc7}, 0, base, disp)
		a.imm16(int16(imm))
	case 4:
		a.opRM(false, []byte{0xc7}, 0, base, disp)
		a.imm32(imm)
	default:
		a.opRM(true, []byte{0xc7}, 0, base, disp)
		a.imm32(imm)
	}
}

// loadQ emits "mov dst, qword [base+disp]"; storeQ the reverse.
func (a *assembler) loadQ(dst, base xreg, disp int32)       { a.load(8, dst, base, disp) }
func (a *assembler) storeQ(base xreg, disp int32, src xreg) { a.store(8, base, disp, src) }

// lea emits "lea dst, [base+disp]".
func (a *assembler) lea(dst, base xreg, disp int32) { a.opRM(true, []byte{0x8d}, dst, base, disp) }

// leaIndex emits "lea dst, [base+index*scale+disp]" with a 32-bit displacement.
func (a *assembler) leaIndex(dst, base, index xreg, scale byte, disp int32) {
	var ss byte
	switch scale {
	case 1:
		ss = 0
	case 2:
		ss = 1
	case 4:
		ss = 2
	case 8:
		ss = 3
	}
	a.rex(true, dst, index, base, false)
	a.b = append(a.b, 0x8d, 2<<6|byte(dst&7)<<3|4, ss<<6|byte(index&7)<<3|byte(base&7))
	a.imm32(disp)
}

// leaLabel emits "lea dst, [rip+label]".
func (a *assembler) leaLabel(dst xreg, l label) {
	a.rex(true, dst, 0, 0, false)
	a.b = append(a.b, 0x8d, byte(dst&7)<<3|5)
	a.fixups = append(a.fixups, fixup{at: len(a.b), size: 4, end: len(a.b) + 4, label: l, jump: -1})
	a.imm32(0)
}

// imulRR emits "imul dst, src" (the low half, the same signed or not).
func (a *assembler) imulRR(w bool, dst, src xreg) { a.opRR(w, []byte{0x0f, 0xaf}, dst, src) }

// imulRI emits "imul dst, dst, imm".
func (a *assembler) imulRI(w bool, dst xreg, imm int32) {
	if fits8(int64(imm)) {
		a.opRR(w, []byte{0x6b}, dst, dst)
		a.imm8(int8(imm))
		return
	}
	a.opRR(w, []byte{0x69}, dst, dst)
	a.imm32(imm)
}

// imulRRI emits "imul dst, src, imm".
func (a *assembler) imulRRI(w bool, dst, src xreg, imm int32) {
	if fits8(int64(imm)) {
		a.opRR(w, []byte{0x6b}, dst, src)
		a.imm8(int8(imm))
		return
	}
	a.opRR(w, []byte{0x69}, dst, src)
	a.imm32(imm)
}

// group3 emits F7 /digit r: 3 neg, 6 div, 7 idiv.
func (a *assembler) group3(w bool, digit byte, r xreg) { a.opRR(w, []byte{0xf7}, xreg(digit), r) }

func (a *assembler) neg(w bool, r xreg)  { a.group3(w, 3, r) }
func (a *assembler) mul(w bool, r xreg)  { a.group3(w, 4, r) }
func (a *assembler) div(w bool, r xreg)  { a.group3(w, 6, r) }
func (a *assembler) idiv(w bool, r xreg) { a.group3(w, 7, r) }

// signExtendRAX emits cqo (64) or cdq (32): rdx:rax = sign-extended rax.
func (a *assembler) signExtendRAX(w bool) {
	if w {
		a.b = append(a.b, 0x48)
	}
	a.b = append(a.b, 0x99)
}

// shiftRI emits "op r, imm8".
func (a *assembler) shiftRI(w bool, op shiftOp, r xreg, n uint8) {
	a.opRR(w, []byte{0xc1}, xreg(op), r)
	a.b = append(a.b, n)
}

// shiftRCL emits "op r, cl".
func (a *assembler) shiftRCL(w bool, op shiftOp, r xreg) { a.opRR(w, []byte{0xd3}, xreg(op), r) }

// rol16by8 emits "rol r16, 8": swaps the two low bytes.
func (a *assembler) rol16by8(r xreg) {
	a.b = append(a.b, 0x66)
	a.opRR(false, []byte{0xc1}, xreg(shRol), r)
	a.b = append(a.b, 8)
}

// bswap emits "bswap r32/r64".
func (a *assembler) bswap(w bool, r xreg) {
	a.rex(w, 0, 0, r, false)
	a.b = append(a.b, 0x0f, 0xc8+byte(r&7))
}

// movzx16 emits "movzx dst32, src16"; movzx8 "movzx dst32, src8".
func (a *assembler) movzx16(dst, src xreg) { a.opRR(false, []byte{0x0f, 0xb7}, dst, src) }

// movsx emits a sign-extending register move from the low n bytes of src
// to dst (32 or 64 bits wide).
func (a *assembler) movsx(w bool, n int, dst, src xreg) {
	switch n {
	case 1:
		a.rex(w, dst, 0, src, src >= rsp && src <= rdi)
		a.b = append(a.b, 0x0f, 0xbe)
		a.modrmRR(dst, src)
	case 2:
		a.opRR(w, []byte{0x0f, 0xbf}, dst, src)
	default:
		a.opRR(true, []byte{0x63}, dst, src)
	}
}

// lockOp emits "lock op [base+disp], src" for add/or/and/xor.
func (a *assembler) lockOp(w bool, op aluOp, base xreg, disp int32, src xreg) {
	a.b = append(a.b, 0xf0)
	a.opRM(w, []byte{byte(op)<<3 | 1}, src, base, disp)
}

// xadd emits "lock xadd [base+disp], src".
func (a *assembler) xadd(w bool, base xreg, disp int32, src xreg) {
	a.b = append(a.b, 0xf0)
	a.opRM(w, []byte{0x0f, 0xc1}, src, base, disp)
}

// xchg emits "xchg [base+disp], src" (locked implicitly).
func (a *assembler) xchg(w bool, base xreg, disp int32, src xreg) {
	a.opRM(w, []byte{0x87}, src, base, disp)
}

// cmpxchg emits "lock cmpxchg [base+disp], src".
func (a *assembler) cmpxchg(w bool, base xreg, disp int32, src xreg) {
	a.b = append(a.b, 0xf0)
	a.opRM(w, []byte{0x0f, 0xb1}, src, base, disp)
}

func (a *assembler) push(r xreg) {
	a.rex(false, 0, 0, r, false)
	a.b = append(a.b, 0x50+byte(r&7))
}

func (a *assembler) pop(r xreg) {
	a.rex(false, 0, 0, r, false)
	a.b = append(a.b, 0x58+byte(r&7))
}

func (a *assembler) ret() { a.b = append(a.b, 0xc3) }

// jmpMem emits "jmp qword [base+disp]".
func (a *assembler) jmpMem(base xreg, disp int32) { a.opRM(false, []byte{0xff}, 4, base, disp) }

// relaxable returns whether the next relaxable jump must be long.
func (a *assembler) relaxable() (int, bool) {
	k := a.njump
	a.njump++
	if k >= len(a.long) {
		a.long = append(a.long, false)
	}
	return k, a.long[k] || a.allLong
}

// jmp emits "jmp label", short when it reaches.
func (a *assembler) jmp(l label) {
	k, long := a.relaxable()
	if long {
		a.b = append(a.b, 0xe9)
		a.fixups = append(a.fixups, fixup{at: len(a.b), size: 4, end: len(a.b) + 4, label: l, jump: k})
		a.imm32(0)
		return
	}
	a.b = append(a.b, 0xeb)
	a.fixups = append(a.fixups, fixup{at: len(a.b), size: 1, end: len(a.b) + 1, label: l, jump: k})
	a.b = append(a.b, 0)
}

// jcc emits "jcc label", short when it reaches.
func (a *assembler) jcc(c cond, l label) {
	k, long := a.relaxable()
	if long {
		a.b = append(a.b, 0x0f, 0x80|byte(c))
		a.fixups = append(a.fixups, fixup{at: len(a.b), size: 4, end: len(a.b) + 4, label: l, jump: k})
		a.imm32(0)
		return
	}
	a.b = append(a.b, 0x70|byte(c))
	a.fixups = append(a.fixups, fixup{at: len(a.b), size: 1, end: len(a.b) + 1, label: l, jump: k})
	a.b = append(a.b, 0)
}

// call emits "call label" (rel32).
func (a *assembler) call(l label) {
	a.b = append(a.b, 0xe8)
	a.fixups = append(a.fixups, fixup{at: len(a.b), size: 4, end: len(a.b) + 4, label: l, jump: -1})
	a.imm32(0)
}
