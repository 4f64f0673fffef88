//go:build !linux

package scenario

import (
	"context"
	"strings"
)

// HostsSubjects lists the switches of the hosts scenario: none off Linux.
func HostsSubjects() []string { return nil }

func runHosts(ctx context.Context, o Options, logf func(string, ...any)) []HostsResult {
	return []HostsResult{{Switch: "all", Measure: "all", Skipped: errPlatform}}
}

func runScale(ctx context.Context, o Options, logf func(string, ...any)) ([]ScaleResult, []ScaleBusyResult) {
	names := strings.Join(o.pick(ScaleSubjects), ",")
	return []ScaleResult{{Switch: names, Skipped: errPlatform}},
		[]ScaleBusyResult{{Switch: names, IdlePorts: o.ScaleBusyIdle, Skipped: errPlatform}}
}
