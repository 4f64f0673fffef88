package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/internal/testprogs"
)

func run(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []byte
		rest int
	}{
		{[]string{"1", "2", "255"}, []byte{1, 2, 255}, 0},
		{[]string{"hex", "0a", "0b0c", "value", "1"}, []byte{10, 11, 12}, 2},
		{[]string{"hex", "00:11:22"}, []byte{0, 0x11, 0x22}, 0},
		{[]string{"0x10", "any"}, []byte{16}, 1},
	} {
		got, rest, err := parseBytes("key", c.in, "value", "any")
		if err != nil || !bytes.Equal(got, c.want) || len(rest) != c.rest {
			t.Errorf("%q: %v %v %v", c.in, got, rest, err)
		}
	}
	for _, bad := range [][]string{{"256"}, {"hex", "zz"}, {}, {"value"}, {"-1"}} {
		if _, _, err := parseBytes("key", bad, "value"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"nope"}, {"--bogus", "port", "show"}, {"port"}, {"port", "fly"}, {"port", "attach"},
		{"port", "add", "tap9"}, {"map", "lookup", "fdb"}, {"prog", "dump"}, {"fdb"}, {"--socket"},
		{"prog", "run", "x.o"}, {"capture", "p0"}, {"port", "show", "--queues"},
	} {
		_, errOut, code := run(args...)
		if code == 0 || errOut == "" {
			t.Errorf("vswitch %q: exit %d, stderr %q", args, code, errOut)
		}
	}
	if out, _, code := run("help"); code != 0 || !strings.Contains(out, "prog load FILE.o") {
		t.Errorf("help: %d", code)
	}
}

func TestProgRun(t *testing.T) {
	frame := filepath.Join(t.TempDir(), "frame")
	f := testprogs.Frame64()
	f[0] = 0xff // broadcast: the learning program floods
	os.WriteFile(frame, f, 0o644)
	for _, engine := range []string{"interp", "jit"} {
		out, errOut, code := run("prog", "run", "../../examples/learn.o", "--data-in", frame, "--repeat", "100", "--engine", engine)
		if code != 0 || !strings.HasPrefix(out, "Return value: 254, duration (average): ") {
			t.Errorf("%s: %d %q %q", engine, code, out, errOut)
		}
	}
	out, _, code := run("-j", "prog", "run", "../../examples/learn.o", "--data-in", frame)
	var r RunResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Retval != 254 {
		t.Errorf("-j: %d %q", code, out)
	}
	// --map-init puts the destination in the fdb: unicast to port 3.
	init := filepath.Join(t.TempDir(), "init")
	os.WriteFile(init, []byte("# mac -> port 3\nfdb 020000000002 03000000000000000000000000000000\n"), 0o644)
	f[0] = 0x02
	os.WriteFile(frame, f, 0o644)
	out, errOut, code := run("prog", "run", "../../examples/learn.o", "--data-in", frame, "--map-init", init, "--ingress-port", "1")
	if code != 0 || !strings.HasPrefix(out, "Return value: 3,") {
		t.Errorf("map-init: %d %q %q", code, out, errOut)
	}
	os.WriteFile(init, []byte("nosuch 00 00\n"), 0o644)
	if _, errOut, code := run("prog", "run", "../../examples/learn.o", "--data-in", frame, "--map-init", init); code == 0 || !strings.Contains(errOut, "no map") {
		t.Errorf("bad map-init: %d %q", code, errOut)
	}
	// A runt frame: the program drops it; a program reading past the end faults.
	os.WriteFile(frame, []byte{1, 2, 3}, 0o644)
	if out, _, _ := run("prog", "run", "../../examples/learn.o", "--data-in", frame); !strings.HasPrefix(out, "Return value: 255") {
		t.Errorf("runt: %q", out)
	}
}

// FuzzArgs: any command line gives an exit status, never a panic. Only
// local commands are reachable: the socket points nowhere.
func FuzzArgs(f *testing.F) {
	f.Add("map update fdb key hex 00 11 value 1 2 any")
	f.Add("port attach eth0 --type tap --queues 2")
	f.Add("prog run x.o --data-in /nonexistent --repeat -5")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		for _, a := range args {
			switch a {
			case "daemon", "demo", "bench", "pktgen", "capture", "read", "-w":
				return // long-running or writing commands
			}
		}
		var out, errOut bytes.Buffer
		Main(context.Background(), append([]string{"--socket", "/nonexistent/vswitch.sock"}, args...), &out, &errOut)
	})
}

func TestParseFlagsAnywhere(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	n := fs.Int("n", 0, "")
	b := fs.Bool("b", false, "")
	pos, err := parse(fs, []string{"a", "-n", "3", "b", "-b", "-5"})
	if err != nil || *n != 3 || !*b || strings.Join(pos, ",") != "a,b,-5" {
		t.Errorf("%v %d %v %v", pos, *n, *b, err)
	}
}

// --timeout bounds a call to a daemon that accepts and never answers; the
// message names the socket and says what to do.
func TestTimeoutFlag(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"--socket", sock, "--timeout", "200ms", "port", "show"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), sock) || !strings.Contains(errOut.String(), "did not answer") ||
		!strings.Contains(errOut.String(), "--timeout") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := Main(context.Background(), []string{"--timeout=soon", "port", "show"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "positive duration") {
		t.Errorf("bad --timeout: exit %d, stderr %q", code, errOut.String())
	}
}
