package bpfport

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestVXLANHeader(t *testing.T) {
	var h [8]byte
	putVXLANHeader(h[:], 0xabcdef)
	if want := [8]byte{0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0}; h != want {
		t.Fatalf("header % x, want % x", h, want)
	}
	for _, tc := range []struct {
		name string
		have []byte
		vni  uint32
		ok   bool
	}{
		{"valid", []byte{0x08, 0, 0, 0, 0, 0, 42, 0}, 42, true},
		{"reserved bits ignored", []byte{0x88, 0xff, 0xff, 0xff, 0, 0, 42, 0xff}, 42, true},
		{"no I flag", []byte{0x00, 0, 0, 0, 0, 0, 42, 0}, 0, false},
		{"short", []byte{0x08, 0, 0, 0, 0, 0, 42}, 0, false},
		{"GPE ethernet", []byte{0x0c, 0, 0, 3, 0, 0, 42, 0}, 42, true},
		{"GPE IPv4", []byte{0x0c, 0, 0, 1, 0, 0, 42, 0}, 0, false},
		{"max VNI", []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}, maxVNI, true},
	} {
		vni, ok := parseVXLANHeader(tc.have)
		if ok != tc.ok || vni != tc.vni {
			t.Errorf("%s: got %d %v, want %d %v", tc.name, vni, ok, tc.vni, tc.ok)
		}
	}
}

func TestVXLANConfig(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6 := netip.MustParseAddr("fd00::1")
	for _, tc := range []struct {
		name string
		cfg  VXLANConfig
		err  string
	}{
		{"defaults", VXLANConfig{VNI: 1, Remotes: []netip.Addr{a4}}, ""},
		{"local only", VXLANConfig{VNI: 1, Local: a4}, ""},
		{"nothing", VXLANConfig{VNI: 1}, "no remote and no local"},
		{"vni", VXLANConfig{VNI: 1 << 24, Remotes: []netip.Addr{a4}}, "VNI"},
		{"mixed families", VXLANConfig{Remotes: []netip.Addr{a4, a6}}, "one family"},
		{"local family", VXLANConfig{Local: a6, Remotes: []netip.Addr{a4}}, "one family"},
		{"remote is local", VXLANConfig{Local: a4, Remotes: []netip.Addr{a4}}, "is the local address"},
		{"multicast", VXLANConfig{Remotes: []netip.Addr{netip.MustParseAddr("239.1.1.1")}}, "multicast"},
		{"link-local", VXLANConfig{Remotes: []netip.Addr{netip.MustParseAddr("fe80::1")}}, "link-local"},
		{"unspecified", VXLANConfig{Remotes: []netip.Addr{netip.IPv4Unspecified()}}, "unspecified"},
		{"ttl", VXLANConfig{Remotes: []netip.Addr{a4}, TTL: 256}, "TTL"},
		{"src ports", VXLANConfig{Remotes: []netip.Addr{a4}, SrcPorts: 65}, "source ports"},
	} {
		c, err := tc.cfg.withDefaults()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if c.DstPort != 4789 || c.TTL != 64 || c.SrcPorts != DefaultVXLANSrcPorts || c.AgeTime != DefaultVXLANAgeTime {
				t.Errorf("%s: defaults not filled: %+v", tc.name, c)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
		}
	}
	c, err := VXLANConfig{Remotes: []netip.Addr{a4, b4, a4, netip.MustParseAddr("::ffff:10.0.0.2")}}.withDefaults()
	if err != nil || len(c.Remotes) != 2 {
		t.Errorf("duplicates kept: %v %v", c.Remotes, err)
	}
}

// vxFrame builds an Ethernet frame: IPv4 TCP/UDP when proto is 6 or 17,
// else an unknown EtherType.
func vxFrame(dst, src net.HardwareAddr, proto byte, sip, dip [4]byte, sport, dport uint16, size int) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], src)
	if proto == 0 {
		binary.BigEndian.PutUint16(f[12:], 0x88b5)
		return f
	}
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], sip[:])
	copy(ip[16:], dip[:])
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	return f
}

func TestFlowHash(t *testing.T) {
	m1, m2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	base := flowHash(vxFrame(m2, m1, 6, a, b, 1000, 80, 100))
	if h := flowHash(vxFrame(m2, m1, 6, a, b, 1000, 80, 1500)); h != base {
		t.Errorf("same flow, other length: hash %x != %x", h, base)
	}
	// The payload does not count.
	f := vxFrame(m2, m1, 6, a, b, 1000, 80, 100)
	f[80] = 0xff
	if h := flowHash(f); h != base {
		t.Errorf("payload changed the hash")
	}
	// Ports, addresses and protocol do; so do MACs of non-IP frames.
	distinct := map[uint32]string{base: "base"}
	for name, f := range map[string][]byte{
		"sport": vxFrame(m2, m1, 6, a, b, 1001, 80, 100),
		"dport": vxFrame(m2, m1, 6, a, b, 1000, 81, 100),
		"dst":   vxFrame(m2, m1, 6, a, [4]byte{10, 0, 0, 3}, 1000, 80, 100),
		"udp":   vxFrame(m2, m1, 17, a, b, 1000, 80, 100),
		"l2":    vxFrame(m2, m1, 0, a, b, 0, 0, 60),
		"l2mac": vxFrame(m1, m2, 0, a, b, 0, 0, 60),
	} {
		h := flowHash(f)
		if o, dup := distinct[h]; dup {
			t.Errorf("%s hashes like %s (%x)", name, o, h)
		}
		distinct[h] = name
	}
	// Many flows spread over the source ports.
	var used [DefaultVXLANSrcPorts]int
	for p := 0; p < 1600; p++ {
		h := flowHash(vxFrame(m2, m1, 17, a, b, uint16(10000+p), 4789, 60))
		used[uint64(h)*DefaultVXLANSrcPorts>>32]++
	}
	for i, n := range used {
		if n < 50 || n > 150 {
			t.Errorf("source port %d got %d of 1600 flows: %v", i, n, used)
			break
		}
	}
	if flowHash([]byte{1, 2}) != 0 {
		t.Errorf("runt")
	}
}

func TestVXLANFDB(t *testing.T) {
	r1, r2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	cfg, _ := VXLANConfig{Remotes: []netip.Addr{r1}, MaxEntries: 3, AgeTime: time.Second}.withDefaults()
	flood := []*vxRemote{newVXRemote(r1, 4789)}
	f := newVXFDB(cfg, flood)
	mac := func(i byte) []byte { return []byte{2, 0, 0, 0, 0, i} }
	now := int64(1e12)
	look := func(m []byte, at int64) netip.Addr {
		f.mu.RLock()
		defer f.mu.RUnlock()
		if r := f.lookup(m, at); r != nil {
			return r.addr
		}
		return netip.Addr{}
	}
	f.learn(mac(1), r2, now)
	if got := look(mac(1), now); got != r2 {
		t.Fatalf("learned %v, want %v", got, r2)
	}
	// A station that moves is relearned; group and zero sources are not.
	f.learn(mac(1), r1, now)
	if got := look(mac(1), now); got != r1 {
		t.Errorf("moved station: %v", got)
	}
	if f.m[[6]byte(mac(1))].remote != flood[0] {
		t.Errorf("a flood-list remote was not reused")
	}
	f.learn([]byte{1, 0, 0x5e, 0, 0, 1}, r1, now)
	f.learn(make([]byte, 6), r1, now)
	if len(f.m) != 1 {
		t.Errorf("group or zero source learned: %d entries", len(f.m))
	}
	// Aging: unknown after AgeTime, refreshed by traffic.
	f.learn(mac(1), r1, now+int64(900*time.Millisecond))
	if got := look(mac(1), now+int64(1800*time.Millisecond)); got != r1 {
		t.Errorf("refreshed station aged out")
	}
	if got := look(mac(1), now+int64(3*time.Second)); got.IsValid() {
		t.Errorf("stale station still known: %v", got)
	}
	// Static entries win over learning and never age.
	f.addStatic([6]byte(mac(2)), r2)
	f.learn(mac(2), r1, now)
	if got := look(mac(2), now+int64(time.Hour)); got != r2 {
		t.Errorf("static entry: %v", got)
	}
	// A full table learns nothing new until entries expire.
	f.learn(mac(3), r2, now)
	f.learn(mac(4), r2, now)
	if _, ok := f.m[[6]byte(mac(4))]; ok || len(f.m) != 3 {
		t.Errorf("table over its bound: %d entries", len(f.m))
	}
	f.learn(mac(4), r2, now+int64(10*time.Second))
	if got := look(mac(4), now+int64(10*time.Second)); got != r2 {
		t.Errorf("not learned after expiry made room")
	}
	es := f.entries(now + int64(10*time.Second))
	if len(es) != 2 || !es[0].Static || es[0].MAC.String() != "02:00:00:00:00:02" || es[1].Remote != r2 {
		t.Errorf("entries: %+v", es)
	}
	if n := f.flushLearned(); n != 1 || len(f.m) != 1 {
		t.Errorf("flush: %d, %d left", n, len(f.m))
	}
	if !f.del([6]byte(mac(2))) || f.del([6]byte(mac(2))) {
		t.Errorf("delete")
	}
	if _, err := parseStationMAC(net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}); err == nil {
		t.Errorf("group MAC accepted for a static entry")
	}
}

func TestVXLANFDBLearnAllocs(t *testing.T) {
	r1 := netip.MustParseAddr("10.0.0.1")
	cfg, _ := VXLANConfig{Remotes: []netip.Addr{r1}}.withDefaults()
	f := newVXFDB(cfg, []*vxRemote{newVXRemote(r1, 4789)})
	mac := []byte{2, 0, 0, 0, 0, 1}
	now := int64(1e12)
	f.learn(mac, r1, now)
	if n := testing.AllocsPerRun(100, func() {
		now += int64(time.Second)
		f.learn(mac, r1, now)
		f.mu.RLock()
		f.lookup(mac, now)
		f.mu.RUnlock()
	}); n != 0 {
		t.Errorf("learning a known station allocates %v times", n)
	}
}

// partialFrame returns a finished single-segment TCP frame and the same
// frame with its checksum left partial (the pseudo-header sum), as a
// local sender hands it over.
func partialFrame(t *testing.T, ipv6 bool) (finished, partial []byte) {
	f, o := gsoTestFrame(ipv6, false, 500)
	o.GSOType, o.GSOSize = GSONone, 0
	if !ipv6 {
		binary.BigEndian.PutUint16(f[24:], ^csumFold(csumAdd(0, f[14:34])))
	}
	partial = bytes.Clone(f)
	// Fill in the pseudo-header sum, as the kernel does for
	// CHECKSUM_PARTIAL.
	x, ok := innerL4(partial)
	if !ok {
		t.Fatal("innerL4")
	}
	binary.BigEndian.PutUint16(partial[int(o.CsumStart)+int(o.CsumOffset):], csumFold(x.pseudo))
	finished = bytes.Clone(partial)
	WriteSoftSegment(finished, partial, o, 0)
	return finished, partial
}

func TestFinishPartialChecksum(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		finished, partial := partialFrame(t, ipv6)
		l4 := 34
		if ipv6 {
			l4 = 54
		}
		f := bytes.Clone(partial)
		if !finishPartialChecksum(f) || !bytes.Equal(f, finished) {
			t.Errorf("ipv6=%v: partial checksum not finished", ipv6)
		}
		verifyL4(t, f, ipv6, l4, 6)
		if finishPartialChecksum(f) {
			t.Errorf("ipv6=%v: a finished checksum was changed", ipv6)
		}
		// A wrong checksum that is not the pseudo-header sum is left
		// alone (the receiver drops it).
		f[len(f)-1] ^= 0xff
		g := bytes.Clone(f)
		if finishPartialChecksum(f) || !bytes.Equal(f, g) {
			t.Errorf("ipv6=%v: a corrupt frame was changed", ipv6)
		}
	}
	if finishPartialChecksum(testFrame(60, 1)) {
		t.Errorf("a non-IP frame was changed")
	}
}

func TestInnerSuperFrame(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		f, want := gsoTestFrame(ipv6, false, 5000)
		max := 1054 // 1000-byte payloads behind 54 (74) bytes of headers
		if ipv6 {
			max = 1074
		}
		o, ok := innerSuperFrame(f, max)
		if !ok || o.GSOType != want.GSOType || o.GSOSize != 1000 || o.CsumStart != want.CsumStart ||
			o.CsumOffset != want.CsumOffset || o.Flags != OffloadNeedsCsum {
			t.Errorf("ipv6=%v: %+v %v, want %+v", ipv6, o, ok, want)
		}
		if n := SoftSegments(f, o); n != 5 {
			t.Errorf("ipv6=%v: %d segments", ipv6, n)
		}
		// A frame with trailing bytes beyond its IP packet is not one.
		if _, ok := innerSuperFrame(append(bytes.Clone(f), 0), max); ok {
			t.Errorf("ipv6=%v: padded frame taken for a super-frame", ipv6)
		}
	}
	if f, _ := gsoTestFrame(false, true, 5000); true {
		if _, ok := innerSuperFrame(f, 1000); ok {
			t.Errorf("a UDP super-frame was recognized (its segment size cannot be known)")
		}
	}
}

// FuzzInnerFrame: the parsers of received inner frames never panic, never
// touch a frame they do not recognize, and what they recognize as a
// super-frame segments.
func FuzzInnerFrame(f *testing.F) {
	for _, ipv6 := range []bool{false, true} {
		sf, _ := gsoTestFrame(ipv6, false, 3000)
		f.Add(sf, 1014)
		_, partial := partialFrame(&testing.T{}, ipv6)
		f.Add(partial, 1500)
	}
	f.Add(testFrame(60, 1), 1514)
	f.Fuzz(func(t *testing.T, frame []byte, maxFrame int) {
		if maxFrame < 0 || maxFrame > 1<<16 {
			return
		}
		flowHash(frame)
		vni, ok := parseVXLANHeader(frame)
		_, _ = vni, ok
		if o, ok := innerSuperFrame(frame, maxFrame); ok && SoftSegments(frame, o) == 0 {
			t.Fatalf("a super-frame that does not segment: %+v", o)
		}
		before := bytes.Clone(frame)
		if finishPartialChecksum(frame) {
			x, ok := innerL4(frame)
			if !ok || csumFold(csumAdd(x.pseudo, frame[x.l4:x.end])) != 0xffff {
				t.Fatal("a finished checksum does not verify")
			}
		} else if !bytes.Equal(frame, before) {
			t.Fatal("a frame left alone was changed")
		}
	})
}
