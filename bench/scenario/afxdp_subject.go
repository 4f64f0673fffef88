package scenario

// VswitchAFXDP is vswitch with AF_XDP ports (learn.o, default engine):
// the redirect program in native mode where the veth has it, copy mode,
// the two ports sharing one UMEM (frames cross the switch by descriptor).
const VswitchAFXDP = "vswitch-afxdp"

func init() { palette[VswitchAFXDP] = "#17becf" }
