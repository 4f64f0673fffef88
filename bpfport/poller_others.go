//go:build !linux

package bpfport

import (
	"runtime"
	"sync"
	"time"
)

// Poller stands in for the epoll set where there is none: every armed
// queue is reported ready after a millisecond, so a worker polls it with
// TryRecv (correct, not efficient).
type Poller struct {
	mu    sync.Mutex
	armed map[uint64]bool
	woken bool
}

// PollEvent is one ready queue reported by Poll.
type PollEvent struct{ id uint64 }

// WakeID is the id of the event Wake makes ready.
const WakeID = ^uint64(0)

// NewPoller returns an empty set.
func NewPoller() (*Poller, error) { return &Poller{armed: map[uint64]bool{}}, nil }

// Add registers a queue, armed.
func (pl *Poller) Add(fd int, id uint64) error { pl.Rearm(fd, id, true); return nil }

// Rearm hands a queue back to the set.
func (pl *Poller) Rearm(fd int, id uint64, kick bool) {
	pl.mu.Lock()
	pl.armed[id] = true
	pl.mu.Unlock()
}

// Del removes a queue (by id: fd is ignored here).
func (pl *Poller) Del(fd int) {}

// Poll returns armed queues (and disarms them).
func (pl *Poller) Poll(evs []PollEvent) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := 0
	if pl.woken && n < len(evs) {
		evs[n] = PollEvent{WakeID}
		n++
	}
	for id := range pl.armed {
		if n == len(evs) {
			break
		}
		evs[n] = PollEvent{id}
		delete(pl.armed, id)
		n++
	}
	return n
}

// Wait sleeps a millisecond between tries until try returns true.
func (pl *Poller) Wait(try func() bool) error {
	for !try() {
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Wake makes every waiter's try see WakeID.
func (pl *Poller) Wake() {
	pl.mu.Lock()
	pl.woken = true
	pl.mu.Unlock()
}

// Close releases the set.
func (pl *Poller) Close() {}

// EventID returns the id an event was registered under.
func EventID(ev *PollEvent) uint64 { return ev.id }

// YieldCPU gives the CPU to another runnable goroutine.
func YieldCPU() { runtime.Gosched() }
