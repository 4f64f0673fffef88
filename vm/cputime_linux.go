package vm

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadTime returns the CPU time of the calling OS thread, to the
// nanosecond (lock the goroutine to its thread first), and whether the
// system gives it.
func threadTime() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
