//go:build !(linux && amd64)

package jit

import (
	"fmt"

	"github.com/govswitch/vswitch/vm"
)

type codeImpl struct{}

// Compile reports that there is no JIT on this platform: the error wraps
// ErrNotSupported. Use Best, which falls back to the interpreter.
func Compile(p *vm.Program) (*Code, error) {
	return nil, fmt.Errorf("program %q: %w", p.Name, ErrNotSupported)
}

// Run fails: a Code cannot exist on this platform.
func (c *Code) Run(env *vm.Env, r1, r2 uint64) (uint64, error) { return 0, ErrNotSupported }

// Close does nothing on this platform.
func (c *Code) Close() error { return nil }

func (c *Code) image() []byte { return nil }
