//go:build linux && amd64

package jit

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// mapping is executable memory holding one program's machine code. It is
// mapped read-write, filled, then made read-execute: never both writable
// and executable.
type mapping struct {
	mu  sync.Mutex
	mem []byte
}

var pageSize = os.Getpagesize()

func newMapping(code []byte) (*mapping, error) {
	size := (len(code) + pageSize - 1) &^ (pageSize - 1)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes of code memory: %w", size, err)
	}
	copy(mem, code)
	// Fill the rest of the page with int3 so that a stray jump traps.
	for i := len(code); i < len(mem); i++ {
		mem[i] = 0xcc
	}
	if err := syscall.Mprotect(mem, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		syscall.Munmap(mem)
		return nil, fmt.Errorf("mprotect code memory read-execute: %w", err)
	}
	return &mapping{mem: mem}, nil
}

// release unmaps the memory; it is idempotent.
func (m *mapping) release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return nil
	}
	err := syscall.Munmap(m.mem)
	m.mem = nil
	return err
}
