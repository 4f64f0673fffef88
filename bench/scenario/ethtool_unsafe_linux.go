package scenario

import (
	"fmt"
	"unsafe"

	"github.com/govswitch/vswitch/internal/netenv"
	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value (linux/ethtool.h).
type ethtoolValue struct {
	cmd, data uint32
}

// ifreqData is struct ifreq with its union holding a pointer (ifr_data).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

// ethtool runs the SIOCETHTOOL command v on dev through fd.
func ethtool(fd int, dev string, v *ethtoolValue) error {
	var ifr ifreqData
	if len(dev) >= len(ifr.name) {
		return fmt.Errorf("interface name %q too long", dev)
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(v)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}

// setTxChecksum turns transmit checksum offload of dev in ns on or off,
// as `ethtool -K dev tx on|off` does (the kernel then also turns off the
// segmentation offloads that need it, TSO among them), and reads it back.
func setTxChecksum(ns *netenv.NS, dev string, on bool) error {
	return ns.Run(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var want uint32
		if on {
			want = 1
		}
		if err := ethtool(fd, dev, &ethtoolValue{cmd: unix.ETHTOOL_STXCSUM, data: want}); err != nil {
			return fmt.Errorf("%s: ETHTOOL_STXCSUM: %w", dev, err)
		}
		v := ethtoolValue{cmd: unix.ETHTOOL_GTXCSUM}
		if err := ethtool(fd, dev, &v); err != nil {
			return fmt.Errorf("%s: ETHTOOL_GTXCSUM: %w", dev, err)
		}
		if v.data != want {
			return fmt.Errorf("%s: tx checksum offload is %d after setting it to %d", dev, v.data, want)
		}
		return nil
	})
}
