// Package scenario is `vswitch bench`: the standard benchmark scenarios of
// vswitch, each a function that builds what it measures (network
// namespaces, veth pairs, a switch, a peer switch), measures for a bounded
// time and removes everything it made, also on failure or cancellation.
//
// The scenarios:
//
//   - vm: the interpreter, the JIT and the kernel's JIT (BPF_PROG_TEST_RUN
//     on an XDP program, the kernel's own mean duration over a large
//     repeat) on the programs of internal/testprogs: ns per run, ns per
//     executed instruction and the ratios between the engines.
//   - core: the switch core with the learning program (learn.o, JIT) on
//     in-memory virtual ports, no kernel: a generator goroutine per queue
//     feeds 64-byte unicast frames between two learned MACs, a sink
//     goroutine per queue drains them; 1 and 2 workers; Mpps delivered.
//   - veth: generator namespace -> switch namespace -> sink namespace over
//     veth pairs, 64- and 1514-byte frames, 1 and 64 flows, the switch being
//     in turn nothing (the generator's ceiling into a bare veth), vswitch
//     (learn.o, JIT and interpreter), the Linux bridge and Open vSwitch's
//     userspace datapath (AF_PACKET and AF_XDP ports) when installed. The
//     generator is pktgen on one pinned core; the rate is counted at the
//     sink's rx_packets over a window after a warm-up.
//   - latency: one-way p50/p99/p99.9 through vswitch and through the bridge
//     at a fixed moderate rate, from pktgen's embedded timestamps.
//   - hosts: real traffic. Two hosts with their own kernel stacks, each in
//     a namespace on a veth pair to the switch namespace, talk through the
//     switch under test (vswitch, the Linux bridge, Open vSwitch's
//     userspace datapath with AF_PACKET and AF_XDP ports, the hosts
//     then with transmit checksum offload off, which OVS needs): ICMP echo
//     round trips at a low and a higher rate (p50, p99, from the kernel's
//     receive timestamps) and one TCP stream's throughput (Go sockets;
//     iperf3 as a second opinion where installed).
//   - scale: a vswitch daemon as its own process (and ovs-vswitchd) with
//     10, 100 and 254 idle veth ports: memory and OS threads per idle
//     port, the time to attach them, `port show` and `stats` response
//     times, idle CPU; and the 64-byte rate of one busy port pair among
//     100 idle ports against the same switch with only that pair.
//
// Run runs the selected scenarios in that order and returns a Table, which
// prints as one aligned text table (WriteText), as JSON, or as bar charts
// of the veth, hosts and scale comparisons (WriteSVG, WritePNG).
package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order Run runs them.
const (
	VM      = "vm"
	Core    = "core"
	Veth    = "veth"
	Latency = "latency"
	Hosts   = "hosts"
	Scale   = "scale"
)

// All lists every scenario in run order.
var All = []string{VM, Core, Veth, Latency, Hosts, Scale}

// Subjects of the veth and latency scenarios: what sits in the switch
// namespace.
const (
	Ceiling          = "ceiling"           // nothing: the generator into a bare veth
	TrafgenCeiling   = "trafgen-ceiling"   // trafgen instead of pktgen into a bare veth
	VswitchJIT       = "vswitch-jit"       // vswitch, learn.o, JIT
	VswitchInterp    = "vswitch-interp"    // vswitch, learn.o, interpreter
	Bridge           = "bridge"            // Linux bridge, static FDB entry for the sink
	OVSAFPacket      = "ovs-afpacket"      // OVS userspace datapath, AF_PACKET ports
	OVSAFXDPGeneric  = "ovs-afxdp-generic" // OVS userspace datapath, AF_XDP ports, generic XDP
	OVSAFXDPNative   = "ovs-afxdp-native"  // OVS userspace datapath, AF_XDP ports, native XDP
	defaultLatencyPP = 50000
)

// AllSubjects lists the veth subjects in the order they run and plot.
var AllSubjects = []string{Ceiling, TrafgenCeiling, VswitchJIT, VswitchInterp, VswitchAFXDP, Bridge, OVSAFPacket, OVSAFXDPGeneric, OVSAFXDPNative, VswitchVXLAN, LinuxVXLAN}

// LatencySubjects are the switches the latency scenario measures.
var LatencySubjects = []string{VswitchJIT, VswitchAFXDP, Bridge}

// ScaleSubjects are the switches the scale scenario measures: the vswitch
// daemon (its own process, default settings, the JIT) and ovs-vswitchd
// with AF_PACKET ports.
var ScaleSubjects = []string{VswitchJIT, OVSAFPacket}

// Switches lists every switch name that Options.Subjects accepts: the
// veth subjects, then those of the hosts scenario that the veth scenario
// does not have.
func Switches() []string {
	out := slices.Clone(AllSubjects)
	for _, s := range HostsSubjects() {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Options configure Run. The zero value runs every scenario with defaults.
type Options struct {
	// Only selects scenarios by name (see All); empty means all.
	Only []string
	// Duration is the measurement window of each figure (default 3s).
	Duration time.Duration
	// Warmup precedes every window of the core, veth and latency
	// scenarios (default 1s).
	Warmup time.Duration
	// Subjects selects switches (see Switches); empty means all. Each
	// scenario measures those of its own subjects that are named here
	// (the veth scenario: AllSubjects; hosts: HostsSubjects; scale:
	// ScaleSubjects). Ceiling is always measured first when any veth
	// subject runs.
	Subjects []string
	// Sizes are the veth frame lengths without FCS (default 60 and
	// 1514: 64 and 1518 bytes on a wire).
	Sizes []int
	// Flows are the veth flow counts (default 1 and 64).
	Flows []int
	// LatencyRate is the latency scenario's rate in frames per second
	// (default 50000).
	LatencyRate float64
	// Runs is the number of times each core and veth figure (and the
	// scale scenario's busy-port rates) is measured; the median counts
	// (default 1).
	Runs int
	// RTTRates are the request rates, per second, of the hosts
	// scenario's round trips (default 20 and 500).
	RTTRates []float64
	// RTTWindow is how long the hosts scenario sends requests at each
	// rate (default 10s: 200 round trips at 20/s, 5000 at 500/s). The
	// TCP stream runs for Duration after Warmup.
	RTTWindow time.Duration
	// ScalePorts are the idle port counts of the scale scenario
	// (default 10, 100 and 254; at most 254, the switch's maximum).
	ScalePorts []int
	// ScaleBusyIdle is the number of idle ports beside the busy pair in
	// the scale scenario (default 100).
	ScaleBusyIdle int
	// DaemonCommand runs a vswitch daemon as its own process for the
	// scale scenario: a program and its first arguments, to which the
	// daemon's flags (--socket, --netns, ...) are appended. Default: this
	// executable and "daemon" (right for the vswitch binary).
	DaemonCommand []string
	// Log receives a line per step; nil discards.
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = time.Second
	}
	if len(o.Only) == 0 {
		o.Only = All
	}
	for _, s := range o.Only {
		if !slices.Contains(All, s) {
			return o, fmt.Errorf("unknown scenario %q: want one of %s", s, strings.Join(All, ", "))
		}
	}
	for _, s := range o.Subjects {
		if !slices.Contains(Switches(), s) {
			return o, fmt.Errorf("unknown switch %q: want one of %s", s, strings.Join(Switches(), ", "))
		}
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{60, 1514}
	}
	for _, s := range o.Sizes {
		if s < 60 || s > 1514 {
			return o, fmt.Errorf("frame size %d: must be 60..1514 (veth MTU 1500)", s)
		}
	}
	if len(o.Flows) == 0 {
		o.Flows = []int{1, 64}
	}
	for _, f := range o.Flows {
		if f < 1 || f > 4096 {
			return o, fmt.Errorf("%d flows: must be 1..4096 (the learning table holds 4096 MACs)", f)
		}
	}
	if o.Runs <= 0 {
		o.Runs = 1
	}
	if o.Runs > 15 {
		return o, fmt.Errorf("%d runs: at most 15", o.Runs)
	}
	if o.LatencyRate <= 0 {
		o.LatencyRate = defaultLatencyPP
	}
	if len(o.RTTRates) == 0 {
		o.RTTRates = []float64{20, 500}
	}
	for _, r := range o.RTTRates {
		if !(r >= 1 && r <= 100000) {
			return o, fmt.Errorf("round-trip rate %v/s: must be 1..100000", r)
		}
	}
	if o.RTTWindow <= 0 {
		o.RTTWindow = 10 * time.Second
	}
	for _, r := range o.RTTRates {
		if r*o.RTTWindow.Seconds() > maxRTTRequests {
			return o, fmt.Errorf("%v/s for %v is more than %d round trips", r, o.RTTWindow, maxRTTRequests)
		}
	}
	if len(o.ScalePorts) == 0 {
		o.ScalePorts = []int{10, 100, 254}
	}
	for _, n := range o.ScalePorts {
		if n < 1 || n > maxPorts {
			return o, fmt.Errorf("%d idle ports: must be 1..%d (the switch's most ports)", n, maxPorts)
		}
	}
	if o.ScaleBusyIdle <= 0 {
		o.ScaleBusyIdle = 100
	}
	if o.ScaleBusyIdle > maxPorts-2 {
		return o, fmt.Errorf("%d idle ports beside the busy pair: at most %d", o.ScaleBusyIdle, maxPorts-2)
	}
	if len(o.DaemonCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		o.DaemonCommand = []string{exe, "daemon"}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

func (o Options) has(s string) bool { return slices.Contains(o.Only, s) }

// pick returns the subjects of a scenario (all, in order) that o selects.
func (o Options) pick(all []string) []string {
	if len(o.Subjects) == 0 {
		return slices.Clone(all)
	}
	var out []string
	for _, s := range all {
		if slices.Contains(o.Subjects, s) {
			out = append(out, s)
		}
	}
	return out
}

// maxPorts is the switch's most ports (indexes 0..253).
const maxPorts = 254

// maxRTTRequests bounds the round trips of one rate: ICMP sequence
// numbers are 16 bits.
const maxRTTRequests = 60000

// ParseList splits a comma-separated list, dropping empty items.
func ParseList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Run runs the selected scenarios and returns their results. A scenario
// that cannot run here (no root, no kernel eBPF, a peer not installed)
// leaves rows that say why instead of figures; Run returns an error only
// for invalid options or when ctx ends (then with the rows so far).
func Run(ctx context.Context, o Options) (*Table, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Table{Started: time.Now(), Machine: machine(), Window: o.Duration, Warmup: o.Warmup, Runs: o.Runs}
	t.Machine.Priority = raisePriority()
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "# "+format+"\n", args...) }
	logf("machine: %d CPUs (%s), kernel %s, load %s; %s", t.Machine.CPUs, t.Machine.CPUModel, t.Machine.Kernel,
		t.Machine.LoadStart, t.Machine.Priority)
	for _, s := range All {
		if !o.has(s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return t, err
		}
		start := time.Now()
		logf("scenario %s", s)
		switch s {
		case VM:
			t.VM = runVM(ctx, o, logf)
		case Core:
			t.Core = runCore(ctx, o, logf)
		case Veth:
			t.Veth = runVeth(ctx, o, logf)
		case Latency:
			t.Latency = runLatency(ctx, o, logf)
		case Hosts:
			t.Hosts = runHosts(ctx, o, logf)
		case Scale:
			t.Scale, t.ScaleBusy = runScale(ctx, o, logf)
		}
		logf("scenario %s took %v", s, time.Since(start).Round(100*time.Millisecond))
	}
	t.Elapsed = time.Since(t.Started).Round(time.Second)
	t.Machine.LoadEnd = loadavg()
	return t, ctx.Err()
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go"`
	LoadStart string `json:"load_start"` // 1, 5 and 15 minute load averages
	LoadEnd   string `json:"load_end"`
	// Priority says whether the benchmark raised its scheduling priority
	// (nice -20 and its autogroup), which matters on a shared machine.
	Priority string `json:"priority"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	} else {
		m.Kernel = runtime.GOOS
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
