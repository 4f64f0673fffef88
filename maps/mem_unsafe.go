package maps

import "unsafe"

// addrOf returns the address of w's first word, as programs see it. The
// slab is a Go heap object without pointers: the GC never moves it, and
// the map that owns it keeps it alive as long as a program refers to the
// map (vm.Program holds its maps).
func addrOf32(w []uint32) uint64 {
	if len(w) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(w))))
}

func addrOf(w []uint64) uint64 {
	if len(w) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(w))))
}
