package examples_test

import (
	"encoding/binary"
	"errors"
	"net"
	"os/exec"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/govswitch/vswitch/examples"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// engine prepares a loaded program for running. Every test runs on each
// engine of engines; adding the JIT is one line.
type engine struct {
	name    string
	prepare func(*vm.Program) (vm.Runner, error)
}

var engines = []engine{
	{"interp", func(p *vm.Program) (vm.Runner, error) { return p, nil }},
	{"jit", func(p *vm.Program) (vm.Runner, error) { return jit.Compile(p) }},
}

// cpus is the number of per-CPU slots the tests give per-CPU maps; runs
// use CPU 0.
const cpus = 2

// Decisions, as in vswitch.h.
const (
	flood = 254
	drop  = 255
)

var (
	macA  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	macC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
)

// frame builds an Ethernet frame. vlan > 0 adds an 802.1Q tag; src IP
// non-nil makes it an IPv4/UDP frame, else an ARP request.
func frame(t testing.TB, src, dst net.HardwareAddr, vlan uint16, ip net.IP) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	if vlan > 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: vlan, Type: layers.EthernetTypeARP})
	}
	setType := func(et layers.EthernetType) {
		if vlan > 0 {
			ls[1].(*layers.Dot1Q).Type = et
		} else {
			eth.EthernetType = et
		}
	}
	if ip != nil {
		setType(layers.EthernetTypeIPv4)
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip, DstIP: net.IP{192, 0, 2, 99}}
		udp := &layers.UDP{SrcPort: 1234, DstPort: 5678}
		udp.SetNetworkLayerForChecksum(ip4)
		ls = append(ls, ip4, udp, gopacket.Payload("hello, vswitch"))
	} else {
		ls = append(ls, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: src, SourceProtAddress: []byte{192, 0, 2, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{192, 0, 2, 2},
		})
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// load loads examples/name.o.
func load(t testing.TB, path string, opts loader.Options) *loader.Collection {
	t.Helper()
	opts.CPUs = cpus
	c, err := loader.Load(path, opts)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// switchSim runs one program on one engine, frame by frame.
type switchSim struct {
	t      testing.TB
	runner vm.Runner
	env    *vm.Env
}

func newSim(t testing.TB, e engine, p *vm.Program) *switchSim {
	t.Helper()
	r, err := e.prepare(p)
	if errors.Is(err, jit.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("%s: prepare %s: %v", e.name, p.Name, err)
	}
	return &switchSim{t: t, runner: r, env: vm.NewEnv()}
}

func (s *switchSim) run(fr []byte, ingress uint32) uint64 {
	s.t.Helper()
	ret, err := s.env.RunFrame(s.runner, fr, ingress)
	if err != nil {
		s.t.Fatalf("run: %v", err)
	}
	return ret
}

// step is one frame and the decision it must get.
type step struct {
	name    string
	frame   []byte
	ingress uint32
	want    uint64
}

func (s *switchSim) steps(steps []step) {
	s.t.Helper()
	for _, st := range steps {
		if got := s.run(st.frame, st.ingress); got != st.want {
			s.t.Errorf("%s: decision %d, want %d", st.name, got, st.want)
		}
	}
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func lookup(t testing.TB, m maps.Map, key []byte) []byte {
	t.Helper()
	v, err := m.Lookup(key)
	if err != nil {
		t.Fatalf("lookup %x in %s: %v", key, m.Spec().Name, err)
	}
	return v
}

// fdbPort returns the port a learning table holds for key, or -1.
func fdbPort(t testing.TB, m maps.Map, key []byte) int {
	t.Helper()
	v, err := m.Lookup(key)
	if err != nil {
		return -1
	}
	if len(v) != 16 {
		t.Fatalf("fdb value of %d bytes, want 16", len(v))
	}
	if binary.LittleEndian.Uint64(v[8:]) == 0 {
		t.Errorf("fdb entry %x has no last-seen time", key)
	}
	return int(binary.LittleEndian.Uint32(v))
}

func TestLearn(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "learn.o", loader.Options{})
			s := newSim(t, e, c.Programs["learn"])
			fdb := c.Maps["fdb"]
			s.steps([]step{
				{"A->B, B unknown: flood", frame(t, macA, macB, 0, nil), 1, flood},
			})
			if got := fdbPort(t, fdb, macA); got != 1 {
				t.Fatalf("A learned on port %d, want 1", got)
			}
			s.steps([]step{
				{"B->A: unicast to A's port", frame(t, macB, macA, 0, nil), 2, 1},
				{"A->B: unicast to B's port", frame(t, macA, macB, 0, nil), 1, 2},
				{"C broadcast: flood", frame(t, macC, bcast, 0, nil), 3, flood},
				{"C multicast: flood", frame(t, macC, mcast, 0, nil), 3, flood},
				{"C->A on A's own port: drop", frame(t, macC, macA, 0, nil), 1, drop},
				{"runt: drop", make([]byte, 13), 1, drop},
				{"A moves to port 4", frame(t, macA, bcast, 0, nil), 4, flood},
				{"B->A follows the move", frame(t, macB, macA, 0, nil), 2, 4},
			})
			for _, w := range []struct {
				mac  net.HardwareAddr
				port int
			}{{macA, 4}, {macB, 2}, {macC, 1}} {
				if got := fdbPort(t, fdb, w.mac); got != w.port {
					t.Errorf("fdb[%v] = %d, want %d", w.mac, got, w.port)
				}
			}
			// A multicast source is never learned.
			s.run(frame(t, mcast, bcast, 0, nil), 5)
			if got := fdbPort(t, fdb, mcast); got != -1 {
				t.Errorf("multicast source learned on port %d", got)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "static.o", loader.Options{})
			s := newSim(t, e, c.Programs["static_fwd"])
			ports := c.Maps["ports"]
			// The operator: frames to ..:0b go to port 3.
			if err := ports.Update(le32(0x0b), append(le32(3), le32(1)...), maps.UpdateAny); err != nil {
				t.Fatal(err)
			}
			s.steps([]step{
				{"to ..:0b: port 3", frame(t, macA, macB, 0, nil), 1, 3},
				{"to ..:0c, not configured: unknown_action (flood)", frame(t, macA, macC, 0, nil), 1, flood},
				{"broadcast: flood", frame(t, macA, bcast, 0, nil), 1, flood},
			})
			// Global data: .data holds unknown_action, the control plane changes it.
			data := c.Maps["static.data"]
			if got := binary.LittleEndian.Uint32(lookup(t, data, le32(0))); got != flood {
				t.Fatalf("static.data unknown_action = %d, want %d (the initial value)", got, flood)
			}
			if err := data.Update(le32(0), le32(drop), maps.UpdateAny); err != nil {
				t.Fatal(err)
			}
			s.steps([]step{{"to ..:0c after unknown_action = drop", frame(t, macA, macC, 0, nil), 1, drop}})
			// .bss counts frames.
			if got := binary.LittleEndian.Uint64(lookup(t, c.Maps["static.bss"], le32(0))); got != 4 {
				t.Errorf("static.bss frames = %d, want 4", got)
			}
			// .rodata: min_len, read-only for the program.
			ro := c.Maps["static.rodata"]
			if got := binary.LittleEndian.Uint32(lookup(t, ro, le32(0))); got != 14 {
				t.Errorf("static.rodata min_len = %d, want 14", got)
			}
			if ro.Spec().Flags&maps.FlagRdOnlyProg == 0 {
				t.Errorf(".rodata map flags %#x, want FlagRdOnlyProg", ro.Spec().Flags)
			}
			if err := ro.Update(le32(0), le32(1000), maps.UpdateAny); err != nil {
				t.Fatal(err)
			}
			s.steps([]step{{"shorter than min_len: drop", frame(t, macA, macB, 0, nil), 1, drop}})
		})
	}
}

// portset is struct vswitch_portset.
func portset(ports ...int) []byte {
	b := make([]byte, 32)
	for _, p := range ports {
		b[p/8] |= 1 << (p % 8)
	}
	return b
}

func TestVLAN(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "vlan.o", loader.Options{})
			s := newSim(t, e, c.Programs["vlan"])
			// Ports 1, 2: access VLAN 10; port 3: access VLAN 20; port 4:
			// trunk carrying 10 and 20, no native VLAN; port 5: access
			// VLAN 10 but not a member (misconfigured).
			for port, native := range map[uint32]uint32{1: 10, 2: 10, 3: 20, 4: 0, 5: 10} {
				if err := c.Maps["port_vlan"].Update(le32(port), le32(native), maps.UpdateAny); err != nil {
					t.Fatal(err)
				}
			}
			members := map[uint32][]byte{10: portset(1, 2, 4), 20: portset(3, 4)}
			for vid, set := range members {
				if err := c.Maps["vlan_members"].Update(le32(vid), set, maps.UpdateAny); err != nil {
					t.Fatal(err)
				}
			}
			floodSet := func() []byte {
				v := lookup(t, c.Maps["vswitch_flood"], le32(0))
				return v[:32] // CPU 0's slot
			}
			wantFlood := func(what string, vid uint32) {
				t.Helper()
				if got := floodSet(); string(got) != string(members[vid]) {
					t.Errorf("%s: flood set %x, want VLAN %d's members %x", what, got, vid, members[vid])
				}
			}
			s.steps([]step{{"untagged broadcast on port 1 (VLAN 10): flood", frame(t, macA, bcast, 0, nil), 1, flood}})
			wantFlood("VLAN 10 broadcast", 10)
			s.steps([]step{{"tagged 20 on the trunk, unknown dst: flood", frame(t, macC, macB, 20, nil), 4, flood}})
			wantFlood("VLAN 20 unknown unicast", 20)
			s.steps([]step{
				{"B->A in VLAN 10: unicast to port 1", frame(t, macB, macA, 0, nil), 2, 1},
				{"tagged 10 on the trunk to A: port 1", frame(t, macC, macA, 10, nil), 4, 1},
				{"tagged 20 on port 1 (not a member): drop", frame(t, macA, macB, 20, nil), 1, drop},
				{"untagged on the trunk (no native VLAN): drop", frame(t, macA, macB, 0, nil), 4, drop},
				{"untagged on port 5 (not a member of its VLAN): drop", frame(t, macA, macB, 0, nil), 5, drop},
				{"to A on A's port: drop", frame(t, macB, macA, 0, nil), 1, drop},
			})
			// A is known in VLAN 10 but not in 20: per-VLAN learning.
			s.steps([]step{{"to A in VLAN 20: flood", frame(t, macB, macA, 20, nil), 3, flood}})
			wantFlood("VLAN 20, A unknown there", 20)
			fdb := c.Maps["vlan_fdb"]
			key := func(vid uint16, mac net.HardwareAddr) []byte {
				return append(binary.LittleEndian.AppendUint16(nil, vid), mac...)
			}
			for _, w := range []struct {
				vid  uint16
				mac  net.HardwareAddr
				port int
			}{{10, macA, 1}, {10, macB, 1}, {20, macC, 4}, {10, macC, 4}, {20, macA, -1}, {20, macB, 3}} {
				if got := fdbPort(t, fdb, key(w.vid, w.mac)); got != w.port {
					t.Errorf("vlan_fdb[%d %v] = %d, want %d", w.vid, w.mac, got, w.port)
				}
			}
		})
	}
}

func TestACL(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "acl.o", loader.Options{})
			if c.Programs["acl_learn"] == nil {
				t.Fatal("acl_learn, the tail call target, was not loaded")
			}
			s := newSim(t, e, c.Programs["acl"])
			// Rule 3: 10.0.0.0/8; rule 5: 10.9.0.0/16 (longer prefix wins).
			for _, r := range []struct {
				bits uint32
				addr net.IP
				rule uint32
			}{{8, net.IP{10, 0, 0, 0}, 3}, {16, net.IP{10, 9, 0, 0}, 5}} {
				if err := c.Maps["blocklist"].Update(append(le32(r.bits), r.addr...), le32(r.rule), maps.UpdateAny); err != nil {
					t.Fatal(err)
				}
			}
			s.steps([]step{
				{"10.1.2.3 blocked by rule 3", frame(t, macA, macB, 0, net.IP{10, 1, 2, 3}), 1, drop},
				{"10.9.1.1 blocked by rule 5", frame(t, macA, macB, 0, net.IP{10, 9, 1, 1}), 1, drop},
				{"10.2.0.1 blocked by rule 3", frame(t, macA, macB, 0, net.IP{10, 2, 0, 1}), 1, drop},
				{"192.0.2.1 passes, learn floods", frame(t, macA, macB, 0, net.IP{192, 0, 2, 1}), 1, flood},
				{"ARP passes, learn unicasts to A", frame(t, macB, macA, 0, nil), 2, 1},
				{"192.0.2.7 passes, unicast to B", frame(t, macA, macB, 0, net.IP{192, 0, 2, 7}), 1, 2},
			})
			drops := c.Maps["drops"]
			for rule, want := range map[uint32]uint64{3: 2, 5: 1, 0: 0} {
				v := lookup(t, drops, le32(rule))
				if got := binary.LittleEndian.Uint64(v); got != want {
					t.Errorf("drops[%d] on CPU 0 = %d, want %d", rule, got, want)
				}
				if got := binary.LittleEndian.Uint64(v[8:]); got != 0 {
					t.Errorf("drops[%d] on CPU 1 = %d, want 0", rule, got)
				}
			}
			if got := fdbPort(t, c.Maps["fdb"], macB); got != 2 {
				t.Errorf("fdb[B] = %d, want 2 (learned by the tail-called program)", got)
			}
			// An empty slot: the frame floods.
			if err := c.Maps["next"].Delete(le32(0)); err != nil {
				t.Fatal(err)
			}
			s.steps([]step{{"empty tail call slot: flood", frame(t, macA, macB, 0, net.IP{192, 0, 2, 1}), 1, flood}})
		})
	}
}

func TestCount(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "count.o", loader.Options{})
			s := newSim(t, e, c.Programs["count"])
			ipv4 := frame(t, macA, macB, 0, net.IP{192, 0, 2, 1})
			arp := frame(t, macA, bcast, 0, nil)
			s.steps([]step{
				{"IPv4", ipv4, 1, flood},
				{"ARP", arp, 2, flood},
				{"IPv4 again", ipv4, 3, flood},
			})
			for typ, want := range map[uint32][2]uint64{0x0800: {2, 2 * uint64(len(ipv4))}, 0x0806: {1, uint64(len(arp))}} {
				v := lookup(t, c.Maps["ethertypes"], le32(typ))
				got := [2]uint64{binary.LittleEndian.Uint64(v), binary.LittleEndian.Uint64(v[8:])}
				if got != want {
					t.Errorf("ethertypes[%#04x] on CPU 0 = %v frames/bytes, want %v", typ, got, want)
				}
			}
			rb, ok := c.Maps["events"].(*maps.RingBuffer)
			if !ok {
				t.Fatalf("events is a %T, want *maps.RingBuffer", c.Maps["events"])
			}
			type rec struct{ typ, port uint32 }
			var recs []rec
			rb.Poll(func(r []byte) {
				if len(r) != 16 {
					t.Errorf("record of %d bytes, want 16", len(r))
					return
				}
				recs = append(recs, rec{uint32(binary.LittleEndian.Uint16(r)), binary.LittleEndian.Uint32(r[4:])})
			})
			want := []rec{{0x0800, 1}, {0x0806, 2}}
			if len(recs) != len(want) || recs[0] != want[0] || recs[1] != want[1] {
				t.Errorf("ring buffer records %v, want %v (one per new EtherType)", recs, want)
			}
		})
	}
}

// TestVALEBPF loads an object written for VALE-BPF and checks that it
// behaves as it did there.
func TestVALEBPF(t *testing.T) {
	if _, err := loader.Load("testdata/vale_bridge.o", loader.Options{}); err == nil {
		t.Fatal("VALE-BPF object loaded without the compatibility option")
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := load(t, "testdata/vale_bridge.o", loader.Options{Compat: loader.CompatVALEBPF})
			if got := c.ProgramNames(); len(got) != 1 || got[0] != "learning_bridge" {
				t.Fatalf("programs %v, want [learning_bridge] (static functions are not programs)", got)
			}
			if got := c.Sections["learning_bridge"]; got != ".text" {
				t.Errorf("section %q, want .text", got)
			}
			s := newSim(t, e, c.Programs["learning_bridge"])
			s.steps([]step{
				{"A->B unknown: broadcast", frame(t, macA, macB, 0, nil), 1, flood},
				{"B->A: port 1", frame(t, macB, macA, 0, nil), 2, 1},
				{"A->B: port 2", frame(t, macA, macB, 0, nil), 1, 2},
				{"broadcast", frame(t, macC, bcast, 0, nil), 3, flood},
			})
			ft := c.Maps["ft"]
			if ft.Spec().Type != maps.Hash || ft.Spec().KeySize != 8 || ft.Spec().ValueSize != 4 {
				t.Errorf("ft spec %+v, want a hash of 8-byte keys and 4-byte values", ft.Spec())
			}
			key := append(append([]byte(nil), macB...), 0, 0)
			if got := binary.LittleEndian.Uint32(lookup(t, ft, key)); got != 2 {
				t.Errorf("ft[B] = %d, want 2", got)
			}
			st := lookup(t, c.Maps["stats"], le32(1))
			if got := binary.LittleEndian.Uint64(st); got != 2 {
				t.Errorf("stats[broadcast] = %d, want 2", got)
			}
		})
	}
}

// TestEmbedded checks that the embedded objects are the files beside the
// sources.
func TestEmbedded(t *testing.T) {
	for _, n := range examples.Names {
		b, err := examples.Object(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s: empty object", n)
		}
	}
}

// TestCheckScript runs check.sh, which passes without clang.
func TestCheckScript(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds every object")
	}
	out, err := exec.Command("sh", "check.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("check.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
