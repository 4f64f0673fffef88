package scenario

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The hosts topology:
//
//	[h1] eth0 10.99.0.1/24 <-veth-> s0 [sw] s1 <-veth-> eth0 10.99.0.2/24 [h2]
//
// Each host knows the other's MAC address (a permanent neighbour entry),
// so no ARP exchange falls into a measurement; the switch learns both
// stations from the first echo request and its reply.
const devHost = "eth0"

var hostIP = [2]netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")}

// TCP ports of the hosts' streams (inside the hosts' namespaces only).
const (
	tcpPort    = 5001
	iperf3Port = 5201
)

// hostsSubject is a switch the hosts scenario puts between the hosts.
// Adding one is adding an entry to hostsSubjects.
type hostsSubject struct {
	name string
	// hostsTxOff makes the hosts send with transmit checksum offload off
	// (`ethtool -K eth0 tx off`, which also turns TSO off): for a switch
	// that cannot forward partial checksums or GSO super-frames.
	hostsTxOff bool
	// note goes into every row of the subject (how it was set up, where
	// that matters for the figures).
	note string
	// up puts the switch between the hosts: it joins s0 (devSwIn, to h1)
	// and s1 (devSwOut, to h2) in t.sw. A subject that needs more
	// namespaces (an underlay, a second switch) makes them with t.newNS
	// and may move s1 there. A skipError says why it cannot run here.
	up func(ctx context.Context, t *hostsTopo, logf func(string, ...any)) (hostsSwitch, error)
}

// hostsSwitch is a switch set up between the hosts.
type hostsSwitch struct {
	// down undoes up; it runs before the namespaces go.
	down func()
	// counters, when set, says what the switch dropped (for the note of
	// a row with losses or no figure).
	counters func() string
}

// hostsSubjects are the switches of the hosts scenario, in run order.
var hostsSubjects = []hostsSubject{
	{name: VswitchJIT, up: vswitchHostsUp("jit", control.PortAttachParams{}), note: "in-process daemon, default settings"},
	{name: VswitchAFXDP, up: vswitchHostsUp("", control.PortAttachParams{Type: "afxdp"}), hostsTxOff: true, note: "AF_XDP ports (shared UMEM); " + ovsTxOffNote},
	{name: Bridge, up: learningBridgeUp},
	// OVS forwards a partial checksum unfinished (the receiving host
	// drops the segment): with the hosts' default offloads not even a TCP
	// handshake gets through, on AF_PACKET and on AF_XDP ports alike.
	{name: OVSAFPacket, up: ovsHostsUp("", ""), hostsTxOff: true, note: ovsTxOffNote},
	{name: OVSAFXDPNative, up: ovsHostsUp("afxdp", "native"), hostsTxOff: true, note: ovsTxOffNote + ", native XDP"},
	{name: VswitchVXLAN, up: vxlanHostsUp(VswitchVXLAN), note: vswitchVXLANNote},
	{name: LinuxVXLAN, up: vxlanHostsUp(LinuxVXLAN), note: vxlanNote},
}

const ovsTxOffNote = "hosts: ethtool -K eth0 tx off"

// HostsSubjects lists the switches of the hosts scenario, in run order.
func HostsSubjects() []string {
	var out []string
	for _, s := range hostsSubjects {
		out = append(out, s.name)
	}
	return out
}

// vswitchHostsUp runs a vswitch daemon in this process with default
// settings and the built-in learning program on engine, and attaches s0
// and s1 with port's parameters (its Name is theirs; the zero value is an
// AF_PACKET port with default settings).
func vswitchHostsUp(engine string, port control.PortAttachParams) func(context.Context, *hostsTopo, func(string, ...any)) (hostsSwitch, error) {
	return func(_ context.Context, t *hostsTopo, _ func(string, ...any)) (hostsSwitch, error) {
		d := daemon.New(daemon.Config{Netns: t.sw})
		if _, err := d.LoadDefault(engine); err != nil {
			d.Close()
			return hostsSwitch{}, err
		}
		for _, dev := range []string{devSwIn, devSwOut} {
			p := port
			p.Name = dev
			if _, err := d.Attach(p); err != nil {
				d.Close()
				return hostsSwitch{}, err
			}
		}
		return hostsSwitch{down: func() { d.Close() }, counters: func() string { return daemonDrops(d) }}, nil
	}
}

// daemonDrops lists the non-zero drop counters of the daemon's ports, the
// switch's and the ports' own ("s0 rx_kernel_drops 3").
func daemonDrops(d *daemon.Daemon) string {
	st, err := d.Stats()
	if err != nil {
		return "counters: " + err.Error()
	}
	var out []string
	for _, p := range st.Ports {
		if p.Stats == nil {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(p.Stats.Drops)) {
			if v := p.Stats.Drops[k]; v != 0 {
				out = append(out, fmt.Sprintf("%s %s %d", p.Name, k, v))
			}
		}
		for _, k := range []string{"rx_oversize", "rx_kernel_drops", "rx_bad_offload", "tx_oversize", "tx_ring_full", "tx_errors"} {
			if v := p.Stats.Port[k]; v != 0 {
				out = append(out, fmt.Sprintf("%s %s %d", p.Name, k, v))
			}
		}
	}
	if len(out) == 0 {
		return "switch counted no drops"
	}
	return "switch drops: " + strings.Join(out, ", ")
}

// learningBridgeUp makes br0 of s0 and s1, learning as it does by
// default.
func learningBridgeUp(_ context.Context, t *hostsTopo, _ func(string, ...any)) (hostsSwitch, error) {
	if _, err := bridgeOf(t.sw, devSwIn, devSwOut); err != nil {
		return hostsSwitch{}, err
	}
	return hostsSwitch{down: func() {}}, nil
}

// ovsHostsUp runs Open vSwitch's userspace datapath with s0 and s1 as
// ports of portType ("" for AF_PACKET, "afxdp" in xdpMode).
func ovsHostsUp(portType, xdpMode string) func(context.Context, *hostsTopo, func(string, ...any)) (hostsSwitch, error) {
	return func(ctx context.Context, t *hostsTopo, logf func(string, ...any)) (hostsSwitch, error) {
		o, err := startOVS(ctx, t.sw, portType, xdpMode, logf)
		if err != nil {
			return hostsSwitch{}, err
		}
		return hostsSwitch{down: o.stop}, nil
	}
}

// hostsTopo is the hosts topology; see devHost.
type hostsTopo struct {
	h1, h2, sw *netenv.NS
	extra      []*netenv.NS
}

func newHostsTopo() (_ *hostsTopo, err error) {
	t := &hostsTopo{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, p := range []**netenv.NS{&t.h1, &t.sw, &t.h2} {
		if *p, err = netenv.New(); err != nil {
			return nil, err
		}
	}
	if err := netenv.Veth(t.h1, devHost, t.sw, devSwIn, 0); err != nil {
		return nil, err
	}
	if err := netenv.Veth(t.sw, devSwOut, t.h2, devHost, 0); err != nil {
		return nil, err
	}
	hosts := [2]*netenv.NS{t.h1, t.h2}
	var macs [2]net.HardwareAddr
	for i, h := range hosts {
		if err := netenv.AddAddr(h, devHost, hostIP[i].String()+"/24"); err != nil {
			return nil, err
		}
		if macs[i], err = netenv.MAC(h, devHost); err != nil {
			return nil, err
		}
	}
	for i, h := range hosts {
		if err := permanentNeighbour(h, devHost, hostIP[1-i], macs[1-i]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// newNS makes one more namespace that goes away with the topology.
func (t *hostsTopo) newNS() (*netenv.NS, error) {
	ns, err := netenv.New()
	if err != nil {
		return nil, err
	}
	t.extra = append(t.extra, ns)
	return ns, nil
}

// Close removes the namespaces and with them every link.
func (t *hostsTopo) Close() {
	for _, ns := range append([]*netenv.NS{t.h1, t.sw, t.h2}, t.extra...) {
		ns.Close()
	}
}

// permanentNeighbour is `ip neigh add IP lladdr MAC dev DEV nud permanent`.
func permanentNeighbour(ns *netenv.NS, dev string, ip netip.Addr, mac net.HardwareAddr) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	err = h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: ip.AsSlice(), HardwareAddr: mac})
	if err != nil {
		return fmt.Errorf("neighbour %s on %s: %w", ip, dev, err)
	}
	return nil
}

// bridgeOf makes br0 of devs in ns, up.
func bridgeOf(ns *netenv.NS, devs ...string) (netlink.Link, error) {
	h, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "br0"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	br, err := h.LinkByName("br0")
	if err != nil {
		return nil, err
	}
	for _, dev := range devs {
		l, err := h.LinkByName(dev)
		if err != nil {
			return nil, err
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return nil, fmt.Errorf("bridge port %s: %w", dev, err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, err
	}
	return br, nil
}

func runHosts(ctx context.Context, o Options, logf func(string, ...any)) []HostsResult {
	names := o.pick(HostsSubjects())
	if len(names) == 0 {
		logf("hosts: none of the selected switches is a hosts subject")
		return nil
	}
	if err := netenv.Check(); err != nil {
		// One row says it for every switch and measure.
		return []HostsResult{{Switch: strings.Join(names, ","), Measure: "all", Skipped: "skipped: " + err.Error()}}
	}
	var out []HostsResult
	for _, s := range hostsSubjects {
		if !slices.Contains(names, s.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		out = append(out, measureHosts(ctx, o, s, logf)...)
	}
	relativeToBridge(out)
	return out
}

// relativeToBridge fills XBridge from the bridge's rows.
func relativeToBridge(rs []HostsResult) {
	for _, b := range rs {
		if b.Switch != Bridge || b.Skipped != "" {
			continue
		}
		for i := range rs {
			r := &rs[i]
			if r.Skipped != "" || r.Measure != b.Measure || r.Rate != b.Rate {
				continue
			}
			switch {
			case r.Measure == MeasureRTT && b.P50 > 0:
				r.XBridge = float64(r.P50) / float64(b.P50)
			case r.Measure == MeasureTCP && b.Gbps > 0:
				r.XBridge = r.Gbps / b.Gbps
			}
		}
	}
}

// measureHosts builds the topology with s between the hosts and measures
// round trips at every rate, then one TCP stream.
func measureHosts(ctx context.Context, o Options, s hostsSubject, logf func(string, ...any)) []HostsResult {
	var rows []HostsResult
	for _, rate := range o.RTTRates {
		rows = append(rows, HostsResult{Switch: s.name, Measure: MeasureRTT, Rate: rate, Note: s.note})
	}
	rows = append(rows, HostsResult{Switch: s.name, Measure: MeasureTCP, Note: s.note})
	fail := func(err error) []HostsResult {
		msg := failure(err)
		var se skipError
		if errors.As(err, &se) {
			msg = se.msg
		}
		for i := range rows {
			if rows[i].Skipped == "" && rows[i].Sent == 0 && rows[i].Gbps == 0 {
				rows[i].Skipped = msg
			}
		}
		logf("hosts %s: %s", s.name, msg)
		return rows
	}
	t, err := newHostsTopo()
	if err != nil {
		return fail(fmt.Errorf("topology: %w", err))
	}
	defer t.Close()
	if s.hostsTxOff {
		for _, h := range []*netenv.NS{t.h1, t.h2} {
			if err := setTxChecksum(h, devHost, false); err != nil {
				return fail(fmt.Errorf("turning tx checksum offload off on the hosts: %w", err))
			}
		}
	}
	sw, err := s.up(ctx, t, logf)
	if err != nil {
		return fail(err)
	}
	defer sw.down()
	// A row with losses or without a figure says what the switch
	// dropped, where it can tell.
	defer func() {
		if sw.counters == nil {
			return
		}
		for i := range rows {
			if r := &rows[i]; r.Received < r.Sent || (r.Skipped != "" && r.Skipped != "interrupted") {
				r.Note = joinNote(r.Note, sw.counters())
			}
		}
	}()
	p, err := openPinger(t.h1, hostIP[0])
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	// The first exchange teaches a learning switch where both hosts are.
	if err := p.firstReply(ctx, hostIP[1], 10*time.Second); err != nil {
		return fail(err)
	}
	for i, rate := range o.RTTRates {
		r := &rows[i]
		st, err := p.run(ctx, hostIP[1], rate, o.RTTWindow)
		r.Sent, r.Received = st.sent, st.received
		r.P50, r.P99, r.Max = st.p50, st.p99, st.max
		switch {
		case err != nil:
			r.Skipped = failure(err)
			logf("hosts %s rtt @ %v/s: %s", s.name, rate, r.Skipped)
		case st.received == 0:
			r.Skipped = fmt.Sprintf("no reply to %d echo requests", st.sent)
			logf("hosts %s rtt @ %v/s: %s", s.name, rate, r.Skipped)
		default:
			logf("hosts %s rtt @ %v/s: p50 %v p99 %v (%d of %d replies)", s.name, rate, dur(r.P50), dur(r.P99), r.Received, r.Sent)
		}
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
	}
	r := &rows[len(rows)-1]
	n, gbps, err := tcpStream(ctx, t, o)
	if err != nil {
		r.Skipped = failure(fmt.Errorf("tcp: %w", err))
		logf("hosts %s tcp: %s", s.name, r.Skipped)
		return rows
	}
	r.Bytes, r.Gbps = n, gbps
	logf("hosts %s tcp: %.2f Gbit/s", s.name, gbps)
	switch g, err := iperf3Stream(ctx, t, o); {
	case err == nil:
		r.Iperf3Gbps = g
		logf("hosts %s iperf3: %.2f Gbit/s", s.name, g)
	case errors.Is(err, exec.ErrNotFound):
		r.Note = joinNote("iperf3 not installed", r.Note)
	default:
		r.Note = joinNote("iperf3: "+failure(err), r.Note)
		logf("hosts %s iperf3: %v", s.name, err)
	}
	return rows
}

// tcpStream sends one TCP stream from h1 to h2 with Go sockets for
// o.Warmup + o.Duration and returns the bytes received over the window
// after the warm-up and their rate in Gbit/s.
func tcpStream(ctx context.Context, t *hostsTopo, o Options) (uint64, float64, error) {
	addr := netip.AddrPortFrom(hostIP[1], tcpPort).String()
	var ln *net.TCPListener
	if err := t.h2.Run(func() error {
		l, err := net.Listen("tcp4", addr)
		if err == nil {
			ln = l.(*net.TCPListener)
		}
		return err
	}); err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	var c net.Conn
	if err := t.h1.Run(func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	s, err := ln.Accept()
	if err != nil {
		return 0, 0, fmt.Errorf("accept: %w", err)
	}
	defer s.Close()
	var got atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 256<<10)
		for {
			n, err := s.Read(buf)
			got.Add(uint64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	stop := func() {
		c.Close()
		s.Close()
		wg.Wait()
	}
	if err := sleep(ctx, o.Warmup); err != nil {
		stop()
		return 0, 0, err
	}
	b0, t0 := got.Load(), time.Now()
	if err := sleep(ctx, o.Duration); err != nil {
		stop()
		return 0, 0, err
	}
	b1, t1 := got.Load(), time.Now()
	stop()
	if b1 == b0 {
		return 0, 0, fmt.Errorf("no bytes arrived in the %v window (%d before it)", o.Duration, b0)
	}
	return b1 - b0, float64(b1-b0) * 8 / t1.Sub(t0).Seconds() / 1e9, nil
}

// iperf3Stream runs one iperf3 TCP stream from h1 to h2 (server and client
// processes in the hosts' namespaces) for o.Duration after o.Warmup
// (whole seconds, as iperf3 takes them) and returns its received rate in
// Gbit/s. Without iperf3 the error wraps exec.ErrNotFound.
func iperf3Stream(ctx context.Context, t *hostsTopo, o Options) (float64, error) {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return 0, err
	}
	sfk, err := newForker(t.h2)
	if err != nil {
		return 0, err
	}
	defer sfk.close()
	var sout bytes.Buffer
	srv := exec.Command(bin, "-s", "-B", hostIP[1].String(), "-p", strconv.Itoa(iperf3Port))
	srv.Stdout, srv.Stderr = &sout, &sout
	if err := sfk.start(srv); err != nil {
		return 0, fmt.Errorf("server: %w", err)
	}
	raise(srv.Process.Pid)
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	}()
	if err := waitListening(ctx, srv.Process.Pid, iperf3Port, exited, 10*time.Second); err != nil {
		<-exited
		return 0, fmt.Errorf("server: %w: %s", err, lastLines(sout.String(), 2))
	}
	cfk, err := newForker(t.h1)
	if err != nil {
		return 0, err
	}
	defer cfk.close()
	secs := max(1, int(math.Ceil(o.Duration.Seconds())))
	omit := int(math.Ceil(o.Warmup.Seconds()))
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs+omit+20)*time.Second)
	defer cancel()
	var cout, cerr bytes.Buffer
	cli := exec.CommandContext(cctx, bin, "-c", hostIP[1].String(), "-p", strconv.Itoa(iperf3Port),
		"-t", strconv.Itoa(secs), "-O", strconv.Itoa(omit), "-J")
	cli.Stdout, cli.Stderr = &cout, &cerr
	if err := cfk.start(cli); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	raise(cli.Process.Pid)
	werr := cli.Wait()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(cout.Bytes(), &res); err != nil {
		return 0, fmt.Errorf("client: %v: %s", errors.Join(werr, err), lastLines(cout.String()+cerr.String(), 2))
	}
	if res.Error != "" {
		return 0, errors.New(res.Error)
	}
	if werr != nil {
		return 0, fmt.Errorf("client: %w", werr)
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("client: no rate in its report")
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// waitListening waits until process pid has a TCP socket listening on
// port (in its network namespace, from /proc/PID/net/tcp).
func waitListening(ctx context.Context, pid, port int, exited <-chan struct{}, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		for _, l := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st: 0A is LISTEN
			if f := strings.Fields(l); len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on port %d after %v", port, timeout)
		}
	}
}

// pinger sends ICMP echo requests from a raw socket in a host's namespace
// and takes each reply's kernel receive timestamp (SO_TIMESTAMPNS), as
// ping does, so that the figure does not include this process waking up.
type pinger struct {
	c  *net.IPConn
	id uint16 // echo identifier of the current run; each run has its own
}

func openPinger(ns *netenv.NS, src netip.Addr) (*pinger, error) {
	p := &pinger{id: uint16(os.Getpid())}
	err := ns.Run(func() error {
		c, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: src.AsSlice()})
		if err != nil {
			return err
		}
		p.c = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	rc, err := p.c.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		p.c.Close()
		return nil, fmt.Errorf("icmp socket timestamps: %w", err)
	}
	return p, nil
}

func (p *pinger) Close() error { return p.c.Close() }

// echoRequest writes an ICMP echo request with id and seq into b (its
// length is the ICMP message's: 8 bytes of header, the rest payload).
func echoRequest(b []byte, id, seq uint16) {
	clear(b)
	b[0] = 8 // echo request
	b[4], b[5] = byte(id>>8), byte(id)
	b[6], b[7] = byte(seq>>8), byte(seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	b[2], b[3] = byte(c>>8), byte(c)
}

// echoReply parses a received ICMP message (after an IPv4 header, if the
// socket delivered one) and returns its id and sequence number when it is
// an echo reply.
func echoReply(b []byte) (id, seq uint16, ok bool) {
	if len(b) >= 20 && b[0]>>4 == 4 {
		ihl := int(b[0]&0xf) * 4
		if ihl < 20 || ihl > len(b) {
			return 0, 0, false
		}
		b = b[ihl:]
	}
	if len(b) < 8 || b[0] != 0 || b[1] != 0 {
		return 0, 0, false
	}
	return uint16(b[4])<<8 | uint16(b[5]), uint16(b[6])<<8 | uint16(b[7]), true
}

// rxTime returns the SCM_TIMESTAMPNS of a control message (ns since the
// epoch), or 0.
func rxTime(oob []byte) int64 {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		switch len(m.Data) {
		case 16: // struct timespec with 64-bit fields
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return sec*1e9 + nsec
		case 8: // 32-bit fields
			sec := int64(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
			nsec := int64(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
			return sec*1e9 + nsec
		}
	}
	return 0
}

// echoLen is the ICMP message length: ping's default (56 bytes of data),
// a 98-byte frame.
const echoLen = 64

// firstReply sends an echo request every 100ms until one is answered.
func (p *pinger) firstReply(ctx context.Context, dst netip.Addr, timeout time.Duration) error {
	p.id++
	to := &net.IPAddr{IP: dst.AsSlice()}
	pkt := make([]byte, echoLen)
	buf := make([]byte, 2048)
	deadline := time.Now().Add(timeout)
	for seq := uint16(0); time.Now().Before(deadline); seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		echoRequest(pkt, p.id, seq)
		if _, err := p.c.WriteTo(pkt, to); err != nil {
			return fmt.Errorf("echo request: %w", err)
		}
		next := time.Now().Add(100 * time.Millisecond)
		for {
			p.c.SetReadDeadline(next)
			n, _, err := p.c.ReadFrom(buf)
			if err != nil {
				break // next request
			}
			if id, _, ok := echoReply(buf[:n]); ok && id == p.id {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s through the switch within %v", dst, timeout)
}

type rttStats struct {
	sent, received uint64
	p50, p99, max  time.Duration
}

// run sends echo requests to dst at rate for window, on schedule whether
// or not earlier ones were answered (as ping -i does), and waits up to a
// second after the last for late replies.
func (p *pinger) run(ctx context.Context, dst netip.Addr, rate float64, window time.Duration) (rttStats, error) {
	n := min(max(1, int(rate*window.Seconds())), maxRTTRequests)
	p.id++
	id := p.id
	sentAt := make([]atomic.Int64, n)
	var sent atomic.Int64
	sendDone := make(chan struct{})
	var rtts []time.Duration
	var rerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rtts, rerr = p.receive(id, sentAt, &sent, sendDone)
	}()
	to := &net.IPAddr{IP: dst.AsSlice()}
	pkt := make([]byte, echoLen)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var serr error
	for i := 0; i < n; i++ {
		if err := sleepUntil(ctx, start.Add(time.Duration(i)*interval)); err != nil {
			serr = err
			break
		}
		echoRequest(pkt, id, uint16(i))
		sentAt[i].Store(time.Now().UnixNano())
		if _, err := p.c.WriteTo(pkt, to); err != nil {
			sentAt[i].Store(0)
			serr = fmt.Errorf("echo request: %w", err)
			break
		}
		sent.Add(1)
	}
	close(sendDone)
	wg.Wait()
	st := rttStats{sent: uint64(sent.Load()), received: uint64(len(rtts))}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		st.p50, st.p99, st.max = quantile(rtts, 0.50), quantile(rtts, 0.99), rtts[len(rtts)-1]
	}
	return st, errors.Join(serr, rerr)
}

// receive collects the round-trip times of replies to id until every sent
// request is answered or a second has passed since sending ended.
func (p *pinger) receive(id uint16, sentAt []atomic.Int64, sent *atomic.Int64, sendDone <-chan struct{}) ([]time.Duration, error) {
	const grace = time.Second
	rtts := make([]time.Duration, 0, len(sentAt))
	seen := make([]bool, len(sentAt))
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	var doneAt time.Time
	for {
		if doneAt.IsZero() {
			select {
			case <-sendDone:
				doneAt = time.Now()
			default:
			}
		}
		if !doneAt.IsZero() && (int64(len(rtts)) >= sent.Load() || time.Since(doneAt) > grace) {
			return rtts, nil
		}
		p.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, oobn, _, _, err := p.c.ReadMsgIP(buf, oob)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return rtts, fmt.Errorf("echo reply: %w", err)
		}
		rx := rxTime(oob[:oobn])
		if rx == 0 {
			rx = time.Now().UnixNano()
		}
		rid, seq, ok := echoReply(buf[:n])
		if !ok || rid != id || int(seq) >= len(sentAt) || seen[seq] {
			continue
		}
		tx := sentAt[seq].Load()
		if tx == 0 {
			continue
		}
		seen[seq] = true
		rtts = append(rtts, time.Duration(max(rx-tx, 0)))
	}
}

// quantile returns the q quantile (nearest rank) of sorted v.
func quantile(v []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return sleep(ctx, d)
}
