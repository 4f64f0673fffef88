package vm_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// TestContextReadOnly: a frame run may write ingress_port and ring_nr but
// not data or data_end, so that the program's checks against them hold
// for the whole run (and for the proofs that rely on them).
func TestContextReadOnly(t *testing.T) {
	env := vm.NewEnv()
	frame := make([]byte, 60)
	for _, tc := range []struct {
		text  string
		fault bool
	}{
		{"stdw [%r1+0], 0\nexit", true},
		{"stdw [%r1+8], 0\nexit", true},
		{"stb [%r1+15], 0\nexit", true},
		{"stxdw [%r1+12], %r1\nexit", true}, // across the read-only head
		{"stw [%r1+16], 7\nstb [%r1+20], 3\nmov %r0, 0\nexit", false},
		{"ldxdw %r0, [%r1+0]\nldxdw %r0, [%r1+8]\nldxw %r0, [%r1+16]\nexit", false},
	} {
		p := vm.MustLoad(asm.MustAssemble(tc.text), vm.Options{})
		_, err := env.RunFrame(p, frame, 1)
		if got := errors.Is(err, vm.ErrOutOfBounds); got != tc.fault {
			t.Errorf("%q: %v, want fault %v", tc.text, err, tc.fault)
		}
	}
}

// slotMap is a map of one 32-byte value, enough for a flood slot.
type slotMap struct{ words [8]uint64 }

func (m *slotMap) addr() uint64 { return uint64(uintptr(unsafe.Pointer(&m.words[0]))) }
func (m *slotMap) Regions() []vm.Region {
	return []vm.Region{{Start: m.addr(), Size: 32, Writable: true}}
}
func (m *slotMap) DirectValue(off uint32) (uint64, error) { return m.addr() + uint64(off), nil }

// TestRunFramesInterpreter checks the batch API on the interpreter:
// results per frame as RunFrame gives them, faults by value, flood sets
// taken from the slot only for frames that flood.
func TestRunFramesInterpreter(t *testing.T) {
	m := &slotMap{}
	// Frames starting with 0xff flood; the others write their first byte
	// into the slot's first word, and fault if it is 0xee.
	p := vm.MustLoad(asm.MustAssemble(`
		ldxdw %r2, [%r1+0]
		ldxb %r3, [%r2+0]
		mov %r0, 254
		jeq %r3, 0xff, out
		lddw %r4, map[0]+0
		stxdw [%r4+0], %r3
		jne %r3, 0xee, port
		stdw [%r1+0], 0
	port:
		ldxw %r0, [%r1+16]
		stb [%r1+20], 9
	out:
		exit`), vm.Options{Maps: []vm.Map{m}})
	env := vm.NewEnv()
	env.FloodSlot = m.addr()
	frames := [][]byte{{0xff, 1}, {0x01, 2}, {0xff, 3}, {0xee}, {0xff}}
	res := make([]vm.FrameResult, len(frames))
	env.RunFrames(p, frames, 7, res)
	for k, want := range []struct {
		r0    uint64
		ring  uint8
		flood uint64
		fail  bool
	}{{254, 0, 0, false}, {7, 9, 0, false}, {254, 0, 0x01, false}, {0, 0, 0, true}, {254, 0, 0xee, false}} {
		r := &res[k]
		if r.R0 != want.r0 || r.RingNr != want.ring || r.Flood[0] != want.flood || r.Failed() != want.fail {
			t.Errorf("frame %d: r0 %d ring %d flood %#x failed %v (%v), want %d %d %#x %v", k, r.R0, r.RingNr, r.Flood[0], r.Failed(), r.Err(), want.r0, want.ring, want.flood, want.fail)
		}
	}
	var e *vm.Error
	if err := res[3].Err(); !errors.As(err, &e) || e.Kind != vm.KindWrite || e.PC != 8 {
		t.Errorf("frame 3: %v, want a write fault at 8", err)
	}
	if m.words[0] != 0 {
		t.Errorf("slot not cleared after the last flood: %#x", m.words[0])
	}
	if n := testing.AllocsPerRun(100, func() { env.RunFrames(p, frames[:3], 7, res) }); n != 0 {
		t.Errorf("%v allocations per batch", n)
	}
}

func uintptrOf(w []uint64) uintptr { return uintptr(unsafe.Pointer(&w[0])) }
