//go:build linux

package jit

import (
	"fmt"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// Register assignment. eBPF r0..r10 live in x86 registers for the whole
// run; r9 (x86) counts executed instructions, r12 points at the nativeCtx,
// r10 and r11 are scratch (r11 holds the address of a checked access).
var regMap = [11]xreg{
	0: rax, 1: rdi, 2: rsi, 3: rdx, 4: rcx, 5: r8,
	6: rbx, 7: r13, 8: r14, 9: r15, 10: rbp,
}

const (
	regCount = r9
	regCtx   = r12
	tmp      = r10
	addrReg  = r11
)

// Exit codes in the low byte of nativeCtx.exit; a done exit leaves it 0.
const (
	exitFault  = 1 // kind in bits 8..15, access size in 16..31
	exitHelper = 2 // helper id in bits 16..31
	exitCallx  = 3 // the helper id is in nativeCtx.addr
	// exitLevel: the main frame of a program that a tail call put in
	// place of a function exited (r0 in rax, r1..r5 in nativeCtx.regs):
	// Go returns to the function's caller. Only nested_entry sets it.
	exitLevel = 4
)

// exitInfo packs why machine code returned; the eBPF pc is in bits 32..63.
func exitInfo(code uint8, kind vm.Kind, aux uint16, pc int) uint64 {
	return uint64(code) | uint64(kind)<<8 | uint64(aux)<<16 | uint64(pc)<<32
}

// compiler turns one validated program into machine code.
type compiler struct {
	a     assembler
	prog  *vm.Program
	insns []asm.Instruction
	// r10Fixed: no instruction writes r10, so r10 is always the frame
	// pointer of the current call depth.
	r10Fixed bool
	// localCalls: the program has local calls (and needs call frames).
	localCalls bool
	// helperCalls: the program calls helpers (and needs the helper exit).
	helperCalls bool

	guess    []int8 // per memory instruction: where its base register likely points
	blockLen []int  // at a block's first instruction: slots in the block
	rem      []int  // slots after this instruction in its block
	// frameCopy: the analysis proved context or frame accesses, which hold
	// only in frame runs: the program is emitted twice, a generic copy
	// with those accesses checked and a copy for frame runs without.
	frameCopy bool

	// per pass
	pcLabel    []label // of the copy being emitted
	offsets    []int
	inFrame    bool  // emitting the copy for frame runs
	pc0Frame   label // instruction 0 of the copy frame runs use
	pc0        label // instruction 0 of the generic copy
	startFrame label // first entry of a frame run
	genericTo  int   // end of the generic copy when there are two
	proven     []bool
	// lookups are the hash lookup stubs by map, in the order first used.
	lookups     map[int]label
	lookupOrder []int
	cold        []func()
	checkR      label // slow-path region check for loads
	checkW      label // and for stores
	fault       label // common fault exit
	helper      label // common helper exit
	subRet      label // return from a local call
	resume      label // re-entry after a helper
	nested      label // entry while a tail call replaces a function (nested_entry)
	start       label // first entry
	frameDone   label // exit of the main program: the end of a run or of a batch's frame
	frameStart  label // entry of a batch's frame
	usedR       bool
	usedW       bool
	stubNames   map[int]string // offset -> name of the shared stubs
	coldFrom    int            // offset where cold code starts
	stubFrom    int            // offset where the shared stubs start
}

// compiled is the result of compile: the code and where things are in it.
type compiled struct {
	code        []byte
	localCalls  bool
	helperCalls bool
	windows     bool
	offsets     []int // native offset of each instruction slot (-1 for lddw's second), in the copy frame runs use
	proven      []bool
	start       int // entry of a run
	startFrame  int // entry of a frame run
	pc0, pc0F   int // instruction 0 of the generic copy and of the frame runs' copy
	resume      int // entry after a helper
	nested      int // entry that runs resume as a call (nested_entry)
	subRet      int // return from a local call (local_return), -1 without local calls
	frameStart  int // entry of a batch
	genericFrom int // the generic copy, when there are two
	genericTo   int
	coldFrom    int
	stubFrom    int
	stubNames   map[int]string
}

func compile(p *vm.Program) (*compiled, error) {
	c := &compiler{prog: p, insns: p.Resolved()}
	if len(c.insns) == 0 {
		return nil, fmt.Errorf("empty program")
	}
	c.blocks()
	c.guessRegions()
	for pc := range c.insns {
		if p.Proof(pc) == vm.ProvenFrame {
			c.frameCopy = true
		}
	}
	for pc, i := range c.insns {
		if i.Op == asm.OpCall && i.Src == asm.PseudoCall && (pc == 0 || !c.insns[pc-1].IsLDDW()) {
			c.localCalls = true
		}
		if (i.Op == asm.OpCall || i.Op == asm.OpCallX) && i.Src != asm.PseudoCall && (pc == 0 || !c.insns[pc-1].IsLDDW()) {
			c.helperCalls = true
		}
	}
	c.r10Fixed = true
	for pc, i := range c.insns {
		if i.Op&0x07 == asm.ClassSTX && i.Op&0xe0 == asm.ModeATOMIC && i.Src == 10 &&
			i.Imm&asm.AtomicFetch != 0 && i.Imm != asm.AtomicCmpXchg && (pc == 0 || !c.insns[pc-1].IsLDDW()) {
			c.r10Fixed = false
		}
	}
	for pass := 0; ; pass++ {
		if pass == 16 {
			// Growing jumps push others out of reach, one chain per pass:
			// stop searching and make every jump long.
			c.a.allLong = true
		}
		if pass > 18 {
			return nil, fmt.Errorf("jump relaxation did not converge")
		}
		c.a.reset()
		if err := c.emit(); err != nil {
			return nil, err
		}
		if c.a.resolve() {
			break
		}
	}
	var genericFrom, genericTo int
	if c.frameCopy {
		genericFrom, genericTo = c.a.labels[c.start], c.genericTo
	}

	out := &compiled{
		localCalls:  c.localCalls,
		windows:     c.usedR || c.usedW,
		code:        append([]byte(nil), c.a.b...),
		offsets:     c.offsets,
		proven:      c.proven,
		start:       c.a.labels[c.start],
		startFrame:  c.a.labels[c.startFrame],
		pc0:         c.a.labels[c.pc0],
		pc0F:        c.a.labels[c.pc0Frame],
		resume:      c.a.labels[c.resume],
		nested:      c.a.labels[c.nested],
		subRet:      -1,
		frameStart:  c.a.labels[c.frameStart],
		coldFrom:    c.coldFrom,
		stubFrom:    c.stubFrom,
		genericFrom: genericFrom,
		genericTo:   genericTo,
		stubNames:   c.stubNames,
	}
	if c.localCalls {
		out.subRet = c.a.labels[c.subRet]
	}
	return out, nil
}

func isJump(i asm.Instruction) bool {
	cl := i.Class()
	return cl == asm.ClassJMP || cl == asm.ClassJMP32
}

// blocks finds the straight runs of code (basic blocks) whose size in
// instruction slots is added to the counter once, at their start. A block ends at any
// jump, call or exit and before any jump target, so that the counter is
// exact wherever the interpreter looks at it (budget checks at backward
// jumps and calls, exits); a fault inside a block subtracts the number of
// slots the block has not executed yet.
func (c *compiler) blocks() {
	n := len(c.insns)
	leader := make([]bool, n+1)
	leader[0] = true
	for pc := 0; pc < n; pc++ {
		i := c.insns[pc]
		if i.IsLDDW() {
			pc++
			continue
		}
		if !isJump(i) {
			continue
		}
		leader[pc+1] = true
		switch {
		case i.Op == asm.OpJA32:
			leader[pc+1+int(i.Imm)] = true
		case i.Op == asm.OpCall && i.Src == asm.PseudoCall:
			leader[pc+1+int(i.Imm)] = true
		case i.Op == asm.OpCall || i.Op == asm.OpCallX || i.Op == asm.OpExit:
		default:
			leader[pc+1+int(i.Off)] = true
		}
	}
	c.blockLen = make([]int, n)
	c.rem = make([]int, n)
	// The interpreter counts instruction slots: lddw counts two.
	width := func(pc int) int {
		if c.insns[pc].IsLDDW() {
			return 2
		}
		return 1
	}
	var members []int
	flush := func() {
		after := 0
		for k := len(members) - 1; k >= 0; k-- {
			c.rem[members[k]] = after
			after += width(members[k])
		}
		if len(members) > 0 {
			c.blockLen[members[0]] = after
		}
		members = members[:0]
	}
	for pc := 0; pc < n; pc++ {
		if leader[pc] {
			flush()
		}
		members = append(members, pc)
		i := c.insns[pc]
		if i.IsLDDW() {
			pc++
		} else if isJump(i) {
			flush()
		}
	}
	flush()
}

// Where a base register likely points, to order the inline checks.
const (
	guessFrame int8 = iota // argument region 2 (the frame), or unknown
	guessArg0              // argument region 1: the context (or the conformance memory)
	guessStack
)

// guessRegions predicts, for each load and store, which region its base
// register points into: r1 starts at the context, anything loaded is taken
// for a frame pointer (ctx->data), r10 and its copies point into the
// stack, moves and constant adds keep the prediction. Any jump target
// forgets everything. It only orders the checks, which stay
// complete, so a wrong guess costs time, not safety.
func (c *compiler) guessRegions() {
	n := len(c.insns)
	c.guess = make([]int8, n)
	targets := make([]bool, n+1)
	for pc := 0; pc < n; pc++ {
		i := c.insns[pc]
		if i.IsLDDW() {
			pc++
			continue
		}
		if isJump(i) && i.Op != asm.OpCall && i.Op != asm.OpCallX && i.Op != asm.OpExit {
			d := int(i.Off)
			if i.Op == asm.OpJA32 {
				d = int(i.Imm)
			}
			targets[pc+1+d] = true
		}
		if i.Op == asm.OpCall && i.Src == asm.PseudoCall {
			targets[pc+1+int(i.Imm)] = true
			targets[pc+1] = true
		}
	}
	var reg [11]int8
	reset := func() {
		reg = [11]int8{}
		reg[10] = guessStack
	}
	reset()
	reg[1] = guessArg0
	for pc := 0; pc < n; pc++ {
		if pc > 0 && targets[pc] {
			reset()
		}
		i := c.insns[pc]
		switch cl := i.Class(); {
		case i.IsLDDW():
			reg[i.Dst] = guessFrame
			pc++
		case cl == asm.ClassLDX:
			c.guess[pc] = reg[i.Src]
			reg[i.Dst] = guessFrame // ctx->data, or a value
		case cl == asm.ClassST || cl == asm.ClassSTX:
			c.guess[pc] = reg[i.Dst]
			if i.Op&0xe0 == asm.ModeATOMIC && i.Imm&asm.AtomicFetch != 0 {
				reg[i.Src] = guessFrame
				reg[0] = guessFrame
			}
		case cl == asm.ClassALU64 && i.Op == asm.ClassALU64|asm.ALUMov|asm.SrcX && i.Off == 0:
			reg[i.Dst] = reg[i.Src]
		case cl == asm.ClassALU64 && (i.Op == asm.ClassALU64|asm.ALUAdd|asm.SrcK || i.Op == asm.ClassALU64|asm.ALUSub|asm.SrcK):
		case cl == asm.ClassALU || cl == asm.ClassALU64:
			reg[i.Dst] = guessFrame
		case i.Op == asm.OpCall || i.Op == asm.OpCallX:
			reg[0] = guessFrame
		}
	}
}

func (c *compiler) emit() error {
	a := &c.a
	n := len(c.insns)
	c.pcLabel = c.pcLabel[:0]
	for range n {
		c.pcLabel = append(c.pcLabel, a.newLabel())
	}
	c.checkR, c.checkW, c.fault, c.helper = a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	c.subRet, c.resume, c.start, c.nested = a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	c.frameDone, c.frameStart, c.startFrame = a.newLabel(), a.newLabel(), a.newLabel()
	c.cold = c.cold[:0]
	c.usedR, c.usedW = false, false
	c.lookups, c.lookupOrder = map[int]label{}, nil

	// The generic copy, then the copy for frame runs if there is one.
	copies := 1
	if c.frameCopy {
		copies = 2
	}
	for k := range copies {
		c.inFrame = k == 1
		c.pcLabel = make([]label, n)
		for pc := range c.pcLabel {
			c.pcLabel[pc] = a.newLabel()
		}
		c.pc0Frame = c.pcLabel[0]
		if k == 0 {
			c.pc0 = c.pcLabel[0]
		}
		start := c.start
		if c.inFrame {
			c.genericTo = a.pos()
			start = c.startFrame
		} else if !c.frameCopy {
			a.bind(c.startFrame)
		}
		// First entry: registers other than r1, r2 and r10 start at zero.
		a.bind(start)
		for r := 0; r <= 9; r++ {
			if r == 1 || r == 2 {
				a.loadQ(regMap[r], regCtx, offRegs+8*int32(r))
				continue
			}
			a.aluRR(false, aluXor, regMap[r], regMap[r])
		}
		a.loadQ(rbp, regCtx, offRegs+8*10)
		a.aluRR(false, aluXor, regCount, regCount)
		if err := c.emitCopy(); err != nil {
			return err
		}
	}
	c.coldFrom = a.pos()
	for k := 0; k < len(c.cold); k++ {
		c.cold[k]()
	}
	c.stubFrom = a.pos()
	c.stubs()
	return nil
}

// emitCopy emits the instructions once, into c.pcLabel.
func (c *compiler) emitCopy() error {
	a := &c.a
	n := len(c.insns)
	c.offsets = make([]int, n)
	c.proven = make([]bool, n)
	for pc := 0; pc < n; pc++ {
		a.bind(c.pcLabel[pc])
		c.offsets[pc] = a.pos()
		if k := c.blockLen[pc]; k > 0 {
			a.aluRI(true, aluAdd, regCount, int32(k))
		}
		i := c.insns[pc]
		if err := c.insn(pc, i); err != nil {
			return err
		}
		if i.IsLDDW() {
			pc++
			c.offsets[pc] = -1
			a.bind(c.pcLabel[pc])
		}
	}
	return nil
}

// coldFault emits, out of line, the exit for a fault at pc, and returns its
// label. The counter is corrected for the instructions of the block that
// did not run.
func (c *compiler) coldFault(pc int, kind vm.Kind, size int) label {
	a := &c.a
	l := a.newLabel()
	info := exitInfo(exitFault, kind, uint16(size), pc)
	rem := c.rem[pc]
	c.cold = append(c.cold, func() {
		a.bind(l)
		a.movImm64(tmp, info)
		if rem > 0 {
			a.aluRI(true, aluSub, regCount, int32(rem))
		}
		a.jmp(c.fault)
	})
	return l
}

// budgetCheck faults if the instruction count passed the budget (the
// interpreter's check at backward jumps and calls).
func (c *compiler) budgetCheck(pc int) {
	c.a.aluRM(aluCmp, regCount, regCtx, offBudget)
	c.a.jcc(condA, c.coldFault(pc, vm.KindBudget, 0))
}

func (c *compiler) insn(pc int, i asm.Instruction) error {
	switch i.Class() {
	case asm.ClassALU, asm.ClassALU64:
		c.alu(i)
	case asm.ClassLD:
		c.a.movImm64(regMap[i.Dst], asm.Imm64(i, c.insns[pc+1]))
	case asm.ClassLDX:
		n := sizeOf(i.Op)
		base, disp := c.access(pc, i.Src, i.Off, n, false, false)
		if i.Op&0xe0 == asm.ModeMEMSX {
			c.a.loadSX(n, regMap[i.Dst], base, disp)
		} else {
			c.a.load(n, regMap[i.Dst], base, disp)
		}
	case asm.ClassST:
		n := sizeOf(i.Op)
		base, disp := c.access(pc, i.Dst, i.Off, n, true, false)
		c.a.storeImm(n, base, disp, i.Imm)
	case asm.ClassSTX:
		n := sizeOf(i.Op)
		if i.Op&0xe0 == asm.ModeATOMIC {
			c.atomic(pc, i, n)
			break
		}
		base, disp := c.access(pc, i.Dst, i.Off, n, true, false)
		c.a.store(n, base, disp, regMap[i.Src])
	case asm.ClassJMP, asm.ClassJMP32:
		c.jump(pc, i)
	default:
		return fmt.Errorf("at insn %d (%s): opcode %#02x not supported", pc, i, i.Op)
	}
	return nil
}

func sizeOf(op uint8) int {
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

func log2(n int) int32 {
	switch n {
	case 1:
		return 0
	case 2:
		return 1
	case 4:
		return 2
	}
	return 3
}

// access emits the check of an n-byte access at eBPF register base + off
// and returns the x86 memory operand to use. Accesses through r10 within
// the current 512-byte frame need no check: r10 always points into the
// stack, which is region 0 (unless the program can write r10, which the
// fetch form of an atomic with src r10 does: then r10 is checked as any
// other register). Otherwise the address goes to r11 and is
// checked inline against the stack and the argument windows, then by the
// out-of-line region search, which behaves as the interpreter's find.
// withAddr forces the address into r11 (atomics check its alignment).
func (c *compiler) access(pc int, base uint8, off int16, n int, write, withAddr bool) (xreg, int32) {
	a := &c.a
	if !withAddr {
		// An access the analysis proved in bounds needs no check.
		if pr := c.prog.Proof(pc); pr == vm.ProvenAlways || pr == vm.ProvenFrame && c.inFrame {
			c.proven[pc] = true
			return regMap[base], int32(off)
		}
	}
	inFrame := base == 10 && c.r10Fixed && int(off) >= -vm.StackFrameSize && int(off)+n <= 0
	if inFrame && !withAddr {
		return rbp, int32(off)
	}
	a.lea(addrReg, regMap[base], int32(off))
	if inFrame {
		return addrReg, 0
	}
	ok := a.newLabel()
	stack := func() {
		a.movRR(true, tmp, addrReg)
		a.aluRM(aluSub, tmp, regCtx, offStackBase)
		a.aluRI(true, aluCmp, tmp, int32(vm.ProgramStackSize-n+1))
		a.jcc(condB, ok)
	}
	win := func(k int32) {
		a.movRR(true, tmp, addrReg)
		a.aluRM(aluSub, tmp, regCtx, offWin+k*sizeWindow)
		a.aluRM(aluCmp, tmp, regCtx, offWin+k*sizeWindow+8+8*log2(n))
		a.jcc(condB, ok)
	}
	// Most likely first (see guessRegions); all three are always tried.
	switch c.guess[pc] {
	case guessStack:
		stack()
		win(1)
		win(0)
	case guessArg0:
		win(0)
		win(1)
		stack()
	default:
		win(1)
		win(0)
		stack()
	}
	a.movImm32(tmp, uint32(n))
	kind := vm.KindRead
	if write {
		a.call(c.checkW)
		c.usedW = true
		kind = vm.KindWrite
	} else {
		a.call(c.checkR)
		c.usedR = true
	}
	a.testRR(false, tmp, tmp)
	a.jcc(condNE, c.coldFault(pc, kind, n))
	a.bind(ok)
	return addrReg, 0
}

func (c *compiler) alu(i asm.Instruction) {
	a := &c.a
	w := i.Class() == asm.ClassALU64
	d := regMap[i.Dst]
	s := regMap[i.Src]
	srcX := i.Op&asm.SrcX != 0
	op := i.Op & 0xf0
	switch op {
	case asm.ALUAdd, asm.ALUSub, asm.ALUOr, asm.ALUAnd, asm.ALUXor:
		x := map[uint8]aluOp{asm.ALUAdd: aluAdd, asm.ALUSub: aluSub, asm.ALUOr: aluOr, asm.ALUAnd: aluAnd, asm.ALUXor: aluXor}[op]
		if srcX {
			a.aluRR(w, x, d, s)
		} else {
			a.aluRI(w, x, d, i.Imm)
		}
	case asm.ALUMul:
		if srcX {
			a.imulRR(w, d, s)
		} else {
			a.imulRI(w, d, i.Imm)
		}
	case asm.ALUDiv, asm.ALUMod:
		c.divmod(i, w, d)
	case asm.ALULsh, asm.ALURsh, asm.ALUArsh:
		sh := map[uint8]shiftOp{asm.ALULsh: shShl, asm.ALURsh: shShr, asm.ALUArsh: shSar}[op]
		if srcX {
			c.shiftReg(w, sh, d, s)
			break
		}
		mask := int32(31)
		if w {
			mask = 63
		}
		if k := i.Imm & mask; k != 0 {
			a.shiftRI(w, sh, d, uint8(k))
		} else if !w {
			a.movRR(false, d, d) // shifting by 0 still zero-extends
		}
	case asm.ALUNeg:
		a.neg(w, d)
	case asm.ALUMov:
		switch {
		case !srcX && w:
			a.movImm64(d, uint64(int64(i.Imm)))
		case !srcX:
			a.movImm64(d, uint64(uint32(i.Imm)))
		case i.Off != 0:
			a.movsx(w, int(i.Off)/8, d, s)
		case w && d == s:
		default:
			a.movRR(w, d, s)
		}
	case asm.ALUEnd:
		swap := w || srcX
		switch {
		case swap && i.Imm == 16:
			a.rol16by8(d)
			a.movzx16(d, d)
		case swap:
			a.bswap(i.Imm == 64, d)
		case i.Imm == 16:
			a.movzx16(d, d)
		case i.Imm == 32:
			a.movRR(false, d, d)
		}
	}
}

// shiftReg shifts d by the register s, which x86 wants in cl (r4 lives in
// rcx).
func (c *compiler) shiftReg(w bool, sh shiftOp, d, s xreg) {
	a := &c.a
	switch {
	case s == rcx:
		a.shiftRCL(w, sh, d)
	case d == rcx:
		a.movRR(true, tmp, rcx)
		a.movRR(true, rcx, s)
		a.shiftRCL(w, sh, tmp)
		a.movRR(true, rcx, tmp)
	default:
		a.movRR(true, tmp, rcx)
		a.movRR(true, rcx, s)
		a.shiftRCL(w, sh, d)
		a.movRR(true, rcx, tmp)
	}
}

// divmod emits the eBPF division and modulo, which never trap: x/0 = 0,
// x%0 = x, and signed MIN/-1 = MIN, MIN%-1 = 0. x86 div wants rdx:rax,
// which hold r3 and r0: they are saved around it unless they are the
// destination.
func (c *compiler) divmod(i asm.Instruction, w bool, d xreg) {
	a := &c.a
	mod := i.Op&0xf0 == asm.ALUMod
	signed := i.Off == 1
	done := a.newLabel()
	zero := func() {
		if !mod {
			a.aluRR(false, aluXor, d, d)
		} else if !w {
			a.movRR(false, d, d)
		}
	}
	minusOne := func() {
		if mod {
			a.aluRR(false, aluXor, d, d)
		} else {
			a.neg(w, d)
		}
	}
	if i.Op&asm.SrcX == 0 {
		v := int64(i.Imm)
		if !w {
			v = int64(uint32(i.Imm))
		}
		switch {
		case v == 0:
			zero()
			return
		case signed && i.Imm == -1:
			minusOne()
			return
		}
		if w {
			a.movImm64(addrReg, uint64(v))
		} else {
			a.movImm32(addrReg, uint32(v))
		}
	} else {
		a.movRR(w, addrReg, regMap[i.Src])
		nz := a.newLabel()
		a.testRR(w, addrReg, addrReg)
		a.jcc(condNE, nz)
		zero()
		a.jmp(done)
		a.bind(nz)
		if signed {
			general := a.newLabel()
			a.aluRI(w, aluCmp, addrReg, -1)
			a.jcc(condNE, general)
			minusOne()
			a.jmp(done)
			a.bind(general)
		}
	}
	if d != rax {
		a.movRR(true, tmp, rax)
		a.movRR(true, rax, d)
	}
	if d != rdx {
		a.storeQ(regCtx, offScratch, rdx)
	}
	if signed {
		a.signExtendRAX(w)
		a.idiv(w, addrReg)
	} else {
		a.aluRR(false, aluXor, rdx, rdx)
		a.div(w, addrReg)
	}
	res := rax
	if mod {
		res = rdx
	}
	if d != res {
		a.movRR(true, d, res)
	}
	if d != rdx {
		a.loadQ(rdx, regCtx, offScratch)
	}
	if d != rax {
		a.movRR(true, rax, tmp)
	}
	a.bind(done)
}

func (c *compiler) atomic(pc int, i asm.Instruction, n int) {
	a := &c.a
	w := n == 8
	c.access(pc, i.Dst, i.Off, n, true, true)
	a.testRI(false, addrReg, int32(n-1))
	a.jcc(condNE, c.coldFault(pc, vm.KindMisaligned, n))
	s := regMap[i.Src]
	switch i.Imm {
	case asm.AtomicAdd:
		a.lockOp(w, aluAdd, addrReg, 0, s)
	case asm.AtomicOr:
		a.lockOp(w, aluOr, addrReg, 0, s)
	case asm.AtomicAnd:
		a.lockOp(w, aluAnd, addrReg, 0, s)
	case asm.AtomicXor:
		a.lockOp(w, aluXor, addrReg, 0, s)
	case asm.AtomicAdd | asm.AtomicFetch:
		a.xadd(w, addrReg, 0, s)
	case asm.AtomicXchg:
		a.xchg(w, addrReg, 0, s)
	case asm.AtomicCmpXchg:
		a.cmpxchg(w, addrReg, 0, s)
		if !w {
			a.movRR(false, rax, rax) // a successful cmpxchg32 leaves rax's upper half
		}
	default: // fetch or/and/xor: a compare-and-swap loop
		op := map[int32]aluOp{asm.AtomicOr: aluOr, asm.AtomicAnd: aluAnd, asm.AtomicXor: aluXor}[i.Imm&^asm.AtomicFetch]
		a.storeQ(regCtx, offScratch, rax)
		a.storeQ(regCtx, offScratch+8, rdx)
		a.movRR(true, tmp, s)
		a.load(n, rax, addrReg, 0)
		loop := a.newLabel()
		a.bind(loop)
		a.movRR(w, rdx, rax)
		a.aluRR(w, op, rdx, tmp)
		a.cmpxchg(w, addrReg, 0, rdx)
		a.jcc(condNE, loop)
		a.movRR(w, tmp, rax)
		a.loadQ(rax, regCtx, offScratch)
		a.loadQ(rdx, regCtx, offScratch+8)
		a.movRR(w, s, tmp)
	}
}

var condOf = map[uint8]cond{
	asm.JmpJEQ: condE, asm.JmpJNE: condNE, asm.JmpJSET: condNE,
	asm.JmpJGT: condA, asm.JmpJGE: condAE, asm.JmpJLT: condB, asm.JmpJLE: condBE,
	asm.JmpJSGT: condG, asm.JmpJSGE: condGE, asm.JmpJSLT: condL, asm.JmpJSLE: condLE,
}

func (c *compiler) jump(pc int, i asm.Instruction) {
	a := &c.a
	switch {
	case i.Op == asm.OpJA || i.Op == asm.OpJA32:
		d := int(i.Off)
		if i.Op == asm.OpJA32 {
			d = int(i.Imm)
		}
		if d < 0 {
			c.budgetCheck(pc)
		}
		a.jmp(c.pcLabel[pc+1+d])
	case i.Op == asm.OpExit:
		if c.localCalls {
			// Inside a local call, exit returns to the caller.
			a.aluMI(aluCmp, regCtx, offDepth, 0)
			a.jcc(condNE, c.subRet)
		}
		a.jmp(c.frameDone)
	case i.Op == asm.OpCall && i.Src == asm.PseudoCall:
		c.budgetCheck(pc)
		a.loadQ(addrReg, regCtx, offDepth)
		a.aluRI(true, aluCmp, addrReg, vm.MaxCallDepth-1)
		a.jcc(condAE, c.coldFault(pc, vm.KindCallDepth, 0))
		a.imulRRI(true, tmp, addrReg, sizeFrame)
		a.aluRM(aluAdd, tmp, regCtx, offFrames)
		a.storeQ(tmp, 0, rbx)
		a.storeQ(tmp, 8, r13)
		a.storeQ(tmp, 16, r14)
		a.storeQ(tmp, 24, r15)
		a.storeQ(tmp, 32, rbp)
		a.aluRI(true, aluAdd, addrReg, 1)
		a.storeQ(regCtx, offDepth, addrReg)
		a.leaLabel(addrReg, c.pcLabel[pc+1])
		a.storeQ(tmp, 40, addrReg)
		a.aluRI(true, aluSub, rbp, vm.StackFrameSize)
		a.jmp(c.pcLabel[pc+1+int(i.Imm)])
	case i.Op == asm.OpCall || i.Op == asm.OpCallX:
		c.budgetCheck(pc)
		c.charge(vm.CallCost)
		if h := c.prog.Helper(i.Imm); i.Op == asm.OpCall && h != nil && h.Clock {
			// bpf_ktime_get_ns from the run's clock, without leaving the
			// machine code; a zero clock takes the helper exit below.
			exit := a.newLabel()
			a.loadQ(tmp, regCtx, offClock)
			a.testRR(true, tmp, tmp)
			a.jcc(condE, exit)
			a.movRR(true, regMap[0], tmp)
			a.jmp(c.pcLabel[pc+1])
			a.bind(exit)
		}
		if h := c.prog.Helper(i.Imm); i.Op == asm.OpCall && h != nil && h.Op == vm.OpMapLookup {
			if k, ok := c.prog.CallMap(pc); ok {
				if l := c.prog.MapLayoutOf(k); inlineLookup(l) {
					slow := a.newLabel()
					c.mapLookup(pc, k, l, slow)
					a.bind(slow)
				}
			}
		}
		a.leaLabel(tmp, c.pcLabel[pc+1])
		a.storeQ(regCtx, offResume, tmp)
		if i.Op == asm.OpCallX {
			a.movRR(true, addrReg, regMap[i.Dst])
			a.movImm64(tmp, exitInfo(exitCallx, 0, 0, pc))
		} else {
			a.movImm64(tmp, exitInfo(exitHelper, 0, uint16(i.Imm), pc))
		}
		a.jmp(c.helper)
	default:
		w := i.Class() == asm.ClassJMP
		op := i.Op & 0xf0
		d := regMap[i.Dst]
		switch {
		case i.Op&asm.SrcX != 0 && op == asm.JmpJSET:
			a.testRR(w, d, regMap[i.Src])
		case i.Op&asm.SrcX != 0:
			a.aluRR(w, aluCmp, d, regMap[i.Src])
		case op == asm.JmpJSET:
			a.testRI(w, d, i.Imm)
		default:
			a.aluRI(w, aluCmp, d, i.Imm)
		}
		cc := condOf[op]
		target := c.pcLabel[pc+1+int(i.Off)]
		if i.Off >= 0 {
			a.jcc(cc, target)
			return
		}
		// A taken backward jump checks the budget.
		skip := a.newLabel()
		a.jcc(cc.invert(), skip)
		c.budgetCheck(pc)
		a.jmp(target)
		a.bind(skip)
	}
}

// stubs emits the code shared by the whole program.
func (c *compiler) stubs() {
	a := &c.a

	mark := func(l label, name string) {
		a.bind(l)
		c.stubNames[a.pos()] = name
	}
	c.stubNames = map[int]string{}

	// Fault: r10 holds the exit info, r11 the address, r9 the count.
	if len(c.cold) > 0 {
		mark(c.fault, "fault_exit")
		a.storeQ(regCtx, offExit, tmp)
		a.storeQ(regCtx, offAddr, addrReg)
		a.storeQ(regCtx, offCount, regCount)
		a.ret()
	}

	// Helper call: save every register, r10 holds the exit info, r11 the
	// operand of callx; resume continues at nativeCtx.resume.
	if c.helperCalls {
		mark(c.helper, "helper_exit")
		a.storeQ(regCtx, offExit, tmp)
		a.storeQ(regCtx, offAddr, addrReg)
		a.storeQ(regCtx, offCount, regCount)
		for r := 1; r <= 10; r++ {
			a.storeQ(regCtx, offRegs+8*int32(r), regMap[r])
		}
		a.ret()
	}

	c.frameStubs()
	for _, k := range c.lookupOrder {
		c.stubNames[a.pos()] = fmt.Sprintf("lookup_map%d", k)
		c.hashStub(c.lookups[k], c.prog.MapLayoutOf(k))
	}

	// Re-entry after a helper or into a tail call's target.
	mark(c.resume, "resume")
	for r := 0; r <= 10; r++ {
		a.loadQ(regMap[r], regCtx, offRegs+8*int32(r))
	}
	a.loadQ(regCount, regCtx, offCount)
	a.jmpMem(regCtx, offResume)

	// Entry while a tail call made in a local function runs: resume as a
	// call, so that the exit of the target's main frame, which goes to
	// frame_done and returns there (Go cleared bLeft), is told apart from
	// the exits to Go (a helper, a fault: their code is in exit) and
	// keeps r0..r5, which the function's caller sees after the call.
	mark(c.nested, "nested_entry")
	a.call(c.resume)
	a.aluMI(aluCmp, regCtx, offExit, 0)
	out := a.newLabel()
	a.jcc(condNE, out)
	a.storeImm(8, regCtx, offExit, exitLevel)
	for r := 0; r <= 5; r++ {
		a.storeQ(regCtx, offRegs+8*int32(r), regMap[r])
	}
	a.bind(out)
	a.ret()

	// Return from a local call (exit at depth > 0).
	if !c.localCalls {
		c.checkStubs()
		return
	}
	mark(c.subRet, "local_return")
	a.loadQ(addrReg, regCtx, offDepth)
	a.aluRI(true, aluSub, addrReg, 1)
	a.storeQ(regCtx, offDepth, addrReg)
	a.imulRRI(true, tmp, addrReg, sizeFrame)
	a.aluRM(aluAdd, tmp, regCtx, offFrames)
	a.loadQ(rbx, tmp, 0)
	a.loadQ(r13, tmp, 8)
	a.loadQ(r14, tmp, 16)
	a.loadQ(r15, tmp, 24)
	a.loadQ(rbp, tmp, 32)
	a.jmpMem(tmp, 40)
	c.checkStubs()
}

// frameStubs emits the end of a run and the batch loop. frame_done is
// where the main program's exit goes (rax holds r0, r9 the count): a
// single run returns to Go; a batch's frame writes its vm.FrameResult, moves
// on to the next frame and starts it at frame_start, or returns to Go when
// the batch is done or Go asked for the frame (bStop). Everything but r12
// is free here: the program's registers are dead.
func (c *compiler) frameStubs() {
	a := &c.a
	c.stubNames[a.pos()] = "frame_done"
	a.bind(c.frameDone)
	a.storeQ(regCtx, offCount, regCount)
	a.aluMI(aluCmp, regCtx, offBLeft, 0)
	batch := a.newLabel()
	a.jcc(condNE, batch)
	a.ret()
	a.bind(batch)
	res := addrReg
	a.loadQ(res, regCtx, offBRes)
	a.storeQ(res, offResR0, rax)
	a.storeQ(res, offResExecuted, regCount)
	// ring_nr, and zero for the fault kind and the engine error after it.
	a.loadQ(tmp, regCtx, offMD)
	a.load(1, tmp, tmp, offMDRing)
	a.storeQ(res, offResRing, tmp)
	// The flood set: the slot's 32 bytes, zeroed after, for a frame that
	// floods; zero for any other.
	noFlood, floodDone := a.newLabel(), a.newLabel()
	a.aluRR(false, aluXor, rcx, rcx)
	a.aluRI(true, aluCmp, rax, vm.ReturnFlood)
	a.jcc(condNE, noFlood)
	a.loadQ(tmp, regCtx, offFlood)
	a.testRR(true, tmp, tmp)
	a.jcc(condE, noFlood)
	for k := int32(0); k < 4; k++ {
		a.loadQ(rdx, tmp, 8*k)
		a.storeQ(res, offResFlood+8*k, rdx)
		a.storeQ(tmp, 8*k, rcx)
	}
	a.jmp(floodDone)
	a.bind(noFlood)
	for k := int32(0); k < 4; k++ {
		a.storeQ(res, offResFlood+8*k, rcx)
	}
	a.bind(floodDone)
	// Next frame.
	a.loadQ(tmp, regCtx, offBResStr)
	a.aluMR(aluAdd, regCtx, offBRes, tmp)
	a.loadQ(tmp, regCtx, offBStride)
	a.aluMR(aluAdd, regCtx, offBFrames, tmp)
	a.aluMI(aluSub, regCtx, offBLeft, 1)
	done := a.newLabel()
	a.jcc(condE, done)
	a.aluMI(aluCmp, regCtx, offBStop, 0)
	a.jcc(condNE, done)
	a.jmp(c.frameStart)
	a.bind(done)
	a.ret()

	// frame_start: the context and the frame region for the frame at
	// bFrames, the frame's window, the budget, then the registers of a
	// first entry with r1 = the context.
	c.stubNames[a.pos()] = "frame_start"
	a.bind(c.frameStart)
	a.loadQ(addrReg, regCtx, offBFrames)
	a.loadQ(rdi, addrReg, 0) // data
	a.loadQ(rsi, addrReg, 8) // length
	// A frame without capacity is at address 0, as vm.AddrOf has it.
	a.aluRR(false, aluXor, rcx, rcx)
	a.aluMI(aluCmp, addrReg, 16, 0)
	a.cmov(condE, rdi, rcx)
	a.loadQ(rdx, regCtx, offMD)
	a.storeQ(rdx, offMDData, rdi)
	a.lea(rcx, rdi, 0)
	a.aluRR(true, aluAdd, rcx, rsi)
	a.storeQ(rdx, offMDDataEnd, rcx)
	a.loadQ(rcx, regCtx, offIngress)
	a.storeQ(rdx, offMDIngress, rcx) // ingress_port, ring_nr 0, padding 0
	// Region 2 of the env's table and window 1 are the frame, for the
	// memory checks and for helpers (a program that calls none cannot
	// tail call into code that needs them either).
	a.aluRR(false, aluXor, rcx, rcx)
	if c.helperCalls || c.usedR || c.usedW {
		a.loadQ(addrReg, regCtx, offRegions)
		a.loadQ(addrReg, addrReg, 0)
		a.storeQ(addrReg, 2*sizeRegion+offRegionStart, rdi)
		a.storeQ(addrReg, 2*sizeRegion+offRegionSize, rsi)
		// window.set: lim[k] = len - (1<<k) + 1, or 0.
		a.storeQ(regCtx, offWin+sizeWindow, rdi)
		a.storeQ(regCtx, offWin+sizeWindow+8, rsi)
		for k, d := range []int32{1, 3, 7} {
			a.movRR(true, rax, rsi)
			a.aluRI(true, aluSub, rax, d)
			a.cmov(condB, rax, rcx)
			a.storeQ(regCtx, offWin+sizeWindow+16+8*int32(k), rax)
		}
	}
	if c.helperCalls {
		// Only helpers charge the budget.
		a.loadQ(rax, regCtx, offBudget0)
		a.storeQ(regCtx, offBudget, rax)
	}
	// The call depth, which a fault inside a local call leaves behind (in
	// this code or a tail call's target).
	a.storeQ(regCtx, offDepth, rcx)
	a.movRR(true, regMap[1], rdx)
	for r := 0; r <= 9; r++ {
		if r != 1 {
			a.aluRR(false, aluXor, regMap[r], regMap[r])
		}
	}
	a.loadQ(rbp, regCtx, offStackTop)
	a.aluRR(false, aluXor, regCount, regCount)
	a.jmp(c.pc0Frame)
}

func (c *compiler) checkStubs() {
	if c.usedR {
		c.stubNames[c.a.pos()] = "check_load"
		c.checkStub(c.checkR, false)
	}
	if c.usedW {
		c.stubNames[c.a.pos()] = "check_store"
		c.checkStub(c.checkW, true)
	}
}

// checkStub emits the slow-path region check, the interpreter's find: the
// first region of the env's table that contains the r10 bytes at r11
// decides; a store also needs it writable. It returns r10 = 0 if the
// access is allowed, 1 if not, and preserves every other register. An
// access found in region i past the fixed ones costs i+1 units of the
// budget, as in the interpreter (vm.FixedRegions).
func (c *compiler) checkStub(l label, write bool) {
	a := &c.a
	a.bind(l)
	a.push(rax)
	a.push(rbx)
	a.push(rcx)
	a.push(rdx)
	a.loadQ(rbx, regCtx, offRegions)
	a.loadQ(rcx, rbx, 8) // len
	a.loadQ(rbx, rbx, 0) // data
	loop, next, found, fail, done := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	a.bind(loop)
	a.testRR(true, rcx, rcx)
	a.jcc(condE, fail)
	a.movRR(true, rdx, addrReg)
	a.aluRM(aluSub, rdx, rbx, offRegionStart) // off = addr - start
	a.jcc(condB, next)                        // addr < start
	a.loadQ(rax, rbx, offRegionSize)
	a.aluRR(true, aluSub, rax, rdx) // size - off
	a.jcc(condBE, next)             // off >= size
	a.aluRR(true, aluCmp, rax, tmp)
	a.jcc(condB, next) // n > size - off
	a.loadQ(rax, rbx, offRegionStride)
	a.testRR(true, rax, rax)
	a.jcc(condE, found)
	a.aluRI(true, aluSub, rax, 1)
	a.aluRR(true, aluAnd, rdx, rax) // in = off & (stride-1)
	a.loadQ(rax, rbx, offRegionElem)
	a.aluRR(true, aluSub, rax, rdx) // elem - in
	a.jcc(condBE, next)
	a.aluRR(true, aluCmp, rax, tmp)
	a.jcc(condB, next)
	a.bind(found)
	if write {
		a.opRM(false, []byte{0x80}, 7, rbx, offRegionWritable) // cmp byte [rbx+w], 0
		a.b = append(a.b, 0)
		a.jcc(condE, fail)
	}
	// The charge: index = len - rcx.
	free := a.newLabel()
	a.loadQ(rax, regCtx, offRegions)
	a.loadQ(rax, rax, 8)
	a.aluRR(true, aluSub, rax, rcx)
	a.aluRI(true, aluCmp, rax, vm.FixedRegions)
	a.jcc(condB, free)
	a.aluRI(true, aluAdd, rax, 1)
	a.aluMR(aluSub, regCtx, offBudget, rax)
	a.jcc(condAE, free)
	a.aluRR(false, aluXor, rax, rax)
	a.storeQ(regCtx, offBudget, rax)
	a.bind(free)
	a.aluRR(false, aluXor, tmp, tmp)
	a.jmp(done)
	a.bind(next)
	a.aluRI(true, aluAdd, rbx, sizeRegion)
	a.aluRI(true, aluSub, rcx, 1)
	a.jmp(loop)
	a.bind(fail)
	a.movImm32(tmp, 1)
	a.bind(done)
	a.pop(rdx)
	a.pop(rcx)
	a.pop(rbx)
	a.pop(rax)
	a.ret()
}
