package bpfport

import (
	"fmt"
	"strings"
	"sync"
)

// XDPMode selects where the redirect program of an AF_XDP port runs. The
// zero value selects XDPAuto.
type XDPMode uint8

const (
	XDPAuto    XDPMode = iota // native where the driver has it, else generic (and say so)
	XDPNative                 // in the driver: fails where the driver has no XDP
	XDPGeneric                // on the kernel's skb after the driver: any interface, slower, copy mode only
)

func (m XDPMode) String() string {
	switch m {
	case XDPAuto:
		return "auto"
	case XDPNative:
		return "native"
	case XDPGeneric:
		return "generic"
	}
	return fmt.Sprintf("XDPMode(%d)", uint8(m))
}

// ParseXDPMode reads "native", "generic" or "auto" ("" is auto).
func ParseXDPMode(s string) (XDPMode, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return XDPAuto, nil
	case "native", "drv", "driver":
		return XDPNative, nil
	case "generic", "skb":
		return XDPGeneric, nil
	}
	return 0, fmt.Errorf("xdp-mode %q: want native, generic or auto", s)
}

// ZeroCopy selects whether an AF_XDP socket shares its frame memory with
// the driver (the NIC writes received frames into the UMEM and sends from
// it) or the kernel copies frames in and out. The zero value selects
// ZeroCopyAuto.
type ZeroCopy uint8

const (
	ZeroCopyAuto ZeroCopy = iota // zero-copy where the driver has it, else copy mode (and say so)
	ZeroCopyOn                   // fail where the driver has no zero-copy
	ZeroCopyOff                  // always copy mode
)

func (z ZeroCopy) String() string {
	switch z {
	case ZeroCopyAuto:
		return "auto"
	case ZeroCopyOn:
		return "on"
	case ZeroCopyOff:
		return "off"
	}
	return fmt.Sprintf("ZeroCopy(%d)", uint8(z))
}

// ParseZeroCopy reads "on", "off" or "auto" ("" is auto).
func ParseZeroCopy(s string) (ZeroCopy, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return ZeroCopyAuto, nil
	case "on", "true", "yes":
		return ZeroCopyOn, nil
	case "off", "false", "no":
		return ZeroCopyOff, nil
	}
	return 0, fmt.Errorf("zero-copy %q: want on, off or auto", s)
}

// AFXDPConfig configures OpenAFXDP. The zero value means defaults.
type AFXDPConfig struct {
	// Queues is the number of queues, one AF_XDP socket each (default:
	// the interface's receive queues, as `ethtool -l` counts them). With
	// fewer, frames the NIC steers to the other queues go to the host's
	// stack, not the switch: the port says so in its notes.
	Queues int
	// XDPMode is where the redirect program runs (default XDPAuto).
	XDPMode XDPMode
	// ZeroCopy selects zero-copy or copy mode (default ZeroCopyAuto).
	ZeroCopy ZeroCopy
	// RingSize is the number of descriptors of each ring of a queue (fill,
	// receive, transmit, completion): a power of two from 64 to 16384,
	// default DefaultXDPRingSize. A queue keeps RingSize frames in its
	// fill ring whether it is busy or idle and may hold RingSize more in
	// flight on transmit: raise it for a port that drops (RxKernelDrops).
	RingSize int
	// Share is the set of UMEMs the AF_XDP ports of one switch share, so
	// that frames go from one port's receive ring to another's transmit
	// ring by descriptor, without a copy. nil: the port has a UMEM of its
	// own (frames to and from other AF_XDP ports are copied).
	Share *UMEMGroup
	// NoPromisc leaves the interface's promiscuous mode alone.
	NoPromisc bool

	// viaNetlink attaches the program by netlink instead of a bpf_link
	// (as on kernels without XDP links); for tests of stale attachments.
	viaNetlink bool
}

// AF_XDP ring and UMEM sizes.
const (
	DefaultXDPRingSize = 512
	MinXDPRingSize     = 64
	MaxXDPRingSize     = 16384
	// DefaultUMEMFrames is the number of frames of each UMEM of a
	// UMEMGroup: room for four queues at the default ring size (each
	// reserves 2 x RingSize + 64 frames), 8.5 MiB of 2 KiB frames.
	DefaultUMEMFrames = 4 * (2*DefaultXDPRingSize + 64)
)

// UMEMGroup is a set of UMEMs (the frame memory of AF_XDP sockets) that
// the AF_XDP ports of one switch share. A port joins a UMEM of the group
// that has room for its queues' reservations (2 x RingSize + 64 frames
// per queue: a full fill side, a full transmit ring, a cache) and frames of the right size, or starts a new one of
// DefaultUMEMFrames (or as many as it needs). Within one UMEM a frame
// received on one port is sent on another by handing its descriptor over
// (a reference count per frame keeps it until every transmit completed);
// across UMEMs and to other port types it is copied. A UMEM's memory is
// released when its last port closes. Safe for concurrent use.
//
// Memory: a UMEM's pages are pinned by the kernel (they count against
// RLIMIT_MEMLOCK without CAP_IPC_LOCK); an idle queue keeps RingSize of
// its frames in its fill ring.
type UMEMGroup struct {
	mu     sync.Mutex
	frames int
	umems  []*umem
}

// NewUMEMGroup returns an empty group whose UMEMs have frames frames each
// (0: DefaultUMEMFrames). It allocates nothing until a port joins.
func NewUMEMGroup(frames int) *UMEMGroup {
	if frames <= 0 {
		frames = DefaultUMEMFrames
	}
	return &UMEMGroup{frames: frames}
}

func (c AFXDPConfig) withDefaults() (AFXDPConfig, error) {
	if c.Queues < 0 || c.Queues > 64 {
		return c, fmt.Errorf("%d queues: want 1 to 64", c.Queues)
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultXDPRingSize
	}
	if c.RingSize < MinXDPRingSize || c.RingSize > MaxXDPRingSize || c.RingSize&(c.RingSize-1) != 0 {
		return c, fmt.Errorf("ring size %d: want a power of two from %d to %d", c.RingSize, MinXDPRingSize, MaxXDPRingSize)
	}
	if c.XDPMode > XDPGeneric {
		return c, fmt.Errorf("unknown XDP mode %v", c.XDPMode)
	}
	if c.ZeroCopy > ZeroCopyOff {
		return c, fmt.Errorf("unknown zero-copy mode %v", c.ZeroCopy)
	}
	if c.XDPMode == XDPGeneric && c.ZeroCopy == ZeroCopyOn {
		return c, fmt.Errorf("zero-copy needs native XDP: use --xdp-mode native (or auto)")
	}
	return c, nil
}

// AFXDPInfo describes what an AF_XDP port runs with, after fall-backs.
type AFXDPInfo struct {
	XDPMode      string // native or generic
	ZeroCopy     bool   // the sockets run in zero-copy mode
	Queues       int    // queues the port serves
	DeviceQueues int    // receive queues of the interface
	RingSize     int
	FrameSize    int  // bytes per UMEM frame
	UMEMFrames   int  // frames of the port's UMEM
	SharedUMEM   bool // the UMEM is shared with other ports (UMEMGroup)
	// Notes say which fall-backs were taken and why (native to generic,
	// zero-copy to copy, a stale program removed, queues not served).
	Notes []string
}

// XDPCounters are counters of an AF_XDP port beyond Stats.
type XDPCounters struct {
	ZeroCopySent uint64 // frames sent by handing over their UMEM descriptor
	CopiedSent   uint64 // frames (or segments) copied into the UMEM to be sent
}

// String describes the port's mode for logs.
func (i AFXDPInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s XDP, ", i.XDPMode)
	if i.ZeroCopy {
		b.WriteString("zero-copy")
	} else {
		b.WriteString("copy mode")
	}
	fmt.Fprintf(&b, ", %d of %d queues, rings of %d, %d-byte frames", i.Queues, i.DeviceQueues, i.RingSize, i.FrameSize)
	if i.SharedUMEM {
		fmt.Fprintf(&b, ", shared UMEM of %d frames", i.UMEMFrames)
	} else {
		fmt.Fprintf(&b, ", UMEM of %d frames", i.UMEMFrames)
	}
	return b.String()
}
