package bpfport

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/internal/xdpprog"
)

// AFXDP is a port on a Linux interface through AF_XDP sockets: the
// fast path for real NICs.
//
// An XDP program on the interface (package internal/xdpprog) redirects
// every received frame to the AF_XDP socket of its queue; the kernel (in
// copy mode) or the NIC (zero-copy) writes it into a frame of the UMEM,
// memory the port shares with the kernel, and the port hands it to the
// receiver as a view into that memory, without a copy and without a
// system call while frames keep coming. Each queue has its own socket
// with four rings: fill (free frames for the kernel to receive into),
// receive, transmit and completion (frames whose transmission is done).
//
// Sending copies a frame into a free UMEM frame and queues its descriptor,
// unless the frame already lives in the port's UMEM (received by an AF_XDP
// port sharing it, see UMEMGroup): its descriptor is then queued as it is,
// and a reference count keeps the frame from being reused until every
// port it was sent on completed it. The transmit ring is kicked with one
// sendto(2) per batch when the kernel asks for it (the ring's need_wakeup
// flag: always in copy mode, rarely with a zero-copy driver).
//
// Frames carry no offload description (the XDP hook sees finished frames;
// native XDP on veth turns TSO off on its peer), so Caps is 0 and frames
// with pending offloads from other ports are finished or segmented in
// software on send.
//
// Readiness: PollFD(q) is an epoll set of the queue's socket and of a
// netlink socket that hears about link changes of the interface's
// namespace: an AF_XDP socket signals nothing when its link goes down or
// away, so the netlink socket wakes the switch, which then finds out
// (Arm, TryRecv) and reports ErrLinkDown or ErrLinkGone.
type AFXDP struct {
	ifaceState
	name    string
	ifindex int
	cfg     AFXDPConfig
	info    AFXDPInfo
	prog    *xdpprog.Program
	um      *umem
	qs      []*xsk
	stats   []queueStats
	nlfd    int // link notifications (RTMGRP_LINK)
	nlMu    sync.Mutex
	nlBuf   []byte
	promfd  int // AF_PACKET socket holding a promiscuous membership, -1
	down    atomic.Bool
	reserve int // frames reserved in the UMEM

	zcSent, copied atomic.Uint64
	kstats         unix.XDPStatistics // of closed sockets
}

// xsk is one queue: its socket, the poll set, and its four rings.
type xsk struct {
	q    int
	fd   int
	epfd int

	// receive side, under rxMu
	rxMu   sync.Mutex
	rx     xdpRing
	fill   xdpRing
	lent   []uint64 // frames of the last receive
	held   int      // frames in the fill ring, the kernel, the receive ring or lent
	target int      // frames the receive side keeps (the fill ring's size)
	refill []uint64 // scratch for frames taken from the pool
	// mine has a bit per UMEM frame the receive side holds in the fill
	// ring, the kernel or the receive ring (not lent ones): what Close
	// gives back. Only this queue touches it.
	mine  []uint64
	rxErr atomic.Int32
	w     waiter
	_     [64]byte

	// transmit side, under txMu
	txMu  sync.Mutex
	tx    xdpRing
	comp  xdpRing
	out   int      // frames posted and not completed
	cache []uint64 // free frames for copies
	txCap int      // most frames posted and not completed (the ring's size)
	freed []uint64 // scratch for frames completed
	_     [64]byte
}

const (
	xdpTxCache   = 64 // free frames a transmit queue keeps for copies
	xdpHeadroom  = unix.XDP_PACKET_HEADROOM
	xdpCloseWait = 200 * time.Millisecond // for transmissions in flight on Close
	xdpBusyWait  = 2 * time.Second        // for a queue a closed socket still holds
)

// xdpFrameSize returns the UMEM frame size for an interface MTU: frames
// hold the kernel's 256 bytes of headroom and a frame with a VLAN tag.
func xdpFrameSize(mtu int) (int, error) {
	need := xdpHeadroom + mtu + 18
	for _, fs := range []int{2048, 4096} {
		if need <= fs {
			return fs, nil
		}
	}
	return 0, fmt.Errorf("MTU %d is too large for AF_XDP without multi-buffer frames (at most %d): use an afpacket port or lower the MTU", mtu, 4096-xdpHeadroom-18)
}

// OpenAFXDP opens an AF_XDP port on interface ifname in the calling
// thread's network namespace, attaches the redirect program and brings the
// interface up. It refuses an interface that runs another XDP program
// (ErrInUse, naming it) and removes a program a crashed vswitch left
// behind. Where the driver lacks native XDP or zero-copy, XDPAuto and
// ZeroCopyAuto fall back and say so in Info().Notes.
func OpenAFXDP(ifname string, cfg AFXDPConfig) (_ *AFXDP, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("af_xdp %s: %w", ifname, err)
	}
	link, err := lookupLink(ifname)
	if err != nil {
		return nil, err
	}
	attrs := link.Attrs()
	frameSize, err := xdpFrameSize(attrs.MTU)
	if err != nil {
		return nil, fmt.Errorf("af_xdp %s: %w", ifname, err)
	}
	p := &AFXDP{name: ifname, ifindex: attrs.Index, cfg: cfg, nlfd: -1, promfd: -1}
	p.mtu.Store(int64(attrs.MTU))
	if p.ctl, err = newIfctl(attrs.Index); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.closed.Store(true)
			p.release()
			err = fmt.Errorf("af_xdp %s: %w", ifname, err)
		}
	}()
	devQueues, qerr := rxQueueCount(p.ctl.fd, ifname)
	if qerr != nil || devQueues < 1 {
		devQueues = max(attrs.NumRxQueues, 1)
	}
	switch {
	case cfg.Queues == 0:
		cfg.Queues = devQueues
	case cfg.Queues > devQueues:
		return nil, fmt.Errorf("%d queues: the interface has %d receive queues (more with \"ethtool -L %s combined N\" where the driver allows)", cfg.Queues, devQueues, ifname)
	case cfg.Queues < devQueues:
		p.note("serving %d of %d receive queues: frames the NIC steers to queues %d..%d go to the host's stack, not the switch (\"ethtool -L %s combined %d\" or --queues %d)",
			cfg.Queues, devQueues, cfg.Queues, devQueues-1, ifname, cfg.Queues, devQueues)
	}
	p.cfg = cfg
	if err := p.checkAttached(); err != nil {
		return nil, err
	}
	if err := setUp(link); err != nil {
		return nil, err
	}
	feats, ferr := xdpprog.Features(p.ifindex)
	if p.prog, err = xdpprog.Load(devQueues); err != nil {
		return nil, permErr(err)
	}
	if err := p.attach(feats, ferr == nil); err != nil {
		return nil, err
	}
	wantZC := p.prog.Mode() == xdpprog.Native && cfg.ZeroCopy != ZeroCopyOff
	if ferr == nil && feats&xdpprog.FeatureXSKZeroCopy == 0 && wantZC {
		if cfg.ZeroCopy == ZeroCopyOn {
			return nil, fmt.Errorf("zero-copy: the driver of %s does not support AF_XDP zero-copy: use --zero-copy auto or off: %w", ifname, ErrNotSupported)
		}
		p.note("zero-copy: the driver does not support it; copy mode")
		wantZC = false
	}
	if cfg.ZeroCopy == ZeroCopyOn && p.prog.Mode() != xdpprog.Native {
		return nil, fmt.Errorf("zero-copy needs native XDP, which %s does not have: %w", ifname, ErrNotSupported)
	}
	p.stats = make([]queueStats, cfg.Queues)
	for q := 0; q < cfg.Queues; q++ {
		x, err := newXSK(q, cfg.RingSize)
		if x != nil {
			p.qs = append(p.qs, x)
		}
		if err != nil {
			return nil, fmt.Errorf("queue %d: %w", q, err)
		}
	}
	g := cfg.Share
	if g == nil {
		g = &UMEMGroup{} // a UMEM of the port's own, of just the frames it needs
	}
	if err := g.join(p, frameSize, wantZC); err != nil {
		return nil, err
	}
	for _, x := range p.qs {
		if err := p.prog.SetSocket(x.q, x.fd); err != nil {
			return nil, err
		}
	}
	if err := p.openMonitor(); err != nil {
		return nil, err
	}
	if !cfg.NoPromisc {
		if err := p.promisc(); err != nil {
			return nil, err
		}
	}
	p.info.XDPMode = p.prog.Mode().String()
	p.info.ZeroCopy = p.um.zc
	p.info.Queues = cfg.Queues
	p.info.DeviceQueues = devQueues
	p.info.RingSize = cfg.RingSize
	p.info.FrameSize = frameSize
	p.info.UMEMFrames = p.um.n
	p.info.SharedUMEM = cfg.Share != nil
	return p, nil
}

func (p *AFXDP) note(format string, args ...any) {
	p.info.Notes = append(p.info.Notes, fmt.Sprintf(format, args...))
}

// checkAttached refuses an interface with another XDP program and removes
// one a vswitch process that is gone left behind.
func (p *AFXDP) checkAttached() error {
	a, err := xdpprog.Inspect(p.ifindex)
	if err != nil {
		return err
	}
	if a == nil {
		return nil
	}
	if !a.Ours {
		return fmt.Errorf("the interface already runs %v, which is not vswitch's: vswitch does not replace it (remove it with \"ip link set dev %s xdp off\" if it is not needed, or attach with --type afpacket): %w",
			a, p.name, ErrInUse)
	}
	if a.OwnerAlive {
		return fmt.Errorf("the interface is already an AF_XDP port of vswitch (%v): detach it there first: %w", a, ErrInUse)
	}
	if err := xdpprog.RemoveStale(p.ifindex, a); err != nil {
		if errors.Is(err, xdpprog.ErrLive) {
			return fmt.Errorf("the interface runs %v, still held by a bpf_link of some process: %w", a, ErrInUse)
		}
		return fmt.Errorf("removing a stale %v: %w", a, err)
	}
	p.note("removed a stale %v left by a vswitch process that is gone", a)
	return nil
}

// attach attaches the program in the configured mode, falling back from
// native to generic in XDPAuto.
func (p *AFXDP) attach(feats uint64, featsKnown bool) error {
	mode := p.cfg.XDPMode
	if mode == XDPAuto && featsKnown && feats&xdpprog.FeatureBasic == 0 {
		p.note("native XDP: the driver does not support it; generic mode (slower)")
		mode = XDPGeneric
	}
	if mode != XDPGeneric {
		err := p.prog.Attach(p.ifindex, xdpprog.Native, p.cfg.viaNetlink)
		if err == nil {
			return nil
		}
		if mode == XDPNative {
			return fmt.Errorf("attaching the XDP program in native mode: %w (try --xdp-mode generic)", permErr(err))
		}
		p.note("native XDP: %v; generic mode (slower)", err)
	}
	if err := p.prog.Attach(p.ifindex, xdpprog.Generic, p.cfg.viaNetlink); err != nil {
		return fmt.Errorf("attaching the XDP program in generic mode: %w", permErr(err))
	}
	return nil
}

// newXSK creates queue q's socket with its four rings of n entries each
// (mapped, not yet bound).
func newXSK(q, n int) (*xsk, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("AF_XDP socket: %w: the kernel has no AF_XDP (CONFIG_XDP_SOCKETS, Linux 5.4 or later): %w", err, ErrNotSupported)
		}
		return nil, fmt.Errorf("AF_XDP socket: %w", permErr(err))
	}
	x := &xsk{q: q, fd: fd, epfd: -1, target: n, txCap: n}
	x.w.init()
	for _, r := range []struct {
		opt  int
		name string
	}{{unix.XDP_UMEM_FILL_RING, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, "completion"},
		{unix.XDP_RX_RING, "receive"}, {unix.XDP_TX_RING, "transmit"}} {
		if err := setInt(fd, unix.SOL_XDP, r.opt, n, r.name+" ring"); err != nil {
			return x, err
		}
	}
	// One sendto processes the whole transmit ring in copy mode rather
	// than 32 frames (Linux 6.17; older kernels keep 32).
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, n)
	off, err := xdpMmapOffsets(fd)
	if err != nil {
		return x, fmt.Errorf("XDP_MMAP_OFFSETS: %w", err)
	}
	if x.fill, err = mapXDPRing(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, n, false); err != nil {
		return x, fmt.Errorf("mapping the fill ring: %w", err)
	}
	if x.comp, err = mapXDPRing(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, n, false); err != nil {
		return x, fmt.Errorf("mapping the completion ring: %w", err)
	}
	if x.rx, err = mapXDPRing(fd, unix.XDP_PGOFF_RX_RING, off.Rx, n, true); err != nil {
		return x, fmt.Errorf("mapping the receive ring: %w", err)
	}
	if x.tx, err = mapXDPRing(fd, unix.XDP_PGOFF_TX_RING, off.Tx, n, true); err != nil {
		return x, fmt.Errorf("mapping the transmit ring: %w", err)
	}
	x.lent = make([]uint64, 0, n)
	x.refill = make([]uint64, n)
	x.cache = make([]uint64, 0, xdpTxCache)
	x.freed = make([]uint64, 0, n)
	return x, nil
}

// bind binds x to queue x.q of the port's interface: as the UMEM's first
// socket with flags, or sharing the UMEM of the bound socket shared.
func (p *AFXDP) bind(x *xsk, flags uint16, shared int) error {
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(p.ifindex), QueueID: uint32(x.q)}
	if shared >= 0 {
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(shared)
	}
	// A socket closed just before (this port reopened, or a port of
	// another switch detached) gives its queue up in a kernel work item,
	// shortly after close(2) returned: EBUSY until then.
	deadline := time.Now().Add(xdpBusyWait)
	for {
		err := unix.Bind(x.fd, sa)
		if err != unix.EBUSY || time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openMonitor opens the netlink socket that hears link changes and the
// per-queue epoll sets.
func (p *AFXDP) openMonitor() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	p.nlfd = fd
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	p.nlBuf = make([]byte, 16<<10)
	for _, x := range p.qs {
		if x.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			return fmt.Errorf("epoll_create1: %w", err)
		}
		for _, fd := range []int{x.fd, p.nlfd} {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
			if err := unix.EpollCtl(x.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				return fmt.Errorf("epoll_ctl: %w", err)
			}
		}
	}
	return nil
}

// promisc makes the interface promiscuous for as long as the port is
// open, through a membership of an AF_PACKET socket that receives nothing
// (protocol 0): the kernel drops it when the socket closes, even when the
// process dies.
func (p *AFXDP) promisc() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("promiscuous mode: %w", permErr(err))
	}
	p.promfd = fd
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return fmt.Errorf("promiscuous mode: bind: %w", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(p.ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fmt.Errorf("promiscuous membership: %w", err)
	}
	return nil
}

// Name returns the interface name given to OpenAFXDP.
func (p *AFXDP) Name() string { return p.name }

// NumQueues returns the number of queues.
func (p *AFXDP) NumQueues() int { return len(p.qs) }

// Info describes the port's settings after fall-backs.
func (p *AFXDP) Info() AFXDPInfo {
	i := p.info
	i.Notes = append([]string(nil), i.Notes...)
	return i
}

// Counters returns the AF_XDP-specific counters.
func (p *AFXDP) Counters() XDPCounters {
	return XDPCounters{ZeroCopySent: p.zcSent.Load(), CopiedSent: p.copied.Load()}
}

// Caps implements Port: AF_XDP frames carry no offload description.
func (p *AFXDP) Caps() Caps { return 0 }

// Stats implements Port, with the kernel's drops (a full receive ring or
// no free frame in the fill ring).
func (p *AFXDP) Stats() Stats {
	s := sumStats(p.stats)
	k := p.kernelStats()
	s.RxKernelDrops = k.Rx_dropped + k.Rx_ring_full
	s.TxErrors += k.Tx_invalid_descs
	return s
}

func (p *AFXDP) kernelStats() unix.XDPStatistics {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	k := p.kstats
	if !p.fdsClosed {
		for _, x := range p.qs {
			addXDPStats(&k, x.fd)
		}
	}
	return k
}

func addXDPStats(k *unix.XDPStatistics, fd int) {
	st, err := xdpStatistics(fd)
	if err != nil {
		return
	}
	k.Rx_dropped += st.Rx_dropped
	k.Rx_ring_full += st.Rx_ring_full
	k.Rx_invalid_descs += st.Rx_invalid_descs
	k.Tx_invalid_descs += st.Tx_invalid_descs
	k.Rx_fill_ring_empty_descs += st.Rx_fill_ring_empty_descs
	k.Tx_ring_empty_descs += st.Tx_ring_empty_descs
}

// PollFD implements Port: the queue's epoll set (its socket and the link
// monitor).
func (p *AFXDP) PollFD(q int) int {
	if uint(q) >= uint(len(p.qs)) {
		return -1
	}
	return p.qs[q].epfd
}

// Wake makes blocked RecvBatch calls return 0, nil.
func (p *AFXDP) Wake() {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.fdsClosed {
		return
	}
	for _, x := range p.qs {
		x.w.wake()
	}
}

// RecvBatch implements Port.
func (p *AFXDP) RecvBatch(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.qs)) {
		return 0, badQueue(p.name, q, len(p.qs))
	}
	x := p.qs[q]
	return recvBlocking(p, q, b, &x.w, x.epfd, &p.ifaceState)
}

// TryRecv implements Port. Frames are views into the UMEM, lent until the
// next receive, Release or Arm of q, when they go back to the fill ring
// (or, sent on by descriptor, once their transmission completed).
func (p *AFXDP) TryRecv(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.qs)) {
		return 0, badQueue(p.name, q, len(p.qs))
	}
	x := p.qs[q]
	x.rxMu.Lock()
	defer x.rxMu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	p.releaseLent(x)
	if e := x.rxErr.Swap(0); e != 0 {
		return 0, p.ioError(unix.Errno(e))
	}
	if p.gone.Load() {
		return 0, p.goneError()
	}
	if p.down.Load() {
		if err := p.downState(); err != nil {
			return 0, err
		}
	}
	return p.receive(x, b, &p.stats[q]), nil
}

// Release implements Port.
func (p *AFXDP) Release(q int) {
	if uint(q) >= uint(len(p.qs)) {
		return
	}
	x := p.qs[q]
	x.rxMu.Lock()
	if !p.closed.Load() {
		p.releaseLent(x)
	}
	x.rxMu.Unlock()
}

// Arm implements Port. It gives lent frames back, asks the driver for a
// refill where it wants one, collects link changes, and kicks transmissions
// the kernel has not taken yet.
func (p *AFXDP) Arm(q int) bool {
	if uint(q) >= uint(len(p.qs)) {
		return false
	}
	x := p.qs[q]
	x.rxMu.Lock()
	defer x.rxMu.Unlock()
	if p.closed.Load() || p.fdsClosed {
		return false
	}
	p.releaseLent(x)
	if x.fill.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 {
		if err := xdpKickRx(x.fd); err == unix.ENETDOWN || err == unix.ENXIO {
			x.rxErr.Store(int32(err.(unix.Errno)))
			return false
		}
	}
	if p.linkEvents() || p.down.Load() || p.gone.Load() {
		return false
	}
	if x.txMu.TryLock() {
		if x.tx.cons.Load() != x.tx.head {
			_ = p.kickTx(x, nil)
		}
		x.txMu.Unlock()
	}
	return x.rx.prod.Load() == x.rx.head
}

// linkEvents drains the link monitor and, if it heard anything, looks at
// the link: it reports whether the link is down or gone.
func (p *AFXDP) linkEvents() bool {
	if !p.nlMu.TryLock() {
		return false // another queue is reading them
	}
	defer p.nlMu.Unlock()
	heard := false
	for {
		n, err := unix.Read(p.nlfd, p.nlBuf)
		if err == unix.EINTR {
			continue
		}
		if n > 0 || err == unix.ENOBUFS { // ENOBUFS: messages were lost
			heard = true
			continue
		}
		break
	}
	if !heard {
		return false
	}
	if err := p.downState(); err != nil {
		if errors.Is(err, ErrLinkDown) {
			p.down.Store(true)
		}
		return true
	}
	return false
}

// downState is TryRecv's check while the link is down: ErrLinkGone once
// it was deleted, ErrLinkDown while it stays down, nil when it is up.
func (p *AFXDP) downState() error {
	if _, err := p.ctl.name(); errors.Is(err, ErrLinkGone) {
		return p.setGone(fmt.Errorf("port %s: interface deleted: %w", p.name, ErrLinkGone))
	}
	if f, err := p.ctl.flags(); err == nil && f&unix.IFF_UP == 0 {
		return fmt.Errorf("port %s: interface is down: bring it up with \"ip link set %s up\": %w", p.name, p.name, ErrLinkDown)
	}
	p.down.Store(false)
	return nil
}

// ioError classifies an error of a socket: link deleted (sticky), link
// down, or something else.
func (p *AFXDP) ioError(err error) error {
	if err == unix.ENXIO { // the socket was unbound: its interface went away
		if _, nerr := p.ctl.name(); errors.Is(nerr, ErrLinkGone) {
			return p.setGone(fmt.Errorf("port %s: interface deleted: %w", p.name, ErrLinkGone))
		}
	}
	e := p.ctl.linkError(p.name, err)
	if errors.Is(e, ErrLinkGone) {
		return p.setGone(e)
	}
	if errors.Is(e, ErrLinkDown) {
		p.down.Store(true)
	}
	return e
}

// receive reads up to b.Len() frames from x's receive ring.
func (p *AFXDP) receive(x *xsk, b *Batch, st *queueStats) int {
	um := p.um
	avail := int(x.rx.prod.Load() - x.rx.head)
	n := min(avail, b.Len(), cap(x.lent))
	if n == 0 {
		return 0
	}
	now := time.Now().UnixNano()
	var bytes uint64
	k := 0
	for i := 0; i < n; i++ {
		d := &x.rx.descs[(x.rx.head+uint32(i))&x.rx.mask]
		addr, l := d.Addr, uint64(d.Len)
		c := addr >> um.shift
		if c >= uint64(um.n) || addr&um.chunkMask()+l > um.chunk {
			// The kernel never does this; drop it rather than trust it
			// (the frame is lost to the pool).
			x.held--
			st.rxOversize.Add(1)
			continue
		}
		um.refs[c].Store(1)
		x.mine[c>>6] &^= 1 << (c & 63)
		x.lent = append(x.lent, addr)
		b.Frames[k] = um.mem[addr : addr+l : addr+l]
		b.Timestamps[k] = now
		b.Offloads[k] = Offload{}
		bytes += l
		k++
	}
	x.rx.head += uint32(n)
	x.rx.cons.Store(x.rx.head)
	p.topUp(x)
	st.rxPackets.Add(uint64(k))
	st.rxBytes.Add(bytes)
	return k
}

// releaseLent gives the frames of the last receive back: to the fill ring
// at once, or to the transmit queues still holding them.
func (p *AFXDP) releaseLent(x *xsk) {
	if len(x.lent) == 0 {
		return
	}
	um := p.um
	f := &x.fill
	for _, addr := range x.lent {
		c := addr >> um.shift
		if um.refs[c].Add(-1) == 0 {
			// Free again: straight back to this queue's fill ring (the
			// receive side's count does not change).
			x.mine[c>>6] |= 1 << (c & 63)
			f.addrs[f.head&f.mask] = c << um.shift
			f.head++
		} else {
			x.held-- // a transmit queue holds it now
		}
	}
	x.lent = x.lent[:0]
	f.prod.Store(f.head)
	p.topUp(x)
}

// topUp fills x's fill ring from the UMEM's pool up to x.target frames
// held by the receive side.
func (p *AFXDP) topUp(x *xsk) {
	want := x.target - x.held
	if want < 32 && x.held > 0 {
		return // not worth the pool's lock yet
	}
	if want <= 0 {
		return
	}
	um := p.um
	n := um.take(x.refill[:want])
	if n == 0 {
		return
	}
	f := &x.fill
	for _, addr := range x.refill[:n] {
		c := addr >> um.shift
		x.mine[c>>6] |= 1 << (c & 63)
		f.addrs[f.head&f.mask] = addr
		f.head++
	}
	x.held += n
	f.prod.Store(f.head)
}

// SendBatch implements Port. A frame that lives in the port's UMEM is
// sent by descriptor; any other is copied into a free UMEM frame (a frame
// with a pending offload is finished or segmented on the way). frames[:n]
// were queued or dropped and counted; frames[n:] found the transmit ring
// (or the UMEM's free frames) exhausted.
func (p *AFXDP) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	if uint(q) >= uint(len(p.qs)) {
		return 0, badQueue(p.name, q, len(p.qs))
	}
	x := p.qs[q]
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if err := p.usable(); err != nil {
		return 0, err
	}
	st := &p.stats[q]
	mtu := int(p.mtu.Load())
	um := p.um
	p.reap(x)
	var queued, bytes, oversize, errs, segmented, zc, copied uint64
	i := 0
	t := &x.tx
	// Frames posted and not completed include those still in the ring,
	// so staying within txCap (the ring's size) never overruns it.
	free := x.txCap - x.out
frames:
	for ; i < len(frames); i++ {
		f := frames[i]
		o := offloadAt(offl, i)
		if !plainFits(f, o, mtu) && !TxAccepts(f, o, mtu) {
			oversize++
			continue
		}
		if !o.Pending() {
			if addr, ok := um.hold(f); ok {
				if free < 1 {
					um.unhold(addr)
					break
				}
				t.descs[t.head&t.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(f))}
				t.head++
				x.out++
				free--
				zc++
				queued++
				bytes += uint64(len(f))
				continue
			}
		}
		nseg := 1
		if o.Pending() {
			if nseg = SoftSegments(f, o); nseg == 0 {
				errs++
				continue
			}
		}
		if free < nseg || !p.reserveCopies(x, nseg) {
			break // all of a frame's segments go, or none
		}
		for s := 0; s < nseg; s++ {
			l := len(f)
			if o.Pending() {
				l = SoftSegmentLen(f, o, s)
			}
			if l > int(um.chunk) {
				oversize++
				continue frames // the segments written so far go; the rest is dropped
			}
			addr := x.cache[len(x.cache)-1]
			x.cache = x.cache[:len(x.cache)-1]
			um.refs[addr>>um.shift].Store(1)
			dst := um.mem[addr : addr+uint64(l)]
			if o.Pending() {
				WriteSoftSegment(dst, f, o, s)
			} else {
				copy(dst, f)
			}
			t.descs[t.head&t.mask] = unix.XDPDesc{Addr: addr, Len: uint32(l)}
			t.head++
			x.out++
			free--
			copied++
		}
		if nseg > 1 || o.GSO() {
			segmented++
		}
		queued++
		bytes += uint64(len(f))
	}
	var err error
	if zc+copied > 0 {
		t.prod.Store(t.head)
		err = p.kickTx(x, &errs)
	}
	st.txPackets.Add(queued)
	st.txBytes.Add(bytes)
	if oversize > 0 {
		st.txOversize.Add(oversize)
	}
	if errs > 0 {
		st.txErrors.Add(errs)
	}
	if segmented > 0 {
		st.txSegmented.Add(segmented)
	}
	if rest := len(frames) - i; rest > 0 {
		st.txRingFull.Add(uint64(rest))
	}
	if zc > 0 {
		p.zcSent.Add(zc)
	}
	if copied > 0 {
		p.copied.Add(copied)
	}
	if err != nil {
		return i, err
	}
	return i, nil
}

// reserveCopies makes sure x's cache has n free frames, taking them from
// the UMEM's pool within x's share.
func (p *AFXDP) reserveCopies(x *xsk, n int) bool {
	if len(x.cache) >= n {
		return true
	}
	want := cap(x.cache) - len(x.cache)
	got := p.um.take(x.cache[len(x.cache) : len(x.cache)+want])
	x.cache = x.cache[:len(x.cache)+got]
	return len(x.cache) >= n
}

// reap takes completed transmissions off x's completion ring and frees
// the frames no one else holds.
func (p *AFXDP) reap(x *xsk) {
	c := &x.comp
	prod := c.prod.Load()
	if prod == c.head {
		return
	}
	um := p.um
	for ; c.head != prod; c.head++ {
		addr := c.addrs[c.head&c.mask]
		k := addr >> um.shift
		x.out--
		if um.refs[k].Add(-1) != 0 {
			continue // still lent by a receiver or queued on another port
		}
		base := k << um.shift
		if len(x.cache) < cap(x.cache) {
			x.cache = append(x.cache, base)
		} else {
			x.freed = append(x.freed, base)
		}
	}
	c.cons.Store(c.head)
	if len(x.freed) > 0 {
		um.put(x.freed)
		x.freed = x.freed[:0]
	}
}

// kickTx has the kernel process x's transmit ring when it asks for it. In
// copy mode the kernel sends in the calling thread and may stop early: at
// its budget or with the completion ring full it is kicked again, a
// bounded number of times; after frames the device dropped, once. What is
// left goes with the next kick.
func (p *AFXDP) kickTx(x *xsk, errs *uint64) error {
	t := &x.tx
	busy := 0
	for tries := 0; tries < 4+len(t.descs)/32; tries++ {
		if t.flags.Load()&unix.XDP_RING_NEED_WAKEUP == 0 {
			return nil // the driver is running and will see them
		}
		err := xdpKickTx(x.fd)
		switch err {
		case nil:
			if t.cons.Load() != t.head && !p.um.zc {
				// Copy mode returned with descriptors left: the queue id
				// has no transmit queue. Nothing more to do now.
				return nil
			}
		case unix.EAGAIN, unix.ENOBUFS:
			p.reap(x) // the completion ring may be what is full
		case unix.EBUSY:
			// The device dropped a frame (its queue, or a veth peer's
			// backlog, is full). After a second one the rest waits in the
			// ring for the next kick rather than being pushed into a full
			// queue now: the ring filling up is the switch's backpressure,
			// as a full socket buffer is for AF_PACKET ports.
			if errs != nil {
				*errs++
			}
			if busy++; busy > 1 {
				p.reap(x)
				return nil
			}
		case unix.EINTR:
		case unix.ENETDOWN, unix.ENXIO:
			return p.ioError(err)
		default:
			return fmt.Errorf("port %s: sendto: %w", p.name, err)
		}
		if t.cons.Load() == t.head {
			p.reap(x)
			return nil
		}
	}
	return nil
}

// Close implements Port. It detaches the XDP program, waits briefly for
// transmissions in flight, closes the sockets and gives the port's frames
// back to its UMEM (released with its last port). A late reader of frames
// lent before Close reads stale data, never unmapped memory.
func (p *AFXDP) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.Wake()
	p.release()
	return nil
}

func (p *AFXDP) release() {
	p.closed.Store(true)
	for _, x := range p.qs {
		x.rxMu.Lock()
		x.txMu.Lock()
	}
	p.fdMu.Lock()
	if !p.fdsClosed {
		if p.prog != nil {
			p.prog.Close() // detach first: the kernel stops redirecting
		}
		if p.um != nil {
			p.drainTx()
		}
		for _, x := range p.qs {
			addXDPStats(&p.kstats, x.fd)
		}
		var g *UMEMGroup
		if p.um != nil {
			g = p.um.g
			g.mu.Lock()
			p.um.dropSockets(p.qs)
		}
		for _, x := range p.qs {
			unix.Close(x.fd)
			if x.epfd >= 0 {
				unix.Close(x.epfd)
			}
			x.w.close()
		}
		if p.um != nil {
			p.reclaim()
			p.um.leave(p.reserve)
			g.mu.Unlock()
		}
		for _, x := range p.qs {
			x.rx.unmap()
			x.fill.unmap()
			x.tx.unmap()
			x.comp.unmap()
		}
		for _, fd := range []int{p.nlfd, p.promfd} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		p.ctl.close()
		p.fdsClosed = true
	}
	p.fdMu.Unlock()
	for _, x := range p.qs {
		x.txMu.Unlock()
		x.rxMu.Unlock()
	}
}

// drainTx waits up to xdpCloseWait for transmissions in flight to
// complete, so that their frames can be reused.
func (p *AFXDP) drainTx() {
	deadline := time.Now().Add(xdpCloseWait)
	for {
		pending := 0
		for _, x := range p.qs {
			if x.tx.mem == nil {
				continue
			}
			p.reap(x)
			if x.out > 0 && x.tx.cons.Load() != x.tx.head {
				if err := xdpKickTx(x.fd); err == unix.ENETDOWN || err == unix.ENXIO {
					continue // never sent: reclaim takes them back
				}
			}
			pending += x.out
		}
		if pending == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// reclaim gives every frame the closed sockets held back to the UMEM's
// pool. Frames a transmission still holds after drainTx stay out of the
// pool for good (counted as leaked), since the device may still read
// them. Called with the group's lock held, after the sockets closed.
func (p *AFXDP) reclaim() {
	um := p.um
	var back []uint64
	for _, x := range p.qs {
		if x.tx.mem != nil {
			p.reap(x)
			// The frames not completed are the last x.out posted; those
			// the kernel has not taken either were never sent. (The
			// kernel may take a frame without publishing its consumer
			// index when it drops it, but a dropped frame is completed,
			// so it is not among the last x.out.)
			h := x.tx.head - uint32(x.out)
			if c := x.tx.cons.Load(); int32(c-h) > 0 {
				h = c
			}
			for ; h != x.tx.head; h++ {
				addr := x.tx.descs[h&x.tx.mask].Addr
				x.out--
				if um.refs[addr>>um.shift].Add(-1) == 0 {
					back = append(back, addr>>um.shift<<um.shift)
				}
			}
			um.leaked += x.out // in flight in the device: never reused
		}
		back = append(back, x.cache...)
		x.cache = x.cache[:0]
		for _, addr := range x.lent {
			if um.refs[addr>>um.shift].Add(-1) == 0 {
				back = append(back, addr>>um.shift<<um.shift)
			}
		}
		if len(x.lent) > 0 {
			um.lentAtClose = true
		}
		x.lent = x.lent[:0]
		// Frames in the fill ring, inside the kernel or in the receive
		// ring: the socket is gone, so none of them is written any more.
		for w, word := range x.mine {
			for ; word != 0; word &= word - 1 {
				c := uint64(w)<<6 | uint64(bits.TrailingZeros64(word))
				back = append(back, c<<um.shift)
			}
			x.mine[w] = 0
		}
	}
	um.putLocked(back)
}

// umem is a UMEM: memory registered with the kernel for AF_XDP sockets,
// cut into frames of chunk bytes, with a pool of free frames and a
// reference count per frame.
type umem struct {
	g     *UMEMGroup
	mem   []byte
	chunk uint64
	shift uint
	n     int
	zc    bool

	refs []atomic.Int32 // holders of each frame: a lent receive, each transmit queue

	mu   sync.Mutex // the pool
	free []uint64   // free frames (addresses of their first byte)
	// The rest is under the group's lock.
	reserved    int   // frames reserved by member queues
	leaked      int   // frames lost to transmissions that never completed
	socks       []int // bound sockets, for binding more with XDP_SHARED_UMEM
	members     int
	lentAtClose bool
}

func (u *umem) chunkMask() uint64 { return u.chunk - 1 }

// take moves up to len(dst) free frames into dst and returns how many.
func (u *umem) take(dst []uint64) int {
	u.mu.Lock()
	n := min(len(dst), len(u.free))
	copy(dst, u.free[len(u.free)-n:])
	u.free = u.free[:len(u.free)-n]
	u.mu.Unlock()
	return n
}

// put returns frames to the pool.
func (u *umem) put(addrs []uint64) {
	u.mu.Lock()
	u.putLocked(addrs)
	u.mu.Unlock()
}

func (u *umem) putLocked(addrs []uint64) {
	u.free = append(u.free, addrs...)
}

// hold takes a reference on the frame f if f is a frame of u that
// someone holds (lent by a receive or queued for transmission) and
// returns its address.
func (u *umem) hold(f []byte) (uint64, bool) {
	addr, ok := umemOffset(u.mem, f)
	if !ok || addr&u.chunkMask()+uint64(len(f)) > u.chunk {
		return 0, false
	}
	r := &u.refs[addr>>u.shift]
	for {
		v := r.Load()
		if v <= 0 {
			return 0, false // free, or in a fill ring: copy it instead
		}
		if r.CompareAndSwap(v, v+1) {
			return addr, true
		}
	}
}

func (u *umem) unhold(addr uint64) {
	if u.refs[addr>>u.shift].Add(-1) == 0 {
		var a [1]uint64
		a[0] = addr >> u.shift << u.shift
		u.put(a[:])
	}
}

// dropSockets forgets the sockets of qs as handles for XDP_SHARED_UMEM.
func (u *umem) dropSockets(qs []*xsk) {
	keep := u.socks[:0]
	for _, fd := range u.socks {
		mine := false
		for _, x := range qs {
			mine = mine || x.fd == fd
		}
		if !mine {
			keep = append(keep, fd)
		}
	}
	u.socks = keep
}

// leave drops a member's reservation; the last member releases the
// memory. Called with the group's lock held.
func (u *umem) leave(reserved int) {
	u.reserved -= reserved
	u.members--
	if u.members > 0 {
		return
	}
	if u.lentAtClose {
		retireMapping(u.mem) // a late reader sees zeros, never a fault
	} else {
		unix.Munmap(u.mem)
	}
	g := u.g
	for i, v := range g.umems {
		if v == u {
			g.umems = append(g.umems[:i], g.umems[i+1:]...)
			break
		}
	}
}

// join binds p's sockets to a UMEM of g: one with room for p's
// reservation, frames of frameSize and the wanted mode, or a new one.
func (g *UMEMGroup) join(p *AFXDP, frameSize int, wantZC bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	need := len(p.qs) * p.queueReserve()
	for _, u := range g.umems {
		if int(u.chunk) != frameSize || u.zc != wantZC || u.n-u.leaked-u.reserved < need || len(u.socks) == 0 {
			continue
		}
		bound, err := p.bindAll(u, 0, u.socks[0])
		if err == nil || bound {
			return err
		}
		if !wantZC {
			return fmt.Errorf("binding to the shared UMEM: %w", err)
		}
		// A zero-copy UMEM this device cannot join: try another.
	}
	frames := max(g.frames, need)
	u, err := newUMEM(g, frames, frameSize)
	if err != nil {
		return err
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(u.mem)))),
		Len: uint64(len(u.mem)), Size: uint32(frameSize)}
	if err := setsockoptXDPUmemReg(p.qs[0].fd, &reg); err != nil {
		unix.Munmap(u.mem)
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("registering a UMEM of %d KiB: %w (raise RLIMIT_MEMLOCK, e.g. \"ulimit -l unlimited\", or run as root)", len(u.mem)>>10, err)
		}
		return fmt.Errorf("XDP_UMEM_REG: %w", err)
	}
	flags := uint16(unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY)
	if wantZC {
		flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY
	}
	bound, err := p.bindAll(u, flags, -1)
	if err != nil && !bound && wantZC && p.cfg.ZeroCopy == ZeroCopyAuto {
		p.note("zero-copy: bind refused it (%v); copy mode", err)
		bound, err = p.bindAll(u, unix.XDP_USE_NEED_WAKEUP|unix.XDP_COPY, -1)
	}
	if bound {
		// p is a member even if a later queue failed: Close gives its
		// share back and releases u with its last member.
		u.zc = xdpZeroCopy(p.qs[0].fd)
		g.umems = append(g.umems, u)
	} else {
		unix.Munmap(u.mem)
	}
	if err != nil {
		if wantZC && p.cfg.ZeroCopy == ZeroCopyOn {
			return fmt.Errorf("binding in zero-copy mode: %w", err)
		}
		return fmt.Errorf("binding the AF_XDP socket: %w", err)
	}
	return nil
}

// bindAll binds p's queues: queue 0 with flags as u's first socket
// (shared < 0) or to the UMEM of the socket shared, the others to queue
// 0's UMEM. Once queue 0 is bound (bound), p is a member of u.
func (p *AFXDP) bindAll(u *umem, flags uint16, shared int) (bound bool, err error) {
	for i, x := range p.qs {
		s := shared
		if i > 0 {
			s = p.qs[0].fd
		}
		if err := p.bind(x, flags, s); err != nil {
			return i > 0, fmt.Errorf("queue %d: %w", x.q, bindErr(err))
		}
		if i == 0 {
			p.joinUMEM(u)
		}
	}
	for _, x := range p.qs {
		p.topUp(x)
	}
	return true, nil
}

// queueReserve is the most frames one queue holds: a full fill side, a
// full transmit ring and the transmit cache.
func (p *AFXDP) queueReserve() int { return 2*p.cfg.RingSize + xdpTxCache }

func (p *AFXDP) joinUMEM(u *umem) {
	p.um = u
	p.reserve = len(p.qs) * p.queueReserve()
	u.reserved += p.reserve
	u.members++
	for _, x := range p.qs {
		x.mine = make([]uint64, (u.n+63)/64)
		u.socks = append(u.socks, x.fd)
	}
}

func bindErr(err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: another AF_XDP socket already uses this queue: %w", err, ErrInUse)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: the driver does not support this AF_XDP mode: %w", err, ErrNotSupported)
	}
	return err
}

func newUMEM(g *UMEMGroup, frames, frameSize int) (*umem, error) {
	mem, err := unix.Mmap(-1, 0, frames*frameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("UMEM of %d frames: %w", frames, err)
	}
	u := &umem{g: g, mem: mem, chunk: uint64(frameSize), n: frames,
		refs: make([]atomic.Int32, frames), free: make([]uint64, 0, frames)}
	for u.shift = 0; 1<<u.shift < frameSize; u.shift++ {
	}
	for c := frames - 1; c >= 0; c-- {
		u.free = append(u.free, uint64(c)<<u.shift)
	}
	return u, nil
}

var _ Port = (*AFXDP)(nil)
