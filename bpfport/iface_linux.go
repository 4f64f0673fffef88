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

// pollIn waits until fd is readable or has an error, or wakefd is
// signalled. It returns fd's revents and whether wakefd fired.
func pollIn(fds *[2]unix.PollFd, fd, wakefd int) (revents int16, woke bool, err error) {
	fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	fds[1] = unix.PollFd{Fd: int32(wakefd), Events: unix.POLLIN}
	for {
		_, err = unix.Poll(fds[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		if fds[1].Revents != 0 {
			eventfdDrain(wakefd)
			woke = true
		}
		return fds[0].Revents, woke, nil
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
