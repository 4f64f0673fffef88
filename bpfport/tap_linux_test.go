package bpfport

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/vishvananda/netlink"
)

func openTAP(t *testing.T, ns *nettest.NS, name string, cfg TAPConfig) *TAP {
	t.Helper()
	var p *TAP
	ns.Do(t, func() (err error) {
		p, err = OpenTAP(name, cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// TestTAPByteExact checks frames both ways between a TAP port and an
// AF_PACKET port on the same device.
func TestTAPByteExact(t *testing.T) {
	ns := nettest.NewNS(t)
	name := nettest.Name("tap")
	tp := openTAP(t, ns, name, TAPConfig{MTU: 9000})
	ap := openAF(t, ns, name, AFPacketConfig{})
	if !tp.Up() || tp.MTU() != 9000 {
		t.Errorf("Up %v MTU %d, want true 9000", tp.Up(), tp.MTU())
	}
	frames := [][]byte{testFrame(60, 1), testFrame(1514, 2), testFrame(9014, 3), vlanFrame(100, 4)}
	// TAP -> kernel (seen by AF_PACKET as received on the device)
	sendAll(t, tp, 0, frames)
	if got := recvTest(t, ap, 0, len(frames), 2*time.Second); !equalFrames(got, frames) {
		t.Errorf("tap->kernel: got %d frames, not byte-exact", len(got))
	}
	// kernel -> TAP (AF_PACKET transmits on the device)
	sendAll(t, ap, 0, frames)
	if got := recvTest(t, tp, 0, len(frames), 2*time.Second); !equalFrames(got, frames) {
		t.Errorf("kernel->tap: got %d frames, not byte-exact", len(got))
	}
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestTAPKernelStack pings the kernel's IP stack through a TAP port.
func TestTAPKernelStack(t *testing.T) {
	ns := nettest.NewNS(t)
	name := nettest.Name("tap")
	tp := openTAP(t, ns, name, TAPConfig{})
	nettest.AddAddr(t, ns, name, "10.78.0.1/24")
	peerMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x78, 2}
	h := ns.Handle(t)
	l, _ := h.LinkByName(name)
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.IPv4(10, 78, 0, 2), HardwareAddr: peerMAC}); err != nil {
		t.Fatal(err)
	}
	payload := []byte("vswitch tap ping payload")
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: peerMAC, DstMAC: l.Attrs().HardwareAddr, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IPv4(10, 78, 0, 2), DstIP: net.IPv4(10, 78, 0, 1)}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, icmp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	sendAll(t, tp, 0, [][]byte{buf.Bytes()})
	b := NewBatch(16)
	deadline := time.Now().Add(2 * time.Second)
	defer wakeAfter(tp, deadline)()
	for time.Now().Before(deadline) {
		n, err := tp.RecvBatch(0, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range b.Frames[:n] {
			pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ok || ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply {
				continue
			}
			if ic.Id != 7 || !bytes.Equal(ic.Payload, payload) {
				t.Fatalf("echo reply id %d payload %q", ic.Id, ic.Payload)
			}
			if e := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(e.DstMAC, peerMAC) {
				t.Errorf("reply to %v, want %v", e.DstMAC, peerMAC)
			}
			return
		}
	}
	t.Fatal("no echo reply from the kernel")
}

func TestTAPErrors(t *testing.T) {
	a, b := nettest.NewNS(t), nettest.NewNS(t)
	veth, tap := nettest.Name("tv"), nettest.Name("tap")
	nettest.Veth(t, a, veth, b, nettest.Name("tv"), 0)
	openTAP(t, a, tap, TAPConfig{})
	a.Do(t, func() error {
		_, err := OpenTAP(veth, TAPConfig{})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "not a TAP") {
			t.Errorf("veth name: %v", err)
		}
		_, err = OpenTAP(tap, TAPConfig{})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("tap open twice: %v", err)
		}
		_, err = OpenTAP("nosuchtap0", TAPConfig{NoCreate: true})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("NoCreate: %v", err)
		}
		_, err = OpenTAP("this-name-is-too-long", TAPConfig{})
		if err == nil {
			t.Error("long name accepted")
		}
		return nil
	})
}

func TestTAPMultiQueueWakeClose(t *testing.T) {
	ns := nettest.NewNS(t)
	tp := openTAP(t, ns, nettest.Name("tap"), TAPConfig{Queues: 2})
	if tp.NumQueues() != 2 {
		t.Fatalf("NumQueues %d", tp.NumQueues())
	}
	errc := make(chan error, 2)
	for q := 0; q < 2; q++ {
		go func() {
			_, err := tp.RecvBatch(q, NewBatch(4))
			errc <- err
		}()
	}
	waitBlocked(t, tp, 0)
	waitBlocked(t, tp, 1)
	tp.Wake()
	waitErr(t, errc, nil, 10*time.Second)
	waitErr(t, errc, nil, 10*time.Second)
	go func() {
		_, err := tp.RecvBatch(0, NewBatch(4))
		errc <- err
	}()
	waitBlocked(t, tp, 0)
	go tp.Close()
	waitErr(t, errc, ErrClosed, 10*time.Second)
}

func TestTAPLinkGone(t *testing.T) {
	ns := nettest.NewNS(t)
	name := nettest.Name("tap")
	tp := openTAP(t, ns, name, TAPConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := tp.RecvBatch(0, NewBatch(4))
		errc <- err
	}()
	waitBlocked(t, tp, 0)
	h := ns.Handle(t)
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	waitErr(t, errc, ErrLinkGone, 2*time.Second)
	if _, err := tp.SendBatch(0, [][]byte{testFrame(60, 1)}, nil); !errors.Is(err, ErrLinkGone) {
		t.Errorf("SendBatch after delete: %v", err)
	}
}

func TestTAPAllocs(t *testing.T) {
	ns := nettest.NewNS(t)
	name := nettest.Name("tap")
	tp := openTAP(t, ns, name, TAPConfig{})
	ap := openAF(t, ns, name, AFPacketConfig{})
	frames := make([][]byte, 16)
	for i := range frames {
		frames[i] = testFrame(60, uint32(i))
	}
	b := NewBatch(64)
	sendAll(t, ap, 0, frames)
	recvTest(t, tp, 0, len(frames), time.Second)
	allocs := testing.AllocsPerRun(100, func() {
		tp.SendBatch(0, frames, nil)
		ap.SendBatch(0, frames, nil)
		for got := 0; got < len(frames); {
			n, err := tp.RecvBatch(0, b)
			if err != nil {
				return
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// TestTAPTCP bridges two namespaces, each with a TAP device as its host
// interface, through two TAP ports and a forwarding loop.
func TestTAPTCP(t *testing.T) {
	h1, h2 := nettest.NewNS(t), nettest.NewNS(t)
	t1, t2 := nettest.Name("tt"), nettest.Name("tt")
	p1 := openTAP(t, h1, t1, TAPConfig{})
	p2 := openTAP(t, h2, t2, TAPConfig{})
	nettest.AddAddr(t, h1, t1, "10.79.0.1/24")
	nettest.AddAddr(t, h2, t2, "10.79.0.2/24")
	bridge(t, p1, p2)
	tcpTransfer(t, h1, h2, "10.79.0.2:5002", 8<<20)
	t.Logf("port 1: %+v", p1.Stats())
}
