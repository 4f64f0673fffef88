package bpfport

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// vxRun segments super-frame f and lays its segments out as a UDP_GRO run
// would: each behind a VXLAN header, seg bytes apart.
func vxRun(t *testing.T, f []byte, o Offload, vni uint32) ([]byte, int) {
	t.Helper()
	n := SoftSegments(f, o)
	seg := vxlanHdrLen + SoftSegmentLen(f, o, 0)
	var run []byte
	for s := 0; s < n; s++ {
		d := make([]byte, vxlanHdrLen+SoftSegmentLen(f, o, s))
		putVXLANHeader(d, vni)
		WriteSoftSegment(d[vxlanHdrLen:], f, o, s)
		run = append(run, d...)
	}
	return run, seg
}

func TestCoalesceTCP(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		f, o := gsoTestFrame(ipv6, false, 4500) // 1000-byte segments, the last 500
		hdr := 54
		if ipv6 {
			hdr = 74
		}
		run, seg := vxRun(t, f, o, 77)
		vni, sf, so, ok := coalesceTCP(bytes.Clone(run), seg)
		if !ok || vni != 77 {
			t.Fatalf("ipv6=%v: run not coalesced", ipv6)
		}
		if !bytes.Equal(sf[hdr:], f[hdr:]) || len(sf) != len(f) {
			t.Errorf("ipv6=%v: payload differs", ipv6)
		}
		if so.GSOSize != 1000 || so.GSOType&^GSOECN != o.GSOType || so.CsumStart != o.CsumStart || so.Flags != OffloadNeedsCsum {
			t.Errorf("ipv6=%v: offload %+v", ipv6, so)
		}
		// Segmenting the result again gives the segments that were sent.
		again, _ := vxRun(t, sf, so, 77)
		if !bytes.Equal(again, run) {
			t.Errorf("ipv6=%v: the coalesced super-frame does not segment into the run", ipv6)
		}
		// Runs that are not one flow's consecutive, intact segments are
		// left alone.
		l4 := int(o.CsumStart) + vxlanHdrLen
		for name, spoil := range map[string]func(r []byte){
			"gap":          func(r []byte) { binary.BigEndian.PutUint32(r[seg+l4+4:], 7) },
			"checksum":     func(r []byte) { r[2*seg+l4+30] ^= 1 },
			"other port":   func(r []byte) { r[seg+l4] ^= 1 },
			"other vni":    func(r []byte) { r[seg+6] ^= 1 },
			"syn":          func(r []byte) { r[l4+13] |= tcpSYN },
			"psh not last": func(r []byte) { r[seg+l4+13] |= tcpPSH },
			"other mac":    func(r []byte) { r[seg+vxlanHdrLen] ^= 2 },
		} {
			r := bytes.Clone(run)
			spoil(r)
			before := bytes.Clone(r)
			if _, _, _, ok := coalesceTCP(r, seg); ok {
				t.Errorf("ipv6=%v: %s: coalesced", ipv6, name)
			}
			if !bytes.Equal(r, before) {
				t.Errorf("ipv6=%v: %s: a refused run was changed", ipv6, name)
			}
		}
	}
	// A run whose last datagram is shorter than a VXLAN header (what a
	// peer can send) is refused, not read past its end (found by
	// FuzzCoalesceTCP: it panicked).
	f, o := gsoTestFrame(false, false, 3000)
	run, seg := vxRun(t, f, o, 1)
	for _, tail := range []int{1, 4, 7, 8, 30} {
		r := append(bytes.Clone(run[:seg]), make([]byte, tail)...)
		if _, _, _, ok := coalesceTCP(r, seg); ok {
			t.Errorf("a run ending in a %d-byte datagram was coalesced", tail)
		}
	}
	// UDP and non-IP runs are never joined.
	f, o = gsoTestFrame(false, true, 3000)
	run, seg = vxRun(t, f, o, 1)
	if _, _, _, ok := coalesceTCP(run, seg); ok {
		t.Errorf("a UDP run was coalesced")
	}
	var l2 []byte
	for i := 0; i < 3; i++ {
		d := make([]byte, vxlanHdrLen+100)
		putVXLANHeader(d, 1)
		copy(d[vxlanHdrLen:], testFrame(100, uint32(i)))
		l2 = append(l2, d...)
	}
	if _, _, _, ok := coalesceTCP(l2, 108); ok {
		t.Errorf("a run of non-IP frames was coalesced")
	}
}

func FuzzCoalesceTCP(f *testing.F) {
	sf, o := gsoTestFrame(false, false, 3000)
	n := SoftSegments(sf, o)
	var run []byte
	for s := 0; s < n; s++ {
		d := make([]byte, vxlanHdrLen+SoftSegmentLen(sf, o, s))
		putVXLANHeader(d, 1)
		WriteSoftSegment(d[vxlanHdrLen:], sf, o, s)
		run = append(run, d...)
	}
	f.Add(run, vxlanHdrLen+SoftSegmentLen(sf, o, 0))
	f.Fuzz(func(t *testing.T, data []byte, seg int) {
		if seg <= 0 || seg > 1<<16 {
			return
		}
		before := bytes.Clone(data)
		_, sf, so, ok := coalesceTCP(data, seg)
		if !ok {
			if !bytes.Equal(data, before) {
				t.Fatal("a refused run was changed")
			}
			return
		}
		// What it returns describes itself: it segments.
		if SoftSegments(sf, so) < 2 {
			t.Fatalf("coalesced into %+v, which does not segment", so)
		}
	})
}
