package jit_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// TestInterpreterCorpus runs the interpreter's fuzz corpus (vm's
// FuzzInterpreter: its seeds, vm/testdata/fuzz, and the directory in
// $VSWITCH_INTERP_CORPUS, e.g. the fuzz cache of a machine that fuzzed the
// interpreter) on both engines, which must agree.
func TestInterpreterCorpus(t *testing.T) {
	skipIfUnsupported(t)
	type input struct {
		name      string
		code, mem []byte
	}
	inputs := []input{
		{"seed1", asm.Encode(asm.MustAssemble("mov %r0, 1\nexit")), []byte{1, 2, 3}},
		{"seed2", asm.Encode(asm.MustAssemble("ldxdw %r0, [%r1+0]\nlock fetch add [%r1+0], %r0\nexit")), make([]byte, 8)},
		{"seed3", asm.Encode(asm.MustAssemble("loop:\nja loop")), []byte{}},
		{"seed4", asm.Encode(asm.MustAssemble("call local f\nexit\nf:\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit")), []byte{}},
	}
	dirs := []string{filepath.Join("..", "vm", "testdata", "fuzz", "FuzzInterpreter")}
	if d := os.Getenv("VSWITCH_INTERP_CORPUS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			vals, err := readCorpusFile(f)
			if err != nil || len(vals) != 2 {
				t.Errorf("%s: %v", f, err)
				continue
			}
			inputs = append(inputs, input{filepath.Base(f), vals[0], vals[1]})
		}
	}
	d := newDiffer()
	ran := 0
	for _, in := range inputs {
		insns, err := asm.Decode(in.code[:len(in.code)/8*8])
		if err != nil {
			continue
		}
		p, err := vm.Load(insns, vm.Options{Helpers: testHelpers()})
		if err != nil {
			continue
		}
		ran++
		if _, _, diff := d.compare(p, in.mem, 10000); diff != "" {
			t.Errorf("%s: engines differ: %s\n%s", in.name, diff, listing(insns))
		}
	}
	t.Logf("%d of %d inputs load and agree", ran, len(inputs))
}

// readCorpusFile reads the []byte values of a `go test fuzz v1` file.
func readCorpusFile(name string) ([][]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var vals [][]byte
	for _, line := range strings.Split(string(b), "\n")[1:] {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[]byte(") {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
		if err != nil {
			return nil, err
		}
		vals = append(vals, []byte(s))
	}
	return vals, nil
}
