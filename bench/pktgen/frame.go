package pktgen

import (
	"encoding/binary"
	"net/netip"
)

// Probe layout (see the package documentation).
const (
	hdrLen      = 14 + 20 + 8 // Ethernet + IPv4 + UDP
	offIPID     = 14 + 4
	offMagic    = hdrLen
	offSeq      = hdrLen + 2
	offTime     = hdrLen + 10
	probeLen    = 18
	magic       = 0x7647
	etherIPv4   = 0x0800
	etherVLAN   = 0x8100
	etherQinQ   = 0x88a8
	ipProtoUDP  = 17
	ipFlagDF    = 0x4000
	defaultTTL  = 64
	vlanTagSize = 4
)

// flowHeader writes the 42 bytes of headers of flow i of cfg (defaults
// applied) for frames of cfg.Size bytes into h.
func flowHeader(h []byte, cfg *Config, i int) {
	_ = h[hdrLen-1]
	be := binary.BigEndian
	u := uint32(i)
	copy(h[0:6], cfg.DstMAC)
	copy(h[6:12], cfg.SrcMAC)
	if cfg.Vary&VaryDstMAC != 0 {
		addMAC(h[0:6], u)
	}
	if cfg.Vary&VarySrcMAC != 0 {
		addMAC(h[6:12], u)
	}
	be.PutUint16(h[12:], etherIPv4)

	ip := h[14:34]
	ip[0] = 0x45 // version 4, IHL 5
	ip[1] = 0    // DSCP/ECN
	be.PutUint16(ip[2:], uint16(cfg.Size-14))
	be.PutUint16(ip[4:], uint16(i)) // Identification: the flow id
	be.PutUint16(ip[6:], ipFlagDF)
	ip[8] = defaultTTL
	ip[9] = ipProtoUDP
	be.PutUint16(ip[10:], 0)
	src, dst := addr4(cfg.SrcIP), addr4(cfg.DstIP)
	if cfg.Vary&VarySrcIP != 0 {
		src += u
	}
	if cfg.Vary&VaryDstIP != 0 {
		dst += u
	}
	be.PutUint32(ip[12:], src)
	be.PutUint32(ip[16:], dst)
	be.PutUint16(ip[10:], ipChecksum(ip))

	udp := h[34:42]
	sp, dp := cfg.SrcPort, cfg.DstPort
	if cfg.Vary&VarySrcPort != 0 {
		sp += uint16(i)
	}
	if cfg.Vary&VaryDstPort != 0 {
		dp += uint16(i)
	}
	be.PutUint16(udp[0:], sp)
	be.PutUint16(udp[2:], dp)
	be.PutUint16(udp[4:], uint16(cfg.Size-34))
	be.PutUint16(udp[6:], 0) // no checksum (allowed for UDP over IPv4)
}

// addMAC adds v to the low 24 bits of a MAC address, leaving the first
// three bytes (and so the unicast and locally administered bits) alone.
func addMAC(m []byte, v uint32) {
	x := uint32(m[3])<<16 | uint32(m[4])<<8 | uint32(m[5])
	x += v
	m[3], m[4], m[5] = byte(x>>16), byte(x>>8), byte(x)
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// ipChecksum is the Internet checksum of an IPv4 header whose checksum
// field is zero.
func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// putProbe writes the probe (magic, sequence number, send time) of a
// frame whose headers are in place.
func putProbe(f []byte, seq uint64, t int64) {
	_ = f[offTime+7]
	binary.BigEndian.PutUint16(f[offMagic:], magic)
	binary.BigEndian.PutUint64(f[offSeq:], seq)
	binary.BigEndian.PutUint64(f[offTime:], uint64(t))
}

// Probe is what the sink reads from one of our frames.
type Probe struct {
	Flow uint16
	Seq  uint64
	Time int64 // ns since the Unix epoch
}

// ParseProbe reports whether f is a frame of ours and returns its probe.
// It accepts one 802.1Q / 802.1ad tag and frames longer than their IPv4
// datagram (Ethernet padding).
func ParseProbe(f []byte) (Probe, bool) {
	be := binary.BigEndian
	if len(f) < hdrLen+probeLen {
		return Probe{}, false
	}
	et := be.Uint16(f[12:])
	if et == etherVLAN || et == etherQinQ {
		if len(f) < hdrLen+probeLen+vlanTagSize {
			return Probe{}, false
		}
		et = be.Uint16(f[16:])
		f = f[vlanTagSize:] // view shifted so that offsets match
	}
	if et != etherIPv4 {
		return Probe{}, false
	}
	ip := f[14:34]
	if ip[0] != 0x45 || ip[9] != ipProtoUDP || be.Uint16(ip[6:])&0xbfff != 0 {
		return Probe{}, false
	}
	tot := int(be.Uint16(ip[2:]))
	if tot < 20+8+probeLen || 14+tot > len(f) || int(be.Uint16(f[38:])) != tot-20 {
		return Probe{}, false
	}
	if be.Uint16(f[offMagic:]) != magic {
		return Probe{}, false
	}
	return Probe{
		Flow: be.Uint16(ip[4:]),
		Seq:  be.Uint64(f[offSeq:]),
		Time: int64(be.Uint64(f[offTime:])),
	}, true
}

// BuildFrame returns frame number seq of flow i as Run sends it, with send
// time t: for tests, captures and peers that need the exact bytes (a
// trafgen configuration, say).
func BuildFrame(cfg Config, flow int, seq uint64, t int64) ([]byte, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if flow < 0 || flow >= c.Flows {
		return nil, errFlowRange(flow, c.Flows)
	}
	f := make([]byte, c.Size)
	flowHeader(f, &c, flow)
	putProbe(f, seq, t)
	return f, nil
}

// putSeqTime writes the sequence number and send time of a frame whose
// headers and magic are in place.
func putSeqTime(f []byte, seq uint64, t int64) {
	_ = f[offTime+7]
	binary.BigEndian.PutUint64(f[offSeq:], seq)
	binary.BigEndian.PutUint64(f[offTime:], uint64(t))
}
