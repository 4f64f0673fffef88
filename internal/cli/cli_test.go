package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/internal/testenv"
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
		{"port", "add", "tap9", "--type", "afpacket"}, {"map", "lookup", "fdb"}, {"prog", "dump"}, {"fdb"}, {"--socket"},
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
	frame := filepath.Join(testenv.SocketDir(t), "frame")
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
	init := filepath.Join(testenv.SocketDir(t), "init")
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
	root := (&cmd{ctx: context.Background()}).rootCommand()
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		// Commands are matched by prefix: look at what the line resolves to.
		for _, a := range resolve(root, args) {
			switch a {
			case "daemon", "demo", "bench", "pktgen", "capture", "read", "-w", "--write":
				return // long-running or writing commands
			}
		}
		var out, errOut bytes.Buffer
		Main(context.Background(), append([]string{"--socket", "/nonexistent/vswitch.sock"}, args...), &out, &errOut)
	})
}

var update = flag.Bool("update", false, "rewrite docs/man from the command definitions")

// commandPaths lists every command a user can type, such as
// ["port", "attach"], from the command tree.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	c := &cmd{ctx: context.Background()}
	var paths [][]string
	var walk func(cc *cobra.Command, path []string)
	walk = func(cc *cobra.Command, path []string) {
		for _, sub := range cc.Commands() {
			if sub.Hidden {
				continue
			}
			p := append(slices.Clone(path), sub.Name())
			paths = append(paths, p)
			walk(sub, p)
		}
	}
	walk(c.rootCommand(), nil)
	if len(paths) < 30 {
		t.Fatalf("only %d commands: %q", len(paths), paths)
	}
	return paths
}

// TestHelpEverywhere: -h and --help on every command and verb print its
// usage on stdout and exit 0, the same text as `vswitch help COMMAND`.
func TestHelpEverywhere(t *testing.T) {
	for _, path := range commandPaths(t) {
		want, errOut, code := run(append([]string{"help"}, path...)...)
		if code != 0 || errOut != "" || !strings.Contains(want, "Usage:") {
			t.Errorf("vswitch help %s: exit %d, stderr %q, stdout %q", strings.Join(path, " "), code, errOut, want)
			continue
		}
		for _, h := range []string{"-h", "--help"} {
			out, errOut, code := run(append(slices.Clone(path), h)...)
			if code != 0 || errOut != "" || out != want {
				t.Errorf("vswitch %s %s: exit %d, stderr %q, stdout differs from vswitch help: %s", strings.Join(path, " "), h, code, errOut, cmp.Diff(want, out))
			}
		}
	}
	// The commands users run most carry examples.
	for _, path := range [][]string{{"port", "attach"}, {"prog", "load"}, {"prog", "run"}, {"map", "update"}, {"daemon"}, {"pktgen"}, {"bench"}, {"capture"}} {
		out, _, _ := run(append(path, "--help")...)
		if !strings.Contains(out, "Examples:\n  vswitch ") {
			t.Errorf("vswitch %s --help has no examples:\n%s", strings.Join(path, " "), out)
		}
	}
	out, _, code := run("help")
	if code != 0 || !strings.Contains(out, "prog load FILE.o") || !strings.Contains(out, "map update NAME key") {
		t.Errorf("vswitch help: exit %d\n%s", code, out)
	}
	if out, errOut, code := run("help", "nosuch"); code != 2 || out != "" || !strings.Contains(errOut, `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d, %q %q", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, _, code := run(args...)
		if code != 0 || out != "vswitch "+Version+" (control protocol 1)\n" {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
	out, _, code := run("version", "-j")
	var v struct {
		Vswitch  string
		Protocol int
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Vswitch != Version || v.Protocol != 1 {
		t.Errorf("version -j: exit %d, %q", code, out)
	}
}

// TestGlobalFlagsAnywhere: -j and --socket work before the object, after
// it and after the verb.
func TestGlobalFlagsAnywhere(t *testing.T) {
	sock := filepath.Join(testenv.SocketDir(t), "nowhere.sock")
	for _, args := range [][]string{
		{"--socket", sock, "fdb", "show"},
		{"fdb", "--socket", sock, "show"},
		{"fdb", "show", "--socket", sock},
		{"fdb", "show", "-j", "--socket=" + sock},
		{"port", "show", "-s", "--socket", sock, "--json"},
		{"-j", "map", "lookup", "fdb", "key", "hex", "02", "--socket", sock},
		{"-socket", sock, "stats"}, // one dash, as the flag package took it
	} {
		_, errOut, code := run(args...)
		if code != 1 || !strings.Contains(errOut, "no daemon at "+sock) {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
	t.Setenv("VSWITCH_SOCKET", sock)
	if _, errOut, code := run("stats"); code != 1 || !strings.Contains(errOut, "no daemon at "+sock) {
		t.Errorf("$VSWITCH_SOCKET: exit %d, stderr %q", code, errOut)
	}
}

func TestResolve(t *testing.T) {
	c := &cmd{ctx: context.Background()}
	root := c.rootCommand()
	for _, tc := range []struct{ in, want string }{
		{"p s", "port show"},
		{"po sh -s", "port show -s"},
		{"pr s", "prog show"},
		{"pk -i x", "pktgen -i x"},
		{"m d fdb", "map dump fdb"},
		{"m u fdb key hex 02 value 1", "map update fdb key hex 02 value 1"},
		{"-j --socket /s p s", "-j --socket /s port show"},
		{"--socket p p s", "--socket p port show"}, // a flag's value is no command
		{"f f", "fdb flush"},
		{"a eth0", "attach eth0"},
		{"det eth0", "detach eth0"},
		{"d", "daemon"},
		{"dem", "demo"},
		{"h p a", "help port attach"},
		{"help m u", "help map update"},
		{"p d x", "port detach x"},
		{"pr d x", "prog dump xlated"},
		{"pr d j", "prog dump jited"},
		{"c eth0 -w -", "capture eth0 -w -"},
		{"comp bash", "completion bash"},
		{"port attach a --queues 2", "port attach a --queues 2"},
		{"port attach a -queues 2", "port attach a --queues 2"},
		{"nosuch p", "nosuch p"},                 // left for the error
		{"port attach show", "port attach show"}, // an argument, not a verb
		{"map update m key json 1 value json -1", "map update -- m key json 1 value json -1"},
		{"-j m u m key json 1 value json -1 any", "map update -j -- m key json 1 value json -1 any"},
		{"prog run x.o --ingress-port -1", "prog run x.o --ingress-port -1"},
		{"pktgen -jsx -i y", "pktgen -jsx -i y"},
	} {
		got := strings.Join(resolve(root, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prot", "show"}, `unknown object "prot": did you mean port or prog?`},
		{[]string{"port", "atach", "x"}, `port: unknown verb "atach": did you mean attach or detach?`},
		{[]string{"map", "dunp", "x"}, `map: unknown verb "dunp": did you mean dump?`},
		{[]string{"port"}, "port: want attach, add, detach or show"},
		{[]string{"prog", "dump"}, "prog dump: want xlated or jited"},
		{[]string{"xyzzy"}, `unknown object "xyzzy" (port, prog, map`},
		{[]string{"port", "show", "--bogus"}, "unknown flag: --bogus"},
	} {
		out, errOut, code := run(tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := run("completion", sh)
		if code != 0 || errOut != "" || !strings.Contains(out, "vswitch") || len(out) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errOut)
		}
	}
	// What the scripts ask: the verbs of port, the values of --engine.
	out, _, code := run("__complete", "port", "")
	for _, w := range []string{"attach", "add", "detach", "show"} {
		if code != 0 || !strings.Contains(out, w+"\t") {
			t.Errorf("__complete port: exit %d, %q lacks %s", code, out, w)
		}
	}
	out, _, _ = run("__complete", "prog", "load", "x.o", "--engine", "")
	if !strings.Contains(out, "jit\n") || !strings.Contains(out, "interp\n") {
		t.Errorf("__complete --engine: %q", out)
	}
}

// TestManPages: docs/man is what the command definitions make now.
func TestManPages(t *testing.T) {
	const dir = "../../docs/man"
	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "*.1"))
		for _, f := range old {
			os.Remove(f)
		}
		os.MkdirAll(dir, 0o755)
		if err := WriteManPages(dir); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	if err := WriteManPages(tmp); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(tmp, "*.1"))
	have, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(want) != len(have) {
		t.Errorf("docs/man has %d pages, the commands make %d: run go test ./internal/cli -run TestManPages -update", len(have), len(want))
	}
	for _, w := range want {
		wb, _ := os.ReadFile(w)
		hb, err := os.ReadFile(filepath.Join(dir, filepath.Base(w)))
		if err != nil || !bytes.Equal(wb, hb) {
			t.Errorf("docs/man/%s is out of date: run go test ./internal/cli -run TestManPages -update", filepath.Base(w))
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "vswitch-daemon.1"))
	if !bytes.Contains(b, []byte("--group")) || !bytes.Contains(b, []byte("--netns")) {
		t.Errorf("vswitch-daemon.1 does not list the daemon's flags")
	}
}

// --timeout bounds a call to a daemon that accepts and never answers; the
// message names the socket and says what to do.
func TestTimeoutFlag(t *testing.T) {
	sock := filepath.Join(testenv.SocketDir(t), "silent.sock")
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
	if code := Main(context.Background(), []string{"--timeout=soon", "port", "show"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `invalid argument "soon" for "--timeout"`) {
		t.Errorf("bad --timeout: exit %d, stderr %q", code, errOut.String())
	}
}
