package bpfport

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAFXDPRecv measures the receive path of an AF_XDP port fed over
// a veth by an AF_PACKET port sending as fast as it can.
//
//	go test -run - -bench AFXDP ./bpfport
func BenchmarkAFXDPRecv(b *testing.B) {
	for _, size := range []int{60, 1514} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			p := newXDPPair(b, AFXDPConfig{})
			stop := feed(p.pp, size)
			bt := NewBatch(256)
			b.ResetTimer()
			start := time.Now()
			got := 0
			for got < b.N {
				n, err := p.px.TryRecv(0, bt)
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			el := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
			s := p.px.Stats()
			b.ReportMetric(float64(s.RxKernelDrops)/float64(got+int(s.RxKernelDrops)), "dropfrac")
		})
	}
}

// feed sends frames of size bytes out of p as fast as it takes them until
// the returned function is called.
func feed(p Port, size int) (stop func()) {
	var done atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		frames := make([][]byte, 64)
		for i := range frames {
			frames[i] = testFrame(size, uint32(i))
		}
		for !done.Load() {
			p.SendBatch(0, frames, nil)
		}
	}()
	return func() {
		done.Store(true)
		<-finished
	}
}

// BenchmarkAFXDPSend measures the transmit path (a copy into the UMEM and
// the kick) of an AF_XDP port sending into a veth, beside an AF_PACKET
// port's (sendmmsg) on the same veth for reference.
func BenchmarkAFXDPSend(b *testing.B) {
	for _, size := range []int{60, 1514} {
		for _, kind := range []string{"afxdp", "afpacket"} {
			b.Run(fmt.Sprintf("frame=%d/port=%s", size, kind), func(b *testing.B) {
				p := newXDPPair(b, AFXDPConfig{})
				var port Port = p.px
				if kind == "afpacket" {
					p.px.Close()
					port = openAF(b, p.nsX, p.x, AFPacketConfig{})
				}
				frames := make([][]byte, 64)
				for i := range frames {
					frames[i] = testFrame(size, uint32(i))
				}
				b.ResetTimer()
				sent := 0
				for sent < b.N {
					n, err := port.SendBatch(0, frames, nil)
					if err != nil {
						b.Fatal(err)
					}
					sent += n
				}
				b.StopTimer()
				b.ReportMetric(float64(port.Stats().TxRingFull)/float64(sent), "fullfrac")
			})
		}
	}
}

// BenchmarkAFXDPForward receives on one AF_XDP port and sends on another,
// as the switch does: by descriptor when they share a UMEM, by copy when
// each has its own.
func BenchmarkAFXDPForward(b *testing.B) {
	for _, shared := range []bool{true, false} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			g := NewUMEMGroup(0)
			cfg := AFXDPConfig{}
			if shared {
				cfg.Share = g
			}
			in, out := newXDPPair(b, cfg), newXDPPair(b, cfg)
			stop := feed(in.pp, 60)
			bt := NewBatch(256)
			b.ResetTimer()
			got := 0
			for got < b.N {
				n, err := in.px.TryRecv(0, bt)
				if err != nil {
					b.Fatal(err)
				}
				out.px.SendBatch(0, bt.Frames[:n], nil)
				got += n
			}
			b.StopTimer()
			stop()
			c := out.px.Counters()
			b.ReportMetric(float64(c.ZeroCopySent)/float64(c.ZeroCopySent+c.CopiedSent), "zcfrac")
		})
	}
}
