package vswitch

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/vm"
)

// DropReason says why a frame was dropped.
type DropReason int

// Drop reasons, counted per ingress port (TxFull per egress port).
const (
	DropProgram   DropReason = iota // the program returned 255 or more
	DropNoPort                      // destination slot empty or its port gone
	DropIngress                     // destination is the ingress port
	DropTxFull                      // the destination refused the frame (ring full, error)
	DropFault                       // the program faulted
	DropRunt                        // shorter than an Ethernet header
	DropOversize                    // longer than MTU + headers
	DropNoProgram                   // no program installed
	NumDropReasons
)

var dropNames = [...]string{
	DropProgram: "program", DropNoPort: "no_port", DropIngress: "ingress",
	DropTxFull: "tx_full", DropFault: "fault", DropRunt: "runt",
	DropOversize: "oversize", DropNoProgram: "no_program",
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
}

type txCounters struct {
	packets, bytes, dropped counter
}

// outQueue collects the frames of one batch for one destination.
type outQueue struct {
	frames [][]byte
	rings  []uint8
	mixed  bool // frames go to different rings
}

// worker serves one receive queue of one port.
type worker struct {
	s     *Switch
	id    int
	in    *port
	q     int
	env   *vm.Env
	batch *bpfport.Batch

	stop    atomic.Bool
	exited  atomic.Bool
	busy    atomic.Bool   // inside a batch
	seq     atomic.Uint64 // batches started
	running atomic.Uint64 // id of the program of the current batch, 0 when idle

	rx rxCounters
	tx [MaxPorts]txCounters // by destination

	zeroKey [4]byte

	out   [MaxPorts]*outQueue
	dests []uint8 // destinations with frames in this batch
}

func (w *worker) run() {
	defer w.s.workers.Done()
	defer w.exited.Store(true)
	downSince := time.Time{}
	for !w.stop.Load() {
		n, err := (*w.in.io.Load()).RecvBatch(w.q, w.batch)
		if w.stop.Load() {
			return
		}
		switch {
		case err == nil:
			downSince = time.Time{}
			if n > 0 {
				w.process(w.batch.Frames[:n])
			}
		case errors.Is(err, bpfport.ErrClosed):
			return
		case errors.Is(err, bpfport.ErrLinkGone):
			w.s.markGone(w.in, err)
			return
		case errors.Is(err, bpfport.ErrLinkDown):
			if downSince.IsZero() {
				downSince = time.Now()
				w.s.log.Warn("port link is down; waiting for it to come back", "port", w.in.name)
			}
			time.Sleep(20 * time.Millisecond)
		default:
			if w.s.faultLg.allow(5 * time.Second) {
				w.s.log.Warn("receive error", "port", w.in.name, "queue", w.q, "err", err.Error())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// process runs the program on a batch of frames and sends them on. It
// does not allocate once every destination has been seen.
func (w *worker) process(frames [][]byte) {
	w.busy.Store(true)
	w.seq.Add(1)
	defer w.busy.Store(false)

	var drops [NumDropReasons]uint64
	var rxBytes uint64
	for _, f := range frames {
		rxBytes += uint64(len(f))
	}
	w.rx.packets.add(uint64(len(frames)))
	w.rx.bytes.add(rxBytes)

	in := w.s.prog.Load()
	if in == nil {
		w.rx.drops[DropNoProgram].add(uint64(len(frames)))
		return
	}
	w.running.Store(in.id)
	defer w.running.Store(0)
	pc := &in.counters[w.id]
	var runs, insns uint64
	ingress := w.in.idx
	runner := in.prog.Runner
	env := w.env
	// One clock read per batch: bpf_ktime_get_ns returns the batch's time.
	env.Clock = vm.Ktime()
	for _, f := range frames {
		if len(f) < MinFrame {
			drops[DropRunt]++
			continue
		}
		if len(f) > w.in.maxFrame {
			drops[DropOversize]++
			continue
		}
		ret, err := env.RunFrame(runner, f, uint32(ingress))
		runs++
		insns += env.Executed
		if err != nil {
			drops[DropFault]++
			var e *vm.Error
			if errors.As(err, &e) {
				pc.faults[e.Kind].Store(pc.faults[e.Kind].Load() + 1)
			}
			w.s.warnFault(in, err)
			continue
		}
		ring := env.MD.RingNr
		switch {
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
			w.enqueue(p, f, ring)
		case ret == Flood:
			var set [4]uint64
			if fm := in.prog.FloodMap; fm != nil {
				set = takeFloodSet(fm.LookupAddr(w.zeroKey[:], w.id))
			}
			all := set == [4]uint64{}
			for _, p := range *w.s.active.Load() {
				if p.idx != ingress && (all || set[p.idx>>6]>>(p.idx&63)&1 != 0) {
					w.enqueue(p, f, ring)
				}
			}
		default:
			drops[DropProgram]++
		}
	}
	pc.runs.Store(pc.runs.Load() + runs)
	pc.insns.Store(pc.insns.Load() + insns)
	for r, n := range drops {
		w.rx.drops[r].add(n)
	}
	w.flush()
}

func (w *worker) enqueue(p *port, f []byte, ring uint8) {
	if int(ring) >= p.queues {
		ring = uint8(p.queues - 1)
	}
	o := w.out[p.idx]
	if o == nil {
		o = &outQueue{frames: make([][]byte, 0, w.s.cfg.Batch), rings: make([]uint8, 0, w.s.cfg.Batch)}
		w.out[p.idx] = o
	}
	if len(o.frames) == 0 {
		w.dests = append(w.dests, uint8(p.idx))
	} else if o.rings[0] != ring {
		o.mixed = true
	}
	o.frames = append(o.frames, f)
	o.rings = append(o.rings, ring)
}

func (w *worker) flush() {
	for _, d := range w.dests {
		o := w.out[d]
		p := w.s.ports[d].Load()
		if p == nil {
			w.tx[d].dropped.add(uint64(len(o.frames)))
		} else if !o.mixed {
			w.send(p, int(o.rings[0]), o.frames)
		} else {
			for i := 0; i < len(o.frames); {
				j := i + 1
				for j < len(o.frames) && o.rings[j] == o.rings[i] {
					j++
				}
				w.send(p, int(o.rings[i]), o.frames[i:j])
				i = j
			}
		}
		clear(o.frames)
		o.frames, o.rings, o.mixed = o.frames[:0], o.rings[:0], false
	}
	w.dests = w.dests[:0]
}

func (w *worker) send(p *port, q int, frames [][]byte) {
	n, _ := (*p.io.Load()).SendBatch(q, frames)
	var bytes uint64
	for _, f := range frames[:n] {
		bytes += uint64(len(f))
	}
	t := &w.tx[p.idx]
	t.packets.add(uint64(n))
	t.bytes.add(bytes)
	t.dropped.add(uint64(len(frames) - n))
}
