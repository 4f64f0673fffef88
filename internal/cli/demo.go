package cli

import (
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/internal/demo"
)

func (c *cmd) demoCommand() *cobra.Command {
	var o demo.Options
	cc := &cobra.Command{
		Use:   "demo",
		Short: "three hosts in network namespaces on the switch, a pktgen run, all cleaned up",
		Long: `demo builds three hosts in network namespaces on a switch (the built-in
learning program), pings between them, shows what the switch learned and
counted, measures with pktgen, and removes everything it made. Needs root.`,
		Example: "  vswitch demo\n  vswitch demo --engine interp -d 5s",
		Args:    noArgs("demo"),
		RunE: func(*cobra.Command, []string) error {
			ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			o.Out = c.out
			return demo.Run(ctx, o)
		},
	}
	f := cc.Flags()
	f.StringVar(&o.Engine, "engine", "", "jit or interp")
	f.DurationVarP(&o.Duration, "duration", "d", 2*time.Second, "pktgen duration")
	completeWords(cc, "engine", "jit", "interp")
	return cc
}
