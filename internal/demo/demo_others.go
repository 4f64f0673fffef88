//go:build !linux

// Package demo is `vswitch demo` (Linux only).
package demo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"time"
)

// Options configure Run.
type Options struct {
	Engine   string
	Duration time.Duration
	Out      io.Writer
	Logger   *slog.Logger
}

// Run reports that the demo needs Linux.
func Run(context.Context, Options) error {
	return errors.New("the demo needs Linux network namespaces, not " + runtime.GOOS)
}
