package loader

import (
	"errors"

	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// TODO(maps): switch to maps.New and the maps helpers when they land.
func defaultNewMap(s maps.Spec) (maps.Map, error) {
	return nil, errors.New("maps.New is not available yet")
}

func defaultHelpers() *vm.Helpers { return vm.BaseHelpers() }
