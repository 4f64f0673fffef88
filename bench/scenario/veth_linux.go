package scenario

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govswitch/vswitch/bench/pktgen"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresses of the veth topology: flows vary the low bytes of the
// generator's MAC (up to 4096 flows stay clear of the sink's). Frames go
// to sinkMAC, a station behind k0 rather than k0 itself (sinkIfMAC): the
// sink's kernel then drops them as frames for another host at once, as
// the ceiling's bare veth does, instead of routing each IPv4 frame
// (a route lookup and a dst allocation per frame, which veth would run in
// softirq on the switch's or the generator's core, charging every switch
// for the sink's work).
var (
	genMAC    = net.HardwareAddr{0x02, 0, 0, 0x10, 0, 0x01}
	sinkMAC   = net.HardwareAddr{0x02, 0, 0, 0x20, 0, 0x01}
	sinkIfMAC = net.HardwareAddr{0x02, 0, 0, 0x20, 0, 0x02}
)

// Interface names: the namespaces are fresh, so fixed names never clash.
const (
	devGen    = "g0" // generator ns, peer of devSwIn
	devSwIn   = "s0" // switch ns, from the generator
	devSwOut  = "s1" // switch ns, to the sink
	devSink   = "k0" // sink ns, peer of devSwOut
	genCPU    = 0    // the generator's core
	switchCPU = 1    // where peers that can be pinned run
)

// topo is [gen] g0 <-veth-> s0 [sw] s1 <-veth-> k0 [sink]. The sink's
// kernel has no address and drops what it receives (addressed to sinkMAC,
// not to k0); its rx_packets counts it.
type topo struct {
	gen, sw, sink *netenv.NS
}

func newTopo() (_ *topo, err error) {
	t := &topo{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, p := range []**netenv.NS{&t.gen, &t.sw, &t.sink} {
		if *p, err = netenv.New(); err != nil {
			return nil, err
		}
	}
	if err := netenv.Veth(t.gen, devGen, t.sw, devSwIn, 0); err != nil {
		return nil, err
	}
	if err := netenv.Veth(t.sw, devSwOut, t.sink, devSink, 0); err != nil {
		return nil, err
	}
	if err := setMAC(t.gen, devGen, genMAC); err != nil {
		return nil, err
	}
	if err := setMAC(t.sink, devSink, sinkIfMAC); err != nil {
		return nil, err
	}
	return t, nil
}

// setMAC sets the address of a link that is up (down, set, up).
func setMAC(ns *netenv.NS, dev string, mac net.HardwareAddr) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	if err := h.LinkSetDown(l); err != nil {
		return err
	}
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("%s address %s: %w", dev, mac, err)
	}
	return h.LinkSetUp(l)
}

// Close removes the namespaces and with them every link.
func (t *topo) Close() {
	for _, ns := range []*netenv.NS{t.gen, t.sw, t.sink} {
		ns.Close()
	}
}

// counter returns a function reading rx_packets of dev in ns.
func counter(ns *netenv.NS, dev string) (read func() (uint64, error), closeFn func(), err error) {
	h, err := ns.Handle()
	if err != nil {
		return nil, nil, err
	}
	read = func() (uint64, error) {
		l, err := h.LinkByName(dev)
		if err != nil {
			return 0, err
		}
		return l.Attrs().Statistics.RxPackets, nil
	}
	return read, h.Close, nil
}

// failure is the note of a row whose measurement failed.
func failure(err error) string {
	// Not context.DeadlineExceeded: a network timeout is one too.
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "error: " + err.Error()
}

// skipError marks a subject that cannot run here; its message is the row's
// note.
type skipError struct{ msg string }

func (e skipError) Error() string { return e.msg }

func skipf(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// subject is a switch set up in a topology.
type subject struct {
	countNS  *netenv.NS
	countDev string
	teardown func()
	// pids of processes whose CPU use matters (unused for now).
}

// setup installs name in t's switch namespace.
func setup(ctx context.Context, t *topo, name string, logf func(string, ...any)) (*subject, error) {
	s := &subject{countNS: t.sink, countDev: devSink, teardown: func() {}}
	switch name {
	case Ceiling, TrafgenCeiling:
		s.countNS, s.countDev = t.sw, devSwIn
		if name == TrafgenCeiling {
			if _, err := exec.LookPath("trafgen"); err != nil {
				return nil, skipf("skipped: trafgen not installed (apt-get install -y netsniff-ng)")
			}
		}
	case VswitchJIT, VswitchInterp:
		engine := strings.TrimPrefix(name, "vswitch-")
		d := daemon.New(daemon.Config{Netns: t.sw})
		s.teardown = func() { d.Close() }
		if _, err := d.LoadDefault(engine); err != nil {
			d.Close()
			return nil, err
		}
		for _, dev := range []string{devSwIn, devSwOut} {
			if _, err := d.Attach(control.PortAttachParams{Name: dev}); err != nil {
				d.Close()
				return nil, err
			}
		}
		var mac [6]byte
		copy(mac[:], sinkMAC)
		if err := announceSink(t); err != nil {
			d.Close()
			return nil, err
		}
		if err := waitLearned(d, mac, 2*time.Second); err != nil {
			d.Close()
			return nil, err
		}
	case VswitchAFXDP:
		if err := setupVswitchAFXDP(t, s); err != nil {
			s.teardown()
			return nil, err
		}
	case Bridge:
		if err := bridgeUp(t); err != nil {
			return nil, err
		}
	case OVSAFPacket, OVSAFXDPGeneric, OVSAFXDPNative:
		typ, mode := "", ""
		if name != OVSAFPacket {
			typ, mode = "afxdp", strings.TrimPrefix(name, "ovs-afxdp-")
		}
		o, err := startOVS(ctx, t.sw, typ, mode, logf)
		if err != nil {
			return nil, err
		}
		s.teardown = o.stop
	case VswitchVXLAN, LinuxVXLAN:
		return setupVXLAN(ctx, t, name, logf)
	default:
		return nil, fmt.Errorf("unknown switch %q", name)
	}
	return s, nil
}

// announceSink sends one broadcast frame from sinkMAC out of k0 so that
// learning switches know where it is (the sink never transmits otherwise).
func announceSink(t *topo) error {
	var p *bpfport.AFPacket
	if err := t.sink.Run(func() (err error) {
		p, err = bpfport.OpenAFPacket(devSink, bpfport.AFPacketConfig{NoPromisc: true, TX: bpfport.TXSendmmsg})
		return err
	}); err != nil {
		return fmt.Errorf("sink port: %w", err)
	}
	defer p.Close()
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], sinkMAC)
	f[12], f[13] = 0x88, 0xb5
	_, err := p.SendBatch(0, [][]byte{f}, nil)
	return err
}

// bridgeUp makes br0 of s0 and s1 in the switch namespace, with a static
// FDB entry for the sink (forward, don't flood).
func bridgeUp(t *topo) error {
	if _, err := bridgeOf(t.sw, devSwIn, devSwOut); err != nil {
		return err
	}
	h, err := t.sw.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	out, err := h.LinkByName(devSwOut)
	if err != nil {
		return err
	}
	// `bridge fdb add MAC dev s1 master static`
	err = h.NeighAdd(&netlink.Neigh{LinkIndex: out.Attrs().Index, Family: unix.AF_BRIDGE,
		Flags: netlink.NTF_MASTER, State: netlink.NUD_NOARP | netlink.NUD_REACHABLE, HardwareAddr: sinkMAC})
	if err != nil {
		return fmt.Errorf("bridge fdb entry: %w", err)
	}
	return nil
}

// pinThread locks the calling goroutine to its thread, pins the thread
// to cpu and gives it nice -20 where allowed. The thread must never be
// unlocked: it exits with the goroutine.
func pinThread(cpu int) {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu % runtime.NumCPU())
	unix.SchedSetaffinity(0, &set)
	unix.Setpriority(unix.PRIO_PROCESS, 0, -20)
}

// generator is a running pktgen or trafgen.
type generator struct {
	wait func() (offeredPPS float64, sent uint64, err error)
}

// startPktgen transmits cfg out of g0 in the generator namespace from a
// goroutine pinned to genCPU.
func startPktgen(ctx context.Context, t *topo, cfg pktgen.Config) (*generator, error) {
	var p *bpfport.AFPacket
	if err := t.gen.Run(func() (err error) {
		p, err = bpfport.OpenAFPacket(devGen, bpfport.AFPacketConfig{NoPromisc: true})
		return err
	}); err != nil {
		return nil, fmt.Errorf("generator port: %w", err)
	}
	type res struct {
		s   pktgen.Summary
		err error
	}
	rc := make(chan res, 1)
	go func() {
		pinThread(genCPU)
		s, err := pktgen.Run(ctx, p, cfg, nil)
		p.Close()
		rc <- res{s, err}
	}()
	return &generator{wait: func() (float64, uint64, error) {
		r := <-rc
		return r.s.PPS, r.s.Packets, r.err
	}}, nil
}

// startTrafgen runs trafgen out of g0 with frame, pinned to genCPU in its
// own session (autogroup) at nice -20, for d.
func startTrafgen(ctx context.Context, t *topo, frame []byte, d time.Duration) (*generator, error) {
	dir, err := tempDir("trafgen")
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("{ ")
	for i, c := range frame {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "0x%02x", c)
	}
	b.WriteString(" }\n")
	cfg := filepath.Join(dir, "frame.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	bin, _ := exec.LookPath("trafgen")
	// timeout bounds trafgen even if this process dies without stopping it.
	script := fmt.Sprintf("echo -20 > /proc/self/autogroup 2>/dev/null; exec timeout -s INT %d nice -n -20 taskset -c %d %s -o %s -i %s -P 1 --no-sock-mem -Q",
		int(d.Seconds())+5, genCPU, bin, devGen, cfg)
	cmd := exec.Command("setsid", "sh", "-c", script)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	// The child inherits the namespace of the thread that forks it.
	if err := t.gen.Run(cmd.Start); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("trafgen: %w", err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pgid := cmd.Process.Pid // setsid: the shell (then trafgen) leads its own group
	stop := func() {
		unix.Kill(-pgid, unix.SIGINT)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			unix.Kill(-pgid, unix.SIGKILL)
			<-done
		}
	}
	return &generator{wait: func() (float64, uint64, error) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		case err := <-done:
			done <- err
		}
		stop()
		el := time.Since(start).Seconds()
		os.RemoveAll(dir)
		s := strings.ReplaceAll(out.String(), "\r", "\n")
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[1] == "packets" && f[2] == "outgoing" {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return float64(n) / el, n, nil
			}
		}
		return 0, 0, fmt.Errorf("trafgen failed: %s", strings.TrimSpace(s))
	}}, nil
}

// cpuTimes reads per-CPU busy and total jiffies from /proc/stat.
func cpuTimes() (busy, total []uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, nil
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(f[1+i], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		idle := v[3] + v[4]
		var t uint64
		for _, x := range v {
			t += x
		}
		busy = append(busy, t-idle)
		total = append(total, t)
	}
	return busy, total
}

// window measures the rate of count over o.Duration after o.Warmup, and
// the CPUs' busy shares over the same window.
func window(ctx context.Context, o Options, count func() (uint64, error)) (pps float64, busy []float64, err error) {
	if err := sleep(ctx, o.Warmup); err != nil {
		return 0, nil, err
	}
	c0, err := count()
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	b0, tt0 := cpuTimes()
	if err := sleep(ctx, o.Duration); err != nil {
		return 0, nil, err
	}
	c1, err := count()
	if err != nil {
		return 0, nil, err
	}
	t1 := time.Now()
	b1, tt1 := cpuTimes()
	if len(b0) == len(b1) {
		for i := range b0 {
			if d := tt1[i] - tt0[i]; d > 0 {
				busy = append(busy, float64(b1[i]-b0[i])/float64(d))
			}
		}
	}
	return float64(c1-c0) / t1.Sub(t0).Seconds(), busy, nil
}

func runVeth(ctx context.Context, o Options, logf func(string, ...any)) []VethResult {
	picked := o.pick(AllSubjects)
	if len(picked) == 0 {
		logf("veth: none of the selected switches is a veth subject")
		return nil
	}
	subjects := []string{Ceiling}
	for _, s := range picked {
		if s != Ceiling {
			subjects = append(subjects, s)
		}
	}
	var out []VethResult
	if err := netenv.Check(); err != nil {
		// One row says it for every switch and case.
		return []VethResult{{Switch: strings.Join(subjects, ","), Skipped: "skipped: " + err.Error()}}
	}
	ceiling := map[[2]int]float64{}
	for _, name := range subjects {
		if ctx.Err() != nil {
			break
		}
		rs := measureSubject(ctx, o, name, logf)
		for i := range rs {
			r := &rs[i]
			if name == Ceiling && r.Skipped == "" {
				ceiling[[2]int{r.Size, r.Flows}] = r.Mpps
			}
			if c := ceiling[[2]int{r.Size, r.Flows}]; c > 0 && r.Skipped == "" {
				r.OfCeiling = r.Mpps / c
			}
		}
		out = append(out, rs...)
	}
	return out
}

// measureSubject builds a topology with the switch name and measures
// every case on it.
func measureSubject(ctx context.Context, o Options, name string, logf func(string, ...any)) []VethResult {
	var out []VethResult
	skip := func(msg string) []VethResult {
		for _, size := range o.Sizes {
			for _, flows := range o.Flows {
				out = append(out, VethResult{Switch: name, Size: size, Flows: flows, Skipped: msg})
			}
		}
		logf("veth %s: %s", name, msg)
		return out
	}
	t, err := newTopo()
	if err != nil {
		return skip("topology: " + err.Error())
	}
	defer t.Close()
	s, err := setup(ctx, t, name, logf)
	if err != nil {
		var se skipError
		if errors.As(err, &se) {
			return skip(se.msg)
		}
		return skip(failure(err))
	}
	defer s.teardown()
	count, closeCount, err := counter(s.countNS, s.countDev)
	if err != nil {
		return skip(failure(err))
	}
	defer closeCount()
	for _, size := range o.Sizes {
		for _, flows := range o.Flows {
			if ctx.Err() != nil {
				return out
			}
			r := VethResult{Switch: name, Size: size, Flows: flows}
			if err := measureCase(ctx, o, t, name, &r, count); err != nil {
				var se skipError
				if errors.As(err, &se) {
					r.Skipped = se.msg
				} else {
					r.Skipped = failure(err)
				}
				logf("veth %s %s: %s", name, CaseLabel(size, flows), r.Skipped)
			} else {
				logf("veth %s %s: %.3f Mpps (offered %.3f)", name, CaseLabel(size, flows), r.Mpps, r.OfferedMpps)
			}
			out = append(out, r)
		}
	}
	return out
}

func genConfig(size, flows int) pktgen.Config {
	return pktgen.Config{Size: size, Flows: flows, SrcMAC: genMAC, DstMAC: sinkMAC}
}

// measureCase measures one case o.Runs times and keeps the run with the
// median rate.
func measureCase(ctx context.Context, o Options, t *topo, name string, r *VethResult, count func() (uint64, error)) error {
	var runs []VethResult
	for i := 0; i < o.Runs; i++ {
		x := *r
		if err := measureOnce(ctx, o, t, name, &x, count); err != nil {
			*r = x // what was measured before the error
			return err
		}
		runs = append(runs, x)
	}
	slices.SortFunc(runs, func(a, b VethResult) int { return cmp.Compare(a.Mpps, b.Mpps) })
	*r = runs[len(runs)/2]
	for _, x := range runs {
		if len(runs) > 1 {
			r.RunsMpps = append(r.RunsMpps, x.Mpps)
		}
	}
	return nil
}

func measureOnce(ctx context.Context, o Options, t *topo, name string, r *VethResult, count func() (uint64, error)) error {
	total := o.Warmup + o.Duration + 300*time.Millisecond
	var g *generator
	var err error
	if name == TrafgenCeiling {
		if r.Flows != 1 {
			return skipf("skipped: trafgen is run with one flow")
		}
		f, err := pktgen.BuildFrame(genConfig(r.Size, 1), 0, 0, 0)
		if err != nil {
			return err
		}
		g, err = startTrafgen(ctx, t, f, total)
		if err != nil {
			return err
		}
	} else {
		cfg := genConfig(r.Size, r.Flows)
		cfg.Duration = total
		if g, err = startPktgen(ctx, t, cfg); err != nil {
			return err
		}
	}
	pps, busy, werr := window(ctx, o, count)
	offered, _, gerr := g.wait()
	if werr != nil {
		return werr
	}
	if gerr != nil && !errors.Is(gerr, context.Canceled) {
		return fmt.Errorf("generator: %w", gerr)
	}
	r.Mpps, r.OfferedMpps, r.CPUBusy = pps/1e6, offered/1e6, busy
	if pps == 0 {
		return fmt.Errorf("the sink received nothing (generator offered %.3f Mpps)", offered/1e6)
	}
	return nil
}

func runLatency(ctx context.Context, o Options, logf func(string, ...any)) []LatencyResult {
	var out []LatencyResult
	for _, name := range LatencySubjects {
		if ctx.Err() != nil {
			break
		}
		r := LatencyResult{Switch: name, Size: 60, Rate: o.LatencyRate}
		if err := netenv.Check(); err != nil {
			r.Skipped = "skipped: " + err.Error()
		} else if err := measureLatency(ctx, o, name, &r, logf); err != nil {
			var se skipError
			if errors.As(err, &se) {
				r.Skipped = se.msg
			} else {
				r.Skipped = failure(err)
			}
		}
		if r.Skipped != "" {
			logf("latency %s: %s", name, r.Skipped)
		} else {
			logf("latency %s: p50 %v p99 %v", name, r.P50, r.P99)
		}
		out = append(out, r)
	}
	return out
}

// measureLatency sends 60-byte frames at o.LatencyRate through name for
// o.Duration; pktgen's sink on k0 takes the one-way latency from the
// kernel's receive timestamp and the send time in every frame.
func measureLatency(ctx context.Context, o Options, name string, r *LatencyResult, logf func(string, ...any)) error {
	t, err := newTopo()
	if err != nil {
		return err
	}
	defer t.Close()
	s, err := setup(ctx, t, name, logf)
	if err != nil {
		return err
	}
	defer s.teardown()
	var sink *bpfport.AFPacket
	if err := t.sink.Run(func() (err error) {
		sink, err = bpfport.OpenAFPacket(devSink, bpfport.AFPacketConfig{NoPromisc: true, RingFrames: 16384, RcvBuf: 64 << 20})
		return err
	}); err != nil {
		return fmt.Errorf("sink port: %w", err)
	}
	defer sink.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rx pktgen.Summary
	var rxErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rx, rxErr = pktgen.Run(rctx, sink, pktgen.Config{Mode: pktgen.Receive}, nil)
	}()
	cfg := genConfig(r.Size, 1)
	cfg.Rate = r.Rate
	cfg.Duration = o.Warmup + o.Duration
	g, err := startPktgen(ctx, t, cfg)
	if err != nil {
		cancel()
		sink.Wake()
		wg.Wait()
		return err
	}
	_, sent, gerr := g.wait()
	time.Sleep(200 * time.Millisecond) // the last frames through the switch
	cancel()
	sink.Wake()
	wg.Wait()
	if gerr != nil {
		return fmt.Errorf("generator: %w", gerr)
	}
	if rxErr != nil && !errors.Is(rxErr, context.Canceled) {
		return fmt.Errorf("sink: %w", rxErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Received, r.Lost = rx.Packets, rx.Lost
	r.Sent = sent
	if rx.Latency == nil {
		return fmt.Errorf("the sink saw no latency samples (%d frames received)", rx.Packets)
	}
	r.P50, r.P99 = time.Duration(rx.Latency.P50), time.Duration(rx.Latency.P99)
	r.P999, r.Max = time.Duration(rx.Latency.P999), time.Duration(rx.Latency.Max)
	return nil
}

// raisePriority gives this process nice -20 and, when it leads its own
// session (run it under setsid), its autogroup too: on a shared machine
// the scheduler splits CPU time between sessions first, so plain nice
// would be diluted. It says what it did.
func raisePriority() string {
	if os.Geteuid() != 0 {
		return "default priority (not root)"
	}
	what := "nice -20"
	// Not setsid() here: that would cut the terminal's Ctrl-C off.
	if sid, _ := unix.Getsid(0); sid != os.Getpid() {
		what += ", autogroup unchanged (run under setsid for a fair share of a shared machine)"
	} else if err := os.WriteFile("/proc/self/autogroup", []byte("-20"), 0); err == nil {
		what += ", own autogroup at -20"
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, e := range tasks {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			unix.Setpriority(unix.PRIO_PROCESS, tid, -20)
		}
	}
	return what
}
