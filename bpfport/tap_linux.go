package bpfport

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TAP is a port on a TAP device: frames the host's stack sends out of the
// device are received, frames sent are injected into the stack as if they
// arrived on the device.
//
// The device is opened with IFF_VNET_HDR and checksum and TSO offloads on
// (TUNSETOFFLOAD), so the host's stack hands over super-frames and partial
// checksums as they are, and takes them back the same way: TCP through a
// TAP port costs one system call per super-frame, not per segment, and a
// VM's virtio-net offloads work end to end. The kernel reads and writes one
// frame per system call on a TAP file; the port batches by reading into the
// receiver's arena until the device is empty or the batch full.
type TAP struct {
	ifaceState // link, MTU, gone, fds closed: MTU and Up
	name       string
	ifindex    int
	queues     []*tapQueue
	stats      []queueStats
	created    bool
	offload    bool
}

type tapQueue struct {
	rxMu sync.Mutex
	txMu sync.Mutex
	fd   int
	w    waiter
	iov  [2]unix.Iovec
	hdr  [vnetHdrLen]byte
	_    [64]byte
}

// tapRoom is the arena space one read may fill: a virtio_net_hdr and the
// longest super-frame, rounded.
const tapRoom = vnetHdrLen + MaxSuperFrame + 64

// OpenTAP opens the TAP device name in the calling thread's network
// namespace, creating it if it does not exist (unless cfg.NoCreate), and
// brings it up. A device created here disappears when the port is closed.
func OpenTAP(name string, cfg TAPConfig) (*TAP, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap name %q: must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	existed := false
	if l, err := netlink.LinkByName(name); err == nil {
		existed = true
		tt, ok := l.(*netlink.Tuntap)
		if !ok {
			return nil, fmt.Errorf("interface %q exists and is a %s, not a TAP device: choose another name or delete it with \"ip link del %s\": %w",
				name, l.Type(), name, ErrInUse)
		}
		if tt.Mode != netlink.TUNTAP_MODE_TAP {
			return nil, fmt.Errorf("interface %q is a TUN device, not a TAP device: choose another name: %w", name, ErrInUse)
		}
	} else if cfg.NoCreate {
		return nil, fmt.Errorf("tap %q not found: create it with \"ip tuntap add %s mode tap\" or allow creation: %w", name, name, ErrNotFound)
	}
	t := &TAP{name: name, stats: make([]queueStats, cfg.Queues), created: !existed, offload: !cfg.NoOffload}
	t.ctl = ifctl{fd: -1}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if cfg.Queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	for q := 0; q < cfg.Queues; q++ {
		tq, err := openTapQueue(name, flags, cfg)
		if tq != nil {
			t.queues = append(t.queues, tq)
		}
		if err != nil {
			t.release()
			return nil, err
		}
	}
	l, err := lookupLink(name)
	if err != nil {
		t.release()
		return nil, err
	}
	t.ifindex = l.Attrs().Index
	if t.ctl, err = newIfctl(t.ifindex); err != nil {
		t.release()
		return nil, err
	}
	if cfg.MTU > 0 && cfg.MTU != l.Attrs().MTU {
		if err := netlink.LinkSetMTU(l, cfg.MTU); err != nil {
			t.release()
			return nil, fmt.Errorf("tap %s: setting MTU %d: %w", name, cfg.MTU, permErr(err))
		}
	}
	if err := setUp(l); err != nil {
		t.release()
		return nil, err
	}
	mtu := cfg.MTU
	if mtu <= 0 {
		mtu = l.Attrs().MTU
	}
	t.mtu.Store(int64(mtu))
	return t, nil
}

// tapOffloads are the offloads a TAP port takes from the host's stack:
// partial checksums, TCP segmentation (IPv4, IPv6, with ECN), and UDP
// segmentation where the kernel knows it (6.2 and later).
const (
	tapOffloads    = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN
	tunFUSO4       = 0x20
	tunFUSO6       = 0x40
	tapOffloadsUSO = tapOffloads | tunFUSO4 | tunFUSO6
)

func openTapQueue(name string, flags uint16, cfg TAPConfig) (*tapQueue, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("tap %s: /dev/net/tun missing: load the tun module (modprobe tun): %w", name, ErrNotSupported)
		}
		return nil, fmt.Errorf("tap %s: open /dev/net/tun: %w", name, permErr(err))
	}
	tq := &tapQueue{fd: fd}
	tq.w.init()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return tq, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			return tq, fmt.Errorf("tap %q is in use by another process (it is not multi-queue): close that program or choose another name: %w", name, ErrInUse)
		case errors.Is(err, unix.EINVAL) && cfg.Queues > 1:
			return tq, fmt.Errorf("tap %q exists without multi-queue support: delete it (ip link del %s) or open it with one queue: %w", name, name, ErrInUse)
		case errors.Is(err, unix.EINVAL):
			return tq, fmt.Errorf("tap %q exists with multi-queue support or is in use: open it with Queues > 1 or choose another name: %w", name, ErrInUse)
		}
		return tq, fmt.Errorf("tap %s: TUNSETIFF: %w", name, permErr(err))
	}
	off := 0
	if !cfg.NoOffload {
		off = tapOffloadsUSO
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off); err != nil {
			off = tapOffloads // an older kernel without UDP segmentation
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off); err != nil {
		return tq, fmt.Errorf("tap %s: TUNSETOFFLOAD: %w", name, err)
	}
	return tq, nil
}

// Name returns the device name.
func (t *TAP) Name() string { return t.name }

// NumQueues returns the number of queues.
func (t *TAP) NumQueues() int { return len(t.queues) }

// MTU returns the device's current MTU.

// Stats returns the port's counters.
func (t *TAP) Stats() Stats { return sumStats(t.stats) }

// Caps implements Port: the host's stack takes offloaded frames.
func (t *TAP) Caps() Caps {
	if t.offload {
		return CapOffload
	}
	return 0
}

// Wake makes blocked RecvBatch calls return 0, nil.
func (t *TAP) Wake() {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdsClosed {
		return
	}
	for _, tq := range t.queues {
		tq.w.wake()
	}
}

func (t *TAP) ioError(err error) error {
	e := t.ctl.linkError(t.name, err)
	if errors.Is(e, ErrLinkGone) {
		return t.setGone(e)
	}
	if errors.Is(err, unix.EBADFD) {
		return t.setGone(fmt.Errorf("port %s: device detached (%v): %w", t.name, err, ErrLinkGone))
	}
	return e
}

// PollFD implements Port: the queue's file.
func (t *TAP) PollFD(q int) int {
	if uint(q) >= uint(len(t.queues)) {
		return -1
	}
	return t.queues[q].fd
}

// RecvBatch implements Port.
func (t *TAP) RecvBatch(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(t.queues)) {
		return 0, badQueue(t.name, q, len(t.queues))
	}
	return recvBlocking(t, q, b, &t.queues[q].w, t.queues[q].fd, &t.ifaceState)
}

// TryRecv implements Port. Frames are read from the device into b.Arena.
func (t *TAP) TryRecv(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(t.queues)) {
		return 0, badQueue(t.name, q, len(t.queues))
	}
	tq := t.queues[q]
	tq.rxMu.Lock()
	defer tq.rxMu.Unlock()
	if t.closed.Load() {
		return 0, ErrClosed
	}
	if t.gone.Load() {
		return 0, t.goneError()
	}
	max := b.Len()
	st := &t.stats[q]
	n, arena := 0, 0
	var bytes, offl, oversize uint64
	var rerr error
	var now int64
	for n < max && arena+tapRoom <= len(b.Arena) {
		buf := b.Arena[arena : arena+tapRoom]
		k, err := unix.Read(tq.fd, buf)
		if err != nil {
			if err != unix.EAGAIN && err != unix.EINTR {
				rerr = err
			}
			break
		}
		if k < vnetHdrLen+14 || k >= len(buf) {
			oversize++
			continue
		}
		if now == 0 {
			now = time.Now().UnixNano()
		}
		o := parseVnetHdr(buf)
		if o.Pending() {
			offl++
		}
		b.Frames[n] = buf[vnetHdrLen:k:k]
		b.Offloads[n] = o
		b.Timestamps[n] = now
		bytes += uint64(k - vnetHdrLen)
		n++
		arena += (k + 63) &^ 63
	}
	if oversize > 0 {
		st.rxOversize.Add(oversize)
	}
	if offl > 0 {
		st.rxOffload.Add(offl)
	}
	if n > 0 {
		st.rxPackets.Add(uint64(n))
		st.rxBytes.Add(bytes)
		return n, nil
	}
	if rerr != nil {
		return 0, t.ioError(rerr)
	}
	return 0, nil
}

// Release implements Port: frames live in the receiver's arena.
func (t *TAP) Release(q int) {}

// Arm implements Port: the device's queue is level-triggered.
func (t *TAP) Arm(q int) bool { return !t.closed.Load() }

// SendBatch implements Port: one write per frame, with its virtio_net_hdr.
// frames[:n] were consumed (written, or dropped and counted);
// frames[n:] found the device's queue full.
func (t *TAP) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	if uint(q) >= uint(len(t.queues)) {
		return 0, badQueue(t.name, q, len(t.queues))
	}
	tq := t.queues[q]
	tq.txMu.Lock()
	defer tq.txMu.Unlock()
	if err := t.usable(); err != nil {
		return 0, err
	}
	st := &t.stats[q]
	mtu := int(t.mtu.Load())
	var sent, bytes, oversize, errs uint64
	i := 0
	var werr error
	for ; i < len(frames); i++ {
		f := frames[i]
		o := offloadAt(offl, i)
		if !plainFits(f, o, mtu) && !TxAccepts(f, o, mtu) {
			oversize++
			continue
		}
		putVnetHdr(tq.hdr[:], o)
		err := writev2(tq.fd, &tq.iov, tq.hdr[:], f)
		for err == unix.EINTR {
			err = writev2(tq.fd, &tq.iov, tq.hdr[:], f)
		}
		if err != nil {
			if err == unix.EAGAIN || err == unix.ENOBUFS {
				break
			}
			if err == unix.EINVAL || err == unix.EMSGSIZE {
				errs++
				continue
			}
			werr = err
			break
		}
		sent++
		bytes += uint64(len(f))
	}
	st.txPackets.Add(sent)
	st.txBytes.Add(bytes)
	if oversize > 0 {
		st.txOversize.Add(oversize)
	}
	if errs > 0 {
		st.txErrors.Add(errs)
	}
	if rest := len(frames) - i; rest > 0 {
		st.txRingFull.Add(uint64(rest))
	}
	if werr != nil {
		return i, t.ioError(werr)
	}
	return i, nil
}

// Close implements Port. A device this port created is deleted with its
// last file descriptor; an existing persistent device is left in place.
func (t *TAP) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.Wake()
	t.release()
	return nil
}

func (t *TAP) release() {
	t.closed.Store(true)
	for _, tq := range t.queues {
		tq.rxMu.Lock()
		tq.txMu.Lock()
	}
	t.fdMu.Lock()
	if !t.fdsClosed {
		for _, tq := range t.queues {
			unix.Close(tq.fd)
			tq.w.close()
		}
		t.ctl.close()
		t.fdsClosed = true
	}
	t.fdMu.Unlock()
	for _, tq := range t.queues {
		tq.txMu.Unlock()
		tq.rxMu.Unlock()
	}
}

var _ Port = (*TAP)(nil)
