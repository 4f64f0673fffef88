package bpfport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifctl answers questions about one interface through ioctls on a socket
// created at open time: ioctls act in the socket's network namespace, so
// they stay correct whatever namespace the calling thread is in later.
type ifctl struct {
	fd      int
	ifindex int
}

func newIfctl(ifindex int) (ifctl, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ifctl{fd: -1}, fmt.Errorf("control socket: %w", err)
	}
	return ifctl{fd: fd, ifindex: ifindex}, nil
}

func (c ifctl) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
	}
}

// name returns the interface's current name, or an error wrapping
// ErrLinkGone if the index no longer exists.
func (c ifctl) name() (string, error) {
	var ifr unix.Ifreq
	ifr.SetUint32(uint32(c.ifindex))
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFNAME, &ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return "", ErrLinkGone
		}
		return "", err
	}
	return ifr.Name(), nil
}

// flags returns IFF_* flags (low 16 bits).
func (c ifctl) flags() (uint16, error) {
	n, err := c.name()
	if err != nil {
		return 0, err
	}
	ifr, err := unix.NewIfreq(n)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, err
	}
	return ifr.Uint16(), nil
}

func (c ifctl) mtu() (int, error) {
	n, err := c.name()
	if err != nil {
		return 0, err
	}
	ifr, err := unix.NewIfreq(n)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(c.fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

func (c ifctl) up() bool {
	f, err := c.flags()
	return err == nil && f&unix.IFF_UP != 0 && f&unix.IFF_RUNNING != 0
}

// linkError classifies an I/O error on a port's socket or device: the
// interface was deleted (ErrLinkGone), is down (ErrLinkDown), or neither
// (err itself).
func (c ifctl) linkError(port string, err error) error {
	if _, nerr := c.name(); errors.Is(nerr, ErrLinkGone) {
		return fmt.Errorf("port %s: interface deleted (%v): %w", port, err, ErrLinkGone)
	}
	if f, ferr := c.flags(); ferr == nil && f&unix.IFF_UP == 0 || errors.Is(err, unix.ENETDOWN) {
		// ENETDOWN also while the interface is being deleted (it goes
		// down first, its flags may not say so yet): the port then checks
		// the link on its next calls.
		return fmt.Errorf("port %s: interface is down: bring it up with \"ip link set %s up\": %w", port, port, ErrLinkDown)
	}
	return fmt.Errorf("port %s: %w", port, err)
}

// lookupLink finds an interface in the calling thread's network namespace.
func lookupLink(name string) (netlink.Link, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q: must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("interface %q not found: check the name with \"ip link\" (in the right network namespace): %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	return l, nil
}

// setUp brings the link up if it is not.
func setUp(l netlink.Link) error {
	if l.Attrs().Flags&(1<<0) != 0 { // net.FlagUp
		return nil
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", l.Attrs().Name, permErr(err))
	}
	return nil
}

// permErr turns EPERM/EACCES into an error that says what to do.
func permErr(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%v: run as root or grant CAP_NET_RAW and CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin+ep BINARY): %w", err, ErrPermission)
	}
	return err
}

// newEventfd returns a non-blocking eventfd used to wake a poll.
func newEventfd() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}

var one [8]byte // eventfd counters are native-endian u64

func init() { binary.NativeEndian.PutUint64(one[:], 1) }

func eventfdSignal(fd int) { unix.Write(fd, one[:]) }

func eventfdDrain(fd int) {
	var buf [8]byte
	unix.Read(fd, buf[:])
}

// waiter makes a queue's TryRecv blocking for RecvBatch callers: an
// eventfd (made on the first blocking call, so that ports served by the
// switch's worker pool never have one) that Wake signals.
type waiter struct {
	fd      atomic.Int32 // eventfd, -1 until the first RecvBatch
	req     atomic.Bool  // a Wake not yet seen
	blocked atomic.Bool  // a receiver is in poll (for tests that need one blocked)
	pfds    [2]unix.PollFd
}

func (w *waiter) init() { w.fd.Store(-1) }

func (w *waiter) wake() {
	w.req.Store(true)
	if fd := w.fd.Load(); fd >= 0 {
		eventfdSignal(int(fd))
	}
}

func (w *waiter) close() {
	if fd := w.fd.Swap(-1); fd >= 0 {
		unix.Close(int(fd))
	}
}

// wait blocks until fd is readable or has an error, or Wake is called.
// It reports whether it was woken.
func (w *waiter) wait(fd int) (woke bool, err error) {
	if w.fd.Load() < 0 {
		efd, err := newEventfd()
		if err != nil {
			return false, err
		}
		w.fd.Store(int32(efd))
	}
	if w.req.Swap(false) {
		return true, nil
	}
	w.pfds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	w.pfds[1] = unix.PollFd{Fd: w.fd.Load(), Events: unix.POLLIN}
	w.blocked.Store(true)
	for {
		_, err = unix.Poll(w.pfds[:], -1)
		if err != unix.EINTR {
			break
		}
	}
	w.blocked.Store(false)
	if err != nil {
		return false, err
	}
	if w.pfds[1].Revents != 0 {
		eventfdDrain(int(w.fd.Load()))
		w.req.Store(false)
		return true, nil
	}
	return false, nil
}

// receiver is what recvBlocking needs of a port.
type receiver interface {
	TryRecv(q int, b *Batch) (int, error)
	Arm(q int) bool
	Name() string
}

// recvBlocking is RecvBatch for ports whose queues have a pollable fd.
func recvBlocking(p receiver, q int, b *Batch, w *waiter, fd int, st *ifaceState) (int, error) {
	for {
		n, err := p.TryRecv(q, b)
		if n > 0 || err != nil {
			return n, err
		}
		if !p.Arm(q) {
			continue
		}
		st.fdMu.RLock()
		if st.fdsClosed {
			st.fdMu.RUnlock()
			return 0, ErrClosed
		}
		woke, err := w.wait(fd)
		st.fdMu.RUnlock()
		if st.closed.Load() {
			return 0, ErrClosed
		}
		if err != nil {
			return 0, fmt.Errorf("port %s: poll: %w", p.Name(), err)
		}
		if woke {
			return 0, nil
		}
	}
}

// ifaceState is what AFPacket and TAP ports share about their interface.
type ifaceState struct {
	ctl       ifctl
	mtu       atomic.Int64
	closed    atomic.Bool
	gone      atomic.Bool
	goneMu    sync.Mutex
	goneErr   error        // why the interface is gone, once it is
	fdMu      sync.RWMutex // held for writing while fds are closed
	fdsClosed bool
}

// MTU returns the interface's MTU (the last one known once the port is
// closed).
func (s *ifaceState) MTU() int {
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if !s.fdsClosed {
		if m, err := s.ctl.mtu(); err == nil {
			s.mtu.Store(int64(m))
		}
	}
	return int(s.mtu.Load())
}

// Up reports whether the interface is up and running.
func (s *ifaceState) Up() bool {
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	return !s.fdsClosed && !s.gone.Load() && s.ctl.up()
}

// setGone records, once, that the interface is gone, and returns the
// error every later call reports.
func (s *ifaceState) setGone(err error) error {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	if s.goneErr == nil {
		s.goneErr = err
		s.gone.Store(true)
	}
	return s.goneErr
}

func (s *ifaceState) goneError() error {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	return s.goneErr
}

// usable is the check before each send: ErrClosed after Close, the
// recorded error once the interface is gone.
func (s *ifaceState) usable() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.gone.Load() {
		return s.goneError()
	}
	return nil
}
