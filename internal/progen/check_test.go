package progen

import (
	"fmt"

	"github.com/govswitch/vswitch/asm"
)

// This file holds an independent checker of what Generate promises, so the
// promises are tested without root: a flow analysis over all paths (taken
// or not) that tracks, per register, "uninitialized, scalar, or r10 plus a
// constant" and which stack bytes are initialized.

type kind uint8

const (
	kUninit kind = iota
	kScalar
	kPtr
	kMixed // scalar on one path, pointer on another
)

type regState struct {
	k   kind
	off int // for kPtr: offset from r10
}

type flowState struct {
	regs  [11]regState
	stack [stackSize]bool
}

func merge(a *flowState, b flowState) (changed bool) {
	for r := range a.regs {
		x, y := a.regs[r], b.regs[r]
		var m regState
		switch {
		case x == y:
			m = x
		case x.k == kUninit || y.k == kUninit:
			m = regState{k: kUninit}
		default:
			m = regState{k: kMixed}
		}
		if m != x {
			a.regs[r], changed = m, true
		}
	}
	for n := range a.stack {
		if a.stack[n] && !b.stack[n] {
			a.stack[n], changed = false, true
		}
	}
	return changed
}

type checkOpts struct {
	loops   bool // backward jumps allowed
	aligned bool // stack accesses must be aligned to their size
}

// check returns the first broken promise of prog, or nil.
func check(prog []asm.Instruction, o checkOpts) error {
	n := len(prog)
	if n == 0 || prog[n-1].Op != asm.OpExit {
		return fmt.Errorf("does not end with exit")
	}
	second := make([]bool, n) // second slot of an lddw
	for pc := 0; pc < n; pc++ {
		if prog[pc].IsLDDW() {
			if pc+1 >= n {
				return fmt.Errorf("insn %d: truncated lddw", pc)
			}
			second[pc+1] = true
			pc++
		}
	}
	for pc, line := range asm.Disassemble(prog) {
		if len(line) >= 4 && line[:4] == ".raw" {
			return fmt.Errorf("line %d has no canonical form: %s", pc, line)
		}
	}
	in := make([]*flowState, n)
	entry := &flowState{}
	entry.regs[10] = regState{k: kPtr}
	in[0] = entry
	// Passes in program order: forward edges settle within a pass, and
	// each backward edge (a loop) that changes a state asks for another.
	for again := true; again; {
		again = false
		for pc := 0; pc < n; pc++ {
			if in[pc] == nil || second[pc] {
				continue
			}
			st := *in[pc]
			succ, err := step(prog, pc, &st, o)
			if err != nil {
				return fmt.Errorf("insn %d (%s): %w", pc, asm.Format(prog[pc], next(prog, pc)), err)
			}
			for _, s := range succ {
				if s < 0 || s >= n || second[s] {
					return fmt.Errorf("insn %d: jump to %d, not an instruction", pc, s)
				}
				if s <= pc && !o.loops {
					return fmt.Errorf("insn %d: backward jump to %d", pc, s)
				}
				changed := false
				if in[s] == nil {
					cp := st
					in[s], changed = &cp, true
				} else {
					changed = merge(in[s], st)
				}
				if changed && s <= pc {
					again = true
				}
			}
		}
	}
	for pc := range prog {
		if in[pc] == nil && !second[pc] {
			return fmt.Errorf("insn %d is unreachable", pc)
		}
	}
	return nil
}

func next(prog []asm.Instruction, pc int) asm.Instruction {
	if pc+1 < len(prog) {
		return prog[pc+1]
	}
	return asm.Instruction{}
}

func sizeOf(op uint8) int { return sizeBytes(op & 0x18) }

// step applies the instruction at pc to st and returns its successors.
func step(prog []asm.Instruction, pc int, st *flowState, o checkOpts) ([]int, error) {
	i := prog[pc]
	scalar := func(r uint8) error {
		if r > 10 {
			return fmt.Errorf("bad register r%d", r)
		}
		if st.regs[r].k != kScalar {
			return fmt.Errorf("r%d read as a scalar but is %v", r, st.regs[r])
		}
		return nil
	}
	mem := func(base uint8, off int16, size int, read bool) error {
		if st.regs[base].k != kPtr {
			return fmt.Errorf("base r%d is %v, not a stack pointer", base, st.regs[base])
		}
		a := st.regs[base].off + int(off)
		if a < -stackSize || a+size > 0 {
			return fmt.Errorf("stack access [%d, %d) out of bounds", a, a+size)
		}
		if o.aligned && a%size != 0 {
			return fmt.Errorf("unaligned %d-byte stack access at %d", size, a)
		}
		for b := a; b < a+size; b++ {
			if read && !st.stack[b+stackSize] {
				return fmt.Errorf("reads uninitialized stack byte %d", b)
			}
			st.stack[b+stackSize] = true
		}
		return nil
	}
	setScalar := func(r uint8) error {
		if r >= 10 {
			return fmt.Errorf("writes r%d", r)
		}
		st.regs[r] = regState{k: kScalar}
		return nil
	}
	fall := []int{pc + 1}
	switch i.Class() {
	case asm.ClassALU, asm.ClassALU64:
		op := i.Op & 0xf0
		if i.Dst >= 10 {
			return nil, fmt.Errorf("writes r%d", i.Dst)
		}
		d := st.regs[i.Dst]
		if i.Class() == asm.ClassALU64 && d.k == kPtr && i.Op&asm.SrcX == 0 && (op == asm.ALUAdd || op == asm.ALUSub) {
			if op == asm.ALUAdd {
				d.off += int(i.Imm)
			} else {
				d.off -= int(i.Imm)
			}
			st.regs[i.Dst] = d
			return fall, nil
		}
		if i.Op&asm.SrcX != 0 && op != asm.ALUEnd {
			if i.Class() == asm.ClassALU64 && op == asm.ALUMov && i.Off == 0 && st.regs[i.Src].k == kPtr {
				st.regs[i.Dst] = st.regs[i.Src]
				return fall, nil
			}
			if err := scalar(i.Src); err != nil {
				return nil, err
			}
		}
		if op != asm.ALUMov {
			if err := scalar(i.Dst); err != nil {
				return nil, err
			}
		}
		return fall, setScalar(i.Dst)
	case asm.ClassLD:
		if !i.IsLDDW() || i.Src != 0 {
			return nil, fmt.Errorf("unexpected LD")
		}
		return []int{pc + 2}, setScalar(i.Dst)
	case asm.ClassLDX:
		if err := mem(i.Src, i.Off, sizeOf(i.Op), true); err != nil {
			return nil, err
		}
		return fall, setScalar(i.Dst)
	case asm.ClassST:
		return fall, mem(i.Dst, i.Off, sizeOf(i.Op), false)
	case asm.ClassSTX:
		if err := scalar(i.Src); err != nil {
			return nil, err
		}
		if i.Op&0xe0 == asm.ModeATOMIC {
			if err := mem(i.Dst, i.Off, sizeOf(i.Op), true); err != nil {
				return nil, err
			}
			if i.Imm == asm.AtomicCmpXchg {
				if err := scalar(0); err != nil {
					return nil, err
				}
				return fall, setScalar(0)
			}
			if i.Imm&asm.AtomicFetch != 0 {
				return fall, setScalar(i.Src)
			}
			return fall, nil
		}
		return fall, mem(i.Dst, i.Off, sizeOf(i.Op), false)
	case asm.ClassJMP, asm.ClassJMP32:
		switch {
		case i.Op == asm.OpExit:
			return nil, scalar(0)
		case i.Op == asm.OpJA:
			return []int{pc + 1 + int(i.Off)}, nil
		case i.Op == asm.OpJA32:
			return []int{pc + 1 + int(i.Imm)}, nil
		case i.Op&0xf0 == asm.JmpCall:
			return nil, fmt.Errorf("unexpected call")
		}
		if err := scalar(i.Dst); err != nil {
			return nil, err
		}
		if i.Op&asm.SrcX != 0 {
			if err := scalar(i.Src); err != nil {
				return nil, err
			}
		}
		return []int{pc + 1, pc + 1 + int(i.Off)}, nil
	}
	return nil, fmt.Errorf("unexpected class %d", i.Class())
}

func (r regState) String() string {
	switch r.k {
	case kUninit:
		return "uninitialized"
	case kScalar:
		return "scalar"
	case kPtr:
		return fmt.Sprintf("r10%+d", r.off)
	}
	return "scalar or pointer depending on the path"
}
