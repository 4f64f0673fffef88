package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// VXLAN tunnel ports and their remote stations.

// vxlanBusyPoll is a VXLAN port's default busy-poll window: none. An
// empty poll of a UDP socket is a system call (an AF_PACKET ring's is a
// memory read), and spinning on it takes the CPU from the kernel's own
// work on the tunnel's datagrams: with two switches and the hosts' stacks
// on 2 CPUs, one TCP stream across the tunnel went from 0.8 to 2.3 Gbit/s
// and round trips at 500/s from 1.8 ms to 0.1 ms without it. --busy-poll
// sets one.
const vxlanBusyPoll = -1

// vxlanConfig reads a port.attach request of type vxlan.
func vxlanConfig(p control.PortAttachParams) (bpfport.VXLANConfig, error) {
	var c bpfport.VXLANConfig
	if p.VNI == nil {
		return c, bad("port %s: a VXLAN port needs --vni N (0 to 16777215)", p.Name)
	}
	c.VNI = *p.VNI
	for _, list := range p.Remote {
		for _, r := range strings.Split(list, ",") {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			a, err := netip.ParseAddr(r)
			if err != nil {
				return c, bad("port %s: --remote %q is not an IP address", p.Name, r)
			}
			c.Remotes = append(c.Remotes, a)
		}
	}
	if p.Local != "" {
		a, err := netip.ParseAddr(p.Local)
		if err != nil {
			return c, bad("port %s: --local %q is not an IP address", p.Name, p.Local)
		}
		c.Local = a
	}
	if p.DstPort < 0 || p.DstPort > 65535 {
		return c, bad("port %s: --dstport %d: want 1 to 65535", p.Name, p.DstPort)
	}
	c.DstPort = uint16(p.DstPort)
	c.TTL = p.TTL
	if p.Queues > 1 {
		return c, bad("port %s: a VXLAN port has one queue (its UDP socket is shared): drop --queues", p.Name)
	}
	if p.RingFrames != 0 || p.Create {
		return c, bad("port %s: --ring-size and --create do not apply to VXLAN ports", p.Name)
	}
	return c, nil
}

// openVXLAN opens a VXLAN port (in the caller's network namespace).
func (d *Daemon) openVXLAN(p control.PortAttachParams) (bpfport.Port, error) {
	cfg, err := vxlanConfig(p)
	if err != nil {
		return nil, err
	}
	v, err := bpfport.OpenVXLAN(p.Name, cfg)
	if err != nil {
		return nil, err
	}
	for _, e := range p.Static {
		mac, err := net.ParseMAC(e.MAC)
		if err == nil && len(mac) != 6 {
			err = errors.New("not an Ethernet address")
		}
		remote, rerr := netip.ParseAddr(e.Remote)
		if err == nil && rerr != nil {
			err = rerr
		}
		if err == nil {
			err = v.AddStatic(mac, remote)
		}
		if err != nil {
			v.Close()
			return nil, bad("port %s: static entry %s -> %s: %v", p.Name, e.MAC, e.Remote, err)
		}
	}
	if _, ok := v.Underlay(); !ok && len(cfg.Remotes) > 0 {
		d.log.Warn("no route to the VXLAN port's first remote yet: the port is down until there is one",
			"port", p.Name, "remote", cfg.Remotes[0].String())
	}
	return v, nil
}

// rememberVXLAN keeps the attach parameters of a VXLAN port (the caller
// holds mu).
func (d *Daemon) rememberVXLAN(typ string, p control.PortAttachParams) {
	if typ != "vxlan" {
		return
	}
	if d.vxlan == nil {
		d.vxlan = map[string]control.PortAttachParams{}
	}
	d.vxlan[p.Name] = p
}

// saveStatic records the static entries of VXLAN port name (at index
// idx) with its attach parameters: set adds or replaces mac's entry,
// else it is removed. The caller holds mu.
func (d *Daemon) saveStatic(name string, idx int, mac, remote string, set bool) error {
	p, ok := d.vxlan[name]
	if !ok {
		return nil
	}
	var st []control.VXLANStatic
	for _, e := range p.Static {
		if m, err := net.ParseMAC(e.MAC); err != nil || m.String() != mac {
			st = append(st, e)
		}
	}
	if set {
		st = append(st, control.VXLANStatic{MAC: mac, Remote: remote})
	}
	p.Static = st
	d.vxlan[name] = p
	if d.state == nil {
		return nil
	}
	if err := d.state.putPort(idx, p); err != nil {
		return control.Errorf(control.CodeInternal, "port %s: the static entry is changed but could not be saved in %s (%v): the change will be lost when the daemon restarts", name, d.state.path, err)
	}
	return nil
}

// vxlanPorts returns the attached VXLAN ports by index.
func (d *Daemon) vxlanPorts() map[int]*bpfport.VXLAN {
	out := map[int]*bpfport.VXLAN{}
	for _, p := range d.sw.Ports() {
		if pp, err := d.sw.Port(p.Index); err == nil {
			if v, ok := pp.(*bpfport.VXLAN); ok {
				out[p.Index] = v
			}
		}
	}
	return out
}

// annotateFDB adds the remote VTEP of entries on VXLAN ports, and the
// static entries of VXLAN ports the program's table does not hold.
func (d *Daemon) annotateFDB(res *control.FDBResult) {
	vx := d.vxlanPorts()
	if len(vx) == 0 {
		return
	}
	seen := map[string]bool{}
	for i := range res.Entries {
		e := &res.Entries[i]
		seen[e.MAC] = true
		v := vx[e.Port]
		if v == nil {
			continue
		}
		mac, _ := net.ParseMAC(e.MAC)
		if r, ok := v.Lookup(mac); ok {
			e.Remote, e.Static = r.Remote.String(), r.Static
		}
	}
	for idx, v := range vx {
		for _, r := range v.Entries() {
			if r.Static && !seen[r.MAC.String()] {
				res.Entries = append(res.Entries, control.FDBEntry{MAC: r.MAC.String(), Port: idx, PortName: v.Name(),
					Remote: r.Remote.String(), Static: true})
			}
		}
	}
	sort.Slice(res.Entries, func(i, j int) bool { return res.Entries[i].MAC < res.Entries[j].MAC })
}

// learningFDB returns the program's fdb map when it has the learning
// program's layout, nil otherwise.
func (d *Daemon) learningFDB() maps.Map {
	m, err := d.fdbMap()
	if err != nil {
		return nil
	}
	return m
}

// putFDB writes "mac is behind port idx" into the learning program's
// table, so that frames to it go to that port instead of flooding.
func putFDB(m maps.Map, mac net.HardwareAddr, idx int) error {
	v := make([]byte, m.Spec().ValueSize)
	binary.NativeEndian.PutUint32(v[0:], uint32(idx))
	binary.NativeEndian.PutUint64(v[8:], vm.Ktime())
	return m.Update(mac, v, maps.UpdateAny)
}

// FDBAdd adds a static remote station: frames to MAC go out of VXLAN
// port Port to VTEP Remote only, whatever is learned.
func (d *Daemon) FDBAdd(p control.FDBAddParams) error {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 {
		return bad("fdb add: %q is not a MAC address (such as 02:00:00:00:00:01)", p.MAC)
	}
	remote, err := netip.ParseAddr(p.Remote)
	if err != nil {
		return bad("fdb add: remote %q is not an IP address", p.Remote)
	}
	idx, err := d.sw.PortByName(p.Port)
	if err != nil {
		return control.Errorf(control.CodeNotFound, "fdb add: no port %s: see `vswitch port show`", p.Port)
	}
	v := d.vxlanPorts()[idx]
	if v == nil {
		return control.Errorf(control.CodeInvalid, "fdb add: port %s is not a VXLAN port: static entries with a remote are for stations behind VXLAN ports", p.Port)
	}
	if err := v.AddStatic(mac, remote); err != nil {
		return control.Errorf(control.CodeInvalid, "fdb add: %v", err)
	}
	if m := d.learningFDB(); m != nil {
		if err := putFDB(m, mac, idx); err != nil {
			// The port's entry holds: frames to the station flood, and
			// the port sends them to the remote only.
			d.log.Warn("fdb add: the program's table refused the entry", "mac", mac.String(), "err", err)
		}
	}
	d.mu.Lock()
	err = d.saveStatic(p.Port, idx, mac.String(), remote.String(), true)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.log.Info("static fdb entry added", "mac", mac.String(), "port", p.Port, "remote", remote.String())
	return nil
}

// FDBDel forgets station MAC: in the VXLAN port(s) and the program's
// table.
func (d *Daemon) FDBDel(p control.FDBDelParams) error {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 {
		return bad("fdb del: %q is not a MAC address", p.MAC)
	}
	idx := -1
	if p.Port != "" {
		if idx, err = d.sw.PortByName(p.Port); err != nil {
			return control.Errorf(control.CodeNotFound, "fdb del: no port %s: see `vswitch port show`", p.Port)
		}
	}
	found := false
	d.mu.Lock()
	for i, v := range d.vxlanPorts() {
		if idx < 0 || i == idx {
			if e, ok := v.Lookup(mac); ok && e.Static {
				if err := d.saveStatic(v.Name(), i, mac.String(), "", false); err != nil {
					d.mu.Unlock()
					return err
				}
			}
			found = v.Delete(mac) || found
		}
	}
	d.mu.Unlock()
	if m := d.learningFDB(); m != nil {
		if val, err := m.Lookup(mac); err == nil && (idx < 0 || int(binary.NativeEndian.Uint32(val)) == idx) {
			if err := m.Delete(mac); err == nil {
				found = true
			} else if !errors.Is(err, maps.ErrKeyNotExist) {
				return fmt.Errorf("fdb del: %w", err)
			}
		}
	}
	if !found {
		return control.Errorf(control.CodeNotFound, "fdb del: no entry for %s: see `vswitch fdb show`", mac)
	}
	return nil
}

// flushVXLAN forgets the learned stations of every VXLAN port and puts
// their static entries back into the program's table (after fdb flush).
func (d *Daemon) flushVXLAN(m maps.Map) {
	for idx, v := range d.vxlanPorts() {
		v.FlushLearned()
		for _, e := range v.Entries() {
			if e.Static && m != nil {
				putFDB(m, e.MAC, idx)
			}
		}
	}
}

// tunnelCounters adds a VXLAN port's tunnel counters to its port
// counters (non-zero ones, as portCounters does).
func tunnelCounters(p bpfport.Port, m map[string]uint64) {
	v, ok := p.(*bpfport.VXLAN)
	if !ok {
		return
	}
	s := v.TunnelStats()
	for k, n := range map[string]uint64{
		"rx_bad_header": s.RxBadHeader, "rx_unknown_vni": s.RxUnknownVNI, "rx_queue_drops": s.RxQueueDrops,
		"rx_gro": s.RxGRO, "rx_csum_finished": s.RxCsumFinished, "rx_coalesced": s.RxCoalesced, "tx_flooded": s.TxFlooded, "tx_datagrams": s.TxCopies,
		"tx_no_remote": s.TxNoRemote, "tx_gso": s.TxGSO,
	} {
		if n != 0 {
			m[k] = n
		}
	}
}
