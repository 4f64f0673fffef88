// Command threadgen writes vm/interp_threaded.go from vm/interp.go; run it
// with `go generate ./vm`.
package main

import (
	"fmt"
	"os"

	"github.com/govswitch/vswitch/vm/internal/threadgen"
)

func main() {
	src, err := os.ReadFile("interp.go")
	if err == nil {
		var out []byte
		if out, err = threadgen.Generate(src); err == nil {
			err = os.WriteFile("interp_threaded.go", out, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "threadgen:", err)
		os.Exit(1)
	}
}
