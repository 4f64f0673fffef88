package loader

import (
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

func defaultNewMap(s maps.Spec) (maps.Map, error) { return maps.New(s) }

// TODO(maps): add the map helpers when package maps exports them.
func defaultHelpers() *vm.Helpers { return vm.BaseHelpers() }
