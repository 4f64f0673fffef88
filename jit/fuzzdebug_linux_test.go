package jit_test

import (
	"fmt"
	"os"
	"syscall"
)

// With JIT_FUZZ_STDERR set to a directory, each process of the tests (the
// fuzzing workers, whose output go test discards) writes its standard
// error there, so that the trace of a worker that crashed is kept.
func init() {
	dir := os.Getenv("JIT_FUZZ_STDERR")
	if dir == "" {
		return
	}
	f, err := os.Create(fmt.Sprintf("%s/stderr.%d", dir, os.Getpid()))
	if err != nil {
		return
	}
	syscall.Dup3(int(f.Fd()), 2, 0)
}
