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
// Each queue has its own receive socket with an mmap'ed TPACKET_V3 ring
// (PACKET_IGNORE_OUTGOING, so the port never sees what the host sends,
// including its own transmissions; PACKET_VNET_HDR, so partial checksums
// are finished and GSO frames segmented in software before the switch sees
// them) and its own transmit socket (PACKET_QDISC_BYPASS, a PACKET_TX_RING
// or sendmmsg). With several queues the receive sockets form a
// PACKET_FANOUT group. Queue 0's socket holds a promiscuous membership,
// which the kernel drops when the socket closes.
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
	// would never wake a receiver: while down, RecvBatch checks the link
	// itself instead of blocking.
	down atomic.Bool

	kdrops atomic.Uint64
}

type afRxQueue struct {
	mu        sync.Mutex
	fd        int
	wakefd    int
	ring      []byte
	blockSize int
	numBlocks int
	maxFrame  int

	blk      int // block being read
	pkts     int // packets left in it (0: not opened yet)
	off      int // offset of the next packet in the block
	relStart int // first block not yet handed back to the kernel
	relCount int // fully read blocks to hand back at the next call

	segIdx   int // next segment of a partly delivered GSO frame
	segVh    vnetHdr
	segStart int
	segLen   int
	arena    []byte

	lent atomic.Bool // frames of the last call may still be in use
	pfds [2]unix.PollFd
	_    [64]byte
}

type afTxQueue struct {
	mu        sync.Mutex
	fd        int
	ring      []byte
	frameSize int
	frames    int
	head      int
	msgs      []mmsghdr
	iovs      []unix.Iovec
	idx       []int32
	_         [64]byte
}

const (
	tpacket2HdrLen = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): frame data offset in the TX ring
	segArena       = 256 << 10
	ethPAll        = 0x0003
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
			return nil, fmt.Errorf("af_packet %s: receive queue %d: %w", ifname, q, err)
		}
		tq, err := p.openTx()
		if tq != nil {
			p.txq = append(p.txq, tq)
		}
		if err != nil {
			p.release()
			return nil, fmt.Errorf("af_packet %s: transmit queue %d: %w", ifname, q, err)
		}
	}
	return p, nil
}

func packetSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
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

func (p *AFPacket) openRx(q int, fanoutID *int) (*afRxQueue, error) {
	cfg := p.cfg
	fd, err := packetSocket()
	if err != nil {
		return nil, err
	}
	rq := &afRxQueue{fd: fd, wakefd: -1, blockSize: cfg.BlockSize, numBlocks: cfg.NumBlocks,
		maxFrame: cfg.FrameSize - rxHeadroom}
	if rq.wakefd, err = newEventfd(); err != nil {
		return rq, err
	}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1, "PACKET_VNET_HDR"); err != nil {
		return rq, err
	}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3, "PACKET_VERSION"); err != nil {
		return rq, err
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.NumBlocks),
		Frame_size:     uint32(cfg.FrameSize),
		Frame_nr:       uint32(cfg.BlockSize / cfg.FrameSize * cfg.NumBlocks),
		Retire_blk_tov: uint32(max(1, cfg.BlockTimeout.Milliseconds())),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return rq, fmt.Errorf("PACKET_RX_RING (%d blocks of %d bytes): %w", cfg.NumBlocks, cfg.BlockSize, err)
	}
	if rq.ring, err = unix.Mmap(fd, 0, cfg.BlockSize*cfg.NumBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return rq, fmt.Errorf("mmap receive ring: %w", err)
	}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING"); err != nil {
		return rq, err
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
	rq.arena = make([]byte, segArena)
	return rq, nil
}

func (p *AFPacket) openTx() (*afTxQueue, error) {
	cfg := p.cfg
	fd, err := packetSocket()
	if err != nil {
		return nil, err
	}
	tq := &afTxQueue{fd: fd, frameSize: cfg.FrameSize}
	if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS"); err != nil {
		return tq, err
	}
	// Room for a full ring in flight; SO_SNDBUFFORCE needs CAP_NET_ADMIN,
	// without it the default applies and a full buffer looks like a full ring.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8*cfg.TXFrames*(cfg.FrameSize+1024))
	switch cfg.TX {
	case TXRing:
		if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2, "PACKET_VERSION"); err != nil {
			return tq, err
		}
		// A malformed frame is skipped instead of stopping the ring.
		if err := setInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1, "PACKET_LOSS"); err != nil {
			return tq, err
		}
		block := max(cfg.FrameSize, 4096)
		perBlock := block / cfg.FrameSize
		nblocks := (cfg.TXFrames + perBlock - 1) / perBlock
		tq.frames = nblocks * perBlock
		req := unix.TpacketReq{Block_size: uint32(block), Block_nr: uint32(nblocks),
			Frame_size: uint32(cfg.FrameSize), Frame_nr: uint32(tq.frames)}
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
			return tq, fmt.Errorf("PACKET_TX_RING: %w", err)
		}
		if tq.ring, err = unix.Mmap(fd, 0, block*nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return tq, fmt.Errorf("mmap transmit ring: %w", err)
		}
	case TXSendmmsg:
		n := min(cfg.TXFrames, 1024)
		tq.msgs = make([]mmsghdr, n)
		tq.iovs = make([]unix.Iovec, n)
		tq.idx = make([]int32, n)
		for i := range tq.msgs {
			tq.msgs[i].hdr.Iov = &tq.iovs[i]
			tq.msgs[i].hdr.Iovlen = 1
		}
	}
	// Protocol 0: this socket transmits only and never receives.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return tq, fmt.Errorf("bind: %w", err)
	}
	return tq, nil
}

// Name returns the interface name given to OpenAFPacket.
func (p *AFPacket) Name() string { return p.name }

// NumQueues returns the number of queues.
func (p *AFPacket) NumQueues() int { return len(p.rxq) }

// Config returns the configuration in effect (defaults filled in).
func (p *AFPacket) Config() AFPacketConfig { return p.cfg }

// MTU returns the interface's current MTU.

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
		if st, err := unix.GetsockoptTpacketStatsV3(rq.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
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
		eventfdSignal(rq.wakefd)
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

// downState is RecvBatch's check while the link is down: ErrLinkGone once
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

// RecvBatch implements Port.
func (p *AFPacket) RecvBatch(q int, b *Batch) (int, error) {
	if uint(q) >= uint(len(p.rxq)) {
		return 0, badQueue(p.name, q, len(p.rxq))
	}
	rq := p.rxq[q]
	rq.mu.Lock()
	defer rq.mu.Unlock()
	rq.lent.Store(false)
	if p.closed.Load() {
		return 0, ErrClosed
	}
	rq.releaseBlocks()
	for {
		if p.gone.Load() {
			return 0, p.goneError()
		}
		if p.down.Load() {
			if err := p.downState(); err != nil {
				return 0, err
			}
		}
		if n := rq.fill(b, &p.stats[q]); n > 0 {
			rq.lent.Store(true)
			return n, nil
		}
		// Nothing lent: hand fully read (e.g. all-dropped) blocks back now,
		// or poll would report them as readable forever.
		rq.releaseBlocks()
		rev, woke, err := pollIn(&rq.pfds, rq.fd, rq.wakefd)
		if p.closed.Load() {
			return 0, ErrClosed
		}
		if err != nil {
			return 0, fmt.Errorf("port %s: poll: %w", p.name, err)
		}
		if woke {
			return 0, nil
		}
		if rev&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			if serr, err := unix.GetsockoptInt(rq.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && serr != 0 {
				return 0, p.ioError(unix.Errno(serr))
			}
			if rev&unix.POLLNVAL != 0 {
				return 0, ErrClosed
			}
		}
	}
}

func (rq *afRxQueue) releaseBlocks() {
	for i := 0; i < rq.relCount; i++ {
		b := (rq.relStart + i) % rq.numBlocks
		ringU32(rq.ring, b*rq.blockSize+8).Store(unix.TP_STATUS_KERNEL)
	}
	rq.relStart = (rq.relStart + rq.relCount) % rq.numBlocks
	rq.relCount = 0
}

func (rq *afRxQueue) finishBlock() {
	rq.relCount++
	rq.blk = (rq.blk + 1) % rq.numBlocks
	rq.pkts = 0
}

// TPACKET_V3 offsets (struct tpacket_block_desc, struct tpacket3_hdr).
const (
	bdStatus   = 8
	bdNumPkts  = 12
	bdFirstPkt = 16
	thNext     = 0
	thSec      = 4
	thNsec     = 8
	thSnaplen  = 12
	thLen      = 16
	thStatus   = 20
	thMac      = 24
	thVlanTCI  = 32
	thVlanTPID = 36
)

// fill reads up to len(b.Frames) frames from the ring without blocking.
func (rq *afRxQueue) fill(b *Batch, st *queueStats) int {
	max := min(len(b.Frames), len(b.Timestamps))
	r := rq.ring
	ne := binary.NativeEndian
	n, arena := 0, 0
	var bytes, oversize, segmented, bad uint64
	for n < max {
		base := rq.blk * rq.blockSize
		if rq.pkts == 0 {
			if ringU32(r, base+bdStatus).Load()&unix.TP_STATUS_USER == 0 {
				break
			}
			rq.pkts = int(ne.Uint32(r[base+bdNumPkts:]))
			rq.off = int(ne.Uint32(r[base+bdFirstPkt:]))
			if rq.pkts == 0 {
				rq.finishBlock()
				continue
			}
		}
		h := base + rq.off
		next := int(ne.Uint32(r[h+thNext:]))
		ts := int64(ne.Uint32(r[h+thSec:]))*1e9 + int64(ne.Uint32(r[h+thNsec:]))
		consumed := true
		if rq.segIdx > 0 {
			// Resume a GSO frame whose headers were already rewritten.
			f := r[rq.segStart : rq.segStart+rq.segLen]
			n, arena = rq.segment(b, f, rq.segVh, ts, n, max, arena, &bytes, &segmented, &bad)
			consumed = rq.segIdx == 0
		} else {
			snap := int(ne.Uint32(r[h+thSnaplen:]))
			plen := int(ne.Uint32(r[h+thLen:]))
			status := ne.Uint32(r[h+thStatus:])
			mac := h + int(ne.Uint16(r[h+thMac:]))
			vh := parseVnetHdr(r[mac-vnetHdrLen : mac])
			gso := vh.gsoType != gsoNone
			if snap < plen || (!gso && plen > rq.maxFrame) || mac+snap > base+rq.blockSize {
				oversize++
			} else {
				start := mac
				if status&unix.TP_STATUS_VLAN_VALID != 0 {
					// The kernel moved the 802.1Q tag into metadata; put it
					// back (over the parsed virtio header) so the frame is
					// forwarded as it arrived.
					tci := uint16(ne.Uint32(r[h+thVlanTCI:]))
					tpid := uint16(0x8100)
					if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
						tpid = ne.Uint16(r[h+thVlanTPID:])
					}
					copy(r[mac-4:mac+8], r[mac:mac+12])
					binary.BigEndian.PutUint16(r[mac+8:], tpid)
					binary.BigEndian.PutUint16(r[mac+10:], tci)
					start -= 4
					snap += 4
					vh.csumStart += 4
				}
				f := r[start : start+snap : start+snap]
				switch {
				case gso:
					rq.segStart, rq.segLen, rq.segVh = start, snap, vh
					n, arena = rq.segment(b, f, vh, ts, n, max, arena, &bytes, &segmented, &bad)
					consumed = rq.segIdx == 0
				default:
					if vh.flags&vnetFlagNeedsCsum != 0 {
						finishChecksum(f, int(vh.csumStart), int(vh.csumOffset))
					}
					b.Frames[n] = f
					b.Timestamps[n] = ts
					n++
					bytes += uint64(snap)
				}
			}
		}
		if !consumed {
			break
		}
		rq.pkts--
		rq.off += next
		if rq.pkts == 0 {
			rq.finishBlock()
		}
	}
	if n > 0 {
		st.rxPackets.Add(uint64(n))
		st.rxBytes.Add(bytes)
	}
	if oversize > 0 {
		st.rxOversize.Add(oversize)
	}
	if segmented > 0 {
		st.rxSegmented.Add(segmented)
	}
	if bad > 0 {
		st.rxBadOffload.Add(bad)
	}
	return n
}

// segment delivers the segments of GSO frame f from rq.segIdx on, as many
// as fit in the batch and the arena. rq.segIdx is 0 when f is done.
func (rq *afRxQueue) segment(b *Batch, f []byte, vh vnetHdr, ts int64, n, max, arena int, bytes, segmented, bad *uint64) (int, int) {
	g, ok := parseGSO(f, vh)
	if !ok {
		*bad++
		rq.segIdx = 0
		return n, arena
	}
	for rq.segIdx < g.nseg && n < max {
		l := g.segLen(f, rq.segIdx)
		if arena+l > len(rq.arena) {
			break
		}
		dst := rq.arena[arena : arena+l : arena+l]
		g.writeSegment(dst, f, rq.segIdx)
		b.Frames[n] = dst
		b.Timestamps[n] = ts
		n++
		arena += l
		*bytes += uint64(l)
		rq.segIdx++
	}
	if rq.segIdx >= g.nseg {
		rq.segIdx = 0
		*segmented++
	}
	return n, arena
}

// SendBatch implements Port. frames[:n] were consumed: queued for
// transmission, or dropped and counted (TxOversize: shorter than an
// Ethernet header or longer than MTU+14, +18 with a VLAN tag). frames[n:]
// found the transmit ring full.
func (p *AFPacket) SendBatch(q int, frames [][]byte) (int, error) {
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
		return p.sendRing(tq, frames, mtu, st)
	}
	return p.sendMmsg(tq, frames, mtu, st)
}

func txTooLong(f []byte, mtu int) bool {
	if len(f) <= mtu+14 {
		return len(f) < 14
	}
	if len(f) > mtu+18 {
		return true
	}
	et := binary.BigEndian.Uint16(f[12:])
	return et != 0x8100 && et != 0x88a8
}

func (p *AFPacket) sendRing(tq *afTxQueue, frames [][]byte, mtu int, st *queueStats) (int, error) {
	r := tq.ring
	var queued, bytes, oversize, errs uint64
	i := 0
	for ; i < len(frames); i++ {
		f := frames[i]
		if txTooLong(f, mtu) || len(f) > tq.frameSize-tpacket2HdrLen {
			oversize++
			continue
		}
		h := tq.head * tq.frameSize
		status := ringU32(r, h)
		s := status.Load()
		if s&unix.TP_STATUS_WRONG_FORMAT != 0 {
			errs++
		} else if s != unix.TP_STATUS_AVAILABLE {
			break // still in flight: ring full
		}
		copy(r[h+tpacket2HdrLen:], f)
		binary.NativeEndian.PutUint32(r[h+4:], uint32(len(f))) // tp_len
		binary.NativeEndian.PutUint32(r[h+8:], uint32(len(f))) // tp_snaplen
		status.Store(unix.TP_STATUS_SEND_REQUEST)
		if tq.head++; tq.head == tq.frames {
			tq.head = 0
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
	if rest := len(frames) - i; rest > 0 {
		st.txRingFull.Add(uint64(rest))
	}
	if err != nil {
		return i, p.ioError(err)
	}
	return i, nil
}

func (p *AFPacket) sendMmsg(tq *afTxQueue, frames [][]byte, mtu int, st *queueStats) (int, error) {
	done := 0
	for done < len(frames) {
		k, j := 0, done
		var oversize uint64
		for ; j < len(frames) && k < len(tq.msgs); j++ {
			f := frames[j]
			if txTooLong(f, mtu) {
				oversize++
				continue
			}
			setIovec(&tq.iovs[k], f)
			tq.idx[k] = int32(j)
			k++
		}
		if oversize > 0 {
			st.txOversize.Add(oversize)
		}
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
			bytes += uint64(tq.iovs[m].Len)
		}
		st.txPackets.Add(uint64(sent))
		st.txBytes.Add(bytes)
		if sent < k {
			st.txRingFull.Add(uint64(len(frames) - int(tq.idx[sent])))
			if err != nil && err != unix.EAGAIN && err != unix.ENOBUFS {
				return int(tq.idx[sent]), p.ioError(err)
			}
			return int(tq.idx[sent]), nil
		}
		done = j
	}
	return len(frames), nil
}

// Close implements Port. It wakes blocked receivers (they return
// ErrClosed), unmaps the rings and closes the sockets, which also drops the
// promiscuous membership. A receive ring whose frames may still be read by
// a worker that has not come back to RecvBatch is replaced by anonymous
// memory instead of being unmapped, so such a late reader sees zeros
// rather than faulting.
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
				if rq.lent.Load() {
					retireMapping(rq.ring)
				} else {
					unix.Munmap(rq.ring)
				}
			}
			rq.ring = nil
			unix.Close(rq.fd)
			if rq.wakefd >= 0 {
				unix.Close(rq.wakefd)
			}
		}
		for _, tq := range p.txq {
			if tq.ring != nil {
				unix.Munmap(tq.ring)
				tq.ring = nil
			}
			unix.Close(tq.fd)
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
