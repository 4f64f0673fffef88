package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/netenv"
	"golang.org/x/sys/unix"
)

// scaleSwitch is a switch of the scale scenario running as its own
// process, its ports opened in the switch namespace.
type scaleSwitch interface {
	// pid is the process whose memory, threads and CPU time count.
	pid() int
	// attach adds the interface dev as a port.
	attach(ctx context.Context, dev string) error
	// show lists the ports; stats reads every counter.
	show(ctx context.Context) error
	stats(ctx context.Context) error
	// pair attaches s0 and s1 of t.sw and makes the switch forward
	// frames for sinkMAC from s0 to s1.
	pair(ctx context.Context, t *topo) error
	stop()
}

// scaleSubject is a switch the scale scenario measures. Adding one is
// adding an entry to scaleSubjects.
type scaleSubject struct {
	name string
	// note goes into every idle-ports row of the subject: how the
	// figures were taken, where it matters to read them.
	note string
	// start runs the switch with no port, opening its ports in ns.
	start func(ctx context.Context, o Options, ns *netenv.NS, logf func(string, ...any)) (scaleSwitch, error)
}

var scaleSubjects = []scaleSubject{
	{name: VswitchJIT, start: startDaemonProcess, note: "daemon process, default settings"},
	{name: OVSAFPacket, start: startOVSScale, note: "ovs-vsctl add-port, ovs-vsctl show, ovs-ofctl dump-ports: a process each"},
}

// Interface names of the idle ports: iN in the switch namespace, fN at the
// far end, in a namespace of their own where nothing ever sends.
func idleName(i int) string { return "i" + strconv.Itoa(i) }
func farName(i int) string  { return "f" + strconv.Itoa(i) }

// idlePorts makes n veth pairs iN (in sw) <-> fN (in far), both ends up.
// The namespaces have IPv6 off and the ends no address: they stay silent.
func idlePorts(sw, far *netenv.NS, n int) error {
	for i := range n {
		if err := netenv.Veth(sw, idleName(i), far, farName(i), 0); err != nil {
			return err
		}
	}
	return nil
}

func runScale(ctx context.Context, o Options, logf func(string, ...any)) ([]ScaleResult, []ScaleBusyResult) {
	names := o.pick(ScaleSubjects)
	if len(names) == 0 {
		logf("scale: none of the selected switches is a scale subject")
		return nil, nil
	}
	if err := netenv.Check(); err != nil {
		msg := "skipped: " + err.Error()
		return []ScaleResult{{Switch: strings.Join(names, ","), Skipped: msg}},
			[]ScaleBusyResult{{Switch: strings.Join(names, ","), IdlePorts: o.ScaleBusyIdle, Skipped: msg}}
	}
	var rows []ScaleResult
	var busy []ScaleBusyResult
	for _, s := range scaleSubjects {
		if !slices.Contains(names, s.name) || ctx.Err() != nil {
			continue
		}
		rows = append(rows, measureIdle(ctx, o, s, logf)...)
		if ctx.Err() != nil {
			break
		}
		busy = append(busy, measureBusy(ctx, o, s, logf))
	}
	return rows, busy
}

// measureIdle measures s with each of o.ScalePorts idle ports, a fresh
// switch each time, on veth pairs made once.
func measureIdle(ctx context.Context, o Options, s scaleSubject, logf func(string, ...any)) []ScaleResult {
	var rows []ScaleResult
	for _, n := range o.ScalePorts {
		rows = append(rows, ScaleResult{Switch: s.name, Ports: n, Note: s.note})
	}
	fail := func(err error) []ScaleResult {
		msg := failure(err)
		var se skipError
		if errors.As(err, &se) {
			msg = se.msg
		}
		for i := range rows {
			if rows[i].Skipped == "" && rows[i].RSSKB == 0 {
				rows[i].Skipped = msg
			}
		}
		logf("scale %s: %s", s.name, msg)
		return rows
	}
	var sw, far *netenv.NS
	defer func() { sw.Close(); far.Close() }()
	var err error
	if sw, err = netenv.New(); err != nil {
		return fail(err)
	}
	if far, err = netenv.New(); err != nil {
		return fail(err)
	}
	start := time.Now()
	if err := idlePorts(sw, far, slices.Max(o.ScalePorts)); err != nil {
		return fail(fmt.Errorf("idle ports: %w", err))
	}
	logf("scale: %d veth pairs made in %v", slices.Max(o.ScalePorts), time.Since(start).Round(time.Millisecond))
	for i := range rows {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		r := &rows[i]
		if err := measureIdleOnce(ctx, o, s, sw, r, logf); err != nil {
			var se skipError
			if errors.As(err, &se) {
				return fail(err) // the same for every count
			}
			r.Skipped = failure(err)
			logf("scale %s %d ports: %s", s.name, r.Ports, r.Skipped)
			continue
		}
		logf("scale %s %d ports (%d attached in %v): %s RSS/port, %.2f threads/port, idle CPU %.1f%%, show %v, stats %v",
			s.name, r.Ports, r.Attached, dur(r.AttachTime), kb(r.RSSPerPortKB), r.ThreadsPerPort, 100*r.IdleCPU,
			dur(r.PortShow), dur(r.Stats))
	}
	return rows
}

func measureIdleOnce(ctx context.Context, o Options, s scaleSubject, ns *netenv.NS, r *ScaleResult, logf func(string, ...any)) error {
	sw, err := s.start(ctx, o, ns, logf)
	if err != nil {
		return err
	}
	defer sw.stop()
	// Settle before the base figures: the process has just started.
	if err := sleep(ctx, o.Warmup); err != nil {
		return err
	}
	base, err := readProc(sw.pid())
	if err != nil {
		return err
	}
	r.RSSBaseKB, r.ThreadsBase = base.rssKB, base.threads
	r.Attached, r.AttachTime, err = attachIdle(ctx, sw, r.Ports)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Note = joinNote(fmt.Sprintf("port %d refused: %v", r.Attached+1, err), r.Note)
		logf("scale %s: attached %d of %d ports: %v", s.name, r.Attached, r.Ports, err)
	}
	if r.PortShow, err = medianTime(ctx, 5, sw.show); err != nil {
		return fmt.Errorf("port show: %w", err)
	}
	if r.Stats, err = medianTime(ctx, 5, sw.stats); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	// Idle CPU over the window, after the warm-up lets the attach settle.
	if err := sleep(ctx, o.Warmup); err != nil {
		return err
	}
	c0, t0 := procCPU(sw.pid()), time.Now()
	if err := sleep(ctx, o.Duration); err != nil {
		return err
	}
	c1, t1 := procCPU(sw.pid()), time.Now()
	if c0 < 0 || c1 < 0 {
		return errors.New("the switch process went away")
	}
	r.IdleCPU = float64(c1-c0) / clockTicks / t1.Sub(t0).Seconds()
	end, err := readProc(sw.pid())
	if err != nil {
		return err
	}
	r.RSSKB, r.Threads = end.rssKB, end.threads
	if r.Attached > 0 {
		r.RSSPerPortKB = (float64(r.RSSKB) - float64(r.RSSBaseKB)) / float64(r.Attached)
		r.ThreadsPerPort = float64(r.Threads-r.ThreadsBase) / float64(r.Attached)
	}
	return nil
}

// attachIdle attaches i0 .. i(n-1) one request at a time, stopping at the
// first refusal, and returns how many attached and how long they took.
func attachIdle(ctx context.Context, sw scaleSwitch, n int) (int, time.Duration, error) {
	start := time.Now()
	for i := range n {
		if err := sw.attach(ctx, idleName(i)); err != nil {
			return i, time.Since(start), err
		}
	}
	return n, time.Since(start), nil
}

// medianTime runs fn n times and returns its median duration.
func medianTime(ctx context.Context, n int, fn func(context.Context) error) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		t := time.Now()
		if err := fn(ctx); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// measureBusy measures the 64-byte rate of one pair (gen -> s0 -> s1 ->
// sink, as in the veth scenario) through s alone, then with
// o.ScaleBusyIdle idle ports attached to the same switch.
func measureBusy(ctx context.Context, o Options, s scaleSubject, logf func(string, ...any)) ScaleBusyResult {
	r := ScaleBusyResult{Switch: s.name, IdlePorts: o.ScaleBusyIdle}
	fail := func(err error) ScaleBusyResult {
		r.Skipped = failure(err)
		var se skipError
		if errors.As(err, &se) {
			r.Skipped = se.msg
		}
		logf("scale %s busy pair: %s", s.name, r.Skipped)
		return r
	}
	t, err := newTopo()
	if err != nil {
		return fail(fmt.Errorf("topology: %w", err))
	}
	defer t.Close()
	far, err := netenv.New()
	if err != nil {
		return fail(err)
	}
	defer far.Close()
	if err := idlePorts(t.sw, far, o.ScaleBusyIdle); err != nil {
		return fail(fmt.Errorf("idle ports: %w", err))
	}
	sw, err := s.start(ctx, o, t.sw, logf)
	if err != nil {
		return fail(err)
	}
	defer sw.stop()
	if err := sw.pair(ctx, t); err != nil {
		return fail(err)
	}
	count, closeCount, err := counter(t.sink, devSink)
	if err != nil {
		return fail(err)
	}
	defer closeCount()
	alone := VethResult{Switch: s.name, Size: 60, Flows: 1}
	if err := measureCase(ctx, o, t, s.name, &alone, count); err != nil {
		return fail(fmt.Errorf("the pair alone: %w", err))
	}
	r.AloneMpps = alone.Mpps
	logf("scale %s busy pair alone: %.3f Mpps", s.name, alone.Mpps)
	var aerr error
	r.Attached, _, aerr = attachIdle(ctx, sw, o.ScaleBusyIdle)
	if aerr != nil {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		r.Note = joinNote(fmt.Sprintf("idle port %d refused: %v", r.Attached+1, aerr), r.Note)
	}
	among := VethResult{Switch: s.name, Size: 60, Flows: 1}
	if err := measureCase(ctx, o, t, s.name, &among, count); err != nil {
		return fail(fmt.Errorf("among %d idle ports: %w", r.Attached, err))
	}
	r.Mpps, r.OfferedMpps = among.Mpps, among.OfferedMpps
	if r.AloneMpps > 0 {
		r.OfAlone = r.Mpps / r.AloneMpps
	}
	logf("scale %s busy pair among %d idle ports: %.3f Mpps (%.0f%% of alone)", s.name, r.Attached, r.Mpps, 100*r.OfAlone)
	return r
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

type procStatus struct {
	rssKB   uint64
	threads int
}

// readProc reads VmRSS and Threads from /proc/PID/status.
func readProc(pid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("the switch process: %w", err)
	}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			st.rssKB, err = strconv.ParseUint(f[0], 10, 64)
			found++
		case "Threads":
			st.threads, err = strconv.Atoi(f[0])
			found++
		}
		if err != nil {
			return st, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
	}
	if found != 2 {
		return st, fmt.Errorf("/proc/%d/status: no VmRSS or Threads", pid)
	}
	return st, nil
}

// procCPU returns utime + stime of pid in clock ticks, -1 if it is gone.
func procCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. There, field 3 (state) is [0]; utime (14) and
	// stime (15) are [11] and [12].
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + st
}

// daemonProcess is a vswitch daemon run as its own process (Options.
// DaemonCommand) with its ports in a namespace, reached through its
// control socket.
type daemonProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
	fk     *forker
	nsFile *os.File
	client *control.Client
}

// stateFlags are tried in turn: a throw-away daemon must not read or
// write the machine's state directory. --no-state is the daemon's flag
// for that; a binary without it may know --state-dir; a binary without
// either keeps no state.
var stateFlags = [][]string{{"--no-state"}, {"--state-dir", "STATE"}, nil}

// startDaemonProcess runs `vswitch daemon` with default settings (the JIT
// named, as the subject's name says) and its control socket in a
// temporary directory, opening ports in ns.
func startDaemonProcess(ctx context.Context, o Options, ns *netenv.NS, logf func(string, ...any)) (_ scaleSwitch, err error) {
	dir, err := tempDir("daemon")
	if err != nil {
		return nil, err
	}
	d := &daemonProcess{dir: dir, client: &control.Client{Path: filepath.Join(dir, "vswitch.sock"), Timeout: time.Minute}}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	fd, err := unix.Dup(int(ns.H))
	if err != nil {
		return nil, fmt.Errorf("namespace handle: %w", err)
	}
	unix.CloseOnExec(fd)
	d.nsFile = os.NewFile(uintptr(fd), "netns")
	if d.fk, err = newForker(nil); err != nil {
		return nil, err
	}
	cmdKey := strings.Join(o.DaemonCommand, "\x00")
	first := 0
	if v, ok := knownStateFlags.Load(cmdKey); ok {
		first = v.(int)
	}
	var tried []string
	for i, sf := range stateFlags[first:] {
		var extra []string
		for _, a := range sf {
			extra = append(extra, strings.ReplaceAll(a, "STATE", filepath.Join(dir, "state")))
		}
		out, err := d.run(ctx, o, extra)
		if err == nil {
			if len(tried) > 0 {
				logf("scale: the daemon knows no %s: it runs without", strings.Join(tried, " or "))
			}
			knownStateFlags.Store(cmdKey, first+i)
			return d, nil
		}
		if len(sf) > 0 && d.exitedNow() && strings.Contains(out, strings.TrimPrefix(sf[0], "--")) {
			tried = append(tried, sf[0])
			continue // an unknown flag: try the next way
		}
		if out = lastLines(out, 3); out != "" {
			return nil, fmt.Errorf("vswitch daemon: %w: %s", err, out)
		}
		return nil, fmt.Errorf("vswitch daemon: %w", err)
	}
	return nil, errors.New("vswitch daemon: no way to start it")
}

// knownStateFlags remembers, per daemon command, the index in stateFlags
// that worked.
var knownStateFlags sync.Map

// run starts the daemon process with extra flags and waits until it
// answers; on failure it returns the daemon's output.
func (d *daemonProcess) run(ctx context.Context, o Options, extra []string) (string, error) {
	log, err := os.Create(filepath.Join(d.dir, "daemon.log"))
	if err != nil {
		return "", err
	}
	defer log.Close()
	args := append(slices.Clone(o.DaemonCommand[1:]), "--socket", d.client.Path, "--netns", "/proc/self/fd/3", "--engine", "jit")
	d.cmd = exec.Command(o.DaemonCommand[0], append(args, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.ExtraFiles = []*os.File{d.nsFile}
	if err := d.fk.start(d.cmd); err != nil {
		d.cmd = nil
		return "", err
	}
	d.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(d.cmd, d.exited)
	raise(d.cmd.Process.Pid)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pr control.PingResult
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		perr := d.client.Call(cctx, control.MethodPing, nil, &pr)
		cancel()
		if perr == nil {
			if pr.PID != d.cmd.Process.Pid {
				return d.output(), fmt.Errorf("another daemon (pid %d) answers on %s", pr.PID, d.client.Path)
			}
			return "", nil
		}
		select {
		case <-d.exited:
			return d.output(), fmt.Errorf("exited: %v", d.cmd.ProcessState)
		case <-ctx.Done():
			d.kill()
			return d.output(), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.kill()
			return d.output(), fmt.Errorf("no answer on its socket within 20s: %v", perr)
		}
	}
}

func (d *daemonProcess) output() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	return string(b)
}

func (d *daemonProcess) exitedNow() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// kill ends the process at once and reaps it.
func (d *daemonProcess) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

func (d *daemonProcess) pid() int { return d.cmd.Process.Pid }

func (d *daemonProcess) call(ctx context.Context, method string, params, result any) error {
	return d.client.Call(ctx, method, params, result)
}

func (d *daemonProcess) attach(ctx context.Context, dev string) error {
	var p control.Port
	return d.call(ctx, control.MethodPortAttach, control.PortAttachParams{Name: dev}, &p)
}

func (d *daemonProcess) show(ctx context.Context) error {
	var r control.PortShowResult
	return d.call(ctx, control.MethodPortShow, control.PortShowParams{}, &r)
}

func (d *daemonProcess) stats(ctx context.Context) error {
	var r control.StatsResult
	return d.call(ctx, control.MethodStats, nil, &r)
}

func (d *daemonProcess) pair(ctx context.Context, t *topo) error {
	for _, dev := range []string{devSwIn, devSwOut} {
		if err := d.attach(ctx, dev); err != nil {
			return err
		}
	}
	if err := announceSink(t); err != nil {
		return err
	}
	var mac [6]byte
	copy(mac[:], sinkMAC)
	return waitInFDB(func() (r control.FDBResult, err error) {
		err = d.call(ctx, control.MethodFDBShow, nil, &r)
		return r, err
	}, mac, 5*time.Second)
}

// stop asks the daemon to shut down (it detaches its ports), kills it
// after 30s, and removes its directory.
func (d *daemonProcess) stop() {
	if d.cmd != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			d.kill()
		}
		d.cmd = nil
	}
	if d.fk != nil {
		d.fk.close()
	}
	if d.nsFile != nil {
		d.nsFile.Close()
	}
	os.RemoveAll(d.dir)
}

// ovsScale is ovs-vswitchd with br0 (userspace datapath) and AF_PACKET
// ports.
type ovsScale struct {
	o *ovs
}

func startOVSScale(ctx context.Context, _ Options, ns *netenv.NS, logf func(string, ...any)) (scaleSwitch, error) {
	o, err := startOVSDaemons(ctx, ns, logf)
	if err != nil {
		return nil, err
	}
	if err := o.vsctl(ctx, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"); err != nil {
		o.stop()
		return nil, err
	}
	return ovsScale{o}, nil
}

func (s ovsScale) pid() int { return s.o.vswd.Process.Pid }

func (s ovsScale) attach(ctx context.Context, dev string) error {
	if err := s.o.vsctl(ctx, "add-port", "br0", dev); err != nil {
		return err
	}
	return s.o.portError(ctx, dev)
}

func (s ovsScale) show(ctx context.Context) error {
	return s.o.run(ctx, "ovs-vsctl", "--db=unix:"+s.o.sock, "show")
}

func (s ovsScale) stats(ctx context.Context) error {
	return s.o.run(ctx, "ovs-ofctl", "dump-ports", "br0")
}

func (s ovsScale) pair(ctx context.Context, _ *topo) error {
	if err := s.o.vsctl(ctx, "add-port", "br0", devSwIn, "--", "set", "interface", devSwIn, "ofport_request=1",
		"--", "add-port", "br0", devSwOut, "--", "set", "interface", devSwOut, "ofport_request=2"); err != nil {
		return err
	}
	if err := s.o.run(ctx, "ovs-ofctl", "del-flows", "br0"); err != nil {
		return err
	}
	if err := s.o.run(ctx, "ovs-ofctl", "add-flow", "br0", "in_port=1,actions=output:2"); err != nil {
		return err
	}
	for _, dev := range []string{devSwIn, devSwOut} {
		if err := s.o.portError(ctx, dev); err != nil {
			return err
		}
	}
	return nil
}

func (s ovsScale) stop() { s.o.stop() }
