package bpfport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

// underlayNet is two namespaces standing in for two machines, joined by
// a veth pair (the underlay) with an address on each end.
type underlayNet struct {
	a, b         *nettest.NS
	devA, devB   string
	addrA, addrB netip.Addr
	v6           bool
}

func (u *underlayNet) family() string {
	if u.v6 {
		return "ipv6"
	}
	return "ipv4"
}

// newUnderlay builds the underlay: 10.99.0.1/24 <-> 10.99.0.2/24, or
// fd00:99::1/64 <-> fd00:99::2/64 (IPv6 enabled on the veth ends only, the
// addresses without duplicate address detection). mtu 0 keeps 1500.
func newUnderlay(t *testing.T, v6 bool, mtu int) *underlayNet {
	t.Helper()
	u := &underlayNet{a: nettest.NewNS(t), b: nettest.NewNS(t), devA: nettest.Name("ua"), devB: nettest.Name("ub"), v6: v6}
	nettest.Veth(t, u.a, u.devA, u.b, u.devB, mtu)
	u.addrA, u.addrB = netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	plen := 24
	if v6 {
		u.addrA, u.addrB = netip.MustParseAddr("fd00:99::1"), netip.MustParseAddr("fd00:99::2")
		plen = 64
	}
	for _, x := range []struct {
		ns   *nettest.NS
		dev  string
		addr netip.Addr
	}{{u.a, u.devA, u.addrA}, {u.b, u.devB, u.addrB}} {
		addUnderlayAddr(t, x.ns, x.dev, netip.PrefixFrom(x.addr, plen))
	}
	return u
}

// addUnderlayAddr assigns p to dev in ns, enabling IPv6 on dev first for
// an IPv6 prefix (without duplicate address detection).
func addUnderlayAddr(t testing.TB, ns *nettest.NS, dev string, p netip.Prefix) {
	t.Helper()
	if p.Addr().Is6() {
		ns.Do(t, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("0"), 0)
		})
	}
	h := ns.Handle(t)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = unix.IFA_F_NODAD
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("address %s on %s: %v", p, dev, err)
	}
}

func openVX(t testing.TB, ns *nettest.NS, name string, cfg VXLANConfig) *VXLAN {
	t.Helper()
	var p *VXLAN
	ns.Do(t, func() (err error) {
		p, err = OpenVXLAN(name, cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// recvFrames receives want frames from p (any EtherType) within timeout.
func recvFrames(t *testing.T, p Port, want int, timeout time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	b := NewBatch(64)
	deadline := time.Now().Add(timeout)
	defer wakeAfter(p, deadline)()
	for len(got) < want && time.Now().Before(deadline) {
		n, err := p.RecvBatch(0, b)
		if err != nil {
			t.Fatalf("%s: RecvBatch: %v", p.Name(), err)
		}
		for _, f := range b.Frames[:n] {
			got = append(got, bytes.Clone(f))
		}
	}
	return got
}

// quiet checks that p receives nothing for a while (frames in flight on a
// veth arrive within microseconds; 100ms is generous).
func quiet(t *testing.T, p Port) {
	t.Helper()
	if got := recvFrames(t, p, 1, 100*time.Millisecond); len(got) > 0 {
		t.Errorf("%s received %d unexpected frames (first: % x)", p.Name(), len(got), got[0][:min(len(got[0]), 32)])
	}
}

func frameFromTo(dst, src net.HardwareAddr, n int, seq uint32) []byte {
	f := testFrame(n, seq)
	copy(f, dst)
	copy(f[6:], src)
	return f
}

var (
	macA  = net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	macB  = net.HardwareAddr{2, 0xbb, 0, 0, 0, 1}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// TestVXLANPorts runs two VXLAN ports against each other over IPv4 and
// IPv6 underlays: flooding with head-end replication, learning, static
// entries, runs of frames as UDP GSO super-datagrams, software
// segmentation, oversize frames, several VNIs on one UDP port.
func TestVXLANPorts(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, gso := range []bool{true, false} {
			name := fmt.Sprintf("ipv4/gso=%v", gso)
			if v6 {
				name = fmt.Sprintf("ipv6/gso=%v", gso)
			}
			t.Run(name, func(t *testing.T) { testVXLANPorts(t, v6, !gso) })
		}
	}
}

func testVXLANPorts(t *testing.T, v6, noGSO bool) {
	u := newUnderlay(t, v6, 0)
	// B's flood list also holds a VTEP that does not exist: floods go to
	// both, unicast to learned stations only to A.
	ghost := netip.MustParseAddr("10.99.0.3")
	if v6 {
		ghost = netip.MustParseAddr("fd00:99::3")
	}
	a := openVX(t, u.a, "vxa", VXLANConfig{VNI: 42, Remotes: []netip.Addr{u.addrB}, NoGSO: noGSO, NoGRO: noGSO})
	b := openVX(t, u.b, "vxb", VXLANConfig{VNI: 42, Remotes: []netip.Addr{u.addrA, ghost}, NoGSO: noGSO, NoGRO: noGSO})
	over := VXLANOverhead4
	if v6 {
		over = VXLANOverhead6
	}
	if a.MTU() != 1500-over || !a.Up() {
		t.Fatalf("MTU %d up %v, want %d true", a.MTU(), a.Up(), 1500-over)
	}

	// A broadcast from A's station reaches B, byte for byte; B learns
	// where the station is.
	f := frameFromTo(bcast, macA, 60, 1)
	sendAll(t, a, 0, [][]byte{f})
	got := recvFrames(t, b, 1, 2*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Fatalf("B received %d frames, want the broadcast: %x", len(got), got)
	}
	e, ok := b.Lookup(macA)
	if !ok || e.Remote != u.addrA || e.Static {
		t.Fatalf("B did not learn station %s behind %s: %+v %v", macA, u.addrA, e, ok)
	}
	if s := a.TunnelStats(); s.TxFlooded != 1 || s.TxCopies != 1 {
		t.Errorf("A: %+v", s)
	}

	// B answers: unicast to the learned station goes to A only; a frame
	// to an unknown station floods to both remotes.
	before := b.TunnelStats()
	sendAll(t, b, 0, [][]byte{frameFromTo(macA, macB, 60, 2)})
	got = recvFrames(t, a, 1, 2*time.Second)
	if len(got) != 1 || !bytes.Equal(got[0][:12], append(append([]byte{}, macA...), macB...)) {
		t.Fatalf("A received %x", got)
	}
	sendAll(t, b, 0, [][]byte{frameFromTo(net.HardwareAddr{2, 0xcc, 0, 0, 0, 9}, macB, 60, 3)})
	recvFrames(t, a, 1, 2*time.Second)
	s := b.TunnelStats()
	if s.TxCopies-before.TxCopies != 3 || s.TxFlooded-before.TxFlooded != 1 {
		t.Errorf("B sent %d datagrams (%d floods), want 1 + 2 (1 flood)", s.TxCopies-before.TxCopies, s.TxFlooded-before.TxFlooded)
	}

	// A run of equal frames (one UDP_SEGMENT datagram with GSO), then
	// frames of every length: all arrive, in order, intact.
	var frames [][]byte
	for i := 0; i < 150; i++ {
		frames = append(frames, frameFromTo(macB, macA, 1000, uint32(100+i)))
	}
	for i := 14; i <= a.MTU()+14; i += 97 {
		frames = append(frames, frameFromTo(macB, macA, i, uint32(1000+i)))
	}
	frames = append(frames, frameFromTo(macB, macA, a.MTU()+14, 7))
	sendAll(t, a, 0, frames)
	got = recvFrames(t, b, len(frames), 5*time.Second)
	if len(got) != len(frames) {
		t.Fatalf("B received %d of %d frames", len(got), len(frames))
	}
	if as, bs := a.TunnelStats(), b.TunnelStats(); (as.TxGSO > 0) == noGSO || (bs.RxGRO > 0) == noGSO {
		t.Errorf("GSO/GRO on %v, but %d super-datagrams sent, %d coalesced runs received", !noGSO, as.TxGSO, bs.RxGRO)
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d differs: sent %d bytes, received %d", i, len(frames[i]), len(got[i]))
		}
	}

	// One byte more than the underlay carries: dropped and counted, not
	// fragmented.
	st := a.Stats()
	if n, err := a.SendBatch(0, [][]byte{frameFromTo(macB, macA, a.MTU()+15, 8), {1, 2, 3}}, nil); n != 2 || err != nil {
		t.Fatalf("SendBatch: %d %v", n, err)
	}
	if d := a.Stats().TxOversize - st.TxOversize; d != 2 {
		t.Errorf("TxOversize grew by %d, want 2", d)
	}
	quiet(t, b)

	// A TCP super-frame with a partial checksum leaves as its segments,
	// each with finished checksums; with GSO and GRO they arrive as one
	// run, joined back into a super-frame that describes them.
	sf, o := gsoTestFrame(false, false, 5000)
	copy(sf, macB)
	copy(sf[6:], macA)
	if n, err := a.SendBatch(0, [][]byte{sf}, []Offload{o}); n != 1 || err != nil {
		t.Fatalf("SendBatch super-frame: %d %v", n, err)
	}
	var segs [][]byte
	bt := NewBatch(64)
	for deadline := time.Now().Add(2 * time.Second); len(segs) < 5 && time.Now().Before(deadline); {
		n, err := b.TryRecv(0, bt)
		if err != nil {
			t.Fatal(err)
		}
		for k, f := range bt.Frames[:n] {
			ro := bt.Offloads[k]
			if !ro.Pending() {
				segs = append(segs, bytes.Clone(f))
				continue
			}
			if noGSO || !ro.GSO() || ro.GSOSize != 1000 {
				t.Fatalf("received offload %+v", ro)
			}
			for s := 0; s < SoftSegments(f, ro); s++ {
				seg := make([]byte, SoftSegmentLen(f, ro, s))
				WriteSoftSegment(seg, f, ro, s)
				segs = append(segs, seg)
			}
		}
	}
	if len(segs) != 5 {
		t.Fatalf("received %d segments of the super-frame, want 5", len(segs))
	}
	var payload []byte
	for _, g := range segs {
		verifyL4(t, g, false, 34, 6)
		payload = append(payload, g[54:]...)
	}
	if !bytes.Equal(payload, sf[54:]) {
		t.Errorf("the super-frame's payload did not arrive intact")
	}
	if a.Stats().TxSegmented == 0 {
		t.Errorf("TxSegmented not counted")
	}
	if c := b.TunnelStats().RxCoalesced; (c > 0) == noGSO {
		t.Errorf("GSO %v: %d runs coalesced", !noGSO, c)
	}

	// Static entries win over learning.
	if err := b.AddStatic(macA, ghost); err != nil {
		t.Fatal(err)
	}
	sendAll(t, a, 0, [][]byte{frameFromTo(macB, macA, 60, 9)})
	recvFrames(t, b, 1, 2*time.Second)
	if e, _ := b.Lookup(macA); e.Remote != ghost || !e.Static {
		t.Errorf("learning overrode a static entry: %+v", e)
	}
	sendAll(t, b, 0, [][]byte{frameFromTo(macA, macB, 60, 10)})
	quiet(t, a)
	if !b.Delete(macA) {
		t.Errorf("Delete of the static entry")
	}
	if err := b.AddStatic(bcast, u.addrA); err == nil {
		t.Errorf("a static entry for the broadcast address was accepted")
	}
	if a.Stats().TxErrors != 0 || b.Stats().TxErrors != 0 {
		t.Errorf("transmit errors: A %+v B %+v", a.Stats(), b.Stats())
	}
}

// TestVXLANSharedUDPPort runs three VNIs on one UDP port of one machine:
// each port receives its own VNI only, frames of an unknown VNI are
// dropped and counted, and closing one port leaves the others working.
func TestVXLANSharedUDPPort(t *testing.T) {
	u := newUnderlay(t, false, 0)
	var sa, sb [3]*VXLAN
	for i := range sa {
		sa[i] = openVX(t, u.a, fmt.Sprintf("vxa%d", i), VXLANConfig{VNI: uint32(10 + i), Remotes: []netip.Addr{u.addrB}})
	}
	for i := range 2 {
		sb[i] = openVX(t, u.b, fmt.Sprintf("vxb%d", i), VXLANConfig{VNI: uint32(10 + i), Remotes: []netip.Addr{u.addrA}})
	}
	var err error
	u.b.Do(t, func() error {
		_, err = OpenVXLAN("dup", VXLANConfig{VNI: 10, Remotes: []netip.Addr{u.addrA}})
		return nil
	})
	if !errors.Is(err, ErrInUse) {
		t.Errorf("a second port for VNI 10: %v, want ErrInUse", err)
	}
	for round := 0; round < 2; round++ {
		for i := range 2 {
			var frames [][]byte
			for k := 0; k < 100; k++ {
				frames = append(frames, frameFromTo(bcast, macA, 60+k, uint32(i<<16|k)))
			}
			sendAll(t, sa[i], 0, frames)
		}
		sendAll(t, sa[2], 0, [][]byte{frameFromTo(bcast, macA, 60, 3<<16)}) // VNI 12: nobody on B
		for i := range 2 {
			got := recvFrames(t, sb[i], 100, 2*time.Second)
			if len(got) != 100 {
				t.Fatalf("round %d: VNI %d port received %d of 100", round, 10+i, len(got))
			}
			for k, g := range got {
				if seq := uint32(g[14])<<24 | uint32(g[15])<<16 | uint32(g[16])<<8 | uint32(g[17]); seq != uint32(i<<16|k) {
					t.Fatalf("round %d: VNI %d port received frame %#x at %d", round, 10+i, seq, k)
				}
			}
		}
		quiet(t, sb[0])
		quiet(t, sb[1])
		unknown := sb[0].TunnelStats().RxUnknownVNI + sb[1].TunnelStats().RxUnknownVNI
		if unknown != uint64(round+1) {
			t.Errorf("round %d: %d frames of an unknown VNI counted, want %d", round, unknown, round+1)
		}
		if round == 0 {
			// VNI 12 gets a port on B for a while; once it is closed,
			// VNI 12 is unknown again.
			sb[2] = openVX(t, u.b, "vxb2", VXLANConfig{VNI: 12, Remotes: []netip.Addr{u.addrA}})
			if got := recvFrames(t, sb[2], 1, 200*time.Millisecond); len(got) != 0 {
				t.Errorf("a new port received a frame sent before it existed")
			}
			sb[2].Close()
		}
	}
}

// TestVXLANAllocs checks that a send and a receive of a batch allocate
// nothing, flooded or unicast, with GSO and GRO on or off.
func TestVXLANAllocs(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("gso=%v", !off), func(t *testing.T) {
			u := newUnderlay(t, false, 0)
			a := openVX(t, u.a, "vxa", VXLANConfig{VNI: 1, Remotes: []netip.Addr{u.addrB}, NoGSO: off, NoGRO: off})
			b := openVX(t, u.b, "vxb", VXLANConfig{VNI: 1, Remotes: []netip.Addr{u.addrA}, NoGSO: off, NoGRO: off})
			frames := make([][]byte, 64)
			for i := range frames {
				frames[i] = frameFromTo(macB, macA, 60+i%2*1000, uint32(i))
			}
			frames[0] = frameFromTo(bcast, macA, 60, 0)
			sf, o := gsoTestFrame(false, false, 4000)
			copy(sf, macB)
			copy(sf[6:], macA)
			offl := make([]Offload, len(frames)+1)
			offl[len(frames)] = o
			all := append(frames, sf)
			want := len(frames) + 4
			bt := NewBatch(256)
			round := func() {
				if n, err := a.SendBatch(0, all, offl); n != len(all) || err != nil {
					t.Fatalf("SendBatch: %d %v", n, err)
				}
				deadline := time.Now().Add(2 * time.Second)
				for got := 0; got < want && time.Now().Before(deadline); {
					n, err := b.TryRecv(0, bt)
					if err != nil {
						t.Fatal(err)
					}
					got += n
					for k, f := range bt.Frames[:n] {
						if o := bt.Offloads[k]; o.GSO() {
							got += SoftSegments(f, o) - 1 // a coalesced run
						}
					}
				}
			}
			round() // B learns macA; first-use buffers are made
			if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
				t.Errorf("%v allocations per send+receive batch, want 0", allocs)
			}
			if s := b.Stats(); s.RxKernelDrops > 0 {
				t.Logf("receive socket drops: %d", s.RxKernelDrops)
			}
		})
	}
}

// TestVXLANConcurrent sends from several goroutines while the control
// plane reads and changes the station table and a receiver learns: run
// with -race.
func TestVXLANConcurrent(t *testing.T) {
	u := newUnderlay(t, false, 0)
	ghost := netip.MustParseAddr("10.99.0.3")
	a := openVX(t, u.a, "vxa", VXLANConfig{VNI: 7, Remotes: []netip.Addr{u.addrB}})
	b := openVX(t, u.b, "vxb", VXLANConfig{VNI: 7, Remotes: []netip.Addr{u.addrA}})
	const senders, rounds = 4, 200
	done := make(chan struct{})
	received := make(chan int)
	go func() {
		bt := NewBatch(256)
		n := 0
		for {
			select {
			case <-done:
				received <- n
				return
			default:
			}
			k, err := b.TryRecv(0, bt)
			if err != nil {
				t.Error(err)
				received <- n
				return
			}
			n += k
			if k > 0 {
				// B answers to the stations it learns.
				b.SendBatch(0, [][]byte{frameFromTo(bt.Frames[0][6:12], macB, 60, 0)}, nil)
			}
		}
	}()
	var ctl sync.WaitGroup
	ctl.Add(1)
	go func() {
		defer ctl.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			for i := byte(0); i < senders; i++ {
				m := net.HardwareAddr{2, 0xaa, 0, 0, 1, i}
				a.AddStatic(m, ghost)
				a.Entries()
				a.Lookup(m)
				a.Delete(m)
			}
			b.Entries()
			b.FlushLearned()
			a.Stats()
		}
	}()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := net.HardwareAddr{2, 0xaa, 0, 0, 0, byte(s)}
			frames := [][]byte{frameFromTo(bcast, src, 60, 0), frameFromTo(macB, src, 100, 1), frameFromTo(net.HardwareAddr{2, 0xaa, 0, 0, 1, byte(s)}, src, 200, 2)}
			for r := 0; r < rounds; r++ {
				if n, err := a.SendBatch(0, frames, nil); n != len(frames) || err != nil {
					t.Errorf("SendBatch: %d %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // the last datagrams in flight on the veth
	close(done)
	ctl.Wait()
	n := <-received
	if st := a.Stats(); st.TxPackets != senders*rounds*3 {
		t.Errorf("TxPackets %d, want %d", st.TxPackets, senders*rounds*3)
	}
	if n == 0 {
		t.Errorf("B received nothing")
	}
	t.Logf("B received %d frames, A: %+v %+v", n, a.Stats(), a.TunnelStats())
}

// TestVXLANUnderlayLater opens a port before its underlay has a route to
// the remote (as a daemon restoring its ports at boot may): it is down
// with the MTU of a 1500-byte underlay, then up with the underlay's MTU
// once the route exists, and carries frames.
func TestVXLANUnderlayLater(t *testing.T) {
	a, b := nettest.NewNS(t), nettest.NewNS(t)
	ua, ub := nettest.Name("ua"), nettest.Name("ub")
	nettest.Veth(t, a, ua, b, ub, 1400)
	pa := openVX(t, a, "vxa", VXLANConfig{VNI: 3, Remotes: []netip.Addr{netip.MustParseAddr("10.99.0.2")}})
	if pa.Up() || pa.MTU() != 1450 {
		t.Errorf("before the route: up %v MTU %d, want down, 1450", pa.Up(), pa.MTU())
	}
	if _, ok := pa.Underlay(); ok {
		t.Errorf("an underlay without a route")
	}
	nettest.AddAddr(t, a, ua, "10.99.0.1/24")
	nettest.AddAddr(t, b, ub, "10.99.0.2/24")
	deadline := time.Now().Add(5 * time.Second)
	for !pa.Up() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if name, ok := pa.Underlay(); !ok || name != ua || pa.MTU() != 1350 {
		t.Fatalf("after the route: underlay %q %v, MTU %d, want %s, 1350", name, ok, pa.MTU(), ua)
	}
	pb := openVX(t, b, "vxb", VXLANConfig{VNI: 3, Remotes: []netip.Addr{netip.MustParseAddr("10.99.0.1")}})
	f := frameFromTo(bcast, macA, 100, 1)
	sendAll(t, pa, 0, [][]byte{f})
	if got := recvFrames(t, pb, 1, 2*time.Second); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Errorf("received %d frames", len(got))
	}
}

// TestVXLANWakeClose: Wake makes a blocked RecvBatch return 0, nil; Close
// makes it return ErrClosed, and every later call too.
func TestVXLANWakeClose(t *testing.T) {
	u := newUnderlay(t, false, 0)
	p := openVX(t, u.a, "vxa", VXLANConfig{VNI: 1, Remotes: []netip.Addr{u.addrB}})
	errc := make(chan error, 1)
	recv := func() {
		n, err := p.RecvBatch(0, NewBatch(8))
		if err == nil && n != 0 {
			err = fmt.Errorf("received %d frames", n)
		}
		errc <- err
	}
	go recv()
	time.Sleep(20 * time.Millisecond) // let it block (a Wake before also returns at once)
	p.Wake()
	waitErr(t, errc, nil, 5*time.Second)
	go recv()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	waitErr(t, errc, ErrClosed, 5*time.Second)
	if _, err := p.TryRecv(0, NewBatch(8)); !errors.Is(err, ErrClosed) {
		t.Errorf("TryRecv after Close: %v", err)
	}
	if _, err := p.SendBatch(0, [][]byte{testFrame(60, 1)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SendBatch after Close: %v", err)
	}
	if p.Up() {
		t.Errorf("up after Close")
	}
	// The UDP port is free again for a new port.
	q := openVX(t, u.a, "vxa2", VXLANConfig{VNI: 1, Remotes: []netip.Addr{u.addrB}})
	q.Close()
}

// TestVXLANSmallBatches receives UDP_GRO runs of 40 frames into batches
// of 3: the frames of a run that do not fit stay in the port's buffer for
// the next receive (in order, none dropped, none copied into the port's
// queue), and the port does not arm while it holds some.
func TestVXLANSmallBatches(t *testing.T) {
	u := newUnderlay(t, false, 0)
	a := openVX(t, u.a, "vxa", VXLANConfig{VNI: 5, Remotes: []netip.Addr{u.addrB}})
	b := openVX(t, u.b, "vxb", VXLANConfig{VNI: 5, Remotes: []netip.Addr{u.addrA}})
	var frames [][]byte
	for r := 0; r < 3; r++ {
		for i := 0; i < 40; i++ {
			frames = append(frames, frameFromTo(macB, macA, 200+r, uint32(r*40+i)))
		}
	}
	sendAll(t, a, 0, frames)
	bt := NewBatch(3)
	var got [][]byte
	held := false
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(frames) && time.Now().Before(deadline); {
		n, err := b.TryRecv(0, bt)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range bt.Frames[:n] {
			got = append(got, bytes.Clone(f))
		}
		if n == 3 && !b.Arm(0) {
			held = true
		}
	}
	if len(got) != len(frames) {
		t.Fatalf("received %d of %d frames", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if s := b.TunnelStats(); s.RxQueueDrops != 0 || s.RxGRO == 0 || !held {
		t.Errorf("runs %d, queue drops %d, held frames seen by Arm %v", s.RxGRO, s.RxQueueDrops, held)
	}
}
