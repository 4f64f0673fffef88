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
	cc.AddCommand(c.demoVXLANCommand())
	return cc
}

func (c *cmd) demoVXLANCommand() *cobra.Command {
	var o demo.Options
	cc := &cobra.Command{
		Use:   "vxlan",
		Short: "two machines in network namespaces, each a vswitch with hosts, joined by VXLAN",
		Long: `demo vxlan builds two "machines" (network namespaces joined by an underlay
veth), each with a vswitch (the built-in learning program), two hosts and a
VXLAN port to the other machine: the hosts talk across the tunnel, the
forwarding database shows where the remote stations are, a static remote
station is added, a TCP transfer crosses the tunnel. Everything is removed
at the end. Needs root.`,
		Example: "  vswitch demo vxlan",
		Args:    noArgs("demo vxlan"),
		RunE: func(*cobra.Command, []string) error {
			ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			o.Out = c.out
			return demo.RunVXLAN(ctx, o)
		},
	}
	cc.Flags().StringVar(&o.Engine, "engine", "", "jit or interp")
	completeWords(cc, "engine", "jit", "interp")
	return cc
}
