package bpfport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/govswitch/vswitch/internal/netenv"
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
	recvTest(t, p.px, 0, len(frames), 10*time.Second)
	sendAll(t, p.px, 0, frames)
	recvTest(t, p.pp, 0, len(frames), 10*time.Second)
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
	waitErr(t, errc, nil, 10*time.Second)
	go func() {
		_, err := p.px.RecvBatch(0, NewBatch(8))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	go p.px.Close()
	waitErr(t, errc, ErrClosed, 10*time.Second)
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

// TestAFXDPRefusesOtherPrograms: an interface running someone else's XDP
// program is refused with the program named, and the program stays; a
// second vswitch port on the same interface is refused too.
func TestAFXDPRefusesOtherPrograms(t *testing.T) {
	ns := nettest.NewNS(t)
	peer := nettest.NewNS(t)
	a, b := nettest.Name("xfa"), nettest.Name("xfb")
	nettest.Veth(t, ns, a, peer, b, 0)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "not_vswitch", Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var lnk link.Link
	ns.Do(t, func() error {
		l, err := netlink.LinkByName(a)
		if err != nil {
			return err
		}
		lnk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.Attrs().Index})
		return err
	})
	err = ns.Run(func() error {
		_, err := OpenAFXDP(a, AFXDPConfig{})
		return err
	})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `"not_vswitch"`) {
		t.Errorf("open with a foreign XDP program: %v; want ErrInUse naming it", err)
	}
	h := ns.Handle(t)
	if l, _ := h.LinkByName(a); l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		t.Error("the foreign program was removed")
	}
	lnk.Close()

	openXDP(t, ns, a, AFXDPConfig{})
	err = ns.Run(func() error {
		_, err := OpenAFXDP(a, AFXDPConfig{})
		return err
	})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "already an AF_XDP port of vswitch") {
		t.Errorf("second open: %v; want ErrInUse", err)
	}
}

// TestAFXDPStaleAfterCrash kills a process holding an AF_XDP port. Where
// the program is attached through a bpf_link the kernel removes it with
// the process; attached by netlink (kernels without XDP links) it stays,
// and the next open removes it, saying so.
func TestAFXDPStaleAfterCrash(t *testing.T) {
	for _, via := range []string{"link", "netlink"} {
		t.Run(via, func(t *testing.T) {
			p := newXDPPair(t, AFXDPConfig{})
			p.px.Close()
			crashHolder(t, p.nsX, p.x, via)
			h := p.nsX.Handle(t)
			attached := func() bool {
				l, err := h.LinkByName(p.x)
				if err != nil {
					t.Fatal(err)
				}
				return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
			}
			if via == "link" {
				deadline := time.Now().Add(2 * time.Second)
				for attached() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if attached() {
					t.Fatal("the program outlived the process that held its bpf_link")
				}
			} else if !attached() {
				t.Fatal("no stale program after the crash: the test proves nothing")
			}
			q := openXDP(t, p.nsX, p.x, AFXDPConfig{})
			notes := strings.Join(q.Info().Notes, "; ")
			if stale := strings.Contains(notes, "removed a stale"); stale != (via == "netlink") {
				t.Errorf("notes %q", notes)
			}
			sendAll(t, p.pp, 0, [][]byte{testFrame(60, 3)})
			if got := recvTest(t, q, 0, 1, 2*time.Second); len(got) != 1 {
				t.Errorf("port opened after the crash received %d frames, want 1", len(got))
			}
		})
	}
}

// crashHolder runs a child process (this test binary) that opens an
// AF_XDP port on ifname in ns, and kills it with SIGKILL once it holds it.
func crashHolder(t *testing.T, ns *nettest.NS, ifname, via string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAFXDPHelperProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("VSWITCH_AFXDP_HELPER=/proc/%d/fd/%d,%s,%s", os.Getpid(), int(ns.H), ifname, via))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("helper process: %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper process did not open the port within 10s")
	}
	cmd.Process.Kill()
}

// TestAFXDPHelperProcess is the child of crashHolder; it does nothing in
// a normal test run.
func TestAFXDPHelperProcess(t *testing.T) {
	arg := os.Getenv("VSWITCH_AFXDP_HELPER")
	if arg == "" {
		t.Skip("helper process of TestAFXDPStaleAfterCrash")
	}
	f := strings.Split(arg, ",")
	ns, err := netenv.Open(f[0])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	err = ns.Run(func() error {
		_, err := OpenAFXDP(f[1], AFXDPConfig{viaNetlink: f[2] == "netlink"})
		return err
	})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(30 * time.Second) // killed long before
	os.Exit(1)
}

func TestAFXDPErrors(t *testing.T) {
	p := newXDPPair(t, AFXDPConfig{})
	p.px.Close()
	for _, c := range []struct {
		name string
		cfg  AFXDPConfig
		want string
		is   error
	}{
		{"ring not a power of two", AFXDPConfig{RingSize: 100}, "ring size 100", nil},
		{"ring too small", AFXDPConfig{RingSize: 32}, "ring size 32", nil},
		{"more queues than the interface", AFXDPConfig{Queues: 4}, "the interface has 1 receive queues", nil},
		{"zero-copy in generic mode", AFXDPConfig{XDPMode: XDPGeneric, ZeroCopy: ZeroCopyOn}, "zero-copy needs native XDP", nil},
		{"zero-copy on veth", AFXDPConfig{ZeroCopy: ZeroCopyOn}, "does not support AF_XDP zero-copy", ErrNotSupported},
	} {
		err := p.nsX.Run(func() error {
			q, err := OpenAFXDP(p.x, c.cfg)
			if err == nil {
				q.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.want)
		}
	}
	err := p.nsX.Run(func() error {
		_, err := OpenAFXDP("nosuch0", AFXDPConfig{})
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing interface: %v", err)
	}
	// Nothing was left behind by the failed opens.
	q := openXDP(t, p.nsX, p.x, AFXDPConfig{ZeroCopy: ZeroCopyAuto})
	if notes := strings.Join(q.Info().Notes, "; "); !strings.Contains(notes, "zero-copy: the driver does not support it; copy mode") {
		t.Errorf("auto zero-copy on veth: notes %q, want the fall-back named", notes)
	}
}

// TestAFXDPMultiQueue: a port on an interface with two queues has a
// socket on each; frames arrive on both (the peer sends from both of its
// transmit queues) and leave from both.
func TestAFXDPMultiQueue(t *testing.T) {
	nsX, nsP := nettest.NewNS(t), nettest.NewNS(t)
	x, peer := nettest.Name("xmq"), nettest.Name("xmp")
	hx := nsX.Handle(t)
	la := netlink.NewLinkAttrs()
	la.Name, la.NumTxQueues, la.NumRxQueues = x, 2, 2
	if err := hx.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(nsP.H)),
		PeerNumTxQueues: 2, PeerNumRxQueues: 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := hx.LinkByName(x); err == nil {
			hx.LinkDel(l)
		}
	})
	hp := nsP.Handle(t)
	lp, _ := hp.LinkByName(peer)
	hp.LinkSetUp(lp)
	px := openXDP(t, nsX, x, AFXDPConfig{})
	if px.NumQueues() != 2 || px.Info().DeviceQueues != 2 || strings.Contains(strings.Join(px.Info().Notes, ";"), "queues") {
		t.Fatalf("port on a 2-queue veth: %d queues, info %v, notes %q", px.NumQueues(), px.Info(), px.Info().Notes)
	}
	pp := openAF(t, nsP, peer, AFPacketConfig{})
	// The peer's AF_PACKET socket picks its transmit queue by the sending
	// CPU; send from goroutines pinned nowhere until both queues saw
	// frames.
	seen := [2]int{}
	b := NewBatch(64)
	deadline := time.Now().Add(5 * time.Second)
	for (seen[0] == 0 || seen[1] == 0) && time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				pp.SendBatch(0, seqFrames(i*16, 16, 60), nil)
			}()
		}
		wg.Wait()
		for q := 0; q < 2; q++ {
			for {
				n, err := px.TryRecv(q, b)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				for _, f := range b.Frames[:n] {
					if isTestFrame(f) {
						seen[q]++
					}
				}
			}
		}
	}
	t.Logf("frames per queue: %v", seen)
	if seen[0] == 0 || seen[1] == 0 {
		t.Errorf("frames per queue %v: want both queues used", seen)
	}
	for q := 0; q < 2; q++ {
		sendAll(t, px, q, [][]byte{testFrame(60, uint32(500+q))})
	}
	if got := recvTest(t, pp, 0, 2, 3*time.Second); len(got) != 2 {
		t.Errorf("peer received %d frames from the two queues, want 2", len(got))
	}
	px.Close()
	one := openXDP(t, nsX, x, AFXDPConfig{Queues: 1})
	if notes := strings.Join(one.Info().Notes, "; "); !strings.Contains(notes, "serving 1 of 2 receive queues") {
		t.Errorf("one queue of two: notes %q, want the unserved queue named", notes)
	}
}

// TestAFXDPForwardAllocs: receiving on one AF_XDP port and sending on
// another by descriptor (a shared UMEM) allocates nothing.
func TestAFXDPForwardAllocs(t *testing.T) {
	s := newXDPStar(t, 2, NewUMEMGroup(0))
	in, out := s.xs[0], s.xs[1]
	frames := seqFrames(0, 32, 60)
	b := NewBatch(64)
	rb := NewBatch(64)
	round := func() {
		s.ps[0].SendBatch(0, frames, nil)
		for got := 0; got < len(frames); {
			n, err := in.RecvBatch(0, b)
			if err != nil {
				return
			}
			out.SendBatch(0, b.Frames[:n], nil)
			got += n
		}
		for got := 0; got < len(frames); {
			n, err := s.ps[1].RecvBatch(0, rb)
			if err != nil {
				return
			}
			got += n
		}
	}
	round()
	allocs := testing.AllocsPerRun(200, round)
	if allocs != 0 {
		t.Errorf("%v allocations per forwarded batch, want 0", allocs)
	}
	if c := out.Counters(); c.CopiedSent != 0 || c.ZeroCopySent < 201*uint64(len(frames)) {
		t.Errorf("counters %+v: want every frame sent by descriptor", c)
	}
}

// usedFrames reports the frames of the port's UMEM not in its free pool
// (for tests: after a quiet period, the frames held by fill rings).
func (p *AFXDP) usedFrames() (used, leaked int) {
	um := p.um
	um.mu.Lock()
	defer um.mu.Unlock()
	return um.n - len(um.free), um.leaked
}
