//go:build linux && amd64

package jit_test

import (
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// TestListingAnnotations: the caller's map names and source lines appear
// above the instructions they belong to.
func TestListingAnnotations(t *testing.T) {
	m, err := maps.New(maps.Spec{Name: "fdb", Type: maps.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := vm.MustLoad(asm.MustAssemble("lddw %r1, map[0]\nmov %r0, 1\nexit"), vm.Options{Maps: []vm.Map{m}})
	c, err := jit.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := c.Listing()
	l.MapNames = []string{"fdb"}
	l.Source = []string{"prog.c:3: void *m = &fdb;", "", "", "prog.c:4: return 1;"} // by slot: lddw takes two
	out := l.String()
	for _, want := range []string{
		"; prog.c:3: void *m = &fdb;\n; 0: lddw %r1, map[fdb]\n",
		"; 2: mov %r0, 1\n",
		"; prog.c:4: return 1;\n; 3: exit\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
}
