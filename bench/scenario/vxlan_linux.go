package scenario

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
)

// The underlay between machine A (the switch namespace) and machine B.
const (
	devUnderA    = "ua"
	devUnderB    = "ub"
	underAddrA   = "10.98.0.1"
	underAddrB   = "10.98.0.2"
	underMTU     = 1600
	vxlanBenchID = 42
)

// vxlanMachines is the switch of a VXLAN subject on both machines.
type vxlanMachines struct {
	a, b     *daemon.Daemon // vswitch-vxlan
	down     func()
	counters func() string
}

// splitMachines joins a to a new namespace b by the underlay and moves
// dev (the port towards the sink or host 2) from a to b.
func splitMachines(a *netenv.NS, newNS func() (*netenv.NS, error), dev string) (*netenv.NS, error) {
	b, err := newNS()
	if err != nil {
		return nil, err
	}
	if err := netenv.Veth(a, devUnderA, b, devUnderB, underMTU); err != nil {
		return b, err
	}
	if err := netenv.AddAddr(a, devUnderA, underAddrA+"/24"); err != nil {
		return b, err
	}
	if err := netenv.AddAddr(b, devUnderB, underAddrB+"/24"); err != nil {
		return b, err
	}
	ha, err := a.Handle()
	if err != nil {
		return b, err
	}
	defer ha.Close()
	l, err := ha.LinkByName(dev)
	if err != nil {
		return b, err
	}
	if err := ha.LinkSetNsFd(l, int(b.H)); err != nil {
		return b, fmt.Errorf("moving %s to machine B: %w", dev, err)
	}
	hb, err := b.Handle()
	if err != nil {
		return b, err
	}
	defer hb.Close()
	if l, err = hb.LinkByName(dev); err != nil {
		return b, err
	}
	return b, hb.LinkSetUp(l)
}

// vxlanUp puts switch name on machines a (port devA) and b (port devB).
func vxlanUp(name string, a, b *netenv.NS, devA, devB string) (*vxlanMachines, error) {
	m := &vxlanMachines{down: func() {}}
	switch name {
	case VswitchVXLAN:
		var err error
		if m.a, err = vswitchVXLAN(a, devA, underAddrB); err != nil {
			return nil, err
		}
		if m.b, err = vswitchVXLAN(b, devB, underAddrA); err != nil {
			m.a.Close()
			return nil, err
		}
		m.down = func() { m.a.Close(); m.b.Close() }
		m.counters = func() string { return "A: " + daemonDrops(m.a) + "; B: " + daemonDrops(m.b) }
	case LinuxVXLAN:
		if err := linuxVXLAN(a, devA, devUnderA, underAddrA, underAddrB); err != nil {
			return nil, err
		}
		if err := linuxVXLAN(b, devB, devUnderB, underAddrB, underAddrA); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown VXLAN subject %q", name)
	}
	return m, nil
}

// vswitchVXLAN runs a daemon in ns with the learning program (JIT), dev
// and a VXLAN port to remote. Each machine gets one worker and no
// busy-poll (vswitchVXLANNote): the two machines share the CPUs, and two
// busy-polling daemons would take them from each other and from the
// kernel's work on the tunnel (measured on 2 CPUs: one TCP stream 2.6
// Gbit/s against 1.4 with the defaults, round trips at 500/s 0.11 ms
// against 2.4).
func vswitchVXLAN(ns *netenv.NS, dev, remote string) (*daemon.Daemon, error) {
	d := daemon.New(daemon.Config{Netns: ns, Workers: 1, BusyPoll: -1})
	if _, err := d.LoadDefault("jit"); err != nil {
		d.Close()
		return nil, err
	}
	vni := uint32(vxlanBenchID)
	for _, p := range []control.PortAttachParams{{Name: dev}, {Name: "vx0", Type: "vxlan", VNI: &vni, Remote: []string{remote}}} {
		if _, err := d.Attach(p); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// linuxVXLAN makes br0 of dev and vxlan0 (VNI 42, UDP 4789, over
// underlay, local to remote) in ns.
func linuxVXLAN(ns *netenv.NS, dev, underlay, local, remote string) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	u, err := h.LinkByName(underlay)
	if err != nil {
		return err
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0"}, VxlanId: vxlanBenchID, VtepDevIndex: u.Attrs().Index,
		SrcAddr: net.ParseIP(local), Group: net.ParseIP(remote), Port: 4789, Learning: true}
	if err := h.LinkAdd(vx); err != nil {
		return fmt.Errorf("vxlan device: %w", err)
	}
	if err := h.LinkSetUp(vx); err != nil {
		return err
	}
	_, err = bridgeOf(ns, dev, "vxlan0")
	return err
}

// staticBridgeEntry is `bridge fdb add MAC dev DEV master static`.
func staticBridgeEntry(ns *netenv.NS, dev string, mac net.HardwareAddr) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	return h.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE,
		Flags: netlink.NTF_MASTER, State: netlink.NUD_NOARP | netlink.NUD_REACHABLE, HardwareAddr: mac})
}

// setupVXLAN is setup for the VXLAN subjects of the veth scenario: the
// generator's frames cross the tunnel from machine A (s0) to machine B
// (s1), the sink counts them.
func setupVXLAN(_ context.Context, t *topo, name string, _ func(string, ...any)) (*subject, error) {
	var b *netenv.NS
	b, err := splitMachines(t.sw, netenv.New, devSwOut)
	closeB := func() {
		if b != nil {
			b.Close()
		}
	}
	if err != nil {
		closeB()
		return nil, err
	}
	m, err := vxlanUp(name, t.sw, b, devSwIn, devSwOut)
	if err != nil {
		closeB()
		return nil, err
	}
	s := &subject{countNS: t.sink, countDev: devSink, teardown: func() { m.down(); closeB() }}
	switch name {
	case VswitchVXLAN:
		// Both switches learn where the sink is (machine A: behind vx0).
		var mac [6]byte
		copy(mac[:], sinkMAC)
		if err := announceSink(t); err == nil {
			err = waitLearned(m.a, mac, 2*time.Second)
		}
		if err != nil {
			s.teardown()
			return nil, err
		}
	case LinuxVXLAN:
		// Forward, don't flood, as the bridge subject does.
		err := staticBridgeEntry(t.sw, "vxlan0", sinkMAC)
		if err == nil {
			err = staticBridgeEntry(b, devSwOut, sinkMAC)
		}
		if err != nil {
			s.teardown()
			return nil, fmt.Errorf("bridge fdb entry: %w", err)
		}
	}
	return s, nil
}

// vxlanHostsUp is the up function of the VXLAN subjects of the hosts
// scenario: host 1 on machine A, host 2 on machine B.
func vxlanHostsUp(name string) func(context.Context, *hostsTopo, func(string, ...any)) (hostsSwitch, error) {
	return func(_ context.Context, t *hostsTopo, _ func(string, ...any)) (hostsSwitch, error) {
		b, err := splitMachines(t.sw, t.newNS, devSwOut)
		if err != nil {
			return hostsSwitch{}, err
		}
		m, err := vxlanUp(name, t.sw, b, devSwIn, devSwOut)
		if err != nil {
			return hostsSwitch{}, err
		}
		return hostsSwitch{down: m.down, counters: m.counters}, nil
	}
}
