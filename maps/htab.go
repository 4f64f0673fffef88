package maps

import (
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/govswitch/vswitch/vm"
)

// htab is a hash, LRU hash or per-CPU hash map.
//
// Layout: nslots = max entries element slots, preallocated. Each slot has
// a record in recs (header words then the key) and a value slot (one per
// CPU) in vals, the slab programs see. Buckets (a power of two at least
// max entries) hold the head of a chain of slots linked through the
// records, ending in a "nulls" marker naming the bucket, as the kernel's
// hlist_nulls.
//
// Readers (LookupAddr) take no lock and write nothing (LRU: one store of
// the reference bit, and only when it is clear): they walk the chain with
// atomic loads, validate a key against the slot's sequence word, and
// restart if the slot was reused meanwhile or the walk ended in another
// bucket's marker; after a few restarts they fall back to the bucket lock,
// so a reader always finishes. Writers lock the bucket's stripe (LRU: the
// whole map, as its list is global), take free slots from a lock-free
// stack, fill a slot before publishing it at the head of its chain, and
// unlink deleted slots with one store. Deleted slots go back to the free
// stack at once: their memory stays valid, their value is overwritten only
// when the slot is reused for another key.
type htab struct {
	spec   Spec
	lru    bool
	percpu bool
	ncpu   int
	kw     int // key words
	rw     int // record words
	vsize  int
	sw     int // value stride in words
	nslots uint32
	mask   uint64 // buckets - 1
	seed   [3]uint64

	heads []uint32 // per bucket: first slot, or nullsBit|bucket
	recs  []uint64
	vals  []uint64
	vseq  []uint64 // per slot: value sequence (seqlock) for consistent control-plane reads
	ref   []uint32 // LRU, per slot: looked up since last considered for eviction

	locks    []stripe
	lockMask uint64

	free     atomic.Uint64 // tagged stack head: generation<<32 | slot+1
	freeNext []uint32
	count    atomic.Int64

	// LRU: slots in second-chance order (under locks[0]).
	lprev, lnext []uint32
	lhead, ltail uint32

	regions []vm.Region
	layout  vm.MapLayout
	closed  atomic.Bool
}

// Record header words; the key follows. Records are a power of two of
// words (32 bytes for keys up to 16 bytes), so that a lookup touches one
// cache line per slot.
const (
	recMeta = 0 // hash tag<<32 | sequence (odd while the key is rewritten)
	recNext = 1 // next slot in the chain, or a nulls marker
	recHdr  = 2
)

const (
	nullsBit = 1 << 31
	noSlot   = ^uint32(0)
	// walkRetries is how often a lock-free lookup restarts before it takes
	// the bucket lock.
	walkRetries = 4
)

type stripe struct {
	sync.Mutex
	_ [56]byte // a cache line each
}

func newHtab(spec Spec) *htab {
	h := &htab{
		spec:   spec,
		lru:    spec.Type == LRUHash,
		percpu: spec.Type == PerCPUHash,
		ncpu:   max(spec.CPUs, 1),
		kw:     words(int(spec.KeySize)),
		vsize:  int(spec.ValueSize),
		nslots: spec.MaxEntries,
		seed:   [3]uint64{rand.Uint64() | 1, rand.Uint64() | 1, rand.Uint64() | 1},
	}
	h.rw = 1 << bits.Len(uint(recHdr+h.kw-1))
	st := stride(spec.ValueSize)
	h.sw = int(st / 8)
	// Twice as many buckets as elements: chains of 1.25 slots on average
	// for a hit on a full map, for 8 bytes per element.
	nb := uint64(2) << bits.Len32(spec.MaxEntries-1)
	h.mask = nb - 1
	h.heads = make([]uint32, nb)
	adviseHuge32(h.heads) // before the first touch
	for b := range h.heads {
		h.heads[b] = nullsBit | uint32(b)
	}
	h.recs = make([]uint64, int(h.nslots)*h.rw)
	h.vals = make([]uint64, h.ncpu*int(h.nslots)*h.sw)
	h.vseq = make([]uint64, h.nslots)
	adviseHuge(h.recs)
	adviseHuge(h.vals)
	nl := min(nb, 64)
	if h.lru {
		nl = 1
	}
	h.locks = make([]stripe, nl)
	h.lockMask = nl - 1
	h.freeNext = make([]uint32, h.nslots)
	for s := range h.freeNext {
		h.freeNext[s] = uint32(s) + 2 // slot+1 of the next free slot
	}
	h.freeNext[h.nslots-1] = 0
	h.free.Store(1)
	if h.lru {
		h.ref = make([]uint32, h.nslots)
		h.lprev = make([]uint32, h.nslots)
		h.lnext = make([]uint32, h.nslots)
		h.lhead, h.ltail = noSlot, noSlot
	}
	h.regions = []vm.Region{{
		Start: addrOf(h.vals), Size: uint64(len(h.vals)) * 8, Stride: st, Elem: uint64(spec.ValueSize),
		Writable: spec.Flags&FlagRdOnlyProg == 0,
	}}
	h.setLayout()
	return h
}

func (h *htab) Spec() Spec                         { return h.spec }
func (h *htab) Regions() []vm.Region               { return h.regions }
func (h *htab) DirectValue(uint32) (uint64, error) { return 0, ErrNotSupported }
func (h *htab) Close() error                       { h.closed.Store(true); return nil }

// Len returns the number of elements.
func (h *htab) Len() int { return int(h.count.Load()) }

func (h *htab) rec(s uint32) []uint64 {
	o := int(s) * h.rw
	return h.recs[o : o+h.rw : o+h.rw]
}

func (h *htab) val(s uint32, cpu int) []uint64 {
	o := (cpu*int(h.nslots) + int(s)) * h.sw
	return h.vals[o : o+h.sw : o+h.sw]
}

func (h *htab) valAddr(s uint32, cpu int) uint64 {
	return addrOf(h.vals) + uint64((cpu*int(h.nslots)+int(s))*h.sw*8)
}

func (h *htab) lock(b uint64) *stripe { return &h.locks[b&h.lockMask] }

// walk looks key up without locks. ok is false when the walk must be
// retried (a slot changed under it or it strayed into another chain).
func (h *htab) walk(b uint64, tag uint32, q []uint64) (slot uint32, ok bool) {
	link := atomic.LoadUint32(&h.heads[b])
	for steps := uint32(0); link&nullsBit == 0; steps++ {
		if steps > h.nslots || link >= h.nslots {
			return noSlot, false
		}
		r := h.rec(link)
		m := atomic.LoadUint64(&r[recMeta])
		next := uint32(atomic.LoadUint64(&r[recNext]))
		if m&1 == 0 && uint32(m>>32) == tag && wordsEqual(r[recHdr:], q) {
			if atomic.LoadUint64(&r[recMeta]) != m {
				return noSlot, false
			}
			return link, true
		}
		link = next
	}
	return noSlot, link == nullsBit|uint32(b)
}

// findLocked looks key up with b's lock held; prev is the slot before it
// in the chain (noSlot: the bucket head).
func (h *htab) findLocked(b uint64, tag uint32, q []uint64) (slot, prev uint32) {
	prev = noSlot
	for link := h.heads[b]; link&nullsBit == 0; {
		r := h.rec(link)
		if uint32(r[recMeta]>>32) == tag && wordsEqual(r[recHdr:], q) {
			return link, prev
		}
		prev, link = link, uint32(r[recNext])
	}
	return noSlot, noSlot
}

// hash returns key's bucket and tag: a wyhash-style multiply-mix of the
// key words with the map's random seed (the kernel uses jhash with a
// random seed), cheaper than hash/maphash on the short keys of a switch.
func (h *htab) hash(q []uint64) (b uint64, tag uint32) {
	x := h.seed[0] ^ uint64(len(q))
	for i := 0; i < len(q); i += 2 {
		y := h.seed[2]
		if i+1 < len(q) {
			y ^= q[i+1]
		}
		hi, lo := bits.Mul64(q[i]^h.seed[1]^x, y)
		x = hi ^ lo
	}
	hi, lo := bits.Mul64(x^h.seed[2], h.seed[1]^0x9e3779b97f4a7c15)
	hv := hi ^ lo
	return hv & h.mask, uint32(hv >> 32)
}

// keyWords returns key as words in buf (or a larger array on the stack).
func (h *htab) keyWords(key []byte, buf *[4]uint64) []uint64 {
	if h.kw <= len(buf) {
		return appendWords(buf[:0], key)
	}
	return appendWords(make([]uint64, 0, MaxKeySize/8), key)
}

// find returns key's slot or noSlot, without taking a lock in the common case.
func (h *htab) find(key []byte) uint32 {
	var buf [4]uint64
	q := h.keyWords(key, &buf)
	b, tag := h.hash(q)
	for range walkRetries {
		if s, ok := h.walk(b, tag, q); ok {
			return s
		}
	}
	l := h.lock(b)
	l.Lock()
	s, _ := h.findLocked(b, tag, q)
	l.Unlock()
	return s
}

func (h *htab) LookupAddr(key []byte, cpu int) uint64 {
	if len(key) != int(h.spec.KeySize) {
		return 0
	}
	s := h.find(key)
	if s == noSlot {
		return 0
	}
	if h.lru {
		// The kernel's bpf_lru_node_set_ref: a store only when clear, so
		// that hot entries cost readers no cache-line writes.
		if ref := &h.ref[s]; atomic.LoadUint32(ref) == 0 {
			atomic.StoreUint32(ref, 1)
		}
	}
	if h.percpu {
		return h.valAddr(s, cpuIndex(cpu, h.ncpu))
	}
	return h.valAddr(s, 0)
}

func (h *htab) valueSize() int {
	if h.percpu {
		return perCPUValueSize(h.spec.ValueSize, h.ncpu)
	}
	return h.vsize
}

// Lookup returns a copy of key's value that no concurrent Update tore. As
// in Linux, a control-plane lookup does not refresh an LRU element.
func (h *htab) Lookup(key []byte) ([]byte, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	if len(key) != int(h.spec.KeySize) {
		return nil, ErrBadKey
	}
	out := make([]byte, h.valueSize())
	pad := (h.vsize + 7) &^ 7
	for {
		s := h.find(key)
		if s == noSlot {
			return nil, ErrKeyNotExist
		}
		r := h.rec(s)
		m := atomic.LoadUint64(&r[recMeta])
		for spin := 0; ; spin++ {
			v := atomic.LoadUint64(&h.vseq[s])
			if v&1 != 0 {
				if spin > 64 {
					runtime.Gosched()
				}
				continue
			}
			for c := 0; c < h.ncpu; c++ {
				loadBytes(out[c*pad:c*pad+h.vsize], h.val(s, c))
			}
			if atomic.LoadUint64(&h.vseq[s]) == v {
				break
			}
		}
		// The slot may have been reused for another key while we copied.
		if atomic.LoadUint64(&r[recMeta]) == m && keyEqual(r[recHdr:], key) {
			return out, nil
		}
	}
}

func (h *htab) Update(key, value []byte, flags uint64) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if len(value) != h.valueSize() {
		return ErrBadValue
	}
	return h.update(key, value, flags, -1)
}

func (h *htab) UpdateFrom(key, value []byte, flags uint64, cpu int) error {
	if len(value) != h.vsize {
		return ErrBadValue
	}
	if h.spec.Flags&FlagRdOnlyProg != 0 {
		return errReadOnly
	}
	if h.percpu {
		return h.update(key, value, flags, cpuIndex(cpu, h.ncpu))
	}
	return h.update(key, value, flags, -1)
}

// writeValue stores value into slot s: every CPU's slot from a
// control-plane value (cpu < 0), or one CPU's slot; for a new per-CPU
// element written by one CPU, the other CPUs' slots are zeroed (Linux).
func (h *htab) writeValue(s uint32, value []byte, cpu int, fresh bool) {
	v := atomic.LoadUint64(&h.vseq[s])
	atomic.StoreUint64(&h.vseq[s], v+1)
	switch {
	case !h.percpu:
		storeBytes(h.val(s, 0), value)
	case cpu < 0:
		pad := (h.vsize + 7) &^ 7
		for c := 0; c < h.ncpu; c++ {
			storeBytes(h.val(s, c), value[c*pad:c*pad+h.vsize])
		}
	default:
		for c := 0; c < h.ncpu; c++ {
			switch {
			case c == cpu:
				storeBytes(h.val(s, c), value)
			case fresh:
				zeroWords(h.val(s, c))
			}
		}
	}
	atomic.StoreUint64(&h.vseq[s], v+2)
}

func (h *htab) update(key, value []byte, flags uint64, cpu int) error {
	if err := checkFlags(flags); err != nil {
		return err
	}
	if len(key) != int(h.spec.KeySize) {
		return ErrBadKey
	}
	var buf [4]uint64
	q := h.keyWords(key, &buf)
	b, tag := h.hash(q)
	l := h.lock(b)
	l.Lock()
	defer l.Unlock()
	if s, _ := h.findLocked(b, tag, q); s != noSlot {
		if flags == UpdateNoExist {
			return ErrKeyExist
		}
		h.writeValue(s, value, cpu, false)
		if h.lru {
			h.lruTouch(s)
		}
		return nil
	}
	if flags == UpdateExist {
		return ErrKeyNotExist
	}
	s, ok := h.pop()
	if !ok {
		if !h.lru {
			return ErrFull
		}
		s = h.evict()
	}
	r := h.rec(s)
	m := atomic.LoadUint64(&r[recMeta])
	seq := uint32(m)
	atomic.StoreUint64(&r[recMeta], m&^0xffffffff|uint64(seq+1)) // odd: being rewritten
	storeBytes(r[recHdr:], key)
	atomic.StoreUint64(&r[recNext], uint64(h.heads[b]))
	if h.lru {
		atomic.StoreUint32(&h.ref[s], 0)
	}
	h.writeValue(s, value, cpu, true)
	atomic.StoreUint64(&r[recMeta], uint64(tag)<<32|uint64(seq+2))
	atomic.StoreUint32(&h.heads[b], s) // publish
	h.count.Add(1)
	if h.lru {
		h.lruPushTail(s)
	}
	return nil
}

func (h *htab) Delete(key []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if len(key) != int(h.spec.KeySize) {
		return ErrBadKey
	}
	var buf [4]uint64
	q := h.keyWords(key, &buf)
	b, tag := h.hash(q)
	l := h.lock(b)
	l.Lock()
	defer l.Unlock()
	s, prev := h.findLocked(b, tag, q)
	if s == noSlot {
		return ErrKeyNotExist
	}
	h.unlink(b, s, prev)
	if h.lru {
		h.lruRemove(s)
	}
	h.push(s)
	return nil
}

// unlink removes slot s from bucket b's chain (lock held). Readers on s
// continue along its unchanged next link.
func (h *htab) unlink(b uint64, s, prev uint32) {
	next := uint32(h.rec(s)[recNext])
	if prev == noSlot {
		atomic.StoreUint32(&h.heads[b], next)
	} else {
		atomic.StoreUint64(&h.rec(prev)[recNext], uint64(next))
	}
	h.count.Add(-1)
}

func (h *htab) pop() (uint32, bool) {
	for {
		old := h.free.Load()
		top := uint32(old)
		if top == 0 {
			return 0, false
		}
		next := atomic.LoadUint32(&h.freeNext[top-1])
		if h.free.CompareAndSwap(old, (old>>32+1)<<32|uint64(next)) {
			return top - 1, true
		}
	}
}

func (h *htab) push(s uint32) {
	for {
		old := h.free.Load()
		atomic.StoreUint32(&h.freeNext[s], uint32(old))
		if h.free.CompareAndSwap(old, (old>>32+1)<<32|uint64(s+1)) {
			return
		}
	}
}

// LRU order (locks[0] held): slots from least to most recently inserted or
// updated; eviction gives referenced slots a second chance (CLOCK), which
// is how the kernel approximates LRU too.

func (h *htab) lruPushTail(s uint32) {
	h.lprev[s], h.lnext[s] = h.ltail, noSlot
	if h.ltail == noSlot {
		h.lhead = s
	} else {
		h.lnext[h.ltail] = s
	}
	h.ltail = s
}

func (h *htab) lruRemove(s uint32) {
	p, n := h.lprev[s], h.lnext[s]
	if p == noSlot {
		h.lhead = n
	} else {
		h.lnext[p] = n
	}
	if n == noSlot {
		h.ltail = p
	} else {
		h.lprev[n] = p
	}
}

func (h *htab) lruTouch(s uint32) {
	h.lruRemove(s)
	h.lruPushTail(s)
	atomic.StoreUint32(&h.ref[s], 0)
}

// evict frees and returns the least recently used slot: the oldest slot
// not referenced since it was last considered. At most one pass over the
// map: after it every reference bit is clear.
func (h *htab) evict() uint32 {
	for range h.nslots + 1 {
		s := h.lhead
		ref := &h.ref[s]
		if atomic.LoadUint32(ref) == 0 {
			break
		}
		atomic.StoreUint32(ref, 0)
		h.lruRemove(s)
		h.lruPushTail(s)
	}
	s := h.lhead
	h.lruRemove(s)
	r := h.rec(s)
	// Recompute the victim's bucket from its key.
	q := r[recHdr : recHdr+h.kw]
	b, tag := h.hash(q)
	_, prev := h.findLocked(b, tag, q)
	h.unlink(b, s, prev)
	return s
}

// NextKey follows bucket order, then chain order (newest first), as Linux.
// A key that is not in the map restarts from the first key.
func (h *htab) NextKey(key []byte) ([]byte, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	start := uint64(0)
	if key != nil {
		if len(key) != int(h.spec.KeySize) {
			return nil, ErrBadKey
		}
		var buf [4]uint64
		q := h.keyWords(key, &buf)
		b, tag := h.hash(q)
		l := h.lock(b)
		l.Lock()
		s, _ := h.findLocked(b, tag, q)
		if s != noSlot {
			if n := uint32(h.rec(s)[recNext]); n&nullsBit == 0 {
				out := h.keyOf(n)
				l.Unlock()
				return out, nil
			}
			start = b + 1
		}
		l.Unlock()
	}
	for b := start; b <= h.mask; b++ {
		if atomic.LoadUint32(&h.heads[b])&nullsBit != 0 {
			continue
		}
		l := h.lock(b)
		l.Lock()
		if s := h.heads[b]; s&nullsBit == 0 {
			out := h.keyOf(s)
			l.Unlock()
			return out, nil
		}
		l.Unlock()
	}
	return nil, ErrKeyNotExist
}

func (h *htab) keyOf(s uint32) []byte {
	out := make([]byte, h.spec.KeySize)
	loadBytes(out, h.rec(s)[recHdr:])
	return out
}
