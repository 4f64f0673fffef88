//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package kernel

import "unsafe"

// ptr is an __aligned_u64 field of union bpf_attr that holds a user pointer.
// It is an unsafe.Pointer rather than a uint64 so that the garbage collector
// and stack copying see it.
type ptr struct {
	p unsafe.Pointer
}
