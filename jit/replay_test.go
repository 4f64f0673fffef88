package jit_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// TestReplay is a debugging aid for fuzz findings: REPLAY=/abs/path/to/an
// input file (raw bytes or a testdata/fuzz corpus file) prints the program
// FuzzDifferential makes of it and its machine code, then runs it on both
// engines (NORUN=1 stops before running, for inputs that crash).
func TestReplay(t *testing.T) {
	data, err := os.ReadFile(os.Getenv("REPLAY"))
	if err != nil {
		t.Skip()
	}
	if strings.HasPrefix(string(data), "go test fuzz v1") {
		line := strings.Split(string(data), "\n")[1]
		line = strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")")
		u, err := strconv.Unquote(line)
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(u)
	}
	insns, mem := fuzzProgram(data)
	p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
	if err != nil {
		t.Skip(err)
	}
	t.Log(listing(insns))
	c, _ := jit.Compile(p)
	t.Log(c.Listing())
	if os.Getenv("NORUN") != "" {
		return
	}
	d := newDiffer()
	t.Log(d.run(p, mem, 20000))
	t.Log("interp done")
	t.Log(d.run(c, mem, 20000))
}
