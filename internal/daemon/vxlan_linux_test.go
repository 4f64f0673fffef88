package daemon

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/examples"
	"github.com/govswitch/vswitch/internal/netenv"
)

// Two "machines" (namespaces) joined by an underlay veth (10.99.0.1 and
// 10.99.0.2), each with a daemon, hosts behind them on veths.

type machine struct {
	ns   *nettest.NS
	d    *Daemon
	addr string
}

func newMachines(t *testing.T) (a, b *machine) {
	t.Helper()
	a = &machine{ns: nettest.NewNS(t), addr: "10.99.0.1"}
	b = &machine{ns: nettest.NewNS(t), addr: "10.99.0.2"}
	ua, ub := nettest.Name("ua"), nettest.Name("ub")
	nettest.Veth(t, a.ns, ua, b.ns, ub, 1550) // the tunnels carry MTU 1500
	nettest.AddAddr(t, a.ns, ua, a.addr+"/24")
	nettest.AddAddr(t, b.ns, ub, b.addr+"/24")
	return a, b
}

// daemon starts m's daemon with the program of the named example, on the
// default engine. (The tests change maps while frames may flow: under
// -race the interpreter's plain loads of map values race with those
// writes, a property of the interpreter, not of what is tested here.)
func (m *machine) daemon(t *testing.T, prog string) {
	t.Helper()
	m.d = New(Config{Netns: &netenv.NS{H: m.ns.H}})
	t.Cleanup(func() { m.d.Close() })
	obj, err := examples.Object(prog)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.d.Load(control.ProgLoadParams{Object: obj, File: prog + ".o"}); err != nil {
		t.Fatal(err)
	}
}

// host adds a host with address ip behind m and attaches its veth;
// it returns the host's namespace, MAC and the port's index.
func (m *machine) host(t *testing.T, ip string) (*nettest.NS, net.HardwareAddr, int) {
	t.Helper()
	h := nettest.NewNS(t)
	dev := nettest.Name("h")
	nettest.Veth(t, h, "eth0", m.ns, dev, 0)
	nettest.AddAddr(t, h, "eth0", ip+"/24")
	l, err := h.Handle(t).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.d.Attach(control.PortAttachParams{Name: dev})
	if err != nil {
		t.Fatal(err)
	}
	return h, l.Attrs().HardwareAddr, p.Index
}

func (m *machine) vxlan(t *testing.T, name string, vni uint32, remote ...string) control.Port {
	t.Helper()
	p, err := m.d.Attach(control.PortAttachParams{Name: name, Type: "vxlan", VNI: &vni, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pingN sends ICMP echo requests from ns to dst, one in flight at a time
// (each waited for up to wait), and returns the replies of tries requests
// or stops at want replies.
func pingN(t *testing.T, ns *nettest.NS, dst string, want, tries int, wait time.Duration) int {
	t.Helper()
	var c net.PacketConn
	ns.Do(t, func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	defer c.Close()
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	buf := make([]byte, 1500)
	got := 0
	for seq := 1; seq <= tries && got < want; seq++ {
		req := []byte{8, 0, 0, 0, 0x56, 0x58, 0, byte(seq), 'v', 'x', 'l', 'a', 'n', 0, 0, 0}
		var sum uint32
		for i := 0; i < len(req); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(req[i:]))
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		binary.BigEndian.PutUint16(req[2:], ^uint16(sum))
		if _, err := c.WriteTo(req, to); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if k >= 8 && buf[0] == 0 && buf[4] == 0x56 && buf[7] == byte(seq) {
				got++
				break
			}
		}
	}
	return got
}

func vxPing(t *testing.T, ns *nettest.NS, dst string) {
	t.Helper()
	if n := pingN(t, ns, dst, 3, 20, 500*time.Millisecond); n < 3 {
		t.Fatalf("ping %s: %d of 3 replies", dst, n)
	}
}

// tcp sends size random bytes from a client in c to a server at addr in
// s and checks their SHA-256.
func tcp(t *testing.T, c, s *nettest.NS, addr string, size int) {
	t.Helper()
	var ln net.Listener
	s.Do(t, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	defer ln.Close()
	sums := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			sums <- nil
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		io.Copy(h, conn)
		sums <- h.Sum(nil)
	}()
	data := make([]byte, size)
	rand.Read(data)
	var conn net.Conn
	c.Do(t, func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr, 10*time.Second)
		return err
	})
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(data); err != nil {
		conn.Close()
		t.Fatalf("tcp write: %v", err)
	}
	conn.Close()
	want := sha256.Sum256(data)
	if got := <-sums; !bytes.Equal(got, want[:]) {
		t.Fatalf("tcp to %s: the server received other bytes", addr)
	}
}

func fdbEntry(t *testing.T, d *Daemon, mac string) (control.FDBEntry, bool) {
	t.Helper()
	r, err := d.FDB()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Entries {
		if e.MAC == mac {
			return e, true
		}
	}
	return control.FDBEntry{}, false
}

// TestVXLANTwoDaemons joins two daemons running the learning program by
// VXLAN: hosts behind them ping and carry TCP both ways; fdb show lists
// the remote host with its VTEP; static entries are added, survive a
// flush and are deleted.
func TestVXLANTwoDaemons(t *testing.T) {
	a, b := newMachines(t)
	a.daemon(t, "learn")
	b.daemon(t, "learn")
	hA, macA, _ := a.host(t, "10.77.0.1")
	hB, macB, _ := b.host(t, "10.77.0.2")
	vxA := a.vxlan(t, "vx0", 42, b.addr)
	b.vxlan(t, "vx0", 42, a.addr)
	if vxA.Type != "vxlan" || vxA.MTU != 1500 {
		t.Errorf("port: %+v", vxA)
	}
	vxPing(t, hA, "10.77.0.2")
	vxPing(t, hB, "10.77.0.1")
	tcp(t, hA, hB, "10.77.0.2:5001", 4<<20)
	tcp(t, hB, hA, "10.77.0.1:5002", 4<<20)

	// The program learned host B on vx0, the port where it is.
	e, ok := fdbEntry(t, a.d, macB.String())
	if !ok || e.PortName != "vx0" || e.Remote != b.addr || e.Static {
		t.Errorf("host B in A's fdb: %+v %v", e, ok)
	}
	if e, ok := fdbEntry(t, b.d, macA.String()); !ok || e.Remote != a.addr {
		t.Errorf("host A in B's fdb: %+v %v", e, ok)
	}
	for _, p := range a.d.Ports(true) {
		if p.Name == "vx0" && (p.Stats == nil || p.Stats.Port["tx_datagrams"] == 0 || p.Stats.Port["tx_flooded"] == 0) {
			t.Errorf("vx0 counters: %+v", p.Stats)
		}
	}

	// Static entries: added on the VXLAN port (and in the program's
	// table), kept by a flush, removed by del.
	static := "02:00:00:00:00:99"
	if err := a.d.FDBAdd(control.FDBAddParams{MAC: static, Port: "vx0", Remote: "10.99.0.3"}); err != nil {
		t.Fatal(err)
	}
	if e, ok := fdbEntry(t, a.d, static); !ok || !e.Static || e.Remote != "10.99.0.3" || e.PortName != "vx0" {
		t.Errorf("static entry: %+v %v", e, ok)
	}
	if err := a.d.FDBFlush(); err != nil {
		t.Fatal(err)
	}
	if _, ok := fdbEntry(t, a.d, macB.String()); ok {
		t.Errorf("learned entry kept by a flush")
	}
	if e, ok := fdbEntry(t, a.d, static); !ok || !e.Static {
		t.Errorf("static entry lost by a flush: %+v %v", e, ok)
	}
	if err := a.d.FDBDel(control.FDBDelParams{MAC: static}); err != nil {
		t.Fatal(err)
	}
	if _, ok := fdbEntry(t, a.d, static); ok {
		t.Errorf("deleted entry still listed")
	}
	if err := a.d.FDBDel(control.FDBDelParams{MAC: static}); control.CodeOf(err) != control.CodeNotFound {
		t.Errorf("second delete: %v", err)
	}
	// The hosts still reach each other (relearned).
	vxPing(t, hA, "10.77.0.2")

	for _, c := range []struct {
		p    control.FDBAddParams
		code string
	}{
		{control.FDBAddParams{MAC: "nope", Port: "vx0", Remote: "10.99.0.3"}, control.CodeBadRequest},
		{control.FDBAddParams{MAC: static, Port: "vx0", Remote: "here"}, control.CodeBadRequest},
		{control.FDBAddParams{MAC: static, Port: "nope", Remote: "10.99.0.3"}, control.CodeNotFound},
		{control.FDBAddParams{MAC: "ff:ff:ff:ff:ff:ff", Port: "vx0", Remote: "10.99.0.3"}, control.CodeInvalid},
		{control.FDBAddParams{MAC: static, Port: "vx0", Remote: "fd00::3"}, control.CodeInvalid},
	} {
		if err := a.d.FDBAdd(c.p); control.CodeOf(err) != c.code {
			t.Errorf("fdb add %+v: %v, want code %s", c.p, err, c.code)
		}
	}
	var hostPort string
	for _, p := range a.d.Ports(false) {
		if p.Type == "afpacket" {
			hostPort = p.Name
		}
	}
	if err := a.d.FDBAdd(control.FDBAddParams{MAC: static, Port: hostPort, Remote: "10.99.0.3"}); control.CodeOf(err) != control.CodeInvalid ||
		!strings.Contains(err.Error(), "not a VXLAN port") {
		t.Errorf("fdb add on an afpacket port: %v", err)
	}
}

func TestVXLANAttachErrors(t *testing.T) {
	a, _ := newMachines(t)
	a.daemon(t, "learn")
	vni := uint32(5)
	big := uint32(1 << 24)
	for _, c := range []struct {
		p    control.PortAttachParams
		code string
		msg  string
	}{
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", Remote: []string{"10.99.0.2"}}, control.CodeBadRequest, "--vni"},
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", VNI: &vni, Remote: []string{"10.99.0.x"}}, control.CodeBadRequest, "not an IP address"},
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", VNI: &big, Remote: []string{"10.99.0.2"}}, control.CodeInvalid, "VNI"},
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", VNI: &vni}, control.CodeInvalid, "no remote"},
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", VNI: &vni, Remote: []string{"10.99.0.2"}, Local: "10.99.0.7"}, control.CodeNotFound, "not assigned"},
		{control.PortAttachParams{Name: "vx1", Type: "vxlan", VNI: &vni, Remote: []string{"10.99.0.2"}, Queues: 2}, control.CodeBadRequest, "one queue"},
	} {
		_, err := a.d.Attach(c.p)
		if control.CodeOf(err) != c.code || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Errorf("%+v: %v, want code %s and %q", c.p, err, c.code, c.msg)
		}
	}
	// A port whose remote has no route yet opens (its underlay comes
	// later, as at boot), down, with the MTU of a 1500-byte underlay.
	if p, err := a.d.Attach(control.PortAttachParams{Name: "vx9", Type: "vxlan", VNI: &vni, Remote: []string{"192.0.2.1"}}); err != nil || p.Up || p.MTU != 1450 {
		t.Errorf("a port without a route to its remote: %+v %v", p, err)
	}
	// Several VNIs share UDP port 4789; one VNI has one port.
	a.vxlan(t, "vx1", 1, "10.99.0.2")
	a.vxlan(t, "vx2", 2, "10.99.0.2,10.99.0.3")
	one := uint32(1)
	if _, err := a.d.Attach(control.PortAttachParams{Name: "vx3", Type: "vxlan", VNI: &one, Remote: []string{"10.99.0.2"}}); control.CodeOf(err) != control.CodeExists {
		t.Errorf("a second port for VNI 1: %v", err)
	}
	if err := a.d.Detach(control.PortDetachParams{Name: "vx1"}); err != nil {
		t.Fatal(err)
	}
	a.vxlan(t, "vx3", 1, "10.99.0.2")
}

// TestVXLANVNIsIsolated: one daemon with two VXLAN ports on one UDP port
// (VNIs 10 and 20), each in a VLAN of the VLAN-aware program with one
// local host, against a Linux machine with a vxlan device and a bridge per
// VNI. Hosts of one VNI talk across the tunnel; nothing crosses between
// the VNIs.
func TestVXLANVNIsIsolated(t *testing.T) {
	a, b := newMachines(t)
	a.daemon(t, "vlan")
	// The VLANs are set before the ports exist (indices in attach order:
	// host 1, host 2, vx10, vx20): port_vlan puts host 1 and vx10 in VLAN
	// 10, host 2 and vx20 in VLAN 20.
	const p1, p2, i10, i20 = 0, 1, 2, 3
	for port, vlan := range map[int]int{p1: 10, i10: 10, p2: 20, i20: 20} {
		key := binary.NativeEndian.AppendUint32(nil, uint32(port))
		val := binary.NativeEndian.AppendUint32(nil, uint32(vlan))
		if _, err := a.d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "port_vlan", Key: key, Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	for vlan, ports := range map[int][]int{10: {p1, i10}, 20: {p2, i20}} {
		set := make([]byte, 32)
		for _, p := range ports {
			set[p/8] |= 1 << (p % 8)
		}
		key := binary.NativeEndian.AppendUint32(nil, uint32(vlan))
		if _, err := a.d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "vlan_members", Key: key, Value: set}); err != nil {
			t.Fatal(err)
		}
	}
	a1, _, q1 := a.host(t, "10.77.0.1")
	a2, _, q2 := a.host(t, "10.77.0.3")
	vx10 := a.vxlan(t, "vx10", 10, b.addr)
	vx20 := a.vxlan(t, "vx20", 20, b.addr)
	if q1 != p1 || q2 != p2 || vx10.Index != i10 || vx20.Index != i20 {
		t.Fatalf("ports at %d %d %d %d, want 0 1 2 3", q1, q2, vx10.Index, vx20.Index)
	}
	// Machine B: Linux, a vxlan device and a bridge per VNI.
	h := b.ns.Handle(t)
	var bHosts []*nettest.NS
	for i, vni := range []int{10, 20} {
		host := nettest.NewNS(t)
		dev := nettest.Name("hb")
		nettest.Veth(t, host, "eth0", b.ns, dev, 0)
		nettest.AddAddr(t, host, "eth0", fmt.Sprintf("10.77.0.%d/24", 2+2*i))
		bHosts = append(bHosts, host)
		linuxVXLAN(t, h, vni, b.addr, a.addr, dev)
	}
	vxPing(t, a1, "10.77.0.2")
	vxPing(t, bHosts[1], "10.77.0.3")
	tcp(t, a2, bHosts[1], "10.77.0.4:5003", 1<<20)
	// Across VNIs: host A1 cannot reach host B2 (its ARP never leaves
	// VNI 10), host B1 cannot reach host A2.
	// Wait for the end of the TCP connection's closing handshake.
	before := portTx(t, a.d, "vx20")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		now := portTx(t, a.d, "vx20")
		if now == before {
			break
		}
		before = now
	}
	if n := pingN(t, a1, "10.77.0.4", 1, 3, 300*time.Millisecond); n != 0 {
		t.Errorf("host A1 reached host B2 across VNIs")
	}
	if n := pingN(t, bHosts[0], "10.77.0.3", 1, 3, 300*time.Millisecond); n != 0 {
		t.Errorf("host B1 reached host A2 across VNIs")
	}
	if after := portTx(t, a.d, "vx20"); after != before {
		t.Errorf("vx20 sent %d frames while only VNI 10 hosts talked", after-before)
	}
}

func portTx(t *testing.T, d *Daemon, name string) uint64 {
	for _, p := range d.Ports(true) {
		if p.Name == name {
			return p.Stats.TxPackets
		}
	}
	t.Fatalf("no port %s", name)
	return 0
}

// linuxVXLAN makes, in the namespace of h, a Linux vxlan device for vni
// (UDP 4789, local and remote VTEPs) in a new bridge with port dev.
func linuxVXLAN(t *testing.T, h *netlink.Handle, vni int, local, remote, dev string) {
	t.Helper()
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vxlan%d", vni)}, VxlanId: vni,
		SrcAddr: net.ParseIP(local), Group: net.ParseIP(remote), Port: 4789, Learning: true}
	if err := h.LinkAdd(vx); err != nil {
		t.Fatalf("vxlan device: %v", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("br%d", vni)}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	for _, name := range []string{vx.Name, dev, br.Name} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name != br.Name {
			if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVXLANStaticEntriesSaved: static remote stations are saved with
// their VXLAN port in the daemon's state and come back after a restart
// (as after SIGKILL: nothing is written at shutdown); deleted ones do
// not.
func TestVXLANStaticEntriesSaved(t *testing.T) {
	a, _ := newMachines(t)
	dir := t.TempDir()
	start := func() (*Daemon, func()) {
		st, sv, err := openStore(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		d := New(Config{Netns: &netenv.NS{H: a.ns.H}})
		d.state = st
		if err := d.restore(sv, &FileConfig{}, false, "interp"); err != nil {
			t.Fatal(err)
		}
		return d, func() { d.Close(); st.Close() }
	}
	d, kill := start()
	vni := uint32(42)
	if _, err := d.Attach(control.PortAttachParams{Name: "vx0", Type: "vxlan", VNI: &vni, Remote: []string{"10.99.0.2"}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []control.FDBAddParams{
		{MAC: "02:00:00:00:00:01", Port: "vx0", Remote: "10.99.0.3"},
		{MAC: "02:00:00:00:00:02", Port: "vx0", Remote: "10.99.0.4"},
		{MAC: "02:00:00:00:00:01", Port: "vx0", Remote: "10.99.0.5"}, // replaces the first
	} {
		if err := d.FDBAdd(e); err != nil {
			t.Fatal(err)
		}
	}
	kill()
	d, kill = start()
	for mac, remote := range map[string]string{"02:00:00:00:00:01": "10.99.0.5", "02:00:00:00:00:02": "10.99.0.4"} {
		if e, ok := fdbEntry(t, d, mac); !ok || !e.Static || e.Remote != remote || e.PortName != "vx0" {
			t.Errorf("after a restart, %s: %+v %v, want static at %s", mac, e, ok, remote)
		}
	}
	if err := d.FDBDel(control.FDBDelParams{MAC: "02:00:00:00:00:02"}); err != nil {
		t.Fatal(err)
	}
	kill()
	d, kill = start()
	defer kill()
	if _, ok := fdbEntry(t, d, "02:00:00:00:00:02"); ok {
		t.Errorf("a deleted static entry came back after a restart")
	}
	if _, ok := fdbEntry(t, d, "02:00:00:00:00:01"); !ok {
		t.Errorf("the other static entry was lost")
	}
}
