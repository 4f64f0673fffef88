package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/internal/kernel"
)

// TestSpecs needs no kernel: every case assembles, names are unique, and
// each says what it expects or how the kernel will decide it.
func TestSpecs(t *testing.T) {
	names := map[string]bool{}
	for _, s := range allSpecs() {
		if names[s.name] {
			t.Errorf("two cases named %s", s.name)
		}
		names[s.name] = true
		if _, err := s.program(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
		if len(s.what) == 0 {
			t.Errorf("%s: says nothing about what it checks", s.name)
		}
		if s.err != "" && !strings.HasPrefix(s.err, "invalid program: ") && !strings.HasPrefix(s.err, "fault at insn ") {
			t.Errorf("%s: error %q is not in the form of conformance.ErrorText", s.name, s.err)
		}
		if s.noKernel != "" && s.err == "" && s.isa == nil {
			t.Errorf("%s: not run in the kernel and no ISA answer", s.name)
		}
	}
}

// TestModel spot-checks the ISA model against RFC 9669's special cases.
func TestModel(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want uint64
	}{
		{"sdiv64 INT64_MIN by -1", alu64("sdiv", intMin64, neg1), intMin64},
		{"smod64 INT64_MIN by -1", alu64("smod", intMin64, neg1), 0},
		{"div64 by 0", alu64("div", 7, 0), 0},
		{"mod64 by 0", alu64("mod", 7, 0), 7},
		{"smod64 -7 by 2", alu64("smod", neg(7), 2), neg(1)},
		{"sdiv32 INT32_MIN by -1", alu32("sdiv", 0xffffffff80000000, neg1), 0x80000000},
		{"mod32 by 0 zero-extends", alu32("mod", 0xffffffff00000007, 0), 7},
		{"lsh64 by 64", alu64("lsh", 3, 64), 3},
		{"arsh32 by 33", alu32("arsh", 0x80000000, 33), 0xc0000000},
		{"movsx816", movsx(8, true, 0x80), 0xffffff80},
		{"be16", byteOrder("be", 16, 0x1122334455667788), 0x8877},
		{"le32", byteOrder("le", 32, 0x1122334455667788), 0x55667788},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		op       jmpOp
		is32     bool
		dst, src uint64
		want     bool
	}{
		{"jslt", true, 0x80000000, 0, true},           // INT32_MIN < 0
		{"jlt", true, 0x100000000, 1, true},           // only the low halves count
		{"jsgt", false, 0x80000000, neg1, true},       // 2^31 > -1
		{"jset", false, 1, 2, false},                  // no common bit
		{"jge", false, neg1, intMax64, true},          // unsigned
		{"jsle", true, 0xffffffff, 0xfffffffe, false}, // -1 <= -2
	} {
		if got := taken(tt.op, tt.is32, tt.dst, tt.src); got != tt.want {
			t.Errorf("%s (32: %v) %#x, %#x: %v, want %v", tt.op, tt.is32, tt.dst, tt.src, got, tt.want)
		}
	}
}

// TestCorpusUpToDate regenerates the corpus with this machine's kernel and
// requires it to say what testdata/conformance says: the same programs,
// memory and expected answers (comments, which quote the kernel, may
// differ between kernels and are only reported).
func TestCorpusUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("loads every case into the kernel")
	}
	if err := kernel.Available(); err != nil {
		t.Skipf("the kernel is the generator's oracle and is not usable here: %v", err)
	}
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := conformance.OwnDir()
	have, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	n := 0
	for _, f := range have {
		if _, ok := files[filepath.Base(f)]; !ok {
			t.Errorf("%s is not made by the generator", filepath.Base(f))
		}
	}
	for name, text := range files {
		if !strings.HasSuffix(name, ".data") {
			continue
		}
		n++
		want, err := conformance.Parse(text)
		if err != nil {
			t.Fatalf("%s: generated file does not parse: %v", name, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v (run `go run ./internal/conformance/gen` as root)", name, err)
			continue
		}
		got, err := conformance.Parse(string(b))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s differs from what the generator makes on this kernel (-generated +committed):\n%s", name, diff)
		} else if string(b) != text {
			t.Logf("%s: same case, other comments (another kernel's messages?)", name)
		}
	}
	if n != len(have) {
		t.Errorf("generator makes %d cases, %s has %d", n, dir, len(have))
	}
}
