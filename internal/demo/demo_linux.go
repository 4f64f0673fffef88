// Package demo is `vswitch demo`: three hosts in network namespaces on a
// vswitch running the built-in learning program, traffic between them
// through their kernels' own stacks, a short pktgen measurement, and a
// clean-up of everything it made.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/govswitch/vswitch/bench/pktgen"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
)

// DemoRate is the demo's pktgen rate in frames per second: moderate, so
// that the run shows loss and latency of the switch rather than how fast
// a generator can overrun it (`vswitch bench` measures that).
const DemoRate = 100_000

// Options configure Run.
type Options struct {
	Engine   string        // jit (default where available) or interp
	Duration time.Duration // pktgen run (default 2s)
	Out      io.Writer
	Logger   *slog.Logger // nil: warnings only, to Out
}

// Topology is the demo network: a switch namespace and three hosts, each
// host's eth0 joined by a veth pair to port i of the switch.
type Topology struct {
	Switch *netenv.NS
	Hosts  []*netenv.NS
	Ports  []string // switch-side interface names
	MACs   []net.HardwareAddr
	IPs    []netip.Addr
}

// Close removes the namespaces and with them every link.
func (t *Topology) Close() {
	for _, h := range t.Hosts {
		h.Close()
	}
	t.Switch.Close()
}

// Build creates the topology of n hosts.
func Build(n int) (*Topology, error) {
	t := &Topology{}
	var err error
	if t.Switch, err = netenv.New(); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		h, err := netenv.New()
		if err != nil {
			t.Close()
			return nil, err
		}
		t.Hosts = append(t.Hosts, h)
		port := netenv.Name("vsd")
		if err := netenv.Veth(h, "eth0", t.Switch, port, 0); err != nil {
			t.Close()
			return nil, err
		}
		ip := netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)})
		if err := netenv.AddAddr(h, "eth0", ip.String()+"/24"); err != nil {
			t.Close()
			return nil, err
		}
		mac, err := netenv.MAC(h, "eth0")
		if err != nil {
			t.Close()
			return nil, err
		}
		t.Ports = append(t.Ports, port)
		t.MACs = append(t.MACs, mac)
		t.IPs = append(t.IPs, ip)
	}
	return t, nil
}

// Run runs the demo.
func Run(ctx context.Context, o Options) error {
	out := o.Out
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if err := netenv.Check(); err != nil {
		return fmt.Errorf("the demo %v: run it as root (sudo)", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	step("building three hosts in network namespaces, each on a veth pair to the switch")
	topo, err := Build(3)
	if err != nil {
		return err
	}
	defer func() {
		topo.Close()
		step("removed the namespaces and links the demo made")
	}()
	for i := range topo.Hosts {
		fmt.Fprintf(out, "    h%d  eth0 %s %s  <->  switch port %s\n", i+1, topo.MACs[i], topo.IPs[i], topo.Ports[i])
	}

	d := daemon.New(daemon.Config{Netns: topo.Switch, Logger: log})
	defer d.Close()
	prog, err := d.LoadDefault(o.Engine)
	if err != nil {
		return err
	}
	step("switch running %s (built-in learning program, %d instructions, engine %s)", prog.Name, prog.Instructions, prog.Engine)
	for _, p := range topo.Ports {
		if _, err := d.Attach(control.PortAttachParams{Name: p}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	step("hosts talk through their own kernel stacks (ARP floods, then learned unicast)")
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
		a, b := pair[0], pair[1]
		rtt, err := UDPEcho(ctx, topo.Hosts[a], topo.Hosts[b], topo.IPs[b], 7777)
		if err != nil {
			return fmt.Errorf("h%d -> h%d: %w", a+1, b+1, err)
		}
		fmt.Fprintf(out, "    h%d -> h%d (%s): UDP echo answered in %v\n", a+1, b+1, topo.IPs[b], rtt.Round(time.Microsecond))
	}
	fdb, err := d.FDB()
	if err != nil {
		return err
	}
	step("the switch learned where every host is (vswitch fdb show)")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    MAC\tPORT\tNAME")
	for _, e := range fdb.Entries {
		fmt.Fprintf(tw, "    %s\t%d\t%s\n", e.MAC, e.Port, e.PortName)
	}
	tw.Flush()

	step("pktgen: h1 sends 60-byte UDP frames to h2 at %d frames/s for %v; h2 counts them; h3 should see none", DemoRate, o.Duration)
	h3Before, err := rxPackets(topo.Hosts[2])
	if err != nil {
		return err
	}
	tx, rx, err := measure(ctx, topo, o.Duration)
	if err != nil {
		return err
	}
	h3After, err := rxPackets(topo.Hosts[2])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    h1 sent     %d frames: %.0f pps\n", tx.Packets, tx.PPS)
	fmt.Fprintf(out, "    h2 received %d frames: %.0f pps, lost %d", rx.Packets, rx.PPS, max(rx.Lost, 0))
	if rx.Latency != nil {
		fmt.Fprintf(out, ", latency p50 %v p99 %v", time.Duration(rx.Latency.P50), time.Duration(rx.Latency.P99))
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "    h3 received %d frames meanwhile (learned unicast reaches only its port)\n", h3After-h3Before)

	st, err := d.Stats()
	if err != nil {
		return err
	}
	step("switch counters (vswitch stats)")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    PORT\tRX_PACKETS\tTX_PACKETS\tSWITCH_DROPS\tRX_RING_DROPS")
	for _, p := range st.Ports {
		drops := []string{}
		for k, v := range p.Stats.Drops {
			drops = append(drops, fmt.Sprintf("%s=%d", k, v))
		}
		if len(drops) == 0 {
			drops = append(drops, "-")
		}
		// Frames the kernel could not put into the port's receive ring:
		// the switch was not reading fast enough (a busy machine).
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%s\t%d\n", p.Name, p.Stats.RxPackets, p.Stats.TxPackets, strings.Join(drops, ","), p.Stats.Port["rx_kernel_drops"])
	}
	tw.Flush()
	if st.Program != nil {
		fmt.Fprintf(out, "    program %s: %d runs, %d faults\n", st.Program.Name, st.Program.Runs, st.Program.Faults)
	}
	if rx.Packets == 0 {
		return errors.New("h2 received nothing from pktgen")
	}
	return nil
}

// UDPEcho sends datagrams from the client namespace to `to` in the
// server namespace, which echoes them, and returns the round-trip time of
// the first answer (up to 5 tries of a second each): traffic through the
// kernels' own stacks, ARP included.
func UDPEcho(ctx context.Context, client, server *netenv.NS, to netip.Addr, port int) (time.Duration, error) {
	var srv *net.UDPConn
	if err := server.Run(func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: to.AsSlice(), Port: port})
		return err
	}); err != nil {
		return 0, err
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 1500)
		srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	var cl *net.UDPConn
	if err := client.Run(func() error {
		var err error
		cl, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: to.AsSlice(), Port: port})
		return err
	}); err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	msg := []byte("hello through vswitch")
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 5; attempt++ {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if _, err := cl.Write(msg); err != nil {
			return 0, err
		}
		cl.SetReadDeadline(time.Now().Add(time.Second))
		n, err := cl.Read(buf)
		if err == nil && string(buf[:n]) == string(msg) {
			return time.Since(start), nil
		}
	}
	return 0, errors.New("no echo after 5 tries: the switch did not forward")
}

func rxPackets(ns *netenv.NS) (uint64, error) {
	h, err := ns.Handle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return 0, err
	}
	return l.Attrs().Statistics.RxPackets, nil
}

// measure runs pktgen from h1 to h2.
func measure(ctx context.Context, t *Topology, d time.Duration) (tx, rx pktgen.Summary, err error) {
	var src, dst bpfport.Port
	if err = t.Hosts[0].Run(func() error {
		p, err := bpfport.OpenAFPacket("eth0", bpfport.AFPacketConfig{NoPromisc: true})
		src = p
		return err
	}); err != nil {
		return
	}
	defer src.Close()
	if err = t.Hosts[1].Run(func() error {
		p, err := bpfport.OpenAFPacket("eth0", bpfport.AFPacketConfig{NoPromisc: true})
		dst = p
		return err
	}); err != nil {
		return
	}
	defer dst.Close()
	cfg := pktgen.Config{SrcMAC: t.MACs[0], DstMAC: t.MACs[1], SrcIP: t.IPs[0], DstIP: t.IPs[1],
		DstPort: 9, Duration: d, Vary: pktgen.VarySrcPort, Rate: DemoRate}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		s   pktgen.Summary
		err error
	}
	rc := make(chan res, 1)
	go func() {
		rcfg := cfg
		rcfg.Mode = pktgen.Receive
		rcfg.Duration = 0
		s, err := pktgen.Run(rctx, dst, rcfg, nil)
		rc <- res{s, err}
	}()
	time.Sleep(50 * time.Millisecond)
	cfg.Mode = pktgen.Transmit
	tx, err = pktgen.Run(ctx, src, cfg, nil)
	time.Sleep(200 * time.Millisecond) // let the last frames through the switch
	cancel()
	dst.Wake()
	r := <-rc
	if err == nil {
		err = r.err
		if errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	return tx, r.s, err
}
