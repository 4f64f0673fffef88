package maps

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU measures the CPU time of the calling thread: on a machine
// shared with other work, wall time counts the time others ran too.
type threadCPU struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU locks the goroutine to its thread and starts measuring.
func startCPU() threadCPU {
	runtime.LockOSThread()
	return threadCPU{cpuNow()}
}

// report adds a "cpu-ns/<unit>" metric: thread CPU time per operation.
func (c threadCPU) report(b *testing.B, opsPerIter int, unit string) {
	d := cpuNow() - c.start
	runtime.UnlockOSThread()
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N)/float64(opsPerIter), "cpu-ns/"+unit)
}
