package maps

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/vm"
)

// RingBuffer is a BPF ring buffer (BPF_MAP_TYPE_RINGBUF): programs produce
// variable-size records with bpf_ringbuf_output or reserve/submit/discard,
// one consumer (the CLI, through the daemon) reads them in order.
//
// Producers never block: when the record does not fit, reserve returns
// NULL and output -EAGAIN, and the drop is counted. Records are 8-byte
// aligned, preceded by an 8-byte header the program cannot reach. Unlike
// Linux, which maps the data area twice so that a record may wrap around,
// a record that would wrap is placed at the start and the end of the area
// is skipped: a record of up to half the area always fits an empty ring
// buffer, a larger one (up to the size less 8) only where it does not wrap.
//
// A program that reserves a record and never submits nor discards it (the
// kernel's verifier would refuse it; ours does not) would stall the
// consumer: a record still busy AbandonAfter after the consumer first saw
// it is dropped and counted as abandoned.
type RingBuffer struct {
	spec Spec
	size uint64
	mask uint64
	data []uint64
	base uint64

	mu   sync.Mutex    // producers
	prod atomic.Uint64 // producer position (bytes, increasing)
	cons atomic.Uint64 // consumer position

	cmu       sync.Mutex // the consumer
	buf       []byte
	busyPos   uint64
	busySince time.Time

	notify    chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	records, dropped, discarded, abandoned, corrupt, consumed atomic.Uint64
}

// AbandonAfter is how long a reserved record may stay unsubmitted before
// the consumer drops it.
var AbandonAfter = time.Second

// Record header bits (low word); the high word holds position/8, to detect
// a header that was overwritten.
const (
	rbBusy    = 1 << 31
	rbDiscard = 1 << 30
	rbLenMask = rbDiscard - 1
	rbHdr     = 8
)

// Ring buffer submit/output flags, as in Linux.
const (
	RingNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	RingForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
)

func newRingBuffer(spec Spec) *RingBuffer {
	r := &RingBuffer{
		spec:   spec,
		size:   uint64(spec.MaxEntries),
		mask:   uint64(spec.MaxEntries) - 1,
		data:   make([]uint64, spec.MaxEntries/8),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	r.base = addrOf(r.data)
	return r
}

func (r *RingBuffer) Spec() Spec                                   { return r.spec }
func (r *RingBuffer) Regions() []vm.Region                         { return nil }
func (r *RingBuffer) DirectValue(uint32) (uint64, error)           { return 0, ErrNotSupported }
func (r *RingBuffer) LookupAddr([]byte, int) uint64                { return 0 }
func (r *RingBuffer) UpdateFrom([]byte, []byte, uint64, int) error { return ErrNotSupported }
func (r *RingBuffer) Lookup([]byte) ([]byte, error)                { return nil, ErrNotSupported }
func (r *RingBuffer) Update([]byte, []byte, uint64) error          { return ErrNotSupported }
func (r *RingBuffer) Delete([]byte) error                          { return ErrNotSupported }
func (r *RingBuffer) NextKey([]byte) ([]byte, error)               { return nil, ErrNotSupported }

// Close wakes a blocked Read, which then returns ErrClosed once the
// records already submitted are read. Programs may still produce.
func (r *RingBuffer) Close() error {
	r.closeOnce.Do(func() { close(r.done) })
	return nil
}

// contains reports whether addr is inside the data area.
func (r *RingBuffer) contains(addr uint64) bool { return addr-r.base < r.size && addr >= r.base }

// reserve reserves a record of n bytes and returns the address of its
// data, or 0 when it does not fit.
func (r *RingBuffer) reserve(n uint64) uint64 {
	if n == 0 || n > rbLenMask || n+rbHdr > r.size {
		r.dropped.Add(1)
		return 0
	}
	rec := (n + rbHdr + 7) &^ 7
	r.mu.Lock()
	p := r.prod.Load()
	off := p & r.mask
	pad := uint64(0)
	if off+rec > r.size {
		pad = r.size - off
	}
	if p+pad+rec-r.cons.Load() > r.size {
		r.mu.Unlock()
		r.dropped.Add(1)
		return 0
	}
	if pad > 0 {
		atomic.StoreUint64(&r.data[off/8], (p>>3)<<32|(pad-rbHdr)|rbDiscard)
		p += pad
		off = 0
	}
	atomic.StoreUint64(&r.data[off/8], (p>>3)<<32|n|rbBusy)
	r.prod.Store(p + rec)
	r.mu.Unlock()
	return r.base + off + rbHdr
}

// commit submits (or discards) the record whose data is at addr.
func (r *RingBuffer) commit(addr uint64, discard bool, flags uint64) bool {
	off := addr - r.base - rbHdr
	if !r.contains(addr) || off%8 != 0 {
		return false
	}
	h := &r.data[off/8]
	old := atomic.LoadUint64(h)
	if old&rbBusy == 0 {
		return false
	}
	nw := old &^ rbBusy
	if discard {
		nw |= rbDiscard
	}
	if !atomic.CompareAndSwapUint64(h, old, nw) {
		return false // abandoned meanwhile
	}
	if discard {
		r.discarded.Add(1)
	} else {
		r.records.Add(1)
	}
	if flags&RingNoWakeup == 0 {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return true
}

// Output copies data into a new record, as bpf_ringbuf_output. It returns
// false (and counts a drop) when the record does not fit.
func (r *RingBuffer) Output(data []byte, flags uint64) bool {
	a := r.reserve(uint64(len(data)))
	if a == 0 {
		return false
	}
	off := a - r.base
	storeBytes(r.data[off/8:], data)
	return r.commit(a, false, flags)
}

// Poll passes every record submitted so far to fn, in order, without
// blocking, and returns how many it passed. The slice is valid only
// during the call.
func (r *RingBuffer) Poll(fn func(record []byte)) int {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	n := 0
	for {
		rec, ok := r.next()
		if !ok {
			return n
		}
		n++
		fn(rec)
	}
}

// next returns the next record (in r.buf), with cmu held.
func (r *RingBuffer) next() ([]byte, bool) {
	for {
		c, p := r.cons.Load(), r.prod.Load()
		if c >= p {
			return nil, false
		}
		off := c & r.mask
		h := atomic.LoadUint64(&r.data[off/8])
		n := h & rbLenMask
		if uint32(h>>32) != uint32(c>>3) || off+rbHdr+n > r.size {
			// A header was overwritten (a program wrote past an abandoned
			// record's end): give up what is in the ring.
			r.corrupt.Add(1)
			r.cons.Store(p)
			return nil, false
		}
		if h&rbBusy != 0 {
			now := time.Now()
			if r.busyPos != c || r.busySince.IsZero() {
				r.busyPos, r.busySince = c, now
				return nil, false
			}
			if now.Sub(r.busySince) < AbandonAfter {
				return nil, false
			}
			if !atomic.CompareAndSwapUint64(&r.data[off/8], h, h&^rbBusy|rbDiscard) {
				continue
			}
			r.abandoned.Add(1)
			continue
		}
		r.busySince = time.Time{}
		next := c + (n+rbHdr+7)&^7
		if h&rbDiscard != 0 {
			r.cons.Store(next)
			continue
		}
		if cap(r.buf) < int(n) {
			r.buf = make([]byte, n)
		}
		r.buf = r.buf[:n]
		loadBytes(r.buf, r.data[(off+rbHdr)/8:])
		r.cons.Store(next)
		r.consumed.Add(1)
		return r.buf, true
	}
}

// Read returns the next record, waiting for one until ctx is done or the
// ring buffer is closed (then ErrClosed, once every submitted record was
// read). The record is a copy.
func (r *RingBuffer) Read(ctx context.Context) ([]byte, error) {
	tick := time.NewTicker(100 * time.Millisecond) // records submitted without wakeup, abandoned ones
	defer tick.Stop()
	for {
		r.cmu.Lock()
		rec, ok := r.next()
		var out []byte
		if ok {
			out = append([]byte(nil), rec...)
		}
		r.cmu.Unlock()
		if ok {
			return out, nil
		}
		select {
		case <-r.done:
			r.cmu.Lock()
			rec, ok := r.next()
			if ok {
				out = append([]byte(nil), rec...)
			}
			r.cmu.Unlock()
			if ok {
				return out, nil
			}
			return nil, ErrClosed
		default:
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.done:
		case <-r.notify:
		case <-tick.C:
		}
	}
}

// RingStats counts what happened to a ring buffer's records.
type RingStats struct {
	Submitted uint64 // records submitted (bpf_ringbuf_submit or output)
	Consumed  uint64 // records read by the consumer
	Dropped   uint64 // reservations and outputs refused for lack of room
	Discarded uint64 // records discarded by the program
	Abandoned uint64 // reserved records never submitted (dropped by the consumer)
	Corrupt   uint64 // times the consumer found a damaged header and skipped ahead
	Pending   uint64 // bytes produced and not yet consumed
	Size      uint64 // bytes of the data area
}

// Stats returns the ring buffer's counters.
func (r *RingBuffer) Stats() RingStats {
	c := r.cons.Load()
	return RingStats{
		Submitted: r.records.Load(), Consumed: r.consumed.Load(), Dropped: r.dropped.Load(),
		Discarded: r.discarded.Load(), Abandoned: r.abandoned.Load(), Corrupt: r.corrupt.Load(),
		Pending: r.prod.Load() - c, Size: r.size,
	}
}
