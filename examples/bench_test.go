package examples_test

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/kernel"
	"github.com/govswitch/vswitch/internal/testprogs"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/vm"
)

// A learning-switch step: learn.o forwards a frame from A to B, both
// learned. "steady" is the common case (two hash lookups: the source is
// where it was, the destination known); "moving" has A change ports on
// every frame, so every run also updates the fdb (two lookups and an
// update). The kernel runs the XDP build of the same source through
// BPF_PROG_TEST_RUN, timed by the kernel; it can only do "steady" (its
// repeats all see the same frame).
func BenchmarkLearnStep(b *testing.B) {
	for _, e := range engines {
		for _, moving := range []bool{false, true} {
			name := e.name + "/steady"
			if moving {
				name = e.name + "/moving"
			}
			b.Run(name, func(b *testing.B) {
				c := load(b, "learn.o", loader.Options{})
				sim := newSim(b, e, c.Programs["learn"])
				fr := frame(b, macA, macB, 0, nil)
				back := frame(b, macB, macA, 0, nil)
				sim.run(back, 2) // B on port 2
				if got := sim.run(fr, 1); got != 2 {
					b.Fatalf("A -> B went to %d, want 2", got)
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu := testprogs.ThreadCPU()
				ingress := uint32(1)
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if moving {
						ingress ^= 1 ^ 3 // 1, 3, 1, 3...
					}
					if i%256 == 0 {
						sim.env.Clock = vm.Ktime() // as a switch worker does once per batch
					}
					sim.env.RunFrame(sim.runner, fr, ingress)
				}
				b.ReportMetric(float64((testprogs.ThreadCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
	b.Run("kernel/steady", func(b *testing.B) {
		if err := kernel.Available(); err != nil {
			b.Skipf("kernel eBPF: %v", err)
		}
		k := loadKernel(b, "learn", "learn")
		fr := frame(b, macA, macB, 0, nil)
		in := func(f []byte, ingress uint32) []byte {
			return append(binary.LittleEndian.AppendUint32(nil, ingress), append([]byte{0, 0, 0, 0}, f...)...)
		}
		if _, _, _, err := k.prog.TestRun(in(frame(b, macB, macA, 0, nil), 2), 1); err != nil {
			b.Fatal(err)
		}
		var total time.Duration
		for b.Loop() {
			_, _, d, err := k.prog.TestRun(in(fr, 1), 1000)
			if err != nil {
				b.Fatal(err)
			}
			total += d
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/run")
	})
}
