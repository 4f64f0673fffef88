package vm

// HelperOp says which map operation a helper performs, for the load-time
// analysis and for engines that serve map helpers without calling them.
type HelperOp uint8

// Map operations of helpers.
const (
	OpNone      HelperOp = iota
	OpMapLookup          // bpf_map_lookup_elem(map, key): value address or 0
	OpMapUpdate          // bpf_map_update_elem(map, key, value, flags)
	OpMapDelete          // bpf_map_delete_elem(map, key)
)

// MapKind is how a map lays out its elements (MapLayout).
type MapKind uint8

// Map kinds. MapValues is any map whose lookups return the address of a
// whole value (or 0) but whose layout is not described further.
const (
	MapValues MapKind = iota + 1
	MapArray
	MapPerCPUArray
	MapHash
	MapPerCPUHash
	MapLRUHash
)

// MapLayout describes a map's memory and algorithms to the engines, so that
// the analysis can trust what a lookup returns and the JIT can serve the
// map helpers in machine code. Every address in it stays valid for as long
// as the map does. The map's own package documents how to read it (see
// package maps, Layout); engines must do exactly what the map's helpers do.
type MapLayout struct {
	Kind       MapKind
	KeySize    uint32
	ValueSize  uint32 // a lookup returns the address of ValueSize accessible bytes
	ReadOnly   bool   // programs may not write values (BPF_F_RDONLY_PROG)
	MaxEntries uint32
	// Values is the address of the first value slot, Stride the distance
	// between slots. Per-CPU maps have CPUs slots per element, CPU c's at
	// Values + (c*MaxEntries + slot)*Stride; a worker whose Env.CPU is not
	// below CPUs uses slot CPU modulo CPUs (engines may leave that case to
	// the helper).
	Values uint64
	Stride uint64
	CPUs   int

	// Hash maps (MapHash, MapPerCPUHash, MapLRUHash): see package maps.
	Heads    uint64    // address of the bucket heads, one uint32 each
	Mask     uint64    // buckets - 1
	Recs     uint64    // address of the slot records
	RecWords uint64    // words per record
	Refs     uint64    // LRU: address of the reference bits, one uint32 per slot
	Seed     [3]uint64 // the hash seed

	// What each operation charges a run (Env.Charge).
	LookupCost, UpdateCost, DeleteCost uint64
}

// LayoutMap is a Map that describes its layout. Layout returns the same
// value for the life of the map.
type LayoutMap interface {
	Map
	Layout() *MapLayout
}

// MapLayoutOf returns the layout of the program's map k, or nil.
func (p *Program) MapLayoutOf(k int) *MapLayout {
	if k < 0 || k >= len(p.maps) {
		return nil
	}
	if m, ok := p.maps[k].(LayoutMap); ok {
		return m.Layout()
	}
	return nil
}
