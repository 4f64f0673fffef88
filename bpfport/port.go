// Package bpfport provides the ports of the switch: one Port interface with
// batched, allocation-free receive and send, and its implementations.
//
//   - AFPacket: any Linux interface through AF_PACKET sockets, a TPACKET_V3
//     receive ring and a PACKET_TX_RING transmit ring (OpenAFPacket).
//   - TAP: a TAP device created or opened by name (OpenTAP).
//   - Virtual: in-memory port pairs joined by lock-free rings, for tests,
//     packet generators attached to the switch and benchmarks of the switch
//     core without the kernel (NewVirtualPair).
//   - Capture: a wrapper that copies the frames of any port to a pcap writer
//     off the hot path (NewCapture).
//
// # Concurrency
//
// Each queue q of a port has one receiver: RecvBatch(q, ...) must not be
// called concurrently for the same q (different q may run in parallel).
// SendBatch is safe for concurrent use: calls for the same q serialize on a
// per-queue lock, calls for different q run in parallel. Wake, MTU, Up,
// Stats and Close are safe to call at any time from any goroutine.
//
// # Frame lifetime
//
// Frames returned by RecvBatch are views into the port's receive ring (or
// per-queue buffers of the port). They stay valid until the next RecvBatch
// on the same queue, or until Close. A worker still processing its last
// batch while the port is closed does not fault: an AF_PACKET ring that is
// still lent out is replaced by anonymous memory instead of being unmapped
// (the views then read zeros).
//
// # Errors
//
// RecvBatch and SendBatch return ErrClosed after Close, an error wrapping
// ErrLinkGone when the interface was deleted (permanent: every later call
// returns it), and an error wrapping ErrLinkDown when the interface went
// administratively down (transient: the port works again when the link comes
// back up). Open functions return errors that say what to do; they wrap
// ErrNotFound, ErrInUse, ErrPermission or ErrNotSupported where one applies.
package bpfport

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrClosed is returned by every method of a port after Close.
	ErrClosed = errors.New("port closed")
	// ErrLinkGone means the interface under the port was deleted (or, for
	// a virtual port, its peer was closed). It is permanent for that port.
	ErrLinkGone = errors.New("link gone")
	// ErrLinkDown means the interface is administratively down. It is
	// transient: the port delivers frames again once the link is up.
	ErrLinkDown = errors.New("link down")
	// ErrNotFound means the named interface does not exist.
	ErrNotFound = errors.New("interface not found")
	// ErrInUse means a name is taken by something the port cannot use.
	ErrInUse = errors.New("name in use")
	// ErrPermission means the caller lacks CAP_NET_RAW / CAP_NET_ADMIN.
	ErrPermission = errors.New("permission denied")
	// ErrNotSupported means the port type is not available on this platform.
	ErrNotSupported = errors.New("not supported")
	// ErrBadQueue means a queue index outside [0, NumQueues()).
	ErrBadQueue = errors.New("queue index out of range")
)

// Port is one attachment point of the switch.
type Port interface {
	// Name is the interface name (or the virtual port's name).
	Name() string
	// NumQueues is the number of receive and transmit queues; q arguments
	// of RecvBatch and SendBatch range over [0, NumQueues()).
	NumQueues() int
	// RecvBatch blocks until at least one frame is available on queue q,
	// then fills b.Frames[:n] (and b.Timestamps[:n]) and returns n. It
	// returns 0, nil after Wake, and ErrClosed after Close. The frames are
	// views valid until the next RecvBatch on the same queue.
	RecvBatch(q int, b *Batch) (int, error)
	// SendBatch copies frames out to queue q and returns how many were
	// accepted. Frames after the first n were not sent (ring full or too
	// long); the caller counts them as drops. Safe for concurrent use.
	SendBatch(q int, frames [][]byte) (int, error)
	// Wake makes every blocked RecvBatch return 0, nil promptly. A Wake
	// that finds a queue's receiver not blocked makes its next RecvBatch
	// return at once.
	Wake()
	// MTU is the interface MTU (the largest frame is MTU + 14 bytes of
	// Ethernet header, + 4 with a VLAN tag).
	MTU() int
	// Up reports whether the link is administratively and operationally up.
	Up() bool
	// Stats returns the port's counters since it was opened.
	Stats() Stats
	// Close releases rings, file descriptors and interface settings
	// changed on open, and makes blocked RecvBatch calls return ErrClosed.
	Close() error
}

// Stats are the counters of one port, summed over its queues.
type Stats struct {
	RxPackets uint64 // frames handed to RecvBatch callers
	RxBytes   uint64
	TxPackets uint64 // frames accepted by SendBatch
	TxBytes   uint64

	RxOversize    uint64 // received frames longer than the receive slot, dropped
	RxKernelDrops uint64 // frames the kernel dropped because the ring was full
	RxBadOffload  uint64 // GSO frames that could not be segmented, dropped
	RxSegmented   uint64 // GSO frames segmented in software (not drops)
	TxOversize    uint64 // frames to send longer than MTU allows or shorter than a header, dropped
	TxRingFull    uint64 // frames refused because the transmit ring was full
	TxErrors      uint64 // frames the kernel refused
}

// Batch holds the frames of one RecvBatch call. Allocate it once with
// NewBatch and reuse it; ports never allocate per frame.
type Batch struct {
	// Frames[:n] are the frames of the last RecvBatch; len(Frames) is the
	// largest batch the caller accepts.
	Frames [][]byte
	// Timestamps[:n] are receive times in nanoseconds since the Unix
	// epoch (the kernel's timestamp where the port has one).
	Timestamps []int64
}

// NewBatch returns a batch of up to max frames (max < 1 means 1).
func NewBatch(max int) *Batch {
	if max < 1 {
		max = 1
	}
	return &Batch{Frames: make([][]byte, max), Timestamps: make([]int64, max)}
}

// Len is the largest number of frames the batch accepts.
func (b *Batch) Len() int { return len(b.Frames) }

func badQueue(name string, q, n int) error {
	return fmt.Errorf("port %s: queue %d of %d: %w", name, q, n, ErrBadQueue)
}
