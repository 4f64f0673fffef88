package bpfport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// AFPacket is a port on a Linux interface through AF_PACKET sockets.
//
// Each queue has one socket with PACKET_VNET_HDR (so offloads are described,
// not undone: super-frames and partial checksums pass through whole) and
// PACKET_IGNORE_OUTGOING (the port never sees what the host sends,
// including its own transmissions). It receives into a TPACKET_V2 ring of
// fixed slots, which the kernel marks frame by frame, so a frame can be
// forwarded as soon as it arrives whatever the rate; a frame that does not
// fit a slot (a GSO super-frame) is queued on the socket instead
// (PACKET_COPY_THRESH) and copied into the receiver's arena. It transmits
// with sendmmsg(2) and a virtio_net_hdr per frame (PACKET_QDISC_BYPASS),
// or, in TXRing mode, through a PACKET_TX_RING on a second socket. With
// several queues the sockets form a PACKET_FANOUT group. Queue 0's socket
// holds a promiscuous membership, which the kernel drops when it closes.
type AFPacket struct {
	ifaceState // link, MTU, gone, fds closed: MTU and Up
	name       string
	ifindex    int
	cfg        AFPacketConfig
	rxq        []*afRxQueue
	txq        []*afTxQueue
	stats      []queueStats
	// down is set when the socket reported the link down. The kernel
	// stops signalling a socket whose link is down, so a later deletion
	// would never wake a receiver: while down, TryRecv checks the link
	// itself.
	down atomic.Bool

	kdrops atomic.Uint64
}

// maxCopies is the most queued (slot-overflowing) frames one TryRecv
// copies out, in one recvmmsg.
const maxCopies = 64

type afRxQueue struct {
	mu        sync.Mutex
	fd        int
	ring      []byte
	frameSize int
	frames    int

	head  int // next slot to read
	lent  int // slots before head handed out by the last call, released at the next
	rxErr atomic.Int32

	cmsgs [maxCopies]mmsghdr
	ciovs [2 * maxCopies]unix.Iovec
	chdrs [maxCopies][vnetHdrLen]byte
	cidx  [maxCopies]int32  // batch index of each copy
	coff  [maxCopies]int32  // its offset in the arena
	cvlan [maxCopies]uint32 // VLAN tag to put back (tpid<<16 | tci), 0: none

	lentOut atomic.Bool // frames of the last call may still be in use
	w       waiter
	_       [64]byte
}

type afTxQueue struct {
	mu   sync.Mutex
	fd   int // the queue's socket (sendmmsg) or its TX ring socket
	msgs []mmsghdr
	iovs []unix.Iovec
	hdrs [][vnetHdrLen]byte
	idx  []int32

	ring      []byte // TXRing mode
	frameSize int
	frames    int
	head      int
	_         [64]byte
}

const (
	tpacket2HdrLen = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): frame data offset in the TX ring
	ethPAll        = 0x0003
	txBatch        = 256 // messages per sendmmsg
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpenAFPacket opens a port on interface ifname in the calling thread's
// network namespace and brings the interface up. The sockets stay in that
// namespace; the returned port may be used from any goroutine.
func OpenAFPacket(ifname string, cfg AFPacketConfig) (*AFPacket, error) {
	link, err := lookupLink(ifname)
	if err != nil {
		return nil, err
	}
	attrs := link.Attrs()
	if cfg, err = cfg.withDefaults(attrs.MTU); err != nil {
		return nil, fmt.Errorf("af_packet %s: %w", ifname, err)
	}
	if err := setUp(link); err != nil {
		return nil, err
	}
	p := &AFPacket{name: ifname, ifindex: attrs.Index, cfg: cfg, stats: make([]queueStats, cfg.Queues)}
	p.mtu.Store(int64(attrs.MTU))
	if p.ctl, err = newIfctl(attrs.Index); err != nil {
		return nil, err
	}
	fanoutID := -1
	for q := 0; q < cfg.Queues; q++ {
		rq, err := p.openRx(q, &fanoutID)
		if rq != nil {
			p.rxq = append(p.rxq, rq)
		}
		if err != nil {
			p.release()
			return nil, fmt.Errorf("af_packet %s: queue %d: %w", ifname, q, err)
		}
		tq := &afTxQueue{fd: rq.fd}
		p.txq = append(p.txq, tq)
		if cfg.TX == TXRing {
			if err := p.openTxRing(tq); err != nil {
				p.release()
				return nil, fmt.Errorf("af_packet %s: transmit ring %d: %w", ifname, q, err)
			}
		}
	}
	return p, nil
}

func packetSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", permErr(err))
	}
	return fd, nil
}

func setInt(fd, level, opt, v int, what string) error {
	if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

var fanoutModes = [...]int{
	FanoutHash:       unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_DEFRAG,
	FanoutRoundRobin: unix.PACKET_FANOUT_LB,
	FanoutCPU:        unix.PACKET_FANOUT_CPU,
	FanoutRandom:     unix.PACKET_FANOUT_RND,
	FanoutQueueMap:   unix.PACKET_FANOUT_QM,
	FanoutRollover:   unix.PACKET_FANOUT_ROLLOVER,
}

// ringLayout returns the TPACKET block size for slots of frameSize bytes:
// slots then lie back to back, slot i at i*frameSize.
func ringLayout(frameSize int) (block int) {
	block = 4096
	for block < frameSize {
		block <<= 1
	}
	for block%frameSize != 0 {
		block += 4096
	}
	return block
}

// mapRing sets up a TPACKET_V2 ring (opt: PACKET_RX_RING or
// PACKET_TX_RING) of at least want slots of frameSize bytes, lying back to
// back, and maps it.
func mapRing(fd, opt, frameSize, want int) (ring []byte, frames int, err error) {
	block := ringLayout(frameSize)
	perBlock := block / frameSize
	nblocks := (want + perBlock - 1) / perBlock
	frames = nblocks * perBlock
	req := unix.TpacketReq{Block_size: uint32(block), Block_nr: uint32(nblocks),
		Frame_size: uint32(frameSize), Frame_nr: uint32(frames)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, opt, &req); err != nil {
		return nil, 0, fmt.Errorf("%d frames of %d bytes: %w", frames, frameSize, err)
	}
	if ring, err = unix.Mmap(fd, 0, block*nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, 0, fmt.Errorf("mmap: %w", err)
	}
	return ring, frames, nil
}

func (p *AFPacket) openRx(q int, fanoutID *int) (*afRxQueue, error) {
	cfg := p.cfg
	fd, err := packetSocket()
	if err != nil {
		return nil, err
	}
	rq := &afRxQueue{fd: fd, frameSize: cfg.FrameSize}
	rq.w.init()
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1, "PACKET_VNET_HDR"); err != nil {
		return rq, err
	}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2, "PACKET_VERSION"); err != nil {
		return rq, err
	}
	if rq.ring, rq.frames, err = mapRing(fd, unix.PACKET_RX_RING, cfg.FrameSize, cfg.RingFrames); err != nil {
		return rq, fmt.Errorf("receive ring: %w", err)
	}
	// Frames that do not fit a slot are queued on the socket (the slot
	// says TP_STATUS_COPY) rather than truncated.
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1, "PACKET_COPY_THRESH"); err != nil {
		return rq, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.RcvBuf)
	}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING"); err != nil {
		return rq, err
	}
	if cfg.TX != TXRing {
		if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS"); err != nil {
			return rq, err
		}
		// Room for the transmit batches in flight; SO_SNDBUFFORCE needs
		// CAP_NET_ADMIN, without it the default applies and a full buffer
		// looks like a full queue.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: p.ifindex}); err != nil {
		return rq, fmt.Errorf("bind: %w", err)
	}
	if q == 0 && !cfg.NoPromisc {
		mreq := unix.PacketMreq{Ifindex: int32(p.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return rq, fmt.Errorf("promiscuous membership: %w", err)
		}
	}
	if cfg.Queues > 1 {
		mode := fanoutModes[cfg.Fanout]
		if *fanoutID < 0 {
			// Let the kernel pick a group id unique in the namespace.
			if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16, "PACKET_FANOUT"); err != nil {
				return rq, err
			}
			v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
			if err != nil {
				return rq, fmt.Errorf("PACKET_FANOUT group id: %w", err)
			}
			*fanoutID = v & 0xffff
		} else if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, *fanoutID|mode<<16, "PACKET_FANOUT"); err != nil {
			return rq, err
		}
	}
	for i := range rq.cmsgs {
		rq.cmsgs[i].hdr.Iov = &rq.ciovs[2*i]
		rq.cmsgs[i].hdr.Iovlen = 2
		setIovec(&rq.ciovs[2*i], rq.chdrs[i][:])
	}
	return rq, nil
}

// openTxRing gives tq a socket of its own with a PACKET_TX_RING.
func (p *AFPacket) openTxRing(tq *afTxQueue) error {
	cfg := p.cfg
	fd, err := packetSocket()
	if err != nil {
		return err
	}
	tq.fd, tq.frameSize = fd, cfg.txFrameSize
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS"); err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8*cfg.TXFrames*(tq.frameSize+1024))
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2, "PACKET_VERSION"); err != nil {
		return err
	}
	// A malformed frame is skipped instead of stopping the ring.
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1, "PACKET_LOSS"); err != nil {
		return err
	}
	if tq.ring, tq.frames, err = mapRing(fd, unix.PACKET_TX_RING, tq.frameSize, cfg.TXFrames); err != nil {
		return fmt.Errorf("transmit ring: %w", err)
	}
	// Protocol 0: this socket transmits only and never receives.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// Name returns the interface name given to OpenAFPacket.
func (p *AFPacket) Name() string { return p.name }

// NumQueues returns the number of queues.
func (p *AFPacket) NumQueues() int { return len(p.rxq) }

// Config returns the configuration in effect (defaults filled in).
func (p *AFPacket) Config() AFPacketConfig { return p.cfg }

// Caps implements Port: with sendmmsg the kernel takes offloaded frames.
func (p *AFPacket) Caps() Caps {
	if p.cfg.TX == TXRing {
		return 0
	}
	return CapOffload
}

// Stats returns the port's counters, including the kernel's ring drops.
func (p *AFPacket) Stats() Stats {
	p.fdMu.RLock()
	if !p.fdsClosed {
		p.collectKernelDrops()
	}
	p.fdMu.RUnlock()
	s := sumStats(p.stats)
	s.RxKernelDrops = p.kdrops.Load()
	return s
}

// collectKernelDrops reads (and thereby resets) PACKET_STATISTICS.
func (p *AFPacket) collectKernelDrops() {
	for _, rq := range p.rxq {
		if st, err := unix.GetsockoptTpacketStats(rq.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			p.kdrops.Add(uint64(st.Drops))
		}
	}
}

// Wake makes blocked RecvBatch calls return 0, nil.
func (p *AFPacket) Wake() {
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.fdsClosed {
		return
	}
	for _, rq := range p.rxq {
		rq.w.wake()
	}
}

// ioError classifies an error of the socket: link deleted (sticky), link
// down, or something else.
func (p *AFPacket) ioError(err error) error {
	e := p.ctl.linkError(p.name, err)
	if errors.Is(e, ErrLinkGone) {
		return p.setGone(e)
	}
	if errors.Is(e, ErrLinkDown) {
		p.down.Store(true)
	}
	return e
}

// downState is TryRecv's check while the link is down: ErrLinkGone once
// it was deleted, ErrLinkDown while it stays down, nil when it is back up.
func (p *AFPacket) downState() error {
	if _, err := p.ctl.name(); errors.Is(err, ErrLinkGone) {
		return p.setGone(fmt.Errorf("port %s: interface deleted: %w", p.name, ErrLinkGone))
	}
	if f, err := p.ctl.flags(); err == nil && f&unix.IFF_UP == 0 {
		return fmt.Errorf("port %s: interface is down: bring it up with \"ip link set %s up\": %w", p.name, p.name, ErrLinkDown)
	}
	p.down.Store(false)
	return nil
}

// PollFD implements Port: the queue's socket.
func (p *AFPacket) PollFD(q int) int {
	if uint(q) >= uint(len(p.rxq)) {
		return -1
	}
	return p.rxq[q].fd
}

// RecvBatch implements Port.
func (p *AFPacket) RecvBatch(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.rxq)) {
		return 0, badQueue(p.name, q, len(p.rxq))
	}
	return recvBlocking(p, q, b, &p.rxq[q].w, p.rxq[q].fd, &p.ifaceState)
}

// TryRecv implements Port.
func (p *AFPacket) TryRecv(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.rxq)) {
		return 0, badQueue(p.name, q, len(p.rxq))
	}
	rq := p.rxq[q]
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if p.closed.Load() {
		return 0, ErrClosed
	}
	rq.releaseLent()
	if e := rq.rxErr.Swap(0); e != 0 {
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
	n := rq.fill(b, &p.stats[q], &p.kdrops)
	if n > 0 {
		rq.lentOut.Store(true)
	}
	return n, nil
}

// Release implements Port.
func (p *AFPacket) Release(q int) {
	if uint(q) >= uint(len(p.rxq)) {
		return
	}
	rq := p.rxq[q]
	rq.mu.Lock()
	if !p.closed.Load() {
		rq.releaseLent()
	}
	rq.mu.Unlock()
}

// Arm implements Port. It also collects a pending socket error (the link
// went down or away), which the next TryRecv reports.
func (p *AFPacket) Arm(q int) bool {
	if uint(q) >= uint(len(p.rxq)) {
		return false
	}
	rq := p.rxq[q]
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if p.closed.Load() || p.fdsClosed {
		return false
	}
	rq.releaseLent()
	if serr, err := unix.GetsockoptInt(rq.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && serr != 0 {
		rq.rxErr.Store(int32(serr))
		return false
	}
	if p.down.Load() || p.gone.Load() {
		return false
	}
	return ringU32(rq.ring, rq.head*rq.frameSize).Load()&unix.TP_STATUS_USER == 0
}

// releaseLent hands the slots of the last call back to the kernel.
func (rq *afRxQueue) releaseLent() {
	rq.lentOut.Store(false)
	for i := rq.lent; i > 0; i-- {
		s := rq.head - i
		if s < 0 {
			s += rq.frames
		}
		ringU32(rq.ring, s*rq.frameSize).Store(unix.TP_STATUS_KERNEL)
	}
	rq.lent = 0
}

// struct tpacket2_hdr offsets.
const (
	t2Status   = 0
	t2Len      = 4
	t2Snaplen  = 8
	t2Mac      = 12
	t2Sec      = 16
	t2Nsec     = 20
	t2VlanTCI  = 24
	t2VlanTPID = 26
)

// fill reads up to b.Len() frames from the ring (and the socket queue for
// frames that did not fit a slot) without blocking.
func (rq *afRxQueue) fill(b *Batch, st *queueStats, kdrops *atomic.Uint64) int {
	max := b.Len()
	r := rq.ring
	ne := binary.NativeEndian
	n, ncopy, arena := 0, 0, 0
	var bytes, offl, dropped uint64
	for n < max && rq.lent < rq.frames { // never wrap onto slots lent in this call
		h := rq.head * rq.frameSize
		status := ringU32(r, h+t2Status).Load()
		if status&unix.TP_STATUS_USER == 0 {
			break
		}
		ts := int64(ne.Uint32(r[h+t2Sec:]))*1e9 + int64(ne.Uint32(r[h+t2Nsec:]))
		var vlan uint32
		if status&unix.TP_STATUS_VLAN_VALID != 0 {
			tpid := uint32(0x8100)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = uint32(ne.Uint16(r[h+t2VlanTPID:]))
			}
			vlan = tpid<<16 | uint32(ne.Uint16(r[h+t2VlanTCI:]))
		}
		if status&unix.TP_STATUS_COPY != 0 {
			// The whole frame waits on the socket queue; the slot says
			// how long it is. Room for it, a VLAN tag in front, and one
			// byte to tell a longer frame (truncated) from it.
			off := (arena + 63) &^ 63
			need := 4 + int(ne.Uint32(r[h+t2Len:])) + 1
			if ncopy == maxCopies || off+need > len(b.Arena) {
				if n > 0 {
					break // leave the slot for the next call
				}
				// No arena to copy into (a Batch not made by NewBatch):
				// drop the frame rather than stall the queue.
				rq.discardOne()
				dropped++
				if rq.head++; rq.head == rq.frames {
					rq.head = 0
				}
				rq.lent++
				continue
			}
			setIovec(&rq.ciovs[2*ncopy+1], b.Arena[off+4:off+need])
			rq.cidx[ncopy], rq.coff[ncopy], rq.cvlan[ncopy] = int32(n), int32(off), vlan
			b.Frames[n], b.Timestamps[n], b.Offloads[n] = nil, ts, Offload{}
			arena = off + need
			ncopy++
			n++
		} else {
			snap := int(ne.Uint32(r[h+t2Snaplen:]))
			plen := int(ne.Uint32(r[h+t2Len:]))
			mac := h + int(ne.Uint16(r[h+t2Mac:]))
			if snap < plen || mac-vnetHdrLen < h+tpacket2HdrLen || mac+snap > h+rq.frameSize {
				dropped++ // truncated: the socket queue was full
			} else {
				o := parseVnetHdr(r[mac-vnetHdrLen : mac])
				start := mac
				if vlan != 0 {
					// The kernel moved the 802.1Q tag into metadata; put it
					// back (over the parsed virtio header) so the frame is
					// forwarded as it arrived.
					copy(r[mac-4:mac+8], r[mac:mac+12])
					binary.BigEndian.PutUint32(r[mac+8:], vlan)
					start -= 4
					snap += 4
					if o.Pending() {
						o.CsumStart += 4
						o.HdrLen += 4
					}
				}
				b.Frames[n] = r[start : start+snap : start+snap]
				b.Timestamps[n] = ts
				b.Offloads[n] = o
				if o.Pending() {
					offl++
				}
				bytes += uint64(snap)
				n++
			}
		}
		if rq.head++; rq.head == rq.frames {
			rq.head = 0
		}
		rq.lent++
	}
	if ncopy > 0 {
		var cb, co, cd, over uint64
		n, cb, co, cd, over = rq.recvCopies(b, n, ncopy)
		bytes += cb
		offl += co
		dropped += cd
		if over > 0 {
			st.rxOversize.Add(over)
		}
	}
	if n > 0 {
		st.rxPackets.Add(uint64(n))
		st.rxBytes.Add(bytes)
	}
	if offl > 0 {
		st.rxOffload.Add(offl)
	}
	if dropped > 0 {
		kdrops.Add(dropped)
	}
	return n
}

// discardOne drops the next frame queued on the socket.
func (rq *afRxQueue) discardOne() {
	var buf [1]byte
	_, _, _ = unix.Recvfrom(rq.fd, buf[:], unix.MSG_DONTWAIT|unix.MSG_TRUNC)
}

// recvCopies receives the ncopy queued frames whose places in b were
// reserved by fill, and closes the gaps of those that could not be had.
func (rq *afRxQueue) recvCopies(b *Batch, n, ncopy int) (int, uint64, uint64, uint64, uint64) {
	var got int
	var err error
	for {
		got, err = recvmmsg(rq.fd, rq.cmsgs[:ncopy], unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		got = 0
	}
	var bytes, offl, dropped, over uint64
	for i := 0; i < ncopy; i++ {
		k := rq.cidx[i]
		if i >= got {
			dropped++
			continue
		}
		m := &rq.cmsgs[i]
		l := int(m.len) - vnetHdrLen
		if m.hdr.Flags&unix.MSG_TRUNC != 0 || l < 14 || l >= int(rq.ciovs[2*i+1].Len) {
			over++
			continue
		}
		off := int(rq.coff[i])
		buf := b.Arena[off : off+4+l] // the 4 bytes before the frame are ours
		f := buf[4:]
		o := parseVnetHdr(rq.chdrs[i][:])
		if v := rq.cvlan[i]; v != 0 {
			copy(buf[:12], f[:12])
			binary.BigEndian.PutUint32(buf[12:], v)
			f = buf
			if o.Pending() {
				o.CsumStart += 4
				o.HdrLen += 4
			}
		}
		b.Frames[k] = f[:len(f):len(f)]
		b.Offloads[k] = o
		if o.Pending() {
			offl++
		}
		bytes += uint64(len(f))
	}
	// Close the gaps left by frames that could not be had.
	w := 0
	for i := 0; i < n; i++ {
		if b.Frames[i] == nil {
			continue
		}
		b.Frames[w], b.Timestamps[w], b.Offloads[w] = b.Frames[i], b.Timestamps[i], b.Offloads[i]
		w++
	}
	return w, bytes, offl, dropped, over
}

// SendBatch implements Port. frames[:n] were consumed: queued for
// transmission, or dropped and counted (TxOversize: see TxAccepts).
// frames[n:] found the socket's buffer or the transmit ring full.
func (p *AFPacket) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	if uint(q) >= uint(len(p.txq)) {
		return 0, badQueue(p.name, q, len(p.txq))
	}
	tq := p.txq[q]
	tq.mu.Lock()
	defer tq.mu.Unlock()
	if err := p.usable(); err != nil {
		return 0, err
	}
	st := &p.stats[q]
	mtu := int(p.mtu.Load())
	if tq.ring != nil {
		return p.sendRing(tq, frames, offl, mtu, st)
	}
	return p.sendMmsg(tq, frames, offl, mtu, st)
}

func (p *AFPacket) sendRing(tq *afTxQueue, frames [][]byte, offl []Offload, mtu int, st *queueStats) (int, error) {
	r := tq.ring
	var queued, bytes, oversize, errs, segmented uint64
	i := 0
	slotMax := tq.frameSize - tpacket2HdrLen
frames:
	for ; i < len(frames); i++ {
		f := frames[i]
		o := offloadAt(offl, i)
		if !plainFits(f, o, mtu) && !TxAccepts(f, o, mtu) {
			oversize++
			continue
		}
		nseg := 1
		if o.Pending() {
			if nseg = SoftSegments(f, o); nseg == 0 {
				errs++
				continue
			}
		}
		// All of a frame's segments go, or none.
		for s, h := 0, tq.head; s < nseg; s++ {
			if ringU32(r, h*tq.frameSize).Load()&^unix.TP_STATUS_WRONG_FORMAT != unix.TP_STATUS_AVAILABLE {
				break frames // still in flight: ring full
			}
			if h++; h == tq.frames {
				h = 0
			}
		}
		for s := 0; s < nseg; s++ {
			h := tq.head * tq.frameSize
			status := ringU32(r, h)
			if status.Load()&unix.TP_STATUS_WRONG_FORMAT != 0 {
				errs++
			}
			l := len(f)
			if o.Pending() {
				l = SoftSegmentLen(f, o, s)
			}
			if l > slotMax {
				oversize++
				continue frames
			}
			if o.Pending() {
				WriteSoftSegment(r[h+tpacket2HdrLen:h+tpacket2HdrLen+l], f, o, s)
			} else {
				copy(r[h+tpacket2HdrLen:], f)
			}
			binary.NativeEndian.PutUint32(r[h+4:], uint32(l)) // tp_len
			binary.NativeEndian.PutUint32(r[h+8:], uint32(l)) // tp_snaplen
			status.Store(unix.TP_STATUS_SEND_REQUEST)
			if tq.head++; tq.head == tq.frames {
				tq.head = 0
			}
		}
		if nseg > 1 || o.GSO() {
			segmented++
		}
		queued++
		bytes += uint64(len(f))
	}
	var err error
	if queued > 0 {
		// One kick sends every pending frame; MSG_DONTWAIT returns without
		// waiting for their completion (slots come back as AVAILABLE).
		for {
			err = unix.Sendto(tq.fd, nil, unix.MSG_DONTWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		if err == unix.EAGAIN || err == unix.ENOBUFS {
			err = nil // the frames stay queued and go out with the next kick
		}
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
	if err != nil {
		return i, p.ioError(err)
	}
	return i, nil
}

func (tq *afTxQueue) initMmsg() {
	tq.msgs = make([]mmsghdr, txBatch)
	tq.iovs = make([]unix.Iovec, 2*txBatch)
	tq.hdrs = make([][vnetHdrLen]byte, txBatch)
	tq.idx = make([]int32, txBatch)
	for i := range tq.msgs {
		tq.msgs[i].hdr.Iov = &tq.iovs[2*i]
		tq.msgs[i].hdr.Iovlen = 2
		setIovec(&tq.iovs[2*i], tq.hdrs[i][:])
	}
}

func (p *AFPacket) sendMmsg(tq *afTxQueue, frames [][]byte, offl []Offload, mtu int, st *queueStats) (int, error) {
	if tq.msgs == nil {
		tq.initMmsg() // once per queue, on its first send
	}
	done, scanned := 0, 0
	var oversize uint64
	defer func() {
		if oversize > 0 {
			st.txOversize.Add(oversize)
		}
	}()
	for done < len(frames) {
		k, j := 0, done
		for ; j < len(frames) && k < len(tq.msgs); j++ {
			f := frames[j]
			o := offloadAt(offl, j)
			if !plainFits(f, o, mtu) && !TxAccepts(f, o, mtu) {
				if j >= scanned {
					oversize++
				}
				continue
			}
			putVnetHdr(tq.hdrs[k][:], o)
			setIovec(&tq.iovs[2*k+1], f)
			tq.idx[k] = int32(j)
			k++
		}
		scanned = max(scanned, j)
		if k == 0 {
			done = j
			continue
		}
		var sent int
		var err error
		for {
			sent, err = sendmmsg(tq.fd, tq.msgs[:k], unix.MSG_DONTWAIT)
			if err != unix.EINTR {
				break
			}
		}
		var bytes uint64
		for m := 0; m < sent; m++ {
			bytes += uint64(tq.iovs[2*m+1].Len)
		}
		st.txPackets.Add(uint64(sent))
		st.txBytes.Add(bytes)
		if sent == k {
			done = j
			continue
		}
		next := int(tq.idx[sent])
		switch {
		case sent > 0:
			// The call stopped at frame next without saying why: try again
			// from there, the error (if any) shows on that call.
			done = next
		case err == unix.EINVAL || err == unix.EMSGSIZE:
			// The kernel refused this frame (a bad offload header): count
			// it and go on with the next.
			st.txErrors.Add(1)
			done = next + 1
		case err == nil || err == unix.EAGAIN || err == unix.ENOBUFS:
			st.txRingFull.Add(uint64(len(frames) - next))
			return next, nil
		default:
			st.txRingFull.Add(uint64(len(frames) - next))
			return next, p.ioError(err)
		}
	}
	return len(frames), nil
}

// Close implements Port. It wakes blocked receivers (they return
// ErrClosed), unmaps the rings and closes the sockets, which also drops the
// promiscuous membership. A receive ring whose frames may still be read by
// a worker that has not come back is replaced by anonymous memory instead
// of being unmapped, so such a late reader sees zeros rather than faulting.
func (p *AFPacket) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.Wake()
	p.release()
	return nil
}

func (p *AFPacket) release() {
	p.closed.Store(true)
	for _, rq := range p.rxq {
		rq.mu.Lock()
	}
	for _, tq := range p.txq {
		tq.mu.Lock()
	}
	p.fdMu.Lock()
	if !p.fdsClosed {
		p.collectKernelDrops()
		if len(p.rxq) > 0 && !p.cfg.NoPromisc {
			mreq := unix.PacketMreq{Ifindex: int32(p.ifindex), Type: unix.PACKET_MR_PROMISC}
			_ = unix.SetsockoptPacketMreq(p.rxq[0].fd, unix.SOL_PACKET, unix.PACKET_DROP_MEMBERSHIP, &mreq)
		}
		for _, rq := range p.rxq {
			if rq.ring != nil {
				if rq.lentOut.Load() {
					retireMapping(rq.ring)
				} else {
					unix.Munmap(rq.ring)
				}
			}
			rq.ring = nil
			unix.Close(rq.fd)
			rq.w.close()
		}
		for _, tq := range p.txq {
			if tq.ring != nil {
				unix.Munmap(tq.ring)
				tq.ring = nil
				unix.Close(tq.fd)
			}
		}
		p.ctl.close()
		p.fdsClosed = true
	}
	p.fdMu.Unlock()
	for _, tq := range p.txq {
		tq.mu.Unlock()
	}
	for _, rq := range p.rxq {
		rq.mu.Unlock()
	}
}

var _ Port = (*AFPacket)(nil)
