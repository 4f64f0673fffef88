//go:build linux && (386 || arm || mipsle)

package kernel

import "unsafe"

// ptr is an __aligned_u64 field of union bpf_attr that holds a user pointer:
// on little-endian 32-bit systems the pointer is its low half. (Big-endian
// 32-bit mips would need the halves swapped; it gets the unsupported stub.)
type ptr struct {
	p unsafe.Pointer
	_ uint32
}
