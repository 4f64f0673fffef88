//go:build !linux

package bpfport

import (
	"net"
	"net/netip"
)

// VXLAN is a VXLAN tunnel port; not available on this platform.
type VXLAN struct{ unsupported }

// OpenVXLAN reports that VXLAN ports need Linux.
func OpenVXLAN(name string, cfg VXLANConfig) (*VXLAN, error) {
	return nil, errUnsupported("VXLAN")
}

// Config returns the zero configuration.
func (*VXLAN) Config() VXLANConfig { return VXLANConfig{} }

// VNI returns 0.
func (*VXLAN) VNI() uint32 { return 0 }

// TunnelStats returns zero counters.
func (*VXLAN) TunnelStats() VXLANStats { return VXLANStats{} }

// Remotes returns nothing.
func (*VXLAN) Remotes() []netip.Addr { return nil }

// Entries returns nothing.
func (*VXLAN) Entries() []VXLANEntry { return nil }

// Lookup finds nothing.
func (*VXLAN) Lookup(net.HardwareAddr) (VXLANEntry, bool) { return VXLANEntry{}, false }

// AddStatic reports that VXLAN ports need Linux.
func (*VXLAN) AddStatic(net.HardwareAddr, netip.Addr) error { return errUnsupported("VXLAN") }

// Delete finds nothing.
func (*VXLAN) Delete(net.HardwareAddr) bool { return false }

// FlushLearned forgets nothing.
func (*VXLAN) FlushLearned() int { return 0 }

// Underlay reports no underlay.
func (*VXLAN) Underlay() (string, bool) { return "", false }
