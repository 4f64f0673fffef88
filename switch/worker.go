package vswitch

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/vm"
)

// DropReason says why a frame was dropped.
type DropReason int

// Drop reasons, counted per ingress port (TxFull per egress port).
const (
	DropProgram    DropReason = iota // the program returned 255 or more
	DropNoPort                       // destination slot empty or its port gone
	DropIngress                      // destination is the ingress port
	DropTxFull                       // the destination refused the frame (ring full, error)
	DropFault                        // the program faulted
	DropRunt                         // shorter than an Ethernet header
	DropOversize                     // longer than MTU + headers (a super-frame: its segments)
	DropNoProgram                    // no program installed
	DropBadOffload                   // a super-frame whose headers do not describe it
	NumDropReasons
)

var dropNames = [...]string{
	DropProgram: "program", DropNoPort: "no_port", DropIngress: "ingress",
	DropTxFull: "tx_full", DropFault: "fault", DropRunt: "runt",
	DropOversize: "oversize", DropNoProgram: "no_program", DropBadOffload: "bad_offload",
}

// counter is a single-writer counter: the owning worker adds with Load and
// Store (plain moves on amd64, no lock prefix), readers Load.
type counter struct{ atomic.Uint64 }

func (c *counter) add(n uint64) {
	if n != 0 {
		c.Store(c.Load() + n)
	}
}

type rxCounters struct {
	packets, bytes counter
	drops          [NumDropReasons]counter
	_              [40]byte
}

type txCounters struct {
	packets, bytes, dropped counter
}

// unit is one receive queue of one port: what the epoll set reports and a
// worker holds.
type unit struct {
	id      int32
	port    *port
	q       int
	fd      int
	owner   atomic.Int32 // the worker holding it, -1 when none
	removed atomic.Bool  // its port was detached
	last    int64        // when its holder last had a frame from it (0: never)
	gap     int64        // moving average of the time between its batches
	taken   int64        // when its holder took it from the epoll set
}

// minPoll is the shortest busy-poll window: long enough to catch the
// answer that a frame just sent provokes (a host's kernel answers within
// the sending system call on veth), short enough to cost nothing.
const minPoll = int64(50 * time.Microsecond)

// window is how long u's holder keeps polling it after its last frame:
// the port's busy-poll setting when its frames have been coming at least
// that often (on average), so that the next one is taken without a
// wake-up; minPoll for sparser traffic, which would otherwise keep a
// worker spinning for a frame that is not coming. Never longer than the
// setting.
func (u *unit) window() int64 {
	limit := u.port.busyPoll
	if u.gap <= limit {
		return limit
	}
	return min(minPoll, limit)
}

// sawFrames updates u's arrival statistics for a batch taken at now.
func (u *unit) sawFrames(now int64) {
	if u.last != 0 {
		g := now - u.last
		if u.gap == 0 {
			u.gap = g
		} else {
			u.gap += (g - u.gap) / 4
		}
	}
	u.last = now
}

// unitTable maps epoll ids to units. Slots are written under the switch's
// mutex and read by workers.
type unitTable struct {
	slots [MaxPorts * 64]atomic.Pointer[unit]
	free_ []int32
	next  int32
}

func (t *unitTable) alloc(u *unit) bool {
	var id int32
	if n := len(t.free_); n > 0 {
		id, t.free_ = t.free_[n-1], t.free_[:n-1]
	} else if int(t.next) < len(t.slots) {
		id = t.next
		t.next++
	} else {
		return false
	}
	u.id = id
	t.slots[id].Store(u)
	return true
}

func (t *unitTable) free(id int32) {
	t.slots[id].Store(nil)
	t.free_ = append(t.free_, id)
}

func (t *unitTable) get(id uint64) *unit {
	if id >= uint64(len(t.slots)) {
		return nil
	}
	return t.slots[id].Load()
}

// downList holds queues whose link is down (or that failed): the kernel
// does not signal them, so they are handed to a worker every
// downRecheck until they work again or go away.
type downList struct {
	mu      sync.Mutex
	units   []*unit
	timer   *time.Timer
	stopped bool
}

const downRecheck = 50 * time.Millisecond

func (d *downList) add(s *Switch, u *unit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.units = append(d.units, u)
	if d.timer == nil {
		d.timer = time.AfterFunc(downRecheck, func() { d.kick(s) })
	}
}

// kick hands every listed queue to the epoll set, reported ready at once.
// It holds the switch's mutex, so that no queue is detached (its fd closed
// and perhaps reused) between the check and the re-arm.
func (d *downList) kick(s *Switch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.mu.Lock()
	units := d.units
	d.units = nil
	d.timer = nil
	d.mu.Unlock()
	for _, u := range units {
		if !u.removed.Load() && !s.closed {
			s.pl.Rearm(u.fd, uint64(u.id), true)
		}
	}
}

func (d *downList) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.units = nil
}

// outQueue collects the frames of one batch for one destination.
type outQueue struct {
	frames [][]byte
	offl   []bpfport.Offload
	rings  []uint8
	mixed  bool // frames go to different rings
}

// worker is one goroutine of the pool.
type worker struct {
	s     *Switch
	id    int
	env   *vm.Env
	batch *bpfport.Batch
	// epoch is what the worker saw of Switch.epoch when it began its
	// current round, 0 while it waits.
	epoch atomic.Uint64
	_     [56]byte

	active []*unit
	evs    []bpfport.PollEvent

	tx [MaxPorts]txCounters // by destination

	zeroKey   [4]byte
	runFrames [][]byte          // the frames of a batch the program runs on
	runOff    []bpfport.Offload // their offloads
	res       []vm.FrameResult  // their outcomes
	out       [MaxPorts]*outQueue
	dests     []uint8 // destinations with frames in this batch
}

func newWorker(s *Switch, id int) *worker {
	env := vm.NewEnv()
	env.CPU = id
	n := s.cfg.Batch
	return &worker{s: s, id: id, env: env, batch: bpfport.NewBatch(n), evs: make([]bpfport.PollEvent, 16),
		runFrames: make([][]byte, 0, n), runOff: make([]bpfport.Offload, 0, n), res: make([]vm.FrameResult, n)}
}

// monotonic time in ns, for busy-poll windows.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

// testHookAfterLoad, when set by a test, runs between a worker's load of
// the program and its use, to widen that window.
var testHookAfterLoad func()

// maxHeld bounds the queues one worker holds at once.
const maxHeld = 64

// pollEvery is how often a busy worker looks for queues it does not hold.
const pollEvery = int64(20 * time.Microsecond)

func (w *worker) run() {
	defer w.s.running.Done()
	s := w.s
	var polled int64
	for !s.stopping.Load() {
		if s.spinning.Load() == int32(w.id) && (len(w.active) == 0 || s.inboxN.Load() > 0) {
			w.takeInbox(len(w.active) == 0)
		}
		if len(w.active) == 0 {
			w.waitReady()
			polled = nanotime()
			continue
		}
		w.epoch.Store(s.epoch.Load())
		// Queues this worker does not hold yet: an idle worker parked in
		// the netpoller is woken for them at once; this one looks too,
		// but not at every round (a system call costs more than a round
		// of the queues it holds).
		if now := nanotime(); now-polled >= pollEvery && len(w.active) < maxHeld {
			polled = now
			w.take(s.pl.Poll(w.evs[:min(len(w.evs), maxHeld-len(w.active))]))
		}
		if w.round() == 0 {
			// Busy-polling: let other goroutines of this P, and other
			// threads of this CPU, run.
			runtime.Gosched()
			bpfport.YieldCPU()
		}
	}
	w.epoch.Store(0)
	for _, u := range w.active {
		u.owner.Store(-1)
	}
	w.active = w.active[:0]
}

// waitReady parks the worker until a queue is ready (or the switch stops),
// and takes it.
func (w *worker) waitReady() {
	s := w.s
	w.epoch.Store(0)
	s.idle.Add(1)
	defer s.idle.Add(-1)
	_ = s.pl.Wait(func() bool {
		if s.stopping.Load() {
			return true
		}
		// Publish the epoch before looking at the events: an id seen here
		// must still name its unit when take looks it up.
		w.epoch.Store(s.epoch.Load())
		if n := s.pl.Poll(w.evs[:1]); n > 0 && w.take(n) > 0 {
			return true
		}
		w.epoch.Store(0)
		return s.stopping.Load()
	})
}

// take adopts the units of the first n events; it returns how many.
func (w *worker) take(n int) int {
	got := 0
	now := nanotime()
	for i := 0; i < n; i++ {
		id := bpfport.EventID(&w.evs[i])
		if id == bpfport.WakeID {
			continue
		}
		u := w.s.units.get(id)
		if u == nil || u.removed.Load() || !u.owner.CompareAndSwap(-1, int32(w.id)) {
			continue
		}
		u.taken = now
		w.active = append(w.active, u)
		got++
	}
	return got
}

// round serves each held queue once and returns how many had frames.
func (w *worker) round() int {
	s := w.s
	now := nanotime()
	busy, had := 0, 0
	for i := 0; i < len(w.active); {
		u := w.active[i]
		if u.removed.Load() {
			w.drop(i)
			continue
		}
		io := *u.port.io.Load()
		n, err := io.TryRecv(u.q, w.batch)
		if n > 0 {
			w.process(u.port, w.batch.Frames[:n], w.batch.Offloads[:n])
			u.sawFrames(now)
			had++
			// A worker holding two queues that both keep it busy (each
			// gave a full batch: frames are waiting) while another worker
			// waits hands one over. Queues that merely had frames stay:
			// a request on one and its reply on the other are served by
			// one worker without a wake-up.
			if n == w.batch.Len() {
				busy++
			}
			if busy > 1 && s.idle.Load() > 0 {
				io.Release(u.q)
				w.drop(i)
				s.pl.Rearm(u.fd, uint64(u.id), true)
				continue
			}
			i++
			continue
		}
		if err != nil {
			w.drop(i)
			w.recvError(u, err)
			continue
		}
		if now-max(u.last, u.taken) >= u.window() {
			if io.Arm(u.q) {
				w.drop(i)
				s.pl.Rearm(u.fd, uint64(u.id), false)
				continue
			}
			i++ // frames arrived meanwhile
			continue
		}
		// An empty queue within its window: one worker at a time polls
		// such queues, so that two workers never spin on two CPUs (which
		// would leave none to the hosts on a small machine); another
		// worker's go to it.
		if s.spinning.Load() != int32(w.id) {
			io.Release(u.q)
			w.drop(i)
			if !s.handToSpinner(u, w.id) {
				w.adopt(u, now) // this worker is the spinner now
			}
			continue
		}
		i++
	}
	return had
}

// handToSpinner gives an empty queue within its busy-poll window to the
// worker that polls such queues. If there is none, worker id becomes it
// and false is returned: the caller keeps the queue.
func (s *Switch) handToSpinner(u *unit, id int) bool {
	s.spinMu.Lock()
	defer s.spinMu.Unlock()
	if sp := s.spinning.Load(); sp >= 0 && sp != int32(id) {
		s.inbox = append(s.inbox, u)
		s.inboxN.Store(int32(len(s.inbox)))
		return true
	}
	s.spinning.Store(int32(id))
	return false
}

// takeInbox adopts the queues handed to this worker as the spinner. With
// leave, a spinner that finds none stops being the spinner.
func (w *worker) takeInbox(leave bool) {
	s := w.s
	s.spinMu.Lock()
	in := s.inbox
	s.inbox = s.inbox[len(s.inbox):]
	s.inboxN.Store(0)
	if leave && len(in) == 0 && s.spinning.Load() == int32(w.id) {
		s.spinning.Store(-1)
	}
	s.spinMu.Unlock()
	now := nanotime()
	for _, u := range in {
		if !u.removed.Load() {
			w.adopt(u, now)
		}
	}
	clear(in)
}

// adopt takes u (not in the epoll set, not held) into the active set.
func (w *worker) adopt(u *unit, now int64) {
	if u.owner.CompareAndSwap(-1, int32(w.id)) {
		u.taken = now
		w.active = append(w.active, u)
	}
}

// drop stops holding active[i] (order is not kept).
func (w *worker) drop(i int) {
	u := w.active[i]
	last := len(w.active) - 1
	w.active[i] = w.active[last]
	w.active[last] = nil
	w.active = w.active[:last]
	u.owner.Store(-1)
}

func (w *worker) recvError(u *unit, err error) {
	s := w.s
	switch {
	case errors.Is(err, bpfport.ErrClosed):
		// Being detached.
	case errors.Is(err, bpfport.ErrLinkGone):
		s.markGone(u.port, err)
	case errors.Is(err, bpfport.ErrLinkDown):
		if s.faultLg.allow(5 * time.Second) {
			s.log.Warn("port link is down; waiting for it to come back", "port", u.port.name)
		}
		s.down.add(s, u)
	default:
		if s.faultLg.allow(5 * time.Second) {
			s.log.Warn("receive error", "port", u.port.name, "queue", u.q, "err", err.Error())
		}
		s.down.add(s, u)
	}
}

// process runs the program on a batch of frames from in and sends them
// on. It does not allocate once every destination has been seen.
func (w *worker) process(in *port, frames [][]byte, offl []bpfport.Offload) {
	rx := &in.rx[w.id]
	var drops [NumDropReasons]uint64
	var rxBytes uint64
	for _, f := range frames {
		rxBytes += uint64(len(f))
	}
	rx.packets.add(uint64(len(frames)))
	rx.bytes.add(rxBytes)

	inst := w.s.prog.Load()
	if testHookAfterLoad != nil {
		testHookAfterLoad()
	}
	if inst == nil {
		rx.drops[DropNoProgram].add(uint64(len(frames)))
		return
	}
	// Runts and oversize frames never reach the program.
	run, runOff := w.runFrames[:0], w.runOff[:0]
	maxFrame := int(in.maxFrame.Load())
	for k, f := range frames {
		o := offl[k]
		if len(f) < MinFrame {
			drops[DropRunt]++
			continue
		}
		if l := len(f); l > maxFrame || o.GSO() {
			wl := bpfport.WireLen(f, o)
			if wl < 0 {
				drops[DropBadOffload]++
				continue
			}
			if wl > maxFrame {
				// The MTU may have been raised since attach.
				if !in.refreshMTU(nanotime()) || wl > int(in.maxFrame.Load()) {
					drops[DropOversize]++
					continue
				}
				maxFrame = int(in.maxFrame.Load())
			}
		}
		run = append(run, f)
		runOff = append(runOff, o)
	}
	pc := &inst.counters[w.id]
	ingress := in.idx
	env := w.env
	// One clock read per batch: bpf_ktime_get_ns returns the batch's time.
	env.Clock = vm.Ktime()
	env.FloodSlot = 0
	if fm := inst.prog.FloodMap; fm != nil {
		env.FloodSlot = fm.LookupAddr(w.zeroKey[:], w.id)
	}
	res := w.res[:len(run)]
	env.RunFrames(inst.prog.Runner, run, uint32(ingress), res)
	var insns uint64
	for k, f := range run {
		r := &res[k]
		insns += r.Executed
		if r.Failed() {
			drops[DropFault]++
			if r.Kind != 0 {
				pc.faults[r.Kind].Store(pc.faults[r.Kind].Load() + 1)
			}
			w.warnFault(inst, r)
			continue
		}
		o := runOff[k]
		switch ret := r.R0; {
		case ret < MaxPorts:
			dst := int(ret)
			if dst == ingress {
				drops[DropIngress]++
				continue
			}
			p := w.s.ports[dst].Load()
			if p == nil || p.gone.Load() {
				drops[DropNoPort]++
				continue
			}
			w.enqueue(p, f, o, r.RingNr)
		case ret == Flood:
			set := r.Flood
			all := set == [4]uint64{}
			for _, p := range *w.s.active.Load() {
				if p.idx != ingress && (all || set[p.idx>>6]>>(p.idx&63)&1 != 0) {
					w.enqueue(p, f, o, r.RingNr)
				}
			}
		default:
			drops[DropProgram]++
		}
	}
	clear(run) // no references to frames kept past the batch
	pc.runs.Store(pc.runs.Load() + uint64(len(run)))
	pc.insns.Store(pc.insns.Load() + insns)
	for r, n := range drops {
		rx.drops[r].add(n)
	}
	w.flush()
}

func (w *worker) warnFault(p *installed, r *vm.FrameResult) {
	if !w.s.faultLg.allow(5 * time.Second) {
		return
	}
	w.s.log.Warn("forwarding program fault (frame dropped; further faults are counted, warnings rate-limited)",
		"program", p.prog.Name, "err", r.Err().Error())
}

func (w *worker) enqueue(p *port, f []byte, o bpfport.Offload, ring uint8) {
	if int(ring) >= p.queues {
		ring = uint8(p.queues - 1)
	}
	oq := w.out[p.idx]
	if oq == nil {
		n := w.s.cfg.Batch
		oq = &outQueue{frames: make([][]byte, 0, n), offl: make([]bpfport.Offload, 0, n), rings: make([]uint8, 0, n)}
		w.out[p.idx] = oq
	}
	if len(oq.frames) == 0 {
		w.dests = append(w.dests, uint8(p.idx))
	} else if oq.rings[0] != ring {
		oq.mixed = true
	}
	oq.frames = append(oq.frames, f)
	oq.offl = append(oq.offl, o)
	oq.rings = append(oq.rings, ring)
}

func (w *worker) flush() {
	for _, d := range w.dests {
		o := w.out[d]
		p := w.s.ports[d].Load()
		if p == nil {
			w.tx[d].dropped.add(uint64(len(o.frames)))
		} else if !o.mixed {
			w.send(p, int(o.rings[0]), o.frames, o.offl)
		} else {
			for i := 0; i < len(o.frames); {
				j := i + 1
				for j < len(o.frames) && o.rings[j] == o.rings[i] {
					j++
				}
				w.send(p, int(o.rings[i]), o.frames[i:j], o.offl[i:j])
				i = j
			}
		}
		clear(o.frames)
		o.frames, o.offl, o.rings, o.mixed = o.frames[:0], o.offl[:0], o.rings[:0], false
	}
	w.dests = w.dests[:0]
}

func (w *worker) send(p *port, q int, frames [][]byte, offl []bpfport.Offload) {
	n, _ := (*p.io.Load()).SendBatch(q, frames, offl)
	var bytes uint64
	for _, f := range frames[:n] {
		bytes += uint64(len(f))
	}
	t := &w.tx[p.idx]
	t.packets.add(uint64(n))
	t.bytes.add(bytes)
	t.dropped.add(uint64(len(frames) - n))
}
