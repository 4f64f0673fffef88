package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Table is the result of Run: one slice of results per scenario, in the
// order they were measured.
type Table struct {
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Window  time.Duration `json:"window_ns"` // measurement window of each figure
	Warmup  time.Duration `json:"warmup_ns"`
	Runs    int           `json:"runs"` // per core and veth figure; the median counts
	Machine Machine       `json:"machine"`

	VM      []VMResult      `json:"vm,omitempty"`
	Core    []CoreResult    `json:"core,omitempty"`
	Veth    []VethResult    `json:"veth,omitempty"`
	Latency []LatencyResult `json:"latency,omitempty"`
	Hosts   []HostsResult   `json:"hosts,omitempty"`
	Scale   []ScaleResult   `json:"scale,omitempty"`
	// ScaleBusy are the scale scenario's busy pair among idle ports.
	ScaleBusy []ScaleBusyResult `json:"scale_busy,omitempty"`
}

// VMResult is one program on one engine.
type VMResult struct {
	Program   string  `json:"program"`
	Engine    string  `json:"engine"` // interp, jit or kernel
	Insns     int     `json:"executed_insns"`
	NsPerRun  float64 `json:"ns_per_run,omitempty"`
	NsPerInsn float64 `json:"ns_per_insn,omitempty"`
	// XKernel is NsPerRun over the kernel JIT's NsPerRun for the same
	// program (0 when the kernel was not measured).
	XKernel float64 `json:"x_kernel,omitempty"`
	// XJIT is NsPerRun over our JIT's NsPerRun.
	XJIT    float64 `json:"x_jit,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
}

// CoreResult is the switch core on virtual ports.
type CoreResult struct {
	Engine  string  `json:"engine"`
	Workers int     `json:"workers"`
	Size    int     `json:"frame_size"`
	Mpps    float64 `json:"mpps,omitempty"`
	Frames  uint64  `json:"frames,omitempty"`  // delivered in the window
	Dropped uint64  `json:"dropped,omitempty"` // frames the switch dropped in the window
	// RunsMpps are the rates of every run (Options.Runs); Mpps is their
	// median.
	RunsMpps []float64 `json:"runs_mpps,omitempty"`
	// Cores is the CPU time the whole process (generators, switch,
	// sinks) used over the window, in cores.
	Cores float64 `json:"cores,omitempty"`
	// DropReasons are the drops by reason ("tx_full 123").
	DropReasons []string `json:"drop_reasons,omitempty"`
	Skipped     string   `json:"skipped,omitempty"`
}

// VethResult is one switch on the veth topology for one frame size and
// flow count.
type VethResult struct {
	Switch string `json:"switch"`
	Size   int    `json:"frame_size"` // without FCS
	Flows  int    `json:"flows"`
	// Mpps is what the sink received, over the window.
	Mpps float64 `json:"mpps,omitempty"`
	// OfCeiling is Mpps over the ceiling's Mpps for the same size and
	// flows in the same run (0 when the ceiling was not measured).
	OfCeiling float64 `json:"of_ceiling,omitempty"`
	// OfferedMpps is what the generator sent, over its whole run.
	OfferedMpps float64 `json:"offered_mpps,omitempty"`
	// RunsMpps are the rates of every run (Options.Runs); Mpps is their
	// median.
	RunsMpps []float64 `json:"runs_mpps,omitempty"`
	// CPUBusy is the share of each CPU that was busy over the window.
	CPUBusy []float64 `json:"cpu_busy,omitempty"`
	Skipped string    `json:"skipped,omitempty"`
}

// LatencyResult is the one-way latency through one switch at a fixed
// rate.
type LatencyResult struct {
	Switch   string        `json:"switch"`
	Size     int           `json:"frame_size"`
	Rate     float64       `json:"rate_pps"`
	Sent     uint64        `json:"sent,omitempty"`
	Received uint64        `json:"received,omitempty"`
	Lost     int64         `json:"lost,omitempty"`
	P50      time.Duration `json:"p50_ns,omitempty"`
	P99      time.Duration `json:"p99_ns,omitempty"`
	P999     time.Duration `json:"p999_ns,omitempty"`
	Max      time.Duration `json:"max_ns,omitempty"`
	Skipped  string        `json:"skipped,omitempty"`
}

// Measures of the hosts scenario.
const (
	MeasureRTT = "rtt" // ICMP echo round trips at a fixed rate
	MeasureTCP = "tcp" // one TCP stream
)

// HostsResult is one measure of two hosts (own kernel stacks, in network
// namespaces) talking through one switch.
type HostsResult struct {
	Switch  string `json:"switch"`
	Measure string `json:"measure"` // MeasureRTT or MeasureTCP
	// Rate is the round trips' request rate per second (rtt).
	Rate float64 `json:"rate_pps,omitempty"`
	// Sent and Received count echo requests and their replies (rtt).
	Sent     uint64 `json:"sent,omitempty"`
	Received uint64 `json:"received,omitempty"`
	// P50, P99 and Max are round-trip times: from just before the
	// request's send call to the kernel's receive timestamp of the reply.
	P50 time.Duration `json:"p50_ns,omitempty"`
	P99 time.Duration `json:"p99_ns,omitempty"`
	Max time.Duration `json:"max_ns,omitempty"`
	// Gbps is the TCP stream's goodput over the window (tcp): Go sockets,
	// one writer, one reader.
	Gbps  float64 `json:"gbit_per_s,omitempty"`
	Bytes uint64  `json:"bytes,omitempty"` // received in the window (tcp)
	// Iperf3Gbps is iperf3's figure for one stream through the same
	// switch (tcp; 0 where iperf3 is not installed or failed, see Note).
	Iperf3Gbps float64 `json:"iperf3_gbit_per_s,omitempty"`
	// XBridge is the figure over the Linux bridge's in the same run: the
	// p50 for rtt, Gbps for tcp (0 when the bridge was not measured).
	XBridge float64 `json:"x_bridge,omitempty"`
	// Note says how the hosts or the switch were set up where it
	// matters (offloads), and what went wrong beside the figure.
	Note    string `json:"note,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// ScaleResult is one switch with a number of idle ports.
type ScaleResult struct {
	Switch string `json:"switch"`
	// Ports is the number of idle ports asked for; Attached how many
	// attached (the rest were refused: see Note).
	Ports    int `json:"ports"`
	Attached int `json:"attached"`
	// AttachTime is the time to attach them, one request each.
	AttachTime time.Duration `json:"attach_ns,omitempty"`
	// RSSBaseKB and ThreadsBase are the switch process's resident memory
	// and OS threads with no port; RSSKB and Threads with the ports.
	RSSBaseKB   uint64 `json:"rss_base_kb,omitempty"`
	RSSKB       uint64 `json:"rss_kb,omitempty"`
	ThreadsBase int    `json:"threads_base,omitempty"`
	Threads     int    `json:"threads,omitempty"`
	// RSSPerPortKB and ThreadsPerPort are the growth per attached port.
	RSSPerPortKB   float64 `json:"rss_per_port_kb"`
	ThreadsPerPort float64 `json:"threads_per_port"`
	// PortShow and Stats are the median response times of a port
	// listing and of all counters with the ports attached.
	PortShow time.Duration `json:"port_show_ns,omitempty"`
	Stats    time.Duration `json:"stats_ns,omitempty"`
	// IdleCPU is the CPU time the switch process used over the window,
	// in cores (user + system).
	IdleCPU float64 `json:"idle_cpu"`
	Note    string  `json:"note,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
}

// ScaleBusyResult is the 64-byte rate of one busy port pair among idle
// ports, against the same switch with only that pair.
type ScaleBusyResult struct {
	Switch string `json:"switch"`
	// IdlePorts is the number of idle ports asked for; Attached how many
	// attached.
	IdlePorts int `json:"idle_ports"`
	Attached  int `json:"attached"`
	// Mpps is the sink's rate with the idle ports attached, AloneMpps
	// with only the pair (same switch, same run); OfAlone their ratio.
	Mpps        float64 `json:"mpps,omitempty"`
	AloneMpps   float64 `json:"alone_mpps,omitempty"`
	OfAlone     float64 `json:"of_alone,omitempty"`
	OfferedMpps float64 `json:"offered_mpps,omitempty"`
	Note        string  `json:"note,omitempty"`
	Skipped     string  `json:"skipped,omitempty"`
}

// WriteJSON writes t as indented JSON.
func (t *Table) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// SizeLabel names a frame length (without FCS) the way it is usually
// quoted: 60 bytes is the 64-byte minimum frame on a wire.
func SizeLabel(size int) string {
	if size == 60 {
		return "64B"
	}
	return fmt.Sprintf("%dB", size)
}

// CaseLabel names a veth case: "64B 1 flow" ("all cases" for 0, 0).
func CaseLabel(size, flows int) string {
	if size == 0 && flows == 0 {
		return "all cases"
	}
	s := "s"
	if flows == 1 {
		s = ""
	}
	return fmt.Sprintf("%s %d flow%s", SizeLabel(size), flows, s)
}

// WriteText writes t as one aligned table (scenario, case, subject,
// result, relative figure, note), preceded by a line on the machine.
func (t *Table) WriteText(w io.Writer) error {
	m := t.Machine
	runs := ""
	if t.Runs > 1 {
		runs = fmt.Sprintf(", median of %d runs", t.Runs)
	}
	fmt.Fprintf(w, "vswitch bench: %d CPUs (%s), kernel %s, %s; load %s -> %s; window %v after %v warm-up%s; %s\n",
		m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.LoadStart, m.LoadEnd, t.Window, t.Warmup, runs, m.Priority)
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCASE\tSUBJECT\tRESULT\tRELATIVE\tNOTE")
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	for _, r := range t.VM {
		c := fmt.Sprintf("%s (%d insns)", r.Program, r.Insns)
		if r.Skipped != "" {
			row(VM, c, r.Engine, "-", "-", r.Skipped)
			continue
		}
		rel, note := "-", ""
		if r.XKernel > 0 {
			rel = fmt.Sprintf("%.2fx kernel", r.XKernel)
		}
		if r.XJIT > 0 && r.Engine != "jit" {
			note = fmt.Sprintf("%.2fx jit", r.XJIT)
		}
		row(VM, c, r.Engine, fmt.Sprintf("%s ns/run, %.3f ns/insn", num(r.NsPerRun), r.NsPerInsn), rel, note)
	}
	for _, r := range t.Core {
		c := fmt.Sprintf("%s, %d worker%s", SizeLabel(r.Size), r.Workers, plural(r.Workers))
		s := "vswitch-" + r.Engine + " (virtual ports)"
		if r.Skipped != "" {
			row(Core, c, s, "-", "-", r.Skipped)
			continue
		}
		note := ""
		if r.Dropped > 0 {
			note = "switch dropped " + strings.Join(r.DropReasons, ", ")
		}
		if len(r.RunsMpps) > 1 {
			note = joinNote(note, "runs "+mppsList(r.RunsMpps))
		}
		rel := "-"
		if r.Cores > 0 {
			rel = fmt.Sprintf("%.2f cores busy", r.Cores)
		}
		row(Core, c, s, fmt.Sprintf("%.2f Mpps", r.Mpps), rel, note)
	}
	for _, r := range t.Veth {
		c := CaseLabel(r.Size, r.Flows)
		if r.Skipped != "" {
			row(Veth, c, r.Switch, "-", "-", r.Skipped)
			continue
		}
		rel := "-"
		if r.OfCeiling > 0 {
			rel = fmt.Sprintf("%.0f%% of ceiling", 100*r.OfCeiling)
		}
		note := fmt.Sprintf("offered %.3f Mpps", r.OfferedMpps)
		if len(r.RunsMpps) > 1 {
			note = "runs " + mppsList(r.RunsMpps) + ", " + note
		}
		if len(r.CPUBusy) > 0 {
			var b []string
			for _, x := range r.CPUBusy {
				b = append(b, fmt.Sprintf("%.0f%%", 100*x))
			}
			note += ", cpu busy " + strings.Join(b, "/")
		}
		row(Veth, c, r.Switch, fmt.Sprintf("%.3f Mpps", r.Mpps), rel, note)
	}
	for _, r := range t.Latency {
		c := fmt.Sprintf("%s @ %s pps", SizeLabel(r.Size), num(r.Rate))
		if r.Skipped != "" {
			row(Latency, c, r.Switch, "-", "-", r.Skipped)
			continue
		}
		row(Latency, c, r.Switch, fmt.Sprintf("p50 %v p99 %v", dur(r.P50), dur(r.P99)),
			fmt.Sprintf("p99.9 %v max %v", dur(r.P999), dur(r.Max)),
			fmt.Sprintf("received %d of %d, lost %d", r.Received, r.Sent, max(r.Lost, 0)))
	}
	for _, r := range t.Hosts {
		c := "all measures" // a row that stands for every one: nothing ran
		switch r.Measure {
		case MeasureRTT:
			c = fmt.Sprintf("RTT @ %s/s", rateLabel(r.Rate))
		case MeasureTCP:
			c = "TCP, 1 stream"
		}
		if r.Skipped != "" {
			row(Hosts, c, r.Switch, "-", "-", joinNote(r.Skipped, r.Note))
			continue
		}
		rel := "-"
		if r.Measure == MeasureRTT {
			if r.XBridge > 0 {
				rel = fmt.Sprintf("p50 %.2fx bridge", r.XBridge)
			}
			note := fmt.Sprintf("max %v, %d of %d replies", dur(r.Max), r.Received, r.Sent)
			row(Hosts, c, r.Switch, fmt.Sprintf("p50 %v p99 %v", dur(r.P50), dur(r.P99)), rel, joinNote(note, r.Note))
			continue
		}
		if r.XBridge > 0 {
			rel = fmt.Sprintf("%.2fx bridge", r.XBridge)
		}
		note := r.Note
		if r.Iperf3Gbps > 0 {
			note = joinNote(fmt.Sprintf("iperf3 %.2f Gbit/s", r.Iperf3Gbps), note)
		}
		row(Hosts, c, r.Switch, fmt.Sprintf("%.2f Gbit/s", r.Gbps), rel, note)
	}
	for _, r := range t.Scale {
		c := fmt.Sprintf("%d idle ports", r.Ports)
		if r.Ports == 0 {
			c = "all port counts" // a row that stands for every one: nothing ran
		}
		if r.Skipped != "" {
			row(Scale, c, r.Switch, "-", "-", joinNote(r.Skipped, r.Note))
			continue
		}
		res := fmt.Sprintf("%s RSS/port, %.2f threads/port", kb(r.RSSPerPortKB), r.ThreadsPerPort)
		rel := fmt.Sprintf("attach %v, show %v, stats %v", dur(r.AttachTime), dur(r.PortShow), dur(r.Stats))
		note := fmt.Sprintf("idle CPU %.1f%%; RSS %s (%s without ports), %d threads (%d without)",
			100*r.IdleCPU, kb(float64(r.RSSKB)), kb(float64(r.RSSBaseKB)), r.Threads, r.ThreadsBase)
		if r.Attached != r.Ports {
			note += fmt.Sprintf("; attached %d of %d", r.Attached, r.Ports)
		}
		row(Scale, c, r.Switch, res, rel, joinNote(note, r.Note))
	}
	for _, r := range t.ScaleBusy {
		c := fmt.Sprintf("64B, busy pair + %d idle", r.IdlePorts)
		if r.Skipped != "" {
			row(Scale, c, r.Switch, "-", "-", joinNote(r.Skipped, r.Note))
			continue
		}
		rel := "-"
		if r.OfAlone > 0 {
			rel = fmt.Sprintf("%.0f%% of the pair alone", 100*r.OfAlone)
		}
		note := fmt.Sprintf("pair alone %.3f Mpps, offered %.3f Mpps", r.AloneMpps, r.OfferedMpps)
		if r.Attached != r.IdlePorts {
			note += fmt.Sprintf("; %d of %d idle ports attached", r.Attached, r.IdlePorts)
		}
		row(Scale, c, r.Switch, fmt.Sprintf("%.3f Mpps", r.Mpps), rel, joinNote(note, r.Note))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// No trailing blanks where the last column is empty.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(l, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func mppsList(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.3f", x))
	}
	return strings.Join(s, "/")
}

func joinNote(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// kb formats a size given in /proc's kB (KiB) as kB, MB or GB, in
// binary multiples as /proc means them.
func kb(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.2f GB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f MB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f kB", v)
}

// rateLabel formats a request rate: as given below 10000/s.
func rateLabel(v float64) string {
	if v < 1e4 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return num(v)
}

// num formats v with about three significant digits.
func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// dur rounds d to three significant digits.
func dur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d.Round(10 * time.Nanosecond)
}
