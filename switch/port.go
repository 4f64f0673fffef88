package vswitch

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/vm"
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
	maxFrame int
	attached time.Time
	workers  []*worker
	gone     atomic.Bool
	goneErr  atomic.Pointer[string]
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
	Attached time.Time
}

// Attach adds p at the lowest free index and starts one worker per queue.
// kind is what `port show` reports (afpacket, tap, virtual). The switch owns
// p from now on: Detach and Close close it.
func (s *Switch) Attach(p bpfport.Port, kind string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1, ErrClosed
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
	var ids []int
	for id, used := range s.ids {
		if !used && len(ids) < nq {
			ids = append(ids, id)
		}
	}
	if len(ids) < nq {
		return -1, fmt.Errorf("port %s: %w: no room for %d more workers (limit %d)", p.Name(), ErrFull, nq, s.cfg.MaxWorkers)
	}
	pt := &port{idx: idx, p: p, name: p.Name(), kind: kind, queues: nq,
		maxFrame: p.MTU() + FrameOverhead, attached: time.Now()}
	for q, id := range ids {
		s.ids[id] = true
		env := vm.NewEnv()
		env.CPU = id
		pt.workers = append(pt.workers, &worker{s: s, id: id, in: pt, q: q, env: env,
			batch: bpfport.NewBatch(s.cfg.Batch)})
	}
	pt.io.Store(&p)
	s.ports[idx].Store(pt)
	s.refreshActive()
	for _, w := range pt.workers {
		s.workers.Add(1)
		go w.run()
	}
	return idx, nil
}

// Detach stops the workers of the port with the given name, removes it and
// closes it.
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
	for _, w := range p.workers {
		w.stop.Store(true)
	}
	p.p.Wake()
	// Wait for its workers to leave, and for every other worker to finish
	// the batch it may have started with a reference to p.
	s.quiesce(p)
	err := p.p.Close()
	for _, w := range p.workers {
		s.ids[w.id] = false
	}
	return err
}

// quiesce waits (boundedly) until p's workers have exited and every other
// worker has passed a batch boundary.
func (s *Switch) quiesce(p *port) {
	type seen struct {
		w   *worker
		seq uint64
	}
	var others []seen
	for i := range s.ports {
		if q := s.ports[i].Load(); q != nil {
			for _, w := range q.workers {
				others = append(others, seen{w, w.seq.Load()})
			}
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, w := range p.workers {
			if !w.exited.Load() {
				done = false
				p.p.Wake()
			}
		}
		for _, o := range others {
			if o.w.busy.Load() && o.w.seq.Load() == o.seq {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	s.log.Warn("port detach: workers did not stop in time; closing anyway", "port", p.name)
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
	s.activeMu.Lock()
	s.rebuildActive()
	s.activeMu.Unlock()
}

// Ports describes the attached ports in index order.
func (s *Switch) Ports() []PortInfo {
	var out []PortInfo
	for _, p := range s.allPorts() {
		info := PortInfo{Index: p.idx, Name: p.name, Kind: p.kind, Queues: p.queues,
			MTU: p.p.MTU(), Up: p.p.Up() && !p.gone.Load(), Gone: p.gone.Load(), Attached: p.attached}
		if e := p.goneErr.Load(); e != nil {
			info.Error = *e
		}
		out = append(out, info)
	}
	return out
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

// Capture copies the frames port idx receives and sends to w as pcap,
// until the returned stop function is called. One capture per port runs
// at a time.
func (s *Switch) Capture(idx int, w io.Writer, cfg bpfport.CaptureConfig) (stop func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx < 0 || idx >= MaxPorts || s.ports[idx].Load() == nil {
		return nil, fmt.Errorf("port %d: %w", idx, ErrNoSuchPort)
	}
	p := s.ports[idx].Load()
	c, err := bpfport.NewCapture(p.p, w, cfg)
	if err != nil {
		return nil, err
	}
	if !p.capture.CompareAndSwap(nil, c) {
		c.Stop()
		return nil, fmt.Errorf("port %s: a capture is already running", p.name)
	}
	var cp bpfport.Port = c
	p.io.Store(&cp)
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			p.io.Store(&p.p)
			p.capture.Store(nil)
			err = c.Stop()
		})
		return err
	}, nil
}
