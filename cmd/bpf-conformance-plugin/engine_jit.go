package main

import (
	"errors"

	"github.com/govswitch/vswitch/asm"

	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// The JIT registers itself where it is supported and becomes the default.
func init() {
	probe := vm.MustLoad([]asm.Instruction{{Op: asm.OpExit}}, vm.Options{})
	if _, err := jit.Compile(probe); errors.Is(err, jit.ErrNotSupported) {
		return
	}
	engines["jit"] = func(p *vm.Program) (vm.Runner, error) { return jit.Compile(p) }
	defaultEngine = "jit"
}
