package bpfport

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller is an epoll set of receive queues for a pool of workers: each
// queue's PollFD is registered one-shot, so that a ready queue is handed to
// exactly one worker, which re-arms it (Rearm) when it gives the queue
// back. A worker with nothing to do waits for the set through Go's
// netpoller (the epoll fd is itself pollable, registered with the runtime
// through os.File): waiting costs a parked goroutine, not an OS thread, and
// Wake (or Close) releases every waiter.
//
// Why not a goroutine per queue on github.com/mdlayher/socket (the
// netpoller per socket): the switch would then hold a goroutine per idle
// port, and a frame's goroutine would have to hand it to a worker owning a
// per-CPU slot (one more wake-up per frame). One epoll set keeps the cost
// of an idle port at one registration, and lets the goroutine the kernel
// wakes process the frame itself.
type Poller struct {
	epfd   int
	file   *os.File
	rc     syscall.RawConn
	wakefd int
}

// PollEvent is one ready queue reported by Poll.
type PollEvent = unix.EpollEvent

// WakeID is the id of the event Wake makes ready.
const WakeID = ^uint64(0)

// NewPoller returns an empty set.
func NewPoller() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventID(&ev, WakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "vswitch-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	return &Poller{epfd: epfd, file: f, rc: rc, wakefd: wakefd}, nil
}

// Add registers fd, armed, under id.
func (pl *Poller) Add(fd int, id uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT}
	setEventID(&ev, id)
	if err := unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// Rearm hands fd back to the set after its event was taken. With kick it
// is reported at once (EPOLLOUT: a socket or eventfd is writable), so that
// some worker looks at it now.
func (pl *Poller) Rearm(fd int, id uint64, kick bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT}
	if kick {
		ev.Events |= unix.EPOLLOUT
	}
	setEventID(&ev, id)
	_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// Del removes fd.
func (pl *Poller) Del(fd int) {
	_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Poll fills evs with ready events without blocking and returns how many.
func (pl *Poller) Poll(evs []PollEvent) int {
	for {
		n, err := unix.EpollWait(pl.epfd, evs, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		return n
	}
}

// Wait parks the calling goroutine in the netpoller until try returns
// true; try is called whenever the set may have become ready (and at
// first), and is expected to Poll it. Only one goroutine waits in the
// netpoller at a time; others queue behind it.
func (pl *Poller) Wait(try func() bool) error {
	return pl.rc.Read(func(uintptr) bool { return try() })
}

// Wake makes every waiter's try run and reports WakeID from then on (the
// wake eventfd stays readable).
func (pl *Poller) Wake() { unix.Write(pl.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) }

// Close releases the set.
func (pl *Poller) Close() {
	pl.file.Close()
	unix.Close(pl.wakefd)
}

// EventID returns the id an event was registered under.
func EventID(ev *PollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func setEventID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

// YieldCPU gives the CPU to another runnable thread, if any: a worker that
// busy-polls calls it between empty rounds, so that on a small machine the
// hosts' own processes and the kernel's work are not kept waiting behind
// it (sched_yield(2)).
func YieldCPU() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
