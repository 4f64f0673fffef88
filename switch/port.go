package vswitch

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
)

// port is an attached port.
type port struct {
	idx      int
	p        bpfport.Port                 // the port as attached
	io       atomic.Pointer[bpfport.Port] // what workers use: p, or a capture wrapping it
	capture  atomic.Pointer[bpfport.Capture]
	name     string
	kind     string
	queues   int
	caps     bpfport.Caps
	busyPoll int64 // ns a worker keeps polling a queue after its last frame (0: none)
	attached time.Time
	units    []*unit
	gone     atomic.Bool
	goneErr  atomic.Pointer[string]

	// maxFrame is MTU + FrameOverhead, refreshed when a frame exceeds it
	// (the MTU may have been raised) at most every mtuRecheck.
	maxFrame   atomic.Int64
	mtuChecked atomic.Int64

	rx     []rxCounters // by worker
	txBase txCounters   // workers' tx counts for this index at attach time
}

const mtuRecheck = int64(10 * time.Millisecond)

// PortConfig configures AttachPort. The zero value means defaults.
type PortConfig struct {
	// Kind is what `port show` reports (afpacket, tap, virtual, ...).
	Kind string
	// BusyPoll is how long a worker keeps polling the port's queues after
	// the last frame before it gives them back: 0 means the switch's
	// default (Config.BusyPoll), a negative value none.
	BusyPoll time.Duration
}

// PortInfo describes an attached port.
type PortInfo struct {
	Index    int
	Name     string
	Kind     string
	Queues   int
	MTU      int
	Up       bool
	Gone     bool   // the interface disappeared; the port no longer forwards
	Error    string // why it is gone
	Offload  bool   // the port takes super-frames and partial checksums as they are
	BusyPoll time.Duration
	Attached time.Time
}

// Attach adds p at the lowest free index with default settings; kind is
// what `port show` reports. See AttachPort.
func (s *Switch) Attach(p bpfport.Port, kind string) (int, error) {
	return s.AttachPort(p, PortConfig{Kind: kind})
}

// AttachPort adds p at the lowest free index: its queues join the switch's
// epoll set, served by the worker pool (no goroutine of their own). The
// switch owns p from now on: Detach and Close close it. On error p is left
// open for the caller.
func (s *Switch) AttachPort(p bpfport.Port, cfg PortConfig) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1, ErrClosed
	}
	if s.pl == nil {
		return -1, fmt.Errorf("port %s: the switch has no poller (see its log): %w", p.Name(), ErrClosed)
	}
	idx := -1
	for i := range s.ports {
		q := s.ports[i].Load()
		if q != nil && q.name == p.Name() {
			return -1, fmt.Errorf("port %s: %w at index %d", p.Name(), ErrPortExists, i)
		}
		if q == nil && idx < 0 {
			idx = i
		}
	}
	if idx < 0 {
		return -1, fmt.Errorf("port %s: %w (%d ports)", p.Name(), ErrFull, MaxPorts)
	}
	nq := max(p.NumQueues(), 1)
	busy := cfg.BusyPoll
	if busy == 0 {
		busy = s.cfg.BusyPoll
	}
	pt := &port{idx: idx, p: p, name: p.Name(), kind: cfg.Kind, queues: nq, caps: p.Caps(),
		busyPoll: max(int64(busy), 0), attached: time.Now(), rx: make([]rxCounters, len(s.workers))}
	pt.maxFrame.Store(int64(p.MTU() + FrameOverhead))
	for _, w := range s.workers {
		t := &w.tx[idx]
		pt.txBase.packets.Store(pt.txBase.packets.Load() + t.packets.Load())
		pt.txBase.bytes.Store(pt.txBase.bytes.Load() + t.bytes.Load())
		pt.txBase.dropped.Store(pt.txBase.dropped.Load() + t.dropped.Load())
	}
	for q := 0; q < nq; q++ {
		fd := p.PollFD(q)
		if fd < 0 {
			s.freeUnits(pt)
			return -1, fmt.Errorf("port %s: queue %d cannot be polled", p.Name(), q)
		}
		u := &unit{port: pt, q: q, fd: fd}
		u.owner.Store(-1)
		if !s.units.alloc(u) {
			s.freeUnits(pt)
			return -1, fmt.Errorf("port %s: %w: no room for %d more queues", p.Name(), ErrFull, nq-q)
		}
		pt.units = append(pt.units, u)
	}
	pt.io.Store(&p)
	s.ports[idx].Store(pt)
	s.refreshActive()
	for i, u := range pt.units {
		// Registered, then reported ready at once: a worker takes a first
		// look and arms the queue (Arm) when it gives it back.
		err := s.pl.Add(u.fd, uint64(u.id))
		if err == nil {
			s.pl.Rearm(u.fd, uint64(u.id), true)
		}
		if err != nil {
			for _, v := range pt.units[:i] {
				v.removed.Store(true)
				s.pl.Del(v.fd)
			}
			s.ports[idx].Store(nil)
			s.refreshActive()
			s.synchronize()
			s.freeUnits(pt)
			return -1, fmt.Errorf("port %s: %w", p.Name(), err)
		}
	}
	return idx, nil
}

func (s *Switch) freeUnits(pt *port) {
	for _, u := range pt.units {
		s.units.free(u.id)
	}
	pt.units = nil
}

// Detach removes the port with the given name and closes it, once no
// worker can touch it any more.
func (s *Switch) Detach(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ports {
		if p := s.ports[i].Load(); p != nil && p.name == name {
			return s.detachLocked(p)
		}
	}
	return fmt.Errorf("port %s: %w", name, ErrNoSuchPort)
}

func (s *Switch) detachLocked(p *port) error {
	s.ports[p.idx].Store(nil)
	s.refreshActive()
	for _, u := range p.units {
		u.removed.Store(true)
		s.pl.Del(u.fd)
	}
	// After this no worker is in a round that saw the port: the ones that
	// hold its queues drop them at their next look (removed), none sends
	// to it (it is out of ports and the flood list).
	s.synchronize()
	s.freeUnits(p)
	return p.p.Close()
}

// markGone takes a port whose interface disappeared out of forwarding.
func (s *Switch) markGone(p *port, err error) {
	msg := err.Error()
	p.goneErr.Store(&msg)
	if p.gone.Swap(true) {
		return
	}
	s.log.Warn("port is gone; forwarding goes on among the other ports", "port", p.name, "err", msg)
	// The flood list is rebuilt without taking s.mu: a control operation
	// holding it may be waiting for this very worker.
	s.refreshActive()
}

// refreshMTU re-reads the port's MTU (at most every mtuRecheck) and
// reports whether it changed maxFrame.
func (p *port) refreshMTU(now int64) bool {
	last := p.mtuChecked.Load()
	if now-last < mtuRecheck || !p.mtuChecked.CompareAndSwap(last, now) {
		return false
	}
	m := int64(p.p.MTU() + FrameOverhead)
	return p.maxFrame.Swap(m) != m
}

// Ports describes the attached ports in index order.
func (s *Switch) Ports() []PortInfo {
	var out []PortInfo
	for _, p := range s.allPorts() {
		out = append(out, p.info())
	}
	return out
}

// PortInfo describes the port at index idx.
func (s *Switch) PortInfo(idx int) (PortInfo, error) {
	if idx < 0 || idx >= MaxPorts || s.ports[idx].Load() == nil {
		return PortInfo{}, fmt.Errorf("port %d: %w", idx, ErrNoSuchPort)
	}
	return s.ports[idx].Load().info(), nil
}

func (p *port) info() PortInfo {
	mtu := p.p.MTU()
	p.maxFrame.Store(int64(mtu + FrameOverhead))
	info := PortInfo{Index: p.idx, Name: p.name, Kind: p.kind, Queues: p.queues,
		MTU: mtu, Up: p.p.Up() && !p.gone.Load(), Gone: p.gone.Load(),
		Offload: p.caps&bpfport.CapOffload != 0, BusyPoll: time.Duration(p.busyPoll), Attached: p.attached}
	if e := p.goneErr.Load(); e != nil {
		info.Error = *e
	}
	return info
}

// PortByName returns the index of the named port.
func (s *Switch) PortByName(name string) (int, error) {
	for _, p := range s.allPorts() {
		if p.name == name {
			return p.idx, nil
		}
	}
	return -1, fmt.Errorf("port %s: %w", name, ErrNoSuchPort)
}

// Port returns the bpfport.Port at index idx (for capture and tests).
func (s *Switch) Port(idx int) (bpfport.Port, error) {
	if idx < 0 || idx >= MaxPorts {
		return nil, fmt.Errorf("port %d: %w", idx, ErrNoSuchPort)
	}
	p := s.ports[idx].Load()
	if p == nil {
		return nil, fmt.Errorf("port %d: %w", idx, ErrNoSuchPort)
	}
	return p.p, nil
}

// ErrCaptureRunning is returned by Capture for a port already captured.
var ErrCaptureRunning = errors.New("a capture is already running")

// Capture copies the frames port idx receives and sends to w as pcap,
// until the returned stop function is called. One capture per port runs
// at a time. Every frame the port receives or sends after Capture returns
// is captured.
func (s *Switch) Capture(idx int, w io.Writer, cfg bpfport.CaptureConfig) (stop func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx < 0 || idx >= MaxPorts || s.ports[idx].Load() == nil {
		return nil, fmt.Errorf("port %d: %w", idx, ErrNoSuchPort)
	}
	p := s.ports[idx].Load()
	if p.capture.Load() != nil {
		return nil, fmt.Errorf("port %s: %w: stop it first (one capture per port)", p.name, ErrCaptureRunning)
	}
	c, err := bpfport.NewCapture(p.p, w, cfg)
	if err != nil {
		return nil, err
	}
	p.capture.Store(c)
	var cp bpfport.Port = c
	p.io.Store(&cp)
	// Every worker now goes through the wrapper: a worker that loaded the
	// bare port before the swap has finished its round.
	s.synchronize()
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			p.io.Store(&p.p)
			s.synchronize()
			p.capture.Store(nil)
			err = c.Stop()
		})
		return err
	}, nil
}
