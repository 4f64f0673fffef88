package maps

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/govswitch/vswitch/vm"
)

// TestLookupEngines looks keys up from programs, on every engine, in every
// map type the JIT serves in machine code, with keys of every size up to
// what it handles (and beyond): the address a program gets must be the one
// LookupAddr gives, for present and absent keys, on the stack or in other
// memory, from workers inside and past a per-CPU map's CPUs. On the JIT
// the lookups must not call the helper (they are done in machine code),
// except for what it leaves to the helper.
func TestLookupEngines(t *testing.T) {
	// The key is at r1, of the map's key size; the program copies it to
	// the stack first when r2 is not 0.
	const prog = `
	jeq %r2, 0, direct
	mov %r6, %r1
	mov %r7, %r10
	add %r7, -64
	mov %r8, 0
copy:
	mov %r3, %r6
	add %r3, %r8
	ldxb %r4, [%r3+0]
	mov %r3, %r7
	add %r3, %r8
	stxb [%r3+0], %r4
	add %r8, 1
	jlt %r8, %r2, copy
	mov %r1, %r7
direct:
	mov %r2, %r1
	lddw %r1, map[0]
	call 1
	exit`
	var calls int
	hs := Helpers()
	hs.Register(vm.Helper{ID: vm.HelperMapLookupElem, Op: vm.OpMapLookup, Fn: func(env *vm.Env, r1, r2, r3, r4, r5 uint64) (uint64, error) {
		calls++
		return mapLookupElem(env, r1, r2, r3, r4, r5)
	}})
	for _, eng := range engines {
		for _, typ := range []Type{Array, PerCPUArray, Hash, PerCPUHash, LRUHash} {
			sizes := []uint32{4}
			if typ != Array && typ != PerCPUArray {
				sizes = []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 20, 24, 31, 32, 33, 40}
			}
			for _, ks := range sizes {
				t.Run(fmt.Sprintf("%s/%s/key%d", eng.name, typ, ks), func(t *testing.T) {
					m := mustNew(t, Spec{Type: typ, KeySize: ks, ValueSize: 12, MaxEntries: 50, CPUs: 3})
					rng := rand.New(rand.NewPCG(uint64(ks), uint64(typ)))
					var keys [][]byte
					for k := range 80 {
						key := make([]byte, ks)
						for i := range key {
							key[i] = byte(rng.Uint32())
						}
						if typ == Array || typ == PerCPUArray {
							binary.NativeEndian.PutUint32(key, uint32(k))
						}
						keys = append(keys, key)
						if k < 40 {
							if err := m.Update(key, make([]byte, mustLookupSizeLen(m)), UpdateAny); err != nil {
								t.Fatal(err)
							}
						}
					}
					p := loadProgWith(t, prog, []Map{m}, hs)
					r, err := eng.prepare(p)
					if err != nil {
						t.Fatal(err)
					}
					env := vm.NewEnv()
					mem := make([]byte, 64)
					env.SetArgBytes(0, mem)
					calls = 0
					runs, pastCPUs := 0, 0
					for _, cpu := range []int{0, 2, 5} {
						env.CPU = cpu
						for _, key := range keys {
							for _, stack := range []bool{false, true} {
								copy(mem, key)
								arg := uint64(0)
								if stack {
									arg = uint64(ks)
								}
								got, err := r.Run(env, vm.AddrOf(mem), arg)
								runs++
								if err != nil {
									t.Fatalf("%v (mem at %#x, stack %v, cpu %d, regions %+v)", err, vm.AddrOf(mem), stack, cpu, *env.RegionTable())
								}
								if want := m.LookupAddr(key, cpu); got != want {
									t.Fatalf("cpu %d, key %x (stack %v): lookup gave %#x, want %#x", cpu, key, stack, got, want)
								}
								if cpu >= 3 && got != 0 {
									pastCPUs++
								}
							}
						}
					}
					if h, ok := m.(*htab); ok && h.lru {
						for s := range h.ref {
							if h.ref[s] != 0 && h.ref[s] != 1 {
								t.Fatalf("reference bit %d is %d", s, h.ref[s])
							}
						}
						if s := h.find(keys[0]); s == noSlot || h.ref[s] != 1 {
							t.Errorf("a lookup did not set the LRU reference bit")
						}
					}
					if eng.name != "jit" {
						if calls != runs {
							t.Errorf("%d helper calls for %d lookups", calls, runs)
						}
						return
					}
					// The JIT leaves to the helper only per-CPU lookups that
					// found an element for a worker past the map's CPUs, and
					// keys over 32 bytes.
					want := 0
					if typ == PerCPUArray || typ == PerCPUHash {
						want = pastCPUs
					}
					if ks > 32 {
						want = runs
					}
					if calls != want {
						t.Errorf("%d lookups went to the helper, want %d (the rest in machine code)", calls, want)
					}
				})
			}
		}
	}
}

// TestFloodSlotBatches is what a switch does for flood groups, on both
// engines: the program writes its flood set into its CPU's slot of a
// per-CPU array (vswitch_flood) and returns 254; RunFrames hands each
// flooding frame's set over in its result and clears the slot.
func TestFloodSlotBatches(t *testing.T) {
	const prog = `
	mov %r9, %r1
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, out
	mov %r6, %r0
	ldxdw %r2, [%r9+0]
	ldxdw %r3, [%r9+8]
	mov %r4, %r2
	add %r4, 1
	mov %r0, 3
	jgt %r4, %r3, out
	ldxb %r5, [%r2+0]
	jeq %r5, 0, out
	stxdw [%r6+0], %r5
	lsh %r5, 1
	stxdw [%r6+24], %r5
	mov %r0, 254
out:
	exit`
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			m := mustNew(t, Spec{Type: PerCPUArray, KeySize: 4, ValueSize: 32, MaxEntries: 1, CPUs: 2})
			p := loadProg(t, prog, []Map{m})
			r, err := eng.prepare(p)
			if err != nil {
				t.Fatal(err)
			}
			env := vm.NewEnv()
			env.CPU = 1
			env.FloodSlot = m.LookupAddr(u32(0), 1)
			frames := [][]byte{{5}, {0}, {9}, {}, {7}}
			res := make([]vm.FrameResult, len(frames))
			env.RunFrames(r, frames, 2, res)
			want := []struct {
				r0    uint64
				flood [4]uint64
			}{{254, [4]uint64{5, 0, 0, 10}}, {3, [4]uint64{}}, {254, [4]uint64{9, 0, 0, 18}}, {3, [4]uint64{}}, {254, [4]uint64{7, 0, 0, 14}}}
			for k, w := range want {
				if res[k].Failed() || res[k].R0 != w.r0 || res[k].Flood != w.flood {
					t.Errorf("frame %d: r0 %d flood %v (%v), want %d %v", k, res[k].R0, res[k].Flood, res[k].Err(), w.r0, w.flood)
				}
			}
			v, _ := m.Lookup(u32(0))
			if want := make([]byte, 64); string(v) != string(want) {
				t.Errorf("flood slots after the batch: %x, want zero (CPU 1's taken, CPU 0's untouched)", v)
			}
			if n := testing.AllocsPerRun(50, func() { env.RunFrames(r, frames, 2, res) }); n != 0 {
				t.Errorf("%v allocations per batch", n)
			}
		})
	}
}
