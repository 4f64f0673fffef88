// Command vswitch is the switch: daemon, control CLI, demo, pktgen and
// benchmarks in one binary. See `vswitch help`.
package main

import (
	"context"
	"os"

	"github.com/govswitch/vswitch/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
