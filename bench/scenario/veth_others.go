//go:build !linux

package scenario

import (
	"context"
	"runtime"
)

var errPlatform = "skipped: needs Linux network namespaces (not on " + runtime.GOOS + ")"

func runVeth(ctx context.Context, o Options, logf func(string, ...any)) []VethResult {
	var out []VethResult
	for _, s := range o.pick(AllSubjects) {
		out = append(out, VethResult{Switch: s, Size: o.Sizes[0], Flows: o.Flows[0], Skipped: errPlatform})
	}
	return out
}

func runLatency(ctx context.Context, o Options, logf func(string, ...any)) []LatencyResult {
	var out []LatencyResult
	for _, s := range LatencySubjects {
		out = append(out, LatencyResult{Switch: s, Size: 60, Rate: o.LatencyRate, Skipped: errPlatform})
	}
	return out
}

func raisePriority() string { return "default priority" }
