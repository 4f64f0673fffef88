package conformance

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCorpusFolder(t *testing.T) {
	cases, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 313 {
		t.Errorf("%d cases in %s, want 313", len(cases), Dir())
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("an empty folder loads without error")
	}
}

func TestParse(t *testing.T) {
	c, err := Parse("# c\n-- asm\nmov %r0, 1 # one\nexit\n-- mem\n00 01\n02\n-- result\n0x1\n")
	if err != nil || len(c.Program) != 2 || c.Result != 1 || len(c.Mem) != 3 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"-- asm\nexit\n", "-- asm\nfrob\n-- result\n1", "-- weird\n", "-- asm\nexit\n-- mem\nzz\n-- result\n1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// FuzzParse: a malformed .data file gives an error, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(Dir(), "*.data"))
	for i, name := range files {
		if i%10 == 0 {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(string(b))
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		Parse(s)
	})
}
