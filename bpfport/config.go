package bpfport

import (
	"fmt"
	"time"
)

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
// TXRing.
//
// Measured with bench/portbench (one worker, batches of 256, veth, 2 vCPU
// VM heavily loaded by other jobs, medians of 3 runs of 2 s, same run as
// trafgen): 60-byte frames: ring 0.458 Mpps, sendmmsg 0.452, trafgen 0.410;
// 1514-byte frames: ring 0.435, sendmmsg 0.416, trafgen 0.401. The ring is
// slightly ahead at both sizes (one copy into shared memory, the kernel
// attaches the pages to the skb; sendmmsg pays per-message syscall work and
// a copy), so it is the default; the difference is within the noise of a
// loaded machine.
type TXMode uint8

const (
	TXDefault  TXMode = iota // TXRing
	TXRing                   // PACKET_TX_RING: copy into an mmap'ed ring, one sendto() kick per batch
	TXSendmmsg               // sendmmsg(2): one syscall per batch, the kernel copies each frame
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
	// BlockSize is the size of one TPACKET_V3 receive block in bytes: a
	// multiple of the page size, at least 128 KiB so that a 64 KiB GSO
	// frame fits (default 256 KiB).
	BlockSize int
	// NumBlocks is the number of receive blocks per queue (default 16).
	NumBlocks int
	// FrameSize bounds received frames: a frame longer than FrameSize-128
	// bytes (the kernel's TPACKET, virtio and VLAN headroom) is dropped and
	// counted in Stats.RxOversize. It is also the transmit ring's slot
	// size. Default: the interface MTU + 146, rounded up to a power of
	// two, at least 2048.
	FrameSize int
	// BlockTimeout is how long the kernel waits before handing over a
	// partly filled receive block: the worst-case added latency at low
	// rates (default 1ms, the kernel's granularity).
	BlockTimeout time.Duration
	// TXFrames is the number of transmit ring slots per queue (default 1024).
	TXFrames int
	// TX selects the transmit method (default TXRing; see TXMode).
	TX TXMode
	// NoPromisc leaves the interface's promiscuous mode alone.
	NoPromisc bool
}

// TAPConfig configures OpenTAP. The zero value means defaults.
type TAPConfig struct {
	// Queues is the number of queues (default 1); more than one opens the
	// device with IFF_MULTI_QUEUE.
	Queues int
	// MTU, when positive, is set on the device.
	MTU int
	// NoCreate makes OpenTAP fail instead of creating a missing device.
	NoCreate bool
	// Batch is the number of receive buffers per queue, the most frames
	// one RecvBatch returns (default 64).
	Batch int
}

const (
	rxHeadroom = 128 // TPACKET3 header + sockaddr_ll + virtio_net_hdr + VLAN tag, rounded
	defBlock   = 256 << 10
	minBlock   = 128 << 10
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
	if c.BlockSize <= 0 {
		c.BlockSize = defBlock
	}
	if c.BlockSize < minBlock || c.BlockSize%4096 != 0 {
		return c, fmt.Errorf("block size %d: must be a multiple of 4096 and at least %d", c.BlockSize, minBlock)
	}
	if c.NumBlocks <= 0 {
		c.NumBlocks = 16
	}
	if c.FrameSize <= 0 {
		c.FrameSize = 2048
		for c.FrameSize < mtu+18+rxHeadroom {
			c.FrameSize <<= 1
		}
	}
	if c.FrameSize < 256 || c.FrameSize%16 != 0 || c.FrameSize > c.BlockSize {
		return c, fmt.Errorf("frame size %d: must be a multiple of 16 between 256 and the block size", c.FrameSize)
	}
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = time.Millisecond
	}
	if c.TXFrames <= 0 {
		c.TXFrames = 1024
	}
	if c.TX == TXDefault {
		c.TX = TXRing
	}
	if c.TX > TXSendmmsg {
		return c, fmt.Errorf("unknown transmit mode %v", c.TX)
	}
	return c, nil
}
