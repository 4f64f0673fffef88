// Package examples holds vswitch's example forwarding programs: C sources
// (learn.c, static.c, vlan.c, acl.c, count.c) with their compiled objects,
// rebuilt by `make -C examples` (clang -O2 -g -target bpf). The objects are
// embedded so that the switch can load the default program, learn.o,
// without any file on disk:
//
//	obj, _ := examples.Object("learn")
//	coll, err := loader.LoadReader(bytes.NewReader(obj), loader.Options{ObjectName: "learn"})
//
// xdp/*.o are the same sources built as kernel XDP programs (-DVSWITCH_XDP),
// used by the tests to compare vswitch's engines with the kernel's.
package examples

import (
	"embed"
	"fmt"
)

//go:embed *.o
var objects embed.FS

// Names are the example programs, the default first.
var Names = []string{"learn", "static", "vlan", "acl", "count"}

// Default is the name of the default forwarding program.
const Default = "learn"

// Object returns the compiled object of example name ("learn", not
// "learn.o").
func Object(name string) ([]byte, error) {
	b, err := objects.ReadFile(name + ".o")
	if err != nil {
		return nil, fmt.Errorf("no example program %q (have %v)", name, Names)
	}
	return b, nil
}
