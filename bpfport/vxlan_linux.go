package bpfport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLAN is a VXLAN tunnel port (RFC 7348): frames sent on it leave as UDP
// datagrams through the kernel's UDP stack in the network namespace it was
// opened in (so routing, ARP/ND and the underlay's offloads are the
// kernel's), frames received from remote VTEPs on its VNI come out of it.
//
// Sending: each frame goes to the remote VTEP its destination MAC was
// learned from (or set to by AddStatic); broadcast, multicast and unknown
// unicast frames go to every remote of the flood list, one datagram each
// (head-end replication; the switch hands a flooded frame over once). A
// datagram is the port's 8-byte VXLAN header and the frame as two iovecs
// (the frame is not copied); sendmmsg(2) sends a batch in one system call,
// and runs of equal-length frames to one remote go as one UDP_SEGMENT
// super-datagram that the kernel segments as late as it can. The UDP
// source port is one of SrcPorts sockets, picked by a hash of the inner
// flow. Frames with a pending offload are finished in software first (the
// port's Caps are 0): a super-frame leaves as its segments, each
// encapsulated. A frame whose datagram would exceed the underlay MTU is
// dropped and counted (TxOversize), never fragmented (IP_PMTUDISC_DO,
// IPV6_DONTFRAG): MTU is the underlay's minus 50 bytes (IPv4) or 70
// (IPv6).
//
// Receiving: one UDP socket per (network namespace, local address, UDP
// port) serves every VXLAN port on it, whatever their VNIs: the receiver
// that reads it (recvmmsg(2), with UDP_GRO coalesced runs) keeps the
// frames of its own VNI, as views into the batch's arena, and hands the
// others to their ports' queues (a copy), which their PollFD reports. The
// inner source MAC of every received frame is learned with the outer
// source address.
type VXLAN struct {
	name     string
	cfg      VXLANConfig
	hdr      [vxlanHdrLen]byte
	v4       bool
	overhead int
	flood    []*vxRemote
	fdb      *vxFDB
	sh       *vxShared

	rxMu  sync.Mutex // the one receiver
	rxbuf []byte     // what the receiver reads into (frames are views of it)
	epfd  int        // PollFD: the shared socket and the inbox
	inbox vxInbox
	w     waiter

	tx vxTx

	// The underlay: the interface of the route to the first remote,
	// found through a netlink handle and an ioctl socket of the port's
	// namespace (ifindex 0 until there is such a route).
	nl       *netlink.Handle
	ctlfd    int
	ifindex  atomic.Int32
	routeMTU atomic.Int32 // the route's MTU, 0 if it has none
	tried    atomic.Int64 // vxNow of the last lookup while unresolved
	mtu      atomic.Int64 // the underlay's (1500 until it is known)
	mtuRead  atomic.Int64 // vxNow of the last refresh by the sender
	closed   atomic.Bool
	fdMu     sync.RWMutex
	fdsOff   bool

	stats [1]queueStats
	vx    vxStats
}

// OpenVXLAN opens a VXLAN port called name in the calling thread's network
// namespace. The sockets stay there; the port may be used from any
// goroutine. The underlay interface is the one of the route to the first
// remote (or the one holding Local): the port's MTU follows its MTU.
func OpenVXLAN(name string, cfg VXLANConfig) (*VXLAN, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("vxlan port name %q: must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", name, err)
	}
	p := &VXLAN{name: name, cfg: cfg, v4: cfg.is4(cfg.Remotes), epfd: -1, ctlfd: -1}
	p.overhead = VXLANOverhead6
	if p.v4 {
		p.overhead = VXLANOverhead4
	}
	putVXLANHeader(p.hdr[:], cfg.VNI)
	for _, r := range cfg.Remotes {
		p.flood = append(p.flood, newVXRemote(r, cfg.DstPort))
	}
	p.fdb = newVXFDB(cfg, p.flood)
	p.rxbuf = make([]byte, vxRxMsgs*vxSlot)
	p.inbox.efd = -1
	p.w.init()
	if err := p.open(); err != nil {
		p.release()
		return nil, fmt.Errorf("vxlan %s: %w", name, err)
	}
	return p, nil
}

func (p *VXLAN) open() error {
	var err error
	if p.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	ctl, err := newIfctl(0)
	if err != nil {
		return err
	}
	p.ctlfd = ctl.fd
	p.mtu.Store(1500)
	if err := p.resolve(); err != nil && !errors.Is(err, errNoRoute) {
		return err
	}
	if p.inbox.efd, err = newEventfd(); err != nil {
		return err
	}
	if p.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	for _, fd := range []int{p.inbox.efd} {
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	if err := p.tx.open(p.cfg, p.v4); err != nil {
		return err
	}
	sh, err := attachShared(p)
	if err != nil {
		return err
	}
	p.sh = sh
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, sh.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sh.fd)}); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// errNoRoute means there is no route to the first remote yet: the port
// opens, and finds its underlay once there is one.
var errNoRoute = errors.New("no route")

// resolve finds the underlay interface and reads its MTU.
func (p *VXLAN) resolve() error {
	ifindex, routeMTU, err := underlay(p.nl, p.cfg)
	if err != nil {
		return err
	}
	p.routeMTU.Store(int32(routeMTU))
	p.ifindex.Store(int32(ifindex))
	if m, err := p.ctl().mtu(); err == nil {
		p.mtu.Store(int64(p.effectiveMTU(m)))
	}
	return nil
}

// lookAgain looks for the underlay again while there is no route to the
// first remote, at most every second. The caller holds fdMu.
func (p *VXLAN) lookAgain() {
	now := vxNow()
	if last := p.tried.Load(); now-last >= int64(time.Second) && p.tried.CompareAndSwap(last, now) {
		p.resolve()
	}
}

// ctl is the underlay interface's ioctl handle.
func (p *VXLAN) ctl() ifctl { return ifctl{fd: p.ctlfd, ifindex: int(p.ifindex.Load())} }

// Underlay returns the name of the underlay interface, and false while
// there is no route to the first remote.
func (p *VXLAN) Underlay() (string, bool) {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.fdsOff || p.ifindex.Load() == 0 {
		return "", false
	}
	n, err := p.ctl().name()
	return n, err == nil
}

// effectiveMTU is the underlay MTU (the route's, if lower) as the port
// sees it.
func (p *VXLAN) effectiveMTU(link int) int {
	if r := int(p.routeMTU.Load()); r > 0 && r < link {
		return r
	}
	return link
}

// underlay finds the interface the tunnel leaves by: the route to the
// first remote (from the local address, if any), or the interface holding
// the local address.
func underlay(h *netlink.Handle, cfg VXLANConfig) (ifindex, routeMTU int, err error) {
	if cfg.Local.IsValid() {
		family := netlink.FAMILY_V6
		if cfg.Local.Is4() {
			family = netlink.FAMILY_V4
		}
		addrs, err := h.AddrList(nil, family)
		if err != nil {
			return 0, 0, fmt.Errorf("listing addresses: %w", err)
		}
		ifindex = -1
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == cfg.Local {
				ifindex = a.LinkIndex
			}
		}
		if ifindex < 0 {
			return 0, 0, fmt.Errorf("local address %s is not assigned to any interface here: add it first (ip addr add): %w", cfg.Local, ErrNotFound)
		}
	}
	if len(cfg.Remotes) == 0 {
		return ifindex, 0, nil
	}
	r := cfg.Remotes[0]
	opts := &netlink.RouteGetOptions{}
	if cfg.Local.IsValid() {
		opts.SrcAddr = net.IP(cfg.Local.AsSlice())
	}
	routes, err := h.RouteGetWithOptions(net.IP(r.AsSlice()), opts)
	if err != nil || len(routes) == 0 {
		return 0, 0, fmt.Errorf("remote %s: %w (%v)", r, errNoRoute, err)
	}
	if routes[0].LinkIndex <= 0 {
		return 0, 0, fmt.Errorf("the route to remote %s has no interface", r)
	}
	return routes[0].LinkIndex, routes[0].MTU, nil
}

// Name returns the port's name.
func (p *VXLAN) Name() string { return p.name }

// NumQueues implements Port: one queue (the UDP socket is shared).
func (p *VXLAN) NumQueues() int { return 1 }

// Caps implements Port: offloads are finished in software.
func (p *VXLAN) Caps() Caps { return 0 }

// Config returns the configuration in effect (defaults filled in).
func (p *VXLAN) Config() VXLANConfig {
	c := p.cfg
	c.Remotes = slices.Clone(c.Remotes)
	return c
}

// VNI returns the port's VXLAN network identifier.
func (p *VXLAN) VNI() uint32 { return p.cfg.VNI }

// MTU implements Port: the underlay's MTU minus the encapsulation.
func (p *VXLAN) MTU() int {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if !p.fdsOff {
		if p.ifindex.Load() == 0 {
			p.lookAgain()
		} else if m, err := p.ctl().mtu(); err == nil {
			p.mtu.Store(int64(p.effectiveMTU(m)))
		}
	}
	return max(int(p.mtu.Load())-p.overhead, 0)
}

// Up implements Port: the port is open and its underlay interface is up.
func (p *VXLAN) Up() bool {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.fdsOff {
		return false
	}
	if p.ifindex.Load() == 0 {
		p.lookAgain()
	}
	return p.ifindex.Load() != 0 && p.ctl().up()
}

// Stats implements Port. RxKernelDrops are the receive socket's drops
// (shared by every VXLAN port on the same UDP port and local address).
func (p *VXLAN) Stats() Stats {
	s := sumStats(p.stats[:])
	if sh := p.sh; sh != nil {
		s.RxKernelDrops = sh.drops()
	}
	return s
}

// TunnelStats returns the port's tunnel counters.
func (p *VXLAN) TunnelStats() VXLANStats { return p.vx.load() }

// Remotes returns the flood list.
func (p *VXLAN) Remotes() []netip.Addr { return slices.Clone(p.cfg.Remotes) }

// Entries lists the port's remote stations, learned and static.
func (p *VXLAN) Entries() []VXLANEntry { return p.fdb.entries(vxNow()) }

// Lookup returns the remote station mac.
func (p *VXLAN) Lookup(mac net.HardwareAddr) (VXLANEntry, bool) {
	if len(mac) != 6 {
		return VXLANEntry{}, false
	}
	return p.fdb.get([6]byte(mac), vxNow())
}

// AddStatic makes frames to station mac go to remote only (what an EVPN
// control plane pushes). Learning never overrides a static entry.
func (p *VXLAN) AddStatic(mac net.HardwareAddr, remote netip.Addr) error {
	m, err := parseStationMAC(mac)
	if err != nil {
		return err
	}
	remote = remote.Unmap()
	if err := checkUnderlayAddr("remote", remote); err != nil {
		return err
	}
	if remote.Is4() != p.v4 {
		fam := "IPv6"
		if p.v4 {
			fam = "IPv4"
		}
		return fmt.Errorf("remote %s: port %s has an %s underlay", remote, p.name, fam)
	}
	p.fdb.addStatic(m, remote)
	return nil
}

// Delete forgets station mac (learned or static) and reports whether it
// was known.
func (p *VXLAN) Delete(mac net.HardwareAddr) bool {
	if len(mac) != 6 {
		return false
	}
	return p.fdb.del([6]byte(mac))
}

// FlushLearned forgets every learned station; static entries stay.
func (p *VXLAN) FlushLearned() int { return p.fdb.flushLearned() }

// PollFD implements Port: an epoll set of the shared UDP socket and the
// port's hand-over queue, readable while either has data.
func (p *VXLAN) PollFD(q int) int {
	if q != 0 {
		return -1
	}
	return p.epfd
}

// Wake implements Port.
func (p *VXLAN) Wake() {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if !p.fdsOff {
		p.w.wake()
	}
}

// RecvBatch implements Port.
func (p *VXLAN) RecvBatch(q int, b *Batch) (int, error) {
	if q != 0 {
		return 0, badQueue(p.name, q, 1)
	}
	for {
		n, err := p.TryRecv(q, b)
		if n > 0 || err != nil {
			return n, err
		}
		p.fdMu.RLock()
		if p.fdsOff {
			p.fdMu.RUnlock()
			return 0, ErrClosed
		}
		woke, err := p.w.wait(p.epfd)
		p.fdMu.RUnlock()
		if p.closed.Load() {
			return 0, ErrClosed
		}
		if err != nil {
			return 0, fmt.Errorf("port %s: poll: %w", p.name, err)
		}
		if woke {
			return 0, nil
		}
	}
}

// Release implements Port: frames live in the receiver's arena.
func (p *VXLAN) Release(q int) {}

// Arm implements Port: the socket and the queue are level-triggered; it
// returns false while the port's last receive left frames to hand out.
func (p *VXLAN) Arm(q int) bool {
	if p.closed.Load() {
		return false
	}
	sh := p.sh
	sh.rxMu.Lock()
	defer sh.rxMu.Unlock()
	return !(sh.pend.active && sh.reader == p)
}

// TryRecv implements Port: frames handed over by other receivers first,
// then what the shared socket holds.
func (p *VXLAN) TryRecv(q int, b *Batch) (int, error) {
	if q != 0 {
		return 0, badQueue(p.name, q, 1)
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	lim := b.Len()
	n := 0
	if p.inbox.pending.Load() {
		n, _ = p.inbox.drain(b, lim)
	}
	var rerr error
	if n < lim {
		var k int
		k, rerr = p.sh.recv(p, b, n)
		n += k
	}
	if n > 0 {
		now := time.Now().UnixNano()
		for i := range b.Timestamps[:n] {
			b.Timestamps[i] = now
		}
		var bytes uint64
		for _, f := range b.Frames[:n] {
			bytes += uint64(len(f))
		}
		p.stats[0].rxPackets.Add(uint64(n))
		p.stats[0].rxBytes.Add(bytes)
		return n, nil
	}
	if rerr != nil {
		return 0, fmt.Errorf("port %s: receive: %w", p.name, rerr)
	}
	return 0, nil
}

// SendBatch implements Port. Every frame is consumed: sent to its
// remote(s), or dropped and counted (TxOversize: too long for the
// underlay; TxNoRemote in TunnelStats: nowhere to go; TxRingFull: the
// socket's buffer was full; TxErrors: refused by the kernel, such as no
// route).
func (p *VXLAN) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	if q != 0 {
		return 0, badQueue(p.name, q, 1)
	}
	t := &p.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	maxFrame := int(p.mtu.Load()) - p.overhead + 14
	now := vxNow()
	st := &p.stats[0]
	fanout := max(len(p.flood), 1)
	var sent, bytes, oversize, segmented, bad uint64
	locked := false
	// room makes room for one datagram per remote of a frame of n bytes
	// (n > 0: written into the scratch memory), flushing what is queued
	// if need be, and takes the FDB's read lock.
	room := func(n int) {
		if t.full(fanout) || (n > 0 && !t.room(n)) {
			if locked {
				p.fdb.mu.RUnlock()
				locked = false
			}
			p.flush()
		}
		if !locked {
			p.fdb.mu.RLock()
			locked = true
		}
	}
	for i, f := range frames {
		o := offloadAt(offl, i)
		if len(f) < 14 {
			oversize++
			continue
		}
		wl := len(f)
		if o.GSO() {
			if wl = WireLen(f, o); wl < 0 || len(f) > MaxSuperFrame {
				bad++
				continue
			}
		}
		if wl > maxFrame {
			if maxFrame = p.refreshMTU(); wl > maxFrame {
				oversize++
				continue
			}
		}
		if !o.Pending() {
			room(0)
			if p.enqueue(f, now) {
				sent++
				bytes += uint64(len(f))
			}
			continue
		}
		nseg := SoftSegments(f, o)
		if nseg == 0 {
			bad++
			continue
		}
		ok := false
		for s := 0; s < nseg; s++ {
			l := SoftSegmentLen(f, o, s)
			room(l)
			seg := t.scratchTake(l)
			WriteSoftSegment(seg, f, o, s)
			ok = p.enqueue(seg, now)
		}
		if !ok {
			continue
		}
		if o.GSO() {
			segmented++
		}
		sent++
		bytes += uint64(len(f))
	}
	if locked {
		p.fdb.mu.RUnlock()
	}
	p.flush()
	st.txPackets.Add(sent)
	st.txBytes.Add(bytes)
	if oversize > 0 {
		st.txOversize.Add(oversize)
	}
	if segmented > 0 {
		st.txSegmented.Add(segmented)
	}
	if bad > 0 {
		st.txErrors.Add(bad)
	}
	return len(frames), nil
}

// refreshMTU re-reads the underlay's MTU (at most every 10ms: the MTU
// may have been raised) and returns the longest frame the port sends.
func (p *VXLAN) refreshMTU() int {
	now := vxNow()
	if last := p.mtuRead.Load(); now-last >= int64(10*time.Millisecond) && p.mtuRead.CompareAndSwap(last, now) {
		p.MTU()
	}
	return int(p.mtu.Load()) - p.overhead + 14
}

// enqueue adds the datagrams of frame f (one per remote it goes to) and
// reports whether there was any. The caller holds the FDB's read lock and
// has made room.
func (p *VXLAN) enqueue(f []byte, now int64) bool {
	t := &p.tx
	sock := uint8(uint64(flowHash(f)) * uint64(len(t.fds)) >> 32)
	if f[0]&1 == 0 {
		if r := p.fdb.lookup(f[:6], now); r != nil {
			t.add(f, r, sock)
			return true
		}
	}
	if len(p.flood) == 0 {
		p.vx.txNoRemote.Add(1)
		return false
	}
	p.vx.txFlooded.Add(1)
	for _, r := range p.flood {
		t.add(f, r, sock)
	}
	return true
}

// flush sends every queued datagram.
func (p *VXLAN) flush() {
	t := &p.tx
	if len(t.pend) == 0 {
		return
	}
	st := &p.stats[0]
	copies, supers, full, errs, over := t.send(p.hdr[:], !p.cfg.NoGSO)
	p.vx.txCopies.Add(copies)
	if supers > 0 {
		p.vx.txGSO.Add(supers)
	}
	if full > 0 {
		st.txRingFull.Add(full)
	}
	if errs > 0 {
		st.txErrors.Add(errs)
	}
	if over > 0 {
		// The route's path MTU is below the interface's: re-read.
		st.txOversize.Add(over)
	}
	t.reset()
}

// Close implements Port. The shared receive socket is closed with the
// last port that uses it.
func (p *VXLAN) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.Wake()
	p.release()
	return nil
}

func (p *VXLAN) release() {
	p.closed.Store(true)
	if p.sh != nil {
		detachShared(p)
	}
	p.rxMu.Lock()
	p.tx.mu.Lock()
	p.fdMu.Lock()
	if !p.fdsOff {
		p.inbox.close()
		if p.epfd >= 0 {
			unix.Close(p.epfd)
		}
		p.tx.close()
		p.w.close()
		if p.ctlfd >= 0 {
			unix.Close(p.ctlfd)
		}
		if p.nl != nil {
			p.nl.Close()
		}
		p.fdsOff = true
	}
	p.fdMu.Unlock()
	p.tx.mu.Unlock()
	p.rxMu.Unlock()
}

var _ Port = (*VXLAN)(nil)

// Transmit side.

const (
	vxTxPend    = 1024 // datagrams queued before a flush
	vxGSOMaxSeg = 64   // segments per UDP_SEGMENT datagram (UDP_MAX_SEGMENTS of older kernels)
	vxGSOMaxLen = 65000
	vxScratch   = 1 << 20 // software-segmented frames waiting for a flush
)

// vxPend is one datagram to send: frame f to remote r from socket sock.
type vxPend struct {
	f    []byte
	r    *vxRemote
	sock uint8
}

type vxTx struct {
	mu      sync.Mutex
	fds     []int // one per source port
	pend    []vxPend
	order   []uint16 // pend indices grouped by socket
	counts  [maxVXLANSrcPorts + 1]uint16
	msgs    []mmsghdr
	iovs    []unix.Iovec
	cmsgs   [][vxCmsgSpace]byte
	scratch []byte
	used    int // bytes of scratch in use
	_       [64]byte
}

// vxCmsgSpace is CMSG_SPACE(sizeof(int)) on 64-bit (on 32-bit it is less).
const vxCmsgSpace = 24

func (t *vxTx) open(cfg VXLANConfig, v4 bool) error {
	for i := 0; i < cfg.SrcPorts; i++ {
		fd, err := udpSocket(v4)
		if err != nil {
			return err
		}
		t.fds = append(t.fds, fd)
		if err := configureTx(fd, cfg, v4); err != nil {
			return err
		}
		if err := unix.Bind(fd, sockaddr(cfg.Local, v4, 0)); err != nil {
			return fmt.Errorf("bind a source port: %w", err)
		}
	}
	t.pend = make([]vxPend, 0, vxTxPend)
	t.order = make([]uint16, vxTxPend)
	t.msgs = make([]mmsghdr, vxTxPend)
	t.iovs = make([]unix.Iovec, 2*vxTxPend)
	t.cmsgs = make([][vxCmsgSpace]byte, vxTxPend)
	return nil
}

func (t *vxTx) close() {
	for _, fd := range t.fds {
		unix.Close(fd)
	}
	t.fds = nil
}

func udpSocket(v4 bool) (int, error) {
	fam := unix.AF_INET6
	if v4 {
		fam = unix.AF_INET
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("udp socket: %w", permErr(err))
	}
	if !v4 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	return fd, nil
}

// configureTx makes a socket send with the tunnel's TTL, never fragment
// (a datagram over the path MTU fails with EMSGSIZE), and have room for
// batches in flight. It never reads: its receive buffer is the minimum.
func configureTx(fd int, cfg VXLANConfig, v4 bool) error {
	if v4 {
		if err := setInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO, "IP_MTU_DISCOVER"); err != nil {
			return err
		}
		if err := setInt(fd, unix.IPPROTO_IP, unix.IP_TTL, cfg.TTL, "IP_TTL"); err != nil {
			return err
		}
	} else {
		if err := setInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO, "IPV6_MTU_DISCOVER"); err != nil {
			return err
		}
		if err := setInt(fd, unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1, "IPV6_DONTFRAG"); err != nil {
			return err
		}
		if err := setInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, cfg.TTL, "IPV6_UNICAST_HOPS"); err != nil {
			return err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
	return nil
}

func sockaddr(a netip.Addr, v4 bool, port uint16) unix.Sockaddr {
	if v4 {
		sa := &unix.SockaddrInet4{Port: int(port)}
		if a.IsValid() {
			sa.Addr = a.As4()
		}
		return sa
	}
	sa := &unix.SockaddrInet6{Port: int(port)}
	if a.IsValid() {
		sa.Addr = a.As16()
	}
	return sa
}

// full reports whether a frame to up to fanout remotes may not fit.
func (t *vxTx) full(fanout int) bool { return len(t.pend)+max(fanout, 1) > cap(t.pend) }

// room reports whether a frame of n bytes fits the scratch memory.
func (t *vxTx) room(n int) bool {
	if t.scratch == nil {
		t.scratch = make([]byte, vxScratch) // once, on the first offloaded frame
	}
	return t.used+n <= len(t.scratch)
}

func (t *vxTx) scratchTake(n int) []byte {
	b := t.scratch[t.used : t.used+n : t.used+n]
	t.used += (n + 7) &^ 7
	return b
}

func (t *vxTx) add(f []byte, r *vxRemote, sock uint8) {
	t.pend = append(t.pend, vxPend{f: f, r: r, sock: sock})
}

func (t *vxTx) reset() {
	clear(t.pend) // drop references to frames
	t.pend = t.pend[:0]
	t.used = 0
}

// send transmits the queued datagrams: grouped by socket (stable), then
// by remote within a socket, as runs of equal-length frames in
// UDP_SEGMENT super-datagrams when gso is set. It returns the datagrams
// sent, and those dropped because the socket's buffer was full, refused
// by the kernel, or too long for the path.
func (t *vxTx) send(hdr []byte, gso bool) (sent, supers, full, errs, over uint64) {
	n := len(t.pend)
	// Counting sort of the pend indices by socket.
	clear(t.counts[:])
	for i := range t.pend {
		t.counts[t.pend[i].sock+1]++
	}
	for s := 1; s <= len(t.fds); s++ {
		t.counts[s] += t.counts[s-1]
	}
	order := t.order[:n]
	for i := range t.pend {
		s := t.pend[i].sock
		order[t.counts[s]] = uint16(i)
		t.counts[s]++
	}
	start := 0
	for start < n {
		sock := t.pend[order[start]].sock
		end := start + 1
		mixed := false
		for end < n && t.pend[order[end]].sock == sock {
			if t.pend[order[end]].r != t.pend[order[end-1]].r {
				mixed = true
			}
			end++
		}
		grp := order[start:end]
		if mixed {
			slices.SortStableFunc(grp, func(a, b uint16) int {
				return int(t.pend[a].r.id) - int(t.pend[b].r.id)
			})
		}
		s, g, f, e, o := t.sendGroup(t.fds[sock], grp, hdr, gso)
		sent += s
		supers += g
		full += f
		errs += e
		over += o
		start = end
	}
	return
}

// sendGroup sends the datagrams grp (indices into pend) on socket fd.
func (t *vxTx) sendGroup(fd int, grp []uint16, hdr []byte, gso bool) (sent, supers, full, errs, over uint64) {
	nm, iov := 0, 0
	var nsegs [vxTxPend]uint16 // datagrams each message carries
	for i := 0; i < len(grp); {
		first := &t.pend[grp[i]]
		l := len(first.f)
		j := i + 1
		if gso {
			total := vxlanHdrLen + l
			for j < len(grp) && j-i < vxGSOMaxSeg {
				nx := &t.pend[grp[j]]
				if nx.r != first.r || len(nx.f) > l || total+vxlanHdrLen+len(nx.f) > vxGSOMaxLen {
					break
				}
				total += vxlanHdrLen + len(nx.f)
				j++
				if len(nx.f) < l {
					break // a shorter frame ends a run
				}
			}
		}
		m := &t.msgs[nm]
		m.hdr = unix.Msghdr{}
		m.hdr.Name = &first.r.sa[0]
		m.hdr.Namelen = first.r.salen
		m.hdr.Iov = &t.iovs[iov]
		for k := i; k < j; k++ {
			setIovec(&t.iovs[iov], hdr)
			setIovec(&t.iovs[iov+1], t.pend[grp[k]].f)
			iov += 2
		}
		m.hdr.SetIovlen(2 * (j - i))
		if j-i > 1 {
			c := t.cmsgs[nm][:]
			putCmsgU16(c, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(vxlanHdrLen+l))
			m.hdr.Control = &c[0]
			m.hdr.SetControllen(cmsgSpace(2))
		}
		nsegs[nm] = uint16(j - i)
		nm++
		i = j
	}
	msgs := t.msgs[:nm]
	for k := 0; k < len(msgs); {
		n, err := sendmmsg(fd, msgs[k:], unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		for x := k; x < k+n; x++ {
			sent += uint64(nsegs[x])
			if nsegs[x] > 1 {
				supers++
			}
		}
		k += n
		if k == len(msgs) {
			break
		}
		if n > 0 && err == nil {
			continue // stopped without saying why: the error shows on the next call
		}
		d := uint64(nsegs[k])
		switch err {
		case unix.EAGAIN, unix.ENOBUFS:
			for x := k; x < len(msgs); x++ {
				full += uint64(nsegs[x])
			}
			return
		case unix.EMSGSIZE:
			over += d
		default:
			errs += d
		}
		k++
	}
	return
}

// cmsgSpace is CMSG_SPACE(n) for this platform.
func cmsgSpace(n int) int { return unix.CmsgSpace(n) }

// putCmsgU16 writes a control message carrying a 16-bit value into c.
func putCmsgU16(c []byte, level, typ int, v uint16) {
	clear(c[:cmsgSpace(2)])
	h := unix.SizeofCmsghdr
	if h == 16 {
		binary.NativeEndian.PutUint64(c[0:], uint64(unix.CmsgLen(2)))
		binary.NativeEndian.PutUint32(c[8:], uint32(level))
		binary.NativeEndian.PutUint32(c[12:], uint32(typ))
	} else {
		binary.NativeEndian.PutUint32(c[0:], uint32(unix.CmsgLen(2)))
		binary.NativeEndian.PutUint32(c[4:], uint32(level))
		binary.NativeEndian.PutUint32(c[8:], uint32(typ))
	}
	binary.NativeEndian.PutUint16(c[h:], v)
}

// groSize returns the segment size of a UDP_GRO control message in
// c[:n], 0 if there is none.
func groSize(c []byte) int {
	h := unix.SizeofCmsghdr
	for len(c) >= h {
		var l, level, typ int
		if h == 16 {
			l = int(binary.NativeEndian.Uint64(c[0:]))
			level = int(int32(binary.NativeEndian.Uint32(c[8:])))
			typ = int(int32(binary.NativeEndian.Uint32(c[12:])))
		} else {
			l = int(binary.NativeEndian.Uint32(c[0:]))
			level = int(int32(binary.NativeEndian.Uint32(c[4:])))
			typ = int(int32(binary.NativeEndian.Uint32(c[8:])))
		}
		if l < h || l > len(c) {
			return 0
		}
		if level == unix.SOL_UDP && typ == unix.UDP_GRO && l >= h+2 {
			if l >= h+4 {
				return int(binary.NativeEndian.Uint32(c[h:]))
			}
			return int(binary.NativeEndian.Uint16(c[h:]))
		}
		sp := (l + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1)
		if sp >= len(c) {
			return 0
		}
		c = c[sp:]
	}
	return 0
}

// Receive side: the socket shared by the VXLAN ports of one namespace,
// local address and UDP port.

// Every message of a receive has room for the largest datagram: a run
// coalesced by UDP_GRO, or a local kernel tunnel's super-frame (which
// arrives whole with or without UDP_GRO). A port's receive buffer is
// vxRxMsgs such slots (16 MiB of address space); the kernel writes only
// the pages datagrams fill, so small traffic keeps about one page per
// slot resident.
const (
	vxRxMsgs    = 256      // messages per recvmmsg
	vxSlot      = 64 << 10 // bytes per message
	vxInboxSize = 1 << 20  // bytes of a port's hand-over queue
)

type vxKey struct {
	netns   [2]uint64 // device and inode of the network namespace
	local   netip.Addr
	v4      bool
	dstPort uint16
}

type vxShared struct {
	key   vxKey
	fd    int
	refs  int // under vxRegistry.mu
	gro   bool
	ports atomic.Pointer[map[uint32]*VXLAN]

	rxMu   sync.Mutex
	reader *VXLAN    // whose receive buffer msgs point into
	pend   vxPending // messages of reader's last receive not yet handed out
	msgs   [vxRxMsgs]mmsghdr
	iovs   [vxRxMsgs]unix.Iovec
	names  [vxRxMsgs][28]byte
	cmsgs  [vxRxMsgs][vxCmsgSpace]byte
}

var vxRegistry struct {
	mu sync.Mutex
	m  map[vxKey]*vxShared
}

// netnsID identifies the calling thread's network namespace.
func netnsID() ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return [2]uint64{}, fmt.Errorf("network namespace: %w", err)
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, nil
}

// attachShared registers p with the receive socket of its namespace,
// local address and UDP port, opening it if p is the first.
func attachShared(p *VXLAN) (*vxShared, error) {
	ns, err := netnsID()
	if err != nil {
		return nil, err
	}
	key := vxKey{netns: ns, local: p.cfg.Local, v4: p.v4, dstPort: p.cfg.DstPort}
	vxRegistry.mu.Lock()
	defer vxRegistry.mu.Unlock()
	if vxRegistry.m == nil {
		vxRegistry.m = map[vxKey]*vxShared{}
	}
	sh := vxRegistry.m[key]
	if sh == nil {
		if sh, err = openShared(key, p.cfg); err != nil {
			return nil, err
		}
		empty := map[uint32]*VXLAN{}
		sh.ports.Store(&empty)
		vxRegistry.m[key] = sh
	}
	old := *sh.ports.Load()
	if q := old[p.cfg.VNI]; q != nil {
		if sh.refs == 0 {
			delete(vxRegistry.m, key)
			unix.Close(sh.fd)
		}
		return nil, fmt.Errorf("VNI %d on UDP port %d is already served by port %s: %w", p.cfg.VNI, p.cfg.DstPort, q.name, ErrInUse)
	}
	if sh.refs > 0 && sh.gro != !p.cfg.NoGRO {
		return nil, fmt.Errorf("UDP port %d is shared with ports that receive with%s UDP_GRO: use the same setting", p.cfg.DstPort, map[bool]string{true: "", false: "out"}[sh.gro])
	}
	m := make(map[uint32]*VXLAN, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[p.cfg.VNI] = p
	sh.ports.Store(&m)
	sh.refs++
	return sh, nil
}

// detachShared removes p from its socket and closes the socket with its
// last port. Receivers that still see p in a batch being dispatched find
// its queue closed.
func detachShared(p *VXLAN) {
	sh := p.sh
	vxRegistry.mu.Lock()
	defer vxRegistry.mu.Unlock()
	old := *sh.ports.Load()
	if old[p.cfg.VNI] != p {
		return
	}
	m := make(map[uint32]*VXLAN, len(old))
	for k, v := range old {
		if v != p {
			m[k] = v
		}
	}
	sh.ports.Store(&m)
	if sh.refs--; sh.refs == 0 {
		delete(vxRegistry.m, sh.key)
		sh.rxMu.Lock()
		unix.Close(sh.fd)
		sh.fd = -1
		sh.rxMu.Unlock()
	}
}

func openShared(key vxKey, cfg VXLANConfig) (*vxShared, error) {
	fd, err := udpSocket(key.v4)
	if err != nil {
		return nil, err
	}
	sh := &vxShared{key: key, fd: fd, gro: !cfg.NoGRO}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.RcvBuf)
	}
	if sh.gro {
		if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
			sh.gro = false // an old kernel: one datagram per message
		}
	}
	if err := unix.Bind(fd, sockaddr(key.local, key.v4, key.dstPort)); err != nil {
		unix.Close(fd)
		where := "*"
		if key.local.IsValid() {
			where = key.local.String()
		}
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("UDP port %s:%d is taken (a Linux vxlan device or another program?): use another --dstport or --local, or remove it: %w", where, key.dstPort, ErrInUse)
		}
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("local address %s is not assigned here: %w", where, ErrNotFound)
		}
		return nil, fmt.Errorf("bind UDP %s:%d: %w", where, key.dstPort, permErr(err))
	}
	for i := range sh.msgs {
		sh.msgs[i].hdr.Iov = &sh.iovs[i]
		sh.msgs[i].hdr.SetIovlen(1)
	}
	return sh, nil
}

// resetMsg makes message i ready for a receive (its iovec is set).
func (sh *vxShared) resetMsg(i int) {
	m := &sh.msgs[i]
	m.hdr.Name = &sh.names[i][0]
	m.hdr.Namelen = uint32(len(sh.names[i]))
	if sh.gro {
		m.hdr.Control = &sh.cmsgs[i][0]
		m.hdr.SetControllen(len(sh.cmsgs[i]))
	}
	m.hdr.Flags = 0
}

// drops returns the socket's drop count (SO_MEMINFO).
func (sh *vxShared) drops() uint64 {
	sh.rxMu.Lock()
	fd := sh.fd
	var s string
	var err error
	if fd >= 0 {
		s, err = unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_MEMINFO)
	}
	sh.rxMu.Unlock()
	const skMeminfoDrops = 8
	if fd < 0 || err != nil || len(s) < 4*(skMeminfoDrops+1) {
		return 0
	}
	return uint64(binary.NativeEndian.Uint32([]byte(s[4*skMeminfoDrops:])))
}

// recv reads the socket into p's receive buffer: frames of p's VNI are
// added to b.Frames[n:] (views into that buffer), others go to their
// ports' queues. When b fills up, the messages not yet handed out stay
// in the buffer (the socket is not read again until they are): the next
// recv of p hands them out first, without a copy. It returns how many
// frames it added to b.
func (sh *vxShared) recv(p *VXLAN, b *Batch, n int) (int, error) {
	sh.rxMu.Lock()
	defer sh.rxMu.Unlock()
	if sh.fd < 0 {
		return 0, ErrClosed
	}
	d := vxDispatch{p: p, b: b, n: n, lim: b.Len(), mono: vxNow(), ports: *sh.ports.Load()}
	if sh.pend.active {
		if sh.reader == p {
			// The rest of p's last receive; the socket is read at the
			// next call (these frames are views into the buffer it
			// would overwrite).
			sh.dispatch(&d)
			return d.added, nil
		}
		// Another port's receive was cut short by its batch: that
		// port's buffer is not p's to hand out, so what is left goes
		// to the ports' queues, p's included.
		d.copyAll = true
		sh.dispatch(&d)
		d.copyAll = false
	}
	nm := min(vxRxMsgs, d.lim-n)
	if nm <= 0 {
		return 0, nil
	}
	if sh.reader != p {
		// The messages point into the reader's buffer: set them up for
		// p. After a receive only the messages the kernel filled need
		// their lengths and flags reset (in dispatch).
		for i := range sh.msgs {
			setIovec(&sh.iovs[i], p.rxbuf[i*vxSlot:(i+1)*vxSlot])
			sh.resetMsg(i)
		}
		sh.reader = p
	}
	var got int
	var err error
	for {
		got, err = recvmmsg(sh.fd, sh.msgs[:nm], unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		if err == unix.EAGAIN {
			return d.added, nil
		}
		return d.added, err
	}
	sh.pend = vxPending{active: true, end: got}
	sh.dispatch(&d)
	return d.added, nil
}

// vxPending is where the dispatch of a receive stands: message i, byte
// off of it, of end messages received into the reader's buffer.
type vxPending struct {
	active      bool
	i, off, end int
}

// dispatch hands out the received messages from where sh.pend stands,
// until they are all handed out or d's batch is full (unless d.copyAll).
func (sh *vxShared) dispatch(d *vxDispatch) {
	buf := sh.reader.rxbuf
	pd := &sh.pend
	for ; pd.i < pd.end; pd.i, pd.off = pd.i+1, 0 {
		m := &sh.msgs[pd.i]
		data := buf[pd.i*vxSlot : pd.i*vxSlot+int(m.len)]
		if m.hdr.Flags&unix.MSG_TRUNC != 0 {
			d.p.stats[0].rxOversize.Add(1)
			continue
		}
		d.src = parseSockaddr(sh.names[pd.i][:])
		seg := len(data)
		if sh.gro {
			if g := groSize(sh.cmsgs[pd.i][:m.hdr.Controllen]); g > 0 && g < seg {
				seg = g // a run of datagrams of seg bytes coalesced by UDP_GRO
			}
		}
		if pd.off == 0 && seg < len(data) {
			if d.full() {
				return
			}
			d.p.vx.rxGRO.Add(1)
			if vni, f, o, ok := coalesceTCP(data, seg); ok {
				d.inner(vni, f, o)
				continue
			}
		}
		for pd.off < len(data) {
			if d.full() {
				return
			}
			dg := data[pd.off:min(pd.off+seg, len(data))]
			pd.off += len(dg)
			d.frame(dg)
		}
	}
	for i := 0; i < pd.end; i++ {
		sh.resetMsg(i)
	}
	*pd = vxPending{}
}

// vxDispatch hands the frames of one receive to their ports.
type vxDispatch struct {
	p        *VXLAN
	copyAll  bool // p's frames go to its queue too
	b        *Batch
	n, lim   int
	added    int
	mono     int64
	ports    map[uint32]*VXLAN
	src      netip.Addr
	lastMAC  [6]byte
	lastSrc  netip.Addr
	lastPort *VXLAN
}

// full reports whether the batch has no room for one more frame of the
// receiving port.
func (d *vxDispatch) full() bool { return !d.copyAll && d.n+d.added >= d.lim }

// frame handles datagram dg (VXLAN header and inner frame).
func (d *vxDispatch) frame(dg []byte) {
	vni, ok := parseVXLANHeader(dg)
	if !ok || len(dg) < vxlanHdrLen+14 {
		d.p.vx.rxBadHeader.Add(1)
		return
	}
	d.inner(vni, dg[vxlanHdrLen:], Offload{})
}

// inner hands inner frame f of VNI vni (with offload o: a coalesced
// super-frame) to its port.
func (d *vxDispatch) inner(vni uint32, f []byte, o Offload) {
	p := d.p
	q := d.ports[vni]
	if q == nil {
		p.vx.rxUnknownVNI.Add(1)
		return
	}
	if q != d.lastPort || [6]byte(f[6:12]) != d.lastMAC || d.src != d.lastSrc {
		q.fdb.learn(f[6:12], d.src, d.mono)
		d.lastPort, d.lastMAC, d.lastSrc = q, [6]byte(f[6:12]), d.src
	}
	if o.Pending() {
		q.stats[0].rxOffload.Add(1)
		q.vx.rxCoalesced.Add(1)
	} else if max := int(q.mtu.Load()) - q.overhead + 14; len(f) > max {
		// A local kernel tunnel's TCP super-frame (see innerSuperFrame):
		// its segments are cut to fill the tunnel's MTU.
		var ok bool
		if o, ok = innerSuperFrame(f, max); ok {
			q.stats[0].rxOffload.Add(1)
		}
	} else if finishPartialChecksum(f) {
		q.vx.rxCsumFinished.Add(1)
	}
	if q == p && !d.copyAll && d.n+d.added < d.lim {
		k := d.n + d.added
		d.b.Frames[k] = f[:len(f):len(f)]
		d.b.Offloads[k] = o
		d.added++
		return
	}
	if !q.inbox.push(f, o) {
		q.vx.rxQueueDrops.Add(1)
	}
}

// vxInbox is a port's hand-over queue: frames of its VNI that another
// port's receiver read from the shared socket (or that did not fit the
// receiver's batch), copied into a byte ring of records (a 16-byte header:
// the length and the Offload as a virtio_net_hdr; the frame; padding to
// 16). Its eventfd is readable while it is not
// empty; the memory is allocated on first use.
type vxInbox struct {
	pending          atomic.Bool // count > 0
	mu               sync.Mutex
	efd              int
	buf              []byte
	head, tail, used int
	count            int
	closed           bool
}

const vxWrap = ^uint32(0)

const vxRecHdr = 16

func (q *vxInbox) push(f []byte, o Offload) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if q.buf == nil {
		q.buf = make([]byte, vxInboxSize)
	}
	sz := (vxRecHdr + len(f) + 15) &^ 15
	if sz > len(q.buf)/2 {
		return false
	}
	if q.tail+sz > len(q.buf) {
		waste := len(q.buf) - q.tail
		if q.used+waste+sz > len(q.buf) {
			return false
		}
		binary.NativeEndian.PutUint32(q.buf[q.tail:], vxWrap)
		q.used += waste
		q.tail = 0
	}
	if q.used+sz > len(q.buf) {
		return false
	}
	binary.NativeEndian.PutUint32(q.buf[q.tail:], uint32(len(f)))
	putVnetHdr(q.buf[q.tail+4:], o)
	copy(q.buf[q.tail+vxRecHdr:], f)
	q.tail += sz
	if q.tail == len(q.buf) {
		q.tail = 0
	}
	q.used += sz
	q.count++
	if q.count == 1 {
		q.pending.Store(true)
		eventfdSignal(q.efd)
	}
	return true
}

// drain copies up to max frames into b (from b.Arena's start) and returns
// how many and the arena bytes used.
func (q *vxInbox) drain(b *Batch, max int) (n, off int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.count > 0 && n < max {
		if binary.NativeEndian.Uint32(q.buf[q.head:]) == vxWrap {
			q.used -= len(q.buf) - q.head
			q.head = 0
		}
		l := int(binary.NativeEndian.Uint32(q.buf[q.head:]))
		if off+l > len(b.Arena) {
			break
		}
		f := b.Arena[off : off+l : off+l]
		copy(f, q.buf[q.head+vxRecHdr:])
		b.Frames[n], b.Offloads[n] = f, parseVnetHdr(q.buf[q.head+4:])
		n++
		off += (l + 63) &^ 63
		sz := (vxRecHdr + l + 15) &^ 15
		q.head += sz
		if q.head == len(q.buf) {
			q.head = 0
		}
		q.used -= sz
		q.count--
		if q.count == 0 {
			q.pending.Store(false)
			eventfdDrain(q.efd)
			q.head, q.tail, q.used = 0, 0, 0
		}
	}
	return n, off
}

func (q *vxInbox) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.efd >= 0 {
		unix.Close(q.efd)
		q.efd = -1
	}
	q.buf = nil
}
