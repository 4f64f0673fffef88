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
//
// Run runs the selected scenarios in that order and returns a Table, which
// prints as one aligned text table (WriteText), as JSON, or as a bar chart
// of the veth comparison (WriteSVG, WritePNG).
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
)

// All lists every scenario in run order.
var All = []string{VM, Core, Veth, Latency}

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
var AllSubjects = []string{Ceiling, TrafgenCeiling, VswitchJIT, VswitchInterp, VswitchAFXDP, Bridge, OVSAFPacket, OVSAFXDPGeneric, OVSAFXDPNative}

// LatencySubjects are the switches the latency scenario measures.
var LatencySubjects = []string{VswitchJIT, VswitchAFXDP, Bridge}

// Options configure Run. The zero value runs every scenario with defaults.
type Options struct {
	// Only selects scenarios by name (vm, core, veth, latency); empty
	// means all.
	Only []string
	// Duration is the measurement window of each figure (default 3s).
	Duration time.Duration
	// Warmup precedes every window of the core, veth and latency
	// scenarios (default 1s).
	Warmup time.Duration
	// Subjects selects the veth switches (see AllSubjects); empty means
	// all. Ceiling is always measured first when any veth subject runs.
	Subjects []string
	// Sizes are the veth frame lengths without FCS (default 60 and
	// 1514: 64 and 1518 bytes on a wire).
	Sizes []int
	// Flows are the veth flow counts (default 1 and 64).
	Flows []int
	// LatencyRate is the latency scenario's rate in frames per second
	// (default 50000).
	LatencyRate float64
	// Runs is the number of times each core and veth figure is measured;
	// the median counts (default 1).
	Runs int
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
	if len(o.Subjects) == 0 {
		o.Subjects = AllSubjects
	}
	for _, s := range o.Subjects {
		if !slices.Contains(AllSubjects, s) {
			return o, fmt.Errorf("unknown switch %q: want one of %s", s, strings.Join(AllSubjects, ", "))
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
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

func (o Options) has(s string) bool { return slices.Contains(o.Only, s) }

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
