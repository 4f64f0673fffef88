package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/testenv"
	"github.com/govswitch/vswitch/internal/testprogs"
)

// testDaemon is a daemon run in this process on a socket of its own (no
// root needed: ports are the tests' own virtual ones).
type testDaemon struct {
	socket string
	d      *daemon.Daemon
}

func startDaemon(t *testing.T, rc daemon.RunConfig) *testDaemon {
	t.Helper()
	td := &testDaemon{socket: filepath.Join(testenv.SocketDir(t), "d.sock")}
	rc.Socket = td.socket
	rc.NoState = true // never /var/lib/vswitch
	rc.Log = io.Discard
	ready := make(chan *daemon.Daemon, 1)
	rc.Ready = func(d *daemon.Daemon) { ready <- d }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, rc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case td.d = <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start in 30s")
	}
	return td
}

// run runs a vswitch command against the daemon.
func (td *testDaemon) run(args ...string) (string, string, int) {
	return run(append([]string{"--socket", td.socket}, args...)...)
}

// vs runs a vswitch command that must succeed and returns its stdout.
func (td *testDaemon) vs(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := td.run(args...)
	if code != 0 {
		t.Fatalf("vswitch %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// virtualPort attaches a virtual port to the daemon's switch and returns
// the far end, which the test sends frames from.
func (td *testDaemon) virtualPort(t *testing.T, name string) *bpfport.Virtual {
	t.Helper()
	far, near := bpfport.NewVirtualPair(name+"-far", name, bpfport.VirtualConfig{})
	t.Cleanup(func() { far.Close() })
	if _, err := td.d.Switch().Attach(near, "virtual"); err != nil {
		t.Fatal(err)
	}
	return far
}

// waitRuns waits until the program has run n times in all.
func (td *testDaemon) waitRuns(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := td.d.ProgramInfo()
		if err == nil && info.Runs >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program ran %d times in 30s, want %d (%v)", info.Runs, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func send(t *testing.T, p *bpfport.Virtual, frames ...[]byte) {
	t.Helper()
	if n, err := p.SendBatch(0, frames, nil); err != nil || n != len(frames) {
		t.Fatalf("send: %d of %d: %v", n, len(frames), err)
	}
}

// TestPerCPUOutput: a per-CPU map prints one slot per worker of the
// switch (not one per possible CPU), labelled, and their sum; -j prints
// bpftool's form.
func TestPerCPUOutput(t *testing.T) {
	td := startDaemon(t, daemon.RunConfig{NoDefault: true, Workers: 2})
	td.vs(t, "prog", "load", "testdata/events.o", "--engine", "interp")
	p0, p1 := td.virtualPort(t, "v0"), td.virtualPort(t, "v1")
	f := testprogs.Frame64()
	send(t, p0, f, f, f)
	send(t, p1, f, f)
	td.waitRuns(t, 5)

	// Port 0's frames count in key 0, port 1's in key 1, on whichever
	// worker ran them.
	out := td.vs(t, "map", "dump", "counts")
	for _, want := range []string{
		"key: 0\n  cpu 0:  {\"frames\":",
		"\n  cpu 1:  {\"frames\":",
		"\n  sum:    {\"frames\":3,\"bytes\":192}\nkey: 1\n",
		"\n  sum:    {\"frames\":2,\"bytes\":128}\nkey: 2\n",
		"Found 4 elements\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("map dump lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cpu 2") {
		t.Errorf("map dump shows slots of no worker:\n%s", out)
	}

	var dump []struct {
		Key    []string `json:"key"`
		Values []struct {
			CPU   int      `json:"cpu"`
			Value []string `json:"value"`
		} `json:"values"`
		Sum       map[string]float64 `json:"sum"`
		Formatted struct {
			Key    int `json:"key"`
			Values []struct {
				CPU   int            `json:"cpu"`
				Value map[string]any `json:"value"`
			} `json:"values"`
		} `json:"formatted"`
	}
	js := td.vs(t, "map", "dump", "counts", "-j")
	if err := json.Unmarshal([]byte(js), &dump); err != nil || len(dump) != 4 {
		t.Fatalf("-j map dump: %v\n%s", err, js)
	}
	for k, e := range dump {
		if want := fmt.Sprintf("0x%02x 0x00 0x00 0x00", k); strings.Join(e.Key, " ") != want || e.Formatted.Key != k {
			t.Errorf("entry %d: key %q (formatted %d), want %q", k, e.Key, e.Formatted.Key, want)
		}
		if len(e.Values) != 2 || e.Values[0].CPU != 0 || e.Values[1].CPU != 1 || len(e.Values[0].Value) != 24 || !strings.HasPrefix(e.Values[0].Value[0], "0x") {
			t.Errorf("entry %d: values %+v", k, e.Values)
		}
		frames := 0.0
		for _, v := range e.Formatted.Values {
			frames += v.Value["frames"].(float64)
		}
		if want := []float64{3, 2, 0, 0}[k]; frames != want || e.Sum["frames"] != want || e.Sum["bytes"] != 64*want {
			t.Errorf("entry %d: slots add up to %v frames, sum %v; want %v", k, frames, e.Sum, want)
		}
	}

	// One value given for a per-CPU map goes to every slot.
	td.vs(t, "map", "update", "counts", "key", "3", "0", "0", "0", "value", "json", `{"frames": 1}`)
	out = td.vs(t, "map", "lookup", "counts", "key", "json", "3")
	if want := "key: 3\n  cpu 0:  {\"frames\":1,\"bytes\":0,\"last_mac\":\"00:00:00:00:00:00\"}\n  cpu 1:  {\"frames\":1,\"bytes\":0,\"last_mac\":\"00:00:00:00:00:00\"}\n  sum:    {\"frames\":2,\"bytes\":0}\n"; out != want {
		t.Errorf("lookup after update:\n%s\nwant\n%s", out, want)
	}
}

// TestPrintPerCPU: slots that are no worker's are summed, not listed.
func TestPrintPerCPU(t *testing.T) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	printEntry(tw, control.MapEntry{Key: []byte{1, 0}, PerCPU: []control.CPUValue{
		{CPU: 0, Worker: true, Value: []byte{1, 0}}, {CPU: 1, Worker: true, Value: []byte{0, 0}}, {CPU: 7, Value: []byte{5, 0}},
	}, Sum: json.RawMessage("6")})
	tw.Flush()
	want := "key: 01 00\n  cpu 0:  01 00\n  cpu 1:  00 00\n  sum:    6\n  (1 other slot of no worker: in the sum, -j shows them)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestRingbufFields: ring buffer records print as fields where the object
// describes them (__type(value, struct event)) or --type names the type.
func TestRingbufFields(t *testing.T) {
	// records runs map read events on a daemon of its own (a ring buffer
	// has one reader: a stream that is ending may still take a record)
	// and returns the first two lines it prints.
	records := func(args ...string) []string {
		t.Helper()
		td := startDaemon(t, daemon.RunConfig{NoDefault: true})
		td.vs(t, "prog", "load", "testdata/events.o", "--engine", "interp")
		p0 := td.virtualPort(t, "v0")
		f := testprogs.Frame64()
		send(t, p0, f, f)
		td.waitRuns(t, 2)
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var errOut bytes.Buffer
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			Main(ctx, append([]string{"--socket", td.socket, "map", "read", "events"}, args...), pw, &errOut)
			pw.Close()
		}()
		deadline := time.AfterFunc(30*time.Second, cancel)
		defer deadline.Stop()
		buf := make([]byte, 4096)
		var acc string
		for strings.Count(acc, "\n") < 2 {
			n, err := pr.Read(buf)
			acc += string(buf[:n])
			if err != nil {
				break
			}
		}
		cancel()
		go io.Copy(io.Discard, pr)
		wg.Wait()
		got := strings.SplitN(strings.TrimSpace(acc), "\n", 3)
		if len(got) < 2 {
			t.Fatalf("map read events %v: %q, stderr %q", args, acc, errOut.String())
		}
		return got
	}
	got := records()
	if want := `{"port":0,"len":64,"dst":"02:00:00:00:00:02"}`; got[0] != want || got[1] != want {
		t.Errorf("records: %q, want %q twice", got, want)
	}
	got = records("-j", "--type", "struct event")
	var rec struct {
		Record    []string       `json:"record"`
		Formatted map[string]any `json:"formatted"`
	}
	if err := json.Unmarshal([]byte(got[0]), &rec); err != nil || len(rec.Record) != 12 || rec.Record[0] != "0x00" || rec.Formatted["len"] != 64.0 {
		t.Errorf("-j --type event: %q %v", got[0], err)
	}
	td := startDaemon(t, daemon.RunConfig{NoDefault: true})
	td.vs(t, "prog", "load", "testdata/events.o", "--engine", "interp")
	if _, errOut, code := td.run("map", "read", "events", "--type", "nosuch"); code != 1 || !strings.Contains(errOut, `no type "nosuch"`) {
		t.Errorf("--type nosuch: exit %d, %q", code, errOut)
	}
}

// TestPapercuts: the small things of issue 12, each as a user meets it.
func TestPapercuts(t *testing.T) {
	td := startDaemon(t, daemon.RunConfig{})
	// detach --if-exists of a port that is not attached says so.
	out, _, code := td.run("port", "detach", "nosuch0", "--if-exists")
	if code != 0 || out != "port nosuch0 is not attached: nothing to detach\n" {
		t.Errorf("detach --if-exists: exit %d, %q", code, out)
	}
	if out := td.vs(t, "-j", "port", "detach", "nosuch0", "--if-exists"); !strings.Contains(out, `"absent": true`) {
		t.Errorf("detach --if-exists -j: %q", out)
	}
	// A .c file is C source, with the command that builds it.
	if _, errOut, code := td.run("prog", "load", "../../examples/count.c"); code != 1 ||
		!strings.Contains(errOut, "count.c is C source, not a compiled object: build it with `clang -O2 -g -target bpf -c ../../examples/count.c -o ../../examples/count.o`") {
		t.Errorf("prog load count.c: exit %d, %q", code, errOut)
	}
	// --section loads only what it names.
	if _, errOut, code := td.run("prog", "load", "../../examples/testdata/needs_kernel.o"); code != 1 || !strings.Contains(errOut, "need") {
		t.Errorf("needs_kernel.o: exit %d, %q", code, errOut)
	}
	if out := td.vs(t, "prog", "load", "../../examples/testdata/needs_kernel.o", "--section", "fine"); !strings.HasPrefix(out, "program fine loaded") {
		t.Errorf("--section fine: %q", out)
	}
	// A kernel-only object names the symbol and says why.
	if _, errOut, code := td.run("prog", "load", "../../examples/testdata/needs_ksym.o"); code != 1 ||
		!strings.Contains(errOut, "kernel symbol bpf_prog_active") || !strings.Contains(errOut, "only a kernel has") {
		t.Errorf("needs_ksym.o: exit %d, %q", code, errOut)
	}
	// bench --plot with nothing to plot says so before measuring anything.
	if _, errOut, code := run("bench", "--only", "vm,core", "--plot", filepath.Join(testenv.SocketDir(t), "x.png")); code != 2 || !strings.Contains(errOut, "--plot draws the veth, hosts, scale comparisons") {
		t.Errorf("bench --plot --only vm,core: exit %d, %q", code, errOut)
	}
	// daemon --netns takes a name, as pktgen does.
	if _, errOut, code := run("daemon", "--socket", filepath.Join(testenv.SocketDir(t), "x.sock"), "--netns", "vswitch-test-nosuch"); code != 1 ||
		!strings.Contains(errOut, "/var/run/netns/vswitch-test-nosuch") {
		t.Errorf("daemon --netns NAME: exit %d, %q", code, errOut)
	}
	if got := netnsPath("/proc/1/ns/net"); got != "/proc/1/ns/net" {
		t.Errorf("netnsPath of a path: %q", got)
	}
	if plural(1, "queue") != "1 queue" || plural(2, "queue") != "2 queues" {
		t.Error("plural")
	}
}

// TestDumpThroughCLI: prog dump prints map names and source lines.
func TestDumpThroughCLI(t *testing.T) {
	td := startDaemon(t, daemon.RunConfig{Engine: "interp"})
	out := td.vs(t, "prog", "dump", "xlated")
	if !strings.Contains(out, "lddw %r1, map[fdb]") || !strings.Contains(out, "; fdb.h:") {
		t.Errorf("prog dump xlated:\n%s", out)
	}
}

func init() {
	// Tests run from the package folder; testdata objects are relative.
	if _, err := os.Stat("testdata/events.o"); err != nil {
		panic("internal/cli tests must run in their folder: " + err.Error())
	}
}
