package bpfport

import "fmt"

// FanoutMode selects how PACKET_FANOUT spreads received frames over the
// queues of an AF_PACKET port. The zero value selects FanoutHash.
type FanoutMode uint8

const (
	FanoutDefault    FanoutMode = iota // FanoutHash
	FanoutHash                         // by flow hash: a flow stays on one queue (IP fragments reassembled first)
	FanoutRoundRobin                   // frame by frame in turn (reorders flows)
	FanoutCPU                          // by the CPU that received the frame
	FanoutRandom                       // at random
	FanoutQueueMap                     // by the NIC's receive queue
	FanoutRollover                     // fill one queue, spill to the next
)

func (m FanoutMode) String() string {
	switch m {
	case FanoutDefault:
		return "default"
	case FanoutHash:
		return "hash"
	case FanoutRoundRobin:
		return "roundrobin"
	case FanoutCPU:
		return "cpu"
	case FanoutRandom:
		return "random"
	case FanoutQueueMap:
		return "queuemap"
	case FanoutRollover:
		return "rollover"
	}
	return fmt.Sprintf("FanoutMode(%d)", uint8(m))
}

// TXMode selects how an AF_PACKET port transmits. The zero value selects
// TXSendmmsg.
//
// sendmmsg(2) on the receive socket, with a virtio_net_hdr per frame, is
// the default: it takes super-frames and partial checksums as they are
// (the kernel or the device finishes them), costs no ring memory, and was
// within noise of the ring on 64- and 1514-byte frames (bench/portbench:
// 0.452 against 0.458 Mpps, 0.416 against 0.435). PACKET_TX_RING stays for
// the packet generator, which sends small finished frames as fast as it
// can; a ring port finishes and segments offloaded frames in software.
type TXMode uint8

const (
	TXDefault  TXMode = iota // TXSendmmsg
	TXRing                   // PACKET_TX_RING on a socket of its own: copy into an mmap'ed ring, one sendto() kick per batch
	TXSendmmsg               // sendmmsg(2): one syscall per batch, offloads passed on
)

func (m TXMode) String() string {
	switch m {
	case TXDefault:
		return "default"
	case TXRing:
		return "ring"
	case TXSendmmsg:
		return "sendmmsg"
	}
	return fmt.Sprintf("TXMode(%d)", uint8(m))
}

// AFPacketConfig configures OpenAFPacket. The zero value means defaults.
type AFPacketConfig struct {
	// Queues is the number of receive and transmit queues (default 1).
	// With more than one, the receive sockets form a PACKET_FANOUT group.
	Queues int
	// Fanout is the fanout mode when Queues > 1 (default FanoutHash).
	Fanout FanoutMode
	// RingFrames is the number of slots of each queue's TPACKET_V2
	// receive ring (default DefaultRingFrames, at most MaxRingFrames). The
	// ring is memory of the port whether it is busy or idle (RingFrames x
	// FrameSize bytes); frames arriving while it is full are dropped by
	// the kernel and counted (Stats.RxKernelDrops): raise it for a port
	// that drops.
	RingFrames int
	// FrameSize is the size of a receive ring slot: a multiple of 16 from
	// 256 to 65536 (default 2048: frames up to 1920 bytes, which covers
	// every frame of a 1500-byte MTU). Frames that do not fit a slot
	// (GSO super-frames, jumbo frames) are queued on the socket instead, up
	// to RcvBuf bytes, and copied out on receive: the queue costs memory
	// only while frames wait in it. (A full-size frame through the ring
	// forwards about 1.6x faster than through the queue, which is why the
	// default slot holds one.) In TXRing mode the transmit ring's slots are
	// MTU + 146 bytes rounded up to a power of two (at least 2048).
	FrameSize int
	// RcvBuf bounds the bytes of frames queued on the socket because they
	// do not fit a slot (default 4 MiB; memory is used only while frames
	// are queued).
	RcvBuf int
	// TXFrames is the number of transmit ring slots per queue in TXRing
	// mode (default 1024).
	TXFrames int
	// TX selects the transmit method (default TXSendmmsg; see TXMode).
	TX TXMode
	// NoPromisc leaves the interface's promiscuous mode alone.
	NoPromisc bool

	txFrameSize int
}

// Receive ring sizes of AF_PACKET ports.
const (
	DefaultRingFrames = 192 // 384 KiB per queue with the default slot
	DefaultFrameSize  = 2048
	MaxRingFrames     = 1 << 16
)

// TAPConfig configures OpenTAP. The zero value means defaults.
type TAPConfig struct {
	// Queues is the number of queues (default 1); more than one opens the
	// device with IFF_MULTI_QUEUE.
	Queues int
	// MTU, when positive, is set on the device.
	MTU int
	// NoCreate makes OpenTAP fail instead of creating a missing device.
	NoCreate bool
	// NoOffload opens the device without IFF_VNET_HDR offloads: the host
	// stack then segments and finishes checksums before handing frames
	// over (slower for TCP; for peers that cannot take offloads).
	NoOffload bool
}

const (
	rxHeadroom = 128 // TPACKET2 header + sockaddr_ll + virtio_net_hdr + VLAN tag, rounded
	defRcvBuf  = 4 << 20
)

func (c AFPacketConfig) withDefaults(mtu int) (AFPacketConfig, error) {
	if c.Queues <= 0 {
		c.Queues = 1
	}
	if c.Queues > 64 {
		return c, fmt.Errorf("%d queues: at most 64", c.Queues)
	}
	if c.Fanout == FanoutDefault {
		c.Fanout = FanoutHash
	}
	if c.Fanout > FanoutRollover {
		return c, fmt.Errorf("unknown fanout mode %v", c.Fanout)
	}
	if c.RingFrames <= 0 {
		c.RingFrames = DefaultRingFrames
	}
	if c.RingFrames < 8 || c.RingFrames > MaxRingFrames {
		return c, fmt.Errorf("ring of %d frames: want 8 to %d", c.RingFrames, MaxRingFrames)
	}
	if c.FrameSize <= 0 {
		c.FrameSize = DefaultFrameSize
	}
	c.txFrameSize = 2048
	for c.txFrameSize < mtu+18+rxHeadroom && c.txFrameSize < 1<<16 {
		c.txFrameSize <<= 1
	}
	if c.FrameSize < 256 || c.FrameSize%16 != 0 || c.FrameSize > 1<<16 {
		return c, fmt.Errorf("frame size %d: must be a multiple of 16 from 256 to 65536", c.FrameSize)
	}
	if c.RcvBuf <= 0 {
		c.RcvBuf = defRcvBuf
	}
	if c.TXFrames <= 0 {
		c.TXFrames = 1024
	}
	if c.TX == TXDefault {
		c.TX = TXSendmmsg
	}
	if c.TX > TXSendmmsg {
		return c, fmt.Errorf("unknown transmit mode %v", c.TX)
	}
	return c, nil
}
