package maps

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/govswitch/vswitch/vm"
)

// lpm is a longest-prefix-match trie, the kernel's algorithm (a binary
// trie, path-compressed, with intermediate nodes that hold no value) over
// preallocated node and value slabs.
//
// A key is struct bpf_lpm_trie_key: a host-order u32 prefix length, then
// the data (an address, network order). Writers are serialized by mu and
// bump seq (odd while they change the trie); lock-free readers walk with
// atomic loads, at most max-prefix-length+1 steps, and retry when seq
// moved, taking mu after a few tries. Values live in their own slab with a
// sequence counter each, like the hash map's.
type lpm struct {
	spec    Spec
	dataLen int
	dw      int    // data words
	nw      int    // node words
	maxBits uint32 // data length in bits

	mu    sync.Mutex
	seq   atomic.Uint64
	root  atomic.Uint32 // node+1, 0 for none
	nodes []uint64
	vals  []uint64
	sw    int
	vseqs []seqlock
	count atomic.Int64

	nodeFree []uint32 // under mu
	valFree  []uint32

	regions []vm.Region
	layout  vm.MapLayout
	closed  atomic.Bool
}

// Node words.
const (
	lpmMeta   = 0 // prefix length | flags<<32
	lpmChild0 = 1 // child node+1, 0 for none
	lpmChild1 = 2
	lpmValue  = 3 // value slot (real nodes)
	lpmHdr    = 4

	lpmIntermediate = 1 << 32
	lpmMaxWords     = MaxLPMDataSize / 8
)

func newLPM(spec Spec) *lpm {
	t := &lpm{spec: spec, dataLen: int(spec.KeySize - 4)}
	t.dw = words(t.dataLen)
	t.nw = lpmHdr + t.dw
	t.maxBits = uint32(t.dataLen) * 8
	n := int(spec.MaxEntries)
	t.nodes = make([]uint64, 2*n*t.nw) // real nodes plus at most one fewer intermediate ones
	st := stride(spec.ValueSize)
	t.sw = int(st / 8)
	t.vals = make([]uint64, n*t.sw)
	t.vseqs = make([]seqlock, n)
	adviseHuge(t.nodes)
	adviseHuge(t.vals)
	t.nodeFree = make([]uint32, 0, 2*n)
	for i := 2*n - 1; i >= 0; i-- {
		t.nodeFree = append(t.nodeFree, uint32(i))
	}
	t.valFree = make([]uint32, 0, n)
	for i := n - 1; i >= 0; i-- {
		t.valFree = append(t.valFree, uint32(i))
	}
	t.regions = []vm.Region{{
		Start: addrOf(t.vals), Size: uint64(len(t.vals)) * 8, Stride: st, Elem: uint64(spec.ValueSize),
		Writable: spec.Flags&FlagRdOnlyProg == 0,
	}}
	t.setLayout()
	return t
}

func (t *lpm) Spec() Spec                         { return t.spec }
func (t *lpm) Regions() []vm.Region               { return t.regions }
func (t *lpm) DirectValue(uint32) (uint64, error) { return 0, ErrNotSupported }
func (t *lpm) Close() error                       { t.closed.Store(true); return nil }
func (t *lpm) Len() int                           { return int(t.count.Load()) }

func (t *lpm) node(id uint32) []uint64 {
	o := int(id-1) * t.nw
	return t.nodes[o : o+t.nw : o+t.nw]
}

func (t *lpm) val(slot uint32) []uint64 {
	o := int(slot) * t.sw
	return t.vals[o : o+t.sw : o+t.sw]
}

// query is a key's data as big-endian words, so that bit i of the address
// is bit 63-i%64 of word i/64.
type query [lpmMaxWords]uint64

// parse splits a key into its prefix length and data words, with the bits
// past min(prefix length, data bits) cleared when mask is set.
func (t *lpm) parse(key []byte, q *query, mask bool) uint32 {
	plen := binary.NativeEndian.Uint32(key)
	data := key[4:]
	for i := 0; i < t.dw; i++ {
		if len(data) >= 8*i+8 {
			q[i] = binary.BigEndian.Uint64(data[8*i:])
		} else {
			var b [8]byte
			copy(b[:], data[8*i:])
			q[i] = binary.BigEndian.Uint64(b[:])
		}
	}
	if mask {
		maskWords(q[:t.dw], min(plen, t.maxBits))
	}
	return plen
}

func maskWords(w []uint64, plen uint32) {
	for i := range w {
		switch lo := uint32(i) * 64; {
		case plen >= lo+64:
		case plen <= lo:
			w[i] = 0
		default:
			w[i] &= ^uint64(0) << (64 - (plen - lo))
		}
	}
}

func bitOf(w []uint64, i uint32) int { return int(w[i/64] >> (63 - i%64) & 1) }

// matchLen counts the leading bits, at most limit, that node n shares with q.
func (t *lpm) matchLen(n []uint64, limit uint32, q *query) uint32 {
	var m uint32
	for i := 0; m < limit && i < t.dw; i++ {
		if x := atomic.LoadUint64(&n[lpmHdr+i]) ^ q[i]; x != 0 {
			m += uint32(bits.LeadingZeros64(x))
			break
		}
		m += 64
	}
	return min(m, limit)
}

// walk is the kernel's trie_lookup_elem: the value slot of the longest
// stored prefix of the first plen bits of q, or noSlot. It tolerates
// concurrent writers (the caller validates seq) and stops within
// maxBits+2 steps.
func (t *lpm) walk(plen uint32, q *query) uint32 {
	found := noSlot
	id := t.root.Load()
	for steps := uint32(0); id != 0 && steps <= t.maxBits+1 && int(id) <= len(t.nodes)/t.nw; steps++ {
		n := t.node(id)
		meta := atomic.LoadUint64(&n[lpmMeta])
		np := uint32(meta)
		real := meta&lpmIntermediate == 0
		ml := t.matchLen(n, min(np, plen), q)
		if ml == t.maxBits {
			if real {
				found = uint32(atomic.LoadUint64(&n[lpmValue]))
			}
			break
		}
		if ml < np {
			break
		}
		if real {
			found = uint32(atomic.LoadUint64(&n[lpmValue]))
		}
		id = uint32(atomic.LoadUint64(&n[lpmChild0+bitOf(q[:], np%t.maxBits)]))
	}
	if found != noSlot && found >= t.spec.MaxEntries {
		return noSlot // torn by a writer; the caller retries
	}
	return found
}

func (t *lpm) match(key []byte) uint32 {
	var q query
	plen := t.parse(key, &q, false)
	for range walkRetries {
		s := t.seq.Load()
		if s&1 != 0 {
			continue
		}
		v := t.walk(plen, &q)
		if t.seq.Load() == s {
			return v
		}
	}
	t.mu.Lock()
	v := t.walk(plen, &q)
	t.mu.Unlock()
	return v
}

func (t *lpm) LookupAddr(key []byte, cpu int) uint64 {
	if len(key) != int(t.spec.KeySize) {
		return 0
	}
	v := t.match(key)
	if v == noSlot {
		return 0
	}
	return addrOf(t.vals) + uint64(v)*uint64(t.sw)*8
}

// Lookup is a longest-prefix match too, as in Linux.
func (t *lpm) Lookup(key []byte) ([]byte, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if len(key) != int(t.spec.KeySize) {
		return nil, ErrBadKey
	}
	out := make([]byte, t.spec.ValueSize)
	for {
		s := t.seq.Load()
		v := t.match(key)
		if v == noSlot {
			return nil, ErrKeyNotExist
		}
		sl := &t.vseqs[v]
		vs := sl.readBegin()
		loadBytes(out, t.val(v))
		// Retry if the value was rewritten or the trie changed (the slot
		// may have been freed and reused) while we copied.
		if !sl.readRetry(vs) && t.seq.Load() == s && s&1 == 0 {
			return out, nil
		}
	}
}

// ref names a link: the root (node 0) or a child of a node.
type ref struct {
	node  uint32
	child int
}

func (t *lpm) get(r ref) uint32 {
	if r.node == 0 {
		return t.root.Load()
	}
	return uint32(t.node(r.node)[lpmChild0+r.child])
}

func (t *lpm) set(r ref, id uint32) {
	if r.node == 0 {
		t.root.Store(id)
		return
	}
	atomic.StoreUint64(&t.node(r.node)[lpmChild0+r.child], uint64(id))
}

func (t *lpm) allocNode(plen uint32, q *query, flags uint64, value uint32) uint32 {
	id := t.nodeFree[len(t.nodeFree)-1] + 1
	t.nodeFree = t.nodeFree[:len(t.nodeFree)-1]
	n := t.node(id)
	atomic.StoreUint64(&n[lpmMeta], uint64(plen)|flags)
	atomic.StoreUint64(&n[lpmChild0], 0)
	atomic.StoreUint64(&n[lpmChild1], 0)
	atomic.StoreUint64(&n[lpmValue], uint64(value))
	for i := 0; i < t.dw; i++ {
		atomic.StoreUint64(&n[lpmHdr+i], q[i])
	}
	return id
}

func (t *lpm) freeNode(id uint32) { t.nodeFree = append(t.nodeFree, id-1) }

func (t *lpm) allocValue(value []byte) uint32 {
	v := t.valFree[len(t.valFree)-1]
	t.valFree = t.valFree[:len(t.valFree)-1]
	t.writeValue(v, value)
	return v
}

func (t *lpm) writeValue(v uint32, value []byte) {
	t.vseqs[v].lock()
	storeBytes(t.val(v), value)
	t.vseqs[v].unlock()
}

func (t *lpm) Update(key, value []byte, flags uint64) error {
	if t.closed.Load() {
		return ErrClosed
	}
	return t.UpdateFrom(key, value, flags, 0)
}

// UpdateFrom is Update: an LPM trie has one value per key.
func (t *lpm) UpdateFrom(key, value []byte, flags uint64, _ int) error {
	if err := checkFlags(flags); err != nil {
		return err
	}
	if len(key) != int(t.spec.KeySize) {
		return ErrBadKey
	}
	if len(value) != int(t.spec.ValueSize) {
		return ErrBadValue
	}
	var q query
	plen := t.parse(key, &q, true)
	if plen > t.maxBits {
		return ErrBadKey
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	at := ref{}
	var id, np, ml uint32
	for {
		if id = t.get(at); id == 0 {
			break
		}
		n := t.node(id)
		np = uint32(n[lpmMeta])
		ml = t.matchLen(n, min(np, plen), &q)
		if np != ml || np == plen || np == t.maxBits {
			break
		}
		at = ref{id, bitOf(q[:], np)}
	}
	canAdd := func() error {
		if flags == UpdateExist {
			return ErrKeyNotExist
		}
		if t.count.Load() >= int64(t.spec.MaxEntries) {
			return errTrieFull
		}
		return nil
	}
	if id != 0 && np == ml {
		// The prefix has a node: replace a value or fill an intermediate node.
		n := t.node(id)
		if n[lpmMeta]&lpmIntermediate == 0 {
			if flags == UpdateNoExist {
				return ErrKeyExist
			}
			t.writeValue(uint32(n[lpmValue]), value)
			return nil
		}
		if err := canAdd(); err != nil {
			return err
		}
		v := t.allocValue(value)
		t.seq.Add(1)
		atomic.StoreUint64(&n[lpmValue], uint64(v))
		atomic.StoreUint64(&n[lpmMeta], uint64(np))
		t.seq.Add(1)
		t.count.Add(1)
		return nil
	}
	if err := canAdd(); err != nil {
		return err
	}
	v := t.allocValue(value)
	t.seq.Add(1)
	defer t.seq.Add(1)
	t.count.Add(1)
	nn := t.allocNode(plen, &q, 0, v)
	switch {
	case id == 0: // an empty link
		t.set(at, nn)
	case ml == plen: // the new prefix is an ancestor of node id
		old := t.node(id)
		var od query
		copy(od[:t.dw], old[lpmHdr:])
		atomic.StoreUint64(&t.node(nn)[lpmChild0+bitOf(od[:], ml)], uint64(id))
		t.set(at, nn)
	default: // they diverge after ml bits: join them under an intermediate node
		var od query
		copy(od[:t.dw], t.node(id)[lpmHdr:])
		maskWords(od[:t.dw], ml)
		im := t.allocNode(ml, &od, lpmIntermediate, 0)
		c := t.node(im)
		if bitOf(q[:], ml) == 1 {
			atomic.StoreUint64(&c[lpmChild0], uint64(id))
			atomic.StoreUint64(&c[lpmChild1], uint64(nn))
		} else {
			atomic.StoreUint64(&c[lpmChild0], uint64(nn))
			atomic.StoreUint64(&c[lpmChild1], uint64(id))
		}
		t.set(at, im)
	}
	return nil
}

// Delete removes the exact prefix of key (the kernel's trie_delete_elem).
func (t *lpm) Delete(key []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if len(key) != int(t.spec.KeySize) {
		return ErrBadKey
	}
	var q query
	plen := t.parse(key, &q, true)
	if plen > t.maxBits {
		return ErrKeyNotExist
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	at, up := ref{}, ref{}
	var id, parent, np, ml uint32
	for {
		if id = t.get(at); id == 0 {
			break
		}
		n := t.node(id)
		np = uint32(n[lpmMeta])
		ml = t.matchLen(n, min(np, plen), &q)
		if np != ml || np == plen {
			break
		}
		parent, up = id, at
		at = ref{id, bitOf(q[:], np)}
	}
	if id == 0 || np != plen || np != ml || t.node(id)[lpmMeta]&lpmIntermediate != 0 {
		return ErrKeyNotExist
	}
	n := t.node(id)
	t.seq.Add(1)
	defer t.seq.Add(1)
	t.count.Add(-1)
	t.valFree = append(t.valFree, uint32(n[lpmValue]))
	c0, c1 := uint32(n[lpmChild0]), uint32(n[lpmChild1])
	switch {
	case c0 != 0 && c1 != 0:
		atomic.StoreUint64(&n[lpmMeta], uint64(np)|lpmIntermediate)
	case parent != 0 && t.node(parent)[lpmMeta]&lpmIntermediate != 0 && c0 == 0 && c1 == 0:
		p := t.node(parent)
		other := uint32(p[lpmChild0])
		if other == id {
			other = uint32(p[lpmChild1])
		}
		t.set(up, other)
		t.freeNode(parent)
		t.freeNode(id)
	default:
		t.set(at, c0|c1) // at most one is set
		t.freeNode(id)
	}
	return nil
}

// NextKey walks the trie in postorder, as Linux: more specific prefixes
// before the prefixes that contain them. Keys come back with the bits past
// their prefix length cleared.
func (t *lpm) NextKey(key []byte) ([]byte, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	search := t.root.Load()
	if search == 0 {
		return nil, ErrKeyNotExist
	}
	leftmost := func(id uint32) []byte {
		var next uint32
		for id != 0 {
			n := t.node(id)
			if n[lpmMeta]&lpmIntermediate != 0 {
				id = uint32(n[lpmChild0])
				continue
			}
			next = id
			if id = uint32(n[lpmChild0]); id == 0 {
				id = uint32(t.node(next)[lpmChild1])
			}
		}
		return t.keyOf(next)
	}
	if key == nil {
		return leftmost(search), nil
	}
	if len(key) != int(t.spec.KeySize) {
		return nil, ErrBadKey
	}
	var q query
	plen := t.parse(key, &q, true)
	if plen > t.maxBits {
		return leftmost(search), nil
	}
	stack := make([]uint32, 0, 16)
	var id, ml uint32
	for id = search; id != 0; {
		stack = append(stack, id)
		n := t.node(id)
		np := uint32(n[lpmMeta])
		ml = t.matchLen(n, min(np, plen), &q)
		if np != ml || np == plen {
			break
		}
		id = uint32(n[lpmChild0+bitOf(q[:], np)])
	}
	if id == 0 || uint32(t.node(id)[lpmMeta]) != ml || t.node(id)[lpmMeta]&lpmIntermediate != 0 {
		return leftmost(search), nil
	}
	node := stack[len(stack)-1]
	for k := len(stack) - 1; k > 0; k-- {
		parent := t.node(stack[k-1])
		if uint32(parent[lpmChild0]) == node {
			if right := uint32(parent[lpmChild1]); right != 0 {
				return leftmost(right), nil
			}
		}
		if parent[lpmMeta]&lpmIntermediate == 0 {
			return t.keyOf(stack[k-1]), nil
		}
		node = stack[k-1]
	}
	return nil, ErrKeyNotExist
}

func (t *lpm) keyOf(id uint32) []byte {
	n := t.node(id)
	out := make([]byte, 4+t.dw*8)
	binary.NativeEndian.PutUint32(out, uint32(n[lpmMeta]))
	for i := 0; i < t.dw; i++ {
		binary.BigEndian.PutUint64(out[4+8*i:], n[lpmHdr+i])
	}
	return out[:t.spec.KeySize]
}
