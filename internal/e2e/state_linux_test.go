package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/cli"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// vswitchBinary builds cmd/vswitch once per test binary.
func vswitchBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vswitch-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vswitch")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, "../../cmd/vswitch").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// lockedBuffer is a bytes.Buffer a process may write while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemonProc is `vswitch daemon` running as its own process, with its
// ports in the topology's switch namespace.
type daemonProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	sock string
}

// startDaemon starts the binary and waits until it answers.
func startDaemon(t *testing.T, topo *demo.Topology, sock string, args ...string) *daemonProc {
	t.Helper()
	bin := vswitchBinary(t)
	cmd := exec.Command(bin, append([]string{"daemon", "--socket", sock, "--netns", "/proc/self/fd/3"}, args...)...)
	cmd.ExtraFiles = []*os.File{nsFile(t, topo)}
	p := &daemonProc{cmd: cmd, log: &lockedBuffer{}, sock: sock}
	cmd.Stderr = p.log
	err := cmd.Start()
	cmd.ExtraFiles[0].Close()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out, errOut bytes.Buffer
		if cli.Main(context.Background(), []string{"--socket", sock, "--timeout", "5s", "prog", "show"}, &out, &errOut) == 0 {
			return p
		}
		select {
		case <-exited:
			t.Fatalf("daemon exited at start: %v\n%s", cmd.ProcessState, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up: %s\n%s", errOut.String(), p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsFile opens the topology's switch namespace as a file of its own (to
// hand to a process): wrapping the topology's descriptor in an *os.File
// would close it when the file is collected.
func nsFile(t *testing.T, topo *demo.Topology) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("/proc/self/fd", itoa(int(topo.Switch.H))))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// kill ends the daemon as SIGKILL does: nothing more is written.
func (p *daemonProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	for deadline := time.Now().Add(20 * time.Second); processAlive(p.cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatal("daemon still alive 20s after SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the daemon cleanly (SIGTERM) and waits for it.
func (p *daemonProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); processAlive(p.cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatalf("daemon still running 30s after SIGTERM:\n%s", p.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processAlive reports whether pid is still running (not yet a zombie
// reaped by the Wait of startDaemon).
func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// vs runs a CLI command against the daemon at sock.
func vs(t *testing.T, sock string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), append([]string{"--socket", sock}, args...), &out, &errOut); code != 0 {
		t.Fatalf("vswitch %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

func portsOf(t *testing.T, sock string) []control.Port {
	t.Helper()
	var ps control.PortShowResult
	if err := json.Unmarshal([]byte(vs(t, sock, "-j", "port", "show")), &ps); err != nil {
		t.Fatal(err)
	}
	return ps.Ports
}

// echo checks UDP between two hosts of the topology through their kernel
// stacks (ARP included): 5 tries of a second.
func echo(topo *demo.Topology, from, to int, port int) error {
	_, err := demo.UDPEcho(context.Background(), topo.Hosts[from], topo.Hosts[to], topo.IPs[to], port)
	return err
}

// blocked checks that UDP from host from to host to does not get through
// (2 tries of a second, each answered within milliseconds when
// forwarded), and that rule 5 of acl.o's drops counter is what stopped it.
func blocked(t *testing.T, sock string, topo *demo.Topology, from, to, port int) bool {
	t.Helper()
	before := ruleDrops(t, sock, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_, err := demo.UDPEcho(ctx, topo.Hosts[from], topo.Hosts[to], topo.IPs[to], port)
	if err == nil {
		return false
	}
	if after := ruleDrops(t, sock, 5); after <= before {
		t.Errorf("no echo, but rule 5 dropped nothing (%d before, %d after): %v", before, after, err)
	}
	return true
}

// mapLookup looks a key up through the control protocol.
func mapLookup(t *testing.T, sock, name string, key []byte) control.MapEntry {
	t.Helper()
	var e control.MapEntry
	c := &control.Client{Path: sock}
	if err := c.Call(context.Background(), control.MethodMapLookup, control.MapParams{Name: name, Key: key}, &e); err != nil {
		t.Fatalf("map lookup %s %x: %v", name, key, err)
	}
	return e
}

// ruleDrops sums acl.o's per-CPU drop counter of a rule.
func ruleDrops(t *testing.T, sock string, rule byte) uint64 {
	t.Helper()
	e := mapLookup(t, sock, "drops", []byte{rule, 0, 0, 0})
	var n uint64
	for off := 0; off+8 <= len(e.Value); off += 8 {
		n += binary.LittleEndian.Uint64(e.Value[off:])
	}
	return n
}

// TestStateACLSurvivesKill is issue 11's reproduction: an ACL blocklist
// entry set with `map update`, the daemon killed with SIGKILL and started
// again with the same --config: the blocked host stays blocked. The
// ports and the program come back as they were.
func TestStateACLSurvivesKill(t *testing.T) {
	requireNetns(t)
	topo, err := demo.Build(3)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "vswitch.json")
	acl, _ := filepath.Abs("../../examples/acl.o")
	os.WriteFile(cfg, []byte(`{"ports":[{"name":"`+topo.Ports[0]+`"},{"name":"`+topo.Ports[1]+`"},{"name":"`+topo.Ports[2]+`"}],
		"program":{"file":"`+acl+`","section":"acl"}}`), 0o644)
	sock := filepath.Join(dir, "d.sock")
	args := []string{"--config", cfg, "--state-dir", stateDir}
	d := startDaemon(t, topo, sock, args...)
	if err := echo(topo, 0, 1, 7001); err != nil {
		t.Fatalf("h1 -> h2 before the blocklist: %v\n%s", err, d.log)
	}
	// Block h1 (10.77.0.1/32) as rule 5.
	vs(t, sock, "map", "update", "blocklist", "key", "hex", "20000000", "0a4d0001", "value", "5", "0", "0", "0")
	if !blocked(t, sock, topo, 0, 1, 7002) {
		t.Fatal("h1 still reaches h2 after the blocklist update")
	}
	d.kill(t)

	d = startDaemon(t, topo, sock, args...)
	if !blocked(t, sock, topo, 0, 1, 7003) {
		t.Fatalf("h1 reaches h2 again after a SIGKILL and a restart: the blocklist was lost\n%s", d.log)
	}
	if err := echo(topo, 1, 2, 7004); err != nil {
		t.Fatalf("h2 -> h3 after the restart: %v\n%s", err, d.log)
	}
	if e := mapLookup(t, sock, "blocklist", []byte{0x20, 0, 0, 0, 10, 77, 0, 1}); !bytes.Equal(e.Value, []byte{5, 0, 0, 0}) {
		t.Errorf("blocklist entry after the restart: %+v", e)
	}
	ports := portsOf(t, sock)
	if len(ports) != 3 {
		t.Fatalf("ports after the restart: %+v", ports)
	}
	for i, p := range ports {
		if p.Index != i || p.Name != topo.Ports[i] || !p.Up {
			t.Errorf("port %d after the restart: %+v", i, p)
		}
	}
	if out := vs(t, sock, "prog", "show"); !strings.Contains(out, "acl") {
		t.Errorf("program after the restart: %s", out)
	}
	// The same through a clean stop (the maps' snapshot).
	d.stop(t)
	d = startDaemon(t, topo, sock, args...)
	if !blocked(t, sock, topo, 0, 1, 7005) {
		t.Fatalf("h1 reaches h2 again after a clean restart\n%s", d.log)
	}
	// Unblocking is kept too.
	vs(t, sock, "map", "delete", "blocklist", "key", "hex", "20000000", "0a4d0001")
	d.kill(t)
	d = startDaemon(t, topo, sock, args...)
	if err := echo(topo, 0, 1, 7006); err != nil {
		t.Fatalf("h1 -> h2 after the unblock and a restart: %v\n%s", err, d.log)
	}
}

// TestStatePortGoneAtRestart: a saved port whose interface is gone when
// the daemon starts is reported as not restored and keeps its index; the
// others forward; attaching it again once it is back works and is kept.
func TestStatePortGoneAtRestart(t *testing.T) {
	requireNetns(t)
	topo, err := demo.Build(3)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	args := []string{"--state-dir", filepath.Join(dir, "state")}
	d := startDaemon(t, topo, sock, args...)
	vs(t, sock, "prog", "load", "../../examples/static.o", "--engine", "interp")
	for _, p := range topo.Ports {
		vs(t, sock, "port", "attach", p)
	}
	d.stop(t)
	if err := netenv.DelLink(topo.Switch, topo.Ports[1]); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, topo, sock, args...)
	ports := portsOf(t, sock)
	if len(ports) != 3 {
		t.Fatalf("ports: %+v", ports)
	}
	if p := ports[1]; p.Index != 1 || p.Name != topo.Ports[1] || !p.NotRestored || p.Up || !strings.Contains(p.Error, "not restored") {
		t.Errorf("the gone port: %+v", p)
	}
	for _, i := range []int{0, 2} {
		if p := ports[i]; p.Index != i || p.Name != topo.Ports[i] || p.NotRestored || !p.Up {
			t.Errorf("port %d: %+v", i, p)
		}
	}
	if out := vs(t, sock, "port", "show"); !strings.Contains(out, "not-restored") {
		t.Errorf("port show:\n%s", out)
	}
	var st control.StatsResult
	json.Unmarshal([]byte(vs(t, sock, "-j", "stats")), &st)
	if len(st.Ports) != 3 || !st.Ports[1].NotRestored {
		t.Errorf("stats: %+v", st.Ports)
	}
	if !strings.Contains(d.log.String(), "saved port not restored") {
		t.Errorf("no log line for the port:\n%s", d.log)
	}
	if out := vs(t, sock, "prog", "show"); !strings.Contains(out, "static") {
		t.Errorf("program after the restart: %s", out)
	}
	// The interface comes back; attaching it replaces the placeholder.
	if err := netenv.Veth(topo.Hosts[1], "eth0", topo.Switch, topo.Ports[1], 0); err != nil {
		t.Fatal(err)
	}
	if err := netenv.AddAddr(topo.Hosts[1], "eth0", topo.IPs[1].String()+"/24"); err != nil {
		t.Fatal(err)
	}
	vs(t, sock, "port", "attach", topo.Ports[1])
	if p := portsOf(t, sock)[1]; p.Index != 1 || p.NotRestored || !p.Up {
		t.Errorf("re-attached port: %+v", p)
	}
	d.kill(t)
	d = startDaemon(t, topo, sock, args...)
	for i, p := range portsOf(t, sock) {
		if p.Index != i || p.NotRestored || !p.Up {
			t.Errorf("port %d after the last restart: %+v\n%s", i, p, d.log)
		}
	}
}
