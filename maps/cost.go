package maps

// What the helpers charge to a run's budget (vm.Env.Charge), in units of
// about a nanosecond of the work on this machine class (a unit is also one
// instruction). A charge depends only on the map's spec and the helper's
// arguments, never on the map's contents, so that both engines (and code a
// JIT emits for a helper) charge the same: it is the work of the worst
// case, not of the call at hand.
const (
	// costWord is an 8-byte word written into map memory: an atomic store,
	// 6-12 ns each measured on this machine class.
	costWord = 8
	// costProbe is hashing a key and probing its bucket: about 10 ns in
	// a small map, but in one of millions of elements every probe misses
	// the caches and the TLB (measured up to 500 ns a lookup on the
	// interpreter, BenchmarkBudget), beside one unit per key word hashed
	// and compared.
	costProbe = 96
	// costTrace is formatting and logging a bpf_trace_printk line.
	costTrace = 1000
)

// Helper operations, for opCost.
const (
	opLookup = iota
	opUpdate
	opDelete
)

// opCost returns the charge of a map helper's operation on m.
func opCost(m Map, op int) uint64 {
	switch m := m.(type) {
	case *htab:
		probe := costProbe + uint64(m.kw)
		switch op {
		case opUpdate:
			vw := uint64(words(m.vsize))
			if m.percpu {
				vw *= uint64(m.ncpu) // a new element zeroes the other CPUs' slots
			}
			return probe + (uint64(m.kw)+vw)*costWord
		default:
			return probe
		}
	case *array:
		if op == opUpdate {
			return uint64(words(m.vsize)) * costWord
		}
		return 0
	case *lpm:
		// A walk visits at most maxBits+2 nodes and compares up to dw
		// words at each.
		walk := costProbe + uint64(m.maxBits+2)*uint64(2+m.dw)
		if op == opUpdate {
			return walk + uint64(words(int(m.spec.ValueSize))+m.nw)*costWord
		}
		return walk
	}
	return 0
}
