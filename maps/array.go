package maps

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/govswitch/vswitch/vm"
)

// array is an array or a per-CPU array: max entries value slots of a
// power-of-two stride in one slab, CPU-major for per-CPU arrays (each
// worker's slots are contiguous, so workers do not share cache lines).
type array struct {
	spec    Spec
	ncpu    int
	vsize   int
	sw      int // stride in words
	vals    []uint64
	seqs    []seqlock // one per index, guards all CPUs' slots
	regions []vm.Region
	layout  vm.MapLayout
	closed  atomic.Bool
}

func newArray(spec Spec) *array {
	a := &array{spec: spec, ncpu: max(spec.CPUs, 1), vsize: int(spec.ValueSize)}
	st := stride(spec.ValueSize)
	a.sw = int(st / 8)
	a.vals = make([]uint64, a.ncpu*int(spec.MaxEntries)*a.sw)
	a.seqs = make([]seqlock, spec.MaxEntries)
	adviseHuge(a.vals)
	a.regions = []vm.Region{{
		Start: addrOf(a.vals), Size: uint64(len(a.vals)) * 8, Stride: st, Elem: uint64(spec.ValueSize),
		Writable: spec.Flags&FlagRdOnlyProg == 0,
	}}
	a.setLayout()
	return a
}

func (a *array) Spec() Spec           { return a.spec }
func (a *array) Regions() []vm.Region { return a.regions }
func (a *array) Close() error         { a.closed.Store(true); return nil }

// DirectValue supports global data (.data, .rodata, .bss): as in Linux,
// only on a one-element, non-per-CPU array.
func (a *array) DirectValue(off uint32) (uint64, error) {
	if a.spec.Type != Array || a.spec.MaxEntries != 1 {
		return 0, ErrNotSupported
	}
	if off >= a.spec.ValueSize {
		return 0, ErrBadValue
	}
	return addrOf(a.vals) + uint64(off), nil
}

// ArrayLayout describes a (non-per-CPU) array for a JIT that inlines
// bpf_map_lookup_elem: the value of index i < entries is at
// base + i*stride. ok is false for per-CPU arrays.
func (a *array) ArrayLayout() (base, stride uint64, entries uint32, ok bool) {
	if a.spec.Type != Array {
		return 0, 0, 0, false
	}
	return addrOf(a.vals), uint64(a.sw) * 8, a.spec.MaxEntries, true
}

func (a *array) slot(idx uint32, cpu int) []uint64 {
	o := (cpu*int(a.spec.MaxEntries) + int(idx)) * a.sw
	return a.vals[o : o+a.sw]
}

func (a *array) index(key []byte) (uint32, bool) {
	if len(key) != 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(key), true
}

func (a *array) LookupAddr(key []byte, cpu int) uint64 {
	idx, ok := a.index(key)
	if !ok || idx >= a.spec.MaxEntries {
		return 0
	}
	return addrOf(a.vals) + uint64((cpuIndex(cpu, a.ncpu)*int(a.spec.MaxEntries)+int(idx))*a.sw*8)
}

func (a *array) valueSize() int {
	if a.spec.Type == PerCPUArray {
		return perCPUValueSize(a.spec.ValueSize, a.ncpu)
	}
	return a.vsize
}

func (a *array) Lookup(key []byte) ([]byte, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	idx, ok := a.index(key)
	if !ok {
		return nil, ErrBadKey
	}
	if idx >= a.spec.MaxEntries {
		return nil, ErrKeyNotExist
	}
	out := make([]byte, a.valueSize())
	pad := (a.vsize + 7) &^ 7
	s := &a.seqs[idx]
	for {
		v := s.readBegin()
		for c := 0; c < a.ncpu; c++ {
			loadBytes(out[c*pad:c*pad+a.vsize], a.slot(idx, c))
		}
		if !s.readRetry(v) {
			return out, nil
		}
	}
}

func (a *array) Update(key, value []byte, flags uint64) error {
	if a.closed.Load() {
		return ErrClosed
	}
	if len(value) != a.valueSize() {
		return ErrBadValue
	}
	return a.update(key, value, flags, -1)
}

func (a *array) UpdateFrom(key, value []byte, flags uint64, cpu int) error {
	if len(value) != a.vsize {
		return ErrBadValue
	}
	if a.spec.Flags&FlagRdOnlyProg != 0 {
		return errReadOnly
	}
	if a.spec.Type == PerCPUArray {
		return a.update(key, value, flags, cpuIndex(cpu, a.ncpu))
	}
	return a.update(key, value, flags, -1)
}

// update writes value to index key: all CPUs' slots from a control-plane
// value (cpu < 0) or one CPU's slot.
func (a *array) update(key, value []byte, flags uint64, cpu int) error {
	if err := checkFlags(flags); err != nil {
		return err
	}
	idx, ok := a.index(key)
	if !ok {
		return ErrBadKey
	}
	if idx >= a.spec.MaxEntries {
		return ErrFull // E2BIG, as Linux
	}
	if flags == UpdateNoExist {
		return ErrKeyExist // every element of an array exists
	}
	s := &a.seqs[idx]
	s.lock()
	switch {
	case cpu >= 0:
		storeBytes(a.slot(idx, cpu), value)
	case a.spec.Type == PerCPUArray:
		pad := (a.vsize + 7) &^ 7
		for c := 0; c < a.ncpu; c++ {
			storeBytes(a.slot(idx, c), value[c*pad:c*pad+a.vsize])
		}
	default:
		storeBytes(a.slot(idx, 0), value)
	}
	s.unlock()
	return nil
}

func (a *array) Delete(key []byte) error {
	if a.closed.Load() {
		return ErrClosed
	}
	if _, ok := a.index(key); !ok {
		return ErrBadKey
	}
	return errArrayDelete
}

func (a *array) NextKey(key []byte) ([]byte, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	next := uint32(0)
	if key != nil {
		idx, ok := a.index(key)
		if !ok {
			return nil, ErrBadKey
		}
		if idx < a.spec.MaxEntries {
			if idx == a.spec.MaxEntries-1 {
				return nil, ErrKeyNotExist
			}
			next = idx + 1
		}
	}
	return binary.NativeEndian.AppendUint32(nil, next), nil
}
