//go:build linux

package bpfport

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared-memory and raw-syscall helpers for the AF_PACKET rings. Status
// words of ring blocks and frames are shared with the kernel and must be
// accessed atomically so the compiler neither caches nor reorders them
// around the frame data.

func ringU32(ring []byte, off int) *atomic.Uint32 {
	_ = ring[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&ring[off]))
}

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendmmsg sends msgs in one system call and returns how many were sent.
func sendmmsg(fd int, msgs []mmsghdr, flags int) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// setIovec points iov at f (len(f) > 0).
func setIovec(iov *unix.Iovec, f []byte) {
	iov.Base = unsafe.SliceData(f)
	iov.SetLen(len(f))
}

// retireMapping replaces a shared ring mapping by private anonymous memory
// at the same address: the kernel's ring is released, and a reader that
// still holds views into it reads zeros instead of faulting. Only the
// address range stays reserved. If that fails, the ring stays mapped
// (leaked) rather than unmapped under a reader.
func retireMapping(b []byte) {
	_, _ = unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
}

// recvmmsg receives up to len(msgs) messages in one system call and
// returns how many it received.
func recvmmsg(fd int, msgs []mmsghdr, flags int) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// writev2 writes a and b as one frame (a virtio_net_hdr and the frame to
// a TAP device) in one system call, without allocating.
func writev2(fd int, iov *[2]unix.Iovec, a, b []byte) error {
	setIovec(&iov[0], a)
	setIovec(&iov[1], b)
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2)
	if e != 0 {
		return e
	}
	return nil
}
