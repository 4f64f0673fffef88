package maps

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// Benchmarks of lookups and updates of array, hash and LRU hash maps at 1k
// and 1M entries: from Go (control plane and data path), and from a
// running program. The program does 1000 lookups (or updates) of keys
// spread over the map in a loop, so that the cost of entering it
// disappears; the kernel runs the very same program on its own maps in
// bench_kernel_test.go (go test -tags kernelbench). Report: ns/lookup.
//
//	go test -run '^$' -bench . -benchtime 2000x ./maps/

type benchMap struct {
	name string
	typ  Type
}

var benchMaps = []benchMap{{"array", Array}, {"hash", Hash}, {"lru", LRUHash}}

var benchSizes = []struct {
	name string
	n    uint32
}{{"1k", 1 << 10}, {"1M", 1 << 20}}

// benchFilled returns a map of n entries with keys 0..n-1 (u32).
func benchFilled(b *testing.B, typ Type, n uint32) Map {
	m, err := New(Spec{Type: typ, KeySize: 4, ValueSize: 8, MaxEntries: n})
	if err != nil {
		b.Fatal(err)
	}
	if typ != Array {
		k, v := make([]byte, 4), make([]byte, 8)
		for i := range n {
			binary.NativeEndian.PutUint32(k, i)
			if err := m.Update(k, v, UpdateAny); err != nil {
				b.Fatal(err)
			}
		}
	}
	return m
}

// spread visits keys in an order that defeats caches at 1M entries.
func spread(i, n uint32) uint32 { return (i * 7919) & (n - 1) }

func BenchmarkGo(b *testing.B) {
	for _, bm := range benchMaps {
		for _, sz := range benchSizes {
			b.Run(bm.name+"/"+sz.name, func(b *testing.B) {
				m := benchFilled(b, bm.typ, sz.n)
				defer m.Close()
				key, val := make([]byte, 4), make([]byte, 8)
				b.Run("Lookup", func(b *testing.B) {
					defer startCPU().report(b, 1, "op")
					for i := range uint32(b.N) {
						binary.NativeEndian.PutUint32(key, spread(i, sz.n))
						if _, err := m.Lookup(key); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("LookupAddr", func(b *testing.B) {
					defer startCPU().report(b, 1, "op")
					for i := range uint32(b.N) {
						binary.NativeEndian.PutUint32(key, spread(i, sz.n))
						if m.LookupAddr(key, 0) == 0 {
							b.Fatal("miss")
						}
					}
				})
				b.Run("Update", func(b *testing.B) {
					defer startCPU().report(b, 1, "op")
					for i := range uint32(b.N) {
						binary.NativeEndian.PutUint32(key, spread(i, sz.n))
						binary.NativeEndian.PutUint64(val, uint64(i))
						if err := m.Update(key, val, UpdateAny); err != nil {
							b.Fatal(err)
						}
					}
				})
				if bm.typ != Array {
					b.Run("DeleteInsert", func(b *testing.B) {
						defer startCPU().report(b, 1, "op")
						for i := range uint32(b.N) {
							binary.NativeEndian.PutUint32(key, spread(i, sz.n))
							m.Delete(key)
							if err := m.Update(key, val, UpdateNoExist); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			})
		}
	}
}

// benchLoops is the number of map operations per program run.
const benchLoops = 1000

// loopProgram returns a program doing benchLoops lookups (helper 1) or
// updates (helper 2) of keys spread(i, n) of map 0, returning XDP_PASS.
func loopProgram(update bool, n uint32) []asm.Instruction {
	op := `
	call 1
	jeq %r0, 0, next
	ldxdw %r1, [%r0+0]
	add %r7, %r1`
	if update {
		op = `
	stxdw [%r10-16], %r6
	mov %r3, %r10
	add %r3, -16
	mov %r4, 0
	call 2
	add %r7, %r0`
	}
	return asm.MustAssemble(fmt.Sprintf(`
	mov %%r6, 0
	mov %%r7, 0
loop:
	mov %%r1, %%r6
	mul %%r1, 7919
	and %%r1, %d
	stxw [%%r10-4], %%r1
	lddw %%r1, map[0]
	mov %%r2, %%r10
	add %%r2, -4
	%s
next:
	add %%r6, 1
	jlt %%r6, %d, loop
	mov %%r0, 2
	exit`, n-1, op, benchLoops))
}

func BenchmarkProgram(b *testing.B) {
	for _, bm := range benchMaps {
		for _, sz := range benchSizes {
			b.Run(bm.name+"/"+sz.name, func(b *testing.B) {
				m := benchFilled(b, bm.typ, sz.n)
				defer m.Close()
				for _, eng := range engines {
					for _, update := range []bool{false, true} {
						name := "lookup"
						if update {
							name = "update"
						}
						p, err := vm.Load(loopProgram(update, sz.n), vm.Options{Maps: []vm.Map{m}, Helpers: Helpers()})
						if err != nil {
							b.Fatal(err)
						}
						r, err := eng.prepare(p)
						if err != nil {
							b.Fatal(err)
						}
						b.Run(eng.name+"/"+name, func(b *testing.B) {
							env := vm.NewEnv()
							b.ReportAllocs()
							defer startCPU().report(b, benchLoops, name)
							for b.Loop() {
								if _, err := r.Run(env, 0, 0); err != nil {
									b.Fatal(err)
								}
							}
							b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchLoops, "ns/"+name)
						})
					}
				}
			})
		}
	}
}

// TestDataPathAllocs: lookups and updates from programs and from Go's data
// path do not allocate.
func TestDataPathAllocs(t *testing.T) {
	specs := []Spec{
		{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1024},
		{Type: PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1024, CPUs: 2},
		{Type: Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1024},
		{Type: PerCPUHash, KeySize: 4, ValueSize: 8, MaxEntries: 1024, CPUs: 2},
		{Type: LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 512},
	}
	for _, s := range specs {
		m := mustNew(t, s)
		for _, eng := range engines {
			for _, update := range []bool{true, false} {
				p, err := vm.Load(loopProgram(update, 1024), vm.Options{Maps: []vm.Map{m}, Helpers: Helpers()})
				if err != nil {
					t.Fatal(err)
				}
				r, err := eng.prepare(p)
				if err != nil {
					t.Fatal(err)
				}
				env := vm.NewEnv()
				r.Run(env, 0, 0)
				if n := testing.AllocsPerRun(20, func() { r.Run(env, 0, 0) }); n != 0 {
					t.Errorf("%v on %s (update %v): %v allocations per run", s.Type, eng.name, update, n)
				}
			}
		}
		key, val := u32(3), make([]byte, s.ValueSize)
		if n := testing.AllocsPerRun(100, func() { m.UpdateFrom(key, val, UpdateAny, 1); m.LookupAddr(key, 1) }); n != 0 {
			t.Errorf("%v: UpdateFrom+LookupAddr allocate %v times", s.Type, n)
		}
	}
	lpm := mustNew(t, Spec{Type: LPMTrie, KeySize: 8, ValueSize: 8, MaxEntries: 16, Flags: FlagNoPrealloc})
	k, v := lpmKey("10.0.0.0/8"), u64(1)
	if n := testing.AllocsPerRun(100, func() { lpm.UpdateFrom(k, v, UpdateAny, 0); lpm.LookupAddr(k, 0) }); n != 0 {
		t.Errorf("LPM: UpdateFrom+LookupAddr allocate %v times", n)
	}
}

// BenchmarkProgramBaseline is the loop of BenchmarkProgram calling
// bpf_get_smp_processor_id instead of a map helper: the cost of the loop
// and of a helper call on each engine, to subtract.
func BenchmarkProgramBaseline(b *testing.B) {
	insns := asm.MustAssemble(fmt.Sprintf(`
	mov %%r6, 0
	mov %%r7, 0
loop:
	mov %%r1, %%r6
	mul %%r1, 7919
	and %%r1, 1023
	stxw [%%r10-4], %%r1
	lddw %%r1, 0
	mov %%r2, %%r10
	add %%r2, -4
	call 8
	add %%r7, %%r0
	add %%r6, 1
	jlt %%r6, %d, loop
	mov %%r0, 2
	exit`, benchLoops))
	for _, eng := range engines {
		p, err := vm.Load(insns, vm.Options{Helpers: Helpers()})
		if err != nil {
			b.Fatal(err)
		}
		r, err := eng.prepare(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(eng.name, func(b *testing.B) {
			env := vm.NewEnv()
			defer startCPU().report(b, benchLoops, "call")
			for b.Loop() {
				r.Run(env, 0, 0)
			}
		})
	}
}
