package progen

import (
	"math/rand/v2"

	"github.com/govswitch/vswitch/asm"
)

// Ctx selects the layout of the context a packet program reads.
type Ctx int

const (
	// CtxVswitch is struct vswitch_md: 64-bit data and data_end at 0 and 8.
	CtxVswitch Ctx = iota + 1
	// CtxXDP is the kernel's struct xdp_md: 32-bit data and data_end at 0
	// and 4, for running the same program under BPF_PROG_TEST_RUN.
	CtxXDP
)

// PacketConfig says what GeneratePacket makes. The zero value means a
// vswitch program of about 12 parts, every access checked against
// data_end as a verifier wants.
type PacketConfig struct {
	Ctx Ctx
	// Parts is the number of checks and accesses (0 means 12).
	Parts int
	// Unsafe mixes in what a verifier refuses: accesses past what was
	// checked, checks on the wrong branch or with signed comparisons,
	// pointers kept across a new check, loops, writes to data and
	// data_end. Such programs fault on short frames (and a proof must
	// fail for them to run right); only engines that check at run time
	// can run them.
	Unsafe bool
}

// GeneratePacket returns a random program that reads and writes the frame
// the way forwarding programs do: it loads data and data_end from the
// context, compares pointers into the frame (constant and variable
// offsets, such as an IPv4 header's length) against data_end and reads and
// writes what it checked, and returns a 32-bit value computed from the
// frame's bytes (the low 32 bits of r0 are what the kernel reports). The
// programs exercise what a load-time range analysis must prove, and, with
// Unsafe, what it must not.
func GeneratePacket(rng *rand.Rand, cfg PacketConfig) []asm.Instruction {
	if cfg.Ctx == 0 {
		cfg.Ctx = CtxVswitch
	}
	if cfg.Parts <= 0 {
		cfg.Parts = 12
	}
	g := &pgen{gen: gen{rng: rng}, cfg: cfg}
	g.out = g.newLabel()
	// r6 = data, r7 = data_end, r0 the result, r9 the context.
	if cfg.Ctx == CtxXDP {
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeW, Dst: 6, Src: 1, Off: 0})
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeW, Dst: 7, Src: 1, Off: 4})
	} else {
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeDW, Dst: 6, Src: 1, Off: 0})
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeDW, Dst: 7, Src: 1, Off: 8})
	}
	g.emit(mov64(9, 1), movImm(0, int32(rng.IntN(100))))
	g.base = []pbase{{reg: 6, n: 0}}
	for range cfg.Parts {
		g.part()
	}
	g.place(g.out)
	g.emit(asm.Instruction{Op: asm.ClassALU | asm.ALUMov | asm.SrcX, Dst: 0, Src: 0}) // the low 32 bits
	g.emit(asm.Instruction{Op: asm.OpExit})
	return g.resolve()
}

// pbase is a register pointing into the frame and how many bytes from it
// were checked against data_end.
type pbase struct {
	reg uint8
	n   int
}

type pgen struct {
	gen
	cfg  PacketConfig
	out  int     // label of the final exit
	base []pbase // usable frame pointers
	next uint8   // next pointer register, r2..r5 in turn
}

func mov64(dst, src uint8) asm.Instruction {
	return asm.Instruction{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcX, Dst: dst, Src: src}
}

func movImm(dst uint8, v int32) asm.Instruction {
	return asm.Instruction{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: dst, Imm: v}
}

func addImm(dst uint8, v int32) asm.Instruction {
	return asm.Instruction{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcK, Dst: dst, Imm: v}
}

var packetSizes = []uint8{asm.SizeB, asm.SizeH, asm.SizeW, asm.SizeDW}

// reg returns the next pointer register (r2..r5), forgetting what it
// held.
func (g *pgen) reg() uint8 {
	r := 2 + g.next%4
	g.next++
	g.base = dropBase(g.base, r)
	return r
}

func dropBase(bs []pbase, r uint8) []pbase {
	out := bs[:0]
	for _, b := range bs {
		if b.reg != r {
			out = append(out, b)
		}
	}
	return out
}

func (g *pgen) part() {
	switch k := g.rng.IntN(10); {
	case k < 3:
		g.check(0)
	case k < 5:
		g.variable()
	case k < 8:
		g.access()
	case k < 9:
		g.mix()
	default:
		if g.cfg.Unsafe {
			g.unsafe()
		} else {
			g.access()
		}
	}
}

// check makes a pointer at data (or a base) + off, compares it with
// data_end and, past the comparison, knows that many bytes.
func (g *pgen) check(extra int) {
	from := g.base[g.rng.IntN(len(g.base))]
	k := 1 + g.rng.IntN(64) + extra
	p := g.reg()
	g.emit(mov64(p, from.reg), addImm(p, int32(k)))
	// A comparison that leaves the frame when p > data_end, in one of its
	// forms.
	switch g.rng.IntN(4) {
	case 0:
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJGT | asm.SrcX, Dst: p, Src: 7}, g.out)
	case 1:
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJLT | asm.SrcX, Dst: 7, Src: p}, g.out)
	case 2:
		ok := g.newLabel()
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJLE | asm.SrcX, Dst: p, Src: 7}, ok)
		g.emitJump(asm.Instruction{Op: asm.OpJA}, g.out)
		g.place(ok)
	default:
		ok := g.newLabel()
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJGE | asm.SrcX, Dst: 7, Src: p}, ok)
		g.emitJump(asm.Instruction{Op: asm.OpJA}, g.out)
		g.place(ok)
	}
	// The base is known to k bytes (p itself to 0).
	for i := range g.base {
		if g.base[i].reg == from.reg {
			g.base[i].n = max(g.base[i].n, k)
		}
	}
	g.base = append(g.base, pbase{reg: p, n: 0})
}

// variable makes a pointer at a base + a bounded number read from the
// frame (as an IPv4 header's length), then checks it.
func (g *pgen) variable() {
	from, ok := g.known(1)
	if !ok {
		g.check(0)
		return
	}
	v := g.reg()
	at := g.rng.IntN(from.n)
	g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeB, Dst: 8, Src: from.reg, Off: int16(at)})
	switch g.rng.IntN(3) {
	case 0:
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUAnd | asm.SrcK, Dst: 8, Imm: 15},
			asm.Instruction{Op: asm.ClassALU64 | asm.ALULsh | asm.SrcK, Dst: 8, Imm: 2})
	case 1:
		g.emit(asm.Instruction{Op: asm.ClassALU | asm.ALUAnd | asm.SrcK, Dst: 8, Imm: 63})
	default:
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALURsh | asm.SrcK, Dst: 8, Imm: 3})
	}
	g.emit(mov64(v, from.reg))
	if g.rng.IntN(2) == 0 {
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcX, Dst: v, Src: 8})
	} else {
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcX, Dst: 8, Src: v}, mov64(v, 8))
	}
	g.base = append(g.base, pbase{reg: v, n: 0})
	g.check(0)
	// check picked any base: make sure v itself gets checked too.
	g.checkFrom(v)
}

// checkFrom checks k bytes from base register r.
func (g *pgen) checkFrom(r uint8) {
	for i, b := range g.base {
		if b.reg != r {
			continue
		}
		k := 1 + g.rng.IntN(24)
		t := uint8(8)
		g.emit(mov64(t, r), addImm(t, int32(b.n+k)))
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJGT | asm.SrcX, Dst: t, Src: 7}, g.out)
		g.base[i].n = b.n + k
		return
	}
}

// known returns a base with at least n bytes checked.
func (g *pgen) known(n int) (pbase, bool) {
	var ok []pbase
	for _, b := range g.base {
		if b.n >= n {
			ok = append(ok, b)
		}
	}
	if len(ok) == 0 {
		return pbase{}, false
	}
	return ok[g.rng.IntN(len(ok))], true
}

// access reads (into r0) or writes (from r0) bytes a base checked.
func (g *pgen) access() {
	size := packetSizes[g.rng.IntN(4)]
	n := sizeBytes(size)
	b, ok := g.known(n)
	if !ok {
		g.check(n)
		return
	}
	off := int16(g.rng.IntN(b.n - n + 1))
	if g.rng.IntN(3) == 0 {
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | size, Dst: b.reg, Src: 0, Off: off})
		return
	}
	g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | size, Dst: 8, Src: b.reg, Off: off})
	g.mixIn(8)
}

// mixIn folds register r into r0.
func (g *pgen) mixIn(r uint8) {
	ops := []uint8{asm.ALUAdd, asm.ALUXor, asm.ALUSub}
	g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALULsh | asm.SrcK, Dst: 0, Imm: 3},
		asm.Instruction{Op: asm.ClassALU64 | ops[g.rng.IntN(len(ops))] | asm.SrcX, Dst: 0, Src: r})
}

// mix changes r0 alone, or copies a pointer.
func (g *pgen) mix() {
	if len(g.base) > 1 && g.rng.IntN(2) == 0 {
		b := g.base[g.rng.IntN(len(g.base))]
		r := g.reg()
		g.emit(mov64(r, b.reg))
		g.base = append(g.base, pbase{reg: r, n: b.n})
		return
	}
	g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUMul | asm.SrcK, Dst: 0, Imm: int32(3 + 2*g.rng.IntN(8))})
}

// unsafe emits one thing a verifier would refuse.
func (g *pgen) unsafe() {
	size := packetSizes[g.rng.IntN(4)]
	n := sizeBytes(size)
	b := g.base[g.rng.IntN(len(g.base))]
	switch g.rng.IntN(7) {
	case 0: // past what was checked
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | size, Dst: 8, Src: b.reg, Off: int16(b.n - n + 1 + g.rng.IntN(4))})
		g.mixIn(8)
	case 1: // before the pointer
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | size, Dst: b.reg, Src: 0, Off: int16(-1 - g.rng.IntN(8))})
	case 2: // an access on the branch where the check failed
		p := g.reg()
		k := 1 + g.rng.IntN(64)
		skip := g.newLabel()
		g.emit(mov64(p, b.reg), addImm(p, int32(k)))
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJLE | asm.SrcX, Dst: p, Src: 7}, skip)
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | size, Dst: 8, Src: b.reg, Off: int16(g.rng.IntN(k))})
		g.mixIn(8)
		g.place(skip)
	case 3: // a signed comparison proves nothing
		p := g.reg()
		k := 1 + g.rng.IntN(64)
		g.emit(mov64(p, b.reg), addImm(p, int32(k)))
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJSGT | asm.SrcX, Dst: p, Src: 7}, g.out)
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeB, Dst: 8, Src: b.reg, Off: int16(k - 1)})
		g.mixIn(8)
	case 4: // write data or data_end (the context's head is read-only)
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | asm.SizeDW, Dst: 9, Src: 6, Off: int16(8 * g.rng.IntN(2))})
	case 5: // a loop that walks a pointer, checking it on some iterations only
		p := g.reg()
		top := g.newLabel()
		g.emit(mov64(p, b.reg), movImm(8, 0))
		g.place(top)
		g.emit(addImm(p, int32(1+g.rng.IntN(16))), addImm(8, 1))
		skip := g.newLabel()
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJSET | asm.SrcK, Dst: 8, Imm: 1}, skip)
		g.emit(mov64(5, p), addImm(5, int32(n)))
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJGT | asm.SrcX, Dst: 5, Src: 7}, g.out)
		g.place(skip)
		g.emit(asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | size, Dst: 4, Src: p, Off: 0})
		g.emit(asm.Instruction{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcX, Dst: 0, Src: 4})
		g.emitJump(asm.Instruction{Op: asm.ClassJMP | asm.JmpJLT | asm.SrcK, Dst: 8, Imm: int32(2 + g.rng.IntN(6))}, top)
		g.base = dropBase(g.base, 5)
		g.base = dropBase(g.base, 4)
	default: // a pointer spilled to the stack and loaded back
		r := g.reg()
		g.emit(asm.Instruction{Op: asm.ClassSTX | asm.ModeMEM | asm.SizeDW, Dst: 10, Src: b.reg, Off: -8},
			asm.Instruction{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeDW, Dst: r, Src: 10, Off: -8})
		g.base = append(g.base, pbase{reg: r, n: b.n})
	}
}
