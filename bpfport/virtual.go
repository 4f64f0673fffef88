package bpfport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// VirtualConfig configures a pair of virtual ports. The zero value means
// defaults.
type VirtualConfig struct {
	// Queues is the number of queues per direction (default 1).
	Queues int
	// RingSize is the number of frame slots per queue and direction
	// (default 1024, rounded up to a power of two).
	RingSize int
	// MTU sets the slot size: MTU + 18 bytes (Ethernet header and a VLAN
	// tag). Default 1500. Longer frames are dropped and counted.
	MTU int
}

func (c VirtualConfig) withDefaults() VirtualConfig {
	if c.Queues <= 0 {
		c.Queues = 1
	}
	if c.RingSize <= 0 {
		c.RingSize = 1024
	}
	n := 1
	for n < c.RingSize {
		n <<= 1
	}
	c.RingSize = n
	if c.MTU <= 0 {
		c.MTU = 1500
	}
	return c
}

// Virtual is one end of an in-memory port pair: frames sent on queue q of
// one end are received on queue q of the other. Each queue and direction is
// a lock-free single-producer single-consumer ring of fixed slots; SendBatch
// copies frames into slots, RecvBatch returns views of them (zero copy).
//
// Closing one end makes the other end's SendBatch fail and its RecvBatch
// return the frames still queued, then an error wrapping ErrLinkGone.
type Virtual struct {
	name   string
	mtu    int
	rx     []*vring // rings this end consumes
	tx     []*vring // rings this end produces into (the peer's rx)
	txMu   []paddedMutex
	closed atomic.Bool
	stats  []queueStats
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

// queueStats are the counters of one queue, updated once per batch.
type queueStats struct {
	rxPackets, rxBytes, rxOversize atomic.Uint64
	txPackets, txBytes, txOversize atomic.Uint64
	txRingFull, txErrors           atomic.Uint64
	rxOffload, txSegmented         atomic.Uint64
	rxBadOffload                   atomic.Uint64
	_                              [40]byte
}

func sumStats(qs []queueStats) Stats {
	var s Stats
	for i := range qs {
		q := &qs[i]
		s.RxPackets += q.rxPackets.Load()
		s.RxBytes += q.rxBytes.Load()
		s.RxOversize += q.rxOversize.Load()
		s.TxPackets += q.txPackets.Load()
		s.TxBytes += q.txBytes.Load()
		s.TxOversize += q.txOversize.Load()
		s.TxRingFull += q.txRingFull.Load()
		s.TxErrors += q.txErrors.Load()
		s.RxOffload += q.rxOffload.Load()
		s.TxSegmented += q.txSegmented.Load()
		s.RxBadOffload += q.rxBadOffload.Load()
	}
	return s
}

// vring is a single-producer single-consumer ring of fixed-size slots.
type vring struct {
	tail atomic.Uint64 // written by the producer
	_    [56]byte
	head atomic.Uint64 // written by the consumer
	_    [56]byte

	// consumer side
	held       uint64 // slots lent to the caller by the last receive
	waiting    atomic.Bool
	wakeReq    atomic.Bool
	armed      atomic.Bool // the consumer waits for notify
	sig        chan struct{}
	notify     int // eventfd the switch polls, -1 where there is none
	_          [24]byte
	producerGo atomic.Bool // the producing end was closed

	mask uint64
	slot int
	data []byte
	lens []int32
	ts   []int64
}

func newVring(size, slot int) *vring {
	r := &vring{
		sig:    make(chan struct{}, 1),
		notify: newNotifyFD(),
		mask:   uint64(size - 1),
		slot:   slot,
		data:   make([]byte, size*slot),
		lens:   make([]int32, size),
		ts:     make([]int64, size),
	}
	closeNotifyWhenUnused(r)
	return r
}

func (r *vring) signal() {
	select {
	case r.sig <- struct{}{}:
	default:
	}
}

// kick tells a consumer waiting on the ring (RecvBatch, or the switch
// polling notify) that there is something to see.
func (r *vring) kick() {
	if r.waiting.Load() {
		r.signal()
	}
	if r.armed.Load() && r.armed.CompareAndSwap(true, false) {
		notifySignal(r.notify)
	}
}

// NewVirtualPair returns two connected virtual ports named nameA and nameB.
func NewVirtualPair(nameA, nameB string, cfg VirtualConfig) (*Virtual, *Virtual) {
	cfg = cfg.withDefaults()
	slot := (cfg.MTU + 18 + 63) &^ 63
	ab := make([]*vring, cfg.Queues)
	ba := make([]*vring, cfg.Queues)
	for i := range ab {
		ab[i] = newVring(cfg.RingSize, slot)
		ba[i] = newVring(cfg.RingSize, slot)
	}
	a := &Virtual{name: nameA, mtu: cfg.MTU, rx: ba, tx: ab,
		txMu: make([]paddedMutex, cfg.Queues), stats: make([]queueStats, cfg.Queues)}
	b := &Virtual{name: nameB, mtu: cfg.MTU, rx: ab, tx: ba,
		txMu: make([]paddedMutex, cfg.Queues), stats: make([]queueStats, cfg.Queues)}
	return a, b
}

// Name returns the port's name.
func (p *Virtual) Name() string { return p.name }

// NumQueues returns the number of queues.
func (p *Virtual) NumQueues() int { return len(p.rx) }

// MTU returns the configured MTU.
func (p *Virtual) MTU() int { return p.mtu }

// Up reports whether both ends are open.
func (p *Virtual) Up() bool { return !p.closed.Load() && !p.rx[0].producerGo.Load() }

// Stats returns the port's counters.
func (p *Virtual) Stats() Stats { return sumStats(p.stats) }

// Caps implements Port: a virtual port takes finished frames only; frames
// with offloads are finished and segmented in software on send.
func (p *Virtual) Caps() Caps { return 0 }

// PollFD implements Port: an eventfd signalled when frames arrive while
// the consumer is armed (-1 where eventfds do not exist).
func (p *Virtual) PollFD(q int) int {
	if uint(q) >= uint(len(p.rx)) {
		return -1
	}
	return p.rx[q].notify
}

// Release implements Port.
func (p *Virtual) Release(q int) {
	if uint(q) < uint(len(p.rx)) {
		p.rx[q].release()
	}
}

// release hands the slots lent by the last receive back to the producer.
func (r *vring) release() uint64 {
	head := r.head.Load()
	if r.held != 0 {
		head += r.held
		r.held = 0
		r.head.Store(head)
	}
	return head
}

// Arm implements Port.
func (p *Virtual) Arm(q int) bool {
	if uint(q) >= uint(len(p.rx)) {
		return false
	}
	r := p.rx[q]
	head := r.release()
	notifyDrain(r.notify)
	r.armed.Store(true)
	if r.tail.Load() != head || p.closed.Load() || r.producerGo.Load() || r.wakeReq.Load() {
		r.armed.Store(false)
		return false
	}
	return true
}

// TryRecv implements Port.
func (p *Virtual) TryRecv(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.rx)) {
		return 0, badQueue(p.name, q, len(p.rx))
	}
	if p.closed.Load() {
		return 0, ErrClosed
	}
	r := p.rx[q]
	head := r.release()
	if n := p.take(q, r, head, b); n > 0 {
		return n, nil
	}
	if r.producerGo.Load() {
		if r.tail.Load() != head {
			return p.take(q, r, head, b), nil
		}
		return 0, fmt.Errorf("virtual port %s: peer closed: %w", p.name, ErrLinkGone)
	}
	return 0, nil
}

// take lends the frames between head and the ring's tail.
func (p *Virtual) take(q int, r *vring, head uint64, b *Batch) int {
	avail := r.tail.Load() - head
	if avail == 0 {
		return 0
	}
	n := min(avail, uint64(b.Len()))
	var bytes uint64
	for i := uint64(0); i < n; i++ {
		idx := (head + i) & r.mask
		off := int(idx) * r.slot
		l := int(r.lens[idx])
		b.Frames[i] = r.data[off : off+l : off+l]
		b.Timestamps[i] = r.ts[idx]
		b.Offloads[i] = Offload{}
		bytes += uint64(l)
	}
	r.held = n
	st := &p.stats[q]
	st.rxPackets.Add(n)
	st.rxBytes.Add(bytes)
	return int(n)
}

// RecvBatch implements Port.
func (p *Virtual) RecvBatch(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.rx)) {
		return 0, badQueue(p.name, q, len(p.rx))
	}
	r := p.rx[q]
	for spins := 0; ; spins++ {
		n, err := p.TryRecv(q, b)
		if n > 0 || err != nil {
			return n, err
		}
		if r.wakeReq.Swap(false) {
			return 0, nil
		}
		if spins < 64 {
			continue // a producer on another core is likely about to publish
		}
		// Park: announce, re-check, then sleep until signalled.
		r.waiting.Store(true)
		if r.tail.Load() == r.head.Load() && !r.wakeReq.Load() && !p.closed.Load() && !r.producerGo.Load() {
			<-r.sig
		}
		r.waiting.Store(false)
	}
}

// SendBatch implements Port. It returns n such that frames[:n] were
// consumed: copied into the peer's ring (a frame with offloads finished and
// segmented on the way), or dropped and counted as TxOversize. frames[n:]
// were refused because the ring is full.
func (p *Virtual) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	if uint(q) >= uint(len(p.tx)) {
		return 0, badQueue(p.name, q, len(p.tx))
	}
	if p.closed.Load() {
		return 0, ErrClosed
	}
	r := p.tx[q]
	if p.rx[0].producerGo.Load() { // peer closed
		return 0, fmt.Errorf("virtual port %s: peer closed: %w", p.name, ErrLinkGone)
	}
	mu := &p.txMu[q]
	mu.Lock()
	tail := r.tail.Load()
	free := uint64(len(r.lens)) - (tail - r.head.Load())
	if free == 0 && len(frames) > 0 && plainFits(frames[0], offloadAt(offl, 0), p.mtu) {
		// Full: refuse at once (no clock read, no walk over the batch).
		mu.Unlock()
		p.stats[q].txRingFull.Add(uint64(len(frames)))
		return 0, nil
	}
	now := time.Now().UnixNano()
	var sent, slots, bytes, oversize, errs, segmented uint64
	i := 0
	for ; i < len(frames); i++ {
		f := frames[i]
		o := offloadAt(offl, i)
		if !plainFits(f, o, p.mtu) && !TxAccepts(f, o, p.mtu) {
			oversize++
			continue
		}
		if !o.Pending() {
			if slots == free {
				break
			}
			idx := (tail + slots) & r.mask
			off := int(idx) * r.slot
			copy(r.data[off:off+len(f)], f)
			r.lens[idx] = int32(len(f))
			r.ts[idx] = now
			slots++
		} else {
			nseg := SoftSegments(f, o)
			if nseg == 0 {
				errs++
				continue
			}
			if slots+uint64(nseg) > free {
				break
			}
			for s := 0; s < nseg; s++ {
				idx := (tail + slots) & r.mask
				off := int(idx) * r.slot
				l := SoftSegmentLen(f, o, s)
				WriteSoftSegment(r.data[off:off+l], f, o, s)
				r.lens[idx] = int32(l)
				r.ts[idx] = now
				slots++
			}
			if o.GSO() {
				segmented++
			}
		}
		sent++
		bytes += uint64(len(f))
	}
	if slots > 0 {
		r.tail.Store(tail + slots)
	}
	mu.Unlock()
	if slots > 0 {
		r.kick()
	}
	st := &p.stats[q]
	st.txPackets.Add(sent)
	st.txBytes.Add(bytes)
	if oversize > 0 {
		st.txOversize.Add(oversize)
	}
	if errs > 0 {
		st.txErrors.Add(errs)
	}
	if segmented > 0 {
		st.txSegmented.Add(segmented)
	}
	if rest := len(frames) - i; rest > 0 {
		st.txRingFull.Add(uint64(rest))
	}
	return i, nil
}

// Wake makes blocked RecvBatch calls return 0, nil.
func (p *Virtual) Wake() {
	for _, r := range p.rx {
		r.wakeReq.Store(true)
		r.signal()
		notifySignal(r.notify)
	}
}

// Close closes this end. The peer sees ErrLinkGone.
func (p *Virtual) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	for _, r := range p.rx {
		r.signal()
		notifySignal(r.notify)
	}
	for _, r := range p.tx {
		r.producerGo.Store(true)
		r.signal()
		notifySignal(r.notify)
	}
	return nil
}
