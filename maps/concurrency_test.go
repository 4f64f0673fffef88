package maps

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govswitch/vswitch/vm"
)

// The tests here hammer each map type from several goroutines at once:
// workers running programs (lock-free lookups, atomic adds on values,
// updates from the data path) against the control plane (updates,
// deletes, iteration). They check the guarantees of the package doc and
// are meant for `go test -race`. Loops are bounded. Each runs on every
// engine: the JIT does lookups in machine code, over the maps' memory,
// which must keep the same guarantees.

// onEngines runs test once per engine, with a function that prepares a
// program for it.
func onEngines(t *testing.T, test func(t *testing.T, prepare func(*vm.Program) vm.Runner)) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			test(t, func(p *vm.Program) vm.Runner {
				r, err := eng.prepare(p)
				if err != nil {
					t.Fatal(err)
				}
				return r
			})
		})
	}
}

func iters(t *testing.T, n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

// countProg: key = u32 r1; if found, atomically add 1 to the value's
// first u64 and return 1; else insert value 1 with NOEXIST and return 0.
const countProg = `
	stxw [%r10-4], %r1
	stdw [%r10-16], 1
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, insert
	mov %r1, 1
	lock add [%r0+0], %r1
	mov %r0, 1
	exit
insert:
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	mov %r3, %r10
	add %r3, -16
	mov %r4, 1
	call 2
	mov %r0, 0
	exit`

// hammerHash runs workers counting on stable keys [0, stable) and random
// churn keys while the control plane updates, deletes and iterates.
func hammerHash(t *testing.T, spec Spec) {
	onEngines(t, func(t *testing.T, prepare func(*vm.Program) vm.Runner) { hammerHashOn(t, spec, prepare) })
}

func hammerHashOn(t *testing.T, spec Spec, prepare func(*vm.Program) vm.Runner) {
	m := mustNew(t, spec)
	const stable = 16
	for k := range uint32(stable) {
		if err := m.Update(u32(k), make([]byte, m.(*htab).valueSize()), UpdateNoExist); err != nil {
			t.Fatal(err)
		}
	}
	p := prepare(loadProg(t, countProg, []Map{m}))
	n := iters(t, 4000)
	var wg sync.WaitGroup
	var missedStable atomic.Int64
	const workers = 3
	for w := range workers {
		wg.Go(func() {
			env := vm.NewEnv()
			env.CPU = w
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range n {
				key := uint64(i % stable)
				if i%2 == 1 {
					key = stable + rng.Uint64N(200)
				}
				r0, err := p.Run(env, key, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if key < stable && r0 != 1 {
					missedStable.Add(1)
				}
			}
		})
	}
	wg.Go(func() { // control plane: churn
		rng := rand.New(rand.NewPCG(9, 9))
		v := make([]byte, m.(*htab).valueSize())
		for range n {
			k := u32(stable + uint32(rng.IntN(200)))
			switch rng.IntN(3) {
			case 0, 1:
				binary.NativeEndian.PutUint64(v, rng.Uint64())
				if err := m.Update(k, v, UpdateAny); err != nil && !errors.Is(err, ErrFull) {
					t.Error(err)
					return
				}
			case 2:
				m.Delete(k)
			}
		}
	})
	wg.Go(func() { // control plane: dumps
		for range n / 50 {
			var k []byte
			for steps := 0; ; steps++ {
				next, err := m.NextKey(k)
				if err != nil {
					break
				}
				if steps > 10*int(spec.MaxEntries) {
					t.Error("iteration does not end")
					return
				}
				m.Lookup(next)
				k = next
			}
		}
	})
	wg.Wait()
	if spec.Type == LRUHash {
		// Hot keys are not pinned: the churn may evict one between two
		// lookups of it; the program then inserts it again.
		return
	}
	if missedStable.Load() != 0 {
		t.Errorf("lock-free lookups missed keys that were never deleted %d times", missedStable.Load())
	}
	var total uint64
	for k := range uint32(stable) {
		v, err := m.Lookup(u32(k))
		if err != nil {
			t.Fatalf("stable key %d: %v", k, err)
		}
		for c := 0; c < len(v); c += 8 {
			total += binary.NativeEndian.Uint64(v[c:])
		}
	}
	if want := uint64(workers * n / 2); total != want {
		t.Errorf("stable counters sum to %d, want %d (an atomic add was lost)", total, want)
	}
}

func TestConcurrentHash(t *testing.T) {
	hammerHash(t, Spec{Type: Hash, KeySize: 4, ValueSize: 8, MaxEntries: 128})
}

func TestConcurrentPerCPUHash(t *testing.T) {
	hammerHash(t, Spec{Type: PerCPUHash, KeySize: 4, ValueSize: 8, MaxEntries: 128, CPUs: 3})
}

func TestConcurrentLRU(t *testing.T) {
	hammerHash(t, Spec{Type: LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 64})
}

// TestConcurrentUntorn: the control plane writes values whose words are
// all equal; concurrent control-plane reads never see a mix.
func TestConcurrentUntorn(t *testing.T) {
	specs := []Spec{
		{Type: Array, KeySize: 4, ValueSize: 40, MaxEntries: 4},
		{Type: PerCPUArray, KeySize: 4, ValueSize: 24, MaxEntries: 4, CPUs: 2},
		{Type: Hash, KeySize: 4, ValueSize: 40, MaxEntries: 4},
		{Type: LRUHash, KeySize: 4, ValueSize: 40, MaxEntries: 4},
		{Type: LPMTrie, KeySize: 8, ValueSize: 40, MaxEntries: 4, Flags: FlagNoPrealloc},
	}
	for _, spec := range specs {
		t.Run(spec.Type.String(), func(t *testing.T) {
			m := mustNew(t, spec)
			key := u32(1)
			if spec.Type == LPMTrie {
				key = lpmKey("10.0.0.0/8")
			}
			size := len(mustLookupSize(t, m, key))
			n := iters(t, 3000)
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Go(func() {
					v := make([]byte, size)
					for i := range n {
						for c := 0; c < size; c += 8 {
							binary.NativeEndian.PutUint64(v[c:], uint64(w<<32|i))
						}
						if err := m.Update(key, v, UpdateAny); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				for range 2 * n {
					v, err := m.Lookup(key)
					if err != nil {
						t.Error(err)
						return
					}
					for c := 8; c < size; c += 8 {
						if binary.NativeEndian.Uint64(v[c:]) != binary.NativeEndian.Uint64(v) {
							t.Errorf("torn value %x", v)
							return
						}
					}
				}
			})
			wg.Wait()
		})
	}
}

func mustLookupSize(t *testing.T, m Map, key []byte) []byte {
	s := m.Spec()
	size := int(s.ValueSize+7) &^ 7
	if s.Type.perCPU() {
		size *= s.CPUs
	}
	v := make([]byte, size)
	if err := m.Update(key, v[:perValue(s, size)], UpdateAny); err != nil {
		t.Fatal(err)
	}
	return v[:perValue(s, size)]
}

func perValue(s Spec, padded int) int {
	if s.Type.perCPU() {
		return padded
	}
	return int(s.ValueSize)
}

// TestConcurrentArrayCounters: workers count with atomics on per-CPU and
// shared arrays while the control plane reads and rewrites other indexes.
func TestConcurrentArrayCounters(t *testing.T) {
	for _, spec := range []Spec{
		{Type: Array, KeySize: 4, ValueSize: 8, MaxEntries: 8},
		{Type: PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 8, CPUs: 3},
	} {
		t.Run(spec.Type.String(), func(t *testing.T) {
			onEngines(t, func(t *testing.T, prepare func(*vm.Program) vm.Runner) { arrayCounters(t, spec, prepare) })
		})
	}
}

func arrayCounters(t *testing.T, spec Spec, prepare func(*vm.Program) vm.Runner) {
	{
		{
			m := mustNew(t, spec)
			p := prepare(loadProg(t, countProg, []Map{m}))
			n := iters(t, 5000)
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Go(func() {
					env := vm.NewEnv()
					env.CPU = w
					for i := range n {
						if r0, err := p.Run(env, uint64(i%4), 0); err != nil || r0 != 1 {
							t.Errorf("run: %d, %v", r0, err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				v := make([]byte, mustLookupSizeLen(m))
				for i := range n {
					m.Update(u32(uint32(4+i%4)), v, UpdateAny)
					m.Lookup(u32(uint32(i % 8)))
					m.NextKey(u32(uint32(i % 8)))
				}
			})
			wg.Wait()
			var total uint64
			for k := range uint32(4) {
				v, _ := m.Lookup(u32(k))
				for c := 0; c < len(v); c += 8 {
					total += binary.NativeEndian.Uint64(v[c:])
				}
			}
			if total != uint64(3*n) {
				t.Errorf("counters sum to %d, want %d", total, 3*n)
			}
		}
	}
}

func mustLookupSizeLen(m Map) int {
	s := m.Spec()
	if s.Type.perCPU() {
		return perCPUValueSize(s.ValueSize, s.CPUs)
	}
	return int(s.ValueSize)
}

// TestConcurrentLPM: routes come and go while lookups of addresses under
// a route that stays must always find a match.
func TestConcurrentLPM(t *testing.T) { onEngines(t, concurrentLPM) }

func concurrentLPM(t *testing.T, prepare func(*vm.Program) vm.Runner) {
	m := mustNew(t, Spec{Type: LPMTrie, KeySize: 8, ValueSize: 8, MaxEntries: 256, Flags: FlagNoPrealloc})
	if err := m.Update(lpmKey("10.0.0.0/8"), u64(8), UpdateAny); err != nil {
		t.Fatal(err)
	}
	p := prepare(loadProg(t, `
	stw [%r10-8], 32
	be32 %r1
	stxw [%r10-4], %r1
	mov %r2, %r10
	add %r2, -8
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, miss
	mov %r1, 1
	lock add [%r0+0], %r1
	mov %r0, 1
	exit
miss:
	mov %r0, 0
	exit`, []Map{m}))
	n := iters(t, 4000)
	var wg sync.WaitGroup
	var misses atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			env := vm.NewEnv()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range n {
				addr := 0x0a000000 | rng.Uint64N(1<<24)
				r0, err := p.Run(env, addr, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if r0 == 0 {
					misses.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 3))
		for range n {
			pf := fmt.Sprintf("10.%d.%d.0/%d", rng.IntN(4), rng.IntN(256), 9+rng.IntN(24))
			k := lpmKey(pf)
			if rng.IntN(2) == 0 {
				if err := m.Update(k, u64(0), UpdateAny); err != nil && !errors.Is(err, ErrFull) {
					t.Error(pf, err)
				}
			} else {
				m.Delete(k)
			}
		}
	})
	wg.Go(func() {
		for range n / 20 {
			var k []byte
			for steps := 0; steps < 1000; steps++ {
				next, err := m.NextKey(k)
				if err != nil {
					break
				}
				m.Lookup(next)
				k = next
			}
		}
	})
	wg.Wait()
	if misses.Load() != 0 {
		t.Errorf("%d lookups under 10.0.0.0/8 found nothing", misses.Load())
	}
}

// TestConcurrentProgramArray: slots swap while workers tail-call through them.
func TestConcurrentProgramArray(t *testing.T) { onEngines(t, concurrentProgramArray) }

func concurrentProgramArray(t *testing.T, prepare func(*vm.Program) vm.Runner) {
	m := mustNew(t, Spec{Type: ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	pa := m.(*ProgramArray)
	main := prepare(loadProg(t, "lddw %r2, map[0]\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit", []Map{m}))
	a := loadProg(t, "mov %r0, 1\nexit", nil)
	b := loadProg(t, "mov %r0, 2\nexit", nil)
	n := iters(t, 5000)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			env := vm.NewEnv()
			for range n {
				r0, err := main.Run(env, 0, 0)
				if err != nil || r0 > 2 {
					t.Errorf("%d, %v", r0, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range n {
			switch i % 3 {
			case 0:
				pa.SetProgram(0, a)
			case 1:
				pa.SetProgram(0, b)
			case 2:
				m.Delete(u32(0))
			}
		}
	})
	wg.Wait()
}

// TestConcurrentRingBuffer: producers output numbered records, the
// consumer receives every one that was not dropped, in per-producer order.
func TestConcurrentRingBuffer(t *testing.T) { onEngines(t, concurrentRingBuffer) }

func concurrentRingBuffer(t *testing.T, prepare func(*vm.Program) vm.Runner) {
	m := mustNew(t, Spec{Type: RingBuf, MaxEntries: 8192})
	rb := m.(*RingBuffer)
	p := prepare(loadProg(t, `
	mov %r6, %r1
	lddw %r1, map[0]
	mov %r2, 24
	mov %r3, 0
	call 131
	jeq %r0, 0, drop
	stxdw [%r0+0], %r6
	stxdw [%r0+16], %r6
	mov %r1, %r0
	mov %r2, 0
	call 132
	mov %r0, 0
	exit
drop:
	mov %r0, 1
	exit`, []Map{m}))
	n := iters(t, 5000)
	const producers = 3
	var sent, dropped atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 1)
	go func() {
		last := [producers]int64{-1, -1, -1}
		count := 0
		for {
			rec, err := rb.Read(ctx)
			if err != nil {
				got <- count
				return
			}
			v := binary.NativeEndian.Uint64(rec)
			w, i := int(v>>32), int64(uint32(v))
			if binary.NativeEndian.Uint64(rec[16:]) != v || w >= producers || i <= last[w] {
				t.Errorf("bad record %x after %d", rec, last)
			}
			last[w] = i
			count++
		}
	}()
	var wg sync.WaitGroup
	for w := range producers {
		wg.Go(func() {
			env := vm.NewEnv()
			for i := range n {
				r0, err := p.Run(env, uint64(w)<<32|uint64(i), 0)
				if err != nil {
					t.Error(err)
					return
				}
				if r0 == 0 {
					sent.Add(1)
				} else {
					dropped.Add(1)
					time.Sleep(10 * time.Microsecond)
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for rb.Stats().Pending != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	count := <-got
	st := rb.Stats()
	if int64(count) != sent.Load() || st.Submitted != uint64(sent.Load()) || st.Dropped != uint64(dropped.Load()) {
		t.Errorf("received %d, sent %d, dropped %d; stats %+v", count, sent.Load(), dropped.Load(), st)
	}
	t.Logf("sent %d, dropped %d", sent.Load(), dropped.Load())
}
