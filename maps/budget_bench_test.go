package maps

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// BenchmarkBudget runs programs that spend the default budget in the
// costliest ways known, on both engines, and reports how long one run
// takes until its budget fault: the bound on how long one frame can hold a
// worker (vm.Env.Budget, vm/doc.go).
//
//	go test ./maps -run '^$' -bench Budget -benchtime 20x
func BenchmarkBudget(b *testing.B) {
	// Sixty-four maps: region searches for the last one scan them all.
	var many []Spec
	for range 63 {
		many = append(many, Spec{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	}
	lookupLast := `
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[63]
	call 1
	jeq %r0, 0, out
	stxdw [%r10-16], %r0
	ldxdw %r6, [%r10-16]
loop:
	ldxdw %r1, [%r6+0]
	ja loop
out:
	exit`
	cases := []struct {
		name string
		maps []Spec
		src  string
		fill func(Map)
	}{
		{"alu", nil, "mov %r0, 0\nloop:\nadd %r0, 3\nxor %r0, 5\nja loop", nil},
		{"region search, 64 maps", append(many, Spec{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}), lookupLast, nil},
		{"helper calls", nil, "loop:\ncall 8\nja loop", nil},
		{"hash lookups, 1M elements", []Spec{{Type: LRUHash, KeySize: 8, ValueSize: 8, MaxEntries: 1 << 20}}, `
	mov %r6, 0
loop:
	add %r6, 0x9e3779b9
	and %r6, 0xfffff
	stxdw [%r10-8], %r6
	mov %r2, %r10
	add %r2, -8
	lddw %r1, map[0]
	call 1
	ja loop`, func(m Map) {
			for k := range uint64(1 << 20) {
				m.Update(u64(k), u64(k), UpdateAny)
			}
		}},
		{"1 MiB updates", []Spec{{Type: Array, KeySize: 4, ValueSize: 1 << 20, MaxEntries: 2}}, `
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, out
	mov %r6, %r0
	stw [%r10-4], 1
loop:
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	mov %r3, %r6
	mov %r4, 0
	call 2
	ja loop
out:
	exit`, nil},
		{"trace_printk", nil, `
	stdw [%r10-8], 0x0a6425
loop:
	mov %r1, %r10
	add %r1, -8
	mov %r2, 8
	mov %r3, 7
	call 6
	ja loop`, nil},
	}
	for _, tc := range cases {
		var ms []Map
		for _, s := range tc.maps {
			ms = append(ms, mustNew(b, s))
		}
		if tc.fill != nil {
			tc.fill(ms[0])
		}
		insns, err := asm.Assemble(tc.src)
		if err != nil {
			b.Fatal(err)
		}
		vms := make([]vm.Map, len(ms))
		for i, m := range ms {
			vms[i] = m
		}
		p, err := vm.Load(insns, vm.Options{Name: strings.ReplaceAll(tc.name, " ", "_"), Maps: vms, Helpers: Helpers()})
		if err != nil {
			b.Fatal(err)
		}
		for _, eng := range engines {
			r, err := eng.prepare(p)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%s", tc.name, eng.name), func(b *testing.B) {
				env := vm.NewEnv()
				for b.Loop() {
					_, err := r.Run(env, 0, 0)
					var e *vm.Error
					if !errors.As(err, &e) || e.Kind != vm.KindBudget {
						b.Fatalf("run: %v, want a budget fault", err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/run")
			})
		}
	}
}
