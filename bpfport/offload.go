package bpfport

import "encoding/binary"

// Offloads. Frames that a local sender (veth peer, TAP, a GRO-ing NIC)
// hands to a packet socket can carry a partial checksum (only the
// pseudo-header sum is filled in) or be one GSO "super-frame" carrying many
// MSS-sized segments; the kernel describes them with the virtio_net_hdr it
// prepends with PACKET_VNET_HDR / IFF_VNET_HDR. The switch passes them on
// whole to ports that take them (AF_PACKET and TAP: the kernel, or the
// device, finishes them as late as possible, as for the Linux bridge) and
// finishes them in software only for ports that cannot (virtual ports, a
// TX ring).

// Offload is a frame's pending offload work, as struct virtio_net_hdr
// describes it (include/uapi/linux/virtio_net.h): a partial checksum the
// receiver of the frame must finish (Flags&OffloadNeedsCsum: the 16-bit
// field at CsumStart+CsumOffset holds the pseudo-header sum, the checksum
// covers the frame from CsumStart), and/or a GSO super-frame (GSOType not
// GSONone) to be cut into segments of GSOSize payload bytes. The zero value
// is a finished frame.
type Offload struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers (a hint; the segmenter computes its own)
	GSOSize    uint16 // payload bytes per segment (MSS)
	CsumStart  uint16
	CsumOffset uint16
}

// Offload flags and GSO types (virtio_net_hdr values).
const (
	OffloadNeedsCsum = 1
	GSONone          = 0
	GSOTCPv4         = 1
	GSOUDP           = 3 // UFO (IP fragmentation): not supported, such frames are dropped
	GSOTCPv6         = 4
	GSOUDPL4         = 5
	GSOECN           = 0x80
)

// vnetHdrLen is the size of struct virtio_net_hdr.
const vnetHdrLen = 10

// Pending reports whether the frame is not finished.
func (o Offload) Pending() bool { return o.Flags != 0 || o.GSOType != 0 }

// GSO reports whether the frame is a super-frame.
func (o Offload) GSO() bool { return o.GSOType&^GSOECN != GSONone }

// parseVnetHdr decodes a virtio_net_hdr (native byte order, as the kernel
// writes it for packet sockets and TAP).
func parseVnetHdr(b []byte) Offload {
	_ = b[9]
	return Offload{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.NativeEndian.Uint16(b[2:]),
		GSOSize:    binary.NativeEndian.Uint16(b[4:]),
		CsumStart:  binary.NativeEndian.Uint16(b[6:]),
		CsumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// putVnetHdr encodes o into b[:10].
func putVnetHdr(b []byte, o Offload) {
	_ = b[9]
	b[0], b[1] = o.Flags, o.GSOType
	binary.NativeEndian.PutUint16(b[2:], o.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], o.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], o.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], o.CsumOffset)
}

// MaxSuperFrame is the longest super-frame ports accept: a 64 KiB IP
// packet behind an Ethernet header and a VLAN tag.
const MaxSuperFrame = 65535 + 18

// WireLen is the length of the longest frame f puts on the wire: its own
// length when it is finished, its largest segment (headers plus GSOSize)
// when it is a super-frame. It returns -1 for a super-frame whose headers
// do not describe it (it cannot be segmented).
func WireLen(f []byte, o Offload) int {
	if !o.GSO() {
		return len(f)
	}
	return superWireLen(f, o)
}

// superWireLen is WireLen of a super-frame, apart so that WireLen inlines
// (and does not pay for parseGSO's frame on every finished frame).
func superWireLen(f []byte, o Offload) int {
	g, ok := parseGSO(f, o)
	if !ok {
		return -1
	}
	return g.segLen(f, 0)
}

// TxAccepts reports whether a port whose MTU is mtu sends f: at least an
// Ethernet header, at most MTU+14 bytes on the wire (MTU+18 with a VLAN
// tag), where a super-frame's segments count, not the super-frame.
func TxAccepts(f []byte, o Offload, mtu int) bool {
	if len(f) < 14 {
		return false
	}
	if o.GSO() && len(f) > MaxSuperFrame {
		return false
	}
	l := WireLen(f, o)
	if l < 0 {
		return false
	}
	if l <= mtu+14 {
		return true
	}
	if l > mtu+18 {
		return false
	}
	et := binary.BigEndian.Uint16(f[12:])
	return et == 0x8100 || et == 0x88a8
}

// plainFits reports whether f is the usual frame: finished (no offload)
// and 14 to mtu+14 bytes long, which TxAccepts accepts. It inlines, so a
// send loop decides the common case without a call (a call in Go's ABI
// spills every live register of the loop).
func plainFits(f []byte, o Offload, mtu int) bool {
	return uint(len(f)-14) <= uint(mtu) && o.Flags|o.GSOType == 0
}

// offloadAt returns offl[i], or a finished frame's Offload when offl is nil.
func offloadAt(offl []Offload, i int) Offload {
	if offl == nil {
		return Offload{}
	}
	return offl[i]
}

// SoftSegments returns how many finished frames a port that cannot take
// offloads sends for f, or 0 if f cannot be finished (a super-frame whose
// headers do not describe it, or a checksum outside the frame).
func SoftSegments(f []byte, o Offload) int {
	if o.GSO() {
		g, ok := parseGSO(f, o)
		if !ok {
			return 0
		}
		return g.nseg
	}
	if o.Flags&OffloadNeedsCsum != 0 && int(o.CsumStart)+int(o.CsumOffset)+2 > len(f) {
		return 0
	}
	return 1
}

// SoftSegmentLen is the length of finished frame i of f (see SoftSegments).
func SoftSegmentLen(f []byte, o Offload, i int) int {
	if o.GSO() {
		g, _ := parseGSO(f, o)
		return g.segLen(f, i)
	}
	return len(f)
}

// WriteSoftSegment writes finished frame i of f into dst, whose length is
// SoftSegmentLen(f, o, i): segment i of a super-frame with its IP and
// transport checksums, or f with its partial checksum finished. f is not
// modified.
func WriteSoftSegment(dst, f []byte, o Offload, i int) {
	if o.GSO() {
		g, _ := parseGSO(f, o)
		g.writeSegment(dst, f, i)
		return
	}
	copy(dst, f)
	if o.Flags&OffloadNeedsCsum != 0 {
		finishChecksum(dst, int(o.CsumStart), int(o.CsumOffset))
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
func parseGSO(f []byte, h Offload) (gsoFrame, bool) {
	var g gsoFrame
	t := h.GSOType &^ GSOECN
	switch t {
	case GSOTCPv4, GSOTCPv6, GSOUDPL4:
	default:
		return g, false
	}
	if len(f) < 14 || h.GSOSize == 0 {
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
	l4 := int(h.CsumStart)
	if !g.ipv6 {
		l4 = l3 + int(f[l3]&0xf)*4
		if l4 < l3+20 {
			return g, false
		}
	} else if l4 < l3+40 {
		return g, false
	}
	if t == GSOUDPL4 {
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
	g.l3, g.l4, g.mss = l3, l4, int(h.GSOSize)
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
