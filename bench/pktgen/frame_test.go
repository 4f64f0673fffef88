package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestFrameDecodes(t *testing.T) {
	for _, size := range []int{60, 64, 128, 1514, 9000} {
		cfg := Config{Size: size, Flows: 3}
		f, err := BuildFrame(cfg, 2, 0x0102030405060708, 1_700_000_000_123_456_789)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != size {
			t.Fatalf("size %d: frame is %d bytes", size, len(f))
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("size %d: decode: %v", size, el.Error())
		}
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			t.Fatalf("size %d: layers %v", size, p.Layers())
		}
		// Flow 2 of the defaults: +2 on the source MAC, both IPs, both ports.
		if got, want := eth.SrcMAC.String(), "02:00:00:00:00:03"; got != want {
			t.Errorf("src MAC %s, want %s", got, want)
		}
		if got, want := eth.DstMAC.String(), "02:00:00:00:00:02"; got != want {
			t.Errorf("dst MAC %s, want %s", got, want)
		}
		if ip.SrcIP.String() != "198.18.0.3" || ip.DstIP.String() != "198.19.0.3" {
			t.Errorf("IPs %v -> %v", ip.SrcIP, ip.DstIP)
		}
		if udp.SrcPort != 1026 || udp.DstPort != 11 {
			t.Errorf("ports %d -> %d", udp.SrcPort, udp.DstPort)
		}
		if int(ip.Length) != size-14 || int(udp.Length) != size-34 || ip.IHL != 5 || ip.TTL != 64 ||
			ip.Flags != layers.IPv4DontFragment || ip.Id != 2 {
			t.Errorf("size %d: IPv4 %+v UDP len %d", size, ip, udp.Length)
		}
		// The checksum gopacket computes must match the one in the frame.
		sum := ip.Checksum
		buf := gopacket.NewSerializeBuffer()
		if err := ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint16(buf.Bytes()[10:]); got != sum {
			t.Errorf("size %d: IPv4 checksum %#04x, want %#04x", size, sum, got)
		}
		if ipChecksum(f[14:34]) != 0 {
			t.Errorf("size %d: header does not sum to 0xffff", size)
		}
		pr, ok := ParseProbe(f)
		if !ok || pr.Flow != 2 || pr.Seq != 0x0102030405060708 || pr.Time != 1_700_000_000_123_456_789 {
			t.Errorf("size %d: probe %+v %v", size, pr, ok)
		}
		for i, b := range f[hdrLen+probeLen:] {
			if b != 0 {
				t.Fatalf("size %d: padding byte %d is %#x", size, hdrLen+probeLen+i, b)
			}
		}
	}
}

func TestFlowsDistinct(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flows int
		vary  Fields
	}{
		{"default", 1000, 0},
		{"all", 65536, varyAll},
		{"smac only", 300, VarySrcMAC},
		{"dport only", 65536, VaryDstPort},
		{"dip only", 5000, VaryDstIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Flows: tc.flows, Vary: tc.vary, SrcIP: netip.MustParseAddr("10.0.255.250")}
			c, err := cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			type key struct {
				smac, dmac [6]byte
				sip, dip   [4]byte
				sp, dp     uint16
			}
			seen := make(map[key]int, tc.flows)
			h := make([]byte, hdrLen)
			for i := 0; i < tc.flows; i++ {
				flowHeader(h, &c, i)
				var k key
				copy(k.dmac[:], h[0:6])
				copy(k.smac[:], h[6:12])
				copy(k.sip[:], h[26:30])
				copy(k.dip[:], h[30:34])
				k.sp, k.dp = binary.BigEndian.Uint16(h[34:]), binary.BigEndian.Uint16(h[36:])
				if j, dup := seen[k]; dup {
					t.Fatalf("flows %d and %d have the same headers %+v", j, i, k)
				}
				seen[k] = i
				if h[6]&1 != 0 || h[0]&1 != 0 {
					t.Fatalf("flow %d: multicast MAC", i)
				}
				if ipChecksum(h[14:34]) != 0 {
					t.Fatalf("flow %d: bad IPv4 checksum", i)
				}
				if c.Vary&VaryDstMAC == 0 && net.HardwareAddr(h[0:6]).String() != c.DstMAC.String() {
					t.Fatalf("flow %d: destination MAC varies", i)
				}
			}
		})
	}
}

func TestGeneratorFlowsRoundRobin(t *testing.T) {
	c, _ := Config{Flows: 5, Burst: 7}.withDefaults()
	g := newGenerator(nil, c)
	want := make([]uint64, 5)
	next := 0
	for b := 0; b < 10; b++ {
		for _, f := range g.fill(7, int64(b)) {
			p, ok := ParseProbe(f)
			if !ok {
				t.Fatal("not a probe")
			}
			if int(p.Flow) != next || p.Seq != want[next] || p.Time != int64(b) {
				t.Fatalf("burst %d: got flow %d seq %d time %d, want flow %d seq %d", b, p.Flow, p.Seq, p.Time, next, want[next])
			}
			h := make([]byte, hdrLen)
			flowHeader(h, &c, next)
			if string(h) != string(f[:hdrLen]) {
				t.Fatalf("burst %d flow %d: headers differ", b, next)
			}
			want[next]++
			next = (next + 1) % 5
		}
	}
}

func TestParseProbeRejects(t *testing.T) {
	good, _ := BuildFrame(Config{}, 0, 1, 2)
	vlan := append(append(append([]byte{}, good[:12]...), 0x81, 0x00, 0x00, 0x05), good[12:]...)
	if p, ok := ParseProbe(vlan); !ok || p.Seq != 1 {
		t.Errorf("VLAN-tagged frame not accepted: %+v", p)
	}
	mut := func(off int, v byte) []byte {
		f := append([]byte(nil), good...)
		f[off] = v
		return f
	}
	for name, f := range map[string][]byte{
		"short":      good[:59],
		"ethertype":  mut(12, 0x86),
		"options":    mut(14, 0x46),
		"tcp":        mut(23, 6),
		"fragment":   mut(20, 0x20),
		"magic":      mut(offMagic, 0),
		"ip length":  mut(17, 200),
		"udp length": mut(39, 30),
	} {
		if _, ok := ParseProbe(f); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// Ethernet padding after the datagram is fine.
	if _, ok := ParseProbe(append(append([]byte(nil), good...), 0, 0, 0, 0)); !ok {
		t.Error("padded frame rejected")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"small", Config{Size: 59}},
		{"big", Config{Size: 9001}},
		{"rate", Config{Rate: -1}},
		{"flows", Config{Flows: MaxFlows + 1}},
		{"burst", Config{Burst: MaxBurst + 1}},
		{"mac", Config{SrcMAC: net.HardwareAddr{1, 2, 3}}},
		{"ipv6", Config{DstIP: netip.MustParseAddr("::1")}},
		{"mode", Config{Mode: 9}},
		{"vary", Config{Vary: 0x80}},
		{"interval", Config{Interval: 1}},
	} {
		if _, err := tc.cfg.withDefaults(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		if _, err := BuildFrame(tc.cfg, 0, 0, 0); err == nil {
			t.Errorf("%s: BuildFrame: no error", tc.name)
		}
	}
	if _, err := BuildFrame(Config{Flows: 2}, 2, 0, 0); err == nil {
		t.Error("flow out of range: no error")
	}
}
