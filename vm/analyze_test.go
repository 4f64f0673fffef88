package vm_test

import (
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// layoutMap is a map with a layout: one value of valueSize bytes.
type layoutMap struct {
	buf    []uint64
	layout vm.MapLayout
}

func newLayoutMap(valueSize uint32, readOnly bool) *layoutMap {
	m := &layoutMap{buf: make([]uint64, 64)}
	a := uint64(uintptrOf(m.buf))
	m.layout = vm.MapLayout{Kind: vm.MapArray, KeySize: 4, ValueSize: valueSize, ReadOnly: readOnly, MaxEntries: 1, Values: a, Stride: 512, CPUs: 1}
	return m
}

func (m *layoutMap) Regions() []vm.Region {
	return []vm.Region{{Start: m.layout.Values, Size: 512, Stride: 512, Elem: uint64(m.layout.ValueSize), Writable: !m.layout.ReadOnly}}
}
func (m *layoutMap) DirectValue(off uint32) (uint64, error) {
	return m.layout.Values + uint64(off), nil
}
func (m *layoutMap) Layout() *vm.MapLayout { return &m.layout }

// analysisHelpers: 1 is a map lookup (it returns the map's value for key 0,
// or 0), 2 anything.
func analysisHelpers(ms []*layoutMap) *vm.Helpers {
	hs := vm.BaseHelpers()
	hs.Register(vm.Helper{ID: 1, Op: vm.OpMapLookup, Fn: func(env *vm.Env, r1, r2, _, _, _ uint64) (uint64, error) {
		k := int(r1 - vm.MapHandle(0))
		key, ok := env.Bytes(r2, 4, false)
		if !ok || key[0] != 0 {
			return 0, nil
		}
		return ms[k].layout.Values, nil
	}})
	hs.Register(vm.Helper{ID: 2, Fn: func(*vm.Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) { return 0, nil }})
	return hs
}

// TestAnalysis checks what the analysis proves. In the programs, a memory
// access marked `# F` must be ProvenFrame, `# A` ProvenAlways; every other
// access must stay Unproven.
func TestAnalysis(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"ethernet header", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r4, %r2
			add %r4, 14
			jgt %r4, %r3, drop
			ldxb %r0, [%r2+0]    # F
			ldxh %r5, [%r2+12]   # F
			stb [%r2+13], 1      # F
			ldxb %r5, [%r2+14]
			ldxw %r5, [%r1+16]   # F
			stb [%r1+20], 3      # F
			exit
		drop:
			ldxb %r0, [%r2+0]
			mov %r0, 255
			exit`},
		{"data_end first, and strict comparisons", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r4, %r2
			add %r4, 20
			jlt %r3, %r4, drop
			ldxw %r0, [%r2+16]   # F
			mov %r4, %r2
			add %r4, 30
			jge %r4, %r3, drop
			ldxb %r0, [%r2+30]   # F
			ldxb %r0, [%r2+31]
		drop:
			exit`},
		{"off by one", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r4, %r2
			add %r4, 13
			jgt %r4, %r3, drop
			ldxb %r0, [%r2+12]   # F
			ldxh %r0, [%r2+12]
			ldxb %r0, [%r2-1]
		drop:
			exit`},
		{"a path without the check", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			ldxw %r5, [%r1+16]   # F
			jeq %r5, 7, skip
			mov %r4, %r2
			add %r4, 14
			jgt %r4, %r3, drop
		skip:
			ldxb %r0, [%r2+0]
		drop:
			exit`},
		{"IPv4 header length", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r4, %r2
			add %r4, 34
			jgt %r4, %r3, drop
			ldxb %r5, [%r2+14]   # F
			and %r5, 15
			lsh %r5, 2
			mov %r6, %r2
			add %r6, %r5
			mov %r7, %r6
			add %r7, 22
			jgt %r7, %r3, drop
			ldxh %r0, [%r6+14]   # F
			ldxh %r0, [%r6+20]   # F
			ldxb %r0, [%r6+22]
			ldxb %r0, [%r2+33]   # F
		drop:
			exit`},
		{"an unbounded offset", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			ldxw %r5, [%r2+0]
			mov %r6, %r2
			add %r6, %r5
			mov %r7, %r6
			add %r7, 4
			jgt %r7, %r3, drop
			ldxb %r0, [%r6+0]
		drop:
			exit`},
		{"a stale variable part", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			ldxw %r6, [%r1+16]   # F
			and %r6, 255
			mov %r8, %r2
		loop:
			mov %r4, %r2
			add %r4, %r6
			mov %r5, %r4
			add %r5, 1
			jgt %r5, %r3, next
			mov %r8, %r4
			ldxb %r0, [%r4+0]    # F
		next:
			ldxb %r0, [%r8+0]
			add %r6, 100
			and %r6, 255
			jlt %r6, 200, loop
			exit`},
		{"a spilled pointer", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r4, %r2
			add %r4, 14
			jgt %r4, %r3, drop
			stxdw [%r10-8], %r2  # A
			ldxdw %r5, [%r10-8]  # A
			ldxb %r0, [%r5+0]
			ldxb %r0, [%r2+0]    # F
		drop:
			exit`},
		{"the context", `
			ldxdw %r0, [%r1+0]   # F
			ldxw %r0, [%r1+20]   # F
			stw [%r1+16], 1      # F
			stdw [%r1+0], 0
			stdw [%r1+8], 0
			ldxdw %r0, [%r1+12]
			ldxb %r0, [%r1+24]
			ldxw %r0, [%r1-4]
			mov %r6, %r1
			add %r6, 16
			stb [%r6+4], 1       # F
			ldxw %r0, [%r6-16]   # F
			exit`},
		{"the stack", `
			stdw [%r10-8], 1     # A
			mov %r2, %r10
			add %r2, -16
			stxdw [%r2+0], %r2   # A
			ldxdw %r0, [%r2+8]   # A
			ldxdw %r0, [%r2+16]
			stdw [%r2-504], 1
			stdw [%r2-496], 1    # A
			ldxb %r0, [%r10-512] # A
			exit`},
		{"map values after a null check", `
			stw [%r10-4], 0      # A
			mov %r2, %r10
			add %r2, -4
			lddw %r1, map[0]
			call 1
			mov %r6, %r0
			ldxdw %r7, [%r0+0]
			jeq %r6, 0, out
			ldxdw %r7, [%r0+8]   # A
			stxdw [%r6+24], %r7  # A
			ldxdw %r7, [%r6+25]
			ldxb %r7, [%r0+32]
			ldxb %r7, [%r0+31]   # A
			ldxb %r7, [%r0-1]
			call 2
			ldxb %r7, [%r6+0]    # A
			ldxb %r7, [%r0+0]
		out:
			exit`},
		{"a read-only map", `
			stw [%r10-4], 0      # A
			mov %r2, %r10
			add %r2, -4
			lddw %r1, map[1]
			call 1
			jne %r0, 0, ok
			exit
		ok:
			ldxdw %r7, [%r0+0]   # A
			stdw [%r0+0], 1
			exit`},
		{"a map value with a bounded index", `
			stw [%r10-4], 0      # A
			mov %r2, %r10
			add %r2, -4
			lddw %r1, map[0]
			call 1
			jeq %r0, 0, out
			ldxw %r3, [%r0+0]    # A
			jgt %r3, 3, out
			lsh %r3, 3
			mov %r4, %r0
			add %r4, %r3
			ldxdw %r5, [%r4+0]   # A
			ldxdw %r5, [%r4+8]
			and %r3, 0x18
			add %r0, %r3
			ldxdw %r5, [%r0+8]
		out:
			exit`},
		{"global data", `
			lddw %r2, map[0]+8
			ldxdw %r0, [%r2+0]   # A
			ldxdw %r0, [%r2+24]
			exit`},
		{"a local call forgets r0..r5", `
			ldxdw %r2, [%r1+0]   # F
			ldxdw %r3, [%r1+8]   # F
			mov %r6, %r2
			mov %r4, %r2
			add %r4, 14
			jgt %r4, %r3, drop
			call local f
			ldxb %r0, [%r2+0]
			ldxb %r0, [%r6+0]    # F
		drop:
			exit
		f:
			ldxb %r0, [%r1+0]
			stdw [%r10-8], 0     # A
			exit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			insns := asm.MustAssemble(tc.text)
			ms := []*layoutMap{newLayoutMap(32, false), newLayoutMap(32, true)}
			p, err := vm.Load(insns, vm.Options{Maps: []vm.Map{ms[0], ms[1]}, Helpers: analysisHelpers(ms)})
			if err != nil {
				t.Fatal(err)
			}
			want := markedProofs(tc.text)
			for pc, i := range p.Instructions() {
				if got := p.Proof(pc); got != want[pc] {
					t.Errorf("%d: %s: proof %d, want %d", pc, asm.Format(i, asm.Instruction{}), got, want[pc])
				}
			}
		})
	}
}

// markedProofs reads the `# F` and `# A` marks of assembly text, by slot.
func markedProofs(text string) map[int]vm.Proof {
	want := map[int]vm.Proof{}
	slot := 0
	for _, line := range strings.Split(text, "\n") {
		code, mark, _ := strings.Cut(line, "#")
		code = strings.TrimSpace(code)
		if code == "" || strings.HasSuffix(code, ":") {
			continue
		}
		switch strings.TrimSpace(mark) {
		case "F":
			want[slot] = vm.ProvenFrame
		case "A":
			want[slot] = vm.ProvenAlways
		}
		slot++
		if strings.HasPrefix(code, "lddw") {
			slot++
		}
	}
	return want
}
