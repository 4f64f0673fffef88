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

// Description says what `vswitch pktgen` does; Usage and the vswitch
// command line's help both show it.
const Description = `Transmit (--mode tx, the default) or receive and check (--mode rx) UDP/IPv4
test frames on a network interface through an AF_PACKET port.

Without --count and --duration it runs until interrupted (Ctrl-C), then
prints the summary of what was done. Bit rates count the wire: each frame
+ 4 bytes FCS + 20 bytes preamble and inter-frame gap. The receiver reports
frames lost, duplicated and reordered per flow, and one-way latency
percentiles from the send time in each frame (sender and receiver on the
same machine).
`

// Usage is the help text of `vswitch pktgen`, printed for -h / --help. It
// is the reference of every option (`go doc pktgen.Usage` shows it); it is
// made from the same table (Args.Flags) as the flags themselves.
var Usage = usage()

func usage() string {
	var b strings.Builder
	b.WriteString("usage: vswitch pktgen -i IFACE [options]\n\n")
	desc, more, _ := strings.Cut(Description, "\n\n")
	b.WriteString(desc + "\n\n")
	var a Args
	flags := append(a.Flags(), Flag{Long: "help", Short: "h", Usage: "print this help", Bool: new(bool)})
	for _, f := range flags {
		name := "    "
		if f.Short != "" {
			name = "-" + f.Short + ", "
		}
		name += "--" + f.Long
		if f.Value != "" {
			name += " " + f.Value
		}
		fmt.Fprintf(&b, "  %-20s  %s\n", name, f.Usage)
	}
	b.WriteString("\n" + more)
	return b.String()
}

// Args are the options of `vswitch pktgen` as typed, before they are
// checked: the one table both command-line front-ends (ParseArgs here, the
// vswitch command line's) declare their flags from. Options checks them.
type Args struct {
	Iface, Netns, Mode, Size, Rate, Count, Duration, Flows, Vary, Burst string
	SrcMAC, DstMAC, SrcIP, DstIP, SrcPort, DstPort, Interval, TXMode    string
	JSON                                                                bool
}

// Flag is one option of Args: its names, the placeholder of its value,
// its help line and the field it sets (Str, or Bool for a switch).
type Flag struct {
	Long, Short, Value, Usage string
	Str                       *string
	Bool                      *bool
}

// Flags lists the options of a, in the order help shows them.
func (a *Args) Flags() []Flag {
	return []Flag{
		{"iface", "i", "IFACE", "interface to use (required)", &a.Iface, nil},
		{"netns", "", "NAME", `open the interface inside network namespace NAME (as made by "ip netns add NAME")`, &a.Netns, nil},
		{"mode", "", "tx|rx", "transmit (default) or receive", &a.Mode, nil},
		{"size", "s", "BYTES", "frame size without FCS, 60..9000 (default 60)", &a.Size, nil},
		{"rate", "r", "PPS", "frames per second, 0 = as fast as possible (default); k and M suffixes: 1.5M", &a.Rate, nil},
		{"count", "n", "N", "stop after N frames sent / received (k, M suffixes)", &a.Count, nil},
		{"duration", "d", "D", "stop after D (10s, 500ms; a bare number is seconds)", &a.Duration, nil},
		{"flows", "f", "N", "number of flows, 1..65536 (default 1)", &a.Flows, nil},
		{"vary", "", "FIELDS", "fields that differ between flows: comma-separated smac,dmac,sip,dip,sport,dport, or all (default smac,sip,dip,sport,dport)", &a.Vary, nil},
		{"burst", "b", "N", "frames per send call, 1..4096 (default 64)", &a.Burst, nil},
		{"src-mac", "", "MAC", "source MAC of flow 0 (default 02:00:00:00:00:01)", &a.SrcMAC, nil},
		{"dst-mac", "", "MAC", "destination MAC of flow 0 (default 02:00:00:00:00:02)", &a.DstMAC, nil},
		{"src-ip", "", "IP", "source IPv4 address of flow 0 (default 198.18.0.1)", &a.SrcIP, nil},
		{"dst-ip", "", "IP", "destination IPv4 address of flow 0 (default 198.19.0.1)", &a.DstIP, nil},
		{"src-port", "", "PORT", "source UDP port of flow 0 (default 1024)", &a.SrcPort, nil},
		{"dst-port", "", "PORT", "destination UDP port of flow 0 (default 9)", &a.DstPort, nil},
		{"interval", "", "D", "report period (default 1s)", &a.Interval, nil},
		{"tx-mode", "", "sendmmsg|ring", "AF_PACKET transmit method (default sendmmsg: faster into veths, whose peer copies TX ring frames)", &a.TXMode, nil},
		{"json", "j", "", "print JSON lines (one per interval, then the summary) instead of text", nil, &a.JSON},
	}
}

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
	var a Args
	var help bool
	fs := flag.NewFlagSet("pktgen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, f := range append(a.Flags(), Flag{Long: "help", Short: "h", Bool: &help}) {
		for _, n := range []string{f.Short, f.Long} {
			switch {
			case n == "":
			case f.Bool != nil:
				fs.BoolVar(f.Bool, n, false, f.Usage)
			default:
				fs.StringVar(f.Str, n, "", f.Usage)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Options{Help: true}, nil
		}
		return Options{}, usagef("%v (see --help)", err)
	}
	if help {
		return Options{Iface: a.Iface, Netns: a.Netns, JSON: a.JSON, Help: true}, nil
	}
	if fs.NArg() > 0 {
		return Options{}, usagef("unexpected argument %q: options only (see --help)", fs.Arg(0))
	}
	return a.Options()
}

// Options checks a and returns the options it gives. Errors wrap ErrUsage
// and say which flag is wrong and why.
func (a Args) Options() (Options, error) {
	o := Options{Iface: a.Iface, Netns: a.Netns, JSON: a.JSON}
	mode, size, rate, count, dur, flows, vary, burst := a.Mode, a.Size, a.Rate, a.Count, a.Duration, a.Flows, a.Vary, a.Burst
	smac, dmac, sip, dip, sport, dport, interval, txMode := a.SrcMAC, a.DstMAC, a.SrcIP, a.DstIP, a.SrcPort, a.DstPort, a.Interval, a.TXMode
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
	return Exec(ctx, o, stdout, stderr)
}

// Exec runs `vswitch pktgen` with parsed options, as Main does after
// parsing them; it returns 0 or 1.
func Exec(ctx context.Context, o Options, stdout, stderr io.Writer) int {
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
