// Package asm defines eBPF instructions as RFC 9669 encodes them: their
// binary form, a text assembler and a disassembler whose syntax is that of
// the bpf_conformance corpus (`mov32 %r0, 1`, `ldxw %r1, [%r2+4]`).
//
// A program is a slice of Instruction, one per 8-byte slot: a 64-bit load
// (`lddw`) takes two slots, the second holding the upper 32 bits of the
// immediate in its Imm field.
package asm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// InstructionSize is the size of one encoded instruction slot.
const InstructionSize = 8

// Instruction is one 8-byte eBPF instruction slot.
type Instruction struct {
	Op  uint8 // opcode: class | (mode|size) or (op|source)
	Dst uint8 // destination register, 0..15 as encoded (valid: 0..10)
	Src uint8 // source register, 0..15 as encoded (valid: 0..10)
	Off int16
	Imm int32
}

// Instruction classes (the low three bits of the opcode).
const (
	ClassLD    = 0x00
	ClassLDX   = 0x01
	ClassST    = 0x02
	ClassSTX   = 0x03
	ClassALU   = 0x04
	ClassJMP   = 0x05
	ClassJMP32 = 0x06
	ClassALU64 = 0x07
)

// Source bit of ALU and jump opcodes.
const (
	SrcK = 0x00 // immediate operand
	SrcX = 0x08 // register operand
)

// ALU operations (the high four bits of an ALU/ALU64 opcode).
const (
	ALUAdd  = 0x00
	ALUSub  = 0x10
	ALUMul  = 0x20
	ALUDiv  = 0x30
	ALUOr   = 0x40
	ALUAnd  = 0x50
	ALULsh  = 0x60
	ALURsh  = 0x70
	ALUNeg  = 0x80
	ALUMod  = 0x90
	ALUXor  = 0xa0
	ALUMov  = 0xb0
	ALUArsh = 0xc0
	ALUEnd  = 0xd0
)

// Jump operations (the high four bits of a JMP/JMP32 opcode).
const (
	JmpJA   = 0x00
	JmpJEQ  = 0x10
	JmpJGT  = 0x20
	JmpJGE  = 0x30
	JmpJSET = 0x40
	JmpJNE  = 0x50
	JmpJSGT = 0x60
	JmpJSGE = 0x70
	JmpCall = 0x80
	JmpExit = 0x90
	JmpJLT  = 0xa0
	JmpJLE  = 0xb0
	JmpJSLT = 0xc0
	JmpJSLE = 0xd0
)

// Load/store sizes and modes.
const (
	SizeW  = 0x00
	SizeH  = 0x08
	SizeB  = 0x10
	SizeDW = 0x18

	ModeIMM    = 0x00
	ModeABS    = 0x20
	ModeIND    = 0x40
	ModeMEM    = 0x60
	ModeMEMSX  = 0x80
	ModeATOMIC = 0xc0
)

// Atomic operations, in the immediate of an atomic instruction.
const (
	AtomicAdd     = 0x00
	AtomicOr      = 0x40
	AtomicAnd     = 0x50
	AtomicXor     = 0xa0
	AtomicFetch   = 0x01
	AtomicXchg    = 0xe0 | AtomicFetch
	AtomicCmpXchg = 0xf0 | AtomicFetch
)

// Pseudo sources of lddw (the Src field of its first slot) and of call.
const (
	PseudoMapFD       = 1 // imm: map id; loads the map handle
	PseudoMapValue    = 2 // imm: map id, next imm: offset; loads the address of the value
	PseudoBTFID       = 3
	PseudoFunc        = 4
	PseudoMapIdx      = 5
	PseudoMapIdxValue = 6

	PseudoCall     = 1 // call src: bpf-to-bpf call, imm is relative
	PseudoKfuncCal = 2 // call src: kernel function (refused)
)

// Common full opcodes.
const (
	OpLDDW  = ClassLD | ModeIMM | SizeDW // 0x18
	OpCall  = ClassJMP | JmpCall         // 0x85
	OpCallX = ClassJMP | SrcX | JmpCall  // 0x8d
	OpExit  = ClassJMP | JmpExit         // 0x95
	OpJA    = ClassJMP | JmpJA           // 0x05
	OpJA32  = ClassJMP32 | JmpJA         // 0x06
)

// Class returns the instruction class.
func (i Instruction) Class() uint8 { return i.Op & 0x07 }

// IsLDDW reports whether i is the first slot of a 64-bit immediate load.
func (i Instruction) IsLDDW() bool { return i.Op == OpLDDW }

// Encode appends the little-endian encoding of i to b.
func (i Instruction) Encode(b []byte) []byte {
	return append(b, i.Op, i.Dst&0x0f|i.Src<<4,
		byte(i.Off), byte(uint16(i.Off)>>8),
		byte(i.Imm), byte(uint32(i.Imm)>>8), byte(uint32(i.Imm)>>16), byte(uint32(i.Imm)>>24))
}

// DecodeOne decodes one instruction slot from the first 8 bytes of b.
func DecodeOne(b []byte) Instruction {
	_ = b[7]
	return Instruction{
		Op:  b[0],
		Dst: b[1] & 0x0f,
		Src: b[1] >> 4,
		Off: int16(binary.LittleEndian.Uint16(b[2:])),
		Imm: int32(binary.LittleEndian.Uint32(b[4:])),
	}
}

// ErrLength is returned by Decode when the input is not a whole number of
// instruction slots.
var ErrLength = errors.New("program length is not a multiple of 8 bytes")

// Decode splits b into instruction slots. It checks only the length: the
// meaning of each instruction is the validator's business.
func Decode(b []byte) ([]Instruction, error) {
	if len(b)%InstructionSize != 0 {
		return nil, fmt.Errorf("%d bytes: %w", len(b), ErrLength)
	}
	insns := make([]Instruction, len(b)/InstructionSize)
	for n := range insns {
		insns[n] = DecodeOne(b[n*InstructionSize:])
	}
	return insns, nil
}

// Encode returns the binary form of a program.
func Encode(insns []Instruction) []byte {
	b := make([]byte, 0, len(insns)*InstructionSize)
	for _, i := range insns {
		b = i.Encode(b)
	}
	return b
}

// Imm64 returns the 64-bit immediate of an lddw whose slots are lo and hi.
func Imm64(lo, hi Instruction) uint64 {
	return uint64(uint32(lo.Imm)) | uint64(uint32(hi.Imm))<<32
}

// LoadImm64 returns the two slots of `lddw dst, v`.
func LoadImm64(dst uint8, v uint64) [2]Instruction {
	return [2]Instruction{
		{Op: OpLDDW, Dst: dst, Imm: int32(uint32(v))},
		{Imm: int32(uint32(v >> 32))},
	}
}
