package cli

import (
	"flag"
	"os/signal"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/internal/demo"
)

func (c *cmd) demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	engine := fs.String("engine", "", "jit or interp")
	dur := fs.Duration("d", 2*time.Second, "pktgen duration")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo takes no arguments")
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, demo.Options{Engine: *engine, Duration: *dur, Out: c.out})
}
