// Package vswitch is the switch core: ports, the workers that serve them,
// and the forwarding program they run on every frame, VALE style.
//
// Each receive queue of each port is served by one worker goroutine. A
// worker takes a batch of frames (up to Config.Batch), runs the program on
// each with the context of the program ABI (vm.PacketContext), groups the
// frames by destination and hands every group to its port in one SendBatch.
// The program's return value picks the destination: 0..253 a port index,
// 254 every port but the ingress one, 255 and above drop. A destination
// that is the ingress port or an empty slot drops the frame.
//
// The program is swapped atomically between batches: a frame is run
// entirely by the old or entirely by the new program. Counters are kept
// per worker without locks and summed when read.
package vswitch

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
// oversize. Neither reaches the program.
const (
	MinFrame       = 14
	FrameOverhead  = 14 + 4
	DefaultBatch   = 256
	DefaultWorkers = 256
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
	// Batch is the largest number of frames a worker takes at once
	// (default 256).
	Batch int
	// MaxWorkers bounds the number of workers (port queues) and so the
	// CPU indexes programs see (default 256). Per-CPU maps need this many
	// slots.
	MaxWorkers int
	// Logger receives rate-limited warnings; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = DefaultWorkers
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
	// Close is called when the program is replaced or the switch closes
	// (to release JIT code); may be nil.
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
	active atomic.Pointer[[]*port] // attached, up ports in index order, for flooding
	// activeMu serializes rebuilds of active.
	activeMu sync.Mutex
	prog     atomic.Pointer[installed]
	nextID   uint64
	ids      []bool // worker ids in use
	closed   bool
	workers  sync.WaitGroup
	faultLg  rateLimiter
}

// New returns a switch with no ports and no program: until a program is
// installed every frame is dropped and counted.
func New(cfg Config) *Switch {
	cfg = cfg.withDefaults()
	s := &Switch{cfg: cfg, log: cfg.Logger, ids: make([]bool, cfg.MaxWorkers)}
	empty := []*port{}
	s.active.Store(&empty)
	return s
}

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
		in = &installed{prog: p, id: s.nextID, loaded: time.Now(), counters: make([]progCounters, s.cfg.MaxWorkers)}
	}
	old := s.prog.Swap(in)
	if old != nil && old.prog.Close != nil {
		s.retire(old)
	}
}

// retire closes an old program once every worker has moved past it:
// workers publish the id of the program their current batch runs.
func (s *Switch) retire(old *installed) {
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			busy := false
			for _, p := range s.allPorts() {
				for _, w := range p.workers {
					if w.running.Load() == old.id {
						busy = true
					}
				}
			}
			if !busy {
				break
			}
			time.Sleep(time.Millisecond)
		}
		old.prog.Close()
	}()
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
	s.rebuildActive()
}

func (s *Switch) rebuildActive() {
	var ps []*port
	for i := range s.ports {
		if p := s.ports[i].Load(); p != nil && !p.gone.Load() {
			ps = append(ps, p)
		}
	}
	s.active.Store(&ps)
}

// Close detaches every port (closing them) and uninstalls the program.
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
	s.mu.Unlock()
	s.workers.Wait()
	if old != nil && old.prog.Close != nil {
		old.prog.Close()
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

func (s *Switch) warnFault(p *installed, err error) {
	if !s.faultLg.allow(5 * time.Second) {
		return
	}
	s.log.Warn("forwarding program fault (frame dropped; further faults are counted, warnings rate-limited)",
		"program", p.prog.Name, "err", err.Error())
}

// String describes a drop reason.
func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}
