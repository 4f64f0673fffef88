// Package pktgen is the packet generator and sink of vswitch: it transmits
// UDP/IPv4 frames at a given rate over any bpfport.Port (an AF_PACKET port
// on an interface, or a virtual port attached to a switch in the same
// process), and receives them back, counting loss, duplicates, reordering
// and latency from what the sender embedded in every frame.
//
// # Frames
//
// Every frame is Ethernet + IPv4 (20 bytes, DF, TTL 64, valid header
// checksum) + UDP (checksum 0) + an 18-byte probe, padded with zeros to
// Config.Size (60..9000 bytes, without the 4-byte FCS):
//
//	offset  size  field
//	0       14    Ethernet: destination, source, EtherType 0x0800
//	14      20    IPv4; its Identification field carries the flow id
//	34      8     UDP
//	42      2     magic 0x7647 ("vG")
//	44      8     sequence number of the frame within its flow (big endian)
//	52      8     send time, ns since the Unix epoch (CLOCK_REALTIME)
//	60      ...   zero padding up to Config.Size
//
// The 60-byte minimum frame has room for 18 bytes of UDP payload, which is
// why the flow id (at most 16 bits, Flows <= 65536) rides in the IPv4
// Identification field, free for use in datagrams that may not be
// fragmented (RFC 6864). The sink recognizes its frames by EtherType,
// IPv4/UDP without options, DF, matching lengths and the magic; anything
// else is counted as foreign and otherwise ignored. One 802.1Q tag is
// skipped.
//
// Flow i of Flows (0 <= i < Flows) adds i to each field selected by
// Config.Vary (the low 24 bits of a MAC address, a whole IPv4 address, a
// UDP port, all wrapping), so N flows are N distinct 5-tuples with N
// distinct MAC pairs as long as any field varies. Frames go out round
// robin over the flows.
//
// # Rates
//
// Packet rates count frames. Bit rates count the wire (L1): every frame
// costs its length + 4 bytes of FCS + 20 bytes of preamble, start delimiter
// and inter-frame gap, so 60-byte frames at 1 Mpps are 672 Mbit/s. The L2
// rate (frame bytes only, no FCS) is reported beside it in JSON.
//
// # Latency
//
// The sink subtracts the embedded send time from the receive time: the
// port's receive timestamp where it has one (the kernel's for AF_PACKET,
// the time the frame entered the ring for virtual ports), else the time
// the sink read the batch. Both ends must be on one machine (one clock).
// Percentiles come from a log-linear histogram with 64 sub-buckets per
// power of two (at most 1.6% relative error) that never allocates.
package pktgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Mode selects what Run does. The zero value selects Transmit.
type Mode uint8

const (
	ModeDefault Mode = iota // Transmit
	Transmit                // generate frames
	Receive                 // count frames (sink)
)

func (m Mode) String() string {
	switch m {
	case ModeDefault:
		return "default"
	case Transmit:
		return "tx"
	case Receive:
		return "rx"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Fields is a set of header fields that vary across flows.
type Fields uint8

const (
	VarySrcMAC Fields = 1 << iota
	VaryDstMAC
	VarySrcIP
	VaryDstIP
	VarySrcPort
	VaryDstPort

	// VaryDefault varies everything but the destination MAC, so that a
	// learning switch forwards every flow to one port instead of flooding
	// unknown destinations.
	VaryDefault = VarySrcMAC | VarySrcIP | VaryDstIP | VarySrcPort | VaryDstPort
	varyAll     = VaryDefault | VaryDstMAC
)

var fieldNames = []struct {
	f    Fields
	name string
}{
	{VarySrcMAC, "smac"}, {VaryDstMAC, "dmac"}, {VarySrcIP, "sip"},
	{VaryDstIP, "dip"}, {VarySrcPort, "sport"}, {VaryDstPort, "dport"},
}

func (f Fields) String() string {
	if f == 0 {
		return "none"
	}
	var s []string
	for _, n := range fieldNames {
		if f&n.f != 0 {
			s = append(s, n.name)
		}
	}
	if rest := f &^ varyAll; rest != 0 {
		s = append(s, fmt.Sprintf("0x%x", uint8(rest)))
	}
	return strings.Join(s, ",")
}

// ParseFields parses a comma-separated list of smac, dmac, sip, dip, sport,
// dport, or "all" / "none".
func ParseFields(s string) (Fields, error) {
	var f Fields
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		switch w {
		case "all":
			f |= varyAll
			continue
		case "none":
			continue
		}
		found := false
		for _, n := range fieldNames {
			if n.name == w {
				f |= n.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown field %q: want a comma-separated list of smac, dmac, sip, dip, sport, dport, all, none", w)
		}
	}
	if f == 0 {
		return 0, errNoVary
	}
	return f, nil
}

var errNoVary = errors.New("no field varies")

// Limits and defaults.
const (
	MinSize      = 60   // shortest frame (without FCS): 42 bytes of headers + the 18-byte probe
	MaxSize      = 9000 // longest frame
	MaxFlows     = 1 << 16
	MaxBurst     = 4096
	DefaultSize  = 60
	DefaultBurst = 64
	// L1Overhead is what a frame costs on the wire beyond its bytes:
	// 4 bytes of FCS and 20 of preamble, start delimiter and gap.
	L1Overhead = 24
)

// Default addresses: locally administered MACs and the benchmarking
// range of RFC 2544 (198.18.0.0/15), so generated traffic never names a
// real host.
var (
	DefaultSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	DefaultDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	DefaultSrcIP  = netip.AddrFrom4([4]byte{198, 18, 0, 1})
	DefaultDstIP  = netip.AddrFrom4([4]byte{198, 19, 0, 1})
)

const (
	DefaultSrcPort = 1024
	DefaultDstPort = 9 // discard
)

// Config configures Run. The zero value transmits 60-byte frames of one
// flow as fast as the port takes them until the context is cancelled.
type Config struct {
	// Mode is Transmit (default) or Receive.
	Mode Mode
	// Size is the frame length without FCS, MinSize..MaxSize (default 60).
	// The sink ignores it: it accepts frames of any valid size.
	Size int
	// Rate limits transmission in frames per second; 0 means as fast as
	// the port accepts.
	Rate float64
	// Count stops Run after this many frames sent (Transmit) or received
	// (Receive); 0 means no limit.
	Count uint64
	// Duration stops Run after this long; 0 means no limit. With neither
	// Count nor Duration, Run stops when its context is cancelled.
	Duration time.Duration
	// Flows is the number of distinct flows, 1..MaxFlows (default 1).
	Flows int
	// Vary selects the fields that differ between flows (default
	// VaryDefault).
	Vary Fields
	// Burst is the number of frames handed to the port at once, 1..MaxBurst
	// (default 64). Under a rate limit bursts shrink so that frames are
	// spaced by about 50µs at most.
	Burst int
	// SrcMAC and DstMAC are the addresses of flow 0 (defaults
	// DefaultSrcMAC, DefaultDstMAC).
	SrcMAC, DstMAC net.HardwareAddr
	// SrcIP and DstIP are the IPv4 addresses of flow 0 (defaults
	// DefaultSrcIP, DefaultDstIP).
	SrcIP, DstIP netip.Addr
	// SrcPort and DstPort are the UDP ports of flow 0 (defaults
	// DefaultSrcPort, DefaultDstPort).
	SrcPort, DstPort uint16
	// Queue is the port queue to send on or receive from (default 0).
	Queue int
	// Interval is the reporting period (default 1s).
	Interval time.Duration
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	switch c.Mode {
	case ModeDefault:
		c.Mode = Transmit
	case Transmit, Receive:
	default:
		return c, fmt.Errorf("unknown mode %v", c.Mode)
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Size < MinSize || c.Size > MaxSize {
		return c, fmt.Errorf("frame size %d: must be %d..%d bytes (without FCS)", c.Size, MinSize, MaxSize)
	}
	if c.Rate < 0 || c.Rate != c.Rate {
		return c, fmt.Errorf("rate %v: must be a positive number of frames per second, or 0 for no limit", c.Rate)
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("duration %v: must not be negative", c.Duration)
	}
	if c.Flows == 0 {
		c.Flows = 1
	}
	if c.Flows < 1 || c.Flows > MaxFlows {
		return c, fmt.Errorf("%d flows: must be 1..%d", c.Flows, MaxFlows)
	}
	if c.Vary == 0 {
		c.Vary = VaryDefault
	}
	if c.Vary&^varyAll != 0 {
		return c, fmt.Errorf("vary %v: unknown fields", c.Vary)
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Burst < 1 || c.Burst > MaxBurst {
		return c, fmt.Errorf("burst %d: must be 1..%d", c.Burst, MaxBurst)
	}
	var err error
	if c.SrcMAC, err = macOr(c.SrcMAC, DefaultSrcMAC, "source"); err != nil {
		return c, err
	}
	if c.DstMAC, err = macOr(c.DstMAC, DefaultDstMAC, "destination"); err != nil {
		return c, err
	}
	if c.SrcIP, err = ipOr(c.SrcIP, DefaultSrcIP, "source"); err != nil {
		return c, err
	}
	if c.DstIP, err = ipOr(c.DstIP, DefaultDstIP, "destination"); err != nil {
		return c, err
	}
	if c.SrcPort == 0 {
		c.SrcPort = DefaultSrcPort
	}
	if c.DstPort == 0 {
		c.DstPort = DefaultDstPort
	}
	if c.Queue < 0 {
		return c, fmt.Errorf("queue %d: must not be negative", c.Queue)
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Interval < 10*time.Millisecond {
		return c, fmt.Errorf("report interval %v: must be at least 10ms", c.Interval)
	}
	return c, nil
}

func macOr(m, def net.HardwareAddr, what string) (net.HardwareAddr, error) {
	if m == nil {
		return def, nil
	}
	if len(m) != 6 {
		return nil, fmt.Errorf("%s MAC %v: want a 6-byte Ethernet address", what, m)
	}
	return m, nil
}

func ipOr(a, def netip.Addr, what string) (netip.Addr, error) {
	if !a.IsValid() {
		return def, nil
	}
	a = a.Unmap()
	if !a.Is4() {
		return a, fmt.Errorf("%s IP %v: want an IPv4 address", what, a)
	}
	return a, nil
}

// The sink's receive buffers: a measurement tool absorbs bursts rather than
// drop (16384 small frames in the ring, 64 MiB of larger ones queued).
const (
	sinkRing   = 16384
	sinkRcvBuf = 64 << 20
)
