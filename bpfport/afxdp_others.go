//go:build !linux

package bpfport

// AFXDP is a port on a Linux interface through AF_XDP sockets; not
// available on this platform.
type AFXDP struct{ unsupported }

// Info returns the zero description.
func (*AFXDP) Info() AFXDPInfo { return AFXDPInfo{} }

// Counters returns zero counters.
func (*AFXDP) Counters() XDPCounters { return XDPCounters{} }

// OpenAFXDP reports that AF_XDP ports need Linux.
func OpenAFXDP(ifname string, cfg AFXDPConfig) (*AFXDP, error) {
	return nil, errUnsupported("AF_XDP")
}

type umem struct{}
