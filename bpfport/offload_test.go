package bpfport

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// gsoTestFrame builds a GSO frame (IPv4 or IPv6, TCP or UDP) with payload
// bytes and a partial transport checksum, as the kernel hands it over.
func gsoTestFrame(ipv6, udp bool, payload int) ([]byte, Offload) {
	var f []byte
	f = append(f, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1)
	l3 := 14
	var l4 int
	proto := byte(6)
	if udp {
		proto = 17
	}
	l4len := 20
	if udp {
		l4len = 8
	}
	if ipv6 {
		f = append(f, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len+payload))
		ip[6], ip[7] = proto, 64
		ip[8], ip[23] = 0xfd, 1
		ip[24], ip[39] = 0xfd, 2
		f = append(f, ip...)
		l4 = l3 + 40
	} else {
		f = append(f, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len+payload))
		binary.BigEndian.PutUint16(ip[4:], 1000)
		copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		f = append(f, ip...)
		l4 = l3 + 20
	}
	th := make([]byte, l4len)
	binary.BigEndian.PutUint16(th, 40000)
	binary.BigEndian.PutUint16(th[2:], 5001)
	if !udp {
		binary.BigEndian.PutUint32(th[4:], 0xfffff000) // wraps
		th[12] = 5 << 4
		th[13] = 0x18 | 0x01 | 0x80 // PSH ACK FIN CWR
	}
	f = append(f, th...)
	for i := 0; i < payload; i++ {
		f = append(f, byte(i*7))
	}
	h := Offload{Flags: OffloadNeedsCsum, GSOSize: 1000, CsumStart: uint16(l4)}
	switch {
	case udp:
		h.GSOType, h.CsumOffset = GSOUDPL4, 6
	case ipv6:
		h.GSOType, h.CsumOffset = GSOTCPv6, 16
	default:
		h.GSOType, h.CsumOffset = GSOTCPv4, 16
	}
	return f, h
}

// verifyL4 checks the IP and transport checksums of a finished frame.
func verifyL4(t *testing.T, f []byte, ipv6 bool, l4 int, proto byte) {
	t.Helper()
	var sum uint64
	if ipv6 {
		sum = csumAdd(0, f[14+8:14+40])
	} else {
		if c := csumFold(csumAdd(0, f[14:34])); c != 0xffff {
			t.Errorf("IPv4 header checksum does not verify (%#x)", c)
		}
		sum = csumAdd(0, f[14+12:14+20])
	}
	sum += uint64(proto) + uint64(len(f)-l4)
	if c := csumFold(csumAdd(sum, f[l4:])); c != 0xffff {
		t.Errorf("transport checksum does not verify (%#x)", c)
	}
}

func TestSegmentGSO(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ipv6, udp bool
	}{{"tcp4", false, false}, {"tcp6", true, false}, {"udp4", false, true}, {"udp6", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := gsoTestFrame(tc.ipv6, tc.udp, 3500)
			g, ok := parseGSO(f, h)
			if !ok {
				t.Fatal("parseGSO refused the frame")
			}
			if g.nseg != 4 {
				t.Fatalf("nseg %d, want 4", g.nseg)
			}
			var payload []byte
			for i := 0; i < g.nseg; i++ {
				seg := make([]byte, g.segLen(f, i))
				g.writeSegment(seg, f, i)
				proto := byte(6)
				if tc.udp {
					proto = 17
				}
				verifyL4(t, seg, tc.ipv6, g.l4, proto)
				payload = append(payload, seg[g.hdrLen:]...)
				if tc.ipv6 {
					if got := int(binary.BigEndian.Uint16(seg[18:])); got != len(seg)-54 {
						t.Errorf("seg %d: IPv6 payload length %d", i, got)
					}
				} else if got := int(binary.BigEndian.Uint16(seg[16:])); got != len(seg)-14 {
					t.Errorf("seg %d: IPv4 total length %d", i, got)
				}
				if !tc.udp {
					tcp := seg[g.l4:]
					if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(i*1000) {
						t.Errorf("seg %d: seq %#x", i, seq)
					}
					last, first := i == g.nseg-1, i == 0
					if fin := tcp[13]&1 != 0; fin != last {
						t.Errorf("seg %d: FIN %v", i, fin)
					}
					if cwr := tcp[13]&0x80 != 0; cwr != first {
						t.Errorf("seg %d: CWR %v", i, cwr)
					}
				}
			}
			if !bytes.Equal(payload, f[g.hdrLen:]) {
				t.Error("segments do not add up to the payload")
			}
		})
	}
}

func TestFinishChecksum(t *testing.T) {
	f, h := gsoTestFrame(false, false, 501)
	// Partial checksum as the kernel leaves it: the pseudo-header sum.
	l4 := int(h.CsumStart)
	binary.BigEndian.PutUint16(f[24:], ^csumFold(csumAdd(0, f[14:34])))
	ps := csumAdd(0, f[26:34]) + 6 + uint64(len(f)-l4)
	binary.BigEndian.PutUint16(f[l4+16:], csumFold(ps))
	if !finishChecksum(f, l4, 16) {
		t.Fatal("refused")
	}
	verifyL4(t, f, false, l4, 6)
	if finishChecksum(f, len(f)-1, 16) {
		t.Error("out-of-range checksum offset accepted")
	}
}

func FuzzSegmentGSO(f *testing.F) {
	fr, h := gsoTestFrame(false, false, 3000)
	f.Add(fr, h.GSOType, h.GSOSize, h.CsumStart)
	fr, h = gsoTestFrame(true, true, 100)
	f.Add(fr, h.GSOType, h.GSOSize, h.CsumStart)
	f.Fuzz(func(t *testing.T, frame []byte, gsoType uint8, gsoSize, csumStart uint16) {
		h := Offload{Flags: 1, GSOType: gsoType, GSOSize: gsoSize, CsumStart: csumStart}
		g, ok := parseGSO(frame, h)
		if !ok {
			return
		}
		if g.nseg > 70000 {
			t.Skip()
		}
		for i := 0; i < g.nseg; i++ {
			seg := make([]byte, g.segLen(frame, i))
			g.writeSegment(seg, frame, i)
		}
	})
}
