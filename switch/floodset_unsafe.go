package vswitch

import (
	"sync/atomic"
	"unsafe"
)

// takeFloodSet reads and clears the flood set at addr, the worker's slot of
// the program's vswitch_flood map (0: no slot). The slot is 8-aligned map
// value memory that lives as long as the map, which outlives the program
// run that just wrote it.
func takeFloodSet(addr uint64) (set [4]uint64) {
	if addr == 0 {
		return set
	}
	p := (*[4]uint64)(*(*unsafe.Pointer)(unsafe.Pointer(&addr)))
	for i := range set {
		set[i] = atomic.SwapUint64(&p[i], 0)
	}
	return set
}
