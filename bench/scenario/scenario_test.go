package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testenv"
)

// sample is a table with every kind of row, as Run would fill it.
func sample() *Table {
	return &Table{
		Window: 3 * time.Second, Warmup: time.Second,
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.18.0", GoVersion: "go1.26",
			LoadStart: "0.10 0.20 0.30", LoadEnd: "0.40 0.50 0.60", Priority: "nice -20"},
		VM: []VMResult{
			{Program: "ALUBlock", Engine: "interp", Insns: 101, NsPerRun: 404, NsPerInsn: 4, XKernel: 50.5, XJIT: 40.4},
			{Program: "ALUBlock", Engine: "jit", Insns: 101, NsPerRun: 10, NsPerInsn: 0.099, XKernel: 1.25, XJIT: 1},
			{Program: "ALUBlock", Engine: "kernel", Insns: 101, Skipped: "skipped: kernel eBPF: no"},
		},
		Core: []CoreResult{
			{Engine: "jit", Workers: 1, Size: 60, Mpps: 16.5},
			{Engine: "jit", Workers: 2, Size: 60, Mpps: 20.25, Dropped: 7, DropReasons: []string{"tx_full 7"}},
		},
		Veth: []VethResult{
			{Switch: Ceiling, Size: 60, Flows: 1, Mpps: 1.7, OfCeiling: 1, OfferedMpps: 1.71, CPUBusy: []float64{1, 0.2}},
			{Switch: VswitchJIT, Size: 60, Flows: 1, Mpps: 1.02, OfCeiling: 0.6, OfferedMpps: 1.6},
			{Switch: Ceiling, Size: 1514, Flows: 64, Mpps: 0.8, OfCeiling: 1, OfferedMpps: 0.8},
			{Switch: VswitchJIT, Size: 1514, Flows: 64, Mpps: 0.4, OfCeiling: 0.5, OfferedMpps: 0.8},
			{Switch: OVSAFPacket, Size: 60, Flows: 1, Skipped: "skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)"},
			{Switch: OVSAFPacket, Size: 1514, Flows: 64, Skipped: "skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)"},
		},
		Latency: []LatencyResult{
			{Switch: VswitchJIT, Size: 60, Rate: 50000, Sent: 150000, Received: 150000, P50: 31234 * time.Nanosecond,
				P99: 987654 * time.Nanosecond, P999: 1100000 * time.Nanosecond, Max: 2 * time.Millisecond},
			{Switch: Bridge, Size: 60, Rate: 50000, Skipped: "skipped: needs root"},
		},
		Hosts: []HostsResult{
			{Switch: VswitchJIT, Measure: MeasureRTT, Rate: 20, Sent: 200, Received: 200, P50: 1766 * time.Microsecond,
				P99: 2500 * time.Microsecond, Max: 3 * time.Millisecond, XBridge: 33.3},
			{Switch: VswitchJIT, Measure: MeasureTCP, Gbps: 3.04, Bytes: 1140000000, Iperf3Gbps: 2.95, XBridge: 0.23},
			{Switch: Bridge, Measure: MeasureRTT, Rate: 20, Sent: 200, Received: 199, P50: 53 * time.Microsecond,
				P99: 90 * time.Microsecond, Max: 120 * time.Microsecond, XBridge: 1},
			{Switch: Bridge, Measure: MeasureTCP, Gbps: 13.3, Bytes: 4990000000, XBridge: 1, Note: "iperf3 not installed"},
			{Switch: OVSAFPacket, Measure: MeasureRTT, Rate: 20, Note: "hosts: ethtool -K eth0 tx off",
				Skipped: "skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)"},
			{Switch: "vswitch-jit,bridge", Measure: "all", Skipped: "skipped: needs root"},
		},
		Scale: []ScaleResult{
			{Switch: VswitchJIT, Ports: 10, Attached: 10, AttachTime: 120 * time.Millisecond, RSSBaseKB: 12000, RSSKB: 79600,
				ThreadsBase: 6, Threads: 16, RSSPerPortKB: 6760, ThreadsPerPort: 1, PortShow: 480 * time.Microsecond,
				Stats: 700 * time.Microsecond, IdleCPU: 0.002},
			{Switch: VswitchJIT, Ports: 100, Attached: 64, AttachTime: 1100 * time.Millisecond, RSSBaseKB: 12000, RSSKB: 444000,
				ThreadsBase: 6, Threads: 70, RSSPerPortKB: 6750, ThreadsPerPort: 1, PortShow: 3 * time.Millisecond,
				Stats: 18 * time.Millisecond, IdleCPU: 0.01, Note: "port 65 refused: switch is full"},
			{Switch: "ovs-afpacket", Skipped: "skipped: needs root"},
		},
		ScaleBusy: []ScaleBusyResult{
			{Switch: VswitchJIT, IdlePorts: 100, Attached: 62, Mpps: 0.9, AloneMpps: 1.2, OfAlone: 0.75, OfferedMpps: 1.5,
				Note: "idle port 63 refused: switch is full"},
		},
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `vswitch bench: 2 CPUs (Test CPU), kernel 6.18.0, go1.26; load 0.10 0.20 0.30 -> 0.40 0.50 0.60; window 3s after 1s warm-up; nice -20
SCENARIO  CASE                  SUBJECT                      RESULT                    RELATIVE             NOTE
vm        ALUBlock (101 insns)  interp                       404 ns/run, 4.000 ns/insn  50.50x kernel        40.40x jit
vm        ALUBlock (101 insns)  jit                          10.0 ns/run, 0.099 ns/insn  1.25x kernel         
vm        ALUBlock (101 insns)  kernel                       -                         -                    skipped: kernel eBPF: no
core      64B, 1 worker         vswitch-jit (virtual ports)  16.50 Mpps                -                    
core      64B, 2 workers        vswitch-jit (virtual ports)  20.25 Mpps                -                    switch dropped tx_full 7
veth      64B 1 flow            ceiling                      1.700 Mpps                100% of ceiling      offered 1.710 Mpps, cpu busy 100%/20%
veth      64B 1 flow            vswitch-jit                  1.020 Mpps                60% of ceiling       offered 1.600 Mpps
veth      1514B 64 flows        ceiling                      0.800 Mpps                100% of ceiling      offered 0.800 Mpps
veth      1514B 64 flows        vswitch-jit                  0.400 Mpps                50% of ceiling       offered 0.800 Mpps
veth      64B 1 flow            ovs-afpacket                 -                         -                    skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)
veth      1514B 64 flows        ovs-afpacket                 -                         -                    skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)
latency   64B @ 50k pps         vswitch-jit                  p50 31.2µs p99 988µs      p99.9 1.1ms max 2ms  received 150000 of 150000, lost 0
latency   64B @ 50k pps         bridge                       -                         -                    skipped: needs root
hosts     RTT @ 20/s                 vswitch-jit                  p50 1.77ms p99 2.5ms                p50 33.30x bridge                      max 3ms, 200 of 200 replies
hosts     TCP, 1 stream              vswitch-jit                  3.04 Gbit/s                         0.23x bridge                           iperf3 2.95 Gbit/s
hosts     RTT @ 20/s                 bridge                       p50 53µs p99 90µs                   p50 1.00x bridge                       max 120µs, 199 of 200 replies
hosts     TCP, 1 stream              bridge                       13.30 Gbit/s                        1.00x bridge                           iperf3 not installed
hosts     RTT @ 20/s                 ovs-afpacket                 -                                   -                                      skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch); hosts: ethtool -K eth0 tx off
hosts     all measures               vswitch-jit,bridge           -                                   -                                      skipped: needs root
scale     10 idle ports              vswitch-jit                  6.6 MB RSS/port, 1.00 threads/port  attach 120ms, show 480µs, stats 700µs  idle CPU 0.2%; RSS 77.7 MB (11.7 MB without ports), 16 threads (6 without)
scale     100 idle ports             vswitch-jit                  6.6 MB RSS/port, 1.00 threads/port  attach 1.1s, show 3ms, stats 18ms      idle CPU 1.0%; RSS 433.6 MB (11.7 MB without ports), 70 threads (6 without); attached 64 of 100; port 65 refused: switch is full
scale     all port counts            ovs-afpacket                 -                                   -                                      skipped: needs root
scale     64B, busy pair + 100 idle  vswitch-jit                  0.900 Mpps                          75% of the pair alone                  pair alone 1.200 Mpps, offered 1.500 Mpps; 62 of 100 idle ports attached; idle port 63 refused: switch is full
`
	// tabwriter pads by cell width; compare after normalizing runs of
	// spaces so the test checks content and order, and separately that
	// columns line up.
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	gotLines, wantLines := strings.Split(b.String(), "\n"), strings.Split(want, "\n")
	if len(gotLines) != len(wantLines) {
		t.Fatalf("got %d lines, want %d:\n%s", len(gotLines), len(wantLines), b.String())
	}
	for i := range wantLines {
		if diff := cmp.Diff(norm(wantLines[i]), norm(gotLines[i])); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
	}
	// Aligned: every row's RESULT column starts where the header's does.
	col := strings.Index(gotLines[1], "RESULT")
	for _, l := range gotLines[2 : len(gotLines)-1] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("RESULT column not aligned at %d: %q", col, l)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got Table
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*sample(), got); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	for _, k := range []string{`"ns_per_run": 404`, `"of_ceiling": 0.6`, `"p50_ns": 31234`, `"skipped": "skipped: needs root"`} {
		if !strings.Contains(b.String(), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}

func TestChart(t *testing.T) {
	c, err := sample().vethChart()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"64B 1 flow", "1514B 64 flows"}, c.groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if len(c.series) != 2 || c.series[0].name != Ceiling || c.series[1].name != VswitchJIT {
		t.Fatalf("series %+v", c.series)
	}
	if c.series[1].values[0] != 1.02 || c.series[1].values[1] != 0.4 {
		t.Errorf("vswitch values %v", c.series[1].values)
	}
	if len(c.notes) != 1 || !strings.HasPrefix(c.notes[0], "not shown: ovs-afpacket: ovs-vswitchd not installed") {
		t.Errorf("notes %q", c.notes)
	}
	top, step := c.ymax()
	if top < 1.7 || step <= 0 || math.Abs(top/step-math.Round(top/step)) > 1e-9 {
		t.Errorf("ymax %v step %v", top, step)
	}
	if _, err := (&Table{}).vethChart(); err != errNoVeth {
		t.Errorf("empty table: %v, want errNoVeth", err)
	}
}

func TestHostsCharts(t *testing.T) {
	cs := sample().hostsCharts()
	if len(cs) != 2 {
		t.Fatalf("%d hosts charts, want 2 (round trips, TCP)", len(cs))
	}
	rtt, tcp := cs[0], cs[1]
	if diff := cmp.Diff([]string{"p50 @ 20/s", "p99 @ 20/s"}, rtt.groups); diff != "" {
		t.Errorf("round-trip groups (-want +got):\n%s", diff)
	}
	if len(rtt.series) != 2 || rtt.series[0].name != VswitchJIT || rtt.series[1].name != Bridge {
		t.Fatalf("round-trip series %+v", rtt.series)
	}
	if diff := cmp.Diff([]float64{1766, 2500}, rtt.series[0].values); diff != "" {
		t.Errorf("vswitch round trips in µs (-want +got):\n%s", diff)
	}
	if len(rtt.notes) != 1 || !strings.HasPrefix(rtt.notes[0], "not shown: ovs-afpacket: ovs-vswitchd not installed") {
		t.Errorf("round-trip notes %q", rtt.notes)
	}
	if diff := cmp.Diff([]string{"Go sockets", "iperf3"}, tcp.groups); diff != "" {
		t.Errorf("TCP groups (-want +got):\n%s", diff)
	}
	if len(tcp.series) != 2 || tcp.series[0].values[0] != 3.04 || tcp.series[0].values[1] != 2.95 ||
		tcp.series[1].values[0] != 13.3 || !math.IsNaN(tcp.series[1].values[1]) {
		t.Errorf("TCP series %+v", tcp.series)
	}
	if len((&Table{}).hostsCharts()) != 0 {
		t.Error("charts from an empty table")
	}
}

func TestScaleChart(t *testing.T) {
	c, ok := sample().scaleChart()
	if !ok {
		t.Fatal("no scale chart")
	}
	if diff := cmp.Diff([]string{"10 idle ports", "100 idle ports"}, c.groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if len(c.series) != 1 || math.Abs(c.series[0].values[0]-6760.0/1024) > 1e-9 {
		t.Errorf("series %+v", c.series)
	}
	if len(c.notes) != 1 || !strings.Contains(c.notes[0], "64 of 100 ports attached") {
		t.Errorf("notes %q", c.notes)
	}
}

func TestWriteSVG(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "<svg ") || !strings.HasSuffix(s, "</svg>\n") {
		t.Errorf("not an SVG document: %.80q...", s)
	}
	for _, want := range []string{">ceiling<", ">vswitch-jit<", ">64B 1 flow<", ">1514B 64 flows<", ">1.02<", ">0.40<",
		"not shown: ovs-afpacket", "Mpps received", ">round trip, µs<", ">p99 @ 20/s<", ">1766<", ">Gbit/s<", ">iperf3<",
		">MB per idle port<", ">100 idle ports<", "64 of 100 ports attached"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// Well-formed enough for a browser: tags balance.
	if strings.Count(s, "<text") != strings.Count(s, "</text>") || strings.Count(s, "<rect") < 5 {
		t.Errorf("unbalanced SVG")
	}
	keepPlot(t, "scenario-test.svg", b.Bytes())
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WritePNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// Four charts one under the other: veth, round trips, TCP, scale.
	if r := img.Bounds(); r.Dx() < 800 || r.Dy() < 4*400 {
		t.Errorf("PNG is %v", r)
	}
	keepPlot(t, "scenario-test.png", b.Bytes())
}

func TestWritePlotFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.svg", "a.png"} {
		if err := sample().WritePlotFile(dir + "/" + name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := (&Table{}).WritePlotFile(dir + "/empty.svg"); err == nil {
		t.Error("empty table: no error")
	}
	if _, err := os.Stat(dir + "/empty.svg"); err == nil {
		t.Error("empty table: file left behind")
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration != 3*time.Second || len(o.Only) != len(All) || len(o.Sizes) != 2 || o.LatencyRate != 50000 {
		t.Errorf("defaults %+v", o)
	}
	if diff := cmp.Diff([]float64{20, 500}, o.RTTRates); diff != "" || o.RTTWindow != 10*time.Second {
		t.Errorf("round-trip defaults %v for %v", o.RTTRates, o.RTTWindow)
	}
	if diff := cmp.Diff([]int{10, 100, 254}, o.ScalePorts); diff != "" || o.ScaleBusyIdle != 100 {
		t.Errorf("scale defaults %v, %d", o.ScalePorts, o.ScaleBusyIdle)
	}
	if exe, _ := os.Executable(); len(o.DaemonCommand) != 2 || o.DaemonCommand[0] != exe || o.DaemonCommand[1] != "daemon" {
		t.Errorf("daemon command %q", o.DaemonCommand)
	}
	for _, bad := range []Options{
		{Only: []string{"vm", "nope"}},
		{Subjects: []string{"hub"}},
		{Sizes: []int{59}},
		{Flows: []int{0}},
		{RTTRates: []float64{0.5}},
		{RTTRates: []float64{100000}, RTTWindow: time.Second},
		{ScalePorts: []int{255}},
		{ScalePorts: []int{0}},
		{ScaleBusyIdle: 253},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if diff := cmp.Diff([]string{"vm", "core"}, ParseList(" vm,,core ")); diff != "" {
		t.Error(diff)
	}
}

// TestPick: --switches selects the subjects of every scenario by name,
// in the scenario's own order; a name the scenario does not have is left
// out of it.
func TestPick(t *testing.T) {
	o, err := Options{Subjects: []string{OVSAFPacket, Bridge}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{Bridge, OVSAFPacket}, o.pick(AllSubjects)); diff != "" {
		t.Errorf("veth (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{OVSAFPacket}, o.pick(ScaleSubjects)); diff != "" {
		t.Errorf("scale (-want +got):\n%s", diff)
	}
	all, _ := Options{}.withDefaults()
	if diff := cmp.Diff(ScaleSubjects, all.pick(ScaleSubjects)); diff != "" {
		t.Errorf("no selection (-want +got):\n%s", diff)
	}
	for _, s := range HostsSubjects() {
		if !slices.Contains(Switches(), s) {
			t.Errorf("hosts subject %s is not in Switches()", s)
		}
	}
}

// short returns options for a plumbing test: short windows, output to
// the test log.
func short(t *testing.T, only ...string) Options {
	return Options{Only: only, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Log: testLog{t}}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRunVM(t *testing.T) {
	tb, err := Run(context.Background(), short(t, VM))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.VM) != 12 {
		t.Fatalf("%d VM rows, want 12", len(tb.VM))
	}
	kernelOK := kernel.Available() == nil
	for _, r := range tb.VM {
		switch {
		case r.Engine == "kernel" && !kernelOK:
			if r.Skipped == "" {
				t.Errorf("%s kernel: no reason for missing figures", r.Program)
			}
		case r.Skipped != "":
			t.Errorf("%s %s: %s", r.Program, r.Engine, r.Skipped)
		case r.NsPerRun <= 0 || r.NsPerInsn <= 0:
			t.Errorf("%s %s: %+v", r.Program, r.Engine, r)
		}
		// No comparison of speeds here: on a shared machine that would be a
		// timed test; the figures are for `vswitch bench` to report.
	}
}

func TestRunCore(t *testing.T) {
	tb, err := Run(context.Background(), short(t, Core))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Core) != len(coreCases) {
		t.Fatalf("%d core rows", len(tb.Core))
	}
	for _, r := range tb.Core {
		if r.Skipped != "" || r.Mpps <= 0 || r.Frames == 0 {
			t.Errorf("%+v", r)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tb, err := Run(ctx, short(t))
	if err == nil || tb == nil {
		t.Fatalf("cancelled run: %v, %v", tb, err)
	}
}

// requireRoot skips without root or namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t, "the scenario creates network namespaces and veth pairs")
}

// ctxAfter returns a channel closed after d.
func ctxAfter(d time.Duration) <-chan time.Time { return time.After(d) }

func ExampleTable_WriteText() {
	t := &Table{
		Window: 3 * time.Second, Warmup: time.Second,
		Machine: Machine{CPUs: 2, CPUModel: "AMD EPYC", Kernel: "6.18.44", GoVersion: "go1.26.8",
			LoadStart: "0.50 0.40 0.30", LoadEnd: "1.00 0.50 0.30", Priority: "nice -20, own autogroup at -20"},
		Core: []CoreResult{{Engine: "jit", Workers: 1, Size: 60, Mpps: 2.53, Cores: 1.96}},
		Veth: []VethResult{
			{Switch: Ceiling, Size: 60, Flows: 1, Mpps: 0.356, OfCeiling: 1, OfferedMpps: 0.357},
			{Switch: VswitchJIT, Size: 60, Flows: 1, Mpps: 0.230, OfCeiling: 0.646, OfferedMpps: 0.249},
			{Switch: OVSAFPacket, Size: 60, Flows: 1, Skipped: "skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)"},
		},
	}
	t.WriteText(os.Stdout)
	// Output:
	// vswitch bench: 2 CPUs (AMD EPYC), kernel 6.18.44, go1.26.8; load 0.50 0.40 0.30 -> 1.00 0.50 0.30; window 3s after 1s warm-up; nice -20, own autogroup at -20
	// SCENARIO  CASE           SUBJECT                      RESULT      RELATIVE         NOTE
	// core      64B, 1 worker  vswitch-jit (virtual ports)  2.53 Mpps   1.96 cores busy
	// veth      64B 1 flow     ceiling                      0.356 Mpps  100% of ceiling  offered 0.357 Mpps
	// veth      64B 1 flow     vswitch-jit                  0.230 Mpps  65% of ceiling   offered 0.249 Mpps
	// veth      64B 1 flow     ovs-afpacket                 -           -                skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)
}

// keepPlot writes a plot the test made into the folder named by
// $SCENARIO_KEEP_PLOT, to look at it.
func keepPlot(t *testing.T, name string, b []byte) {
	dir := os.Getenv("SCENARIO_KEEP_PLOT")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Error(err)
	}
}
