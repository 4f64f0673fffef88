package bpfport

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

// Interoperability: two "machines" (namespaces) joined by an underlay veth,
// a host behind each (a namespace with its own stack, on a veth to its
// machine). Machine A bridges its host's veth (AF_PACKET port) and a VXLAN
// port; machine B runs a peer: the Linux vxlan device in a Linux bridge,
// the same as A, or Open vSwitch's userspace VXLAN port. The hosts ping
// each other (ARP broadcasts cross the tunnel first) and carry TCP both
// ways.

const (
	interopVNI   = 42
	hostAddrA    = "10.77.0.1"
	hostAddrB    = "10.77.0.2"
	interopBytes = 4 << 20
)

type interop struct {
	u        *underlayNet
	hA, hB   *nettest.NS
	vethA    string // machine A's end of host A's veth
	vethB    string // machine B's end of host B's veth
	macA     net.HardwareAddr
	macB     net.HardwareAddr
	vx       *VXLAN    // machine A's tunnel port
	host     *AFPacket // machine A's port to host A
	peerPort *VXLAN    // machine B's tunnel port when the peer is vswitch
}

// newInterop builds the machines (the underlay over IPv4 or IPv6) and
// hosts and machine A's switch; the peer is up to the caller. cfg's
// remotes default to machine B.
func newInterop(t *testing.T, v6 bool, cfg VXLANConfig) *interop {
	return newInteropOn(t, newUnderlay(t, v6, underlayMTU(v6)), cfg)
}

func linkMAC(t *testing.T, ns *nettest.NS, dev string) net.HardwareAddr {
	t.Helper()
	l, err := ns.Handle(t).LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// linuxPeer makes machine B a Linux bridge of host B's veth and a vxlan
// device (VNI 42, UDP 4789, remote machine A, learning).
func (x *interop) linuxPeer(t *testing.T) {
	h := x.u.b.Handle(t)
	under, err := h.LinkByName(x.u.devB)
	if err != nil {
		t.Fatal(err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0", MTU: 1500},
		VxlanId: interopVNI, VtepDevIndex: under.Attrs().Index, SrcAddr: x.u.addrB.AsSlice(),
		Group: x.u.addrA.AsSlice(), Port: VXLANPort, Learning: true, TTL: 64}
	if err := h.LinkAdd(vx); err != nil {
		t.Fatalf("vxlan device: %v", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	for _, name := range []string{"vxlan0", x.vethB, "br0"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name != "br0" {
			if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
				t.Fatalf("%s into the bridge: %v", name, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// vswitchPeer makes machine B the same as machine A.
func (x *interop) vswitchPeer(t *testing.T) {
	x.peerPort = openVX(t, x.u.b, "vx0", VXLANConfig{VNI: interopVNI, Remotes: []netip.Addr{x.u.addrA}})
	bridge(t, openAF(t, x.u.b, x.vethB, AFPacketConfig{}), x.peerPort)
}

// underlayMTU gives the tunnel an MTU of 1500, the hosts'.
func underlayMTU(v6 bool) int { return 1500 + overhead(v6) }

func overhead(v6 bool) int {
	if v6 {
		return VXLANOverhead6
	}
	return VXLANOverhead4
}

// ping sends ICMP echo requests from ns to dst until n replies came back
// (one request in flight at a time, each waited for up to 500ms), within
// 10s.
func ping(t *testing.T, ns *nettest.NS, dst string, n int) {
	t.Helper()
	var c net.PacketConn
	ns.Do(t, func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	defer c.Close()
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	id := uint16(os.Getpid())
	buf := make([]byte, 1500)
	deadline := time.Now().Add(10 * time.Second)
	got := 0
	for seq := uint16(1); got < n; seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("ping %s: %d of %d replies within 10s", dst, got, n)
		}
		req := make([]byte, 64)
		req[0] = 8
		binary.BigEndian.PutUint16(req[4:], id)
		binary.BigEndian.PutUint16(req[6:], seq)
		copy(req[8:], "vswitch vxlan ping")
		binary.BigEndian.PutUint16(req[2:], ^csumFold(csumAdd(0, req)))
		if _, err := c.WriteTo(req, to); err != nil {
			t.Fatalf("ping %s: %v", dst, err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: send the next request
			}
			if k >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && binary.BigEndian.Uint16(buf[6:]) == seq {
				got++
				break
			}
		}
	}
}

// checkHosts pings both ways and sends TCP both ways.
func (x *interop) checkHosts(t *testing.T) {
	t.Helper()
	ping(t, x.hA, hostAddrB, 3)
	ping(t, x.hB, hostAddrA, 3)
	tcpTransfer(t, x.hA, x.hB, hostAddrB+":5001", interopBytes)
	tcpTransfer(t, x.hB, x.hA, hostAddrA+":5002", interopBytes)
	// Machine A learned host B behind machine B.
	e, ok := x.vx.Lookup(x.macB)
	if !ok || e.Remote != x.u.addrB || e.Static {
		t.Errorf("host B's MAC %s: entry %+v %v, want learned behind %s", x.macB, e, ok, x.u.addrB)
	}
	s, vs := x.vx.Stats(), x.vx.TunnelStats()
	t.Logf("vxlan port: %+v", s)
	t.Logf("tunnel: %+v", vs)
	if s.TxErrors != 0 || s.TxOversize != 0 || vs.RxBadHeader != 0 || vs.RxUnknownVNI != 0 {
		t.Errorf("errors on the tunnel port: %+v %+v", s, vs)
	}
}

// checkOversize sends a datagram from host A that fits host A's MTU but
// not the tunnel: machine A drops and counts it, nothing is fragmented.
func (x *interop) checkOversize(t *testing.T) {
	t.Helper()
	// Host A's link (both veth ends) gets MTU 1600; the tunnel carries 1500.
	for _, y := range []struct {
		ns  *nettest.NS
		dev string
	}{{x.hA, "eth0"}, {x.u.a, x.vethA}} {
		h := y.ns.Handle(t)
		l, err := h.LinkByName(y.dev)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetMTU(l, 1600); err != nil {
			t.Fatal(err)
		}
	}
	before := x.vx.Stats().TxOversize
	var c *net.UDPConn
	x.hA.Do(t, func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(hostAddrB), Port: 9})
		if err != nil {
			return err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		})
		return serr
	})
	defer c.Close()
	payload := x.vx.MTU() - 20 - 8 + 10 // a frame 10 bytes over the tunnel's
	if _, err := c.Write(make([]byte, payload)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for x.vx.Stats().TxOversize == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if x.vx.Stats().TxOversize != before+1 {
		t.Errorf("TxOversize %d -> %d, want one more", before, x.vx.Stats().TxOversize)
	}
}

// TestVXLANInteropLinux: vswitch's VXLAN port against the Linux kernel's
// vxlan device in a Linux bridge, over IPv4 and IPv6 underlays.
func TestVXLANInteropLinux(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			x := newInterop(t, v6, VXLANConfig{})
			x.linuxPeer(t)
			x.checkHosts(t)
			x.checkOversize(t)
		})
	}
}

// TestVXLANInteropVswitch: two vswitch VXLAN ports, over IPv4 and IPv6.
func TestVXLANInteropVswitch(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			x := newInterop(t, v6, VXLANConfig{})
			x.vswitchPeer(t)
			x.checkHosts(t)
			if e, ok := x.peerPort.Lookup(x.macA); !ok || e.Remote != x.u.addrA {
				t.Errorf("machine B's port did not learn host A: %+v %v", e, ok)
			}
		})
	}
}

// TestVXLANStaticEntries: machine A's flood list holds only a VTEP that
// does not exist, so broadcasts never reach machine B; with static ARP
// entries on the hosts (as an EVPN control plane with ARP suppression
// would arrange) and a static entry "host B's MAC -> machine B", host A
// reaches host B, and only through that entry.
func TestVXLANStaticEntries(t *testing.T) {
	ghost := netip.MustParseAddr("10.99.0.3")
	x := newInterop(t, false, VXLANConfig{Remotes: []netip.Addr{ghost}})
	x.linuxPeer(t)
	neigh(t, x.hA, hostAddrB, x.macB)
	neigh(t, x.hB, hostAddrA, x.macA)
	// Host B first: machine B's bridge learns nothing of host A until a
	// frame from it arrives, and floods to machine A meanwhile.
	ping(t, x.hB, hostAddrA, 1)
	if e, ok := x.vx.Lookup(x.macB); !ok || e.Static {
		t.Fatalf("host B not learned: %+v %v", e, ok)
	}
	// Forget the learned entry; without the static one host A cannot
	// reach host B (frames to it flood to the ghost).
	x.vx.FlushLearned()
	var c net.PacketConn
	x.hA.Do(t, func() (err error) {
		c, err = net.ListenPacket("udp4", hostAddrA+":0")
		return err
	})
	defer c.Close()
	before := x.vx.TunnelStats()
	c.WriteTo([]byte("flooded"), &net.UDPAddr{IP: net.ParseIP(hostAddrB), Port: 9})
	deadline := time.Now().Add(5 * time.Second)
	for x.vx.TunnelStats().TxFlooded == before.TxFlooded && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if x.vx.TunnelStats().TxFlooded == before.TxFlooded {
		t.Fatalf("a frame to an unknown station was not flooded")
	}
	if err := x.vx.AddStatic(x.macB, x.u.addrB); err != nil {
		t.Fatal(err)
	}
	ping(t, x.hA, hostAddrB, 3)
	tcpTransfer(t, x.hA, x.hB, hostAddrB+":5003", interopBytes)
	if e, ok := x.vx.Lookup(x.macB); !ok || !e.Static || e.Remote != x.u.addrB {
		t.Errorf("static entry replaced: %+v %v", e, ok)
	}
}

// newInteropOn is newInterop on an existing underlay.
func newInteropOn(t *testing.T, u *underlayNet, cfg VXLANConfig) *interop {
	x := &interop{u: u, hA: nettest.NewNS(t), hB: nettest.NewNS(t), vethA: nettest.Name("ha"), vethB: nettest.Name("hb")}
	nettest.Veth(t, x.hA, "eth0", x.u.a, x.vethA, 0)
	nettest.Veth(t, x.hB, "eth0", x.u.b, x.vethB, 0)
	nettest.AddAddr(t, x.hA, "eth0", hostAddrA+"/24")
	nettest.AddAddr(t, x.hB, "eth0", hostAddrB+"/24")
	x.macA, x.macB = linkMAC(t, x.hA, "eth0"), linkMAC(t, x.hB, "eth0")
	cfg.VNI = interopVNI
	if len(cfg.Remotes) == 0 {
		cfg.Remotes = []netip.Addr{x.u.addrB}
	}
	x.vx = openVX(t, x.u.a, "vx0", cfg)
	x.host = openAF(t, x.u.a, x.vethA, AFPacketConfig{})
	bridge(t, x.host, x.vx)
	return x
}

// neigh adds a permanent ARP entry on eth0 of ns.
func neigh(t *testing.T, ns *nettest.NS, ip string, mac net.HardwareAddr) {
	t.Helper()
	h := ns.Handle(t)
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP(ip), HardwareAddr: mac}); err != nil {
		t.Fatalf("neighbour %s: %v", ip, err)
	}
}

// TestVXLANInteropOVS: vswitch's VXLAN port against Open vSwitch's
// userspace datapath (ovs-vswitchd, datapath_type=netdev, no kernel
// module): a bridge of host B's veth and a vxlan port, the underlay veth
// in a second bridge whose internal port holds machine B's address (OVS's
// native tunnelling). Skipped where OVS is not installed.
func TestVXLANInteropOVS(t *testing.T) {
	for _, c := range []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-appctl"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("Open vSwitch is not installed (%s missing): apt-get install -y openvswitch-switch", c)
		}
	}
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			x := newInterop(t, v6, VXLANConfig{})
			// A NIC finishes the outer UDP checksum and segments UDP GSO
			// super-datagrams on the wire; a veth hands both to its peer
			// as they are, where OVS's packet socket would see a partial
			// checksum (and drop the datagram) or one oversized frame.
			// Make machine A's underlay veth behave as a NIC.
			setTxChecksum(t, x.u.a, x.u.devA, false)
			// OVS's AF_PACKET ports read without virtio-net headers: host
			// B must not hand it TSO super-frames or partial checksums
			// (as for any OVS userspace port on a veth).
			setTxChecksum(t, x.hB, "eth0", false)
			startOVSPeer(t, x)
			x.checkHosts(t)
		})
	}
}

// ovsPeer is ovsdb-server and ovs-vswitchd of one test, in machine B.
type ovsPeer struct {
	dir   string
	env   []string
	procs []*exec.Cmd
	forks chan func()
}

func startOVSPeer(t *testing.T, x *interop) {
	schema := ""
	for _, s := range []string{"/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"} {
		if _, err := os.Stat(s); err == nil {
			schema = s
		}
	}
	if schema == "" {
		t.Skip("Open vSwitch's database schema not found")
	}
	// Unix socket paths are short: not t.TempDir().
	dir, err := os.MkdirTemp("", "vxovs")
	if err != nil {
		t.Fatal(err)
	}
	o := &ovsPeer{dir: dir, forks: make(chan func())}
	for _, k := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"} {
		o.env = append(o.env, k+"="+dir)
	}
	ready := make(chan error, 1)
	go o.owner(x.u.b, ready)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.stop(t) })
	db, sock := filepath.Join(dir, "conf.db"), filepath.Join(dir, "db.sock")
	o.run(t, "ovsdb-tool", "create", db, schema)
	o.start(t, "ovsdb-server", db, "--remote=punix:"+sock, "--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--no-chdir")
	waitPath(t, sock)
	vsctl := func(args ...string) {
		o.run(t, "ovs-vsctl", append([]string{"--db=unix:" + sock, "--timeout=30"}, args...)...)
	}
	vsctl("--no-wait", "init")
	o.start(t, "ovs-vswitchd", "unix:"+sock, "--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"),
		"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "--no-chdir")
	vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
		"--", "add-port", "br-int", x.vethB,
		"--", "add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
		"options:remote_ip="+x.u.addrA.String(), fmt.Sprintf("options:key=%d", interopVNI),
		"--", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
		"--", "add-port", "br-phy", x.u.devB)
	// Machine B's address moves from the veth to br-phy's internal port,
	// where OVS's tunnel endpoint lives.
	h := x.u.b.Handle(t)
	dev, err := h.LinkByName(x.u.devB)
	if err != nil {
		t.Fatal(err)
	}
	plen := 24
	if x.u.v6 {
		plen = 64
	}
	p := netip.PrefixFrom(x.u.addrB, plen)
	a, _ := netlink.ParseAddr(p.String())
	if err := h.AddrDel(dev, a); err != nil {
		t.Fatal(err)
	}
	var brPhy netlink.Link
	for deadline := time.Now().Add(10 * time.Second); brPhy == nil; {
		if brPhy, _ = h.LinkByName("br-phy"); brPhy == nil && time.Now().After(deadline) {
			t.Fatal("OVS did not create br-phy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.LinkSetUp(brPhy); err != nil {
		t.Fatal(err)
	}
	addUnderlayAddr(t, x.u.b, "br-phy", p)
	// OVS learns routes from the kernel; wait until it has the underlay's.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := o.output("ovs-appctl", "ovs/route/lookup", x.u.addrA.String())
		if strings.Contains(out, "br-phy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OVS has no route to %s via br-phy: %s", x.u.addrA, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, dev := range []string{x.vethB, "vx0", x.u.devB} {
		if out, _ := o.output("ovs-vsctl", "--db=unix:"+sock, "get", "interface", dev, "error"); strings.TrimSpace(out) != "[]" {
			t.Fatalf("OVS port %s: %s", dev, out)
		}
	}
}

// owner is a thread locked in machine B for the life of the daemons: it
// forks them (their parent-death signal is tied to it) and exits with
// the test.
func (o *ovsPeer) owner(ns *nettest.NS, ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
	if err := netns.Set(ns.H); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for fn := range o.forks {
		fn()
	}
}

func (o *ovsPeer) start(t *testing.T, name string, args ...string) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), o.env...)
	c.Dir = o.dir
	out, err := os.Create(filepath.Join(o.dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	errc := make(chan error, 1)
	o.forks <- func() { errc <- c.Start() }
	if err := <-errc; err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	o.procs = append(o.procs, c)
}

func (o *ovsPeer) output(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = append(os.Environ(), o.env...)
	c.Dir = o.dir
	out, err := c.CombinedOutput()
	return string(out), err
}

func (o *ovsPeer) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := o.output(name, args...); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// stop ends the daemons this test started (ovs-vswitchd first, asked to
// remove its ports), then their owner thread, and removes the directory.
func (o *ovsPeer) stop(t *testing.T) {
	if t.Failed() {
		if b, err := os.ReadFile(filepath.Join(o.dir, "ovs-vswitchd.log")); err == nil {
			t.Logf("ovs-vswitchd.log (last lines):\n%s", lastLines(string(b), 30))
		}
	}
	o.output("ovs-appctl", "-t", "ovs-vswitchd", "exit", "--cleanup")
	for i := len(o.procs) - 1; i >= 0; i-- {
		c := o.procs[i]
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	close(o.forks)
	os.RemoveAll(o.dir)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func waitPath(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
