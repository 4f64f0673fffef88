package bpfport

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

// BenchmarkVXLAN measures a VXLAN port sending batches of 64 frames to a
// VXLAN port on another namespace over a veth underlay: frames delivered
// per second at the receiver (a frame of a coalesced run counts as the
// frames it carries). On a veth the receiver's kernel work runs in the
// sender's system call, so the figure is the whole path's.
//
// Sub-benchmarks: udp (the port as it is: sendmmsg with UDP_SEGMENT runs,
// recvmmsg with UDP_GRO), udp-nogso (one datagram per frame, no GRO), and
// packet (the brief experiment: encapsulation in userspace, Ethernet, IPv4,
// UDP and VXLAN headers written per frame, sent on the underlay's
// AF_PACKET socket with sendmmsg, as Open vSwitch's userspace datapath
// does; the same receiving port). Run on a quiet machine:
//
//	go test ./bpfport -run XXX -bench VXLAN -benchtime 3s -count 5
func BenchmarkVXLAN(b *testing.B) {
	for _, size := range []int{60, 1514} {
		for _, mode := range []string{"udp", "udp-nogso", "packet"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) { benchVXLAN(b, mode, size) })
		}
	}
}

func benchVXLAN(b *testing.B, mode string, size int) {
	nettest.Require(b)
	a, bb := nettest.NewNS(b), nettest.NewNS(b)
	ua, ub := nettest.Name("ua"), nettest.Name("ub")
	nettest.Veth(b, a, ua, bb, ub, 1600)
	nettest.AddAddr(b, a, ua, "10.99.0.1/24")
	nettest.AddAddr(b, bb, ub, "10.99.0.2/24")
	off := mode == "udp-nogso"
	rx := openVX(b, bb, "vxb", VXLANConfig{VNI: 1, Remotes: []netip.Addr{netip.MustParseAddr("10.99.0.1")}, NoGRO: off, RcvBuf: 16 << 20})
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = frameFromTo(macB, macA, size, uint32(i))
	}
	var send func() int
	switch mode {
	case "udp", "udp-nogso":
		tx := openVX(b, a, "vxa", VXLANConfig{VNI: 1, Remotes: []netip.Addr{netip.MustParseAddr("10.99.0.2")}, NoGSO: off})
		send = func() int { n, _ := tx.SendBatch(0, frames, nil); return n }
	case "packet":
		p := openAF(b, a, ua, AFPacketConfig{NoPromisc: true})
		enc := newPacketEncap(linkMACOf(b, a, ua), linkMACOf(b, bb, ub), [4]byte{10, 99, 0, 1}, [4]byte{10, 99, 0, 2}, 1, len(frames), size)
		send = func() int {
			out := enc.encap(frames)
			n, _ := p.SendBatch(0, out, nil)
			return n
		}
	}
	var got atomic.Uint64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		bt := NewBatch(256)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := rx.RecvBatch(0, bt)
			if err != nil {
				return
			}
			k := n
			for i, f := range bt.Frames[:n] {
				if o := bt.Offloads[i]; o.GSO() {
					k += SoftSegments(f, o) - 1
				}
			}
			got.Add(uint64(k))
		}
	}()
	send() // warm up: first-use buffers, ARP
	time.Sleep(100 * time.Millisecond)
	got.Store(0)
	b.ResetTimer()
	start := time.Now()
	var sent uint64
	for i := 0; i < b.N; i++ {
		sent += uint64(send())
	}
	// Let what is in flight arrive (bounded).
	for deadline := time.Now().Add(time.Second); got.Load() < sent && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	close(stop)
	rx.Wake()
	wg.Wait()
	d := got.Load()
	b.ReportMetric(float64(d)/el.Seconds()/1e6, "Mframes/s")
	b.ReportMetric(el.Seconds()*1e9/float64(max(d, 1)), "ns/frame")
	if sent > 0 {
		b.ReportMetric(100*float64(sent-min(d, sent))/float64(sent), "%lost")
	}
}

func linkMACOf(b *testing.B, ns *nettest.NS, dev string) [6]byte {
	l, err := ns.Handle(b).LinkByName(dev)
	if err != nil {
		b.Fatal(err)
	}
	return [6]byte(l.Attrs().HardwareAddr)
}

// packetEncap writes whole VXLAN packets (Ethernet, IPv4, UDP, VXLAN,
// then the frame) for the packet-socket experiment: the neighbour's MAC is
// known, the UDP checksum is 0 (allowed over IPv4), the source port is
// the flow hash's.
type packetEncap struct {
	bufs [][]byte
	out  [][]byte
	hdr  [50]byte
}

func newPacketEncap(src, dst [6]byte, sip, dip [4]byte, vni uint32, n, size int) *packetEncap {
	e := &packetEncap{bufs: make([][]byte, n), out: make([][]byte, n)}
	for i := range e.bufs {
		e.bufs[i] = make([]byte, 50+size)
	}
	h := e.hdr[:]
	copy(h[0:], dst[:])
	copy(h[6:], src[:])
	binary.BigEndian.PutUint16(h[12:], 0x0800)
	ip := h[14:]
	ip[0], ip[6], ip[8], ip[9] = 0x45, 0x40, 64, 17 // DF, TTL 64, UDP
	copy(ip[12:], sip[:])
	copy(ip[16:], dip[:])
	binary.BigEndian.PutUint16(h[36:], VXLANPort)
	putVXLANHeader(h[42:], vni)
	return e
}

func (e *packetEncap) encap(frames [][]byte) [][]byte {
	for i, f := range frames {
		p := e.bufs[i][:50+len(f)]
		copy(p, e.hdr[:])
		binary.BigEndian.PutUint16(p[16:], uint16(36+len(f)))
		binary.BigEndian.PutUint16(p[24:], ^csumFold(csumAdd(0, p[14:34])))
		binary.BigEndian.PutUint16(p[34:], uint16(49152+flowHash(f)%16384))
		binary.BigEndian.PutUint16(p[38:], uint16(16+len(f)))
		copy(p[50:], f)
		e.out[i] = p
	}
	return e.out
}
