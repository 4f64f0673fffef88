package scenario

// VXLAN subjects of the veth and hosts scenarios: the switch namespace
// becomes machine A, a second namespace machine B, joined by an underlay
// veth (MTU 1600, so that 1514-byte frames fit the tunnel); the switch
// namespace's port to the sink (to host 2) moves to machine B. Each
// machine runs the same switch with a VXLAN port to the other (VNI 42,
// UDP 4789): traffic crosses the tunnel once.
const (
	VswitchVXLAN = "vswitch-vxlan" // a vswitch daemon on each machine (learn.o, JIT), AF_PACKET host ports and a VXLAN port
	LinuxVXLAN   = "linux-vxlan"   // a Linux bridge on each machine with a vxlan device
)

const (
	vxlanNote        = "two machines joined by VXLAN over a veth underlay"
	vswitchVXLANNote = vxlanNote + "; each daemon 1 worker, --busy-poll 0"
)
