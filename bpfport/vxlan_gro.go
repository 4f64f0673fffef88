package bpfport

import "encoding/binary"

// Receive coalescing. A VXLAN peer that segments a TCP super-frame sends
// its segments as one UDP_SEGMENT run, which the kernel hands over as one
// UDP_GRO message when the datagrams arrive together. Joining such a run
// back into one inner super-frame (as the kernel's GRO does for TCP)
// lets the switch pass it on whole to a port that takes offloads: the
// host behind it receives one super-frame instead of dozens of segments
// (and acknowledges it once).

// coalesceTCP joins the run data (datagrams of seg bytes, the last one
// possibly shorter, each a VXLAN header and an inner frame) into one inner
// TCP super-frame, in place, when the datagrams are consecutive segments
// of one TCP flow with valid checksums: identical Ethernet, IP and TCP
// headers but for lengths, IPv4 ids, checksums, sequence numbers (each the
// previous plus the segment size) and the CWR (first only), FIN and PSH
// (last only) flags. It returns the VNI, the super-frame (a slice of
// data) and the Offload that describes it (segments of the first's
// payload size, a partial checksum). When it returns false, data is
// unchanged.
func coalesceTCP(data []byte, seg int) (uint32, []byte, Offload, bool) {
	n := (len(data) + seg - 1) / seg
	if n < 2 || seg <= vxlanHdrLen+14 {
		return 0, nil, Offload{}, false
	}
	first := data[:seg]
	vni, ok := parseVXLANHeader(first)
	if !ok {
		return 0, nil, Offload{}, false
	}
	f0 := first[vxlanHdrLen:]
	x, ok := innerL4(f0)
	l3, l4, end, v6 := x.l3, x.l4, x.end, x.v6
	if !ok || !x.tcp || end != len(f0) || l4+20 > end {
		return 0, nil, Offload{}, false
	}
	hdr := l4 + int(f0[l4+12]>>4)*4
	mss := end - hdr
	if hdr < l4+20 || mss <= 0 || f0[l4+13]&(tcpSYN|tcpRST|tcpURG) != 0 {
		return 0, nil, Offload{}, false
	}
	seq0 := binary.BigEndian.Uint32(f0[l4+4:])
	total := 0
	for i := 0; i < n; i++ {
		dg := data[i*seg : min((i+1)*seg, len(data))]
		if len(dg) < vxlanHdrLen+hdr+1 || [vxlanHdrLen]byte(dg) != [vxlanHdrLen]byte(first) {
			return 0, nil, Offload{}, false // the last datagram may be short
		}
		f := dg[vxlanHdrLen:]
		pl := len(f) - hdr
		last := i == n-1
		if pl > mss || (!last && pl != mss) {
			return 0, nil, Offload{}, false
		}
		// Ethernet header (and VLAN tag) alike.
		if string(f[:l3]) != string(f0[:l3]) {
			return 0, nil, Offload{}, false
		}
		ip, ip0 := f[l3:l4], f0[l3:l4]
		if v6 {
			if string(ip[0:4]) != string(ip0[0:4]) || string(ip[6:40]) != string(ip0[6:40]) ||
				int(binary.BigEndian.Uint16(ip[4:])) != len(f)-l4 {
				return 0, nil, Offload{}, false
			}
		} else if string(ip[0:2]) != string(ip0[0:2]) || string(ip[6:10]) != string(ip0[6:10]) ||
			string(ip[12:]) != string(ip0[12:]) || int(binary.BigEndian.Uint16(ip[2:])) != len(f)-l3 ||
			csumFold(csumAdd(0, ip)) != 0xffff {
			return 0, nil, Offload{}, false
		}
		th, th0 := f[l4:hdr], f0[l4:hdr]
		if string(th[0:4]) != string(th0[0:4]) || string(th[8:13]) != string(th0[8:13]) ||
			string(th[14:16]) != string(th0[14:16]) || string(th[18:]) != string(th0[18:]) ||
			binary.BigEndian.Uint32(th[4:]) != seq0+uint32(i*mss) {
			return 0, nil, Offload{}, false
		}
		flags, flags0 := th[13], th0[13]
		if flags&^(tcpCWR|tcpFIN|tcpPSH) != flags0&^(tcpCWR|tcpFIN|tcpPSH) ||
			(!last && flags&(tcpFIN|tcpPSH) != 0) || (i > 0 && flags&tcpCWR != 0) {
			return 0, nil, Offload{}, false
		}
		if !l4ChecksumOK(f, l3, l4, v6) {
			return 0, nil, Offload{}, false
		}
		total += pl
	}
	if hdr-l3+total > 0xffff+boolInt(v6)*40 {
		return 0, nil, Offload{}, false
	}
	// Join the payloads behind the first segment.
	w := vxlanHdrLen + end
	var lastFlags byte
	for i := 1; i < n; i++ {
		dg := data[i*seg : min((i+1)*seg, len(data))]
		lastFlags = dg[vxlanHdrLen+l4+13]
		w += copy(data[w:], dg[vxlanHdrLen+hdr:])
	}
	f := data[vxlanHdrLen:w:w]
	if v6 {
		binary.BigEndian.PutUint16(f[l3+4:], uint16(len(f)-l4))
	} else {
		binary.BigEndian.PutUint16(f[l3+2:], uint16(len(f)-l3))
		f[l3+10], f[l3+11] = 0, 0
		binary.BigEndian.PutUint16(f[l3+10:], ^csumFold(csumAdd(0, f[l3:l4])))
	}
	f[l4+13] |= lastFlags & (tcpFIN | tcpPSH)
	// A partial checksum: the pseudo-header sum of the whole.
	x, _ = innerL4(f)
	binary.BigEndian.PutUint16(f[l4+16:], csumFold(x.pseudo))
	o := Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, HdrLen: uint16(hdr), GSOSize: uint16(mss),
		CsumStart: uint16(l4), CsumOffset: 16}
	if v6 {
		o.GSOType = GSOTCPv6
	}
	if f[l4+13]&tcpCWR != 0 {
		o.GSOType |= GSOECN
	}
	return vni, f, o, true
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpURG = 0x20
	tcpCWR = 0x80
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// l4ChecksumOK verifies the TCP checksum of frame f (IP header at l3,
// TCP at l4, the IP packet ending with f).
func l4ChecksumOK(f []byte, l3, l4 int, v6 bool) bool {
	var sum uint64
	if v6 {
		sum = csumAdd(0, f[l3+8:l3+40])
	} else {
		sum = csumAdd(0, f[l3+12:l3+20])
	}
	sum += 6 + uint64(len(f)-l4)
	return csumFold(csumAdd(sum, f[l4:])) == 0xffff
}
