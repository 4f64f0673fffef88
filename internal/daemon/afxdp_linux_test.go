package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/netenv"
)

// xdpHost is a host namespace with its own kernel stack, on a veth to the
// switch namespace.
type xdpHost struct {
	ns   *nettest.NS
	dev  string // in the host
	port string // in the switch namespace
	ip   string
}

// xdpRig is a daemon running the learning program in its own namespace,
// with hosts on veths.
type xdpRig struct {
	sw    *nettest.NS
	d     *Daemon
	hosts []*xdpHost
}

func newXDPRig(t *testing.T, n int) *xdpRig {
	t.Helper()
	r := &xdpRig{sw: nettest.NewNS(t)}
	for i := 0; i < n; i++ {
		h := &xdpHost{ns: nettest.NewNS(t), dev: nettest.Name("xh"), port: nettest.Name("xp"), ip: fmt.Sprintf("10.79.0.%d", i+1)}
		nettest.Veth(t, h.ns, h.dev, r.sw, h.port, 0)
		nettest.AddAddr(t, h.ns, h.dev, h.ip+"/24")
		r.hosts = append(r.hosts, h)
	}
	r.d = New(Config{Netns: &netenv.NS{H: r.sw.H}})
	t.Cleanup(func() { r.d.Close() })
	if _, err := r.d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *xdpRig) attach(t *testing.T, i int, typ string) control.Port {
	t.Helper()
	if typ == "afxdp" {
		// AF_XDP frames carry no offload description: the host must send
		// finished checksums (see bpfport.AFXDP). Hosts on other ports
		// keep their offloads.
		txChecksumOff(t, r.hosts[i].ns, r.hosts[i].dev)
	}
	p, err := r.d.Attach(control.PortAttachParams{Name: r.hosts[i].port, Type: typ})
	if err != nil {
		t.Fatalf("attach %s as %s: %v", r.hosts[i].port, typ, err)
	}
	return p
}

// TestAFXDPSwitch: hosts' kernel stacks ping each other and carry TCP
// through a switch of three AF_XDP ports (learning program); the ports
// share a UMEM, so frames cross the switch by descriptor.
func TestAFXDPSwitch(t *testing.T) {
	r := newXDPRig(t, 3)
	for i := range r.hosts {
		p := r.attach(t, i, "afxdp")
		if p.Type != "afxdp" || !strings.Contains(p.XDP, "native XDP") || !strings.Contains(p.XDP, "shared UMEM") {
			t.Errorf("port %s: type %q, xdp %q", p.Name, p.Type, p.XDP)
		}
	}
	h1, h2, h3 := r.hosts[0], r.hosts[1], r.hosts[2]
	ping(t, h1.ns, h2.ip, 3)
	ping(t, h3.ns, h1.ip, 3)
	tcpTransfer(t, h1.ns, h2.ns, h2.ip+":5001", 8<<20)
	tcpTransfer(t, h2.ns, h3.ns, h3.ip+":5002", 4<<20)
	for _, h := range r.hosts {
		c := r.d.xdp[h.port].Counters()
		if c.ZeroCopySent == 0 || c.CopiedSent != 0 {
			t.Errorf("port %s: %+v, want every frame sent by descriptor", h.port, c)
		}
	}
	var st map[string]uint64
	for _, p := range r.d.Ports(true) {
		if p.Name == h2.port {
			st = p.Stats.Port
		}
	}
	if st["rx_packets"] == 0 || st["tx_packets"] == 0 {
		t.Errorf("port show -s: %v", st)
	}
}

// TestAFXDPMixedSwitch: AF_XDP, AF_PACKET, TAP and virtual ports on one
// switch: TCP between hosts on an AF_XDP and an AF_PACKET port both ways,
// ping to the switch namespace's own stack through a TAP port, and ARP
// from a virtual port answered by a host behind an AF_XDP port.
func TestAFXDPMixedSwitch(t *testing.T) {
	r := newXDPRig(t, 2)
	r.attach(t, 0, "afxdp")
	r.attach(t, 1, "afpacket")
	tap := nettest.Name("xt")
	if _, err := r.d.Attach(control.PortAttachParams{Name: tap, Type: "tap", Create: true}); err != nil {
		t.Fatal(err)
	}
	nettest.AddAddr(t, r.sw, tap, "10.79.0.100/24")
	h := r.sw.Handle(t)
	l, err := h.LinkByName(tap)
	if err != nil {
		t.Fatal(err)
	}
	h.LinkSetUp(l)
	va, vb := bpfport.NewVirtualPair("xv0", "xv0-peer", bpfport.VirtualConfig{})
	defer vb.Close()
	if _, err := r.d.Switch().Attach(va, "virtual"); err != nil {
		t.Fatal(err)
	}
	h1, h2 := r.hosts[0], r.hosts[1]
	tcpTransfer(t, h1.ns, h2.ns, h2.ip+":5003", 8<<20)
	tcpTransfer(t, h2.ns, h1.ns, h1.ip+":5004", 8<<20)
	ping(t, h1.ns, "10.79.0.100", 3)
	// h2 kept TSO: its super-frames reached the AF_XDP port, which cut
	// them into segments on the way.
	if s := r.d.xdp[h1.port].Stats(); s.TxSegmented == 0 {
		t.Errorf("AF_XDP port: %+v, want super-frames segmented", s)
	}

	// The virtual port asks who has h1's address; h1's kernel answers
	// through the AF_XDP port and the switch, which learned the virtual
	// port's address from the request.
	vmac := net.HardwareAddr{0x02, 0, 0, 0, 0x79, 0x77}
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: vmac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: vmac, SourceProtAddress: net.IPv4(10, 79, 0, 77).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(h1.ip).To4()})
	b := bpfport.NewBatch(16)
	deadline := time.Now().Add(5 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("no ARP reply from the host behind the AF_XDP port")
		}
		vb.SendBatch(0, [][]byte{buf.Bytes()}, nil)
		time.AfterFunc(200*time.Millisecond, vb.Wake)
		n, err := vb.RecvBatch(0, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range b.Frames[:n] {
			pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPReply &&
				net.IP(a.SourceProtAddress).Equal(net.ParseIP(h1.ip)) && bytes.Equal(a.DstHwAddress, vmac) {
				got = true
			}
		}
	}
}

// TestAFXDPLinkChangesUnderTraffic: a stream from h1 to h2 goes on
// through an AF_XDP port whose link goes down and up, and through the
// deletion of a third port's interface, which the switch marks gone.
func TestAFXDPLinkChangesUnderTraffic(t *testing.T) {
	r := newXDPRig(t, 3)
	for i := range r.hosts {
		r.attach(t, i, "afxdp")
	}
	h1, h2, h3 := r.hosts[0], r.hosts[1], r.hosts[2]
	ping(t, h1.ns, h2.ip, 1)
	var got atomic.Uint64
	var ln net.PacketConn
	h2.ns.Do(t, func() (err error) {
		ln, err = net.ListenPacket("udp4", h2.ip+":6000")
		return err
	})
	defer ln.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := ln.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	var c net.Conn
	h1.ns.Do(t, func() (err error) {
		c, err = net.Dial("udp4", h2.ip+":6000")
		return err
	})
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		payload := make([]byte, 200)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Write(payload)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	flowing := func(what string) {
		t.Helper()
		start := got.Load()
		deadline := time.Now().Add(5 * time.Second)
		for got.Load() < start+50 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stream stopped (%d datagrams received)", what, got.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	flowing("before")

	hs := r.sw.Handle(t)
	l2, _ := hs.LinkByName(h2.port)
	if err := hs.LinkSetDown(l2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the stream hit the down link
	if err := hs.LinkSetUp(l2); err != nil {
		t.Fatal(err)
	}
	flowing("after the link came back up")

	l3, _ := hs.LinkByName(h3.port)
	if err := hs.LinkDel(l3); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		gone := false
		for _, p := range r.d.Ports(false) {
			gone = gone || p.Name == h3.port && p.Gone
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the switch did not mark the deleted port gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	flowing("after a port's interface was deleted")
	if err := r.d.Detach(control.PortDetachParams{Name: h3.port}); err != nil {
		t.Errorf("detach the gone port: %v", err)
	}
}

// TestAFXDPAttachErrors: the daemon's errors for AF_XDP settings.
func TestAFXDPAttachErrors(t *testing.T) {
	r := newXDPRig(t, 1)
	for _, c := range []struct {
		p    control.PortAttachParams
		want string
	}{
		{control.PortAttachParams{Name: r.hosts[0].port, Type: "afxdp", XDPMode: "turbo"}, `--xdp-mode "turbo"`},
		{control.PortAttachParams{Name: r.hosts[0].port, Type: "afxdp", ZeroCopy: "maybe"}, `--zero-copy "maybe"`},
		{control.PortAttachParams{Name: r.hosts[0].port, XDPMode: "native"}, "for --type afxdp"},
		{control.PortAttachParams{Name: r.hosts[0].port, Type: "afxdp", ZeroCopy: "on"}, "does not support AF_XDP zero-copy"},
		{control.PortAttachParams{Name: r.hosts[0].port, Type: "afxdp", RingFrames: 100}, "ring size 100"},
	} {
		_, err := r.d.Attach(c.p)
		var ce *control.Error
		if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want a control error with %q", c.p, err, c.want)
		}
	}
	p := r.attach(t, 0, "afxdp")
	if len(p.Notes) == 0 || !strings.Contains(strings.Join(p.Notes, ";"), "copy mode") {
		t.Errorf("notes %q: want the zero-copy fall-back", p.Notes)
	}
}

// ping sends count ICMP echo requests from ns to ip through a raw socket
// and waits for each reply from the target's kernel.
func ping(t *testing.T, ns *nettest.NS, ip string, count int) {
	t.Helper()
	var c net.PacketConn
	ns.Do(t, func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	defer c.Close()
	dst := &net.IPAddr{IP: net.ParseIP(ip)}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		req := gopacket.NewSerializeBuffer()
		payload := []byte(fmt.Sprintf("vswitch afxdp ping %d", seq))
		gopacket.SerializeLayers(req, gopacket.SerializeOptions{ComputeChecksums: true},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x7979, Seq: uint16(seq)},
			gopacket.Payload(payload))
		deadline := time.Now().Add(5 * time.Second)
		for answered := false; !answered; {
			if time.Now().After(deadline) {
				t.Fatalf("ping %s seq %d: no reply", ip, seq)
			}
			if _, err := c.WriteTo(req.Bytes(), dst); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			for !answered {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					break // resend
				}
				pkt := gopacket.NewPacket(buf[:n], layers.LayerTypeICMPv4, gopacket.Default)
				ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				answered = ok && from.String() == ip && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply &&
					ic.Id == 0x7979 && ic.Seq == uint16(seq) && bytes.Equal(ic.Payload, payload)
			}
		}
	}
}

// tcpTransfer sends size random bytes from nsC to a server at addr in nsS
// and checks the SHA-256 of what the server received.
func tcpTransfer(t *testing.T, nsC, nsS *nettest.NS, addr string, size int) {
	t.Helper()
	var ln net.Listener
	nsS.Do(t, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	defer ln.Close()
	sums := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sums <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		io.Copy(h, c)
		sums <- h.Sum(nil)
	}()
	data := make([]byte, size)
	rand.Read(data)
	var c net.Conn
	nsC.Do(t, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(data); err != nil {
		c.Close()
		t.Fatalf("tcp write: %v", err)
	}
	c.Close()
	var got []byte
	select {
	case got = <-sums:
	case <-time.After(40 * time.Second):
		t.Fatal("tcp server did not finish")
	}
	if want := sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("tcp: the server received different bytes (sha256 %x, want %x)", got, want)
	}
}

// txChecksumOff turns transmit checksum offload off on ifname in ns
// (`ethtool -K ifname tx off`).
func txChecksumOff(t *testing.T, ns *nettest.NS, ifname string) {
	t.Helper()
	ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		v := &struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_STXCSUM}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data unsafe.Pointer
			_    [16]byte
		}
		copy(ifr.name[:], ifname)
		ifr.data = unsafe.Pointer(v)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
			return fmt.Errorf("ethtool -K %s tx off: %w", ifname, e)
		}
		return nil
	})
}

// TestAFXDPConfigFileAndShutdown starts a daemon (Run, as `vswitch daemon`
// does) with AF_XDP ports from its --config file, and stops it as SIGTERM
// does (the context ends): no XDP program is left on the interfaces.
func TestAFXDPConfigFileAndShutdown(t *testing.T) {
	r := newXDPRig(t, 2)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vswitch.json")
	os.WriteFile(cfg, []byte(`{"ports":[{"name":"`+r.hosts[0].port+`","type":"afxdp","xdp_mode":"native","zero_copy":"auto"},
		{"name":"`+r.hosts[1].port+`","type":"afxdp","xdp_mode":"generic"}]}`), 0o644)
	nsPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(r.sw.H))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *Daemon, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunConfig{Socket: filepath.Join(dir, "s.sock"), ConfigFile: cfg, Netns: nsPath,
			NoState: true, Log: io.Discard, Ready: func(d *Daemon) { ready <- d }})
	}()
	var d *Daemon
	select {
	case d = <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	h := r.sw.Handle(t)
	progs := func() (n int) {
		for _, hh := range r.hosts {
			l, err := h.LinkByName(hh.port)
			if err != nil {
				t.Fatal(err)
			}
			if x := l.Attrs().Xdp; x != nil && x.Attached {
				n++
			}
		}
		return n
	}
	ports := d.Ports(false)
	if len(ports) != 2 || !strings.HasPrefix(ports[0].XDP, "native XDP") || !strings.HasPrefix(ports[1].XDP, "generic XDP") {
		t.Errorf("ports from the config: %+v", ports)
	}
	if n := progs(); n != 2 {
		t.Fatalf("%d XDP programs attached, want 2", n)
	}
	txChecksumOff(t, r.hosts[0].ns, r.hosts[0].dev)
	txChecksumOff(t, r.hosts[1].ns, r.hosts[1].dev)
	ping(t, r.hosts[0].ns, r.hosts[1].ip, 2)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if n := progs(); n != 0 {
		t.Errorf("%d XDP programs left after the daemon stopped", n)
	}
}
