package demo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
)

// The VXLAN demo: two "machines" (namespaces) joined by an underlay veth,
// each with a vswitch and two hosts, one L2 segment across them.

// Machine is one machine of the VXLAN demo: its namespace, underlay
// address, daemon and hosts.
type Machine struct {
	Name     string
	NS       *netenv.NS
	Underlay netip.Addr
	Daemon   *daemon.Daemon
	Hosts    []*netenv.NS
	HostIPs  []netip.Addr
	HostMACs []net.HardwareAddr
}

// VXLANTopology is two machines joined by an underlay veth.
type VXLANTopology struct {
	Machines [2]*Machine
}

// Close stops the daemons and removes the namespaces.
func (t *VXLANTopology) Close() {
	for _, m := range t.Machines {
		if m == nil {
			continue
		}
		if m.Daemon != nil {
			m.Daemon.Close()
		}
		for _, h := range m.Hosts {
			h.Close()
		}
		m.NS.Close()
	}
}

// VXLANVNI is the demo's VXLAN network identifier.
const VXLANVNI = 42

// BuildVXLAN makes two machines with hosts per machine each (addresses
// 10.77.0.1, .2, ... in machine order), an underlay veth (10.98.0.1 and
// 10.98.0.2, MTU 1550 so that the tunnel carries the hosts' 1500), a
// daemon per machine running the built-in learning program on engine,
// the hosts' ports and a VXLAN port vx0 to the other machine.
func BuildVXLAN(hosts int, engine string, log *slog.Logger) (_ *VXLANTopology, err error) {
	t := &VXLANTopology{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for i := range t.Machines {
		ns, err := netenv.New()
		if err != nil {
			return nil, err
		}
		t.Machines[i] = &Machine{Name: string(rune('A' + i)), NS: ns, Underlay: netip.AddrFrom4([4]byte{10, 98, 0, byte(i + 1)})}
	}
	a, b := t.Machines[0], t.Machines[1]
	if err := netenv.Veth(a.NS, "underlay", b.NS, "underlay", 1550); err != nil {
		return nil, err
	}
	for _, m := range t.Machines {
		if err := netenv.AddAddr(m.NS, "underlay", m.Underlay.String()+"/24"); err != nil {
			return nil, err
		}
	}
	n := 0
	for mi, m := range t.Machines {
		m.Daemon = daemon.New(daemon.Config{Netns: m.NS, Logger: log})
		if _, err := m.Daemon.LoadDefault(engine); err != nil {
			return nil, err
		}
		for i := 0; i < hosts; i++ {
			n++
			h, err := netenv.New()
			if err != nil {
				return nil, err
			}
			m.Hosts = append(m.Hosts, h)
			port := fmt.Sprintf("h%d", n)
			if err := netenv.Veth(h, "eth0", m.NS, port, 0); err != nil {
				return nil, err
			}
			ip := netip.AddrFrom4([4]byte{10, 77, 0, byte(n)})
			if err := netenv.AddAddr(h, "eth0", ip.String()+"/24"); err != nil {
				return nil, err
			}
			mac, err := netenv.MAC(h, "eth0")
			if err != nil {
				return nil, err
			}
			m.HostIPs, m.HostMACs = append(m.HostIPs, ip), append(m.HostMACs, mac)
			if _, err := m.Daemon.Attach(control.PortAttachParams{Name: port}); err != nil {
				return nil, err
			}
		}
		vni := uint32(VXLANVNI)
		other := t.Machines[1-mi].Underlay.String()
		if _, err := m.Daemon.Attach(control.PortAttachParams{Name: "vx0", Type: "vxlan", VNI: &vni, Remote: []string{other}}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// RunVXLAN runs the VXLAN demo.
func RunVXLAN(ctx context.Context, o Options) error {
	out := o.Out
	if err := netenv.Check(); err != nil {
		return fmt.Errorf("the demo %v: run it as root (sudo)", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }

	step("building two machines (network namespaces) joined by an underlay veth, each with a vswitch, two hosts and a VXLAN port")
	t, err := BuildVXLAN(2, o.Engine, log)
	if err != nil {
		return err
	}
	defer func() {
		t.Close()
		step("removed the namespaces, links and switches the demo made")
	}()
	for _, m := range t.Machines {
		fmt.Fprintf(out, "    machine %s: underlay %s, vswitch with ports", m.Name, m.Underlay)
		for i := range m.Hosts {
			fmt.Fprintf(out, " h%d", hostNumber(t, m, i))
		}
		other := t.Machines[0]
		if other == m {
			other = t.Machines[1]
		}
		fmt.Fprintf(out, " and vx0 (VXLAN VNI %d, remote %s)\n", VXLANVNI, other.Underlay)
		for i := range m.Hosts {
			fmt.Fprintf(out, "      h%d  eth0 %s %s\n", hostNumber(t, m, i), m.HostMACs[i], m.HostIPs[i])
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	a, b := t.Machines[0], t.Machines[1]
	step("hosts talk through their own kernel stacks: ARP broadcasts cross the tunnel, answers come back unicast")
	for _, pair := range []struct {
		from, to   *Machine
		fromI, toI int
		across     bool
	}{{a, b, 0, 0, true}, {b, a, 1, 1, true}, {a, a, 0, 1, false}, {b, a, 0, 0, true}} {
		rtt, err := UDPEcho(ctx, pair.from.Hosts[pair.fromI], pair.to.Hosts[pair.toI], pair.to.HostIPs[pair.toI], 7777)
		where := "on machine " + pair.from.Name
		if pair.across {
			where = "across the tunnel"
		}
		if err != nil {
			return fmt.Errorf("h%d -> h%d: %w", hostNumber(t, pair.from, pair.fromI), hostNumber(t, pair.to, pair.toI), err)
		}
		fmt.Fprintf(out, "    h%d -> h%d (%s): UDP echo answered in %v, %s\n", hostNumber(t, pair.from, pair.fromI),
			hostNumber(t, pair.to, pair.toI), pair.to.HostIPs[pair.toI], rtt.Round(time.Microsecond), where)
	}

	step("machine A's forwarding database (vswitch fdb show): machine B's hosts are behind vx0, at VTEP %s", b.Underlay)
	if err := printFDB(out, a.Daemon); err != nil {
		return err
	}

	static := "02:00:5e:00:53:01"
	step("a static remote station, as an EVPN control plane would push it (vswitch fdb add %s port vx0 remote %s)", static, b.Underlay)
	if err := a.Daemon.FDBAdd(control.FDBAddParams{MAC: static, Port: "vx0", Remote: b.Underlay.String()}); err != nil {
		return err
	}
	if err := printFDB(out, a.Daemon, static); err != nil {
		return err
	}

	const size = 16 << 20
	step("TCP: h2 sends %d MiB to h4 across the tunnel (checked by SHA-256)", size>>20)
	d, err := tcpSend(ctx, a.Hosts[1], b.Hosts[1], netip.AddrPortFrom(b.HostIPs[1], 5001), size)
	if err != nil {
		return fmt.Errorf("tcp h2 -> h4: %w", err)
	}
	fmt.Fprintf(out, "    %d MiB in %v: %.2f Gbit/s\n", size>>20, d.Round(time.Millisecond), float64(size)*8/d.Seconds()/1e9)

	step("machine A's tunnel port counters (vswitch port show -s)")
	for _, p := range a.Daemon.Ports(true) {
		if p.Name != "vx0" {
			continue
		}
		s := p.Stats
		fmt.Fprintf(out, "    vx0: %d frames received, %d sent as %d datagrams (%d floods replicated to every remote, %d UDP GSO super-datagrams), MTU %d\n",
			s.RxPackets, s.TxPackets, s.Port["tx_datagrams"], s.Port["tx_flooded"], s.Port["tx_gso"], p.MTU)
		if n := s.Port["rx_coalesced"]; n > 0 {
			fmt.Fprintf(out, "    %d runs of TCP segments joined back into super-frames for the hosts\n", n)
		}
	}
	return nil
}

func hostNumber(t *VXLANTopology, m *Machine, i int) int {
	n := i + 1
	if m == t.Machines[1] {
		n += len(t.Machines[0].Hosts)
	}
	return n
}

// printFDB prints the daemon's fdb (only the given MACs, if any).
func printFDB(out io.Writer, d *daemon.Daemon, only ...string) error {
	r, err := d.FDB()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    MAC\tPORT\tNAME\tAGE\tREMOTE")
	for _, e := range r.Entries {
		if len(only) > 0 && !slices.Contains(only, e.MAC) {
			continue
		}
		age, remote := fmt.Sprintf("%.1fs", e.Age), "-"
		if e.Static {
			age = "static"
		}
		if e.Remote != "" {
			remote = e.Remote
		}
		fmt.Fprintf(tw, "    %s\t%d\t%s\t%s\t%s\n", e.MAC, e.Port, e.PortName, age, remote)
	}
	return tw.Flush()
}

// tcpSend sends size random bytes over TCP from client to a server at to
// in server's namespace, checks their SHA-256 and returns how long it
// took.
func tcpSend(ctx context.Context, client, server *netenv.NS, to netip.AddrPort, size int) (time.Duration, error) {
	var ln net.Listener
	if err := server.Run(func() (err error) {
		ln, err = net.Listen("tcp4", to.String())
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	sums := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sums <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		io.Copy(h, c)
		sums <- h.Sum(nil)
	}()
	data := make([]byte, size)
	rand.Read(data)
	var c net.Conn
	if err := client.Run(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp4", to.String())
		return err
	}); err != nil {
		return 0, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	_, err := c.Write(data)
	c.Close()
	if err != nil {
		return 0, err
	}
	sum := <-sums
	el := time.Since(start)
	want := sha256.Sum256(data)
	if string(sum) != string(want[:]) {
		return 0, errors.New("the receiver's SHA-256 differs from what was sent")
	}
	return el, nil
}
