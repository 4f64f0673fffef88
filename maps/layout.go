package maps

import "github.com/govswitch/vswitch/vm"

// Layout describes an array, per-CPU array, hash, per-CPU hash, LRU hash
// or LPM trie to the engines (vm.LayoutMap): the analysis then trusts what
// bpf_map_lookup_elem returns, and the JIT serves lookups of the first five
// in machine code. The JIT must do exactly what LookupAddr does:
//
//   - Arrays: the key is a u32 index; an index at or past MaxEntries gives
//     0; otherwise the value is at Values + (cpu*MaxEntries + index)*Stride,
//     cpu 0 for a plain array and the worker's slot for a per-CPU one.
//   - Hashes: the key, read as little-endian words (the last one padded
//     with zeros), is hashed by htab.hash with Seed and Mask into a bucket
//     and a tag; Heads[bucket] (a uint32) is the first slot of the chain or
//     nullsBit|bucket at its end; slot s's record is RecWords words at
//     Recs + s*RecWords*8: word 0 the tag<<32 | a sequence number (odd
//     while the slot is rewritten), word 1 the next link, then the key.
//     A record matches when its sequence is even, its tag and key words
//     are the key's and word 0 is unchanged after the key compared equal;
//     a walk that meets a changing record, a link at or past MaxEntries,
//     more than MaxEntries steps or the end marker of another bucket must
//     be retried (the JIT leaves that to the helper, which locks). LRU:
//     a hit stores 1 into Refs[s] (a uint32) when it is 0. The value is at
//     Values + (cpu*MaxEntries + s)*Stride.
//
// The costs are what the helpers charge (cost.go).
func (a *array) Layout() *vm.MapLayout { return &a.layout }
func (h *htab) Layout() *vm.MapLayout  { return &h.layout }
func (t *lpm) Layout() *vm.MapLayout   { return &t.layout }

func (a *array) setLayout() {
	kind := vm.MapArray
	if a.spec.Type == PerCPUArray {
		kind = vm.MapPerCPUArray
	}
	a.layout = vm.MapLayout{
		Kind: kind, KeySize: 4, ValueSize: a.spec.ValueSize, ReadOnly: a.spec.Flags&FlagRdOnlyProg != 0,
		MaxEntries: a.spec.MaxEntries, Values: addrOf(a.vals), Stride: uint64(a.sw) * 8, CPUs: a.ncpu,
		LookupCost: opCost(a, opLookup), UpdateCost: opCost(a, opUpdate), DeleteCost: opCost(a, opDelete),
	}
}

func (h *htab) setLayout() {
	kind := vm.MapHash
	switch {
	case h.lru:
		kind = vm.MapLRUHash
	case h.percpu:
		kind = vm.MapPerCPUHash
	}
	h.layout = vm.MapLayout{
		Kind: kind, KeySize: h.spec.KeySize, ValueSize: h.spec.ValueSize, ReadOnly: h.spec.Flags&FlagRdOnlyProg != 0,
		MaxEntries: h.nslots, Values: addrOf(h.vals), Stride: uint64(h.sw) * 8, CPUs: h.ncpu,
		Heads: addrOf32(h.heads), Mask: h.mask, Recs: addrOf(h.recs), RecWords: uint64(h.rw), Seed: h.seed,
		LookupCost: opCost(h, opLookup), UpdateCost: opCost(h, opUpdate), DeleteCost: opCost(h, opDelete),
	}
	if h.lru {
		h.layout.Refs = addrOf32(h.ref)
	}
}

func (t *lpm) setLayout() {
	t.layout = vm.MapLayout{
		Kind: vm.MapValues, KeySize: t.spec.KeySize, ValueSize: t.spec.ValueSize, ReadOnly: t.spec.Flags&FlagRdOnlyProg != 0,
		MaxEntries: t.spec.MaxEntries, Values: addrOf(t.vals), Stride: uint64(t.sw) * 8, CPUs: 1,
		LookupCost: opCost(t, opLookup), UpdateCost: opCost(t, opUpdate), DeleteCost: opCost(t, opDelete),
	}
}
