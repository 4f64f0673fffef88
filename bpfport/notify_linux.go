package bpfport

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// newNotifyFD returns a non-blocking eventfd for a virtual port's ring, or
// -1 if none can be made (the switch then polls that queue on a timer).
func newNotifyFD() int {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return -1
	}
	return fd
}

// closeNotifyWhenUnused closes r's eventfd once r is unreachable: the two
// ends of a pair and the switch polling it may each still signal it, and a
// closed fd number can be reused, so it is not closed any earlier.
func closeNotifyWhenUnused(r *vring) {
	if r.notify >= 0 {
		runtime.SetFinalizer(r, func(r *vring) { unix.Close(r.notify) })
	}
}

func notifySignal(fd int) {
	if fd >= 0 {
		eventfdSignal(fd)
	}
}

func notifyDrain(fd int) {
	if fd >= 0 {
		eventfdDrain(fd)
	}
}
