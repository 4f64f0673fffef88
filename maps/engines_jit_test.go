//go:build linux && amd64

package maps

import (
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

func init() {
	engines = append(engines, engine{"jit", func(p *vm.Program) (vm.Runner, error) { return jit.Compile(p) }})
}
