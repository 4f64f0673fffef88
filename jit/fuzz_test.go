package jit_test

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// FuzzDifferential runs fuzzer-made programs on the interpreter and the
// JIT, which must agree on r0, on every byte of memory (stack, argument,
// dynamic region), on the fault (kind, instruction, address, size,
// helper) and on the instruction count.
//
// The first byte picks how the rest becomes a program: raw instruction
// slots (most are refused by vm.Load, which is the filter), or a
// structured decoding that turns every 8 bytes into a valid-looking
// instruction (registers in range, jumps inside the program, memory
// operands near the argument block and the stack) so that the bulk of the
// inputs load and run. With the first byte 2 modulo 4, the helpers
// include one that tail-calls the running program: from the sub
// function, its runs nest (each in the frame of the previous one's).
func FuzzDifferential(f *testing.F) {
	skipIfUnsupported(f)
	for _, tc := range pitfalls {
		insns, err := asm.Assemble(tc.text)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{0}, asm.Encode(insns)...))
	}
	f.Add([]byte{1, 0x10, 1, 2, 3, 0xfe, 0, 0, 0, 0x21, 2, 1, 0, 0, 0, 0, 0, 0x30, 0, 0, 8, 0, 0, 0, 0})
	f.Add([]byte{1, 0x40, 1, 1, 0xf8, 0, 0, 0, 0, 0x52, 10, 0, 0xf8, 1, 2, 3, 4, 0x61, 0, 10, 0xf8})
	// A main that calls its sub function, which stores to its stack and
	// tail-calls the running program (helper 106, the last one in this
	// mode): 34 nested runs.
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 6, 1, 0, 0xf8, 9, 0, 0, 0, 13, 7, 0, 0, 0, 0, 0, 0})
	d := newDiffer()
	pd := newPacketDiffer(rand.New(rand.NewPCG(3, 4)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if lastInput != "" {
			os.WriteFile(lastInput, data, 0o644)
		}
		insns, mem := fuzzProgram(data)
		if insns == nil {
			return
		}
		p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
		if err != nil {
			return
		}
		_, _, diff := d.compare(p, mem, 20000)
		if diff != "" {
			t.Fatalf("engines differ: %s\nprogram:\n%s", diff, listing(insns))
		}
		// The same program as a forwarding program, on frames: r1 is the
		// context, and the JIT uses the analysis' proofs for frame runs.
		if diff := pd.compare(p); diff != "" {
			t.Fatalf("engines differ on frames: %s\nprogram:\n%s", diff, listing(insns))
		}
	})
}

// lastInput, when set, is a file each input is written to before it runs
// (to find an input that hangs or crashes the worker), one per process.
var lastInput = func() string {
	if f := os.Getenv("JIT_FUZZ_LAST_INPUT"); f != "" {
		return f + "." + itoa(os.Getpid())
	}
	return ""
}()

func listing(insns []asm.Instruction) string {
	s := ""
	for k, l := range asm.Disassemble(insns) {
		s += itoa(k) + ": " + l + "\n"
	}
	return s
}

func itoa(v int) string {
	if v < 0 {
		return "-" + itoa(-v)
	}
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoa(v/10) + string(rune('0'+v%10))
}

// fuzzMem is the argument block of fuzzed programs: 40 bytes of a pattern.
func fuzzMem() []byte {
	b := make([]byte, 40)
	for k := range b {
		b[k] = byte(k*37 + 11)
	}
	return b
}

func fuzzProgram(data []byte) ([]asm.Instruction, []byte) {
	if len(data) < 1 {
		return nil, nil
	}
	mode, data := data[0], data[1:]
	if mode%4 == 0 {
		insns, err := asm.Decode(data[:len(data)/8*8])
		if err != nil || len(insns) == 0 {
			return nil, nil
		}
		return insns, fuzzMem()
	}
	hs := helpers
	if mode%4 == 2 {
		hs = helpersTailRun
	}
	return structured(data, hs), fuzzMem()
}

var (
	aluOps  = []uint8{asm.ALUAdd, asm.ALUSub, asm.ALUMul, asm.ALUDiv, asm.ALUOr, asm.ALUAnd, asm.ALULsh, asm.ALURsh, asm.ALUNeg, asm.ALUMod, asm.ALUXor, asm.ALUMov, asm.ALUArsh, asm.ALUEnd}
	jmpOps  = []uint8{asm.JmpJEQ, asm.JmpJGT, asm.JmpJGE, asm.JmpJSET, asm.JmpJNE, asm.JmpJSGT, asm.JmpJSGE, asm.JmpJLT, asm.JmpJLE, asm.JmpJSLT, asm.JmpJSLE}
	atomics = []int32{asm.AtomicAdd, asm.AtomicOr, asm.AtomicAnd, asm.AtomicXor, asm.AtomicAdd | asm.AtomicFetch, asm.AtomicOr | asm.AtomicFetch, asm.AtomicAnd | asm.AtomicFetch, asm.AtomicXor | asm.AtomicFetch, asm.AtomicXchg, asm.AtomicCmpXchg}
	sizes   = []uint8{asm.SizeB, asm.SizeH, asm.SizeW, asm.SizeDW}
	helpers = []int32{helperMix, helperFail, helperRegion, helperTail, helperCounter, helperTailMe, vm.HelperGetSmpProcessorID}
	// helpersTailRun: the fuzzer's mode 2 (a list of its own, so that the
	// inputs kept in testdata decode as they did).
	helpersTailRun = append(helpers[:len(helpers):len(helpers)], helperTailRun)
	imms           = []int32{0, 1, -1, 2, 7, 8, 16, 31, 32, 63, 64, 255, -256, 0x7fffffff, -0x80000000, 0x8000}
)

// structured decodes data, 8 bytes per instruction, into a main function
// and, when it calls one, a second function after it.
func structured(data []byte, helpers []int32) []asm.Instruction {
	n := len(data) / 8
	if n == 0 || n > 200 {
		return nil
	}
	split := n
	if data[0]&1 == 1 && n > 2 {
		split = n/2 + 1
	}
	var main, sub []asm.Instruction
	for k := 0; k < n; k++ {
		b := data[8*k : 8*k+8]
		ins := decodeOne(b, helpers)
		if k < split {
			main = append(main, ins...)
		} else {
			sub = append(sub, ins...)
		}
	}
	main = append(main, asm.Instruction{Op: asm.OpExit})
	out := main
	subStart := -1
	if len(sub) > 0 {
		subStart = len(main)
		out = append(out, sub...)
		out = append(out, asm.Instruction{Op: asm.OpExit})
	}
	// Fix up control flow: jumps stay inside their function, local calls
	// go to the sub function (or become helper calls without one).
	lo, hi := 0, len(main)
	for pc := 0; pc < len(out); pc++ {
		if pc == subStart {
			lo, hi = subStart, len(out)
		}
		i := &out[pc]
		if i.IsLDDW() {
			pc++
			continue
		}
		cl := i.Class()
		if cl != asm.ClassJMP && cl != asm.ClassJMP32 {
			continue
		}
		switch {
		case i.Op == asm.OpCall && i.Src == asm.PseudoCall:
			if subStart < 0 || pc >= subStart {
				*i = asm.Instruction{Op: asm.OpCall, Imm: helperCounter}
				continue
			}
			i.Imm = int32(subStart - pc - 1)
		case i.Op == asm.OpCall || i.Op == asm.OpCallX || i.Op == asm.OpExit:
		case i.Op == asm.OpJA32:
			i.Imm = int32(target(lo, hi, pc, int(i.Imm), out) - pc - 1)
		default:
			i.Off = int16(target(lo, hi, pc, int(i.Off), out) - pc - 1)
		}
	}
	return out
}

// target maps a fuzzed displacement to an instruction of [lo, hi) that is
// not the second slot of lddw.
func target(lo, hi, pc, d int, insns []asm.Instruction) int {
	t := pc + 1 + d
	if t < lo || t >= hi {
		t = lo + ((t%(hi-lo))+(hi-lo))%(hi-lo)
	}
	if t > lo && insns[t-1].IsLDDW() {
		t--
	}
	return t
}

func decodeOne(b []byte, helpers []int32) []asm.Instruction {
	imm := int32(binary.LittleEndian.Uint32(b[4:]))
	if b[3]&0x80 == 0 {
		imm = imms[int(b[4])%len(imms)]
	}
	dst := b[1] % 10
	src := b[2] % 11
	off := int16(int8(b[3]))
	memReg := func(r uint8) uint8 { // bias bases toward pointers
		switch r % 4 {
		case 0:
			return 1
		case 1:
			return 10
		}
		return r % 11
	}
	memOff := func(base uint8) int16 {
		if base == 10 {
			return -int16(b[3]%66) * 8 / int16(1+b[5]%8)
		}
		return int16(int8(b[3])) % 48
	}
	switch b[0] % 16 {
	case 0, 1, 2, 3: // ALU
		op := aluOps[int(b[0]/16)%len(aluOps)]
		cls := uint8(asm.ClassALU64)
		if b[5]&1 == 1 {
			cls = asm.ClassALU
		}
		i := asm.Instruction{Op: cls | op, Dst: dst}
		if b[5]&2 == 2 && op != asm.ALUNeg && op != asm.ALUEnd {
			i.Op |= asm.SrcX
			i.Src = src
		} else {
			i.Imm = imm
		}
		switch op {
		case asm.ALUDiv, asm.ALUMod:
			i.Off = int16(b[6] & 1)
		case asm.ALUMov:
			if i.Op&asm.SrcX != 0 && b[6]&3 != 0 {
				i.Off = []int16{0, 8, 16, 32}[b[6]&3]
			}
		case asm.ALUNeg:
			i.Imm = 0
		case asm.ALUEnd:
			i.Imm = []int32{16, 32, 64, 16}[b[6]&3]
			if b[6]&4 != 0 && cls == asm.ClassALU {
				i.Op |= asm.SrcX
			}
		}
		return []asm.Instruction{i}
	case 4, 5: // loads
		base := memReg(src)
		mode := uint8(asm.ModeMEM)
		size := sizes[b[6]%4]
		if b[6]&4 != 0 && size != asm.SizeDW {
			mode = asm.ModeMEMSX
		}
		return []asm.Instruction{{Op: asm.ClassLDX | mode | size, Dst: dst, Src: base, Off: memOff(base)}}
	case 6: // store immediate
		base := memReg(b[1])
		return []asm.Instruction{{Op: asm.ClassST | asm.ModeMEM | sizes[b[6]%4], Dst: base, Off: memOff(base), Imm: imm}}
	case 7: // store register
		base := memReg(b[1])
		return []asm.Instruction{{Op: asm.ClassSTX | asm.ModeMEM | sizes[b[6]%4], Dst: base, Src: src, Off: memOff(base)}}
	case 8: // atomics
		base := memReg(b[1])
		size := uint8(asm.SizeDW)
		if b[6]&1 == 1 {
			size = asm.SizeW
		}
		o := memOff(base)
		if b[6]&2 == 0 {
			o &^= 3
		}
		return []asm.Instruction{{Op: asm.ClassSTX | asm.ModeATOMIC | size, Dst: base, Src: src, Off: o, Imm: atomics[int(b[7])%len(atomics)]}}
	case 9, 10: // conditional jumps
		cls := uint8(asm.ClassJMP)
		if b[5]&1 == 1 {
			cls = asm.ClassJMP32
		}
		i := asm.Instruction{Op: cls | jmpOps[int(b[0]/16)%len(jmpOps)], Dst: b[1] % 11, Off: off % 12}
		if b[5]&2 == 2 {
			i.Op |= asm.SrcX
			i.Src = src
		} else {
			i.Imm = imm
		}
		return []asm.Instruction{i}
	case 11: // unconditional jumps
		if b[5]&1 == 1 {
			return []asm.Instruction{{Op: asm.OpJA32, Imm: int32(off % 12)}}
		}
		return []asm.Instruction{{Op: asm.OpJA, Off: off % 12}}
	case 12: // lddw
		v := binary.LittleEndian.Uint64(b) ^ 0x5a5a5a5a5a5a5a5a
		if b[3]&1 == 0 {
			v = uint64(int64(imm))
		}
		s := asm.LoadImm64(dst, v)
		return s[:]
	case 13: // helper calls
		if b[5]&3 == 3 {
			return []asm.Instruction{{Op: asm.OpCallX, Dst: b[1] % 11}}
		}
		return []asm.Instruction{{Op: asm.OpCall, Imm: helpers[int(b[1])%len(helpers)]}}
	case 14: // local call
		return []asm.Instruction{{Op: asm.OpCall, Src: asm.PseudoCall}}
	default: // pointer moves
		r := []uint8{1, 10, 0}[b[1]%3]
		return []asm.Instruction{
			{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcX, Dst: 6 + b[2]%4, Src: r},
		}
	}
}
