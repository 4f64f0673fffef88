package maps

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// adviseHuge asks for transparent huge pages under a large slab: a lookup
// in a map of a million elements touches a few random pages, and with 4K
// pages each is a TLB miss (the kernel's maps live in its huge-page direct
// map). The slab is fresh heap memory not yet faulted in, so the advice
// applies when it is first touched. Failure is harmless.
func adviseHuge(w []uint64) {
	if len(w)*8 < 2*hugePage {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(w)))
	end := start + uintptr(len(w))*8
	a, b := (start+hugePage-1)&^(hugePage-1), end&^(hugePage-1)
	if b <= a {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8)[a-start:b-start], unix.MADV_HUGEPAGE)
}

// adviseHuge32 is adviseHuge for a slab of uint32.
func adviseHuge32(w []uint32) {
	if len(w) >= 2 {
		adviseHuge(unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(w))), len(w)/2))
	}
}
