package vm

import (
	"fmt"
	"sync/atomic"

	"github.com/govswitch/vswitch/asm"
)

// MaxInstructions is the largest program Load accepts, in slots.
const MaxInstructions = 1_000_000

// Map is what the VM needs of a map a program refers to by `lddw rX, map[k]`.
// The maps package implements it.
type Map interface {
	// Regions is the memory of the map's values, which programs holding a
	// value pointer may touch.
	Regions() []Region
	// DirectValue returns the address of byte off of the map's value for a
	// direct value load (`lddw rX, map[k]+off`, global data), or an error
	// if the map does not support it.
	DirectValue(off uint32) (uint64, error)
}

// Options configure Load. The zero value loads a program that may call no
// helper and refer to no map.
type Options struct {
	Name    string
	Helpers *Helpers // helpers the program may call
	// Maps are the maps the program refers to: `lddw rX, map[k]` loads a
	// handle of Maps[k], `lddw rX, map[k]+off` the address of its value.
	Maps []Map
	// Data is carried for helpers (Program.Data).
	Data any
}

// Runner runs a loaded program: the interpreter (*Program) or compiled
// machine code. r1 and r2 are the initial values of those registers; r10
// is the top of env's stack; the other registers start at zero.
type Runner interface {
	Run(env *Env, r1, r2 uint64) (uint64, error)
}

// mapHandleBase tags the map handles programs load: it lies in the
// kernel half of the address space, so a handle is never a valid address.
const mapHandleBase = 0xffff_a000_0000_0000

// Program is a validated program. It is immutable and safe for concurrent
// runs, each with its own Env.
type Program struct {
	Name string
	Data any // from Options.Data

	orig    []asm.Instruction // as loaded
	insns   []asm.Instruction // with map references resolved to immediates
	code    []insn            // insns as the interpreter fetches them
	helpers []HelperFunc      // by id
	hinfo   []*Helper
	maps    []Map
	regions []Region
	funcs   []int // entry slots of the functions, main first
	// What the load-time analysis proved (analyze.go).
	proofs    []Proof
	callMaps  map[int]int
	keyProofs map[int]Proof

	// Native holds compiled code attached by a JIT (see package jit).
	Native atomic.Pointer[Native]
}

// Native is compiled code for a program; package jit fills it in.
type Native struct {
	Runner Runner
	Size   int // bytes of machine code
}

// Instructions returns the program as it was loaded.
func (p *Program) Instructions() []asm.Instruction { return p.orig }

// Resolved returns the instructions the engines run: map references of
// lddw replaced by the handle or address they load.
func (p *Program) Resolved() []asm.Instruction { return p.insns }

// Functions returns the entry slots of the program's functions (the main
// program first, then the targets of local calls in ascending order).
func (p *Program) Functions() []int { return p.funcs }

// Maps returns the maps the program refers to.
func (p *Program) Maps() []Map { return p.maps }

// MapHandle returns the handle `lddw rX, map[k]` loads.
func MapHandle(k int) uint64 { return mapHandleBase + uint64(k) }

func (p *Program) mapOf(handle uint64) (Map, bool) {
	k := handle - mapHandleBase
	if handle < mapHandleBase || k >= uint64(len(p.maps)) {
		return nil, false
	}
	return p.maps[k], true
}

// Helper returns the helper with the given id the program may call, or nil.
func (p *Program) Helper(id int32) *Helper {
	if id < 0 || int(id) >= len(p.hinfo) {
		return nil
	}
	return p.hinfo[id]
}

// Load validates insns and returns a Program. The error, a
// *ValidationError, names the first offending instruction and the reason.
func Load(insns []asm.Instruction, opts Options) (*Program, error) {
	p := &Program{
		Name: opts.Name,
		Data: opts.Data,
		orig: append([]asm.Instruction(nil), insns...),
		maps: append([]Map(nil), opts.Maps...),
	}
	if opts.Helpers != nil {
		p.hinfo = append([]*Helper(nil), opts.Helpers.byID...)
		p.helpers = make([]HelperFunc, len(p.hinfo))
		for id, h := range p.hinfo {
			if h != nil {
				p.helpers[id] = h.Fn
			}
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	for _, m := range p.maps {
		p.regions = append(p.regions, m.Regions()...)
	}
	p.code = compact(p.insns)
	p.analyze()
	return p, nil
}

// MustLoad is Load for tests and built-in programs: it panics on error.
func MustLoad(insns []asm.Instruction, opts Options) *Program {
	p, err := Load(insns, opts)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Program) validate() error {
	insns := p.orig
	n := len(insns)
	if n == 0 {
		return &ValidationError{PC: -1, Reason: "empty program"}
	}
	if n > MaxInstructions {
		return &ValidationError{PC: -1, Reason: fmt.Sprintf("%d instructions, more than the limit of %d", n, MaxInstructions)}
	}
	p.insns = append([]asm.Instruction(nil), insns...)
	// Second slots of lddw, which no jump may target.
	second := make([]bool, n)
	for pc := 0; pc < n; pc++ {
		if insns[pc].IsLDDW() {
			if pc+1 >= n {
				return &ValidationError{pc, insns[pc], "lddw is missing its second slot"}
			}
			second[pc+1] = true
			pc++
		}
	}
	isFunc := make([]bool, n)
	isFunc[0] = true
	for pc := 0; pc < n; pc++ {
		i := insns[pc]
		bad := func(format string, args ...any) error {
			return &ValidationError{pc, i, fmt.Sprintf(format, args...)}
		}
		if err := p.checkInsn(pc, i, bad); err != nil {
			return err
		}
		jumpTo := func(d int64) error {
			t := int64(pc) + 1 + d
			if t < 0 || t >= int64(n) {
				return bad("jump to %d is out of range (program has %d slots)", t, n)
			}
			if second[t] {
				return bad("jump to %d lands in the middle of lddw", t)
			}
			return nil
		}
		switch c := i.Class(); {
		case i.IsLDDW():
			next := insns[pc+1]
			if next.Op != 0 || next.Dst != 0 || next.Src != 0 || next.Off != 0 {
				return &ValidationError{pc + 1, next, "second slot of lddw must have only an immediate"}
			}
			if err := p.resolveLDDW(pc, bad); err != nil {
				return err
			}
			pc++
		case c == asm.ClassJMP || c == asm.ClassJMP32:
			op := i.Op & 0xf0
			switch {
			case i.Op == asm.OpJA32:
				if err := jumpTo(int64(i.Imm)); err != nil {
					return err
				}
			case op == asm.JmpCall && i.Op == asm.OpCall && i.Src == asm.PseudoCall:
				if err := jumpTo(int64(i.Imm)); err != nil {
					return err
				}
				isFunc[pc+1+int(i.Imm)] = true
			case op == asm.JmpCall || op == asm.JmpExit:
			default:
				if err := jumpTo(int64(i.Off)); err != nil {
					return err
				}
			}
		}
	}
	for pc := range isFunc {
		if isFunc[pc] {
			p.funcs = append(p.funcs, pc)
		}
	}
	// Every function must end in exit or an unconditional jump.
	for k, start := range p.funcs {
		end := n
		if k+1 < len(p.funcs) {
			end = p.funcs[k+1]
		}
		last := end - 1
		if second[last] {
			last--
		}
		i := insns[last]
		if i.Op != asm.OpExit && i.Op != asm.OpJA && i.Op != asm.OpJA32 {
			what := "the program"
			if start != 0 {
				what = fmt.Sprintf("the function at %d", start)
			}
			return &ValidationError{last, i, "execution can fall through past the end of " + what + " (last instruction must be exit or ja)"}
		}
	}
	return p.checkCallDepth()
}

// checkCallDepth refuses recursion and call chains deeper than
// MaxCallDepth frames.
func (p *Program) checkCallDepth() error {
	n := len(p.orig)
	funcOf := make([]int, n) // function index of each slot
	f := 0
	for pc := 0; pc < n; pc++ {
		if f+1 < len(p.funcs) && pc == p.funcs[f+1] {
			f++
		}
		funcOf[pc] = f
	}
	callees := make([][]int, len(p.funcs))
	sites := make([][]int, len(p.funcs))
	for pc, i := range p.orig {
		if i.Op == asm.OpCall && i.Src == asm.PseudoCall && (pc == 0 || !p.orig[pc-1].IsLDDW()) {
			t := funcOf[pc+1+int(i.Imm)]
			callees[funcOf[pc]] = append(callees[funcOf[pc]], t)
			sites[funcOf[pc]] = append(sites[funcOf[pc]], pc)
		}
	}
	const (
		unvisited = iota
		active
		done
	)
	state := make([]int, len(p.funcs))
	depth := make([]int, len(p.funcs)) // frames needed from this function down
	var visit func(f int) error
	visit = func(f int) error {
		state[f] = active
		depth[f] = 1
		for k, c := range callees[f] {
			switch state[c] {
			case active:
				pc := sites[f][k]
				return &ValidationError{pc, p.orig[pc], "recursive call (the call graph must be acyclic)"}
			case unvisited:
				if err := visit(c); err != nil {
					return err
				}
			}
			if depth[c]+1 > depth[f] {
				depth[f] = depth[c] + 1
			}
			if depth[f] > MaxCallDepth {
				pc := sites[f][k]
				return &ValidationError{pc, p.orig[pc], fmt.Sprintf("call chain of %d frames from here, more than %d", depth[f], MaxCallDepth)}
			}
		}
		state[f] = done
		return nil
	}
	return visit(0)
}

func (p *Program) resolveLDDW(pc int, bad func(string, ...any) error) error {
	i := p.orig[pc]
	switch i.Src {
	case 0:
		return nil
	case asm.PseudoMapFD, asm.PseudoMapValue:
		k := int(i.Imm)
		if k < 0 || k >= len(p.maps) {
			return bad("reference to map %d, but the program has %d maps", k, len(p.maps))
		}
		v := MapHandle(k)
		if i.Src == asm.PseudoMapValue {
			addr, err := p.maps[k].DirectValue(uint32(p.orig[pc+1].Imm))
			if err != nil {
				return bad("direct value of map %d: %v", k, err)
			}
			v = addr
		}
		s := asm.LoadImm64(i.Dst, v)
		p.insns[pc], p.insns[pc+1] = s[0], s[1]
		return nil
	}
	return bad("lddw with pseudo source %d needs a kernel (BTF ids, kfuncs or map indexes are not supported)", i.Src)
}

func (p *Program) checkInsn(pc int, i asm.Instruction, bad func(string, ...any) error) error {
	if i.Dst > 10 {
		return bad("bad destination register r%d", i.Dst)
	}
	if i.Src > 10 {
		return bad("bad source register r%d", i.Src)
	}
	op := i.Op & 0xf0
	srcX := i.Op&asm.SrcX != 0
	switch i.Class() {
	case asm.ClassALU, asm.ClassALU64:
		alu64 := i.Class() == asm.ClassALU64
		if i.Dst == 10 {
			return bad("write to the read-only frame pointer r10")
		}
		switch op {
		case asm.ALUEnd:
			if alu64 && srcX {
				return bad("unknown opcode %#02x", i.Op)
			}
			if i.Imm != 16 && i.Imm != 32 && i.Imm != 64 {
				return bad("byte swap width must be 16, 32 or 64, not %d", i.Imm)
			}
			if i.Src != 0 || i.Off != 0 {
				return bad("reserved fields must be zero")
			}
			return nil
		case asm.ALUNeg:
			if srcX || i.Src != 0 || i.Off != 0 || i.Imm != 0 {
				return bad("reserved fields of neg must be zero")
			}
			return nil
		case asm.ALUAdd, asm.ALUSub, asm.ALUMul, asm.ALUOr, asm.ALUAnd, asm.ALULsh,
			asm.ALURsh, asm.ALUXor, asm.ALUArsh, asm.ALUDiv, asm.ALUMod, asm.ALUMov:
		default:
			return bad("unknown opcode %#02x", i.Op)
		}
		switch {
		case (op == asm.ALUDiv || op == asm.ALUMod) && (i.Off == 0 || i.Off == 1):
		case op == asm.ALUMov && srcX && (i.Off == 8 || i.Off == 16 || alu64 && i.Off == 32):
		case i.Off != 0:
			return bad("offset must be zero (or select a signed or sign-extending form)")
		}
		if srcX && i.Imm != 0 {
			return bad("immediate must be zero with a register operand")
		}
		if !srcX && i.Src != 0 {
			return bad("source register must be zero with an immediate operand")
		}
		return nil
	case asm.ClassJMP, asm.ClassJMP32:
		switch {
		case i.Op == asm.OpJA:
			if i.Dst != 0 || i.Src != 0 || i.Imm != 0 {
				return bad("reserved fields of ja must be zero")
			}
			return nil
		case i.Op == asm.OpJA32:
			if i.Dst != 0 || i.Src != 0 || i.Off != 0 {
				return bad("reserved fields of ja32 must be zero")
			}
			return nil
		case i.Op == asm.OpExit:
			if i.Dst != 0 || i.Src != 0 || i.Off != 0 || i.Imm != 0 {
				return bad("reserved fields of exit must be zero")
			}
			return nil
		case i.Op == asm.OpCall:
			if i.Dst != 0 || i.Off != 0 {
				return bad("reserved fields of call must be zero")
			}
			switch i.Src {
			case 0:
				if p.Helper(i.Imm) == nil {
					return bad("%s", unknownHelper(i.Imm))
				}
			case asm.PseudoCall:
			case asm.PseudoKfuncCal:
				return bad("call to kernel function %d: kfuncs need a kernel", i.Imm)
			default:
				return bad("call with unknown source %d", i.Src)
			}
			return nil
		case i.Op == asm.OpCallX:
			if i.Src != 0 || i.Off != 0 || i.Imm != 0 {
				return bad("reserved fields of callx must be zero")
			}
			return nil
		}
		switch op {
		case asm.JmpJEQ, asm.JmpJGT, asm.JmpJGE, asm.JmpJSET, asm.JmpJNE, asm.JmpJSGT,
			asm.JmpJSGE, asm.JmpJLT, asm.JmpJLE, asm.JmpJSLT, asm.JmpJSLE:
		default:
			return bad("unknown opcode %#02x", i.Op)
		}
		if srcX && i.Imm != 0 {
			return bad("immediate must be zero with a register operand")
		}
		if !srcX && i.Src != 0 {
			return bad("source register must be zero with an immediate operand")
		}
		return nil
	case asm.ClassLD:
		switch i.Op & 0xe0 {
		case asm.ModeABS, asm.ModeIND:
			return bad("legacy packet loads (BPF_ABS/BPF_IND) are not supported: read the frame through ctx->data")
		}
		if i.Op != asm.OpLDDW {
			return bad("unknown opcode %#02x", i.Op)
		}
		if i.Dst == 10 {
			return bad("write to the read-only frame pointer r10")
		}
		if i.Off != 0 {
			return bad("offset of lddw must be zero")
		}
		return nil
	case asm.ClassLDX:
		mode := i.Op & 0xe0
		if mode != asm.ModeMEM && !(mode == asm.ModeMEMSX && i.Op&0x18 != asm.SizeDW) {
			return bad("unknown opcode %#02x", i.Op)
		}
		if i.Dst == 10 {
			return bad("write to the read-only frame pointer r10")
		}
		if i.Imm != 0 {
			return bad("immediate of a load must be zero")
		}
		return nil
	case asm.ClassST:
		if i.Op&0xe0 != asm.ModeMEM {
			return bad("unknown opcode %#02x", i.Op)
		}
		if i.Src != 0 {
			return bad("source register of an immediate store must be zero")
		}
		return nil
	case asm.ClassSTX:
		switch i.Op & 0xe0 {
		case asm.ModeMEM:
			if i.Imm != 0 {
				return bad("immediate of a store must be zero")
			}
			return nil
		case asm.ModeATOMIC:
			if sz := i.Op & 0x18; sz != asm.SizeW && sz != asm.SizeDW {
				return bad("atomic operations are 32 or 64 bits wide")
			}
			switch i.Imm {
			case asm.AtomicAdd, asm.AtomicOr, asm.AtomicAnd, asm.AtomicXor,
				asm.AtomicAdd | asm.AtomicFetch, asm.AtomicOr | asm.AtomicFetch,
				asm.AtomicAnd | asm.AtomicFetch, asm.AtomicXor | asm.AtomicFetch,
				asm.AtomicXchg, asm.AtomicCmpXchg:
			default:
				return bad("unknown atomic operation %#x", i.Imm)
			}
			if i.Imm&asm.AtomicFetch != 0 && i.Imm != asm.AtomicCmpXchg && i.Src == 10 {
				return bad("write to the read-only frame pointer r10 (the fetch result goes to the source register)")
			}
			return nil
		}
		return bad("unknown opcode %#02x", i.Op)
	}
	return bad("unknown opcode %#02x", i.Op)
}
