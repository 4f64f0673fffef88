package bpfport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

func openXDP(t testing.TB, ns *nettest.NS, name string, cfg AFXDPConfig) *AFXDP {
	t.Helper()
	var p *AFXDP
	ns.Do(t, func() (err error) {
		p, err = OpenAFXDP(name, cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// xdpPair is an AF_XDP port on one end of a veth pair and an AF_PACKET
// port on the other, in two namespaces.
type xdpPair struct {
	nsX, nsP *nettest.NS
	x, p     string
	px       *AFXDP
	pp       *AFPacket
}

func newXDPPair(t testing.TB, cfg AFXDPConfig) *xdpPair {
	t.Helper()
	p := &xdpPair{nsX: nettest.NewNS(t), nsP: nettest.NewNS(t), x: nettest.Name("xdx"), p: nettest.Name("xdp")}
	nettest.Veth(t, p.nsX, p.x, p.nsP, p.p, 0)
	p.px = openXDP(t, p.nsX, p.x, cfg)
	p.pp = openAF(t, p.nsP, p.p, AFPacketConfig{})
	return p
}

// TestAFXDPFrames: frames of 60 and 1514 bytes (and tagged ones) cross
// an AF_XDP port both ways byte for byte, in native and generic mode.
func TestAFXDPFrames(t *testing.T) {
	for _, mode := range []XDPMode{XDPNative, XDPGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			p := newXDPPair(t, AFXDPConfig{XDPMode: mode})
			info := p.px.Info()
			if info.XDPMode != mode.String() || info.ZeroCopy || info.Queues != 1 {
				t.Fatalf("info %+v", info)
			}
			frames := [][]byte{testFrame(60, 1), testFrame(1514, 2), vlanFrame(64, 3), vlanFrame(1518, 4), testFrame(60, 5)}
			sendAll(t, p.pp, 0, frames)
			got := recvTest(t, p.px, 0, len(frames), 3*time.Second)
			if diff := cmp.Diff(frames, got); diff != "" {
				t.Errorf("into AF_XDP: frames (-want +got):\n%s", diff)
			}
			sendAll(t, p.px, 0, frames)
			got = recvTest(t, p.pp, 0, len(frames), 3*time.Second)
			if diff := cmp.Diff(frames, got); diff != "" {
				t.Errorf("out of AF_XDP: frames (-want +got):\n%s", diff)
			}
			s := p.px.Stats()
			if s.TxPackets != uint64(len(frames)) || s.RxKernelDrops != 0 || s.TxErrors != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestAFXDPTCP bridges two hosts' kernel stacks through two AF_XDP ports
// and carries a TCP stream (SHA-256 checked) and pings.
func TestAFXDPTCP(t *testing.T) {
	h1, sw, h2 := nettest.NewNS(t), nettest.NewNS(t), nettest.NewNS(t)
	e1, s1, s2, e2 := nettest.Name("th"), nettest.Name("ts"), nettest.Name("ts"), nettest.Name("th")
	nettest.Veth(t, h1, e1, sw, s1, 0)
	nettest.Veth(t, h2, e2, sw, s2, 0)
	nettest.AddAddr(t, h1, e1, "10.78.0.1/24")
	nettest.AddAddr(t, h2, e2, "10.78.0.2/24")
	// AF_XDP frames carry no offload description: the hosts must send
	// finished checksums (native XDP on the switch's veths already turned
	// TSO off on them).
	txChecksumOff(t, h1, e1)
	txChecksumOff(t, h2, e2)
	g := NewUMEMGroup(0)
	p1 := openXDP(t, sw, s1, AFXDPConfig{Share: g})
	p2 := openXDP(t, sw, s2, AFXDPConfig{Share: g})
	bridge(t, p1, p2)
	tcpTransfer(t, h1, h2, "10.78.0.2:5001", 8<<20)
	tcpTransfer(t, h2, h1, "10.78.0.1:5002", 4<<20)
	s1s, s2s := p1.Stats(), p2.Stats()
	t.Logf("port 1: %+v %+v %+v", s1s, p1.Counters(), p1.kernelStats())
	t.Logf("port 2: %+v %+v", s2s, p2.Counters())
	if c := p2.Counters(); c.ZeroCopySent == 0 || c.CopiedSent != 0 {
		t.Errorf("port 2 in a shared UMEM: %+v, want every frame sent by descriptor", c)
	}
}

// txChecksumOff turns transmit checksum offload off on ifname in ns
// (`ethtool -K ifname tx off`).
func txChecksumOff(t testing.TB, ns *nettest.NS, ifname string) {
	t.Helper()
	ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		v := &struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_STXCSUM}
		var ifr ifreqData
		copy(ifr.name[:], ifname)
		ifr.data = unsafe.Pointer(v)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
			return fmt.Errorf("ethtool -K %s tx off: %w", ifname, e)
		}
		return nil
	})
}

// TestAFXDPAllocs: receiving and sending a batch allocates nothing.
func TestAFXDPAllocs(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = testFrame(60, uint32(i))
	}
	b := NewBatch(64)
	sendAll(t, p.pp, 0, frames)
	recvTest(t, p.px, 0, len(frames), time.Second)
	sendAll(t, p.px, 0, frames)
	recvTest(t, p.pp, 0, len(frames), time.Second)
	allocs := testing.AllocsPerRun(200, func() {
		p.pp.SendBatch(0, frames, nil)
		for got := 0; got < len(frames); {
			n, err := p.px.RecvBatch(0, b)
			if err != nil {
				return
			}
			got += n
		}
		p.px.SendBatch(0, b.Frames[:len(frames)], nil) // by copy: another UMEM's frames are not these
		p.px.SendBatch(0, frames, nil)
		for got := 0; got < 2*len(frames); {
			n, err := p.pp.RecvBatch(0, b)
			if err != nil {
				return
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch round trip, want 0", allocs)
	}
}

// TestAFXDPCleanDetach: Close leaves no XDP program and no promiscuous
// mode behind, and the interface can be opened again.
func TestAFXDPCleanDetach(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	h := p.nsX.Handle(t)
	state := func() (prog uint32, promisc int) {
		l, err := h.LinkByName(p.x)
		if err != nil {
			t.Fatal(err)
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			prog = x.ProgId
		}
		return prog, l.Attrs().Promisc
	}
	if prog, promisc := state(); prog == 0 || promisc != 1 {
		t.Fatalf("while open: XDP program %d, promisc %d", prog, promisc)
	}
	if err := p.px.Close(); err != nil {
		t.Fatal(err)
	}
	if prog, promisc := state(); prog != 0 || promisc != 0 {
		t.Errorf("after Close: XDP program %d, promisc %d, want none", prog, promisc)
	}
	again := openXDP(t, p.nsX, p.x, AFXDPConfig{})
	sendAll(t, p.pp, 0, [][]byte{testFrame(60, 9)})
	if got := recvTest(t, again, 0, 1, 2*time.Second); len(got) != 1 {
		t.Errorf("reopened port received %d frames, want 1", len(got))
	}
}

func TestAFXDPCloseWhileBlocked(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := p.px.RecvBatch(0, NewBatch(8))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.px.Wake()
	waitErr(t, errc, nil, time.Second)
	go func() {
		_, err := p.px.RecvBatch(0, NewBatch(8))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	go p.px.Close()
	waitErr(t, errc, ErrClosed, time.Second)
	if _, err := p.px.SendBatch(0, [][]byte{testFrame(60, 0)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SendBatch after Close: %v", err)
	}
	p.px.Wake()
	_ = p.px.Stats()
}

// TestAFXDPCloseWithFramesLent closes a port while a receiver still holds
// views into its UMEM: reading them must not fault.
func TestAFXDPCloseWithFramesLent(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	sendAll(t, p.pp, 0, [][]byte{testFrame(60, 1)})
	b := NewBatch(8)
	stop := wakeAfter(p.px, time.Now().Add(2*time.Second))
	n, err := p.px.RecvBatch(0, b)
	stop()
	if n == 0 || err != nil {
		t.Fatalf("no frame: %v", err)
	}
	p.px.Close()
	sum := 0
	for _, c := range b.Frames[0] {
		sum += int(c)
	}
	_ = sum
}

func TestAFXDPLinkDownUp(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	rxErr := make(chan error, 1)
	go func() {
		_, err := p.px.RecvBatch(0, NewBatch(8))
		rxErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	h := p.nsX.Handle(t)
	l, _ := h.LinkByName(p.x)
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	// The socket signals nothing; the link monitor wakes the receiver.
	waitErr(t, rxErr, ErrLinkDown, 2*time.Second)
	if p.px.Up() {
		t.Error("Up() = true while down")
	}
	if _, err := p.px.SendBatch(0, [][]byte{testFrame(60, 1)}, nil); !errors.Is(err, ErrLinkDown) {
		t.Errorf("SendBatch while down: %v, want ErrLinkDown", err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !p.px.Up() || !p.pp.Up() {
		if time.Now().After(deadline) {
			t.Fatal("link did not come back up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Transient: frames flow both ways again, including the one queued
	// while the link was down.
	sendAll(t, p.pp, 0, [][]byte{testFrame(60, 7)})
	if got := recvTest(t, p.px, 0, 1, 2*time.Second); len(got) != 1 {
		t.Errorf("after link up: received %d frames, want 1", len(got))
	}
	sendAll(t, p.px, 0, [][]byte{testFrame(60, 8)})
	got := recvTest(t, p.pp, 0, 2, 2*time.Second)
	if len(got) != 2 || binary.BigEndian.Uint32(got[0][14:]) != 1 || binary.BigEndian.Uint32(got[1][14:]) != 8 {
		t.Errorf("after link up: peer received %d frames %x, want frames 1 and 8", len(got), got)
	}
}

// TestAFXDPLinkGone deletes the interface under traffic in both
// directions: receiver and sender report ErrLinkGone.
func TestAFXDPLinkGone(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	rxErr := make(chan error, 1)
	go func() {
		b := NewBatch(64)
		for i := 0; i < 1e6; i++ {
			if _, err := p.px.RecvBatch(0, b); err != nil && !errors.Is(err, ErrLinkDown) {
				rxErr <- err
				return
			}
		}
		rxErr <- errors.New("no error after 1e6 batches")
	}()
	txErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		frames := [][]byte{testFrame(60, 1), testFrame(60, 2)}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			p.pp.SendBatch(0, frames, nil) // traffic in
			if _, err := p.px.SendBatch(0, frames, nil); err != nil && !errors.Is(err, ErrLinkDown) {
				txErr <- err
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
		txErr <- errors.New("no error within 5s")
	}()
	deadline := time.Now().Add(2 * time.Second)
	for p.px.Stats().RxPackets == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.px.Stats().RxPackets == 0 {
		t.Error("no traffic before deleting the link")
	}
	h := p.nsX.Handle(t)
	l, err := h.LinkByName(p.x)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	waitErr(t, rxErr, ErrLinkGone, 2*time.Second)
	waitErr(t, txErr, ErrLinkGone, 2*time.Second)
	if _, err := p.px.RecvBatch(0, NewBatch(1)); !errors.Is(err, ErrLinkGone) {
		t.Errorf("later RecvBatch: %v, want ErrLinkGone", err)
	}
	if p.px.Up() {
		t.Error("Up() = true after delete")
	}
	if err := p.px.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// xdpStar is a switch namespace with n AF_XDP ports sharing a UMEM, each
// on a veth to a host namespace where an AF_PACKET port plays the host.
type xdpStar struct {
	sw    *nettest.NS
	names []string
	hosts []*nettest.NS
	xs    []*AFXDP
	ps    []*AFPacket
}

func newXDPStar(t *testing.T, n int, g *UMEMGroup) *xdpStar {
	t.Helper()
	s := &xdpStar{sw: nettest.NewNS(t)}
	for i := 0; i < n; i++ {
		h := nettest.NewNS(t)
		sn, hn := nettest.Name("xs"), nettest.Name("xh")
		nettest.Veth(t, s.sw, sn, h, hn, 0)
		s.names = append(s.names, sn)
		s.hosts = append(s.hosts, h)
		s.xs = append(s.xs, openXDP(t, s.sw, sn, AFXDPConfig{Share: g}))
		s.ps = append(s.ps, openAF(t, h, hn, AFPacketConfig{}))
	}
	return s
}

func seqFrames(first, n, size int) [][]byte {
	f := make([][]byte, n)
	for i := range f {
		f[i] = testFrame(size, uint32(first+i))
	}
	return f
}

// recvXDP receives exactly want test frames from p, as views (valid until
// p's next receive).
func recvXDP(t *testing.T, p *AFXDP, b *Batch, want int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	stop := wakeAfter(p, deadline)
	defer stop()
	for time.Now().Before(deadline) {
		n, err := p.RecvBatch(0, b)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, f := range b.Frames[:n] {
			if isTestFrame(f) {
				b.Frames[k] = f
				k++
			}
		}
		if k == want {
			return b.Frames[:k]
		}
		if k != 0 {
			t.Fatalf("received %d test frames in one batch, want %d", k, want)
		}
	}
	t.Fatalf("no frames within 3s")
	return nil
}

// TestAFXDPSharedUMEM: frames received on one AF_XDP port go out of two
// others by descriptor (flooding), byte for byte; a frame queued on a port
// whose link is down stays intact while the receiving port reuses its
// fill ring many times over, and goes out when the link is back; every
// frame returns to the pool in the end.
func TestAFXDPSharedUMEM(t *testing.T) {
	g := NewUMEMGroup(0)
	s := newXDPStar(t, 3, g)
	in, out1, out2 := s.xs[0], s.xs[1], s.xs[2]
	if in.um != out1.um || in.um != out2.um {
		t.Fatal("ports of one group with room in its UMEM did not share it")
	}
	b := NewBatch(64)

	want := seqFrames(1, 8, 60)
	want = append(want, seqFrames(9, 8, 1514)...)
	sendAll(t, s.ps[0], 0, want)
	got := recvXDP(t, in, b, len(want))
	for _, o := range []*AFXDP{out1, out2} {
		if n, err := o.SendBatch(0, got, nil); n != len(got) || err != nil {
			t.Fatalf("%s: SendBatch %d, %v", o.Name(), n, err)
		}
	}
	for i, o := range []*AFXDP{out1, out2} {
		if c := o.Counters(); c.ZeroCopySent != uint64(len(want)) || c.CopiedSent != 0 {
			t.Errorf("%s: %+v, want %d frames sent by descriptor", o.Name(), c, len(want))
		}
		if diff := cmp.Diff(want, recvTest(t, s.ps[i+1], 0, len(want), 3*time.Second)); diff != "" {
			t.Errorf("host %d (-want +got):\n%s", i+1, diff)
		}
	}

	// Out1's link goes down: the frames it is given wait in its transmit
	// ring, holding their UMEM frames.
	h := s.sw.Handle(t)
	l, _ := h.LinkByName(s.names[1])
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	held := seqFrames(100, 8, 200)
	sendAll(t, s.ps[0], 0, held)
	got = recvXDP(t, in, b, len(held))
	if n, err := out1.SendBatch(0, got, nil); n != len(got) || !errors.Is(err, ErrLinkDown) {
		t.Fatalf("SendBatch on a down link: %d, %v; want %d, ErrLinkDown", n, err, len(got))
	}
	// The receiving port cycles its fill ring several times over.
	for i := 0; i < 4*in.cfg.RingSize/32; i++ {
		sendAll(t, s.ps[0], 0, seqFrames(1000+32*i, 32, 200))
		recvXDP(t, in, b, 32)
	}
	in.Release(0)
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !out1.Up() {
		if time.Now().After(deadline) {
			t.Fatal("link did not come back up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	last := testFrame(60, 200)
	sendAll(t, out1, 0, [][]byte{last})
	if diff := cmp.Diff(append(held, last), recvTest(t, s.ps[1], 0, len(held)+1, 3*time.Second)); diff != "" {
		t.Errorf("frames held across the link's down time (-want +got):\n%s", diff)
	}

	// Every frame comes back: what is in use is what the fill rings hold.
	for _, o := range []*AFXDP{out1, out2} {
		o.reap(o.qs[0])
	}
	used, leaked := in.usedFrames()
	fill := 0
	for _, p := range s.xs {
		fill += p.qs[0].held
	}
	cache := len(out1.qs[0].cache) + len(out2.qs[0].cache) + len(in.qs[0].cache)
	if used != fill+cache || leaked != 0 {
		t.Errorf("UMEM: %d frames in use, %d leaked; fill sides hold %d, caches %d", used, leaked, fill, cache)
	}
	out1.Close()
	out2.Close()
	if used, leaked := in.usedFrames(); used != in.qs[0].held+len(in.qs[0].cache) || leaked != 0 {
		t.Errorf("after closing two ports: %d frames in use, %d leaked; the last port holds %d", used, leaked, in.qs[0].held)
	}
}
