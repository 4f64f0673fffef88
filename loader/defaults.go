package loader

import (
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

func defaultNewMap(s maps.Spec) (maps.Map, error) { return maps.New(s) }

// defaultHelpers are Linux-numbered in every mode: in CompatVALEBPF mode
// the loader translates VALE-BPF's call numbers instead of handing the
// program maps.CompatVALEHelpers, so that a loaded program always speaks
// the Linux numbering (the same instructions for both engines, the
// disassembly and the kernel).
func defaultHelpers() *vm.Helpers { return maps.Helpers() }
