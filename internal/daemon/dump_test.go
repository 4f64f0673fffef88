package daemon

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/control"
)

// TestDumpNamesAndLines: prog dump shows maps by name and the C source
// lines above the instructions they start, like bpftool.
func TestDumpNamesAndLines(t *testing.T) {
	d := New(Config{})
	defer d.Close()
	if _, err := d.LoadDefault("interp"); err != nil {
		t.Fatal(err)
	}
	out, err := d.Dump("xlated")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"lddw %r1, map[fdb]\n",
		"; fdb.h:",
		"e = bpf_map_lookup_elem(&fdb, &dst);\n",
		"    0: ",
	} {
		if !strings.Contains(out.Text, want) {
			t.Errorf("xlated lacks %q:\n%s", want, out.Text)
		}
	}
	if strings.Contains(out.Text, "map[0]") {
		t.Errorf("xlated still numbers a map:\n%s", out.Text)
	}
	if runtime.GOARCH != "amd64" {
		t.Skipf("no JIT on %s", runtime.GOARCH)
	}
	if _, err := d.LoadDefault("jit"); err != nil {
		t.Fatal(err)
	}
	out, err = d.Dump("jited")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Text, ": lddw %r1, map[fdb]\n") || !strings.Contains(out.Text, "e = bpf_map_lookup_elem(&fdb, &dst);\n") {
		t.Errorf("jited lacks the map name or the source line:\n%s", out.Text)
	}
}

// TestLoadSection: --section loads only the program it names; the
// object's other programs, which need a kernel, do not stop it.
func TestLoadSection(t *testing.T) {
	obj, err := os.ReadFile("../../examples/testdata/needs_kernel.o")
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{})
	defer d.Close()
	if _, err := d.Load(control.ProgLoadParams{Object: obj, File: "needs_kernel.o", Engine: "interp"}); err == nil || !strings.Contains(err.Error(), "needs a kernel") && !strings.Contains(err.Error(), "kfuncs need a kernel") {
		t.Errorf("whole object: %v", err)
	}
	info, err := d.Load(control.ProgLoadParams{Object: obj, File: "needs_kernel.o", Section: "fine", Engine: "interp"})
	if err != nil || info.Name != "fine" {
		t.Errorf("--section fine: %+v %v", info, err)
	}
}
