package bpfport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// VXLAN (RFC 7348): Ethernet frames in UDP datagrams with an 8-byte header,
//
//	flags (0x08: the VNI is valid) | 3 reserved bytes | VNI (24 bits) | 1 reserved byte
//
// sent to UDP port 4789 from a source port that hashes the inner flow, so
// that the underlay's ECMP and receive-side scaling spread flows.

// VXLANPort is the IANA port of VXLAN.
const VXLANPort = 4789

// Encapsulation overheads: outer IP, UDP and VXLAN headers and the inner
// Ethernet header, the bytes an underlay MTU must hold beyond the inner
// MTU (the Linux vxlan device's figures).
const (
	VXLANOverhead4 = 20 + 8 + 8 + 14 // 50
	VXLANOverhead6 = 40 + 8 + 8 + 14 // 70
)

const (
	vxlanHdrLen = 8
	vxlanFlagI  = 0x08 // the VNI field is valid
	vxlanFlagP  = 0x04 // VXLAN-GPE: byte 3 names the next protocol
	vxlanGPEEth = 0x03 // VXLAN-GPE next protocol: Ethernet
	maxVNI      = 1<<24 - 1
)

// putVXLANHeader writes the header of vni into h[:8].
func putVXLANHeader(h []byte, vni uint32) {
	_ = h[7]
	h[0], h[1], h[2], h[3] = vxlanFlagI, 0, 0, 0
	binary.BigEndian.PutUint32(h[4:], vni<<8)
}

// parseVXLANHeader returns the VNI of a datagram's header, and false when
// the header does not announce an Ethernet frame with a valid VNI.
// Reserved bits are ignored on receipt (RFC 7348, section 5); a VXLAN-GPE
// header is accepted only when it carries Ethernet.
func parseVXLANHeader(h []byte) (uint32, bool) {
	if len(h) < vxlanHdrLen || h[0]&vxlanFlagI == 0 {
		return 0, false
	}
	if h[0]&vxlanFlagP != 0 && h[3] != vxlanGPEEth {
		return 0, false
	}
	return binary.BigEndian.Uint32(h[4:]) >> 8, true
}

// VXLANConfig configures OpenVXLAN. VNI is required (0 is a valid VNI);
// every other zero value means the default.
type VXLANConfig struct {
	// VNI is the VXLAN network identifier, 0 to 16777215.
	VNI uint32
	// Remotes are the VTEPs that flooded frames (broadcast, multicast,
	// unknown unicast) are replicated to, one copy each (head-end
	// replication). All of one address family; none is allowed when
	// Local is set and stations are only reached through static entries.
	Remotes []netip.Addr
	// Local is the underlay address the port sends from and receives on
	// (default: the wildcard address, the source chosen by the route).
	Local netip.Addr
	// DstPort is the UDP port of the tunnel (default 4789).
	DstPort uint16
	// TTL of the outer IP header (default 64).
	TTL int
	// SrcPorts is the number of UDP source ports the port sends from, each
	// a socket bound to a port the kernel chooses from its ephemeral
	// range; the inner flow's hash picks one (default 16, at most 64).
	SrcPorts int
	// AgeTime is how long a learned remote station is kept without a
	// frame from it (default 300s, the Linux vxlan device's).
	AgeTime time.Duration
	// MaxEntries bounds the port's station table (default 16384); when it
	// is full, new stations are not learned and frames to them flood.
	MaxEntries int
	// NoGSO sends one datagram per frame and remote instead of runs of
	// equal-length frames to one remote as one UDP_SEGMENT super-datagram.
	NoGSO bool
	// NoGRO receives one datagram per message instead of letting the
	// kernel hand over coalesced runs (UDP_GRO).
	NoGRO bool
	// RcvBuf is the receive socket's buffer (default 4 MiB).
	RcvBuf int
}

// Defaults of VXLANConfig.
const (
	DefaultVXLANSrcPorts = 16
	DefaultVXLANAgeTime  = 300 * time.Second
	DefaultVXLANEntries  = 16384
	maxVXLANSrcPorts     = 64
)

func (c VXLANConfig) withDefaults() (VXLANConfig, error) {
	if c.VNI > maxVNI {
		return c, fmt.Errorf("VNI %d: must be 0 to %d", c.VNI, maxVNI)
	}
	if c.DstPort == 0 {
		c.DstPort = VXLANPort
	}
	if c.TTL == 0 {
		c.TTL = 64
	}
	if c.TTL < 1 || c.TTL > 255 {
		return c, fmt.Errorf("TTL %d: must be 1 to 255", c.TTL)
	}
	if c.SrcPorts == 0 {
		c.SrcPorts = DefaultVXLANSrcPorts
	}
	if c.SrcPorts < 1 || c.SrcPorts > maxVXLANSrcPorts {
		return c, fmt.Errorf("%d source ports: must be 1 to %d", c.SrcPorts, maxVXLANSrcPorts)
	}
	if c.AgeTime <= 0 {
		c.AgeTime = DefaultVXLANAgeTime
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultVXLANEntries
	}
	if c.RcvBuf <= 0 {
		c.RcvBuf = defRcvBuf
	}
	if len(c.Remotes) == 0 && !c.Local.IsValid() {
		return c, errors.New("no remote and no local address: give at least one remote VTEP (or the local address, for static entries only)")
	}
	c.Local = c.Local.Unmap()
	if c.Local.IsValid() {
		if err := checkUnderlayAddr("local", c.Local); err != nil {
			return c, err
		}
	}
	rs := make([]netip.Addr, 0, len(c.Remotes))
	for _, r := range c.Remotes {
		r = r.Unmap()
		if err := checkUnderlayAddr("remote", r); err != nil {
			return c, err
		}
		if r.Is4() != c.is4(rs) {
			return c, fmt.Errorf("remote %s: all addresses of a port must be of one family (IPv4 or IPv6)", r)
		}
		if r == c.Local {
			return c, fmt.Errorf("remote %s is the local address", r)
		}
		if !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	c.Remotes = rs
	return c, nil
}

// is4 reports the family the port uses, given the remotes so far.
func (c VXLANConfig) is4(rs []netip.Addr) bool {
	if c.Local.IsValid() {
		return c.Local.Is4()
	}
	if len(rs) > 0 {
		return rs[0].Is4()
	}
	return len(c.Remotes) > 0 && c.Remotes[0].Unmap().Is4()
}

func checkUnderlayAddr(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%s address missing", what)
	case a.IsUnspecified():
		return fmt.Errorf("%s %s: the unspecified address is not a VTEP", what, a)
	case a.IsMulticast():
		return fmt.Errorf("%s %s: multicast underlays are not supported: list the remote VTEPs (head-end replication)", what, a)
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		return fmt.Errorf("%s %s: link-local underlay addresses are not supported: use a global or unique-local address", what, a)
	}
	return nil
}

// flowHash hashes the flow of an inner frame for the UDP source port: the
// IP addresses, protocol and ports of IPv4 and IPv6 TCP, UDP and SCTP
// (addresses and protocol alone for fragments and other protocols), the
// MAC addresses and EtherType of anything else. Frames of one flow always
// hash alike, so they leave by one source port and stay in order.
func flowHash(f []byte) uint32 {
	if len(f) < 14 {
		return 0
	}
	l3 := 12
	et := binary.BigEndian.Uint16(f[l3:])
	if (et == 0x8100 || et == 0x88a8) && len(f) >= 18 {
		l3 += 4
		et = binary.BigEndian.Uint16(f[l3:])
	}
	l3 += 2
	var h uint64 = 0x9e3779b97f4a7c15
	mix := func(v uint64) {
		h ^= v
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 31
	}
	switch {
	case et == 0x0800 && len(f) >= l3+20:
		ip := f[l3:]
		ihl := int(ip[0]&0xf) * 4
		proto := ip[9]
		mix(binary.BigEndian.Uint64(ip[12:20]))
		mix(uint64(proto))
		frag := binary.BigEndian.Uint16(ip[6:]) & 0x3fff // MF or an offset
		if frag == 0 && ihl >= 20 && len(ip) >= ihl+4 && hasPorts(proto) {
			mix(uint64(binary.BigEndian.Uint32(ip[ihl:])))
		}
	case et == 0x86dd && len(f) >= l3+40:
		ip := f[l3:]
		proto := ip[6]
		mix(binary.BigEndian.Uint64(ip[8:16]))
		mix(binary.BigEndian.Uint64(ip[16:24]))
		mix(binary.BigEndian.Uint64(ip[24:32]))
		mix(binary.BigEndian.Uint64(ip[32:40]))
		mix(uint64(proto))
		if len(ip) >= 44 && hasPorts(proto) {
			mix(uint64(binary.BigEndian.Uint32(ip[40:])))
		}
	default:
		mix(binary.BigEndian.Uint64(f[0:8]))
		mix(uint64(binary.BigEndian.Uint32(f[8:12])))
		mix(uint64(et))
	}
	return uint32(h ^ h>>32)
}

func hasPorts(proto byte) bool { return proto == 6 || proto == 17 || proto == 132 || proto == 136 }

// vxRemote is a remote VTEP with its socket address, built once.
type vxRemote struct {
	addr  netip.Addr
	id    uint32 // orders remotes when a batch is grouped by destination
	sa    [28]byte
	salen uint32
}

var vxRemoteIDs atomic.Uint32

func newVXRemote(addr netip.Addr, port uint16) *vxRemote {
	r := &vxRemote{addr: addr, id: vxRemoteIDs.Add(1)}
	r.salen = putSockaddr(r.sa[:], addr, port)
	return r
}

// putSockaddr writes addr:port as a Linux struct sockaddr_in or
// sockaddr_in6 into b and returns its length.
func putSockaddr(b []byte, addr netip.Addr, port uint16) uint32 {
	clear(b)
	if addr.Is4() {
		binary.NativeEndian.PutUint16(b[0:], 2) // AF_INET
		binary.BigEndian.PutUint16(b[2:], port)
		a := addr.As4()
		copy(b[4:8], a[:])
		return 16
	}
	binary.NativeEndian.PutUint16(b[0:], 10) // AF_INET6
	binary.BigEndian.PutUint16(b[2:], port)
	a := addr.As16()
	copy(b[8:24], a[:])
	return 28
}

// parseSockaddr reads the address of a Linux sockaddr_in or sockaddr_in6.
func parseSockaddr(b []byte) netip.Addr {
	switch binary.NativeEndian.Uint16(b) {
	case 2:
		return netip.AddrFrom4([4]byte(b[4:8]))
	case 10:
		return netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	}
	return netip.Addr{}
}

// vxEntry is a remote station: where frames to its MAC address go.
type vxEntry struct {
	remote *vxRemote
	static bool
	seen   atomic.Int64 // monotonic ns of the last frame from it (learned entries)
}

// vxFDB is the port's table of remote stations: MAC -> remote VTEP,
// learned from received frames (inner source MAC -> outer source address)
// or static (pushed by a control plane). Readers take the read lock once
// per batch; a frame from a known station only refreshes its time.
type vxFDB struct {
	mu      sync.RWMutex
	m       map[[6]byte]*vxEntry
	age     int64 // ns
	max     int
	port    uint16
	flood   map[netip.Addr]*vxRemote // the flood list's remotes, shared by entries
	learned map[netip.Addr]*vxRemote // other remotes entries use (pruned on expiry)
}

func newVXFDB(cfg VXLANConfig, flood []*vxRemote) *vxFDB {
	t := &vxFDB{m: map[[6]byte]*vxEntry{}, age: int64(cfg.AgeTime), max: cfg.MaxEntries, port: cfg.DstPort,
		flood: map[netip.Addr]*vxRemote{}, learned: map[netip.Addr]*vxRemote{}}
	for _, r := range flood {
		t.flood[r.addr] = r
	}
	return t
}

// vxClock is the monotonic clock of the tables, in ns.
var vxClockBase = time.Now()

func vxNow() int64 { return int64(time.Since(vxClockBase)) }

// lookup returns the remote of station mac, nil when unknown or aged out.
// The caller holds the read lock.
func (t *vxFDB) lookup(mac []byte, now int64) *vxRemote {
	e := t.m[[6]byte(mac)]
	if e == nil || (!e.static && now-e.seen.Load() > t.age) {
		return nil
	}
	return e.remote
}

// learn records that station mac is behind remote. It is called for
// every received frame: the common case (known, fresh, same remote) only
// reads.
func (t *vxFDB) learn(mac []byte, remote netip.Addr, now int64) {
	if mac[0]&1 != 0 || [6]byte(mac) == [6]byte{} {
		return // group or zero source: nothing to learn
	}
	t.mu.RLock()
	e := t.m[[6]byte(mac)]
	if e != nil && (e.static || e.remote.addr == remote) {
		if !e.static && now-e.seen.Load() > int64(time.Second)/4 {
			e.seen.Store(now)
		}
		t.mu.RUnlock()
		return
	}
	t.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	e = t.m[[6]byte(mac)]
	if e != nil && (e.static || e.remote.addr == remote) {
		return
	}
	if e == nil && len(t.m) >= t.max {
		t.expireLocked(now)
		if len(t.m) >= t.max {
			return
		}
	}
	n := &vxEntry{remote: t.remoteLocked(remote)}
	n.seen.Store(now)
	t.m[[6]byte(mac)] = n
}

// remoteLocked returns the shared remote of addr (a flood-list remote or
// one already used by an entry), or a new one.
func (t *vxFDB) remoteLocked(addr netip.Addr) *vxRemote {
	if r := t.flood[addr]; r != nil {
		return r
	}
	if r := t.learned[addr]; r != nil {
		return r
	}
	if len(t.learned) > 2*len(t.m)+64 {
		t.pruneLocked()
	}
	r := newVXRemote(addr, t.port)
	t.learned[addr] = r
	return r
}

// pruneLocked forgets remotes no entry uses any more.
func (t *vxFDB) pruneLocked() {
	clear(t.learned)
	for _, e := range t.m {
		if t.flood[e.remote.addr] == nil {
			t.learned[e.remote.addr] = e.remote
		}
	}
}

// expireLocked drops learned entries older than the age time.
func (t *vxFDB) expireLocked(now int64) {
	for k, e := range t.m {
		if !e.static && now-e.seen.Load() > t.age {
			delete(t.m, k)
		}
	}
}

// VXLANEntry is a remote station in a VXLAN port's table.
type VXLANEntry struct {
	MAC    net.HardwareAddr
	Remote netip.Addr
	Static bool
	// Age is the time since the last frame from the station (0 for a
	// static entry).
	Age time.Duration
}

func (t *vxFDB) entries(now int64) []VXLANEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]VXLANEntry, 0, len(t.m))
	for k, e := range t.m {
		x := VXLANEntry{MAC: net.HardwareAddr(append([]byte(nil), k[:]...)), Remote: e.remote.addr, Static: e.static}
		if !e.static {
			x.Age = time.Duration(now - e.seen.Load())
			if int64(x.Age) > t.age {
				continue
			}
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b VXLANEntry) int { return slices.Compare(a.MAC, b.MAC) })
	return out
}

func (t *vxFDB) get(mac [6]byte, now int64) (VXLANEntry, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.m[mac]
	if e == nil || (!e.static && now-e.seen.Load() > t.age) {
		return VXLANEntry{}, false
	}
	x := VXLANEntry{MAC: net.HardwareAddr(append([]byte(nil), mac[:]...)), Remote: e.remote.addr, Static: e.static}
	if !e.static {
		x.Age = time.Duration(now - e.seen.Load())
	}
	return x, true
}

func (t *vxFDB) addStatic(mac [6]byte, remote netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[mac] = &vxEntry{remote: t.remoteLocked(remote), static: true}
}

func (t *vxFDB) del(mac [6]byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[mac]
	delete(t.m, mac)
	return ok
}

// flushLearned forgets every learned station and returns how many.
func (t *vxFDB) flushLearned() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		if !e.static {
			delete(t.m, k)
			n++
		}
	}
	return n
}

// parseStationMAC reads a unicast station address for a static entry.
func parseStationMAC(mac net.HardwareAddr) ([6]byte, error) {
	if len(mac) != 6 {
		return [6]byte{}, fmt.Errorf("MAC %s: want a 6-byte Ethernet address", mac)
	}
	if mac[0]&1 != 0 {
		return [6]byte{}, fmt.Errorf("MAC %s is a group address: static entries are for unicast stations (groups flood to every remote)", mac)
	}
	if [6]byte(mac) == [6]byte{} {
		return [6]byte{}, fmt.Errorf("MAC %s is the zero address", mac)
	}
	return [6]byte(mac), nil
}

// VXLANStats are a VXLAN port's tunnel counters, beside its Stats.
type VXLANStats struct {
	RxBadHeader    uint64 // datagrams too short or without a valid VXLAN header, dropped
	RxUnknownVNI   uint64 // datagrams for a VNI no port on the UDP port serves, dropped
	RxQueueDrops   uint64 // frames for this port that its hand-over queue had no room for, dropped
	RxGRO          uint64 // coalesced runs of datagrams received in one message (UDP_GRO)
	RxCsumFinished uint64 // inner checksums a local sender (over a veth) left partial, finished
	RxCoalesced    uint64 // UDP_GRO runs of one TCP flow's segments joined into one super-frame
	TxFlooded      uint64 // frames replicated to every remote (broadcast, multicast, unknown unicast)
	TxCopies       uint64 // datagrams sent (a flooded frame counts once per remote)
	TxNoRemote     uint64 // frames with no remote to go to (unknown station, empty flood list), dropped
	TxGSO          uint64 // runs of datagrams sent as one UDP_SEGMENT super-datagram
}

type vxStats struct {
	rxBadHeader, rxUnknownVNI, rxQueueDrops, rxGRO, rxCsumFinished, rxCoalesced atomic.Uint64
	txFlooded, txCopies, txNoRemote, txGSO                                      atomic.Uint64
}

func (s *vxStats) load() VXLANStats {
	return VXLANStats{RxBadHeader: s.rxBadHeader.Load(), RxUnknownVNI: s.rxUnknownVNI.Load(),
		RxQueueDrops: s.rxQueueDrops.Load(), RxGRO: s.rxGRO.Load(), RxCsumFinished: s.rxCsumFinished.Load(), RxCoalesced: s.rxCoalesced.Load(), TxFlooded: s.txFlooded.Load(),
		TxCopies: s.txCopies.Load(), TxNoRemote: s.txNoRemote.Load(), TxGSO: s.txGSO.Load()}
}

// Frames from a sender on the same machine. A kernel tunnel (the Linux
// vxlan device) on the other end of a veth hands its datagrams over as
// they are in memory: the inner frame's TCP or UDP checksum may still be
// partial (only the pseudo-header sum is filled in: the device that would
// finish it is never reached), and a TCP super-frame may come as one
// datagram (a UDP tunnel GSO packet, which the kernel does not segment
// for a plain UDP socket). Over a real wire neither happens: the sender's
// NIC or stack finishes both.

// inner describes the IP and transport headers of an inner frame.
type inner struct {
	l3, l4, end int    // offsets: IP header, transport header, end of the IP packet
	csumOff     int    // the checksum field's offset within the transport header
	pseudo      uint64 // the pseudo-header sum (not folded)
	tcp, v6     bool
}

// innerL4 locates the transport header of an inner IPv4/IPv6 TCP or UDP
// frame (not a fragment, at most one VLAN tag, no IPv6 extension
// headers).
func innerL4(f []byte) (x inner, ok bool) {
	if len(f) < 14 {
		return x, false
	}
	l3 := 12
	et := binary.BigEndian.Uint16(f[l3:])
	if (et == 0x8100 || et == 0x88a8) && len(f) >= 18 {
		l3 += 4
		et = binary.BigEndian.Uint16(f[l3:])
	}
	l3 += 2
	x.l3 = l3
	var proto byte
	switch {
	case et == 0x0800 && len(f) >= l3+20 && f[l3]>>4 == 4:
		ip := f[l3:]
		ihl := int(ip[0]&0xf) * 4
		if ihl < 20 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return x, false
		}
		proto = ip[9]
		x.l4 = l3 + ihl
		x.end = l3 + int(binary.BigEndian.Uint16(ip[2:]))
		x.pseudo = csumAdd(0, ip[12:20])
	case et == 0x86dd && len(f) >= l3+40 && f[l3]>>4 == 6:
		ip := f[l3:]
		proto = ip[6]
		x.l4 = l3 + 40
		x.end = x.l4 + int(binary.BigEndian.Uint16(ip[4:]))
		x.pseudo = csumAdd(0, ip[8:40])
		x.v6 = true
	default:
		return x, false
	}
	switch proto {
	case 6:
		x.csumOff, x.tcp = 16, true
	case 17:
		x.csumOff = 6
	default:
		return x, false
	}
	if x.end > len(f) || x.l4+x.csumOff+2 > x.end {
		return x, false
	}
	x.pseudo += uint64(proto) + uint64(x.end-x.l4)
	return x, true
}

// finishPartialChecksum finishes in place an inner TCP or UDP checksum
// that holds the pseudo-header sum and does not verify: a checksum left
// partial by a local sender. It reports whether it changed f. A correct
// checksum is never touched; frames are verified only when their field
// equals the pseudo-header sum, so that finished traffic costs a compare.
func finishPartialChecksum(f []byte) bool {
	x, ok := innerL4(f)
	if !ok {
		return false
	}
	field := binary.BigEndian.Uint16(f[x.l4+x.csumOff:])
	if field != csumFold(x.pseudo) {
		return false
	}
	if csumFold(csumAdd(x.pseudo, f[x.l4:x.end])) == 0xffff {
		return false // correct already (the sums happen to coincide)
	}
	return finishChecksum(f[:x.end], x.l4, x.csumOff)
}

// innerSuperFrame recognizes an inner frame longer than maxFrame that is
// one TCP super-frame (a UDP tunnel GSO packet from a local sender: the
// IP packet fills the frame) and returns the Offload that describes it,
// with segments that fill maxFrame: the datagram does not say which MSS
// its sender used (that is metadata of the sender's kernel), and hosts
// behind a tunnel normally use the tunnel's MTU. UDP super-frames are not
// recognized: their segment boundaries are the application's datagrams,
// which cannot be guessed.
func innerSuperFrame(f []byte, maxFrame int) (Offload, bool) {
	x, ok := innerL4(f)
	if !ok || !x.tcp || x.end != len(f) || x.l4+20 > len(f) {
		return Offload{}, false
	}
	hdr := x.l4 + int(f[x.l4+12]>>4)*4
	if hdr < x.l4+20 || hdr >= maxFrame || hdr > len(f) {
		return Offload{}, false
	}
	o := Offload{Flags: OffloadNeedsCsum, GSOType: GSOTCPv4, HdrLen: uint16(hdr), GSOSize: uint16(maxFrame - hdr),
		CsumStart: uint16(x.l4), CsumOffset: uint16(x.csumOff)}
	if x.v6 {
		o.GSOType = GSOTCPv6
	}
	if SoftSegments(f, o) == 0 {
		return Offload{}, false
	}
	return o, true
}
