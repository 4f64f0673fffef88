package cli

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra/doc"
)

// manDate is the date the man pages carry: fixed, so that regenerating
// them changes nothing unless a command did.
var manDate = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteManPages writes a man page (section 1) for every command into dir,
// from the same definitions the command line runs on. docs/man is made by
// it: `go test ./internal/cli -run TestManPages -update`.
func WriteManPages(dir string) error {
	c := &cmd{ctx: context.Background(), out: io.Discard, errw: io.Discard}
	root := c.rootCommand()
	return doc.GenManTree(root, &doc.GenManHeader{
		Title:   "VSWITCH",
		Section: "1",
		Date:    &manDate,
		Source:  "vswitch " + Version,
		Manual:  "vswitch manual",
	}, dir)
}
