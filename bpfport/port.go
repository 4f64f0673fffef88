// Package bpfport provides the ports of the switch: one Port interface with
// batched, allocation-free receive and send, and its implementations.
//
//   - AFPacket: any Linux interface through AF_PACKET sockets: a TPACKET_V2
//     receive ring that marks frames one by one (a frame is taken as soon
//     as it arrives, at any rate), frames too long for a slot queued on the
//     socket, sendmmsg(2) to transmit (OpenAFPacket).
//   - TAP: a TAP device created or opened by name (OpenTAP).
//   - Virtual: in-memory port pairs joined by lock-free rings, for tests,
//     packet generators attached to the switch and benchmarks of the switch
//     core without the kernel (NewVirtualPair).
//   - Capture: a wrapper that copies the frames of any port to a pcap writer
//     off the hot path (NewCapture).
//
// Offloads pass through: AF_PACKET and TAP ports describe every frame with
// a virtio_net_hdr (Offload), so a TCP super-frame from a host's stack
// crosses the switch whole and a partial checksum stays partial, as through
// the Linux bridge; a port that cannot take them (Caps) finishes them in
// software on send.
//
// Readiness: every queue has a file descriptor (PollFD) that polls readable
// while it has frames. The switch waits for all of them at once through a
// Poller (one epoll set, itself waited for by Go's netpoller), so an idle
// port costs no goroutine and no thread; simple users call the blocking
// RecvBatch.
//
// # Concurrency
//
// Each queue q of a port has one receiver: RecvBatch, TryRecv, Release and
// Arm of the same q must not be called concurrently (different q may run
// in parallel). SendBatch is safe for concurrent use: calls for the same q
// serialize on a per-queue lock, calls for different q run in parallel.
// Wake, MTU, Up, Caps, Stats and Close are safe to call at any time from
// any goroutine.
//
// # Frame lifetime
//
// Frames returned by a receive are views into the port's receive ring or
// into the Batch's arena. They stay valid until the next receive, Release
// or Arm on the same queue (or the next use of the Batch), or until Close.
// A worker still processing its last batch while the port is closed does
// not fault: an AF_PACKET ring that is still lent out is replaced by
// anonymous memory instead of being unmapped (the views then read zeros).
//
// # Errors
//
// Receives and SendBatch return ErrClosed after Close, an error wrapping
// ErrLinkGone when the interface was deleted (permanent: every later call
// returns it), and an error wrapping ErrLinkDown when the interface went
// administratively down (transient: the port works again when the link
// comes back up). Open functions return errors that say what to do; they
// wrap ErrNotFound, ErrInUse, ErrPermission or ErrNotSupported where one
// applies.
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
//
// A port is served in one of two ways. Simple users (tests, the packet
// generator) call RecvBatch, which blocks until frames arrive, Wake or
// Close. The switch serves many ports from a few worker goroutines and
// never blocks in a port: it waits until PollFD(q) is readable (through
// one epoll set for all ports, itself waited for by Go's netpoller), then
// calls TryRecv until it returns no frames for a while, and calls Arm(q)
// before it waits again.
type Port interface {
	// Name is the interface name (or the virtual port's name).
	Name() string
	// NumQueues is the number of receive and transmit queues; q arguments
	// range over [0, NumQueues()).
	NumQueues() int
	// RecvBatch blocks until at least one frame is available on queue q,
	// then fills b (see TryRecv) and returns n. It returns 0, nil after
	// Wake, and ErrClosed after Close.
	RecvBatch(q int, b *Batch) (int, error)
	// TryRecv is RecvBatch without blocking: it fills b.Frames[:n],
	// b.Timestamps[:n] and b.Offloads[:n] with the frames queue q has now
	// (n may be 0) and returns n. Frames are views into the port's ring or
	// into b.Arena, valid until the next TryRecv, RecvBatch, Release or Arm
	// of the same queue or the next use of b, whichever comes first.
	TryRecv(q int, b *Batch) (int, error)
	// PollFD returns a file descriptor that polls readable (level
	// triggered) while queue q has frames or an error to report, or -1 if
	// the port has none (the switch then polls it on a timer).
	PollFD(q int) int
	// Release hands the frames lent by the last TryRecv of queue q back to
	// the port without receiving more.
	Release(q int)
	// Arm prepares queue q for a wait on PollFD(q): it releases lent
	// frames and returns true if the caller may now wait, false if frames
	// arrived meanwhile (call TryRecv again).
	Arm(q int) bool
	// SendBatch sends frames out of queue q and returns how many it
	// consumed: frames[:n] were queued for transmission or dropped and
	// counted (see TxAccepts); frames[n:] found the transmit queue full.
	// offl is nil (every frame is finished) or parallel to frames: a frame
	// with a pending offload (a partial checksum, a GSO super-frame) is
	// passed on as it is to a port whose Caps include CapOffload, and
	// finished or segmented in software by any other. The frames are not
	// modified. Safe for concurrent use.
	SendBatch(q int, frames [][]byte, offl []Offload) (int, error)
	// Caps says what the port accepts on send.
	Caps() Caps
	// Wake makes every blocked RecvBatch return 0, nil promptly. A Wake
	// that finds a queue's receiver not blocked makes its next RecvBatch
	// return at once.
	Wake()
	// MTU is the interface MTU (the largest frame is MTU + 14 bytes of
	// Ethernet header, + 4 with a VLAN tag; a GSO super-frame's segments
	// obey the same bound).
	MTU() int
	// Up reports whether the link is administratively and operationally up.
	Up() bool
	// Stats returns the port's counters since it was opened.
	Stats() Stats
	// Close releases rings, file descriptors and interface settings
	// changed on open, and makes blocked RecvBatch calls return ErrClosed.
	Close() error
}

// Caps are what a port accepts on send.
type Caps uint8

// CapOffload means the port takes frames with a pending offload (partial
// checksum, TSO/USO super-frame) and lets the kernel or the device finish
// them, as the Linux bridge passes them on.
const CapOffload Caps = 1

func (c Caps) String() string {
	if c&CapOffload != 0 {
		return "tso,csum"
	}
	return "none"
}

// Stats are the counters of one port, summed over its queues.
type Stats struct {
	RxPackets uint64 // frames handed to receivers (a super-frame counts once)
	RxBytes   uint64
	TxPackets uint64 // frames accepted by SendBatch (a super-frame counts once)
	TxBytes   uint64

	RxOversize    uint64 // received frames that did not fit (truncated), dropped
	RxKernelDrops uint64 // frames the kernel dropped because the ring or queue was full
	RxBadOffload  uint64 // frames with an offload header that does not describe them, dropped
	RxOffload     uint64 // frames received with a pending offload (super-frames, partial checksums)
	TxSegmented   uint64 // super-frames segmented in software because the port cannot take them
	TxOversize    uint64 // frames to send longer than MTU allows or shorter than a header, dropped
	TxRingFull    uint64 // frames refused because the transmit queue was full
	TxErrors      uint64 // frames the kernel refused
}

// Batch holds the frames of one receive call. Allocate it once with
// NewBatch and reuse it; ports never allocate per frame.
type Batch struct {
	// Frames[:n] are the frames of the last receive; len(Frames) is the
	// largest batch the caller accepts.
	Frames [][]byte
	// Timestamps[:n] are receive times in nanoseconds since the Unix
	// epoch (the kernel's timestamp where the port has one).
	Timestamps []int64
	// Offloads[:n] are the frames' pending offloads (zero: finished).
	Offloads []Offload
	// Arena is memory of the batch's owner that ports which copy frames
	// (TAP, super-frames of AF_PACKET) receive into.
	Arena []byte
}

// ArenaSize is the size of the arena NewBatch allocates: room for several
// 64 KiB super-frames or a few thousand small frames. Pages the kernel
// never writes to are never made resident.
const ArenaSize = 1 << 20

// NewBatch returns a batch of up to max frames (max < 1 means 1).
func NewBatch(max int) *Batch {
	if max < 1 {
		max = 1
	}
	return &Batch{Frames: make([][]byte, max), Timestamps: make([]int64, max),
		Offloads: make([]Offload, max), Arena: make([]byte, ArenaSize)}
}

// Len is the largest number of frames the batch accepts.
func (b *Batch) Len() int { return min(len(b.Frames), len(b.Timestamps), len(b.Offloads)) }

func badQueue(name string, q, n int) error {
	return fmt.Errorf("port %s: queue %d of %d: %w", name, q, n, ErrBadQueue)
}
