//go:build !linux

package demo

import (
	"context"
	"errors"
	"runtime"
)

// RunVXLAN reports that the demo needs Linux.
func RunVXLAN(context.Context, Options) error {
	return errors.New("the demo needs Linux network namespaces, not " + runtime.GOOS)
}
