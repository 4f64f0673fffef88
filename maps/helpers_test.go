package maps

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// An engine turns a loaded program into something that runs it. The JIT
// adds itself here (or in a file of its own that appends to engines) so
// that every helper test runs on both.
type engine struct {
	name    string
	prepare func(*vm.Program) (vm.Runner, error)
}

var engines = []engine{
	{"interpreter", func(p *vm.Program) (vm.Runner, error) { return p, nil }},
}

func loadProg(t testing.TB, src string, ms []Map) *vm.Program {
	t.Helper()
	return loadProgWith(t, src, ms, Helpers())
}

func loadProgWith(t testing.TB, src string, ms []Map, hs *vm.Helpers) *vm.Program {
	t.Helper()
	insns, err := asm.Assemble(src)
	if err != nil {
		t.Fatal(err)
	}
	vms := make([]vm.Map, len(ms))
	for i, m := range ms {
		vms[i] = m
	}
	p, err := vm.Load(insns, vm.Options{Name: t.Name(), Maps: vms, Helpers: hs})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// harness is what a helper test case works with.
type harness struct {
	t      *testing.T
	eng    engine
	maps   []Map
	prog   *vm.Program
	runner vm.Runner
	env    *vm.Env
}

// run runs the program with r1 = arg (the tests use it as a parameter).
func (h *harness) run(arg uint64) (uint64, error) {
	return h.runner.Run(h.env, arg, 0)
}

func (h *harness) mustRun(arg uint64) uint64 {
	h.t.Helper()
	r0, err := h.run(arg)
	if err != nil {
		h.t.Fatalf("run: %v", err)
	}
	return r0
}

// load loads another program on the same engine, with the same maps.
func (h *harness) load(src string) (*vm.Program, vm.Runner) {
	p := loadProg(h.t, src, h.maps)
	r, err := h.eng.prepare(p)
	if err != nil {
		h.t.Fatal(err)
	}
	return p, r
}

type helperCase struct {
	name    string
	maps    []Spec
	src     string
	helpers func() *vm.Helpers // default Helpers
	test    func(h *harness)
}

func neg64(e int) uint64 { return uint64(-int64(e)) }

// lookupCounter looks up key 0 of map 0 and adds 1 to the u64 there.
const lookupCounter = `
	stw [%r10-4], 0
	stw [%r10-8], 0
	mov %r2, %r10
	add %r2, -8
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, miss
	mov %r1, 1
	lock add [%r0+0], %r1
	ldxdw %r0, [%r0+0]
	exit
miss:
	mov %r0, -1
	exit`

// updateDelete: r1 = op<<8 | flags; op 0 updates key 7 of map 0 with 99,
// op 1 deletes it; r0 is the helper's result.
const updateDelete = `
	mov %r6, %r1
	stdw [%r10-8], 7
	stdw [%r10-16], 99
	mov %r2, %r10
	add %r2, -8
	lddw %r1, map[0]
	mov %r4, %r6
	and %r4, 0xff
	rsh %r6, 8
	jne %r6, 0, del
	mov %r3, %r10
	add %r3, -16
	call 2
	exit
del:
	call 3
	exit`

var helperCases = []helperCase{
	{
		name: "array counter",
		maps: []Spec{{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}},
		src:  lookupCounter,
		test: func(h *harness) {
			for i := uint64(1); i <= 100; i++ {
				if r0 := h.mustRun(0); r0 != i {
					h.t.Fatalf("run %d: counter %d", i, r0)
				}
			}
			v, _ := h.maps[0].Lookup(u32(0))
			if binary.NativeEndian.Uint64(v) != 100 {
				h.t.Errorf("control plane sees %x", v)
			}
		},
	},
	{
		name: "hash counter",
		maps: []Spec{{Type: Hash, KeySize: 8, ValueSize: 8, MaxEntries: 16}},
		src:  lookupCounter,
		test: func(h *harness) {
			if r0 := h.mustRun(0); r0 != neg64(1) {
				h.t.Fatalf("lookup of a missing key: r0 = %#x, want -1 (NULL)", r0)
			}
			h.maps[0].Update(u64(0), u64(41), UpdateAny)
			if r0 := h.mustRun(0); r0 != 42 {
				h.t.Fatalf("counter %d, want 42", r0)
			}
		},
	},
	{
		name: "per-CPU counter",
		maps: []Spec{{Type: PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1, CPUs: 2}},
		src:  lookupCounter,
		test: func(h *harness) {
			h.env.CPU = 1
			h.mustRun(0)
			h.mustRun(0)
			h.env.CPU = 0
			h.mustRun(0)
			v, _ := h.maps[0].Lookup(u32(0))
			if want := append(u64(1), u64(2)...); string(v) != string(want) {
				h.t.Errorf("per-CPU values %x, want %x", v, want)
			}
		},
	},
	{
		name: "update and delete",
		maps: []Spec{{Type: Hash, KeySize: 8, ValueSize: 8, MaxEntries: 1}},
		src:  updateDelete,
		test: func(h *harness) {
			steps := []struct {
				arg  uint64
				want uint64
			}{
				{UpdateExist, neg64(ENOENT)},
				{UpdateNoExist, 0},
				{UpdateNoExist, neg64(EEXIST)},
				{UpdateAny, 0},
				{7, neg64(EINVAL)},
				{1<<8 | 0, 0},
				{1<<8 | 0, neg64(ENOENT)},
				{UpdateAny, 0},
			}
			for i, s := range steps {
				if r0 := h.mustRun(s.arg); r0 != s.want {
					h.t.Errorf("step %d (%#x): r0 = %d, want %d", i, s.arg, int64(r0), int64(s.want))
				}
			}
			if v, err := h.maps[0].Lookup(u64(7)); err != nil || binary.NativeEndian.Uint64(v) != 99 {
				h.t.Errorf("key 7 = %x, %v", v, err)
			}
			if err := h.maps[0].Update(u64(8), u64(1), UpdateAny); Errno(err) != E2BIG {
				h.t.Errorf("second key in a 1-entry hash: %v", err)
			}
		},
	},
	{
		name: "update full hash and array delete",
		maps: []Spec{{Type: Array, KeySize: 8 - 4, ValueSize: 8, MaxEntries: 8}},
		src:  updateDelete,
		test: func(h *harness) {
			if r0 := h.mustRun(UpdateAny); r0 != 0 {
				h.t.Errorf("array update of index 7: %d", int64(r0))
			}
			if r0 := h.mustRun(1 << 8); r0 != neg64(EINVAL) {
				h.t.Errorf("array delete: %d, want -EINVAL", int64(r0))
			}
		},
	},
	{
		name: "read past the value faults",
		maps: []Spec{{Type: Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}},
		src: `
	stw [%r10-4], 1
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, miss
	ldxdw %r1, [%r0+0]
	ldxb %r0, [%r0+8]
	exit
miss:
	mov %r0, -1
	exit`,
		test: func(h *harness) {
			h.maps[0].Update(u32(1), u64(5), UpdateAny)
			h.maps[0].Update(u32(2), u64(6), UpdateAny)
			_, err := h.run(0)
			var e *vm.Error
			if !errors.Is(err, vm.ErrOutOfBounds) || !errors.As(err, &e) || e.Kind != vm.KindRead {
				h.t.Fatalf("reading value+8: %v, want an out-of-bounds read", err)
			}
			if e.PC != 8 {
				h.t.Errorf("fault at insn %d, want 8 (the ldxb)", e.PC)
			}
		},
	},
	{
		name: "write before the value faults",
		maps: []Spec{{Type: Array, KeySize: 4, ValueSize: 4, MaxEntries: 4}},
		src: `
	stw [%r10-4], 1
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, miss
	stb [%r0-1], 1
	exit
miss:
	mov %r0, -1
	exit`,
		test: func(h *harness) {
			_, err := h.run(0)
			var e *vm.Error
			if !errors.As(err, &e) || e.Kind != vm.KindWrite {
				h.t.Fatalf("writing value-1: %v, want an out-of-bounds write", err)
			}
		},
	},
	{
		name: "read-only map",
		maps: []Spec{{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1, Flags: FlagRdOnlyProg}},
		src:  lookupCounter,
		test: func(h *harness) {
			if _, err := h.run(0); !errors.Is(err, vm.ErrOutOfBounds) {
				h.t.Fatalf("atomic add on a read-only value: %v", err)
			}
		},
	},
	{
		name: "global data",
		maps: []Spec{{Name: ".data", Type: Array, KeySize: 4, ValueSize: 16, MaxEntries: 1}},
		src: `
	lddw %r1, map[0]+8
	ldxdw %r0, [%r1+0]
	add %r0, 1
	stxdw [%r1+0], %r0
	exit`,
		test: func(h *harness) {
			h.mustRun(0)
			if r0 := h.mustRun(0); r0 != 2 {
				h.t.Errorf("r0 = %d, want 2", r0)
			}
			v, _ := h.maps[0].Lookup(u32(0))
			if binary.NativeEndian.Uint64(v[8:]) != 2 {
				h.t.Errorf("value %x", v)
			}
		},
	},
	{
		name: "bad map handle faults",
		maps: []Spec{{Type: Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}},
		src: `
	mov %r6, %r1
	stw [%r10-4], 1
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	jne %r6, 1, go
	lddw %r1, 0x1234
go:
	jne %r6, 2, call
	mov %r2, 0x1000
call:
	call 1
	exit`,
		test: func(h *harness) {
			if r0 := h.mustRun(0); r0 != 0 {
				h.t.Errorf("lookup of a missing key: %#x", r0)
			}
			for arg, want := range map[uint64]error{1: ErrBadHandle, 2: ErrBadPointer} {
				_, err := h.run(arg)
				var e *vm.Error
				if !errors.Is(err, want) || !errors.As(err, &e) || e.Kind != vm.KindHelper || e.Helper != 1 {
					h.t.Errorf("run(%d): %v, want a helper fault wrapping %v", arg, err, want)
				}
			}
		},
	},
	{
		name: "lpm from a program",
		maps: []Spec{{Type: LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 4, Flags: FlagNoPrealloc}},
		src: `
	stw [%r10-8], 32
	stw [%r10-4], 0x0302010a
	mov %r2, %r10
	add %r2, -8
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, miss
	ldxw %r0, [%r0+0]
	exit
miss:
	mov %r0, -1
	exit`,
		test: func(h *harness) {
			if r0 := h.mustRun(0); r0 != neg64(1) {
				h.t.Errorf("empty trie: %d", int64(r0))
			}
			h.maps[0].Update(lpmKey("10.0.0.0/8"), u32(8), UpdateAny)
			h.maps[0].Update(lpmKey("10.1.0.0/16"), u32(16), UpdateAny)
			h.maps[0].Update(lpmKey("10.1.2.0/24"), u32(24), UpdateAny)
			h.maps[0].Update(lpmKey("10.1.2.4/32"), u32(32), UpdateAny)
			if r0 := h.mustRun(0); r0 != 24 {
				h.t.Errorf("10.1.2.3 matched /%d, want /24", r0)
			}
		},
	},
}

func init() {
	helperCases = append(helperCases, moreHelperCases...)
}

// str8 returns "lddw %r1, ...; stxdw [%r10+off], %r1" lines storing s
// (padded with NULs to a multiple of 8) on the stack at off.
func str8(s string, off int) string {
	b := []byte(s)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	var out strings.Builder
	for i := 0; i < len(b); i += 8 {
		fmt.Fprintf(&out, "\tlddw %%r1, %#x\n\tstxdw [%%r10%+d], %%r1\n", binary.LittleEndian.Uint64(b[i:]), off+i)
	}
	return out.String()
}

var moreHelperCases = []helperCase{
	{
		// Each run adds 1 to a counter and tail-calls itself: Linux allows
		// 33 tail calls, so 34 runs of the body, then the call fails with
		// the program going on.
		name: "tail call chain limited to 33",
		maps: []Spec{
			{Type: ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 2},
			{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		},
		src: `
	mov %r6, %r1
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[1]
	call 1
	jeq %r0, 0, out
	mov %r1, 1
	lock add [%r0+0], %r1
	mov %r1, %r6
	lddw %r2, map[0]
	mov %r3, 0
	call 12
	exit
out:
	mov %r0, -1
	exit`,
		test: func(h *harness) {
			pa := h.maps[0].(*ProgramArray)
			pa.SetProgram(0, h.prog)
			for run := uint64(1); run <= 2; run++ {
				r0 := h.mustRun(7)
				if r0 != neg64(E2BIG) {
					h.t.Errorf("r0 after the chain = %d, want -E2BIG", int64(r0))
				}
				v, _ := h.maps[1].Lookup(u32(0))
				if got := binary.NativeEndian.Uint64(v); got != 34*run {
					h.t.Errorf("after run %d: body ran %d times in all, want %d", run, got, 34*run)
				}
			}
			pa.SetProgram(0, nil)
			if r0 := h.mustRun(7); r0 != neg64(ENOENT) {
				h.t.Errorf("tail call to an empty slot: r0 = %d, want -ENOENT", int64(r0))
			}
		},
	},
	{
		name: "tail call to another program",
		maps: []Spec{{Type: ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 4}},
		src: `
	lddw %r2, map[0]
	mov %r3, 3
	call 12
	mov %r0, 1
	exit`,
		test: func(h *harness) {
			target, _ := h.load("mov %r0, %r1\nexit")
			h.maps[0].(*ProgramArray).SetProgram(3, target)
			if r0 := h.mustRun(77); r0 != 77 {
				h.t.Errorf("r0 = %d, want 77 from the target with the same r1", r0)
			}
		},
	},
	{
		name: "ringbuf reserve submit discard",
		maps: []Spec{{Type: RingBuf, MaxEntries: 4096}},
		src: `
	mov %r6, %r1
	lddw %r1, map[0]
	mov %r2, 12
	mov %r3, 0
	call 131
	jeq %r0, 0, full
	stxdw [%r0+0], %r6
	stw [%r0+8], 0x55
	mov %r1, %r0
	mov %r2, 0
	jeq %r6, 13, discard
	jeq %r6, 14, past
	call 132
	mov %r0, 0
	exit
discard:
	call 133
	mov %r0, 0
	exit
past:
	stw [%r0+12], 1
	exit
full:
	mov %r0, 1
	exit`,
		test: func(h *harness) {
			rb := h.maps[0].(*RingBuffer)
			for _, arg := range []uint64{11, 12, 13} {
				if r0 := h.mustRun(arg); r0 != 0 {
					h.t.Fatalf("run(%d) = %d", arg, r0)
				}
			}
			var got []uint64
			rb.Poll(func(rec []byte) {
				if len(rec) != 12 || binary.NativeEndian.Uint32(rec[8:]) != 0x55 {
					h.t.Errorf("record %x", rec)
				}
				got = append(got, binary.NativeEndian.Uint64(rec))
			})
			if fmt.Sprint(got) != "[11 12]" {
				h.t.Errorf("records %v, want [11 12] (13 was discarded)", got)
			}
			if _, err := h.run(14); !errors.Is(err, vm.ErrOutOfBounds) {
				h.t.Errorf("write past the reserved 12 bytes: %v", err)
			}
			// Fill the ring: reservations fail (NULL), never block.
			full := 0
			for range 400 {
				if h.mustRun(11) == 1 {
					full++
				}
			}
			st := rb.Stats()
			if full == 0 || st.Dropped != uint64(full) {
				h.t.Errorf("%d reservations failed, stats %+v", full, st)
			}
		},
	},
	{
		name: "ringbuf submit of a bad pointer faults",
		maps: []Spec{{Type: RingBuf, MaxEntries: 4096}},
		src: `
	mov %r1, %r10
	add %r1, -16
	mov %r2, 0
	call 132
	exit`,
		test: func(h *harness) {
			_, err := h.run(0)
			if !errors.Is(err, ErrNotRecord) {
				h.t.Errorf("submit of a stack pointer: %v", err)
			}
		},
	},
	{
		name: "ringbuf output and consumer",
		maps: []Spec{{Type: RingBuf, MaxEntries: 4096}},
		src: `
	stxdw [%r10-8], %r1
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -8
	mov %r3, 8
	mov %r4, 0
	call 130
	exit`,
		test: func(h *harness) {
			rb := h.maps[0].(*RingBuffer)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan []uint64)
			go func() {
				var got []uint64
				for len(got) < 1000 {
					rec, err := rb.Read(ctx)
					if err != nil {
						break
					}
					got = append(got, binary.NativeEndian.Uint64(rec))
				}
				done <- got
			}()
			for i := range uint64(1000) {
				for h.mustRun(i) != 0 { // full: wait for the consumer
					time.Sleep(time.Millisecond)
				}
			}
			got := <-done
			if len(got) != 1000 {
				h.t.Fatalf("read %d records", len(got))
			}
			for i, v := range got {
				if v != uint64(i) {
					h.t.Fatalf("record %d = %d", i, v)
				}
			}
		},
	},
	{
		name: "trace_printk",
		src: str8("n=%d u=%u x=%llx\n", -32) + `
	mov %r1, %r10
	add %r1, -32
	mov %r2, 18
	mov %r3, -5
	mov %r4, 7
	lddw %r5, 0xdeadbeef00
	call 6
	exit`,
		test: func(h *harness) {
			for range 1000 {
				if r0 := h.mustRun(0); r0 != uint64(len("n=-5 u=7 x=deadbeef00\n")) {
					h.t.Fatalf("r0 = %d", int64(r0))
				}
			}
			lines := TraceLogOf(h.prog).Lines(0)
			if len(lines) != DefaultTraceLines {
				h.t.Errorf("log holds %d lines, want the last %d", len(lines), DefaultTraceLines)
			}
			last := lines[len(lines)-1]
			if last.Text != "n=-5 u=7 x=deadbeef00" || last.Seq != 999 {
				h.t.Errorf("last line %+v", last)
			}
		},
	},
	{
		name: "trace_printk refuses %s and unterminated formats",
		src: "\tmov %r6, %r1\n" + str8("s=%s\n", -16) + `
	mov %r1, %r10
	add %r1, -16
	mov %r2, 8
	jeq %r6, 0, call
	mov %r2, 3
call:
	call 6
	exit`,
		test: func(h *harness) {
			if r0 := h.mustRun(0); r0 != neg64(EINVAL) {
				h.t.Errorf("%%s: r0 = %d, want -EINVAL", int64(r0))
			}
			if r0 := h.mustRun(1); r0 != neg64(EINVAL) {
				h.t.Errorf("format without NUL: r0 = %d, want -EINVAL", int64(r0))
			}
			if n := len(TraceLogOf(h.prog).Lines(0)); n != 0 {
				h.t.Errorf("%d lines logged", n)
			}
		},
	},
	{
		name: "LRU MAC table from a program",
		maps: []Spec{{Type: LRUHash, KeySize: 8, ValueSize: 8, MaxEntries: 2}},
		src:  updateDelete,
		test: func(h *harness) {
			h.maps[0].Update(u64(1), u64(1), UpdateAny)
			h.maps[0].Update(u64(2), u64(2), UpdateAny)
			if r0 := h.mustRun(UpdateAny); r0 != 0 {
				h.t.Fatalf("update in a full LRU: %d", int64(r0))
			}
			if _, err := h.maps[0].Lookup(u64(1)); err == nil {
				h.t.Error("least recently used key 1 not evicted")
			}
		},
	},
	{
		// Issue 11: a helper call counted as one instruction whatever it
		// did, so a loop of updates of a 1 MiB value held a worker for
		// 30-57 s. Now each update charges for the words it copies and
		// the run stops at the budget after the first one.
		name: "budget counts helper work: 1 MiB updates in a loop",
		maps: []Spec{
			{Type: Array, KeySize: 4, ValueSize: 1 << 20, MaxEntries: 1},
			{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		},
		src: `
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, out
	mov %r6, %r0
loop:
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[1]
	call 1
	jeq %r0, 0, out
	mov %r1, 1
	lock add [%r0+0], %r1
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	mov %r3, %r6
	mov %r4, 0
	call 2
	ja loop
out:
	exit`,
		test: func(h *harness) {
			_, err := h.run(0)
			var e *vm.Error
			if !errors.As(err, &e) || e.Kind != vm.KindBudget {
				h.t.Fatalf("run: %v, want a budget fault", err)
			}
			v, _ := h.maps[1].Lookup(u32(0))
			if n := binary.NativeEndian.Uint64(v); n < 1 || n > 2 {
				h.t.Errorf("%d updates of 1 MiB before the budget fault, want 1 or 2", n)
			}
			if h.env.Executed > 100 {
				h.t.Errorf("%d instructions executed: the fault should follow the first update", h.env.Executed)
			}
		},
	},
	{
		name: "budget counts helper work: hash probes",
		maps: []Spec{{Type: Hash, KeySize: 64, ValueSize: 8, MaxEntries: 4}},
		src: `
	mov %r6, 0
loop:
	add %r6, 1
	mov %r2, %r10
	add %r2, -64
	lddw %r1, map[0]
	call 1
	jlt %r6, 1000000, loop
	exit`,
		test: func(h *harness) {
			// Each iteration is 7 instructions, a call and a probe of 8
			// key words.
			h.env.Budget = 7*1000 + 1000*(vm.CallCost+costProbe+8)
			_, err := h.run(0)
			var e *vm.Error
			if !errors.As(err, &e) || e.Kind != vm.KindBudget {
				h.t.Fatalf("run: %v, want a budget fault", err)
			}
			if it := h.env.Executed / 7; it < 990 || it > 1010 {
				h.t.Errorf("fault after %d iterations, want about 1000 (instructions and probes charged)", it)
			}
		},
	},
	{
		// A checked access found in a map's values costs the search:
		// region 4 (the first map's) is 5 units.
		name: "budget counts region searches",
		maps: []Spec{{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}},
		src: `
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, out
	stxdw [%r10-16], %r0
	ldxdw %r6, [%r10-16]
	mov %r7, 0
loop:
	ldxdw %r1, [%r6+0]
	add %r7, 1
	jlt %r7, 1000000, loop
out:
	exit`,
		test: func(h *harness) {
			// Each iteration: 3 instructions and a search of 5.
			h.env.Budget = 9 + 1000*8
			_, err := h.run(0)
			var e *vm.Error
			if !errors.As(err, &e) || e.Kind != vm.KindBudget {
				h.t.Fatalf("run: %v, want a budget fault", err)
			}
			if it := (h.env.Executed - 9) / 3; it < 995 || it > 1005 {
				h.t.Errorf("fault after %d iterations, want about 1000 (searches charged)", it)
			}
		},
	},
	{
		name:    "VALE-BPF numbering",
		maps:    []Spec{{Type: Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}},
		helpers: CompatVALEHelpers,
		src: `
	stw [%r10-4], 3
	stdw [%r10-16], 40
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	mov %r3, %r10
	add %r3, -16
	mov %r4, 0
	call 1
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	call 2
	jeq %r0, 0, miss
	ldxdw %r0, [%r0+0]
	add %r0, 2
	exit
miss:
	mov %r0, -1
	exit`,
		test: func(h *harness) {
			if r0 := h.mustRun(0); r0 != 42 {
				h.t.Errorf("r0 = %d, want 42 (update via 1, lookup via 2)", int64(r0))
			}
		},
	},
}

func TestHelpers(t *testing.T) {
	for _, eng := range engines {
		for _, c := range helperCases {
			t.Run(eng.name+"/"+c.name, func(t *testing.T) {
				h := newHarness(t, eng, c.maps, c.src, c.helpers)
				c.test(h)
			})
		}
	}
}

func newHarness(t *testing.T, eng engine, specs []Spec, src string, hs func() *vm.Helpers) *harness {
	h := &harness{t: t, eng: eng, env: vm.NewEnv()}
	for _, s := range specs {
		h.maps = append(h.maps, mustNew(t, s))
	}
	helpers := Helpers()
	if hs != nil {
		helpers = hs()
	}
	h.prog = loadProgWith(t, src, h.maps, helpers)
	var err error
	if h.runner, err = eng.prepare(h.prog); err != nil {
		t.Fatal(err)
	}
	return h
}
