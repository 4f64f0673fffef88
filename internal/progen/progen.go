// Package progen generates random valid eBPF programs for differential
// testing of the interpreter, the JIT and the kernel against each other.
//
// A generated program takes no input: it sets r0..r9 to constants (many of
// them edge values), initializes some stack bytes, then mixes every kind of
// ALU, jump, stack load/store and atomic instruction, and ends with exit.
// Its result is r0, a scalar that depends only on the program, so every
// correct engine returns the same 64 bits. Programs are valid in the sense
// of the ISA (RFC 9669) and, with Config.Omit including KernelRefuses, are
// accepted by the Linux verifier (see the kernel test); with KernelBugs too,
// they also avoid the kernel's known wrong answers (see Feature).
package progen

import (
	"math"
	"math/rand/v2"

	"github.com/govswitch/vswitch/asm"
)

// Feature is a set of instruction kinds the generator may use.
type Feature uint32

// Features. Config.Omit takes a set of them.
const (
	FeatureALU32          Feature = 1 << iota // 32-bit ALU instructions
	FeatureJMP32                              // 32-bit conditional jumps
	FeatureSignedDiv                          // sdiv, smod (v4: off = 1)
	FeatureMovSX                              // movsx (v4: mov with off 8, 16, 32)
	FeatureLoadSX                             // sign-extending loads ldxsb/h/w (v4)
	FeatureBswap                              // bswap16/32/64 (v4: ALU64 END)
	FeatureEndian                             // le16/32/64, be16/32/64
	FeatureGotol                              // ja32 with a 32-bit offset (v4)
	FeatureLDDW                               // 64-bit immediate loads
	FeatureAtomics                            // lock add/or/and/xor without fetch
	FeatureAtomicFetch                        // fetch add/or/and/xor, xchg, cmpxchg (32 and 64 bit)
	FeatureCmpXchg32                          // 32-bit cmpxchg (needs FeatureAtomicFetch)
	FeatureStackPointer                       // copies of r10 (plus a constant) as base registers
	FeatureEarlyExit                          // exit before the end, behind a conditional jump
	FeatureImmDivZero                         // div/mod by an immediate 0 (the ISA defines it)
	FeatureWideImmShift                       // immediate shifts >= the operand width (the ISA masks them)
	FeatureUnalignedStack                     // stack loads and stores at unaligned offsets

	// AllFeatures is every feature.
	AllFeatures = FeatureUnalignedStack<<1 - 1
)

// KernelRefuses is what the Linux verifier refuses although the ISA defines
// it: division by an immediate zero, immediate shifts of the width or more,
// and unaligned stack accesses (the verifier demands aligned stack access so
// its spill tracking works). Omit it for programs the kernel must load.
const KernelRefuses = FeatureImmDivZero | FeatureWideImmShift | FeatureUnalignedStack

// KernelBugs is what makes the kernel (Linux 6.18 as measured, see
// shared/NOTES.md) give wrong answers, so differential tests against it
// omit these:
//   - FeatureCmpXchg32: after a 32-bit cmpxchg whose only 64-bit use of r0
//     is on a path the verifier pruned, the kernel leaves r0's upper half
//     set instead of zero-extending.
//   - FeatureAtomicFetch: the verifier does not track atomic fetch results
//     through stack slots precisely, so it can treat different paths as
//     equal and delete code that runs. The generator's fetches all target
//     stack slots, so the feature goes as a whole.
const KernelBugs = FeatureCmpXchg32 | FeatureAtomicFetch

// KernelSafe is the set to omit for programs run by the Linux kernel.
const KernelSafe = KernelRefuses | KernelBugs

// Config says what to generate. The zero value means defaults: a body of
// about 64 instructions using every feature, no loops.
type Config struct {
	// Length is the approximate number of body instructions (the prologue
	// that initializes registers and stack comes on top). 0 means 64; it is
	// capped at 4096 so that jump offsets fit.
	Length int

	// Omit lists features not to use, e.g. KernelSafe.
	Omit Feature

	// Loops allows bounded counted loops (backward jumps), nested at most
	// two deep. Each has a counter register that its body never writes and
	// a constant trip count, so the kernel verifier can bound it.
	Loops bool

	// MaxLoopCount is the largest trip count of a loop; 0 means 8.
	MaxLoopCount int
}

func (c Config) has(f Feature) bool { return c.Omit&f == 0 }

// Generate returns a random valid program determined by rng and cfg.
// Registers are all written before they are read; stack reads touch only
// bytes the prologue initialized; conditional jumps go forward (backward
// only to close a loop when cfg.Loops is set); pointers (copies of r10)
// are used only as load/store bases and overwritten right after, so r0 at
// exit and every stored or computed value are scalars. The program ignores
// r1..r5 on entry.
func Generate(rng *rand.Rand, cfg Config) []asm.Instruction {
	if cfg.Length <= 0 {
		cfg.Length = 64
	}
	if cfg.Length > 4096 {
		cfg.Length = 4096
	}
	if cfg.MaxLoopCount <= 0 {
		cfg.MaxLoopCount = 8
	}
	g := &gen{rng: rng, cfg: cfg, mult: 1}
	g.prologue()
	g.block(cfg.Length)
	g.emit(asm.Instruction{Op: asm.OpExit})
	return g.resolve()
}

// stackSize is the eBPF stack: r10-512 up to r10.
const stackSize = 512

// Bounds on loops, to keep the kernel verifier's work small (see gen.mult).
const (
	maxBranchBits = 8  // see gen.branchBits
	maxIterations = 32 // product of the trip counts of nested loops
)

// mayBranch reports whether a conditional jump may be emitted here, and
// accounts for it.
func (g *gen) mayBranch() bool {
	if g.mult == 1 {
		return true
	}
	if g.branchBits+g.mult > maxBranchBits {
		return false
	}
	g.branchBits += g.mult
	return true
}

type gen struct {
	rng *rand.Rand
	cfg Config

	items     []item
	here      []int // labels that the next emitted item carries
	labels    int   // labels allocated so far
	reserved  [10]bool
	loopDepth int
	depth     int

	// Inside loops, the verifier walks every iteration, and each branch it
	// cannot decide doubles the paths it walks. mult is the product of the
	// trip counts of the enclosing loops (1 outside loops); branchBits is
	// the sum of mult over the branches inside the current outermost loop,
	// kept at most maxBranchBits so verification stays fast.
	mult       int
	branchBits int

	init      [stackSize]bool // bytes the prologue initialized, index off+512
	initSlots []int           // 8-byte aligned offsets (from r10) fully initialized
}

// item is one instruction (two slots for lddw), maybe a jump to a label.
type item struct {
	ins    []asm.Instruction
	target int // label a jump goes to, or -1
	labels []int
}

func (g *gen) emit(ins ...asm.Instruction) {
	g.items = append(g.items, item{ins: ins, target: -1, labels: g.here})
	g.here = nil
}

func (g *gen) emitJump(i asm.Instruction, label int) {
	g.items = append(g.items, item{ins: []asm.Instruction{i}, target: label, labels: g.here})
	g.here = nil
}

func (g *gen) newLabel() int { g.labels++; return g.labels - 1 }

// place puts label on the next emitted item.
func (g *gen) place(label int) { g.here = append(g.here, label) }

// resolve lays the items out and fills in jump offsets.
func (g *gen) resolve() []asm.Instruction {
	at := make([]int, g.labels)
	slot := 0
	for _, it := range g.items {
		for _, l := range it.labels {
			at[l] = slot
		}
		slot += len(it.ins)
	}
	out := make([]asm.Instruction, 0, slot)
	for _, it := range g.items {
		if it.target >= 0 {
			i := it.ins[0]
			rel := at[it.target] - (len(out) + 1)
			if i.Op == asm.OpJA32 {
				i.Imm = int32(rel)
			} else {
				i.Off = int16(rel)
			}
			out = append(out, i)
			continue
		}
		out = append(out, it.ins...)
	}
	return out
}

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

// imm32 returns an immediate, often an edge value.
func (g *gen) imm32() int32 {
	edges := [...]int32{0, 1, -1, 2, 3, 7, 8, 31, 32, 33, 63, 64, 255, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
		math.MaxInt32, math.MinInt32, math.MinInt32 + 1, -2, -128, -32768}
	switch g.rng.IntN(3) {
	case 0:
		return edges[g.rng.IntN(len(edges))]
	case 1:
		return int32(g.rng.IntN(32)) - 8
	}
	return int32(g.rng.Uint32())
}

// imm64 returns a 64-bit constant, often an edge value.
func (g *gen) imm64() uint64 {
	edges := [...]uint64{0, 1, math.MaxUint64, 1 << 63, 1<<63 - 1, 1<<63 + 1, 0x80000000, 0xffffffff, 0x7fffffff,
		1 << 32, 1<<32 + 1, 0xffffffff80000000, 0xffffffff00000000, 0x8000000000000080, 63, 64, 31, 32}
	switch g.rng.IntN(3) {
	case 0:
		return edges[g.rng.IntN(len(edges))]
	case 1:
		return uint64(int64(g.rng.IntN(64) - 16))
	}
	return g.rng.Uint64()
}

// anyReg is a register to read: r0..r9 (all always initialized).
func (g *gen) anyReg() uint8 { return uint8(g.rng.IntN(10)) }

// dstReg is a register to write: r0..r9 but no loop counter.
func (g *gen) dstReg() uint8 {
	for {
		r := uint8(g.rng.IntN(10))
		if !g.reserved[r] {
			return r
		}
	}
}

// prologue writes every register and some stack bytes.
func (g *gen) prologue() {
	for r := uint8(0); r <= 9; r++ {
		g.setReg(r)
	}
	n := 1 + g.rng.IntN(6)
	for range n {
		var off int
		switch {
		case g.chance(0.7):
			off = -8 * (1 + g.rng.IntN(8)) // the top 64 bytes, often adjacent
		case g.chance(0.5):
			off = -stackSize + 8*g.rng.IntN(4) // the bottom edge
		default:
			off = -8 * (1 + g.rng.IntN(stackSize/8))
		}
		if g.init[off+stackSize] {
			continue
		}
		g.initSlot(off)
	}
}

// setReg writes a constant to r.
func (g *gen) setReg(r uint8) {
	switch {
	case g.cfg.has(FeatureLDDW) && g.chance(0.4):
		l := asm.LoadImm64(r, g.imm64())
		g.emit(l[0], l[1])
	case g.cfg.has(FeatureALU32) && g.chance(0.3):
		g.emit(asm.Instruction{Op: asm.ClassALU | asm.ALUMov | asm.SrcK, Dst: r, Imm: g.imm32()})
	default:
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: r, Imm: g.imm32()})
	}
}

var sizes = [...]uint8{asm.SizeB, asm.SizeH, asm.SizeW, asm.SizeDW}

func sizeBytes(s uint8) int {
	switch s {
	case asm.SizeB:
		return 1
	case asm.SizeH:
		return 2
	case asm.SizeW:
		return 4
	}
	return 8
}

// initSlot fills the 8 bytes at r10+off with stores of one or more sizes.
func (g *gen) initSlot(off int) {
	size := sizes[g.rng.IntN(4)]
	n := sizeBytes(size)
	for o := off; o < off+8; o += n {
		g.store(size, 10, int16(o))
	}
	for o := off; o < off+8; o++ {
		g.init[o+stackSize] = true
	}
	g.initSlots = append(g.initSlots, off)
}

// store emits stx or st of size at [base+off].
func (g *gen) store(size uint8, base uint8, off int16) {
	if g.chance(0.6) {
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | size, Dst: base, Src: g.anyReg(), Off: off})
		return
	}
	g.emit(asm.Instruction{Op: asm.ClassST | asm.ModeMEM | size, Dst: base, Off: off, Imm: g.imm32()})
}

func (g *gen) initialized(off, n int) bool {
	if off < -stackSize || off+n > 0 {
		return false
	}
	for o := off; o < off+n; o++ {
		if !g.init[o+stackSize] {
			return false
		}
	}
	return true
}

// readOffset returns an offset from r10 of n initialized bytes, aligned to
// n unless unaligned access is allowed (and wanted).
func (g *gen) readOffset(n int, mayUnalign bool) int {
	if mayUnalign && g.cfg.has(FeatureUnalignedStack) && g.chance(0.3) {
		for range 8 {
			off := g.initSlots[g.rng.IntN(len(g.initSlots))] + g.rng.IntN(15) - 7
			if off%n != 0 && g.initialized(off, n) {
				return off
			}
		}
	}
	slot := g.initSlots[g.rng.IntN(len(g.initSlots))]
	return slot + n*g.rng.IntN(8/n)
}

// writeOffset returns an offset from r10 for an n-byte store: usually into
// initialized bytes (so that later reads see it), else anywhere.
func (g *gen) writeOffset(n int) int {
	if g.chance(0.75) {
		return g.readOffset(n, true)
	}
	if g.cfg.has(FeatureUnalignedStack) && g.chance(0.3) {
		return -n - g.rng.IntN(stackSize-n+1)
	}
	return -n * (1 + g.rng.IntN(stackSize/n))
}

// block generates about budget instructions in which forward jumps stay:
// a jump's target is a later unit of the block or the block's end.
func (g *gen) block(budget int) {
	type pending struct{ label, left int }
	var pend []pending
	for budget > 0 {
		kept := pend[:0]
		for _, p := range pend {
			if p.left <= 0 {
				g.place(p.label)
			} else {
				kept = append(kept, p)
			}
		}
		pend = kept
		if l, ok := g.unit(&budget); ok {
			pend = append(pend, pending{l, g.rng.IntN(7)})
		}
		for n := range pend {
			pend[n].left--
		}
	}
	for _, p := range pend {
		g.place(p.label)
	}
}

// unit emits one unit: an instruction or a compound (diamond, loop, pointer
// access). It returns a label when it emitted a forward jump that the block
// must place.
func (g *gen) unit(budget *int) (int, bool) {
	*budget--
	r := g.rng.IntN(100)
	switch {
	case r < 38:
		g.alu()
	case r < 48:
		g.load()
	case r < 58:
		g.storeUnit()
	case r < 63 && (g.cfg.has(FeatureAtomics) || g.cfg.has(FeatureAtomicFetch)):
		g.atomic()
	case r < 66 && g.cfg.has(FeatureLDDW):
		l := asm.LoadImm64(g.dstReg(), g.imm64())
		g.emit(l[0], l[1])
	case r < 70:
		g.setReg(g.dstReg())
	case r < 82 && g.mayBranch():
		l := g.newLabel()
		g.emitJump(g.condJump(), l)
		return l, true
	case r < 86 && g.depth < 3 && *budget >= 4 && g.mayBranch():
		g.diamond(budget)
	case r < 90 && g.cfg.Loops && g.loopDepth < 2 && *budget >= 4 && g.mult*2 <= maxIterations:
		g.loop(budget)
	case r < 93 && g.cfg.has(FeatureEarlyExit) && g.mayBranch():
		l := g.newLabel()
		g.emitJump(g.condJump(), l)
		g.emit(asm.Instruction{Op: asm.OpExit})
		g.place(l)
	case r < 98 && g.cfg.has(FeatureStackPointer):
		g.pointerAccess()
	default:
		g.alu()
	}
	return 0, false
}

// diamond emits if-then-else, the only use of unconditional jumps (an
// unconditional jump must not leave code unreachable: the verifier refuses
// that).
func (g *gen) diamond(budget *int) {
	then, end := g.newLabel(), g.newLabel()
	g.emitJump(g.condJump(), then)
	n := *budget / 2
	if n > 16 {
		n = 16
	}
	a := g.rng.IntN(n + 1)
	*budget -= n
	g.depth++
	g.block(a)
	if g.cfg.has(FeatureGotol) && g.chance(0.3) {
		g.emitJump(asm.Instruction{Op: asm.OpJA32}, end)
	} else {
		g.emitJump(asm.Instruction{Op: asm.OpJA}, end)
	}
	g.place(then)
	g.block(n - a)
	g.depth--
	g.place(end)
}

// loop emits a counted loop whose counter the body does not write.
func (g *gen) loop(budget *int) {
	var c uint8
	for {
		c = uint8(1 + g.rng.IntN(9))
		if !g.reserved[c] {
			break
		}
	}
	count := int32(1 + g.rng.IntN(min(g.cfg.MaxLoopCount, maxIterations/g.mult)))
	n := *budget / 2
	if n > 24 {
		n = 24
	}
	*budget -= n
	up := g.chance(0.5)
	cls := uint8(asm.ClassALU64)
	jcls := uint8(asm.ClassJMP)
	if g.cfg.has(FeatureALU32) && g.chance(0.5) {
		cls = asm.ClassALU
	}
	if g.cfg.has(FeatureJMP32) && g.chance(0.5) {
		jcls = asm.ClassJMP32
	}
	if up {
		g.emit(asm.Instruction{Op: cls | asm.ALUMov | asm.SrcK, Dst: c, Imm: 0})
	} else {
		g.emit(asm.Instruction{Op: cls | asm.ALUMov | asm.SrcK, Dst: c, Imm: count})
	}
	head := g.newLabel()
	g.place(head)
	g.reserved[c] = true
	g.loopDepth++
	g.depth++
	if g.mult == 1 {
		g.branchBits = 0
	}
	g.mult *= int(count)
	g.block(n)
	g.mult /= int(count)
	g.depth--
	g.loopDepth--
	g.reserved[c] = false
	if up {
		g.emit(asm.Instruction{Op: cls | asm.ALUAdd | asm.SrcK, Dst: c, Imm: 1})
		op := uint8(asm.JmpJLT)
		if g.chance(0.5) {
			op = asm.JmpJNE
		}
		g.emitJump(asm.Instruction{Op: jcls | op | asm.SrcK, Dst: c, Imm: count}, head)
	} else {
		g.emit(asm.Instruction{Op: cls | asm.ALUSub | asm.SrcK, Dst: c, Imm: 1})
		op := uint8(asm.JmpJNE)
		if g.chance(0.5) {
			op = asm.JmpJSGT
		}
		g.emitJump(asm.Instruction{Op: jcls | op | asm.SrcK, Dst: c, Imm: 0}, head)
	}
}

var condOps = [...]uint8{asm.JmpJEQ, asm.JmpJGT, asm.JmpJGE, asm.JmpJSET, asm.JmpJNE,
	asm.JmpJSGT, asm.JmpJSGE, asm.JmpJLT, asm.JmpJLE, asm.JmpJSLT, asm.JmpJSLE}

// condJump returns a conditional jump without its offset.
func (g *gen) condJump() asm.Instruction {
	cls := uint8(asm.ClassJMP)
	if g.cfg.has(FeatureJMP32) && g.chance(0.4) {
		cls = asm.ClassJMP32
	}
	op := condOps[g.rng.IntN(len(condOps))]
	if g.chance(0.5) {
		return asm.Instruction{Op: cls | op | asm.SrcX, Dst: g.anyReg(), Src: g.anyReg()}
	}
	return asm.Instruction{Op: cls | op | asm.SrcK, Dst: g.anyReg(), Imm: g.imm32()}
}

var aluOps = [...]uint8{asm.ALUAdd, asm.ALUSub, asm.ALUMul, asm.ALUDiv, asm.ALUOr, asm.ALUAnd, asm.ALULsh,
	asm.ALURsh, asm.ALUNeg, asm.ALUMod, asm.ALUXor, asm.ALUMov, asm.ALUArsh, asm.ALUEnd}

// alu emits one ALU or ALU64 instruction.
func (g *gen) alu() {
	cls := uint8(asm.ClassALU64)
	if g.cfg.has(FeatureALU32) && g.chance(0.45) {
		cls = asm.ClassALU
	}
	width := int32(64)
	if cls == asm.ClassALU {
		width = 32
	}
	dst := g.dstReg()
	op := aluOps[g.rng.IntN(len(aluOps))]
	x := g.chance(0.5)
	i := asm.Instruction{Op: cls | op, Dst: dst}
	switch op {
	case asm.ALUNeg:
		g.emit(i)
		return
	case asm.ALUEnd:
		i.Imm = [...]int32{16, 32, 64}[g.rng.IntN(3)]
		switch {
		case cls == asm.ClassALU64 && g.cfg.has(FeatureBswap):
		case g.cfg.has(FeatureEndian):
			i.Op = asm.ClassALU | asm.ALUEnd
			if x {
				i.Op |= asm.SrcX // be
			}
		default:
			g.emit(asm.Instruction{Op: cls | asm.ALUXor | asm.SrcX, Dst: dst, Src: g.anyReg()})
			return
		}
		g.emit(i)
		return
	case asm.ALUMov:
		if x && g.cfg.has(FeatureMovSX) && g.chance(0.4) {
			offs := []int16{8, 16, 32}
			if cls == asm.ClassALU {
				offs = offs[:2] // movsx32 with 32 is not in the ISA
			}
			i.Off = offs[g.rng.IntN(len(offs))]
		}
	case asm.ALUDiv, asm.ALUMod:
		if g.cfg.has(FeatureSignedDiv) && g.chance(0.5) {
			i.Off = 1
		}
	}
	if x {
		i.Op |= asm.SrcX
		i.Src = g.anyReg()
		g.emit(i)
		return
	}
	i.Imm = g.imm32()
	switch op {
	case asm.ALULsh, asm.ALURsh, asm.ALUArsh:
		if g.cfg.has(FeatureWideImmShift) && g.chance(0.2) {
			i.Imm = width + int32(g.rng.IntN(int(width)+8))
		} else {
			i.Imm = int32(g.rng.IntN(int(width)))
		}
	case asm.ALUDiv, asm.ALUMod:
		if i.Imm == 0 && !g.cfg.has(FeatureImmDivZero) {
			i.Imm = 3
		}
	}
	g.emit(i)
}

// pointerBase returns the base register for a stack access of n bytes at
// r10+off and the offset to use with it. With FeatureStackPointer it may
// copy r10 (plus a constant) into a free register first; kill then must be
// called after the access to turn that register back into a scalar.
func (g *gen) pointerBase(off int, n int, avoid ...uint8) (base uint8, insnOff int16, kill func()) {
	if !g.cfg.has(FeatureStackPointer) || !g.chance(0.15) {
		return 10, int16(off), func() {}
	}
	var p uint8
	for {
		p = uint8(1 + g.rng.IntN(9))
		ok := !g.reserved[p]
		for _, a := range avoid {
			ok = ok && p != a
		}
		if ok {
			break
		}
	}
	c := -g.rng.IntN(stackSize + 1)
	if !g.cfg.has(FeatureUnalignedStack) {
		c &^= 7 // keep c+insn.off aligned as the verifier wants
	}
	g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcX, Dst: p, Src: 10})
	// Only add: the verifier refuses subtraction from a stack pointer.
	g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcK, Dst: p, Imm: int32(c)})
	return p, int16(off - c), func() { g.setReg(p) }
}

// pointerAccess is a load or store through a copy of r10.
func (g *gen) pointerAccess() {
	if g.chance(0.5) {
		g.load()
	} else {
		g.storeUnit()
	}
}

// load emits ldx or ldxs from initialized stack bytes.
func (g *gen) load() {
	size := sizes[g.rng.IntN(4)]
	mode := uint8(asm.ModeMEM)
	if size != asm.SizeDW && g.cfg.has(FeatureLoadSX) && g.chance(0.4) {
		mode = asm.ModeMEMSX
	}
	n := sizeBytes(size)
	dst := g.dstReg()
	base, off, kill := g.pointerBase(g.readOffset(n, true), n)
	g.emit(asm.Instruction{Op: asm.ClassLDX | mode | size, Dst: dst, Src: base, Off: off})
	if base != dst {
		kill()
	}
}

// storeUnit emits stx or st to the stack.
func (g *gen) storeUnit() {
	size := sizes[g.rng.IntN(4)]
	n := sizeBytes(size)
	off := g.writeOffset(n)
	src := g.anyReg()
	base, ioff, kill := g.pointerBase(off, n, src)
	if g.chance(0.6) {
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | size, Dst: base, Src: src, Off: ioff})
	} else {
		g.emit(asm.Instruction{Op: asm.ClassST | asm.ModeMEM | size, Dst: base, Off: ioff, Imm: g.imm32()})
	}
	kill()
}

// atomic emits an atomic operation on an initialized, aligned stack slot.
func (g *gen) atomic() {
	type kind struct {
		imm   int32
		fetch bool
	}
	var kinds []kind
	if g.cfg.has(FeatureAtomics) {
		for _, op := range []int32{asm.AtomicAdd, asm.AtomicOr, asm.AtomicAnd, asm.AtomicXor} {
			kinds = append(kinds, kind{op, false})
		}
	}
	if g.cfg.has(FeatureAtomicFetch) {
		for _, op := range []int32{asm.AtomicAdd, asm.AtomicOr, asm.AtomicAnd, asm.AtomicXor} {
			kinds = append(kinds, kind{op | asm.AtomicFetch, true})
		}
		kinds = append(kinds, kind{asm.AtomicXchg, true}, kind{asm.AtomicCmpXchg, true})
	}
	k := kinds[g.rng.IntN(len(kinds))]
	size := uint8(asm.SizeDW)
	if g.chance(0.5) && (k.imm != asm.AtomicCmpXchg || g.cfg.has(FeatureCmpXchg32)) {
		size = asm.SizeW
	}
	n := sizeBytes(size)
	src := g.anyReg()
	if k.fetch {
		src = g.dstReg() // the fetch writes src
	}
	base, off, kill := g.pointerBase(g.readOffset(n, false), n, src)
	g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeATOMIC | size, Dst: base, Src: src, Off: off, Imm: k.imm})
	kill()
}
