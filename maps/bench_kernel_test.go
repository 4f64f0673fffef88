//go:build linux && kernelbench

// The kernel's own maps doing the work of BenchmarkProgram through the same
// program in BPF_PROG_TEST_RUN. Built only with -tags kernelbench while
// internal/kernel is not part of the repository; needs root:
//
//	go test -tags kernelbench -run '^$' -bench 'Program|Kernel' -benchtime 2000x ./maps/

package maps

import (
	"encoding/binary"
	"testing"

	"github.com/govswitch/vswitch/internal/kernel"
)

func BenchmarkKernel(b *testing.B) {
	if err := kernel.Available(); err != nil {
		b.Skipf("kernel eBPF not usable (needs Linux and root): %v", err)
	}
	types := map[Type]kernel.MapType{Array: kernel.Array, Hash: kernel.Hash, LRUHash: kernel.LRUHash}
	for _, bm := range benchMaps {
		for _, sz := range benchSizes {
			b.Run(bm.name+"/"+sz.name, func(b *testing.B) {
				m, err := kernel.CreateMap(types[bm.typ], 4, 8, sz.n, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				if bm.typ != Array {
					k, v := make([]byte, 4), make([]byte, 8)
					for i := range sz.n {
						binary.NativeEndian.PutUint32(k, i)
						if err := m.Update(k, v); err != nil {
							b.Fatal(err)
						}
					}
				}
				for _, update := range []bool{false, true} {
					name := "lookup"
					if update {
						name = "update"
					}
					p, err := kernel.LoadProgramWithMaps(kernel.XDP, loopProgram(update, sz.n), []*kernel.Map{m})
					if err != nil {
						b.Fatal(err)
					}
					pkt := make([]byte, 64)
					b.Run("kernel/"+name, func(b *testing.B) {
						ret, _, dur, err := p.TestRun(pkt, b.N)
						if err != nil || ret != 2 {
							b.Fatalf("test run: %d, %v", ret, err)
						}
						// The kernel's measure of one run (it excludes the
						// system call and the XDP dispatcher setup).
						b.ReportMetric(float64(dur.Nanoseconds())/benchLoops, "kernel-ns/"+name)
					})
					p.Close()
				}
			})
		}
	}
}
