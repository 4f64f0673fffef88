package vm

import (
	"unsafe"

	"github.com/govswitch/vswitch/asm"
)

// Stack layout (see the package doc, "The stack"): frames of
// StackFrameSize bytes, the main program's at the top, each local call's
// the next below. A program has MaxCallDepth frames (ProgramStackSize
// bytes); a tail call made in a local function runs the target in the
// function's frame, so that frames nest deeper through tail calls only:
// at most MaxFrames in a run.
const (
	StackFrameSize = 512
	MaxCallDepth   = 8
	// ProgramStackSize is the stack of one program: MaxCallDepth frames.
	ProgramStackSize = StackFrameSize * MaxCallDepth
	// MaxTailCalls is the kernel's limit of chained tail calls in a run
	// (MAX_TAIL_CALL_CNT).
	MaxTailCalls = 33
	// MaxFrames bounds the frames of a run: the main program's
	// MaxCallDepth, and for each tail call made in the deepest function
	// of a program MaxCallDepth-1 more (the target's main frame takes the
	// function's place).
	MaxFrames = MaxCallDepth + MaxTailCalls*(MaxCallDepth-1)
	// StackSize is the memory of an Env's stack: MaxFrames frames.
	StackSize = StackFrameSize * MaxFrames
	// DefaultBudget is the default budget of a run, in units of one
	// instruction: see Env.Budget.
	DefaultBudget = 1_000_000
	maxDynamic    = 16
)

// Env is the per-worker state of runs: the stack, the regions and the fault
// record. An Env is used by one goroutine at a time and reused for every
// run, so that runs do not allocate.
type Env struct {
	// regions is what the current run may touch: [0] the stack, [1], [2]
	// and [3] the argument regions (a frame run: the writable tail of the
	// context, the frame, the read-only head of the context; otherwise
	// what SetArg set), then the program's map regions, then dynamic
	// regions added by helpers.
	regions  []Region
	nFixed   int // regions of stack + args + program
	regsProg *Program

	stack []byte // StackSize bytes, 16-aligned
	// StackBase is the lowest stack address; the top is StackBase+StackSize.
	stackBase uint64

	// CPU is the worker index reported by bpf_get_smp_processor_id and used
	// to pick per-CPU map slots.
	CPU int
	// Budget bounds the cost of each run; 0 means DefaultBudget. The
	// cost is the number of instructions executed plus what helpers
	// charge for their own work (Charge): a helper that copies a large
	// map value or walks a structure costs in proportion. A run whose
	// cost passes the budget stops with a KindBudget fault at its next
	// backward jump or call, so that one frame can never hold a worker
	// for long. One unit is about a nanosecond of the slowest work it
	// stands for on this machine class (an interpreted instruction, a
	// word copied into a map with an atomic store): with the default
	// budget a run takes a few milliseconds at worst (the package doc
	// gives the measured bound).
	Budget uint64
	// charged is what helpers charged during the current helper call.
	charged uint64
	// Clock, when non-zero, is what bpf_ktime_get_ns returns (Ktime's
	// clock): a switch worker sets it once per batch, so that programs
	// that read the clock on every frame do not pay for a clock read
	// each. Zero means read the clock at every call.
	Clock uint64
	// Executed is the number of instructions the last run executed.
	Executed uint64

	prog      *Program // program running now (changes on tail calls)
	tail      *Program // a tail call requested by the helper
	tailCalls int

	// MD is the packet context of RunFrame, laid out as struct vswitch_md.
	// Helpers must not change its Data and DataEnd during a run: the
	// analysis' proofs for frame runs rely on them (programs cannot).
	MD PacketContext
	// FloodSlot, when not zero, is the address of the 32-byte flood set
	// of RunFrames (see there): a switch sets it to its worker's slot of
	// the program's vswitch_flood map. It must be 8-aligned memory that
	// stays valid (map value memory does) for as long as it is set.
	FloodSlot uint64
	// batch and results hold the arguments of the batch being run (a frame
	// buffer must not live on a goroutine stack, which can move while a
	// helper runs: keeping it here moves it to the heap).
	frame   []byte
	batch   [][]byte
	results []FrameResult
	args    [3][]byte // SetArgBytes'

	fault  Error
	frames [MaxFrames - 1]frame // the callers' state of local calls, by depth
	levels [MaxTailCalls]level  // the programs that made tail calls in functions
	cont   contState            // RunTail's
	st     runState
	// pin is the engine's object for this env (Pin).
	pin any
	// frameRun: the argument regions are a frame run's (setContext).
	frameRun bool
	ingress  uint32 // the ingress port of frame runs
	// argsGen counts changes of the argument regions (SetArg...), but for
	// the frame region of batches, which engines follow themselves.
	argsGen uint64
	// User is free for the embedding application (the switch keeps its
	// worker state here for its helpers).
	User any
}

// PacketContext is struct vswitch_md, the context of forwarding programs.
// The first 24 bytes are VALE-BPF's struct vale_bpf_md.
type PacketContext struct {
	Data        uint64 // address of the first byte of the frame
	DataEnd     uint64 // one past the last byte
	IngressPort uint32
	RingNr      uint8 // queue on the destination port; the program may write it
	pad         [3]uint8
}

// PacketContextSize is the size of struct vswitch_md.
const PacketContextSize = uint64(unsafe.Sizeof(PacketContext{}))

// NewEnv returns an Env with a fresh stack.
func NewEnv() *Env {
	e := &Env{}
	buf := make([]byte, StackSize+16)
	off := (16 - uintptr(unsafe.Pointer(&buf[0]))%16) % 16
	e.stack = buf[off : off+StackSize]
	e.stackBase = addrOf(e.stack)
	e.regions = make([]Region, numFixed, 16)
	e.setFloor(e.StackTop() - ProgramStackSize)
	return e
}

// setFloor makes the stack from floor to the top region 0: what the
// running program may touch (see the package doc, "The stack"). floor
// must lie in the stack, at least ProgramStackSize below its top.
func (e *Env) setFloor(floor uint64) {
	top := e.StackTop()
	if floor < e.stackBase || floor > top-ProgramStackSize {
		panic("vm: stack floor outside the stack")
	}
	e.regions[0] = Region{Start: floor, Size: top - floor, Writable: true}
}

// addrOf returns the address of the first byte of b.
func addrOf(b []byte) uint64 {
	if cap(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// AddrOf returns the address of b's first byte, as a program would see it.
func AddrOf(b []byte) uint64 { return addrOf(b) }

// ptr turns a checked address into a pointer. The address was checked
// against a region of live memory (a Go object kept alive by its owner,
// or memory mapped outside the Go heap), so the pointer is valid.
func ptr(addr uint64) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// StackTop returns the value of r10 in the main frame.
func (e *Env) StackTop() uint64 { return e.stackBase + StackSize }

// Stack returns the stack memory, for tests and debuggers.
func (e *Env) Stack() []byte { return e.stack }

// numFixed is the number of regions before the program's: the stack and
// three argument regions.
const numFixed = FixedRegions

// FixedRegions is the number of regions before a program's: the stack and
// three argument regions. A checked access or a helper's pointer found in
// region i past them (a map's values, a dynamic region) costs the run i+1
// units of its budget, the length of the search (see Budget); engines
// charge the same.
const FixedRegions = 4

// SetArg sets argument region n (0, 1 or 2) for the following runs (not
// from a helper during a run). A region with Size 0 removes it. Argument
// regions are contiguous (Stride 0): SetArg panics otherwise. RunFrame and
// RunFrames set all three.
func (e *Env) SetArg(n int, r Region) {
	if r.Stride != 0 {
		panic("vm: argument regions must be contiguous")
	}
	e.regions[1+n] = r
	e.frameRun = false
	e.argsGen++
}

// SetArgBytes makes b argument region n, writable. The env keeps b (so
// that it is on the heap, where it does not move, for as long as runs may
// use it).
func (e *Env) SetArgBytes(n int, b []byte) {
	e.args[n] = b
	e.regions[1+n] = Region{Start: addrOf(b), Size: uint64(len(b)), Writable: true}
	e.frameRun = false
	e.argsGen++
}

// bind installs p's regions after the fixed ones.
func (e *Env) bind(p *Program) {
	e.prog = p
	if e.regsProg == p {
		e.regions = e.regions[:e.nFixed]
		return
	}
	e.regions = append(e.regions[:numFixed], p.regions...)
	e.nFixed = len(e.regions)
	e.regsProg = p
}

// Program returns the program running now (for helpers).
func (e *Env) Program() *Program { return e.prog }

// access returns the region holding the n bytes at addr, for an access at
// pc of the running program that the fast path could not decide, and
// charges the search to the run (FixedRegions) unless the access was
// proven (an engine that uses the proof does not search).
func (e *Env) access(addr, n uint64, pc int) *Region {
	for i := range e.regions {
		r := &e.regions[i]
		if r.Contains(addr, n) {
			if i >= numFixed && e.prog.Proof(pc) != ProvenAlways {
				e.st.budget = SubBudget(e.st.budget, uint64(i+1))
			}
			return r
		}
	}
	return nil
}

// Bytes returns the n bytes at addr if the program may read them (and,
// with write, write them), for helpers that take pointers. The search is
// charged to the run (FixedRegions).
func (e *Env) Bytes(addr, n uint64, write bool) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	var r *Region
	for i := range e.regions {
		if e.regions[i].Contains(addr, n) {
			r = &e.regions[i]
			if i >= numFixed {
				e.charged += uint64(i + 1)
			}
			break
		}
	}
	if r == nil || write && !r.Writable {
		return nil, false
	}
	return unsafe.Slice((*byte)(ptr(addr)), n), true
}

// AddRegion makes r accessible until the end of the run (for helpers that
// hand out memory, such as ring buffer reservations). It reports false
// when the table is full.
func (e *Env) AddRegion(r Region) bool {
	if len(e.regions)-e.nFixed >= maxDynamic {
		return false
	}
	e.regions = append(e.regions, r)
	return true
}

// RemoveRegion removes the dynamic region that starts at start.
func (e *Env) RemoveRegion(start uint64) bool {
	for i := e.nFixed; i < len(e.regions); i++ {
		if e.regions[i].Start == start {
			e.regions = append(e.regions[:i], e.regions[i+1:]...)
			return true
		}
	}
	return false
}

// TailCall asks the engine to replace the running program by p when the
// current helper returns. It reports false when MaxTailCalls is reached.
func (e *Env) TailCall(p *Program) bool {
	if e.tailCalls >= MaxTailCalls {
		return false
	}
	e.tailCalls++
	e.tail = p
	return true
}

// Charge adds units to the cost of the running program (see Budget):
// helpers call it for the work they do beyond one instruction's worth,
// in proportion to the bytes they copy or the entries they walk. The
// engines take the charge from the budget when the helper returns.
func (e *Env) Charge(units uint64) { e.charged += units }

// Map returns the map behind a handle the program loaded with lddw.
func (e *Env) Map(handle uint64) (Map, bool) {
	return e.prog.mapOf(handle)
}

// RunFrame runs p as a forwarding program on frame: r1 points at e.MD,
// whose Data/DataEnd span frame. The program may read and write the frame,
// read the context and write its fields after data_end (ingress_port,
// ring_nr): data and data_end are read-only, as in Linux, so that a
// program's checks against them hold for the whole run. e.MD.RingNr holds
// the ring the program chose.
func (e *Env) RunFrame(r Runner, frame []byte, ingress uint32) (uint64, error) {
	e.frame = frame
	e.setContext(ingress)
	e.setFrame(frame)
	return r.Run(e, e.MDAddr(), 0)
}

// MDAddr returns the address of e.MD, the context of frame runs.
func (e *Env) MDAddr() uint64 { return uint64(uintptr(unsafe.Pointer(&e.MD))) }

// ctxHead is the read-only part of the context: data and data_end.
const ctxHead = 16

// setContext installs the context regions of frame runs and the ingress
// port.
func (e *Env) setContext(ingress uint32) {
	md := e.MDAddr()
	e.ingress = ingress
	e.MD.IngressPort = ingress
	e.regions[1] = Region{Start: md + ctxHead, Size: PacketContextSize - ctxHead, Writable: true}
	e.regions[3] = Region{Start: md, Size: ctxHead}
	e.frameRun = true
	e.argsGen++
}

// setFrame points the context and the frame region at frame, and resets
// the writable fields of the context (a program may have changed them).
func (e *Env) setFrame(frame []byte) {
	a := addrOf(frame)
	e.MD = PacketContext{Data: a, DataEnd: a + uint64(len(frame)), IngressPort: e.ingress}
	e.regions[2] = Region{Start: a, Size: uint64(len(frame)), Writable: true}
}

// takeFlood returns the 32 bytes at addr and zeroes them.
func takeFlood(addr uint64) (set [4]uint64) {
	p := (*[4]uint64)(ptr(addr))
	set = *p
	*p = [4]uint64{}
	return set
}

func load8(addr uint64) uint64  { return uint64(*(*uint8)(ptr(addr))) }
func load16(addr uint64) uint64 { return uint64(*(*uint16)(ptr(addr))) }
func load32(addr uint64) uint64 { return uint64(*(*uint32)(ptr(addr))) }
func load64(addr uint64) uint64 { return *(*uint64)(ptr(addr)) }

func store8(addr, v uint64)  { *(*uint8)(ptr(addr)) = uint8(v) }
func store16(addr, v uint64) { *(*uint16)(ptr(addr)) = uint16(v) }
func store32(addr, v uint64) { *(*uint32)(ptr(addr)) = uint32(v) }
func store64(addr, v uint64) { *(*uint64)(ptr(addr)) = v }

func p32(addr uint64) *uint32 { return (*uint32)(ptr(addr)) }
func p64(addr uint64) *uint64 { return (*uint64)(ptr(addr)) }

// insn is an instruction slot in its wire layout, as the interpreter
// fetches it: the registers packed in one byte (dst low, src high).
type insn struct {
	op   uint8
	regs uint8
	off  int16
	imm  int32
}

func compact(insns []asm.Instruction) []insn {
	code := make([]insn, len(insns))
	for n, i := range insns {
		code[n] = insn{op: i.Op, regs: i.Dst&15 | i.Src<<4, off: i.Off, imm: i.Imm}
	}
	return code
}

// fetchWord returns slot pc of code as one little-endian word (op in the
// low byte, then registers, offset and immediate) without a bounds check:
// validation guarantees that control never leaves the program.
func fetchWord(code []insn, pc int) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(code)), uintptr(pc)*8))
}

// fetch returns slot pc of code without a bounds check: validation
// guarantees that control never leaves the program (every jump target is
// inside it and no function falls through its end).
func fetch(code []insn, pc int) insn {
	return *(*insn)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(code)), uintptr(pc)*unsafe.Sizeof(insn{})))
}

// runState is the interpreter's state that is not needed on every instruction.
type runState struct {
	count, budget uint64
	start, depth  int
	pc            int // where the slow path resumes
	// base is the depth of the running program's main frame: 0, or the
	// depth of the function a tail call replaced (Env.levels[level-1]
	// holds the program to return to).
	base, level int
	// odd is set while levels are pushed (the stack floor is lowered):
	// a run that stops there leaves them for the next run to drop.
	odd bool
}

// level is the state of a program that made a tail call in a local
// function, which the target returns to when its main frame exits.
type level struct {
	prog  *Program // nil for RunTail's sentinel
	base  int      // the program's runState.base
	floor uint64   // its stack floor
}

// contState is what RunTail passes to the interpreter and gets back.
type contState struct {
	pending       bool // the next tail call is RunTail's start (contStub)
	prog          *Program
	regs          [11]uint64
	count, budget uint64
	tailCalls     int
	floor         uint64
}

// fastRead and fastWrite check an access against the stack and the two
// argument regions, which are contiguous, without a call: the
// interpreter's fast loop uses them and leaves the rest to find.
func (e *Env) fastRead(a, n uint64) bool {
	fix := (*[numFixed]Region)(e.regions)
	if off := a - fix[0].Start; off < fix[0].Size && n <= fix[0].Size-off {
		return true
	}
	if off := a - fix[2].Start; off < fix[2].Size && n <= fix[2].Size-off {
		return true
	}
	if off := a - fix[1].Start; off < fix[1].Size && n <= fix[1].Size-off {
		return true
	}
	if off := a - fix[3].Start; off < fix[3].Size && n <= fix[3].Size-off {
		return true
	}
	return false
}

func (e *Env) fastWrite(a, n uint64) bool {
	fix := (*[numFixed]Region)(e.regions)
	if off := a - fix[0].Start; off < fix[0].Size && n <= fix[0].Size-off {
		return fix[0].Writable
	}
	if off := a - fix[2].Start; off < fix[2].Size && n <= fix[2].Size-off {
		return fix[2].Writable
	}
	if off := a - fix[1].Start; off < fix[1].Size && n <= fix[1].Size-off {
		return fix[1].Writable
	}
	return false
}
