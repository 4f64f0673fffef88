package loader_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// testHelpers lets programs call every helper the examples use, so that
// these tests exercise the loader whatever package maps provides.
func testHelpers() *vm.Helpers {
	hs := loader.DefaultHelpers().Clone()
	nop := func(*vm.Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) { return 0, nil }
	for _, id := range []int32{1, 2, 3, 6, 12, 130, 131, 132, 133} {
		if hs.Lookup(id) == nil {
			if err := hs.Register(vm.Helper{ID: id, Fn: nop}); err != nil {
				panic(err)
			}
		}
	}
	return hs
}

func obj(name string) string { return filepath.Join("..", "examples", name) }

func TestLoadExamples(t *testing.T) {
	for _, tc := range []struct {
		file     string
		compat   loader.Compat
		programs []string
		maps     []string
	}{
		{"learn.o", 0, []string{"learn"}, []string{"fdb"}},
		{"static.o", 0, []string{"static_fwd"}, []string{"ports", "static.bss", "static.data", "static.rodata"}},
		{"vlan.o", 0, []string{"vlan"}, []string{"port_vlan", "vlan_fdb", "vlan_members", "vswitch_flood"}},
		{"acl.o", 0, []string{"acl", "acl_learn"}, []string{"blocklist", "drops", "fdb", "next"}},
		{"count.o", 0, []string{"count"}, []string{"ethertypes", "events", "seen"}},
		{"xdp/learn.o", 0, []string{"learn"}, []string{"fdb"}},
		{"testdata/vale_bridge.o", loader.CompatVALEBPF, []string{"learning_bridge"}, []string{"ft", "stats"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := loader.Load(obj(tc.file), loader.Options{Compat: tc.compat, Helpers: testHelpers()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := strings.Join(c.ProgramNames(), " "); got != strings.Join(tc.programs, " ") {
				t.Errorf("programs %q, want %q", got, strings.Join(tc.programs, " "))
			}
			var names []string
			for n := range c.Maps {
				names = append(names, n)
			}
			if got, want := strings.Join(sorted(names), " "), strings.Join(tc.maps, " "); got != want {
				t.Errorf("maps %q, want %q", got, want)
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestFlattenedCalls checks that a bpf-to-bpf call lands on its function.
func TestFlattenedCalls(t *testing.T) {
	c, err := loader.Load(obj("vlan.o"), loader.Options{Helpers: testHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.Programs["vlan"]
	if got := len(p.Functions()); got != 2 {
		t.Fatalf("%d functions %v, want 2 (vlan and flood)", got, p.Functions())
	}
	insns := p.Instructions()
	for pc, i := range insns {
		if i.Op == 0x85 && i.Src == 1 {
			if target := pc + 1 + int(i.Imm); target != p.Functions()[1] {
				t.Errorf("call at %d goes to %d, want %d", pc, target, p.Functions()[1])
			}
		}
	}
}

func TestSelectPrograms(t *testing.T) {
	c, err := loader.Load(obj("acl.o"), loader.Options{Programs: []string{"acl"}, Helpers: testHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// acl_learn comes along: the object puts it in the program array.
	if got := strings.Join(c.ProgramNames(), " "); got != "acl acl_learn" {
		t.Errorf("programs %q, want \"acl acl_learn\"", got)
	}
	if _, err := c.Program("vswitch"); err == nil || !strings.Contains(err.Error(), "several programs") {
		t.Errorf("Program(section with two programs): %v", err)
	}
	if p, err := c.Program("acl"); err != nil || p.Name != "acl" {
		t.Errorf("Program(acl) = %v, %v", p, err)
	}

	_, err = loader.Load(obj("learn.o"), loader.Options{Programs: []string{"nope"}, Helpers: testHelpers()})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "learn") {
		t.Errorf("unknown program: %v", err)
	}
}

func TestRefusesKernelObjects(t *testing.T) {
	for _, tc := range []struct{ file, prog, want string }{
		{"needs_kernel.o", "uses_kfunc", "bpf_rcu_read_lock"},
		{"needs_ksym.o", "uses_ksym", "kernel symbol bpf_prog_active (extern __ksym), which only a kernel has"},
		{"needs_kernel.o", "uses_core", "CO-RE"},
	} {
		t.Run(tc.prog, func(t *testing.T) {
			_, err := loader.Load(obj("testdata/"+tc.file), loader.Options{Programs: []string{tc.prog}, Helpers: testHelpers()})
			if !errors.Is(err, loader.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrUnsupported naming %s", err, tc.want)
			}
			t.Log(err)
		})
	}
	c, err := loader.Load(obj("testdata/needs_kernel.o"), loader.Options{Programs: []string{"fine"}, Helpers: testHelpers()})
	if err != nil {
		t.Fatalf("the program that needs nothing: %v", err)
	}
	c.Close()
}

func TestReuseMaps(t *testing.T) {
	old, err := loader.Load(obj("learn.o"), loader.Options{Helpers: testHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	fdb := old.Maps["fdb"]
	key := []byte{2, 0, 0, 0, 0, 1}
	if err := fdb.Update(key, make([]byte, 16), maps.UpdateAny); err != nil {
		t.Fatal(err)
	}
	// Hot swap learn -> acl: the FDB survives.
	c, err := loader.Load(obj("acl.o"), loader.Options{Helpers: testHelpers(), ReuseMaps: old.Maps})
	if err != nil {
		t.Fatal(err)
	}
	if c.Maps["fdb"] != fdb {
		t.Error("acl.o did not reuse learn.o's fdb")
	}
	if _, err := c.Maps["fdb"].Lookup(key); err != nil {
		t.Errorf("reused fdb lost its entry: %v", err)
	}
	c.Close()
	if _, err := fdb.Lookup(key); err != nil {
		t.Errorf("closing the new collection closed the reused map: %v", err)
	}

	// A map of the same name and another spec is refused.
	other, err := maps.New(maps.Spec{Name: "fdb", Type: maps.Hash, KeySize: 6, ValueSize: 16, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = loader.Load(obj("learn.o"), loader.Options{Helpers: testHelpers(), ReuseMaps: map[string]maps.Map{"fdb": other}})
	if !errors.Is(err, loader.ErrMapMismatch) {
		t.Fatalf("got %v, want ErrMapMismatch", err)
	}
	t.Log(err)
}

func TestVALEMapTypes(t *testing.T) {
	c, err := loader.Load(obj("testdata/vale_bridge.o"), loader.Options{Compat: loader.CompatVALEBPF, Helpers: testHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, want := range map[string]maps.Spec{
		"ft":    {Type: maps.Hash, KeySize: 8, ValueSize: 4, MaxEntries: 256},
		"stats": {Type: maps.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2},
	} {
		got := c.Maps[name].Spec()
		if got.Type != want.Type || got.KeySize != want.KeySize || got.ValueSize != want.ValueSize || got.MaxEntries != want.MaxEntries {
			t.Errorf("%s: spec %+v, want %+v", name, got, want)
		}
	}
	// VALE's helper 2 (lookup) became Linux's 1, and 1 (update) became 2.
	var calls []int32
	for _, i := range c.Programs["learning_bridge"].Instructions() {
		if i.Op == 0x85 && i.Src == 0 {
			calls = append(calls, i.Imm)
		}
	}
	if len(calls) == 0 || calls[0] != vm.HelperMapUpdateElem {
		t.Errorf("helper calls %v, want the first (VALE's update, 1) to be Linux's update (2)", calls)
	}
}

func TestBadObjects(t *testing.T) {
	learn, err := os.ReadFile(obj("learn.o"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not ELF", []byte("hello, world")},
		{"truncated header", learn[:40]},
		{"truncated", learn[:len(learn)/2]},
		{"no section headers", learn[:1024]},
	} {
		for _, compat := range []loader.Compat{loader.CompatNone, loader.CompatVALEBPF} {
			_, err := loader.LoadReader(bytes.NewReader(tc.data), loader.Options{Compat: compat, Helpers: testHelpers()})
			if err == nil {
				t.Errorf("%s (%v): loaded", tc.name, compat)
			}
		}
	}
	// A map too large for the limit.
	_, err = loader.Load(obj("learn.o"), loader.Options{Helpers: testHelpers(), MaxMapBytes: 1024})
	if !errors.Is(err, loader.ErrUnsupported) || !strings.Contains(err.Error(), "fdb") {
		t.Errorf("map over the limit: %v", err)
	}
}

// FuzzLoad feeds the loader mutated objects: it must return an error or a
// collection, never panic or hang.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"learn.o", "static.o", "vlan.o", "acl.o", "count.o",
		"testdata/vale_bridge.o", "testdata/needs_kernel.o", "testdata/needs_ksym.o"} {
		b, err := os.ReadFile(obj(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	b, _ := os.ReadFile(obj("testdata/vale_bridge.o"))
	f.Add(b, true)
	hs := testHelpers()
	f.Fuzz(func(t *testing.T, data []byte, vale bool) {
		// Small maps keep each run fast; the map limit itself is part of what is fuzzed.
		opts := loader.Options{Helpers: hs, MaxMapBytes: 256 << 10, CPUs: 1}
		if vale {
			opts.Compat = loader.CompatVALEBPF
		}
		c, err := loader.LoadReader(bytes.NewReader(data), opts)
		if err == nil {
			c.Close()
		}
	})
}

// TestLines: the source lines of an object built with -g come along, by
// instruction slot, for prog dump.
func TestLines(t *testing.T) {
	c, err := loader.Load(obj("learn.o"), loader.Options{Helpers: testHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lines := c.Lines["learn"]
	if len(lines) != len(c.Programs["learn"].Instructions()) {
		t.Fatalf("%d lines for %d instructions", len(lines), len(c.Programs["learn"].Instructions()))
	}
	found := false
	for pc, l := range lines {
		if strings.Contains(l.Text, "e = bpf_map_lookup_elem(&fdb, &dst);") {
			found = true
			if l.Number < 1 || !strings.HasSuffix(l.File, "fdb.h") {
				t.Errorf("slot %d: %+v", pc, l)
			}
		}
	}
	if !found {
		t.Errorf("no instruction from the fdb lookup line: %+v", lines)
	}
}

// TestNotAnObject: anything but ELF is refused with what it is.
func TestNotAnObject(t *testing.T) {
	_, err := loader.LoadReader(strings.NewReader("#include \"vswitch.h\"\n"), loader.Options{})
	if !errors.Is(err, loader.ErrBadObject) || !strings.Contains(err.Error(), "not an ELF object") || !strings.Contains(err.Error(), "clang") {
		t.Errorf("C source: %v", err)
	}
	if _, err := loader.LoadReader(strings.NewReader(""), loader.Options{}); !errors.Is(err, loader.ErrBadObject) {
		t.Errorf("empty: %v", err)
	}
}
