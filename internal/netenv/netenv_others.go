//go:build !linux

package netenv

import (
	"errors"
	"runtime"
)

// Check reports that namespaces need Linux.
func Check() error {
	return errors.New("network namespaces are not supported on " + runtime.GOOS)
}
