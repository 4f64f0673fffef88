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

// Run runs p on the interpreter. r1 and r2 are the initial values of those
// registers; the other registers start at zero and r10 is the top of env's
// stack. The error is an *Error held by env (valid until its next run).
func (p *Program) Run(env *Env, r1, r2 uint64) (uint64, error) {
	env.bind(p)
	env.tailCalls = 0
	budget := env.Budget
	if budget == 0 {
		budget = DefaultBudget
	}
	var regs [11]uint64
	regs[1], regs[2] = r1, r2
	regs[10] = env.StackTop()
	var frames [MaxCallDepth]frame
	depth := 0
	insns := p.insns
	pc := 0
	var count uint64


	for {
		ins := insns[pc]
		pc++
		count++
		dst := &regs[ins.Dst]
		switch ins.Op {
		// ALU64, immediate
		case asm.ClassALU64 | asm.ALUAdd | asm.SrcK:
			*dst += uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUSub | asm.SrcK:
			*dst -= uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUMul | asm.SrcK:
			*dst *= uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUDiv | asm.SrcK:
			*dst = div64(*dst, uint64(int64(ins.Imm)), ins.Off)
		case asm.ClassALU64 | asm.ALUMod | asm.SrcK:
			*dst = mod64(*dst, uint64(int64(ins.Imm)), ins.Off)
		case asm.ClassALU64 | asm.ALUOr | asm.SrcK:
			*dst |= uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUAnd | asm.SrcK:
			*dst &= uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUXor | asm.SrcK:
			*dst ^= uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALULsh | asm.SrcK:
			*dst <<= uint64(ins.Imm) & 63
		case asm.ClassALU64 | asm.ALURsh | asm.SrcK:
			*dst >>= uint64(ins.Imm) & 63
		case asm.ClassALU64 | asm.ALUArsh | asm.SrcK:
			*dst = uint64(int64(*dst) >> (uint64(ins.Imm) & 63))
		case asm.ClassALU64 | asm.ALUMov | asm.SrcK:
			*dst = uint64(int64(ins.Imm))
		case asm.ClassALU64 | asm.ALUNeg:
			*dst = -*dst
		case asm.ClassALU64 | asm.ALUEnd:
			*dst = bswap(*dst, ins.Imm)

		// ALU64, register
		case asm.ClassALU64 | asm.ALUAdd | asm.SrcX:
			*dst += regs[ins.Src]
		case asm.ClassALU64 | asm.ALUSub | asm.SrcX:
			*dst -= regs[ins.Src]
		case asm.ClassALU64 | asm.ALUMul | asm.SrcX:
			*dst *= regs[ins.Src]
		case asm.ClassALU64 | asm.ALUDiv | asm.SrcX:
			*dst = div64(*dst, regs[ins.Src], ins.Off)
		case asm.ClassALU64 | asm.ALUMod | asm.SrcX:
			*dst = mod64(*dst, regs[ins.Src], ins.Off)
		case asm.ClassALU64 | asm.ALUOr | asm.SrcX:
			*dst |= regs[ins.Src]
		case asm.ClassALU64 | asm.ALUAnd | asm.SrcX:
			*dst &= regs[ins.Src]
		case asm.ClassALU64 | asm.ALUXor | asm.SrcX:
			*dst ^= regs[ins.Src]
		case asm.ClassALU64 | asm.ALULsh | asm.SrcX:
			*dst <<= regs[ins.Src] & 63
		case asm.ClassALU64 | asm.ALURsh | asm.SrcX:
			*dst >>= regs[ins.Src] & 63
		case asm.ClassALU64 | asm.ALUArsh | asm.SrcX:
			*dst = uint64(int64(*dst) >> (regs[ins.Src] & 63))
		case asm.ClassALU64 | asm.ALUMov | asm.SrcX:
			*dst = movsx64(regs[ins.Src], ins.Off)

		// ALU32, immediate
		case asm.ClassALU | asm.ALUAdd | asm.SrcK:
			*dst = uint64(uint32(*dst) + uint32(ins.Imm))
		case asm.ClassALU | asm.ALUSub | asm.SrcK:
			*dst = uint64(uint32(*dst) - uint32(ins.Imm))
		case asm.ClassALU | asm.ALUMul | asm.SrcK:
			*dst = uint64(uint32(*dst) * uint32(ins.Imm))
		case asm.ClassALU | asm.ALUDiv | asm.SrcK:
			*dst = div32(*dst, uint64(uint32(ins.Imm)), ins.Off)
		case asm.ClassALU | asm.ALUMod | asm.SrcK:
			*dst = mod32(*dst, uint64(uint32(ins.Imm)), ins.Off)
		case asm.ClassALU | asm.ALUOr | asm.SrcK:
			*dst = uint64(uint32(*dst) | uint32(ins.Imm))
		case asm.ClassALU | asm.ALUAnd | asm.SrcK:
			*dst = uint64(uint32(*dst) & uint32(ins.Imm))
		case asm.ClassALU | asm.ALUXor | asm.SrcK:
			*dst = uint64(uint32(*dst) ^ uint32(ins.Imm))
		case asm.ClassALU | asm.ALULsh | asm.SrcK:
			*dst = uint64(uint32(*dst) << (uint32(ins.Imm) & 31))
		case asm.ClassALU | asm.ALURsh | asm.SrcK:
			*dst = uint64(uint32(*dst) >> (uint32(ins.Imm) & 31))
		case asm.ClassALU | asm.ALUArsh | asm.SrcK:
			*dst = uint64(uint32(int32(*dst) >> (uint32(ins.Imm) & 31)))
		case asm.ClassALU | asm.ALUMov | asm.SrcK:
			*dst = uint64(uint32(ins.Imm))
		case asm.ClassALU | asm.ALUNeg:
			*dst = uint64(-uint32(*dst))
		case asm.ClassALU | asm.ALUEnd | asm.SrcK: // to little endian: truncate
			*dst = truncate(*dst, ins.Imm)
		case asm.ClassALU | asm.ALUEnd | asm.SrcX: // to big endian
			*dst = bswap(*dst, ins.Imm)

		// ALU32, register
		case asm.ClassALU | asm.ALUAdd | asm.SrcX:
			*dst = uint64(uint32(*dst) + uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALUSub | asm.SrcX:
			*dst = uint64(uint32(*dst) - uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALUMul | asm.SrcX:
			*dst = uint64(uint32(*dst) * uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALUDiv | asm.SrcX:
			*dst = div32(*dst, uint64(uint32(regs[ins.Src])), ins.Off)
		case asm.ClassALU | asm.ALUMod | asm.SrcX:
			*dst = mod32(*dst, uint64(uint32(regs[ins.Src])), ins.Off)
		case asm.ClassALU | asm.ALUOr | asm.SrcX:
			*dst = uint64(uint32(*dst) | uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALUAnd | asm.SrcX:
			*dst = uint64(uint32(*dst) & uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALUXor | asm.SrcX:
			*dst = uint64(uint32(*dst) ^ uint32(regs[ins.Src]))
		case asm.ClassALU | asm.ALULsh | asm.SrcX:
			*dst = uint64(uint32(*dst) << (uint32(regs[ins.Src]) & 31))
		case asm.ClassALU | asm.ALURsh | asm.SrcX:
			*dst = uint64(uint32(*dst) >> (uint32(regs[ins.Src]) & 31))
		case asm.ClassALU | asm.ALUArsh | asm.SrcX:
			*dst = uint64(uint32(int32(*dst) >> (uint32(regs[ins.Src]) & 31)))
		case asm.ClassALU | asm.ALUMov | asm.SrcX:
			*dst = uint64(uint32(movsx64(regs[ins.Src], ins.Off)))

		// lddw (map references were resolved at load)
		case asm.OpLDDW:
			*dst = uint64(uint32(ins.Imm)) | uint64(uint32(insns[pc].Imm))<<32
			pc++

		// loads
		case asm.ClassLDX | asm.ModeMEM | asm.SizeB:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 1) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 1, count)
			}
			*dst = load8(a)
		case asm.ClassLDX | asm.ModeMEM | asm.SizeH:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 2) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 2, count)
			}
			*dst = load16(a)
		case asm.ClassLDX | asm.ModeMEM | asm.SizeW:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 4) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 4, count)
			}
			*dst = load32(a)
		case asm.ClassLDX | asm.ModeMEM | asm.SizeDW:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 8) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 8, count)
			}
			*dst = load64(a)
		case asm.ClassLDX | asm.ModeMEMSX | asm.SizeB:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 1) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 1, count)
			}
			*dst = uint64(int64(int8(load8(a))))
		case asm.ClassLDX | asm.ModeMEMSX | asm.SizeH:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 2) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 2, count)
			}
			*dst = uint64(int64(int16(load16(a))))
		case asm.ClassLDX | asm.ModeMEMSX | asm.SizeW:
			a := regs[ins.Src] + uint64(int64(ins.Off))
			if env.find(a, 4) == nil {
				return 0, env.memFault(KindRead, pc-1, a, 4, count)
			}
			*dst = uint64(int64(int32(load32(a))))

		// stores
		case asm.ClassST | asm.ModeMEM | asm.SizeB, asm.ClassSTX | asm.ModeMEM | asm.SizeB:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 1); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 1, count)
			}
			store8(a, storeValue(ins, &regs))
		case asm.ClassST | asm.ModeMEM | asm.SizeH, asm.ClassSTX | asm.ModeMEM | asm.SizeH:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 2); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 2, count)
			}
			store16(a, storeValue(ins, &regs))
		case asm.ClassST | asm.ModeMEM | asm.SizeW, asm.ClassSTX | asm.ModeMEM | asm.SizeW:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 4); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 4, count)
			}
			store32(a, storeValue(ins, &regs))
		case asm.ClassST | asm.ModeMEM | asm.SizeDW, asm.ClassSTX | asm.ModeMEM | asm.SizeDW:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 8); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 8, count)
			}
			store64(a, storeValue(ins, &regs))

		// atomics
		case asm.ClassSTX | asm.ModeATOMIC | asm.SizeW:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 4); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 4, count)
			}
			if a&3 != 0 {
				return 0, env.memFault(KindMisaligned, pc-1, a, 4, count)
			}
			atomic32(ins, p32(a), &regs)
		case asm.ClassSTX | asm.ModeATOMIC | asm.SizeDW:
			a := *dst + uint64(int64(ins.Off))
			if r := env.find(a, 8); r == nil || !r.Writable {
				return 0, env.memFault(KindWrite, pc-1, a, 8, count)
			}
			if a&7 != 0 {
				return 0, env.memFault(KindMisaligned, pc-1, a, 8, count)
			}
			atomic64(ins, p64(a), &regs)

		// jumps
		case asm.OpJA:
			pc += int(ins.Off)
			if ins.Off < 0 && count > budget {
				return 0, env.setFault(KindBudget, pc-1-int(ins.Off), count)
			}
		case asm.OpJA32:
			pc += int(ins.Imm)
			if ins.Imm < 0 && count > budget {
				return 0, env.setFault(KindBudget, pc-1-int(ins.Imm), count)
			}
		case asm.OpExit:
			if depth == 0 {
				env.Executed = count
				return regs[0], nil
			}
			depth--
			f := &frames[depth]
			pc = f.ret
			regs[6], regs[7], regs[8], regs[9] = f.saved[0], f.saved[1], f.saved[2], f.saved[3]
			regs[10] = f.r10
		case asm.OpCall, asm.OpCallX:
			if count > budget {
				return 0, env.setFault(KindBudget, pc-1, count)
			}
			if ins.Src == asm.PseudoCall && ins.Op == asm.OpCall {
				if depth+1 >= MaxCallDepth {
					return 0, env.setFault(KindCallDepth, pc-1, count)
				}
				frames[depth] = frame{ret: pc, saved: [4]uint64{regs[6], regs[7], regs[8], regs[9]}, r10: regs[10]}
				depth++
				regs[10] -= StackFrameSize
				pc += int(ins.Imm)
				continue
			}
			id := ins.Imm
			if ins.Op == asm.OpCallX {
				v := regs[ins.Dst]
				if v >= uint64(len(env.prog.helpers)) || env.prog.helpers[v] == nil {
					err := env.setFault(KindBadHelper, pc-1, count)
					env.fault.Helper = int32(min(v, math.MaxInt32))
					return 0, err
				}
				id = int32(v)
			}
			r0, err := env.prog.helpers[id](env, regs[1], regs[2], regs[3], regs[4], regs[5])
			if err != nil {
				e := env.setFault(KindHelper, pc-1, count)
				env.fault.Helper, env.fault.Err = id, err
				return 0, e
			}
			regs[0] = r0
			if env.tail != nil {
				// Tail call: the new program starts over in the main frame
				// with the same context.
				next := env.tail
				env.tail = nil
				env.bind(next)
				insns = next.insns
				pc, depth = 0, 0
				regs[10] = env.StackTop()
			}

		default:
			if ins.Op&0x07 == asm.ClassJMP || ins.Op&0x07 == asm.ClassJMP32 {
				if cond(ins, &regs) {
					pc += int(ins.Off)
					if ins.Off < 0 && count > budget {
						return 0, env.setFault(KindBudget, pc-1-int(ins.Off), count)
					}
				}
				continue
			}
			// Unreachable for a validated program.
			return 0, env.setFault(KindRead, pc-1, count)
		}
	}
}

func storeValue(ins asm.Instruction, regs *[11]uint64) uint64 {
	if ins.Class() == asm.ClassST {
		return uint64(int64(ins.Imm))
	}
	return regs[ins.Src]
}

func cond(ins asm.Instruction, regs *[11]uint64) bool {
	a := regs[ins.Dst]
	var b uint64
	if ins.Op&asm.SrcX != 0 {
		b = regs[ins.Src]
	} else {
		b = uint64(int64(ins.Imm))
	}
	if ins.Op&0x07 == asm.ClassJMP32 {
		a, b = uint64(uint32(a)), uint64(uint32(b))
		switch ins.Op & 0xf0 {
		case asm.JmpJSGT:
			return int32(a) > int32(b)
		case asm.JmpJSGE:
			return int32(a) >= int32(b)
		case asm.JmpJSLT:
			return int32(a) < int32(b)
		case asm.JmpJSLE:
			return int32(a) <= int32(b)
		}
	}
	switch ins.Op & 0xf0 {
	case asm.JmpJEQ:
		return a == b
	case asm.JmpJNE:
		return a != b
	case asm.JmpJGT:
		return a > b
	case asm.JmpJGE:
		return a >= b
	case asm.JmpJLT:
		return a < b
	case asm.JmpJLE:
		return a <= b
	case asm.JmpJSET:
		return a&b != 0
	case asm.JmpJSGT:
		return int64(a) > int64(b)
	case asm.JmpJSGE:
		return int64(a) >= int64(b)
	case asm.JmpJSLT:
		return int64(a) < int64(b)
	case asm.JmpJSLE:
		return int64(a) <= int64(b)
	}
	return false
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

func atomic32(ins asm.Instruction, p *uint32, regs *[11]uint64) {
	src := uint32(regs[ins.Src])
	var old uint32
	switch ins.Imm &^ asm.AtomicFetch {
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
	if ins.Imm&asm.AtomicFetch != 0 {
		regs[ins.Src] = uint64(old)
	}
}

func atomic64(ins asm.Instruction, p *uint64, regs *[11]uint64) {
	src := regs[ins.Src]
	var old uint64
	switch ins.Imm &^ asm.AtomicFetch {
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
	if ins.Imm&asm.AtomicFetch != 0 {
		regs[ins.Src] = old
	}
}

func (e *Env) setFault(k Kind, at int, count uint64) error {
	e.Executed = count
	e.fault = Error{PC: at, Insn: e.prog.orig[at], Kind: k}
	return &e.fault
}

func (e *Env) memFault(k Kind, at int, addr, size, count uint64) error {
	err := e.setFault(k, at, count)
	e.fault.Addr, e.fault.Size = addr, size
	return err
}
