package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/conformance"
)

func hexBytes(b []byte) string {
	var s []string
	for _, c := range b {
		s = append(s, fmt.Sprintf("%02x", c))
	}
	return strings.Join(s, " ")
}

// TestProtocol runs the built plugin the way the bpf_conformance runner does
// on the own corpus and, when it is here, the bpf_conformance corpus. As in
// that runner, a case that expects an error passes when the plugin exits
// non-zero and its output is the expected error line. Every case runs on
// the default engine; on the others, whose answers vm and jit's own tests
// check without a process per case, the own corpus's error cases only.
func TestProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "plugin")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Run("own", func(t *testing.T) { runCorpus(t, bin, "own corpus", conformance.OwnDir(), true) })
	t.Run("bpf_conformance", func(t *testing.T) { runCorpus(t, bin, "bpf_conformance", conformance.External(t), false) })
}

func runCorpus(t *testing.T, bin, corpus, dir string, errorsEverywhere bool) {
	cases, err := conformance.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for engine := range engines {
		passed, failed := 0, 0
		for _, c := range cases {
			if engine != defaultEngine && !(errorsEverywhere && c.HasError) {
				continue
			}
			var args []string
			if len(c.Mem) > 0 {
				args = append(args, hexBytes(c.Mem))
			}
			args = append(args, "--engine="+engine)
			cmd := exec.Command(bin, args...)
			cmd.Stdin = strings.NewReader(hexBytes(asm.Encode(c.Program)) + "\n")
			out, err := cmd.Output()
			got := strings.TrimRight(string(out), " \t\r\n")
			var ok bool
			var want string
			if c.HasError {
				want = c.Error
				var exit *exec.ExitError
				ok = errors.As(err, &exit) && got == want
			} else {
				want = fmt.Sprintf("%#016x", c.Result)
				ok = err == nil && got == want
			}
			if !ok {
				failed++
				t.Errorf("%s on %s: want %q, got %q (%v)", c.Name, engine, want, got, err)
				continue
			}
			passed++
		}
		if passed+failed > 0 {
			t.Logf("%s, plugin --engine=%s: %d passed, %d failed", corpus, engine, passed, failed)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{nil, "95 00 00 00 00 00 00", "multiple of 8"},
		{nil, "zz", "bad hex byte"},
		{nil, "07 00 00 00 01 00 00 00", "fall through"},
		{[]string{"--engine=nope"}, "95 00 00 00 00 00 00 00", "unknown engine"},
		{nil, "61 10 00 10 00 00 00 00 95 00 00 00 00 00 00 00", "out-of-bounds read"},
	} {
		_, err := run(tt.args, strings.NewReader(tt.stdin))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q, %q): error %v, want one containing %q", tt.args, tt.stdin, err, tt.want)
		}
	}
	out, err := run([]string{"00 00 00 01 00 00 00 02"}, strings.NewReader("bf 20 00 00 00 00 00 00 95 00 00 00 00 00 00 00"))
	if err != nil || out != "0x0000000000000008" {
		t.Errorf("mem-len: got %q, %v", out, err)
	}
	_ = os.Stdout
}
