//go:build linux

package bpfport

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared-memory and raw-syscall helpers for AF_XDP sockets: the four
// rings the kernel maps into the process, the sockopts x/sys/unix has no
// wrapper for, and the test of whether a frame lies in a UMEM.

// xdpRing is one single-producer single-consumer ring shared with the
// kernel. The producer and consumer indexes are free-running u32 counters;
// slot i is at i & mask. For the fill and transmit rings the process is the
// producer (head is its producer index); for the receive and completion
// rings it is the consumer (head is its consumer index).
type xdpRing struct {
	mem   []byte
	prod  *atomic.Uint32
	cons  *atomic.Uint32
	flags *atomic.Uint32
	descs []unix.XDPDesc // receive and transmit rings
	addrs []uint64       // fill and completion rings
	mask  uint32
	head  uint32
}

// mapXDPRing maps the ring of n entries at page offset pgoff of fd, laid out
// as off says.
func mapXDPRing(fd int, pgoff int64, off unix.XDPRingOffset, n int, desc bool) (xdpRing, error) {
	entry := 8
	if desc {
		entry = int(unsafe.Sizeof(unix.XDPDesc{}))
	}
	size := int(off.Desc) + n*entry
	mem, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return xdpRing{}, err
	}
	r := xdpRing{mem: mem, mask: uint32(n - 1),
		prod:  (*atomic.Uint32)(unsafe.Pointer(&mem[off.Producer])),
		cons:  (*atomic.Uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags: (*atomic.Uint32)(unsafe.Pointer(&mem[off.Flags])),
	}
	if desc {
		r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&mem[off.Desc])), n)
	} else {
		r.addrs = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off.Desc])), n)
	}
	return r, nil
}

func (r *xdpRing) unmap() {
	if r.mem != nil {
		unix.Munmap(r.mem)
	}
	*r = xdpRing{}
}

func setsockoptXDPUmemReg(fd int, reg *unix.XDPUmemReg) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(reg)), unsafe.Sizeof(*reg), 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockoptXDP(fd, opt int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func xdpMmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	err := getsockoptXDP(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	return off, err
}

func xdpStatistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockoptXDP(fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

// xdpZeroCopy reports whether the bound socket runs in zero-copy mode.
func xdpZeroCopy(fd int) bool {
	var opts uint32
	if getsockoptXDP(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)) != nil {
		return false
	}
	return opts&unix.XDP_OPTIONS_ZEROCOPY != 0
}

// xdpKickTx asks the kernel to process the transmit ring (sendto with no
// data). It does not allocate.
func xdpKickTx(fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// xdpKickRx asks the driver to refill its receive ring from the fill ring
// (recvfrom with no buffer), and reports the socket's state: ENETDOWN
// while the link is down, ENXIO once the socket is unbound (the interface
// was deleted).
func xdpKickRx(fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// umemOffset returns where f starts in mem, if it lies inside it.
func umemOffset(mem, f []byte) (uint64, bool) {
	if len(f) == 0 || len(mem) == 0 {
		return 0, false
	}
	off := uintptr(unsafe.Pointer(unsafe.SliceData(f))) - uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if off >= uintptr(len(mem)) || uintptr(len(f)) > uintptr(len(mem))-off {
		return 0, false
	}
	return uint64(off), true
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// ifreqData is struct ifreq with ifr_data, the pointer SIOCETHTOOL reads.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// rxQueueCount returns the interface's receive queues as `ethtool -l`
// counts them (receive-only plus combined channels), through the control
// socket fd (an ioctl acts in fd's namespace).
func rxQueueCount(fd int, ifname string) (int, error) {
	var ch ethtoolChannels
	ch.cmd = unix.ETHTOOL_GCHANNELS
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if e != 0 {
		return 0, e
	}
	return int(ch.rxCount + ch.combinedCount), nil
}
