package vm

import (
	"math"
	"math/bits"
	"slices"

	"github.com/govswitch/vswitch/asm"
)

// The load-time range analysis: the kernel verifier's idea, scoped to what
// lets the JIT drop run-time checks. It follows, along every path of each
// function, what each register holds: a number with unsigned bounds, or a
// pointer of a known kind at a known offset: into the context, the frame
// (data plus a bounded variable part plus an offset, with the number of
// bytes known to lie before data_end), data_end itself, the stack, or a
// map value (after the program checked the lookup's result against 0). An
// access through such a pointer whose every byte is known to be inside its
// memory is proven, and needs no check at run time.
//
// It is only ever used to drop checks: an access it cannot prove keeps its
// check, so a program it does not understand runs exactly as before. What
// it assumes:
//
//   - Frame runs (RunFrame, RunFrames): r1 points at the context, whose
//     data and data_end are read-only (so every load of them gives the
//     same frame) and describe the frame region. Proofs that rely on this
//     are ProvenFrame: an engine uses them only for runs that are frame
//     runs, including after a tail call only if r1 is still the context.
//   - Stack and map value proofs hold in every run (ProvenAlways): r10 is
//     never written, and a map helper marked OpMapLookup on a map with a
//     layout returns 0 or the start of a value of the layout's size.
//   - Helpers are assumed to change r0..r5 (the interpreter leaves r1..r5,
//     but assuming less is always safe), local calls r0..r5 too; nothing a
//     program stores to memory is followed (a pointer spilled to the stack
//     and loaded back is a number).

// Proof says whether a memory access was proven in bounds.
type Proof uint8

// Proofs, from weakest to strongest.
const (
	Unproven     Proof = iota // checked at run time
	ProvenFrame               // in bounds in frame runs (context and frame accesses)
	ProvenAlways              // in bounds in every run (stack and map value accesses)
)

// Proof returns what the analysis proved of the memory access at pc
// (Unproven for anything else).
func (p *Program) Proof(pc int) Proof {
	if pc < 0 || pc >= len(p.proofs) {
		return Unproven
	}
	return p.proofs[pc]
}

// CallMap returns the index of the map whose handle r1 holds, on every
// path, at the helper call at pc.
func (p *Program) CallMap(pc int) (int, bool) {
	k, ok := p.callMaps[pc]
	return k, ok
}

// KeyProof returns what the analysis proved of the key argument (r2) of
// the map helper call at pc: that it points at the map's KeySize bytes,
// readable.
func (p *Program) KeyProof(pc int) Proof { return p.keyProofs[pc] }

// maxAnalyzed bounds the programs analyzed: bigger ones run with every
// check (the analysis keeps a state per block).
const maxAnalyzed = 1 << 16

type vkind uint8

const (
	vScalar    vkind = iota // a number in [lo, hi]
	vCtx                    // the context + off
	vPkt                    // data + var + off, var in [0, hi], the same for all copies (id)
	vPktEnd                 // data_end
	vStack                  // r10 of the current function + off
	vMapVal                 // a value of map id, + off + var, var in [0, hi]
	vMapOrNull              // 0 or a value of map id (the lookup at tag)
)

// aval is what a register holds.
type aval struct {
	k      vkind
	id     int32 // vPkt: the variable part (0: none); map values: the map
	tag    int32 // vMapOrNull: the lookup (its pc+1), shared by copies
	off    int64
	lo, hi uint64 // vScalar: bounds; vPkt, vMapVal: hi bounds the variable part
}

var anything = aval{k: vScalar, hi: math.MaxUint64}

func scalar(lo, hi uint64) aval { return aval{k: vScalar, lo: lo, hi: hi} }
func constant(v uint64) aval    { return aval{k: vScalar, lo: v, hi: v} }

func (v aval) isConst() bool { return v.k == vScalar && v.lo == v.hi }

// maxOff bounds the offsets the analysis follows: address arithmetic then
// never wraps (frames and maps are far from both ends of the address
// space), and the sums below never overflow.
const maxOff = 1 << 30

// maxVar bounds the variable part of a frame pointer.
const maxVar = 1 << 20

// pktRange says data + var(id) + n <= data_end.
type pktRange struct {
	id int32
	n  int64
}

// astate is the abstract state before an instruction.
type astate struct {
	r   [11]aval
	rng []pktRange // sorted by id
}

func (s *astate) clone() *astate {
	c := &astate{r: s.r}
	c.rng = append([]pktRange(nil), s.rng...)
	return c
}

func (s *astate) rangeOf(id int32) int64 {
	for _, r := range s.rng {
		if r.id == id {
			return r.n
		}
	}
	return 0
}

func (s *astate) setRange(id int32, n int64) {
	for k := range s.rng {
		if s.rng[k].id == id {
			s.rng[k].n = max(s.rng[k].n, n)
			return
		}
	}
	s.rng = append(s.rng, pktRange{id, n})
	slices.SortFunc(s.rng, func(a, b pktRange) int { return int(a.id) - int(b.id) })
}

func (s *astate) dropRange(id int32) {
	s.rng = slices.DeleteFunc(s.rng, func(r pktRange) bool { return r.id == id })
}

// join merges o into s and reports whether s changed. After widen joins,
// registers that still change are forgotten.
func (s *astate) join(o *astate, widen bool) bool {
	changed := false
	for k := range s.r {
		a, b := s.r[k], o.r[k]
		if a == b {
			continue
		}
		var j aval
		switch {
		case widen:
			j = anything
		case a.k == vScalar && b.k == vScalar:
			j = scalar(min(a.lo, b.lo), max(a.hi, b.hi))
		case a.k == vPkt && b.k == vPkt && a.id == b.id && a.off == b.off,
			a.k == vMapVal && b.k == vMapVal && a.id == b.id && a.off == b.off:
			j = a
			j.hi = max(a.hi, b.hi)
		default:
			j = anything
		}
		if j != a {
			s.r[k] = j
			changed = true
		}
	}
	// A range holds after the join only if it holds on both sides.
	kept := s.rng[:0]
	for _, r := range s.rng {
		n := min(r.n, o.rangeOf(r.id))
		if n != r.n {
			changed = true
		}
		if n > 0 {
			kept = append(kept, pktRange{r.id, n})
		}
	}
	s.rng = kept
	return changed
}

// analysis is the state of one Program's analysis.
type analysis struct {
	p      *Program
	insns  []asm.Instruction
	leader []bool
	in     map[int]*astate // state at block entries
	visits map[int]int
	work   []int
	steps  int
}

// analyze fills p.proofs and p.callMaps.
func (p *Program) analyze() {
	n := len(p.insns)
	if n > maxAnalyzed {
		return
	}
	a := &analysis{p: p, insns: p.insns, in: map[int]*astate{}, visits: map[int]int{}}
	a.leaders()
	// Each function on its own, from what it may assume at its entry.
	for k, f := range p.funcs {
		var entry astate
		for r := range entry.r {
			entry.r[r] = anything
		}
		entry.r[10] = aval{k: vStack}
		if k == 0 {
			entry.r[1] = aval{k: vCtx}
		}
		a.in[f] = &entry
		a.work = append(a.work, f)
	}
	limit := 64*n + 4096
	for len(a.work) > 0 {
		pc := a.work[len(a.work)-1]
		a.work = a.work[:len(a.work)-1]
		if a.steps++; a.steps > limit {
			return // too costly: no proofs at all
		}
		a.block(pc, nil)
	}
	p.proofs = make([]Proof, n)
	p.callMaps = map[int]int{}
	p.keyProofs = map[int]Proof{}
	for pc := range a.in {
		a.block(pc, p)
	}
}

// leaders marks the first instruction of every block.
func (a *analysis) leaders() {
	n := len(a.insns)
	a.leader = make([]bool, n+1)
	for _, f := range a.p.funcs {
		a.leader[f] = true
	}
	for pc := 0; pc < n; pc++ {
		i := a.insns[pc]
		if i.IsLDDW() {
			pc++
			continue
		}
		if c := i.Class(); c != asm.ClassJMP && c != asm.ClassJMP32 {
			continue
		}
		switch {
		case i.Op == asm.OpCall || i.Op == asm.OpCallX:
		case i.Op == asm.OpExit:
			a.leader[pc+1] = true
		case i.Op == asm.OpJA32:
			a.leader[pc+1+int(i.Imm)] = true
			a.leader[pc+1] = true
		default:
			a.leader[pc+1+int(i.Off)] = true
			a.leader[pc+1] = true
		}
	}
}

// flow joins s into the state at leader pc and queues it if it changed.
func (a *analysis) flow(pc int, s *astate) {
	old := a.in[pc]
	if old == nil {
		a.in[pc] = s.clone()
		a.work = append(a.work, pc)
		return
	}
	a.visits[pc]++
	if old.join(s, a.visits[pc] > 16) {
		a.work = append(a.work, pc)
	}
}

// block interprets the block at pc from its entry state. With p set (the
// final pass) it records the proofs instead of flowing to successors.
func (a *analysis) block(pc int, p *Program) {
	s := a.in[pc].clone()
	for {
		i := a.insns[pc]
		if p != nil {
			a.record(p, pc, i, s)
		}
		c := i.Class()
		if c == asm.ClassJMP || c == asm.ClassJMP32 {
			if i.Op == asm.OpCall || i.Op == asm.OpCallX {
				a.call(pc, i, s)
			} else {
				if p == nil {
					a.jump(pc, i, s)
				}
				return
			}
		} else {
			a.step(pc, i, s)
		}
		if i.IsLDDW() {
			pc++
		}
		pc++
		if pc >= len(a.insns) {
			return
		}
		if a.leader[pc] {
			if p == nil {
				a.flow(pc, s)
			}
			return
		}
	}
}

// record notes what the final state proves at pc.
func (a *analysis) record(p *Program, pc int, i asm.Instruction, s *astate) {
	switch c := i.Class(); c {
	case asm.ClassLDX:
		p.proofs[pc] = a.prove(s.r[i.Src], s, int64(i.Off), sizeOf(i.Op), false)
	case asm.ClassST:
		p.proofs[pc] = a.prove(s.r[i.Dst], s, int64(i.Off), sizeOf(i.Op), true)
	case asm.ClassSTX:
		if i.Op&0xe0 == asm.ModeMEM {
			p.proofs[pc] = a.prove(s.r[i.Dst], s, int64(i.Off), sizeOf(i.Op), true)
		}
	case asm.ClassJMP:
		if i.Op == asm.OpCall && i.Src == 0 {
			if v := s.r[1]; v.isConst() && v.lo >= mapHandleBase && v.lo-mapHandleBase < uint64(len(p.maps)) {
				k := int(v.lo - mapHandleBase)
				p.callMaps[pc] = k
				if l := p.MapLayoutOf(k); l != nil {
					p.keyProofs[pc] = a.prove(s.r[2], s, 0, int64(l.KeySize), false)
				}
			}
		}
	}
}

func sizeOf(op uint8) int64 {
	switch op & 0x18 {
	case asm.SizeB:
		return 1
	case asm.SizeH:
		return 2
	case asm.SizeW:
		return 4
	}
	return 8
}

// prove decides an access of n bytes at base + off.
func (a *analysis) prove(base aval, s *astate, off, n int64, write bool) Proof {
	at := base.off + off
	switch base.k {
	case vStack:
		if at >= -StackFrameSize && at+n <= 0 {
			return ProvenAlways
		}
	case vCtx:
		tail := at >= ctxHead && at+n <= int64(PacketContextSize)
		head := at >= 0 && at+n <= ctxHead
		if tail || head && !write {
			return ProvenFrame
		}
	case vPkt:
		if at >= 0 && at+n <= s.rangeOf(base.id) {
			return ProvenFrame
		}
	case vMapVal:
		l := a.p.MapLayoutOf(int(base.id))
		if l != nil && at >= 0 && at+int64(base.hi)+n <= int64(l.ValueSize) && (!write || !l.ReadOnly) {
			return ProvenAlways
		}
	}
	return Unproven
}

// forget makes every register that holds the variable part id (or the
// lookup tag) a number: the instruction that made it runs again.
func (s *astate) forget(id, tag int32) {
	for k := range s.r {
		v := s.r[k]
		if id != 0 && v.k == vPkt && v.id == id || tag != 0 && v.k == vMapOrNull && v.tag == tag {
			s.r[k] = anything
		}
	}
	if id != 0 {
		s.dropRange(id)
	}
}

func (a *analysis) call(pc int, i asm.Instruction, s *astate) {
	r0 := anything
	if i.Op == asm.OpCall && i.Src == 0 {
		if h := a.p.Helper(i.Imm); h != nil && h.Op == OpMapLookup {
			if v := s.r[1]; v.isConst() && v.lo >= mapHandleBase && v.lo-mapHandleBase < uint64(len(a.p.maps)) {
				k := int32(v.lo - mapHandleBase)
				if a.p.MapLayoutOf(int(k)) != nil {
					tag := int32(pc + 1)
					s.forget(0, tag)
					r0 = aval{k: vMapOrNull, id: k, tag: tag}
				}
			}
		}
	}
	for r := 1; r <= 5; r++ {
		s.r[r] = anything
	}
	s.r[0] = r0
}

// step interprets a non-jump instruction.
func (a *analysis) step(pc int, i asm.Instruction, s *astate) {
	switch c := i.Class(); c {
	case asm.ClassLD:
		s.r[i.Dst] = constant(asm.Imm64(i, a.insns[pc+1]))
		// A direct value (global data): the value of a one-element array.
		if o := a.p.orig[pc]; o.Src == asm.PseudoMapValue {
			k := int(o.Imm)
			if l := a.p.MapLayoutOf(k); l != nil && l.Kind == MapArray && l.MaxEntries == 1 {
				if off := int64(uint32(a.p.orig[pc+1].Imm)); off < maxOff {
					s.r[i.Dst] = aval{k: vMapVal, id: int32(k), off: off}
				}
			}
		}
	case asm.ClassLDX:
		base := s.r[i.Src]
		at := base.off + int64(i.Off)
		n := sizeOf(i.Op)
		switch {
		case base.k == vCtx && at == 0 && n == 8 && i.Op&0xe0 == asm.ModeMEM:
			s.r[i.Dst] = aval{k: vPkt}
		case base.k == vCtx && at == 8 && n == 8 && i.Op&0xe0 == asm.ModeMEM:
			s.r[i.Dst] = aval{k: vPktEnd}
		case i.Op&0xe0 == asm.ModeMEMSX || n == 8:
			s.r[i.Dst] = anything
		default:
			s.r[i.Dst] = scalar(0, 1<<(8*n)-1)
		}
	case asm.ClassST:
	case asm.ClassSTX:
		if i.Op&0xe0 == asm.ModeATOMIC && i.Imm&asm.AtomicFetch != 0 {
			if i.Imm == asm.AtomicCmpXchg {
				s.r[0] = anything
			} else {
				s.r[i.Src] = anything
			}
		}
	case asm.ClassALU64:
		s.r[i.Dst] = a.alu64(pc, i, s)
	case asm.ClassALU:
		s.r[i.Dst] = alu32(i, s)
	}
}

var full32 = scalar(0, math.MaxUint32)

// alu64 returns the destination of a 64-bit ALU instruction.
func (a *analysis) alu64(pc int, i asm.Instruction, s *astate) aval {
	d := s.r[i.Dst]
	var src aval
	if i.Op&asm.SrcX != 0 {
		src = s.r[i.Src]
	} else {
		src = constant(uint64(int64(i.Imm)))
	}
	op := i.Op & 0xf0
	switch op {
	case asm.ALUMov:
		if i.Op&asm.SrcX != 0 && i.Off != 0 {
			return anything // movsx
		}
		return src
	case asm.ALUAdd, asm.ALUSub:
		neg := op == asm.ALUSub
		// pointer +- constant
		if d.k != vScalar && d.k != vPktEnd && d.k != vMapOrNull && src.isConst() {
			c := int64(src.lo)
			if neg {
				c = -c
			}
			if int64(src.lo) > -maxOff && int64(src.lo) < maxOff {
				if o := d.off + c; o > -maxOff && o < maxOff {
					d.off = o
					return d
				}
			}
			return anything
		}
		if d.k == vScalar && src.k == vScalar {
			if neg {
				if d.lo >= src.hi {
					return scalar(d.lo-src.hi, d.hi-src.lo)
				}
				return anything
			}
			lo, c1 := bits.Add64(d.lo, src.lo, 0)
			hi, c2 := bits.Add64(d.hi, src.hi, 0)
			if c1 == 0 && c2 == 0 {
				return scalar(lo, hi)
			}
			return anything
		}
		// frame pointer + bounded number: a new variable part
		if !neg {
			ptr, num := d, src
			if d.k == vScalar {
				ptr, num = src, d
			}
			if ptr.k == vPkt && num.k == vScalar && num.hi < maxVar && ptr.hi+num.hi < maxVar {
				id := int32(pc + 1)
				s.forget(id, 0)
				return aval{k: vPkt, id: id, off: ptr.off, hi: ptr.hi + num.hi}
			}
			// A map value + a bounded number: no range to keep, so the
			// variable part needs no identity.
			if ptr.k == vMapVal && num.k == vScalar && num.hi < maxVar && ptr.hi+num.hi < maxVar {
				ptr.hi += num.hi
				return ptr
			}
		}
		return anything
	}
	if d.k != vScalar || src.k != vScalar {
		return anything
	}
	switch op {
	case asm.ALUAnd:
		if src.isConst() {
			// x <= hi has no bit outside ones(hi).
			return scalar(0, min(d.hi, ones(d.hi)&src.lo))
		}
		return scalar(0, min(d.hi, src.hi))
	case asm.ALUOr, asm.ALUXor:
		return scalar(0, ones(max(d.hi, src.hi)))
	case asm.ALULsh:
		if src.isConst() {
			k := src.lo & 63
			if d.hi <= math.MaxUint64>>k {
				return scalar(d.lo<<k, d.hi<<k)
			}
		}
	case asm.ALURsh:
		if src.isConst() {
			k := src.lo & 63
			return scalar(d.lo>>k, d.hi>>k)
		}
		return scalar(0, d.hi)
	case asm.ALUArsh:
		if src.isConst() && d.hi < 1<<63 {
			k := src.lo & 63
			return scalar(d.lo>>k, d.hi>>k)
		}
	case asm.ALUMul:
		if src.isConst() {
			hi, lo := bits.Mul64(d.hi, src.lo)
			if hi == 0 {
				return scalar(d.lo*src.lo, lo)
			}
		}
	case asm.ALUDiv:
		if src.isConst() && src.lo != 0 && i.Off == 0 {
			return scalar(d.lo/src.lo, d.hi/src.lo)
		}
	case asm.ALUMod:
		if src.isConst() && src.lo != 0 && i.Off == 0 {
			return scalar(0, min(d.hi, src.lo-1))
		}
	case asm.ALUEnd:
		if i.Imm == 16 {
			return scalar(0, math.MaxUint16)
		}
		if i.Imm == 32 {
			return full32
		}
	}
	return anything
}

// ones returns the smallest 2^k-1 >= v.
func ones(v uint64) uint64 {
	if v == 0 {
		return 0
	}
	return math.MaxUint64 >> bits.LeadingZeros64(v)
}

// alu32 returns the destination of a 32-bit ALU instruction: a number
// below 2^32, bounded more tightly when both operands are.
func alu32(i asm.Instruction, s *astate) aval {
	d := s.r[i.Dst]
	var src aval
	if i.Op&asm.SrcX != 0 {
		src = s.r[i.Src]
	} else {
		src = constant(uint64(uint32(i.Imm)))
	}
	small := func(v aval) bool { return v.k == vScalar && v.hi <= math.MaxUint32 }
	op := i.Op & 0xf0
	switch op {
	case asm.ALUMov:
		if i.Op&asm.SrcX != 0 && i.Off != 0 {
			return full32
		}
		if small(src) {
			return src
		}
		return full32
	case asm.ALUEnd:
		switch {
		case i.Imm == 16:
			return scalar(0, math.MaxUint16)
		case i.Imm == 32 && i.Op&asm.SrcX == 0 && small(d):
			return d // to little endian: nothing changes on this machine
		case i.Imm == 32:
			return full32
		}
		return anything // 64-bit swaps keep all 64 bits
	}
	if !small(d) || !small(src) {
		return full32
	}
	switch op {
	case asm.ALUAdd:
		if d.hi+src.hi <= math.MaxUint32 {
			return scalar(d.lo+src.lo, d.hi+src.hi)
		}
	case asm.ALUSub:
		if d.lo >= src.hi {
			return scalar(d.lo-src.hi, d.hi-src.lo)
		}
	case asm.ALUAnd:
		if src.isConst() {
			return scalar(0, min(d.hi, ones(d.hi)&src.lo))
		}
		return scalar(0, min(d.hi, src.hi))
	case asm.ALUOr, asm.ALUXor:
		return scalar(0, ones(max(d.hi, src.hi)))
	case asm.ALULsh:
		if src.isConst() {
			k := src.lo & 31
			if d.hi<<k <= math.MaxUint32 {
				return scalar(d.lo<<k, d.hi<<k)
			}
		}
	case asm.ALURsh:
		if src.isConst() {
			k := src.lo & 31
			return scalar(d.lo>>k, d.hi>>k)
		}
		return scalar(0, d.hi)
	case asm.ALUMul:
		if src.isConst() && d.hi*src.lo <= math.MaxUint32 {
			return scalar(d.lo*src.lo, d.hi*src.lo)
		}
	case asm.ALUDiv:
		if src.isConst() && src.lo != 0 && i.Off == 0 {
			return scalar(d.lo/src.lo, d.hi/src.lo)
		}
	case asm.ALUMod:
		if src.isConst() && src.lo != 0 && i.Off == 0 {
			return scalar(0, min(d.hi, src.lo-1))
		}
	}
	return full32
}

// Relations of a conditional jump's operands, for refine.
type relation uint8

const (
	relNone relation = iota
	relEQ
	relNE
	relGT
	relGE
	relLT
	relLE
)

func (r relation) not() relation {
	return [...]relation{relNone, relNE, relEQ, relLE, relLT, relGE, relGT}[r]
}

func (r relation) swap() relation {
	return [...]relation{relNone, relEQ, relNE, relLT, relLE, relGT, relGE}[r]
}

// jump flows the state to a jump's successors, refined by what the
// condition says on each.
func (a *analysis) jump(pc int, i asm.Instruction, s *astate) {
	switch i.Op {
	case asm.OpExit:
		return
	case asm.OpJA:
		a.flow(pc+1+int(i.Off), s)
		return
	case asm.OpJA32:
		a.flow(pc+1+int(i.Imm), s)
		return
	}
	taken, fall := s.clone(), s
	if i.Class() == asm.ClassJMP {
		var rel relation
		switch i.Op & 0xf0 {
		case asm.JmpJEQ:
			rel = relEQ
		case asm.JmpJNE:
			rel = relNE
		case asm.JmpJGT:
			rel = relGT
		case asm.JmpJGE:
			rel = relGE
		case asm.JmpJLT:
			rel = relLT
		case asm.JmpJLE:
			rel = relLE
		}
		if rel != relNone {
			okT := a.refine(taken, i, rel)
			okF := a.refine(fall, i, rel.not())
			if okT {
				a.flow(pc+1+int(i.Off), taken)
			}
			if okF {
				a.flow(pc+1, fall)
			}
			return
		}
	}
	a.flow(pc+1+int(i.Off), taken)
	a.flow(pc+1, fall)
}

// refine narrows s by "dst rel src" and reports whether it can hold.
func (a *analysis) refine(s *astate, i asm.Instruction, rel relation) bool {
	d := s.r[i.Dst]
	var src aval
	srcReg := i.Op&asm.SrcX != 0
	if srcReg {
		src = s.r[i.Src]
	} else {
		src = constant(uint64(int64(i.Imm)))
	}
	// A frame pointer against data_end.
	p, e, r := d, src, rel
	if d.k == vPktEnd && src.k == vPkt {
		p, e, r = src, d, rel.swap()
	}
	if p.k == vPkt && e.k == vPktEnd {
		switch r {
		case relLE, relEQ:
			s.setRange(p.id, p.off)
		case relLT:
			s.setRange(p.id, p.off+1)
		}
		return true
	}
	// A lookup's result against 0.
	if d.k == vMapOrNull && src.isConst() && src.lo == 0 && (rel == relEQ || rel == relNE) {
		for k := range s.r {
			if v := s.r[k]; v.k == vMapOrNull && v.tag == d.tag {
				if rel == relEQ {
					s.r[k] = constant(0)
				} else {
					s.r[k] = aval{k: vMapVal, id: v.id}
				}
			}
		}
		return true
	}
	// A number against a constant.
	if d.k == vScalar && src.isConst() {
		c := src.lo
		lo, hi := d.lo, d.hi
		switch rel {
		case relEQ:
			lo, hi = max(lo, c), min(hi, c)
		case relGT:
			if c == math.MaxUint64 {
				return false
			}
			lo = max(lo, c+1)
		case relGE:
			lo = max(lo, c)
		case relLT:
			if c == 0 {
				return false
			}
			hi = min(hi, c-1)
		case relLE:
			hi = min(hi, c)
		}
		if lo > hi {
			return false
		}
		s.r[i.Dst] = scalar(lo, hi)
	}
	return true
}
