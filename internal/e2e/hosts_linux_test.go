package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
	vswitch "github.com/govswitch/vswitch/switch"
	"github.com/govswitch/vswitch/vm"
)

// Real hosts through the switch: kernel stacks in namespaces with their
// default offloads (TSO, checksum offload on the veths), TCP through Go's
// net package, checked byte for byte.

// hostsDaemon is a daemon with the default learning program whose ports
// are the switch ends of n demo hosts.
func hostsDaemon(t *testing.T, n int) (*demo.Topology, *daemon.Daemon) {
	t.Helper()
	requireNetns(t)
	topo, err := demo.Build(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	d := daemon.New(daemon.Config{Netns: topo.Switch})
	t.Cleanup(func() { d.Close() })
	if _, err := d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	for _, p := range topo.Ports {
		if _, err := d.Attach(control.PortAttachParams{Name: p}); err != nil {
			t.Fatal(err)
		}
	}
	return topo, d
}

// tcpCopy sends size random bytes over TCP from a client in nsC to a
// server listening on addr in nsS and fails unless the server received
// exactly them (SHA-256).
func tcpCopy(t *testing.T, nsC, nsS *netenv.NS, addr string, size int) time.Duration {
	t.Helper()
	var ln net.Listener
	if err := nsS.Run(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		sum []byte
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		res <- result{h.Sum(nil), n, err}
	}()
	data := make([]byte, size)
	rand.Read(data)
	var c net.Conn
	if err := nsC.Run(func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.Dial("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("dial %s through the switch: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		c.Close()
		t.Fatalf("tcp write: %v", err)
	}
	c.Close()
	var r result
	select {
	case r = <-res:
	case <-time.After(90 * time.Second):
		t.Fatal("tcp server did not finish within 90s")
	}
	el := time.Since(start)
	want := sha256.Sum256(data)
	if r.err != nil || r.n != int64(size) || !bytes.Equal(r.sum, want[:]) {
		t.Fatalf("tcp: the server received %d of %d bytes (err %v), same bytes: %v", r.n, size, r.err, bytes.Equal(r.sum, want[:]))
	}
	t.Logf("tcp: %d MiB in %v (%.2f Gbit/s)", size>>20, el, float64(size)*8/el.Seconds()/1e9)
	return el
}

func portCounters(t *testing.T, d *daemon.Daemon, name string) map[string]uint64 {
	t.Helper()
	for _, p := range d.Ports(true) {
		if p.Name == name && p.Stats != nil {
			return p.Stats.Port
		}
	}
	t.Fatalf("no port %s", name)
	return nil
}

// TestHostsTCPAFPacket: 64 MiB of TCP between two hosts through AF_PACKET
// ports; the hosts' super-frames cross the switch whole.
func TestHostsTCPAFPacket(t *testing.T) {
	topo, d := hostsDaemon(t, 2)
	tcpCopy(t, topo.Hosts[0], topo.Hosts[1], topo.IPs[1].String()+":5201", 64<<20)
	in := portCounters(t, d, topo.Ports[0])
	out := portCounters(t, d, topo.Ports[1])
	t.Logf("sender's port: %v", in)
	t.Logf("receiver's port: %v", out)
	if in["rx_offload"] == 0 {
		t.Errorf("no super-frame or partial checksum came from the sender (offloads not passed through?): %v", in)
	}
	if out["tx_segmented"] != 0 {
		t.Errorf("frames segmented in software on the way to an AF_PACKET port: %v", out)
	}
	// Far fewer frames than 1448-byte segments: super-frames went whole.
	if segs := uint64(64<<20) / 1448; in["rx_packets"] > segs/2 {
		t.Errorf("%d frames for %d segments' worth of data: super-frames were cut", in["rx_packets"], segs)
	}
}

// TestHostsTCPTAP: 64 MiB of TCP between two hosts whose interfaces are
// TAP devices served by the switch (as virtual machines' would be), with
// the TAP offloads on.
func TestHostsTCPTAP(t *testing.T) {
	requireNetns(t)
	d := daemon.New(daemon.Config{})
	t.Cleanup(func() { d.Close() })
	if _, err := d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	var hosts []*netenv.NS
	for i := 0; i < 2; i++ {
		ns, err := netenv.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		name := netenv.Name("vmt")
		var tap *bpfport.TAP
		if err := ns.Run(func() (err error) {
			tap, err = bpfport.OpenTAP(name, bpfport.TAPConfig{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Switch().Attach(tap, "tap"); err != nil {
			tap.Close()
			t.Fatal(err)
		}
		if err := netenv.AddAddr(ns, name, fmt.Sprintf("10.79.0.%d/24", i+1)); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, ns)
	}
	tcpCopy(t, hosts[0], hosts[1], "10.79.0.2:5201", 64<<20)
	st := d.Switch().PortStats()
	if st[0].Port.RxOffload == 0 {
		t.Errorf("no super-frame came through the sender's TAP: %+v", st[0].Port)
	}
	if st[1].Port.TxSegmented != 0 {
		t.Errorf("frames segmented in software on the way to a TAP port: %+v", st[1].Port)
	}
}

// TestHostsSuperFrameFlooded: a program that floods everything sends the
// sender's super-frames whole to the receiver's AF_PACKET port and cut
// into finished MTU-sized frames to a virtual port that cannot take them;
// TCP still carries every byte.
func TestHostsSuperFrameFlooded(t *testing.T) {
	topo, d := hostsDaemon(t, 2)
	flood, err := vm.Load(asm.MustAssemble("mov %r0, 254\nexit"), vm.Options{Name: "flood"})
	if err != nil {
		t.Fatal(err)
	}
	sw := d.Switch()
	sw.SetProgram(&vswitch.Program{Name: "flood", Engine: "interp", Runner: flood, VM: flood})
	tap, host := bpfport.NewVirtualPair("tapv", "tapv-host", bpfport.VirtualConfig{RingSize: 1 << 14})
	defer host.Close()
	if _, err := sw.Attach(tap, "virtual"); err != nil {
		t.Fatal(err)
	}
	// The virtual port's far end checks every frame it gets.
	var mu sync.Mutex
	var frames, tcpFrames, badSum, tooLong int
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := bpfport.NewBatch(256)
		for {
			n, err := host.RecvBatch(0, b)
			if err != nil || n == 0 {
				return
			}
			mu.Lock()
			for _, f := range b.Frames[:n] {
				frames++
				if len(f) > 1514 {
					tooLong++
				}
				if ok, isTCP := tcpChecksumOK(f); isTCP {
					tcpFrames++
					if !ok {
						badSum++
					}
				}
			}
			mu.Unlock()
		}
	}()
	tcpCopy(t, topo.Hosts[0], topo.Hosts[1], topo.IPs[1].String()+":5202", 16<<20)
	var vst bpfport.Stats
	waitUntil(t, "the virtual port's frames", func() bool {
		vst = tap.Stats()
		mu.Lock()
		defer mu.Unlock()
		return uint64(frames) >= vst.TxPackets && vst.TxPackets > 0
	})
	host.Wake()
	host.Close()
	<-done
	if tooLong != 0 || badSum != 0 || tcpFrames < (16<<20)/1448 {
		t.Errorf("virtual port: %d frames, %d TCP, %d longer than 1514, %d with a bad checksum", frames, tcpFrames, tooLong, badSum)
	}
	if vst.TxSegmented == 0 {
		t.Errorf("no super-frame was segmented for the virtual port: %+v", vst)
	}
	out := portCounters(t, d, topo.Ports[1])
	if out["tx_segmented"] != 0 {
		t.Errorf("the AF_PACKET port got segmented frames: %v", out)
	}
}

// tcpChecksumOK verifies the IPv4 header and TCP checksums of a finished
// frame; isTCP is false for anything else.
func tcpChecksumOK(f []byte) (ok, isTCP bool) {
	if len(f) < 54 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 6 {
		return false, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot > len(ip) || ihl < 20 || tot < ihl+20 {
		return false, true
	}
	if fold(sum(0, ip[:ihl])) != 0xffff {
		return false, true
	}
	seg := ip[ihl:tot]
	s := sum(0, ip[12:20]) + 6 + uint64(len(seg))
	return fold(sum(s, seg)) == 0xffff, true
}

func sum(s uint64, b []byte) uint64 {
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 20s waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestHostsRequestResponse: 1000 UDP request/response round trips at a
// low rate (one every 2 ms, so the switch's workers go idle between them)
// all complete, none lost or late beyond a second.
func TestHostsRequestResponse(t *testing.T) {
	topo, _ := hostsDaemon(t, 2)
	to := topo.IPs[1]
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[0], topo.Hosts[1], to, 7001); err != nil {
		t.Fatal(err) // ARP resolved, stations learned
	}
	var srv *net.UDPConn
	if err := topo.Hosts[1].Run(func() (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: to.AsSlice(), Port: 7002})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	var cl *net.UDPConn
	if err := topo.Hosts[0].Run(func() (err error) {
		cl, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 7002)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var msg, buf [8]byte
	var slowest time.Duration
	for i := 0; i < 1000; i++ {
		binary.BigEndian.PutUint64(msg[:], uint64(i))
		start := time.Now()
		if _, err := cl.Write(msg[:]); err != nil {
			t.Fatal(err)
		}
		cl.SetReadDeadline(start.Add(time.Second))
		n, err := cl.Read(buf[:])
		if err != nil {
			t.Fatalf("request %d: no answer within a second: %v", i, err)
		}
		if n != 8 || buf != msg {
			t.Fatalf("request %d: answer %x", i, buf[:n])
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("1000 round trips, slowest %v", slowest)
}

// TestCaptureStartsAtTheReply: a capture records the first frame sent
// after the daemon answered, and a second capture of the same port is
// refused with an error the CLI shows (and a non-zero exit).
func TestCaptureStartsAtTheReply(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	c := &control.Client{Path: e.socket}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := c.Stream(ctx, control.MethodCapture, control.CaptureParams{Port: e.topo.Ports[1]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedBuf
	done := make(chan struct{})
	go func() { io.Copy(&buf, rc); close(done) }()
	h1.send(t, frame(broadcast, h1.mac, "first"))
	waitUntil(t, "the frame at host 2", func() bool {
		for _, f := range e.hosts[1].take() {
			if bytes.HasPrefix(f[14:], []byte("first")) {
				return true
			}
		}
		return false
	})
	out, errOut, code := e.run("capture", e.topo.Ports[1], "-w", filepath.Join(t.TempDir(), "x.pcap"))
	if code == 0 || !strings.Contains(errOut, "already running") {
		t.Errorf("second capture: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The capture writes asynchronously: wait for the frame in the stream.
	waitUntil(t, "the frame in the capture", func() bool {
		return bytes.Contains(buf.Bytes(), []byte("first"))
	})
	rc.Close()
	<-done
	n := 0
	for _, f := range readPcap(t, buf.Bytes()) {
		if bytes.HasPrefix(f[14:], []byte("first")) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("capture holds %d copies of the first frame, want 1", n)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// TestPortDownAndUp: a port whose link goes down is rechecked until it is
// back, then forwards again without being re-attached.
func TestPortDownAndUp(t *testing.T) {
	topo, d := hostsDaemon(t, 2)
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[0], topo.Hosts[1], topo.IPs[1], 7020); err != nil {
		t.Fatal(err)
	}
	h, err := topo.Switch.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(topo.Ports[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "port show to say down", func() bool {
		for _, p := range d.Ports(false) {
			if p.Name == topo.Ports[1] {
				return !p.Up && !p.Gone
			}
		}
		return false
	})
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[0], topo.Hosts[1], topo.IPs[1], 7022); err != nil {
		t.Fatalf("after the link came back: %v", err)
	}
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[1], topo.Hosts[0], topo.IPs[0], 7023); err != nil {
		t.Fatalf("the other way: %v", err)
	}
}
