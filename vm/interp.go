package vm

import (
	"math"
	"math/bits"
	"sync/atomic"

	"github.com/govswitch/vswitch/asm"
)

type frame struct {
	ret   int
	saved [4]uint64 // r6..r9
	r10   uint64
}

//go:generate go run ./internal/threadgen/cmd

// runSwitch is the interpreter written as one switch on the opcode. It is
// where instructions are implemented: Run (interp_threaded.go) is
// generated from it with threaded dispatch, and the tests compare the two.
func (p *Program) runSwitch(env *Env, r1, r2 uint64) (uint64, error) {
	env.begin(p)
	env.tailCalls = 0
	env.charged = 0
	st := &env.st
	st.budget = env.Budget
	if st.budget == 0 {
		st.budget = DefaultBudget
	}
	var regs [16]uint64
	regs[1], regs[2] = r1, r2
	regs[10] = env.StackTop()
	frames := &env.frames
	// Rarely touched state lives in env.st, so that the dispatch loop
	// carries only pc and code in registers. st.count is the number of
	// instruction slots executed, brought up to date whenever control
	// leaves a straight run (jumps, calls, exits, faults); st.start is
	// where the current run began.
	st.depth, st.start, st.count = 0, 0, 0
	code := p.code
	pc := 0

	for {
		// The inner loop makes no calls (faults return), so that pc and
		// code stay in registers; what needs calls, helpers and accesses
		// outside the stack and the argument regions, leaves it for
		// p.slow and comes back.
	inner:
		for {
			w := fetchWord(code, pc)
			pc++
			dst := &regs[w>>8&15]
			switch uint8(w) {
			// ALU64, immediate
			case asm.ClassALU64 | asm.ALUAdd | asm.SrcK:
				*dst += uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUSub | asm.SrcK:
				*dst -= uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUMul | asm.SrcK:
				*dst *= uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUDiv | asm.SrcK:
				*dst = div64(*dst, uint64(int64(int32(w>>32))), int16(w>>16))
			case asm.ClassALU64 | asm.ALUMod | asm.SrcK:
				*dst = mod64(*dst, uint64(int64(int32(w>>32))), int16(w>>16))
			case asm.ClassALU64 | asm.ALUOr | asm.SrcK:
				*dst |= uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUAnd | asm.SrcK:
				*dst &= uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUXor | asm.SrcK:
				*dst ^= uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALULsh | asm.SrcK:
				*dst <<= uint64(int32(w>>32)) & 63
			case asm.ClassALU64 | asm.ALURsh | asm.SrcK:
				*dst >>= uint64(int32(w>>32)) & 63
			case asm.ClassALU64 | asm.ALUArsh | asm.SrcK:
				*dst = uint64(int64(*dst) >> (uint64(int32(w>>32)) & 63))
			case asm.ClassALU64 | asm.ALUMov | asm.SrcK:
				*dst = uint64(int64(int32(w >> 32)))
			case asm.ClassALU64 | asm.ALUNeg:
				*dst = -*dst
			case asm.ClassALU64 | asm.ALUEnd:
				*dst = bswap(*dst, int32(w>>32))

			// ALU64, register
			case asm.ClassALU64 | asm.ALUAdd | asm.SrcX:
				*dst += regs[w>>12&15]
			case asm.ClassALU64 | asm.ALUSub | asm.SrcX:
				*dst -= regs[w>>12&15]
			case asm.ClassALU64 | asm.ALUMul | asm.SrcX:
				*dst *= regs[w>>12&15]
			case asm.ClassALU64 | asm.ALUDiv | asm.SrcX:
				*dst = div64(*dst, regs[w>>12&15], int16(w>>16))
			case asm.ClassALU64 | asm.ALUMod | asm.SrcX:
				*dst = mod64(*dst, regs[w>>12&15], int16(w>>16))
			case asm.ClassALU64 | asm.ALUOr | asm.SrcX:
				*dst |= regs[w>>12&15]
			case asm.ClassALU64 | asm.ALUAnd | asm.SrcX:
				*dst &= regs[w>>12&15]
			case asm.ClassALU64 | asm.ALUXor | asm.SrcX:
				*dst ^= regs[w>>12&15]
			case asm.ClassALU64 | asm.ALULsh | asm.SrcX:
				*dst <<= regs[w>>12&15] & 63
			case asm.ClassALU64 | asm.ALURsh | asm.SrcX:
				*dst >>= regs[w>>12&15] & 63
			case asm.ClassALU64 | asm.ALUArsh | asm.SrcX:
				*dst = uint64(int64(*dst) >> (regs[w>>12&15] & 63))
			case asm.ClassALU64 | asm.ALUMov | asm.SrcX:
				*dst = movsx64(regs[w>>12&15], int16(w>>16))

			// ALU32, immediate
			case asm.ClassALU | asm.ALUAdd | asm.SrcK:
				*dst = uint64(uint32(*dst) + uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALUSub | asm.SrcK:
				*dst = uint64(uint32(*dst) - uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALUMul | asm.SrcK:
				*dst = uint64(uint32(*dst) * uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALUDiv | asm.SrcK:
				*dst = div32(*dst, uint64(uint32(int32(w>>32))), int16(w>>16))
			case asm.ClassALU | asm.ALUMod | asm.SrcK:
				*dst = mod32(*dst, uint64(uint32(int32(w>>32))), int16(w>>16))
			case asm.ClassALU | asm.ALUOr | asm.SrcK:
				*dst = uint64(uint32(*dst) | uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALUAnd | asm.SrcK:
				*dst = uint64(uint32(*dst) & uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALUXor | asm.SrcK:
				*dst = uint64(uint32(*dst) ^ uint32(int32(w>>32)))
			case asm.ClassALU | asm.ALULsh | asm.SrcK:
				*dst = uint64(uint32(*dst) << (uint32(int32(w>>32)) & 31))
			case asm.ClassALU | asm.ALURsh | asm.SrcK:
				*dst = uint64(uint32(*dst) >> (uint32(int32(w>>32)) & 31))
			case asm.ClassALU | asm.ALUArsh | asm.SrcK:
				*dst = uint64(uint32(int32(*dst) >> (uint32(int32(w>>32)) & 31)))
			case asm.ClassALU | asm.ALUMov | asm.SrcK:
				*dst = uint64(uint32(int32(w >> 32)))
			case asm.ClassALU | asm.ALUNeg:
				*dst = uint64(-uint32(*dst))
			case asm.ClassALU | asm.ALUEnd | asm.SrcK: // to little endian: truncate
				*dst = truncate(*dst, int32(w>>32))
			case asm.ClassALU | asm.ALUEnd | asm.SrcX: // to big endian
				*dst = bswap(*dst, int32(w>>32))

			// ALU32, register
			case asm.ClassALU | asm.ALUAdd | asm.SrcX:
				*dst = uint64(uint32(*dst) + uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALUSub | asm.SrcX:
				*dst = uint64(uint32(*dst) - uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALUMul | asm.SrcX:
				*dst = uint64(uint32(*dst) * uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALUDiv | asm.SrcX:
				*dst = div32(*dst, uint64(uint32(regs[w>>12&15])), int16(w>>16))
			case asm.ClassALU | asm.ALUMod | asm.SrcX:
				*dst = mod32(*dst, uint64(uint32(regs[w>>12&15])), int16(w>>16))
			case asm.ClassALU | asm.ALUOr | asm.SrcX:
				*dst = uint64(uint32(*dst) | uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALUAnd | asm.SrcX:
				*dst = uint64(uint32(*dst) & uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALUXor | asm.SrcX:
				*dst = uint64(uint32(*dst) ^ uint32(regs[w>>12&15]))
			case asm.ClassALU | asm.ALULsh | asm.SrcX:
				*dst = uint64(uint32(*dst) << (uint32(regs[w>>12&15]) & 31))
			case asm.ClassALU | asm.ALURsh | asm.SrcX:
				*dst = uint64(uint32(*dst) >> (uint32(regs[w>>12&15]) & 31))
			case asm.ClassALU | asm.ALUArsh | asm.SrcX:
				*dst = uint64(uint32(int32(*dst) >> (uint32(regs[w>>12&15]) & 31)))
			case asm.ClassALU | asm.ALUMov | asm.SrcX:
				*dst = uint64(uint32(movsx64(regs[w>>12&15], int16(w>>16))))

			// lddw (map references were resolved at load)
			case asm.OpLDDW:
				*dst = uint64(uint32(int32(w>>32))) | uint64(uint32(int32(fetchWord(code, pc)>>32)))<<32
				pc++

			// loads
			case asm.ClassLDX | asm.ModeMEM | asm.SizeB:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 1) {
					st.pc = pc
					break inner
				}
				*dst = load8(a)
			case asm.ClassLDX | asm.ModeMEM | asm.SizeH:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 2) {
					st.pc = pc
					break inner
				}
				*dst = load16(a)
			case asm.ClassLDX | asm.ModeMEM | asm.SizeW:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 4) {
					st.pc = pc
					break inner
				}
				*dst = load32(a)
			case asm.ClassLDX | asm.ModeMEM | asm.SizeDW:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 8) {
					st.pc = pc
					break inner
				}
				*dst = load64(a)
			case asm.ClassLDX | asm.ModeMEMSX | asm.SizeB:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 1) {
					st.pc = pc
					break inner
				}
				*dst = uint64(int64(int8(load8(a))))
			case asm.ClassLDX | asm.ModeMEMSX | asm.SizeH:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 2) {
					st.pc = pc
					break inner
				}
				*dst = uint64(int64(int16(load16(a))))
			case asm.ClassLDX | asm.ModeMEMSX | asm.SizeW:
				a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
				if !env.fastRead(a, 4) {
					st.pc = pc
					break inner
				}
				*dst = uint64(int64(int32(load32(a))))

			// stores
			case asm.ClassST | asm.ModeMEM | asm.SizeB, asm.ClassSTX | asm.ModeMEM | asm.SizeB:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 1) {
					st.pc = pc
					break inner
				}
				store8(a, storeValue(w, &regs))
			case asm.ClassST | asm.ModeMEM | asm.SizeH, asm.ClassSTX | asm.ModeMEM | asm.SizeH:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 2) {
					st.pc = pc
					break inner
				}
				store16(a, storeValue(w, &regs))
			case asm.ClassST | asm.ModeMEM | asm.SizeW, asm.ClassSTX | asm.ModeMEM | asm.SizeW:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 4) {
					st.pc = pc
					break inner
				}
				store32(a, storeValue(w, &regs))
			case asm.ClassST | asm.ModeMEM | asm.SizeDW, asm.ClassSTX | asm.ModeMEM | asm.SizeDW:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 8) {
					st.pc = pc
					break inner
				}
				store64(a, storeValue(w, &regs))

			// atomics
			case asm.ClassSTX | asm.ModeATOMIC | asm.SizeW:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 4) {
					st.pc = pc
					break inner
				}
				if a&3 != 0 {
					return 0, env.memFault(KindMisaligned, pc-1, a, 4, st.count+uint64(pc-st.start))
				}
				atomic32(w, p32(a), &regs)
			case asm.ClassSTX | asm.ModeATOMIC | asm.SizeDW:
				a := *dst + uint64(int64(int16(w>>16)))
				if !env.fastWrite(a, 8) {
					st.pc = pc
					break inner
				}
				if a&7 != 0 {
					return 0, env.memFault(KindMisaligned, pc-1, a, 8, st.count+uint64(pc-st.start))
				}
				atomic64(w, p64(a), &regs)

			// jumps
			case asm.OpJA:
				st.count += uint64(pc - st.start)
				pc += int(int16(w >> 16))
				st.start = pc
				if int16(w>>16) < 0 && st.count > st.budget {
					return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
				}
			case asm.OpJA32:
				st.count += uint64(pc - st.start)
				pc += int(int32(w >> 32))
				st.start = pc
				if int32(w>>32) < 0 && st.count > st.budget {
					return 0, env.setFault(KindBudget, pc-1-int(int32(w>>32)), st.count)
				}
			case asm.ClassJMP | asm.JmpJEQ | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a == b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJEQ | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a == b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJNE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a != b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJNE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a != b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJGT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a > b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJGT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a > b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJGE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a >= b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJGE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a >= b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJLT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a < b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJLT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a < b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJLE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a <= b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJLE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a <= b {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSET | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); a&b != 0 {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSET | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; a&b != 0 {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSGT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int64(a) > int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSGT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int64(a) > int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSGE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int64(a) >= int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSGE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int64(a) >= int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSLT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int64(a) < int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSLT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int64(a) < int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSLE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int64(a) <= int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP | asm.JmpJSLE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int64(a) <= int64(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJEQ | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) == uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJEQ | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) == uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJNE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) != uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJNE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) != uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJGT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) > uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJGT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) > uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJGE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) >= uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJGE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) >= uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJLT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) < uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJLT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) < uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJLE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a) <= uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJLE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a) <= uint32(b) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSET | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); uint32(a)&uint32(b) != 0 {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSET | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; uint32(a)&uint32(b) != 0 {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSGT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int32(uint32(a)) > int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSGT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int32(uint32(a)) > int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSGE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int32(uint32(a)) >= int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSGE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int32(uint32(a)) >= int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSLT | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int32(uint32(a)) < int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSLT | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int32(uint32(a)) < int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSLE | asm.SrcK:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], uint64(int64(int32(w>>32))); int32(uint32(a)) <= int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.ClassJMP32 | asm.JmpJSLE | asm.SrcX:
				st.count += uint64(pc - st.start)
				if a, b := regs[w>>8&15], regs[w>>12&15]; int32(uint32(a)) <= int32(uint32(b)) {
					pc += int(int16(w >> 16))
					if int16(w>>16) < 0 && st.count > st.budget {
						return 0, env.setFault(KindBudget, pc-1-int(int16(w>>16)), st.count)
					}
				}
				st.start = pc
			case asm.OpExit:
				st.count += uint64(pc - st.start)
				if st.depth == 0 {
					env.Executed = st.count
					return regs[0], nil
				}
				st.depth--
				f := &frames[st.depth]
				pc, st.start = f.ret, f.ret
				regs[6], regs[7], regs[8], regs[9] = f.saved[0], f.saved[1], f.saved[2], f.saved[3]
				regs[10] = f.r10
				if st.depth < st.base {
					// The main frame of a program that a tail call put in
					// place of a function exited: p.slow returns to the
					// function's caller, in its program.
					st.pc = pc
					break inner
				}
			case asm.OpCall, asm.OpCallX:
				st.count += uint64(pc - st.start)
				st.start = pc
				if st.count > st.budget {
					return 0, env.setFault(KindBudget, pc-1, st.count)
				}
				if w>>12&15 == asm.PseudoCall && uint8(w) == asm.OpCall {
					if st.depth+1-st.base >= MaxCallDepth {
						return 0, env.setFault(KindCallDepth, pc-1, st.count)
					}
					frames[st.depth] = frame{ret: pc, saved: [4]uint64{regs[6], regs[7], regs[8], regs[9]}, r10: regs[10]}
					st.depth++
					regs[10] -= StackFrameSize
					pc += int(int32(w >> 32))
					st.start = pc
					continue
				}
				st.pc = pc
				break inner
			case 0x00, 0x01, 0x02, 0x03, 0xff:
				// Unreachable for a validated program: listed so that the
				// jump table spans every opcode and needs no range check.
				return 0, env.setFault(KindRead, pc-1, st.count+uint64(pc-st.start))
			default:
				// Unreachable for a validated program.
				return 0, env.setFault(KindRead, pc-1, st.count+uint64(pc-st.start))
			}
		}
		if err := p.slow(env, &regs); err != nil {
			if err == errContDone {
				return regs[0], nil
			}
			return 0, err
		}
		pc, code = st.pc, env.prog.code
	}
}

// slow executes the instruction before env.st.pc, which the fast loop left: a memory
// access outside the fixed regions (checked against every region) or a
// helper call. pc comes and goes in env.st.pc.
func (p *Program) slow(env *Env, regs *[16]uint64) error {
	st := &env.st
	if st.depth < st.base {
		// The return from a tail-called program's main frame, which the
		// fast loop completed but for the program.
		if env.popLevel(regs) {
			return errContDone
		}
		return nil
	}
	pc := st.pc
	w := fetchWord(env.prog.code, pc-1)
	dst := &regs[w>>8&15]
	switch uint8(w) {
	// loads
	case asm.ClassLDX | asm.ModeMEM | asm.SizeB:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 1, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 1, st.count+uint64(pc-st.start))
		}
		*dst = load8(a)
	case asm.ClassLDX | asm.ModeMEM | asm.SizeH:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 2, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 2, st.count+uint64(pc-st.start))
		}
		*dst = load16(a)
	case asm.ClassLDX | asm.ModeMEM | asm.SizeW:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 4, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 4, st.count+uint64(pc-st.start))
		}
		*dst = load32(a)
	case asm.ClassLDX | asm.ModeMEM | asm.SizeDW:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 8, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 8, st.count+uint64(pc-st.start))
		}
		*dst = load64(a)
	case asm.ClassLDX | asm.ModeMEMSX | asm.SizeB:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 1, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 1, st.count+uint64(pc-st.start))
		}
		*dst = uint64(int64(int8(load8(a))))
	case asm.ClassLDX | asm.ModeMEMSX | asm.SizeH:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 2, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 2, st.count+uint64(pc-st.start))
		}
		*dst = uint64(int64(int16(load16(a))))
	case asm.ClassLDX | asm.ModeMEMSX | asm.SizeW:
		a := regs[w>>12&15] + uint64(int64(int16(w>>16)))
		if env.access(a, 4, pc-1) == nil {
			return env.memFault(KindRead, pc-1, a, 4, st.count+uint64(pc-st.start))
		}
		*dst = uint64(int64(int32(load32(a))))

	// stores
	case asm.ClassST | asm.ModeMEM | asm.SizeB, asm.ClassSTX | asm.ModeMEM | asm.SizeB:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 1, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 1, st.count+uint64(pc-st.start))
		}
		store8(a, storeValue(w, regs))
	case asm.ClassST | asm.ModeMEM | asm.SizeH, asm.ClassSTX | asm.ModeMEM | asm.SizeH:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 2, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 2, st.count+uint64(pc-st.start))
		}
		store16(a, storeValue(w, regs))
	case asm.ClassST | asm.ModeMEM | asm.SizeW, asm.ClassSTX | asm.ModeMEM | asm.SizeW:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 4, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 4, st.count+uint64(pc-st.start))
		}
		store32(a, storeValue(w, regs))
	case asm.ClassST | asm.ModeMEM | asm.SizeDW, asm.ClassSTX | asm.ModeMEM | asm.SizeDW:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 8, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 8, st.count+uint64(pc-st.start))
		}
		store64(a, storeValue(w, regs))

	// atomics
	case asm.ClassSTX | asm.ModeATOMIC | asm.SizeW:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 4, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 4, st.count+uint64(pc-st.start))
		}
		if a&3 != 0 {
			return env.memFault(KindMisaligned, pc-1, a, 4, st.count+uint64(pc-st.start))
		}
		atomic32(w, p32(a), regs)
	case asm.ClassSTX | asm.ModeATOMIC | asm.SizeDW:
		a := *dst + uint64(int64(int16(w>>16)))
		if r := env.access(a, 8, pc-1); r == nil || !r.Writable {
			return env.memFault(KindWrite, pc-1, a, 8, st.count+uint64(pc-st.start))
		}
		if a&7 != 0 {
			return env.memFault(KindMisaligned, pc-1, a, 8, st.count+uint64(pc-st.start))
		}
		atomic64(w, p64(a), regs)

	case asm.OpCall, asm.OpCallX:
		st.budget = SubBudget(st.budget, CallCost)
		id := int32(w >> 32)
		if uint8(w) == asm.OpCallX {
			v := regs[w>>8&15]
			if v >= uint64(len(env.prog.helpers)) || env.prog.helpers[v] == nil {
				err := env.setFault(KindBadHelper, pc-1, st.count)
				env.fault.Helper = int32(min(v, math.MaxInt32))
				return err
			}
			id = int32(v)
		}
		r0, err := env.prog.helpers[id](env, regs[1], regs[2], regs[3], regs[4], regs[5])
		if err != nil {
			env.charged = 0
			e := env.setFault(KindHelper, pc-1, st.count)
			env.fault.Helper, env.fault.Err = id, err
			return e
		}
		regs[0] = r0
		if env.charged != 0 {
			st.budget = SubBudget(st.budget, env.charged)
			env.charged = 0
		}
		if env.tail != nil {
			// Tail call: the new program starts at its first instruction
			// in the current frame, with the registers as they are (r1
			// the context). Made in a local function, it replaces the
			// function: its main frame returns to the function's caller.
			next := env.tail
			env.tail = nil
			if env.cont.pending {
				env.startCont(regs)
			} else if st.depth > st.base {
				env.pushLevel(regs[10])
			}
			env.bind(next)
			if st.odd {
				env.regsProg = nil // the next run's begin unwinds if this one stops here
			}
			st.pc, st.start = 0, 0
		}
		return nil
	default:
		// Unreachable: the fast loop leaves only for the cases above.
		return env.setFault(KindRead, pc-1, st.count+uint64(pc-st.start))
	}
	return nil
}

func storeValue(w uint64, regs *[16]uint64) uint64 {
	if w&7 == asm.ClassST {
		return uint64(int64(int32(w >> 32)))
	}
	return regs[w>>12&15]
}

func div64(a, b uint64, signed int16) uint64 {
	if b == 0 {
		return 0
	}
	if signed == 1 {
		return uint64(int64(a) / int64(b)) // Go defines MinInt64 / -1 = MinInt64
	}
	return a / b
}

func mod64(a, b uint64, signed int16) uint64 {
	if b == 0 {
		return a
	}
	if signed == 1 {
		return uint64(int64(a) % int64(b)) // MinInt64 % -1 = 0
	}
	return a % b
}

func div32(a, b uint64, signed int16) uint64 {
	x, y := uint32(a), uint32(b)
	if y == 0 {
		return 0
	}
	if signed == 1 {
		return uint64(uint32(int32(x) / int32(y)))
	}
	return uint64(x / y)
}

func mod32(a, b uint64, signed int16) uint64 {
	x, y := uint32(a), uint32(b)
	if y == 0 {
		return uint64(x)
	}
	if signed == 1 {
		return uint64(uint32(int32(x) % int32(y)))
	}
	return uint64(x % y)
}

func movsx64(v uint64, off int16) uint64 {
	switch off {
	case 8:
		return uint64(int64(int8(v)))
	case 16:
		return uint64(int64(int16(v)))
	case 32:
		return uint64(int64(int32(v)))
	}
	return v
}

func truncate(v uint64, width int32) uint64 {
	switch width {
	case 16:
		return v & 0xffff
	case 32:
		return v & 0xffffffff
	}
	return v
}

func bswap(v uint64, width int32) uint64 {
	switch width {
	case 16:
		return uint64(bits.ReverseBytes16(uint16(v)))
	case 32:
		return uint64(bits.ReverseBytes32(uint32(v)))
	}
	return bits.ReverseBytes64(v)
}

func atomic32(w uint64, p *uint32, regs *[16]uint64) {
	imm := int32(w >> 32)
	src := uint32(regs[w>>12&15])
	var old uint32
	switch imm &^ asm.AtomicFetch {
	case asm.AtomicAdd:
		old = atomic.AddUint32(p, src) - src
	case asm.AtomicOr:
		old = atomic.OrUint32(p, src)
	case asm.AtomicAnd:
		old = atomic.AndUint32(p, src)
	case asm.AtomicXor:
		for {
			old = atomic.LoadUint32(p)
			if atomic.CompareAndSwapUint32(p, old, old^src) {
				break
			}
		}
	case asm.AtomicXchg &^ asm.AtomicFetch:
		old = atomic.SwapUint32(p, src)
	case asm.AtomicCmpXchg &^ asm.AtomicFetch:
		want := uint32(regs[0])
		for {
			old = atomic.LoadUint32(p)
			if old != want || atomic.CompareAndSwapUint32(p, old, src) {
				break
			}
		}
		regs[0] = uint64(old)
		return
	}
	if imm&asm.AtomicFetch != 0 {
		regs[w>>12&15] = uint64(old)
	}
}

func atomic64(w uint64, p *uint64, regs *[16]uint64) {
	imm := int32(w >> 32)
	src := regs[w>>12&15]
	var old uint64
	switch imm &^ asm.AtomicFetch {
	case asm.AtomicAdd:
		old = atomic.AddUint64(p, src) - src
	case asm.AtomicOr:
		old = atomic.OrUint64(p, src)
	case asm.AtomicAnd:
		old = atomic.AndUint64(p, src)
	case asm.AtomicXor:
		for {
			old = atomic.LoadUint64(p)
			if atomic.CompareAndSwapUint64(p, old, old^src) {
				break
			}
		}
	case asm.AtomicXchg &^ asm.AtomicFetch:
		old = atomic.SwapUint64(p, src)
	case asm.AtomicCmpXchg &^ asm.AtomicFetch:
		want := regs[0]
		for {
			old = atomic.LoadUint64(p)
			if old != want || atomic.CompareAndSwapUint64(p, old, src) {
				break
			}
		}
		regs[0] = old
		return
	}
	if imm&asm.AtomicFetch != 0 {
		regs[w>>12&15] = old
	}
}

func (e *Env) setFault(k Kind, at int, count uint64) error {
	e.Executed = count
	e.fault = Error{PC: at, Insn: e.prog.orig[at], Kind: k}
	if e.st.odd {
		e.unwind() // the next run, on any engine, starts with the main frame's stack
	}
	return &e.fault
}

func (e *Env) memFault(k Kind, at int, addr, size, count uint64) error {
	err := e.setFault(k, at, count)
	e.fault.Addr, e.fault.Size = addr, size
	return err
}
