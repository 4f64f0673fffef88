package maps

import (
	"encoding/binary"
	"math/bits"
	"runtime"
	"sync/atomic"
)

// Map memory is kept in []uint64 slabs: 8-byte aligned (atomics work on
// any value word), never scanned by the GC, never moved. The control plane
// and the helpers copy keys and values in and out of them one word at a
// time with atomic loads and stores, so that copies racing with each other
// or with a program's atomics are well defined (and clean under -race);
// a copy is still not atomic as a whole, which is what the per-element
// sequence counters are for.

func words(n int) int { return (n + 7) / 8 }

// stride returns the slot size of an n-byte value: the smallest power of
// two larger than n (at least 8). It is strictly larger so that every slot
// ends in a gap no program may touch: the region check already stops an
// access from running off a value, and the gap also faults a program that
// steps its pointer past its value (p + value_size is never the next one).
func stride(n uint32) uint64 {
	return max(8, uint64(1)<<bits.Len32(n))
}

// wordOf returns the i-th 8-byte word of b in native byte order, zero-padded.
func wordOf(b []byte, i int) uint64 {
	if len(b) >= i*8+8 {
		return binary.NativeEndian.Uint64(b[i*8:])
	}
	var t [8]byte
	copy(t[:], b[i*8:])
	return binary.NativeEndian.Uint64(t[:])
}

// storeBytes copies src into w with atomic word stores. The bytes of the
// last word past len(src) are zeroed (they are padding of the slot).
func storeBytes(w []uint64, src []byte) {
	n := words(len(src))
	for i := 0; i < n; i++ {
		atomic.StoreUint64(&w[i], wordOf(src, i))
	}
}

// loadBytes copies len(dst) bytes out of w with atomic word loads.
func loadBytes(dst []byte, w []uint64) {
	full := len(dst) / 8
	for i := 0; i < full; i++ {
		binary.NativeEndian.PutUint64(dst[i*8:], atomic.LoadUint64(&w[i]))
	}
	if r := len(dst) % 8; r != 0 {
		var t [8]byte
		binary.NativeEndian.PutUint64(t[:], atomic.LoadUint64(&w[full]))
		copy(dst[full*8:], t[:r])
	}
}

func zeroWords(w []uint64) {
	for i := range w {
		atomic.StoreUint64(&w[i], 0)
	}
}

// littleEndian is 1 on little-endian machines, where the shortcuts of
// appendWords give the same words as wordOf.
var littleEndian = int(binary.NativeEndian.Uint16([]byte{1, 0}))

// appendWords appends the words of key (zero-padded) to q.
func appendWords(q []uint64, key []byte) []uint64 {
	switch len(key) * littleEndian { // the common keys of a switch: IPv4, MAC
	case 4:
		return append(q, uint64(binary.NativeEndian.Uint32(key)))
	case 6:
		return append(q, uint64(binary.NativeEndian.Uint32(key))|uint64(binary.NativeEndian.Uint16(key[4:]))<<32)
	}
	for len(key) >= 8 {
		q = append(q, binary.NativeEndian.Uint64(key))
		key = key[8:]
	}
	if len(key) > 0 {
		var t [8]byte
		copy(t[:], key)
		q = append(q, binary.NativeEndian.Uint64(t[:]))
	}
	return q
}

// wordsEqual compares the key words q with the key stored in w.
func wordsEqual(w []uint64, q []uint64) bool {
	w = w[:len(q)]
	for i, x := range q {
		if atomic.LoadUint64(&w[i]) != x {
			return false
		}
	}
	return true
}

// keyEqual compares key with the key stored in w.
func keyEqual(w []uint64, key []byte) bool {
	n := words(len(key))
	for i := 0; i < n; i++ {
		if atomic.LoadUint64(&w[i]) != wordOf(key, i) {
			return false
		}
	}
	return true
}

// seqlock is a sequence counter guarding one element's value against
// torn control-plane reads: writers make it odd while they copy (and
// exclude each other by doing so), readers retry when it moved.
type seqlock struct{ v atomic.Uint32 }

func (s *seqlock) lock() {
	for spin := 0; ; spin++ {
		v := s.v.Load()
		if v&1 == 0 && s.v.CompareAndSwap(v, v+1) {
			return
		}
		if spin > 64 {
			runtime.Gosched()
		}
	}
}

func (s *seqlock) unlock() { s.v.Add(1) }

// readBegin waits for an even count and returns it.
func (s *seqlock) readBegin() uint32 {
	for spin := 0; ; spin++ {
		v := s.v.Load()
		if v&1 == 0 {
			return v
		}
		if spin > 64 {
			runtime.Gosched()
		}
	}
}

func (s *seqlock) readRetry(v uint32) bool { return s.v.Load() != v }
