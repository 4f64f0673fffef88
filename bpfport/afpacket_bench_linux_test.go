package bpfport

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAFPacketRecv measures the receive path of an AF_PACKET port fed
// over a veth by another port sending as fast as it can, for small and
// large frames and for ring slots that hold them or not (frames that do
// not fit a slot come through the socket queue).
//
//	go test -run - -bench AFPacketRecv ./bpfport
func BenchmarkAFPacketRecv(b *testing.B) {
	for _, size := range []int{60, 1514} {
		for _, slot := range []int{256, 2048} {
			b.Run(fmt.Sprintf("frame=%d/slot=%d", size, slot), func(b *testing.B) {
				benchRecv(b, size, slot)
			})
		}
	}
}

func benchRecv(b *testing.B, size, slot int) {
	p := newAFPair(b, 0, AFPacketConfig{}, AFPacketConfig{FrameSize: slot, RingFrames: 1024})
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		frames := make([][]byte, 64)
		for i := range frames {
			frames[i] = testFrame(size, uint32(i))
		}
		for !stop.Load() {
			p.pa.SendBatch(0, frames, nil)
		}
	}()
	bt := NewBatch(256)
	b.ResetTimer()
	start := time.Now()
	got := 0
	for got < b.N {
		n, err := p.pb.TryRecv(0, bt)
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	el := time.Since(start)
	b.StopTimer()
	stop.Store(true)
	<-done
	b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
	s := p.pb.Stats()
	b.ReportMetric(float64(s.RxKernelDrops)/float64(got+int(s.RxKernelDrops)), "dropfrac")
}
