package pktgen

import (
	"fmt"
	"strings"
	"time"
)

// Counters are the figures of an interval or of a whole run.
type Counters struct {
	// Packets and Bytes count frames sent (Transmit) or frames of ours
	// received (Receive); Bytes exclude the FCS.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// PPS is frames per second; L1BPS the wire bit rate (each frame +
	// L1Overhead bytes: FCS, preamble, gap); L2BPS the frame bytes alone.
	PPS   float64 `json:"pps"`
	L1BPS float64 `json:"l1_bps"`
	L2BPS float64 `json:"l2_bps"`

	// Transmit: frames the port dropped (too long for its MTU, or refused
	// by the kernel), and send calls that found the ring full and waited.
	Dropped  uint64 `json:"dropped,omitempty"`
	RingFull uint64 `json:"ring_full,omitempty"`

	// Receive: frames that are not ours; sequence numbers skipped and not
	// seen (so far); frames seen twice; frames that arrived after a higher
	// sequence number of their flow. Lost may be negative in an interval
	// where late frames fill gaps of earlier intervals.
	Foreign    uint64 `json:"foreign,omitempty"`
	Lost       int64  `json:"lost,omitempty"`
	Duplicates uint64 `json:"duplicates,omitempty"`
	Reordered  uint64 `json:"reordered,omitempty"`
	// RingDrops counts frames the kernel dropped because the receive
	// ring was full: the receiver fell behind (Receive, AF_PACKET).
	RingDrops uint64 `json:"ring_drops,omitempty"`

	// Latency is the one-way latency (Receive only, nil without samples).
	Latency *Latency `json:"latency,omitempty"`
}

func (c *Counters) setRates(d time.Duration) {
	s := d.Seconds()
	if s <= 0 {
		return
	}
	c.PPS = float64(c.Packets) / s
	c.L2BPS = float64(c.Bytes) * 8 / s
	c.L1BPS = float64(c.Bytes+c.Packets*L1Overhead) * 8 / s
}

// Interval is one report period of Run.
type Interval struct {
	Type    string  `json:"type"` // "interval"
	Mode    string  `json:"mode"` // "tx" or "rx"
	Elapsed float64 `json:"t"`    // seconds from the start to the end of the interval
	Seconds float64 `json:"secs"` // length of the interval
	Counters
}

// Summary is the result of Run.
type Summary struct {
	Type    string  `json:"type"` // "summary"
	Mode    string  `json:"mode"`
	Port    string  `json:"port"`
	Size    int     `json:"frame_size,omitempty"` // Transmit only
	Flows   int     `json:"flows"`
	Rate    float64 `json:"rate_limit_pps,omitempty"`
	Burst   int     `json:"burst,omitempty"`
	Seconds float64 `json:"secs"`
	// Interrupted is true when the context ended the run before its
	// Count or Duration.
	Interrupted bool `json:"interrupted"`
	Counters
}

// String formats the interval as one human-readable line.
func (i Interval) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8.3fs %s %s pps %s", i.Elapsed, i.Mode, si(i.PPS, ""), si(i.L1BPS, "b/s"))
	i.Counters.tail(&b, i.Mode)
	return b.String()
}

// String formats the summary as two human-readable lines.
func (s Summary) String() string {
	var b strings.Builder
	verb := "sent"
	if s.Mode == Receive.String() {
		verb = "received"
	}
	fmt.Fprintf(&b, "%s on %s: %d frames (%s) %s in %.3fs", s.Mode, s.Port, s.Packets,
		siBytes(s.Bytes), verb, s.Seconds)
	if s.Interrupted {
		b.WriteString(" (interrupted)")
	}
	fmt.Fprintf(&b, "\n%s: %s pps, %s on the wire (L1: +%d B FCS/preamble/gap per frame), %s of frames",
		s.Mode, si(s.PPS, ""), si(s.L1BPS, "b/s"), L1Overhead, si(s.L2BPS, "b/s"))
	s.Counters.tail(&b, s.Mode)
	return b.String()
}

func (c *Counters) tail(b *strings.Builder, mode string) {
	if mode == Transmit.String() {
		if c.Dropped > 0 {
			fmt.Fprintf(b, " dropped %d", c.Dropped)
		}
		if c.RingFull > 0 {
			fmt.Fprintf(b, " ring-full %d", c.RingFull)
		}
		return
	}
	fmt.Fprintf(b, " lost %d dup %d reord %d", c.Lost, c.Duplicates, c.Reordered)
	if c.RingDrops > 0 {
		fmt.Fprintf(b, " ring-drops %d", c.RingDrops)
	}
	if c.Foreign > 0 {
		fmt.Fprintf(b, " foreign %d", c.Foreign)
	}
	if l := c.Latency; l != nil {
		fmt.Fprintf(b, " latency p50 %s p99 %s p99.9 %s max %s",
			ns(l.P50), ns(l.P99), ns(l.P999), ns(l.Max))
	}
}

// si formats v with a metric prefix: "1.702M".
func si(v float64, unit string) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.3fG%s", v/1e9, unit)
	case v >= 1e6:
		return fmt.Sprintf("%.3fM%s", v/1e6, unit)
	case v >= 1e3:
		return fmt.Sprintf("%.3fk%s", v/1e3, unit)
	}
	return fmt.Sprintf("%.0f%s", v, unit)
}

func siBytes(v uint64) string { return si(float64(v), "B") }

func ns(v int64) string { return time.Duration(v).String() }
