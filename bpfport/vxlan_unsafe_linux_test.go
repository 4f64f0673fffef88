package bpfport

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

// setTxChecksum turns transmit checksum offload of dev in ns on or off
// (ETHTOOL_STXCSUM, `ethtool -K dev tx off`): off, the kernel finishes
// checksums (and segments) before the device, as for a NIC without the
// offload, instead of handing partial checksums across a veth.
func setTxChecksum(t *testing.T, ns *nettest.NS, dev string, on bool) {
	t.Helper()
	const ethtoolSTXCSUM = 0x17
	val := struct{ cmd, data uint32 }{cmd: ethtoolSTXCSUM}
	if on {
		val.data = 1
	}
	var req struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(req.name[:], dev)
	req.data = uintptr(unsafe.Pointer(&val))
	ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req))); e != 0 {
			return e
		}
		return nil
	})
}
