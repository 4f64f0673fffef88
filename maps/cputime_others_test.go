//go:build !linux

package maps

import (
	"testing"
	"time"
)

type threadCPU struct{ start time.Time }

func startCPU() threadCPU { return threadCPU{time.Now()} }

func (c threadCPU) report(b *testing.B, opsPerIter int, unit string) {
	b.ReportMetric(float64(time.Since(c.start).Nanoseconds())/float64(b.N)/float64(opsPerIter), "wall-ns/"+unit)
}
