// Package vswitch is the switch core: ports, the workers that serve them,
// and the forwarding program they run on every frame, VALE style.
//
// # Workers
//
// A bounded pool of worker goroutines (Config.Workers, one per CPU by
// default) serves every receive queue of every port, as Open vSwitch's PMD
// threads poll many ports each. An idle queue costs no goroutine and no OS
// thread: its file descriptor sits in one epoll set of the switch, and an
// idle worker waits for that set through Go's netpoller (a parked
// goroutine). A worker that is handed a ready queue takes a batch of frames
// from it (up to Config.Batch), runs the program on each with the context
// of the program ABI (vm.PacketContext), groups the frames by destination
// and hands every group to its port in one SendBatch. It keeps serving the
// queues it holds round-robin, one batch each per round, and keeps polling
// a queue for a busy-poll window after its last frame (Config.BusyPoll),
// so that a reply or the next frame of a flow is taken without a wake-up;
// then it gives the queue back to the epoll set. A queue is held by at
// most one worker at a time; a worker holding two busy queues while
// another is idle hands one over.
//
// The program's return value picks the destination: 0..253 a port index,
// 254 every port but the ingress one, 255 and above drop. A destination
// that is the ingress port or an empty slot drops the frame. Frames with
// offloads (GSO super-frames, partial checksums) are passed on whole: the
// destination port finishes them if it cannot take them.
//
// # Program and port lifetime
//
// The program is swapped atomically between batches: a frame is run
// entirely by the old or entirely by the new program. The switch keeps an
// epoch counter: a worker publishes the epoch it saw before it looks at the
// program or a port, and publishes zero when it waits; the old program (its
// machine code) is closed, and a detached port is closed, only once every
// worker has published a later epoch or zero. No deadline ever closes what
// a worker may still run. Counters are kept per worker without locks and
// summed when read.
package vswitch

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/vm"
)

// Return values of forwarding programs.
const (
	MaxPorts = 254 // port indexes 0..253
	Flood    = 254 // every port but the ingress one
	Drop     = 255 // this and anything above
)

// Frame size limits: frames shorter than an Ethernet header are runts;
// frames longer than the port's MTU plus Ethernet and VLAN headers are
// oversize (for a super-frame: its segments). Neither reaches the program.
const (
	MinFrame      = 14
	FrameOverhead = 14 + 4
	DefaultBatch  = 256
	// DefaultBusyPoll is the longest a worker keeps polling a queue after
	// its last frame before it gives the queue back and may sleep: traffic
	// whose frames come closer together than about two thirds of it is
	// polled for continuously (no wake-up per frame), sparser traffic for
	// 50 µs after each frame (to catch the answer it provokes). See
	// ARCHITECTURE.md for why this value.
	DefaultBusyPoll = 5 * time.Millisecond
	// MaxWorkers bounds Config.Workers.
	MaxWorkers = 256
)

// Errors of the switch's control methods.
var (
	ErrNoSuchPort = errors.New("no such port")
	ErrPortExists = errors.New("port already attached")
	ErrFull       = errors.New("switch is full")
	ErrClosed     = errors.New("switch closed")
)

// Config configures a Switch. The zero value means defaults.
type Config struct {
	// Batch is the largest number of frames a worker takes from a queue
	// at once (default 256).
	Batch int
	// Workers is the number of worker goroutines, and so the number of
	// CPU indexes programs see and of per-CPU map slots (default
	// GOMAXPROCS, at most MaxWorkers).
	Workers int
	// BusyPoll is the default busy-poll window of ports (see PortConfig):
	// 0 means DefaultBusyPoll, a negative value none (a worker gives a
	// queue back as soon as it is empty).
	BusyPoll time.Duration
	// Logger receives rate-limited warnings; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	c.Workers = min(c.Workers, MaxWorkers)
	if c.BusyPoll == 0 {
		c.BusyPoll = DefaultBusyPoll
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Program is a forwarding program as the switch runs it.
type Program struct {
	Name   string
	Engine string      // "jit" or "interp"
	Runner vm.Runner   // what runs it
	VM     *vm.Program // the validated program
	// Close is called when the program is replaced or the switch closes,
	// once no worker can run it any more (to release JIT code); may be nil.
	Close func()
	// FloodMap, when set, restricts floods: it is the program's
	// vswitch_flood map (per-CPU array, one entry, struct vswitch_portset:
	// four 64-bit words, bit p for port p). When the program returns
	// Flood, the frame goes to the ports whose bits its run set in the
	// worker's slot (all ports when none is set); the switch clears the
	// slot after reading it.
	FloodMap FloodMap
}

// FloodMap is the part of a map the switch needs for flood groups.
type FloodMap interface {
	LookupAddr(key []byte, cpu int) uint64
}

// FloodSetSize is the size of struct vswitch_portset.
const FloodSetSize = 32

// installed is a program with its counters.
type installed struct {
	prog     *Program
	id       uint64
	loaded   time.Time
	counters []progCounters // by worker id
}

// progCounters are one worker's counts for one program. Only that worker
// writes them (with Store), so readers never race and the hot path takes
// no lock.
type progCounters struct {
	runs   atomic.Uint64
	insns  atomic.Uint64
	faults [vm.NumKinds]atomic.Uint64
	_      [64]byte // keep workers' counters on separate cache lines
}

// Switch is a VALE-style learning switch whose forwarding logic is an eBPF
// program. Its methods are safe for concurrent use.
type Switch struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // serializes control operations
	ports  [MaxPorts]atomic.Pointer[port]
	active atomic.Pointer[[]*port] // attached ports that are not gone, in index order, for flooding
	// activeMu serializes rebuilds of active.
	activeMu sync.Mutex
	prog     atomic.Pointer[installed]
	nextID   uint64
	closed   bool

	// epoch grows with every synchronize; workers publish what they saw.
	epoch    atomic.Uint64
	workers  []*worker
	running  sync.WaitGroup
	retiring sync.WaitGroup // program retirements in flight
	stopping atomic.Bool
	idle     atomic.Int32 // workers waiting for a ready queue

	pl    *bpfport.Poller
	units unitTable

	// spinning is the worker that polls empty queues within their
	// busy-poll window (-1: none); other workers hand it theirs (inbox).
	spinning atomic.Int32
	spinMu   sync.Mutex
	inbox    []*unit
	inboxN   atomic.Int32
	down     downList

	faultLg rateLimiter
}

// New returns a switch with no ports and no program: until a program is
// installed every frame is dropped and counted. Its workers start at once
// and wait, costing nothing, until a port has frames.
func New(cfg Config) *Switch {
	cfg = cfg.withDefaults()
	s := &Switch{cfg: cfg, log: cfg.Logger}
	s.epoch.Store(1)
	s.spinning.Store(-1)
	empty := []*port{}
	s.active.Store(&empty)
	pl, err := bpfport.NewPoller()
	if err != nil {
		// Without an epoll set (an exhausted fd table) the switch cannot
		// serve ports; Attach says so.
		s.log.Error("switch: cannot create its poller; ports cannot be attached", "err", err.Error())
	}
	s.pl = pl
	for i := 0; i < cfg.Workers; i++ {
		w := newWorker(s, i)
		s.workers = append(s.workers, w)
	}
	if pl != nil {
		for _, w := range s.workers {
			s.running.Add(1)
			go w.run()
		}
	}
	return s
}

// Workers returns the number of workers (per-CPU map slots).
func (s *Switch) Workers() int { return s.cfg.Workers }

// SetProgram installs p, replacing the current program atomically: every
// batch a worker starts after SetProgram returns runs p. The previous
// program is closed once no worker can still be running it. A nil p
// uninstalls the program (frames are dropped).
func (s *Switch) SetProgram(p *Program) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in *installed
	if p != nil {
		s.nextID++
		in = &installed{prog: p, id: s.nextID, loaded: time.Now(), counters: make([]progCounters, s.cfg.Workers)}
	}
	old := s.prog.Swap(in)
	if old != nil && old.prog.Close != nil {
		s.retiring.Add(1)
		go func() {
			defer s.retiring.Done()
			s.synchronize()
			old.prog.Close()
		}()
	}
}

// synchronize returns once every worker has left whatever it was doing
// when synchronize was called: each has published a newer epoch or zero
// (waiting). Anything unpublished before the call (a program swapped out,
// a port removed) is then out of every worker's reach. It waits as long as
// that takes: a batch is bounded by the programs' run budget.
func (s *Switch) synchronize() {
	e := s.epoch.Add(1)
	for _, w := range s.workers {
		for spins := 0; ; spins++ {
			v := w.epoch.Load()
			if v == 0 || v >= e {
				break
			}
			if spins < 100 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}

// ProgramID returns the id of the installed program (0 if none). Ids grow
// with every SetProgram.
func (s *Switch) ProgramID() uint64 {
	if in := s.prog.Load(); in != nil {
		return in.id
	}
	return 0
}

// Program returns the installed program, or nil.
func (s *Switch) Program() *Program {
	if in := s.prog.Load(); in != nil {
		return in.prog
	}
	return nil
}

func (s *Switch) allPorts() []*port {
	var ps []*port
	for i := range s.ports {
		if p := s.ports[i].Load(); p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// refreshActive rebuilds the flood list.
func (s *Switch) refreshActive() {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	var ps []*port
	for i := range s.ports {
		if p := s.ports[i].Load(); p != nil && !p.gone.Load() {
			ps = append(ps, p)
		}
	}
	s.active.Store(&ps)
}

// Close detaches every port (closing them), stops the workers and
// uninstalls the program. It waits for the batches in flight, which the
// programs' run budget bounds.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for i := range s.ports {
		if p := s.ports[i].Load(); p != nil {
			errs = append(errs, s.detachLocked(p))
		}
	}
	old := s.prog.Swap(nil)
	s.stopping.Store(true)
	s.mu.Unlock()
	if s.pl != nil {
		s.pl.Wake()
	}
	s.running.Wait()
	s.retiring.Wait()
	s.down.stop()
	if old != nil && old.prog.Close != nil {
		old.prog.Close()
	}
	if s.pl != nil {
		s.pl.Close()
	}
	return errors.Join(errs...)
}

// rateLimiter allows one event per interval.
type rateLimiter struct {
	last atomic.Int64
}

func (r *rateLimiter) allow(interval time.Duration) bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(interval) && r.last.CompareAndSwap(last, now)
}

// String describes a drop reason.
func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}
