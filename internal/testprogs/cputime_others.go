//go:build !linux

package testprogs

import "time"

// ThreadCPU is not available here: it returns 0.
func ThreadCPU() time.Duration { return 0 }
