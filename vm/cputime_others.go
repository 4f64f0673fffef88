//go:build !linux

package vm

import "time"

// threadTime is not available here: RunRepeat measures wall time.
func threadTime() (time.Duration, bool) { return 0, false }
