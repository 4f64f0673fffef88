//go:build linux

package jit

import (
	"unsafe"

	"github.com/govswitch/vswitch/vm"
)

// nativeCtx is the state shared by Go and the machine code of a run. It
// lives in the env's session (on the heap); the machine code reaches it
// through r12, which the trampoline loads on every entry.
type nativeCtx struct {
	savedBP uintptr    // Go's frame pointer, kept by the trampoline (offset 0: see the .s file)
	regs    [11]uint64 // r0..r10 at an exit to Go; the initial r1, r2, r10
	count   uint64     // instruction slots executed (as the interpreter counts), at an exit
	budget  uint64     // the run's instruction budget
	exit    uint64     // why the machine code returned: 0 done, else exitInfo
	addr    uint64     // the address of a memory fault, the operand of callx
	resume  uintptr    // where the resume stub continues after a helper
	// depth is the local call depth in the running program: 0 in its
	// main frame, also when a tail call put it in place of a function.
	depth uint64
	// stackBase is the env's stack floor (vm.Env.StackFloor): the inline
	// stack check allows the vm.ProgramStackSize bytes above it, the
	// running program's stack; the rest of the stack (callers' frames
	// below a tail call made in a function) is found by the region search.
	stackBase uint64
	// regionTable points at the env's []vm.Region (the slow-path check).
	regionTable uintptr
	scratch     [2]uint64 // spill slots of the fetch-or/and/xor loops and of division
	// win are inline fast paths for the argument regions 1 and 2 (context
	// and frame): an access of 1<<k bytes at addr is allowed if
	// addr-start < lim[k]. A window is empty (lim 0) when it cannot decide
	// alone, for instance when its region is read-only or strided.
	win [2]window
	// frames points at the callers' saved state of the running program's
	// local calls, record depth for the caller at depth: a window of the
	// session's frameStack that starts where the program's main frame is.
	frames uintptr
	// clock is env.Clock for the run: a call to a vm.Helper marked Clock
	// is answered from it inline when it is not zero.
	clock uint64

	// Batches (RunFrames, RunRepeat): the machine code starts each frame
	// itself (frame_start) and, at its exit, writes the frame's result
	// and goes on with the next (frame_done). bLeft is 0 for a single run,
	// whose exit returns to Go at once.
	budget0    uint64  // the budget each frame starts with
	stackTop   uint64  // r10 at the start of each frame
	md         uintptr // &env.MD, the context of each frame
	ingress    uint64  // ingress port, written with ring_nr 0 at md+16
	bFrames    uintptr // slice header of the current frame
	bStride    uint64  // to the next frame's header: 24, or 0 to repeat one
	bRes       uintptr // the current frame's vm.FrameResult
	bResStride uint64  // to the next result: its size, or 0 to repeat
	bLeft      uint64  // frames left, the current one included
	bStop      uint64  // not 0: return to Go after the current frame
	flood      uint64  // env.FloodSlot

	// Map helpers in machine code: the worker's CPU (env.CPU) and the
	// words of a hash key being looked up.
	cpu  uint64
	keyq [maxInlineKeyWords]uint64
}

// maxInlineKeyWords bounds the keys of hash lookups done in machine code.
const maxInlineKeyWords = 4

// frameStack is the state local calls save, one record per caller: for
// the frames of a whole run, which nest deeper than one program's through
// tail calls made in functions.
type frameStack [vm.MaxFrames - 1]frameRec

type window struct {
	start uint64
	lim   [4]uint64
}

// frameRec is a caller's state saved by a local call.
type frameRec struct {
	r6, r7, r8, r9, r10 uint64
	ret                 uintptr
}

const (
	offRegs      = int32(unsafe.Offsetof(nativeCtx{}.regs))
	offCount     = int32(unsafe.Offsetof(nativeCtx{}.count))
	offBudget    = int32(unsafe.Offsetof(nativeCtx{}.budget))
	offExit      = int32(unsafe.Offsetof(nativeCtx{}.exit))
	offAddr      = int32(unsafe.Offsetof(nativeCtx{}.addr))
	offResume    = int32(unsafe.Offsetof(nativeCtx{}.resume))
	offDepth     = int32(unsafe.Offsetof(nativeCtx{}.depth))
	offStackBase = int32(unsafe.Offsetof(nativeCtx{}.stackBase))
	offRegions   = int32(unsafe.Offsetof(nativeCtx{}.regionTable))
	offScratch   = int32(unsafe.Offsetof(nativeCtx{}.scratch))
	offClock     = int32(unsafe.Offsetof(nativeCtx{}.clock))
	offWin       = int32(unsafe.Offsetof(nativeCtx{}.win))
	offFrames    = int32(unsafe.Offsetof(nativeCtx{}.frames))
	offBudget0   = int32(unsafe.Offsetof(nativeCtx{}.budget0))
	offStackTop  = int32(unsafe.Offsetof(nativeCtx{}.stackTop))
	offMD        = int32(unsafe.Offsetof(nativeCtx{}.md))
	offIngress   = int32(unsafe.Offsetof(nativeCtx{}.ingress))
	offBFrames   = int32(unsafe.Offsetof(nativeCtx{}.bFrames))
	offBStride   = int32(unsafe.Offsetof(nativeCtx{}.bStride))
	offBRes      = int32(unsafe.Offsetof(nativeCtx{}.bRes))
	offBResStr   = int32(unsafe.Offsetof(nativeCtx{}.bResStride))
	offBLeft     = int32(unsafe.Offsetof(nativeCtx{}.bLeft))
	offBStop     = int32(unsafe.Offsetof(nativeCtx{}.bStop))
	offFlood     = int32(unsafe.Offsetof(nativeCtx{}.flood))
	offCPU       = int32(unsafe.Offsetof(nativeCtx{}.cpu))
	offKeyq      = int32(unsafe.Offsetof(nativeCtx{}.keyq))

	// Layout of vm.FrameResult, written by frame_done.
	offResR0       = int32(unsafe.Offsetof(vm.FrameResult{}.R0))
	offResExecuted = int32(unsafe.Offsetof(vm.FrameResult{}.Executed))
	offResFlood    = int32(unsafe.Offsetof(vm.FrameResult{}.Flood))
	offResRing     = int32(unsafe.Offsetof(vm.FrameResult{}.RingNr))
	sizeResult     = uint64(unsafe.Sizeof(vm.FrameResult{}))

	// Layout of vm.PacketContext and of a []byte header, for frame_start.
	offMDData    = int32(unsafe.Offsetof(vm.PacketContext{}.Data))
	offMDDataEnd = int32(unsafe.Offsetof(vm.PacketContext{}.DataEnd))
	offMDIngress = int32(unsafe.Offsetof(vm.PacketContext{}.IngressPort))
	offMDRing    = int32(unsafe.Offsetof(vm.PacketContext{}.RingNr))
	sizeSlice    = uint64(unsafe.Sizeof([]byte(nil)))
	sizeWindow   = int32(unsafe.Sizeof(window{}))
	sizeFrame    = int32(unsafe.Sizeof(frameRec{}))

	// Layout of vm.Region and of a slice header, read by the check stub.
	offRegionStart    = int32(unsafe.Offsetof(vm.Region{}.Start))
	offRegionSize     = int32(unsafe.Offsetof(vm.Region{}.Size))
	offRegionStride   = int32(unsafe.Offsetof(vm.Region{}.Stride))
	offRegionElem     = int32(unsafe.Offsetof(vm.Region{}.Elem))
	offRegionWritable = int32(unsafe.Offsetof(vm.Region{}.Writable))
	sizeRegion        = int32(unsafe.Sizeof(vm.Region{}))
)

// Compile-time checks of what the assembly and the stubs assume: frame_done
// writes RingNr as a word that also clears the fault kind and the engine
// error flag after it (see vm.FrameResult), and frame_start writes the
// ingress port and ring_nr (with the padding) as one word.
var (
	_ [unsafe.Offsetof(vm.FrameResult{}.Kind) - unsafe.Offsetof(vm.FrameResult{}.RingNr) - 1]struct{}            = [0]struct{}{}
	_ [unsafe.Offsetof(vm.FrameResult{}.Helper) - unsafe.Offsetof(vm.FrameResult{}.RingNr) - 4]struct{}          = [0]struct{}{}
	_ [unsafe.Offsetof(vm.FrameResult{}.RingNr) % 8]struct{}                                                     = [0]struct{}{}
	_ [unsafe.Offsetof(vm.FrameResult{}.PC) - unsafe.Offsetof(vm.FrameResult{}.RingNr) - 8]struct{}              = [0]struct{}{}
	_ [unsafe.Offsetof(vm.PacketContext{}.RingNr) - unsafe.Offsetof(vm.PacketContext{}.IngressPort) - 4]struct{} = [0]struct{}{}
	_ [unsafe.Sizeof(vm.PacketContext{}) - unsafe.Offsetof(vm.PacketContext{}.IngressPort) - 8]struct{}          = [0]struct{}{}
	_ [unsafe.Offsetof(nativeCtx{}.savedBP)]struct{}                                                             = [0]struct{}{}
	_ [sizeFrame - 48]struct{}                                                                                   = [0]struct{}{}
	_ [unsafe.Sizeof(uintptr(0)) - 8]struct{}                                                                    = [0]struct{}{}
)

// tableAddr returns the address of the env's region slice header.
func tableAddr(env *vm.Env) uintptr { return uintptr(unsafe.Pointer(env.RegionTable())) }

// framesAddr returns the address of f for the machine code.
func framesAddr(f *frameStack) uintptr { return uintptr(unsafe.Pointer(f)) }

// setWindows fills the inline fast paths from the env's argument regions
// 1 and 2. An access inside a window must be one the interpreter's
// first-match search allows, loads and stores alike: so a window needs a
// contiguous writable region, and region 2's also needs region 1 writable
// or apart from it (the stack, region 0, is writable).
func setWindows(x *nativeCtx, rs []vm.Region) {
	if len(rs) < 3 {
		x.win[0].set(nil, false)
		x.win[1].set(nil, false)
		return
	}
	r1, r2 := &rs[1], &rs[2]
	x.win[0].set(r1, true)
	x.win[1].set(r2, r1.Writable || !overlap(r1, r2))
}

// set makes w the window of r, or empty if !ok or r cannot have one. It
// writes the fields in place: building a window value and copying it
// costs a store-forwarding stall per run.
func (w *window) set(r *vm.Region, ok bool) {
	if r == nil || !ok || !r.Writable || r.Stride != 0 {
		w.start, w.lim[0], w.lim[1], w.lim[2], w.lim[3] = 0, 0, 0, 0, 0
		return
	}
	// lim[k] = Size - (1<<k) + 1, or 0 when the region is smaller.
	s := r.Size
	w.start, w.lim[0], w.lim[1], w.lim[2], w.lim[3] = r.Start, s, sat(s, 1), sat(s, 3), sat(s, 7)
}

func sat(s, k uint64) uint64 {
	if s > k {
		return s - k
	}
	return 0
}

func overlap(a, b *vm.Region) bool {
	return a.Size != 0 && a.Start < b.Start+b.Size && b.Start < a.Start+a.Size
}

// addrOfCode returns the address of the first byte of mapped code.
func addrOfCode(mem []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(mem))) }
