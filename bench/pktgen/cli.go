package pktgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/govswitch/vswitch/bpfport"
)

// Usage is the help text of `vswitch pktgen`, printed for -h / --help. It
// is the reference of every option (`go doc pktgen.Usage` shows it).
const Usage = `usage: vswitch pktgen -i IFACE [options]

Transmit (--mode tx, the default) or receive and check (--mode rx) UDP/IPv4
test frames on a network interface through an AF_PACKET port.

  -i, --iface IFACE     interface to use (required)
      --netns NAME      open the interface inside network namespace NAME
                        (as made by "ip netns add NAME")
      --mode tx|rx      transmit (default) or receive
  -s, --size BYTES      frame size without FCS, 60..9000 (default 60)
  -r, --rate PPS        frames per second, 0 = as fast as possible
                        (default); k and M suffixes: 1.5M
  -n, --count N         stop after N frames sent / received (k, M suffixes)
  -d, --duration D      stop after D (10s, 500ms; a bare number is seconds)
  -f, --flows N         number of flows, 1..65536 (default 1)
      --vary FIELDS     fields that differ between flows: comma-separated
                        smac,dmac,sip,dip,sport,dport, or all
                        (default smac,sip,dip,sport,dport)
  -b, --burst N         frames per send call, 1..4096 (default 64)
      --src-mac MAC     source MAC of flow 0 (default 02:00:00:00:00:01)
      --dst-mac MAC     destination MAC of flow 0 (default 02:00:00:00:00:02)
      --src-ip IP       source IPv4 address of flow 0 (default 198.18.0.1)
      --dst-ip IP       destination IPv4 address of flow 0 (default 198.19.0.1)
      --src-port PORT   source UDP port of flow 0 (default 1024)
      --dst-port PORT   destination UDP port of flow 0 (default 9)
      --interval D      report period (default 1s)
      --tx-mode sendmmsg|ring  AF_PACKET transmit method (default sendmmsg:
                        faster into veths, whose peer copies TX ring frames)
  -j, --json            print JSON lines (one per interval, then the
                        summary) instead of text
  -h, --help            print this help

Without --count and --duration it runs until interrupted (Ctrl-C), then
prints the summary of what was done. Bit rates count the wire: each frame
+ 4 bytes FCS + 20 bytes preamble and inter-frame gap. The receiver reports
frames lost, duplicated and reordered per flow, and one-way latency
percentiles from the send time in each frame (sender and receiver on the
same machine).
`

// Options are the parsed command line of `vswitch pktgen`.
type Options struct {
	Iface  string
	Netns  string
	JSON   bool
	Help   bool // -h / --help: print Usage and do nothing else
	TXMode bpfport.TXMode
	Config Config
}

// ErrUsage wraps every error of ParseArgs.
var ErrUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// ParseArgs parses the arguments of `vswitch pktgen` (without the command
// name). Errors wrap ErrUsage and say which flag is wrong and why.
func ParseArgs(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("pktgen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	str := func(p *string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, "", "")
		}
	}
	boolean := func(p *bool, names ...string) {
		for _, n := range names {
			fs.BoolVar(p, n, false, "")
		}
	}
	var mode, size, rate, count, dur, flows, vary, burst, smac, dmac, sip, dip, sport, dport, interval, txMode string
	str(&o.Iface, "i", "iface")
	str(&o.Netns, "netns")
	str(&mode, "mode")
	str(&size, "s", "size")
	str(&rate, "r", "rate")
	str(&count, "n", "count")
	str(&dur, "d", "duration")
	str(&flows, "f", "flows")
	str(&vary, "vary")
	str(&burst, "b", "burst")
	str(&smac, "src-mac")
	str(&dmac, "dst-mac")
	str(&sip, "src-ip")
	str(&dip, "dst-ip")
	str(&sport, "src-port")
	str(&dport, "dst-port")
	str(&interval, "interval")
	str(&txMode, "tx-mode")
	boolean(&o.JSON, "j", "json")
	boolean(&o.Help, "h", "help")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.Help = true
			return o, nil
		}
		return o, usagef("%v (see --help)", err)
	}
	if o.Help {
		return o, nil
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected argument %q: options only (see --help)", fs.Arg(0))
	}
	if o.Iface == "" {
		return o, usagef("no interface: give one with -i IFACE")
	}
	c := &o.Config
	var err error
	switch mode {
	case "", "tx", "transmit":
		c.Mode = Transmit
	case "rx", "receive":
		c.Mode = Receive
	default:
		return o, usagef("--mode %q: want tx or rx", mode)
	}
	if size != "" {
		if c.Size, err = parseInt(size, MinSize, MaxSize); err != nil {
			return o, usagef("--size %q: %v (frame bytes without FCS)", size, err)
		}
	}
	if rate != "" {
		if c.Rate, err = parseRate(rate); err != nil {
			return o, usagef("--rate %q: %v", rate, err)
		}
	}
	if count != "" {
		v, err := parseScaled(count)
		if err != nil || v < 1 || v != math.Trunc(v) || v > 1<<63 {
			return o, usagef("--count %q: want a whole number of frames, at least 1 (k, M, G suffixes allowed)", count)
		}
		c.Count = uint64(v)
	}
	if dur != "" {
		if c.Duration, err = parseDuration(dur); err != nil {
			return o, usagef("--duration %q: %v", dur, err)
		}
	}
	if flows != "" {
		if c.Flows, err = parseInt(flows, 1, MaxFlows); err != nil {
			return o, usagef("--flows %q: %v", flows, err)
		}
	}
	if vary != "" {
		if c.Vary, err = ParseFields(vary); err != nil {
			return o, usagef("--vary %q: %v", vary, err)
		}
	}
	if burst != "" {
		if c.Burst, err = parseInt(burst, 1, MaxBurst); err != nil {
			return o, usagef("--burst %q: %v", burst, err)
		}
	}
	for _, m := range []struct {
		s    string
		flag string
		dst  *net.HardwareAddr
	}{{smac, "--src-mac", &c.SrcMAC}, {dmac, "--dst-mac", &c.DstMAC}} {
		if m.s == "" {
			continue
		}
		hw, err := net.ParseMAC(m.s)
		if err != nil || len(hw) != 6 {
			return o, usagef("%s %q: want an Ethernet address like 02:00:00:00:00:01", m.flag, m.s)
		}
		*m.dst = hw
	}
	for _, a := range []struct {
		s    string
		flag string
		dst  *netip.Addr
	}{{sip, "--src-ip", &c.SrcIP}, {dip, "--dst-ip", &c.DstIP}} {
		if a.s == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.s)
		if err != nil || !ip.Unmap().Is4() {
			return o, usagef("%s %q: want an IPv4 address like 198.18.0.1", a.flag, a.s)
		}
		*a.dst = ip.Unmap()
	}
	for _, p := range []struct {
		s    string
		flag string
		dst  *uint16
	}{{sport, "--src-port", &c.SrcPort}, {dport, "--dst-port", &c.DstPort}} {
		if p.s == "" {
			continue
		}
		v, err := parseInt(p.s, 1, 65535)
		if err != nil {
			return o, usagef("%s %q: %v", p.flag, p.s, err)
		}
		*p.dst = uint16(v)
	}
	if interval != "" {
		if c.Interval, err = parseDuration(interval); err != nil || c.Interval < 10*time.Millisecond {
			return o, usagef("--interval %q: want a duration of at least 10ms", interval)
		}
	}
	switch txMode {
	case "", "sendmmsg":
		// A PACKET_TX_RING frame becomes an skb whose data past the
		// Ethernet header points into the ring (zero copy); when such an
		// skb crosses into another namespace (a veth peer) the kernel
		// copies those fragments into freshly allocated pages, frame by
		// frame (skb_copy_ubufs). sendmmsg copies into the skb at once and
		// measured 15-25% faster on the veth topology of the benchmarks.
		o.TXMode = bpfport.TXSendmmsg
	case "ring":
		o.TXMode = bpfport.TXRing
	default:
		return o, usagef("--tx-mode %q: want sendmmsg or ring", txMode)
	}
	if _, err := c.withDefaults(); err != nil {
		return o, usagef("%v", err)
	}
	return o, nil
}

func parseInt(s string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("not a whole number")
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("must be %d..%d", lo, hi)
	}
	return v, nil
}

// parseScaled parses a number with an optional k, M or G suffix.
func parseScaled(s string) (float64, error) {
	mul := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mul = 1e3
	case strings.HasSuffix(s, "M"):
		mul = 1e6
	case strings.HasSuffix(s, "G"):
		mul = 1e9
	}
	if mul != 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a number")
	}
	return v * mul, nil
}

func parseRate(s string) (float64, error) {
	v, err := parseScaled(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("want frames per second, 0 for no limit (k and M suffixes allowed)")
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if v <= 0 || math.IsNaN(v) || v > 1e9 {
			return 0, fmt.Errorf("want a positive duration")
		}
		return time.Duration(v * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 10s or 500ms")
	}
	if d <= 0 {
		return 0, fmt.Errorf("want a positive duration")
	}
	return d, nil
}

// Main runs `vswitch pktgen` with args (without the command name): it
// parses them, opens the interface, runs until done or ctx ends (the
// caller cancels ctx on SIGINT) and prints per-interval lines and the
// summary to stdout, errors to stderr. It returns the exit status: 0 on
// success (also when interrupted), 1 when the run failed, 2 for a usage
// error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "vswitch pktgen: %v\n", err)
		return 2
	}
	if o.Help {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	if runtime.GOMAXPROCS(0) < 2 {
		// With a single P (e.g. under taskset -c 0), the runtime's monitor
		// takes the P away from every send call longer than 20µs and wakes
		// another thread to run nothing: two context switches per burst on
		// the generator's own CPU. With an idle second P it leaves the
		// call alone. Measured: up to 18% more frames per second pinned to
		// one core with small bursts.
		runtime.GOMAXPROCS(2)
	}
	port, err := openPort(o)
	if err != nil {
		fmt.Fprintf(stderr, "vswitch pktgen: %v\n", err)
		return 1
	}
	defer port.Close()
	enc := json.NewEncoder(stdout)
	report := func(iv Interval) {
		if o.JSON {
			enc.Encode(iv)
		} else {
			fmt.Fprintln(stdout, iv)
		}
	}
	s, err := Run(ctx, port, o.Config, report)
	if o.JSON {
		enc.Encode(s)
	} else {
		fmt.Fprintln(stdout, s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vswitch pktgen: %v\n", err)
		return 1
	}
	return 0
}
