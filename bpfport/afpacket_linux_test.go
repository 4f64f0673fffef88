package bpfport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/vishvananda/netlink"
)

type afPair struct {
	nsA, nsB *nettest.NS
	a, b     string
	pa, pb   *AFPacket
}

// newAFPair makes two namespaces joined by a veth pair and opens an
// AF_PACKET port on each end.
func newAFPair(t testing.TB, mtu int, cfgA, cfgB AFPacketConfig) *afPair {
	t.Helper()
	p := &afPair{nsA: nettest.NewNS(t), nsB: nettest.NewNS(t), a: nettest.Name("afa"), b: nettest.Name("afb")}
	nettest.Veth(t, p.nsA, p.a, p.nsB, p.b, mtu)
	p.pa = openAF(t, p.nsA, p.a, cfgA)
	p.pb = openAF(t, p.nsB, p.b, cfgB)
	return p
}

func openAF(t testing.TB, ns *nettest.NS, name string, cfg AFPacketConfig) *AFPacket {
	t.Helper()
	var p *AFPacket
	ns.Do(t, func() (err error) {
		p, err = OpenAFPacket(name, cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

func TestAFPacketFrames(t *testing.T) {
	for _, mode := range []TXMode{TXRing, TXSendmmsg} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := AFPacketConfig{TX: mode}
			p := newAFPair(t, 9000, cfg, cfg)
			frames := [][]byte{
				testFrame(60, 1), testFrame(1514, 2), testFrame(9014, 3),
				vlanFrame(64, 4), vlanFrame(1518, 5), testFrame(60, 6),
			}
			for _, dir := range []struct {
				name     string
				from, to *AFPacket
			}{{"a->b", p.pa, p.pb}, {"b->a", p.pb, p.pa}} {
				sendAll(t, dir.from, 0, frames)
				got := recvTest(t, dir.to, 0, len(frames), 3*time.Second)
				if diff := cmp.Diff(frames, got); diff != "" {
					t.Errorf("%s: frames (-want +got):\n%s", dir.name, diff)
				}
			}
			// Each port received exactly the other's frames: none of its own
			// transmissions came back (PACKET_IGNORE_OUTGOING).
			for _, port := range []*AFPacket{p.pa, p.pb} {
				s := port.Stats()
				if s.TxPackets != uint64(len(frames)) || s.RxOversize != 0 || s.RxKernelDrops != 0 {
					t.Errorf("%s: stats %+v", port.Name(), s)
				}
				if got := recvTest(t, port, 0, 1, 100*time.Millisecond); len(got) != 0 {
					t.Errorf("%s: received %d unexpected frames", port.Name(), len(got))
				}
			}
		})
	}
}

// TestAFPacketLargeFrames: frames longer than a ring slot come through
// the socket queue, whole and in order with the others; frames longer than
// the MTU are refused on send.
func TestAFPacketLargeFrames(t *testing.T) {
	p := newAFPair(t, 9000, AFPacketConfig{}, AFPacketConfig{FrameSize: 2048})
	frames := [][]byte{testFrame(4000, 1), testFrame(1920, 2), testFrame(1921, 3), testFrame(60, 4),
		vlanFrame(9018, 5), testFrame(9014, 6), testFrame(61, 7)}
	sendAll(t, p.pa, 0, frames)
	got := recvTest(t, p.pb, 0, len(frames), 3*time.Second)
	if diff := cmp.Diff(frames, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if s := p.pb.Stats(); s.RxOversize != 0 || s.RxKernelDrops != 0 {
		t.Errorf("receiver stats %+v", s)
	}
	// Transmit: longer than MTU+14 (untagged) is refused and counted.
	n, err := p.pa.SendBatch(0, [][]byte{testFrame(9015, 1), testFrame(10, 2), vlanFrame(9019, 3)}, nil)
	if n != 3 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	if s := p.pa.Stats(); s.TxOversize != 3 {
		t.Errorf("TxOversize = %d, want 3", s.TxOversize)
	}
}

// udpFrame returns an IPv4/UDP frame of flow i (varying source port).
func udpFrame(i int) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 46)
	copy(ip[12:], []byte{10, 1, 0, 1, 10, 1, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], ^csumFold(csumAdd(0, ip[:20])))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp, uint16(10000+i))
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], 26)
	return f
}

func TestAFPacketFanout(t *testing.T) {
	const queues, flows, perFlow = 4, 64, 4
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{Queues: queues})
	if p.pb.NumQueues() != queues {
		t.Fatalf("NumQueues = %d", p.pb.NumQueues())
	}
	var frames [][]byte
	for i := 0; i < flows*perFlow; i++ {
		frames = append(frames, udpFrame(i%flows))
	}
	type result struct {
		q     int
		ports map[uint16]bool
	}
	res := make(chan result, queues)
	for q := 0; q < queues; q++ {
		go func() {
			r := result{q: q, ports: map[uint16]bool{}}
			b := NewBatch(64)
			deadline := time.Now().Add(2 * time.Second)
			defer wakeAfter(p.pb, deadline)()
			for time.Now().Before(deadline) {
				n, err := p.pb.RecvBatch(q, b)
				if err != nil {
					break
				}
				for _, f := range b.Frames[:n] {
					if len(f) >= 36 && f[12] == 8 && f[23] == 17 {
						r.ports[binary.BigEndian.Uint16(f[34:])] = true
					}
				}
			}
			res <- r
		}()
	}
	sendAll(t, p.pa, 0, frames) // frames wait in the rings for receivers not yet there
	seen := map[uint16]int{}
	used := 0
	for i := 0; i < queues; i++ {
		r := <-res
		t.Logf("queue %d: %d flows", r.q, len(r.ports))
		if len(r.ports) > 0 {
			used++
		}
		for port := range r.ports {
			seen[port]++
		}
	}
	if len(seen) != flows {
		t.Errorf("saw %d flows, want %d", len(seen), flows)
	}
	for port, n := range seen {
		if n != 1 {
			t.Errorf("flow %d on %d queues: hash fanout must keep a flow on one queue", port, n)
		}
	}
	if used < 2 {
		t.Errorf("flows spread over %d queues, want at least 2", used)
	}
	if s := p.pb.Stats(); s.RxPackets != flows*perFlow {
		t.Errorf("RxPackets = %d, want %d", s.RxPackets, flows*perFlow)
	}
}

func TestAFPacketLinkGone(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	rxErr := make(chan error, 1)
	go func() {
		b := NewBatch(64)
		for i := 0; i < 1e6; i++ {
			// A deleted link goes down first: ErrLinkDown may come before
			// ErrLinkGone, as a worker retrying it would see.
			if _, err := p.pb.RecvBatch(0, b); err != nil && !errors.Is(err, ErrLinkDown) {
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
			if _, err := p.pa.SendBatch(0, frames, nil); err != nil && !errors.Is(err, ErrLinkDown) {
				txErr <- err
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
		txErr <- errors.New("no error within 5s")
	}()
	for deadline := time.Now().Add(10 * time.Second); p.pb.Stats().RxPackets == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no traffic within 10s before deleting the link")
		}
		time.Sleep(time.Millisecond)
	}
	h := p.nsB.Handle(t)
	l, err := h.LinkByName(p.b)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	waitErr(t, rxErr, ErrLinkGone, 10*time.Second)
	waitErr(t, txErr, ErrLinkGone, 10*time.Second)
	if _, err := p.pb.RecvBatch(0, NewBatch(1)); !errors.Is(err, ErrLinkGone) {
		t.Errorf("later RecvBatch: %v, want ErrLinkGone", err)
	}
	if p.pb.Up() {
		t.Error("Up() = true after delete")
	}
	if err := p.pb.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestAFPacketLinkDown(t *testing.T) {
	p, h, l, _ := downWhileReceiving(t)
	if p.pb.Up() {
		t.Error("Up() = true while down")
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	// Transient: frames flow again once the link is back.
	deadline := time.Now().Add(3 * time.Second)
	for !p.pa.Up() || !p.pb.Up() {
		if time.Now().After(deadline) {
			t.Fatal("link did not come back up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sendAll(t, p.pa, 0, [][]byte{testFrame(60, 7)})
	if got := recvTest(t, p.pb, 0, 1, 2*time.Second); len(got) != 1 {
		t.Errorf("after link up: got %d frames, want 1", len(got))
	}
}

// downWhileReceiving sets port b's link down while a receiver is blocked
// on it, and checks that the receiver reports ErrLinkDown.
func downWhileReceiving(t *testing.T) (*afPair, *netlink.Handle, netlink.Link, chan error) {
	t.Helper()
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	rxErr := make(chan error, 1)
	go func() {
		_, err := p.pb.RecvBatch(0, NewBatch(8))
		rxErr <- err
	}()
	waitBlocked(t, p.pb, 0)
	h := p.nsB.Handle(t)
	l, _ := h.LinkByName(p.b)
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	waitErr(t, rxErr, ErrLinkDown, 10*time.Second)
	return p, h, l, rxErr
}

// TestAFPacketDeletedWhileDown: a link that goes down and is then deleted
// reports gone, although the kernel does not signal the socket again.
func TestAFPacketDeletedWhileDown(t *testing.T) {
	p, h, l, rxErr := downWhileReceiving(t)
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	// A worker retries after a link-down error, as the switch does.
	go func() {
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := p.pb.RecvBatch(0, NewBatch(8)); !errors.Is(err, ErrLinkDown) {
				rxErr <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		rxErr <- errors.New("still down after 3s")
	}()
	waitErr(t, rxErr, ErrLinkGone, 4*time.Second)
}

func TestAFPacketCloseWhileBlocked(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{Queues: 2}, AFPacketConfig{})
	errc := make(chan error, 2)
	for q := 0; q < 2; q++ {
		go func() {
			_, err := p.pa.RecvBatch(q, NewBatch(8))
			errc <- err
		}()
	}
	waitBlocked(t, p.pa, 0)
	waitBlocked(t, p.pa, 1)
	p.pa.Wake()
	waitErr(t, errc, nil, 10*time.Second)
	waitErr(t, errc, nil, 10*time.Second)
	go func() {
		_, err := p.pa.RecvBatch(1, NewBatch(8))
		errc <- err
	}()
	waitBlocked(t, p.pa, 1)
	start := time.Now()
	go p.pa.Close()
	waitErr(t, errc, ErrClosed, 10*time.Second)
	t.Logf("blocked RecvBatch returned %v after Close started", time.Since(start))
	if _, err := p.pa.SendBatch(0, [][]byte{testFrame(60, 0)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SendBatch after Close: %v", err)
	}
	p.pa.Wake() // harmless after Close
	_ = p.pa.Stats()
}

// TestAFPacketCloseWithFramesLent closes a port while a receiver still
// holds views into the ring: reading them must not fault.
func TestAFPacketCloseWithFramesLent(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	sendAll(t, p.pa, 0, [][]byte{testFrame(60, 1)})
	b := NewBatch(8)
	var n int
	for deadline := time.Now().Add(2 * time.Second); n == 0 && time.Now().Before(deadline); {
		time.AfterFunc(time.Second, p.pb.Wake)
		n, _ = p.pb.RecvBatch(0, b)
	}
	if n == 0 {
		t.Fatal("no frame")
	}
	p.pb.Close()
	sum := 0
	for _, c := range b.Frames[0] {
		sum += int(c) // zeros after Close, but no fault
	}
	_ = sum
}

func TestAFPacketErrors(t *testing.T) {
	ns := nettest.NewNS(t)
	ns.Do(t, func() error {
		_, err := OpenAFPacket("nosuch0", AFPacketConfig{})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nosuch0" not found`) || !strings.Contains(err.Error(), "ip link") {
			return fmt.Errorf("missing interface: %v", err)
		}
		_, err = OpenAFPacket("lo", AFPacketConfig{RingFrames: 3})
		if err == nil || !strings.Contains(err.Error(), "ring of 3 frames") {
			return fmt.Errorf("bad ring size: %v", err)
		}
		_, err = OpenAFPacket("lo", AFPacketConfig{FrameSize: 5000})
		if err == nil || !strings.Contains(err.Error(), "frame size") {
			return fmt.Errorf("bad frame size: %v", err)
		}
		return nil
	})
}

func TestAFPacketPromisc(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	h := p.nsB.Handle(t)
	promisc := func() int {
		l, err := h.LinkByName(p.b)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Promisc
	}
	if promisc() != 1 {
		t.Errorf("promiscuous mode off while attached")
	}
	p.pb.Close()
	if promisc() != 0 {
		t.Errorf("promiscuous mode still on after Close")
	}
	_ = netlink.Link(nil)
}

func TestAFPacketAllocs(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = testFrame(60, uint32(i))
	}
	b := NewBatch(64)
	// Warm up (first batches may allocate inside the runtime's poller).
	sendAll(t, p.pa, 0, frames)
	recvTest(t, p.pb, 0, len(frames), 10*time.Second)
	allocs := testing.AllocsPerRun(200, func() {
		p.pa.SendBatch(0, frames, nil)
		for got := 0; got < len(frames); {
			n, err := p.pb.RecvBatch(0, b)
			if err != nil {
				return
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per send+receive batch, want 0", allocs)
	}
}

// TestAFPacketTCP bridges two namespaces through two AF_PACKET ports with
// a tiny forwarding loop. The hosts' veths keep their default offloads
// (TSO, checksum offload), so the ports see GSO frames and partial
// checksums and must finish them.
func TestAFPacketTCP(t *testing.T) {
	h1, sw, h2 := nettest.NewNS(t), nettest.NewNS(t), nettest.NewNS(t)
	e1, s1, s2, e2 := nettest.Name("th"), nettest.Name("ts"), nettest.Name("ts"), nettest.Name("th")
	nettest.Veth(t, h1, e1, sw, s1, 0)
	nettest.Veth(t, h2, e2, sw, s2, 0)
	nettest.AddAddr(t, h1, e1, "10.77.0.1/24")
	nettest.AddAddr(t, h2, e2, "10.77.0.2/24")
	p1 := openAF(t, sw, s1, AFPacketConfig{})
	p2 := openAF(t, sw, s2, AFPacketConfig{})
	bridge(t, p1, p2)
	tcpTransfer(t, h1, h2, "10.77.0.2:5001", 8<<20)
	s1s, s2s := p1.Stats(), p2.Stats()
	t.Logf("port 1: %+v", s1s)
	t.Logf("port 2: %+v", s2s)
	if s1s.RxBadOffload+s2s.RxBadOffload != 0 {
		t.Errorf("GSO frames dropped")
	}
	// The hosts' offloads reached the ports and went on whole.
	if s1s.RxOffload == 0 {
		t.Errorf("no frame with offloads received from the sender: %+v", s1s)
	}
}

// TestAFPacketStress sends numbered frames as fast as the transmit ring
// takes them and checks that every received frame is unique, in order and
// was sent, and that sent = received + kernel drops.
func TestAFPacketStress(t *testing.T) {
	const total = 200000
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{RingFrames: 64})
	done := make(chan uint64, 1)
	go func() {
		frames := make([][]byte, 64)
		for i := range frames {
			frames[i] = testFrame(60, 0)
		}
		seq := uint32(0)
		deadline := time.Now().Add(10 * time.Second)
		for seq < total && time.Now().Before(deadline) {
			k := min(len(frames), total-int(seq))
			for i := 0; i < k; i++ {
				binary.BigEndian.PutUint32(frames[i][14:], seq+uint32(i))
			}
			n, err := p.pa.SendBatch(0, frames[:k], nil)
			if err != nil {
				break
			}
			seq += uint32(n)
		}
		done <- uint64(seq)
	}()
	b := NewBatch(256)
	var got uint64
	last := int64(-1)
	var sent uint64
	stopWake := wakeAfter(p.pb, time.Now().Add(12*time.Second))
	defer func() { stopWake() }()
	for {
		n, err := p.pb.RecvBatch(0, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range b.Frames[:n] {
			if !isTestFrame(f) {
				continue
			}
			s := int64(binary.BigEndian.Uint32(f[14:]))
			if s <= last {
				t.Fatalf("frame %d after %d: duplicate or reordered", s, last)
			}
			last = s
			got++
		}
		if n == 0 {
			break
		}
		if sent == 0 {
			select {
			case sent = <-done:
				stopWake()
				stopWake = wakeAfter(p.pb, time.Now().Add(200*time.Millisecond))
			default:
			}
		}
	}
	if sent == 0 {
		// Everything arrived before the sender reported: the receive loop
		// then waited for its long wake. Take the count now.
		select {
		case sent = <-done:
		case <-time.After(5 * time.Second):
		}
	}
	drops := p.pb.Stats().RxKernelDrops
	t.Logf("sent %d, received %d, kernel drops %d", sent, got, drops)
	if sent == 0 || got > sent || got+drops < sent {
		t.Errorf("sent %d != received %d + dropped %d", sent, got, drops)
	}
}

// TestAFPacketSuperFrame sends a TCP super-frame with its offload header:
// it crosses the veth and arrives whole, with its header, through the
// socket queue (it does not fit a ring slot); sending and receiving it
// does not allocate.
func TestAFPacketSuperFrame(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{}, AFPacketConfig{})
	f, o := gsoTestFrame(false, false, 20000)
	// A partial checksum as a sender leaves it: the pseudo-header sum.
	l4 := int(o.CsumStart)
	binary.BigEndian.PutUint16(f[24:], ^csumFold(csumAdd(0, f[14:34])))
	ps := csumAdd(0, f[26:34]) + 6 + uint64(len(f)-l4)
	binary.BigEndian.PutUint16(f[l4+16:], csumFold(ps))
	o.HdrLen = uint16(l4 + 20)
	b := NewBatch(8)
	sendRecv := func() (int, error) {
		if n, err := p.pa.SendBatch(0, [][]byte{f}, []Offload{o}); n != 1 || err != nil {
			return 0, fmt.Errorf("SendBatch = %d, %v", n, err)
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			n, err := p.pb.TryRecv(0, b)
			if err != nil || n > 0 {
				return n, err
			}
		}
		return 0, errors.New("nothing received within 5s")
	}
	n, err := sendRecv()
	if err != nil || n != 1 {
		t.Fatalf("received %d, %v", n, err)
	}
	if !bytes.Equal(b.Frames[0], f) {
		t.Errorf("super-frame changed on the way: %d bytes, want %d", len(b.Frames[0]), len(f))
	}
	if got := b.Offloads[0]; !got.GSO() || got.GSOSize != o.GSOSize || got.CsumStart != o.CsumStart {
		t.Errorf("offload %+v, want %+v", got, o)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := sendRecv(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per super-frame sent and received, want 0", allocs)
	}
}

// TestAFPacketTXRingSegments: a port with a transmit ring cannot pass a
// super-frame on, so it sends its segments, finished.
func TestAFPacketTXRingSegments(t *testing.T) {
	p := newAFPair(t, 0, AFPacketConfig{TX: TXRing}, AFPacketConfig{})
	if p.pa.Caps() != 0 {
		t.Errorf("a TX ring port says it takes offloads")
	}
	f, o := gsoTestFrame(false, false, 5000) // 5 segments of 1000 bytes
	n, err := p.pa.SendBatch(0, [][]byte{f}, []Offload{o})
	if n != 1 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	var segs [][]byte
	b := NewBatch(16)
	for deadline := time.Now().Add(5 * time.Second); len(segs) < 5 && time.Now().Before(deadline); {
		k, err := p.pb.TryRecv(0, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range b.Frames[:k] {
			segs = append(segs, bytes.Clone(g))
		}
	}
	if len(segs) != 5 {
		t.Fatalf("received %d frames, want 5 segments", len(segs))
	}
	for i, g := range segs {
		if len(g) != 14+20+20+1000 {
			t.Errorf("segment %d: %d bytes", i, len(g))
		}
		verifyL4(t, g, false, 34, 6)
	}
	if s := p.pa.Stats(); s.TxSegmented != 1 {
		t.Errorf("TxSegmented = %d, want 1", s.TxSegmented)
	}
}
