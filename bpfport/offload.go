package bpfport

import "encoding/binary"

// Software completion of offloads. Frames that a local sender (veth peer,
// TAP, a GRO-ing NIC) hands to a packet socket can carry a partial checksum
// (only the pseudo-header sum is filled in) or be one GSO "super frame"
// carrying many MSS-sized segments. A switch must forward finished frames,
// so the receive path completes them using the virtio_net_hdr the kernel
// prepends with PACKET_VNET_HDR / IFF_VNET_HDR.

// virtio_net_hdr field values (include/uapi/linux/virtio_net.h).
const (
	vnetHdrLen        = 10
	vnetFlagNeedsCsum = 1
	gsoNone           = 0
	gsoTCPv4          = 1
	gsoUDP            = 3 // UFO: IP fragmentation, not supported
	gsoTCPv6          = 4
	gsoUDPL4          = 5
	gsoECN            = 0x80
)

// vnetHdr is a decoded virtio_net_hdr (native byte order, as the kernel
// writes it for packet sockets and TAP).
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func parseVnetHdr(b []byte) vnetHdr {
	_ = b[9]
	return vnetHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// csumAdd adds b to a ones' complement running sum (not folded).
func csumAdd(sum uint64, b []byte) uint64 {
	for len(b) >= 32 {
		v0 := binary.BigEndian.Uint64(b)
		v1 := binary.BigEndian.Uint64(b[8:])
		v2 := binary.BigEndian.Uint64(b[16:])
		v3 := binary.BigEndian.Uint64(b[24:])
		sum += v0>>32 + v0&0xffffffff + v1>>32 + v1&0xffffffff +
			v2>>32 + v2&0xffffffff + v3>>32 + v3&0xffffffff
		b = b[32:]
	}
	for len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// csumFold folds a running sum to 16 bits (not complemented).
func csumFold(sum uint64) uint16 {
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	return uint16(sum)
}

// finishChecksum completes a partial checksum in place: the 16-bit field at
// start+off already holds the folded pseudo-header sum, so the checksum is
// the complement of the sum over f[start:].
func finishChecksum(f []byte, start, off int) bool {
	if start < 0 || start+off+2 > len(f) {
		return false
	}
	c := ^csumFold(csumAdd(0, f[start:]))
	if c == 0 && off == 6 { // UDP: zero means "no checksum"
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[start+off:], c)
	return true
}

// gsoFrame describes a parsed GSO super frame.
type gsoFrame struct {
	l3, l4, hdrLen int // offsets: network header, transport header, payload
	ipv6           bool
	udp            bool
	mss            int
	nseg           int
}

// parseGSO validates a GSO frame and returns its layout.
func parseGSO(f []byte, h vnetHdr) (gsoFrame, bool) {
	var g gsoFrame
	t := h.gsoType &^ gsoECN
	switch t {
	case gsoTCPv4, gsoTCPv6, gsoUDPL4:
	default:
		return g, false
	}
	if len(f) < 14 || h.gsoSize == 0 {
		return g, false
	}
	l3 := 12
	et := binary.BigEndian.Uint16(f[l3:])
	for (et == 0x8100 || et == 0x88a8) && l3+6 <= len(f) {
		l3 += 4
		et = binary.BigEndian.Uint16(f[l3:])
	}
	l3 += 2
	switch et {
	case 0x0800:
		if l3+20 > len(f) || f[l3]>>4 != 4 {
			return g, false
		}
	case 0x86dd:
		if l3+40 > len(f) || f[l3]>>4 != 6 {
			return g, false
		}
		g.ipv6 = true
	default:
		return g, false
	}
	l4 := int(h.csumStart)
	if !g.ipv6 {
		l4 = l3 + int(f[l3]&0xf)*4
		if l4 < l3+20 {
			return g, false
		}
	} else if l4 < l3+40 {
		return g, false
	}
	if t == gsoUDPL4 {
		g.udp = true
		g.hdrLen = l4 + 8
	} else {
		if l4+20 > len(f) {
			return g, false
		}
		g.hdrLen = l4 + int(f[l4+12]>>4)*4
		if g.hdrLen < l4+20 {
			return g, false
		}
	}
	if g.hdrLen > len(f) || g.hdrLen < l4+8 {
		return g, false
	}
	g.l3, g.l4, g.mss = l3, l4, int(h.gsoSize)
	g.nseg = (len(f) - g.hdrLen + g.mss - 1) / g.mss
	if g.nseg == 0 {
		g.nseg = 1
	}
	return g, true
}

// segLen is the length of segment i.
func (g *gsoFrame) segLen(f []byte, i int) int {
	pl := len(f) - g.hdrLen - i*g.mss
	if pl > g.mss {
		pl = g.mss
	}
	return g.hdrLen + pl
}

// writeSegment builds segment i of f into dst (len(dst) == g.segLen(f, i))
// with finished IP and transport checksums.
func (g *gsoFrame) writeSegment(dst, f []byte, i int) {
	copy(dst, f[:g.hdrLen])
	poff := g.hdrLen + i*g.mss
	copy(dst[g.hdrLen:], f[poff:poff+len(dst)-g.hdrLen])
	l3, l4 := g.l3, g.l4
	l4len := len(dst) - l4
	var sum uint64
	if g.ipv6 {
		binary.BigEndian.PutUint16(dst[l3+4:], uint16(len(dst)-l3-40))
		sum = csumAdd(0, dst[l3+8:l3+40])
	} else {
		binary.BigEndian.PutUint16(dst[l3+2:], uint16(len(dst)-l3))
		id := binary.BigEndian.Uint16(f[l3+4:])
		binary.BigEndian.PutUint16(dst[l3+4:], id+uint16(i))
		dst[l3+10], dst[l3+11] = 0, 0
		ihl := int(dst[l3]&0xf) * 4
		binary.BigEndian.PutUint16(dst[l3+10:], ^csumFold(csumAdd(0, dst[l3:l3+ihl])))
		sum = csumAdd(0, dst[l3+12:l3+20])
	}
	var csumOff int
	if g.udp {
		sum += 17
		binary.BigEndian.PutUint16(dst[l4+4:], uint16(l4len))
		csumOff = 6
	} else {
		sum += 6
		seq := binary.BigEndian.Uint32(f[l4+4:])
		binary.BigEndian.PutUint32(dst[l4+4:], seq+uint32(i*g.mss))
		flags := dst[l4+13]
		if i != g.nseg-1 {
			flags &^= 0x09 // FIN, PSH only on the last segment
		}
		if i != 0 {
			flags &^= 0x80 // CWR only on the first
		}
		dst[l4+13] = flags
		csumOff = 16
	}
	sum += uint64(l4len)
	dst[l4+csumOff], dst[l4+csumOff+1] = 0, 0
	c := ^csumFold(csumAdd(sum, dst[l4:]))
	if c == 0 && g.udp {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(dst[l4+csumOff:], c)
}
