package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/internal/testenv"
)

// TestTAPPort creates a TAP device through the CLI and exchanges traffic
// between a host and the switch namespace's kernel stack behind the TAP.
func TestTAPPort(t *testing.T) {
	e := setup(t)
	tap := netenv.Name("vtp")
	e.cli(t, "port", "add", tap, "--type", "tap")
	var ps control.PortShowResult
	if err := json.Unmarshal([]byte(e.cli(t, "-j", "port", "show")), &ps); err != nil {
		t.Fatal(err)
	}
	if p := ps.Ports[len(ps.Ports)-1]; p.Name != tap || p.Type != "tap" {
		t.Fatalf("port show: %+v", ps.Ports)
	}
	sw := e.topo.Switch
	if err := netenv.AddAddr(sw, tap, "10.77.0.100/24"); err != nil {
		t.Fatal(err)
	}
	h, err := sw.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(tap)
	if err != nil {
		t.Fatal(err)
	}
	h.LinkSetUp(l)
	rtt, err := demo.UDPEcho(context.Background(), e.topo.Hosts[0], sw, netip.MustParseAddr("10.77.0.100"), 7778)
	if err != nil {
		t.Fatalf("h1 <-> kernel behind %s: %v", tap, err)
	}
	t.Logf("UDP echo between h1 and the kernel behind the TAP port in %v", rtt)
	if _, errOut, code := e.run("port", "add", tap, "--type", "tap"); code == 0 || !strings.Contains(errOut, "already attached") {
		t.Errorf("adding the TAP twice: %d %s", code, errOut)
	}
}

func TestMetrics(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	h1.send(t, frame(broadcast, h1.mac, "m"))
	e.hosts[1].wait(t, 1)
	e.hosts[2].wait(t, 1)
	srv := httptest.NewServer(promhttp.HandlerFor(e.d.Registry(), promhttp.HandlerOpts{}))
	defer srv.Close()
	wants := []string{
		`vswitch_port_rx_packets_total{port="` + e.topo.Ports[0] + `"} 1`,
		`vswitch_port_tx_packets_total{port="` + e.topo.Ports[1] + `"} 1`,
		`vswitch_program_runs_total{engine="jit",program="learn"} 1`,
		`vswitch_port_up{port="` + e.topo.Ports[2] + `"} 1`,
	}
	// The counters follow the delivery of the frame: scrape until they
	// show it.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range missing {
		t.Errorf("metrics lack %s", m)
	}
}

// TestConfigFile starts a daemon from a declarative configuration.
func TestConfigFile(t *testing.T) {
	requireNetns(t)
	topo, err := demo.Build(2)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vswitch.json")
	abs, _ := filepath.Abs("../../examples/static.o")
	os.WriteFile(cfg, []byte(`{"ports":[{"name":"`+topo.Ports[0]+`"},{"name":"`+topo.Ports[1]+`"}],
		"program":{"file":"`+abs+`","engine":"interp"}}`), 0o644)
	nsPath := filepath.Join("/proc", itoa(os.Getpid()), "fd", itoa(int(topo.Switch.H)))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *daemon.Daemon, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.RunConfig{Socket: filepath.Join(dir, "s.sock"), ConfigFile: cfg, Netns: nsPath,
			NoState: true, Log: io.Discard, Ready: func(d *daemon.Daemon) { ready <- d }})
	}()
	var d *daemon.Daemon
	select {
	case d = <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	if ports := d.Ports(false); len(ports) != 2 {
		t.Errorf("ports from the config: %+v", ports)
	}
	if p, err := d.ProgramInfo(); err != nil || !strings.HasPrefix(p.Name, "static") || p.Engine != "interp" {
		t.Errorf("program from the config: %+v %v", p, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	// A config naming a missing interface fails with the reason.
	os.WriteFile(cfg, []byte(`{"ports":[{"name":"nosuch0"}]}`), 0o644)
	err = daemon.Run(context.Background(), daemon.RunConfig{Socket: filepath.Join(dir, "s2.sock"), ConfigFile: cfg, NoState: true, Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("bad config: %v", err)
	}
	os.WriteFile(cfg, []byte(`{"prots":[]}`), 0o644)
	if err := daemon.Run(context.Background(), daemon.RunConfig{Socket: filepath.Join(dir, "s3.sock"), ConfigFile: cfg, NoState: true, Log: io.Discard}); err == nil {
		t.Error("a config with an unknown field was accepted")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSocketPermissions: a user that is neither root nor in the socket's
// group is refused; the socket's group admits its members.
func TestSocketPermissions(t *testing.T) {
	if os.Getenv("VSWITCH_TEST_CLIENT") != "" {
		return // running as the unprivileged client, see TestMain
	}
	testenv.Root(t, "runs a client as another user")
	d := daemon.New(daemon.Config{})
	defer d.Close()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes its parent private
	sock := filepath.Join(dir, "p.sock")
	srv, err := control.Listen(control.ServerConfig{Path: sock}, d)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The test binary sits in a private build folder: give nobody a copy.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(gid uint32) (string, error) {
		cmd := exec.Command(bin, "-test.run", "^TestSocketPermissions$")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "VSWITCH_TEST_CLIENT="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gid}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Mode 0660, owned by root:root: nobody cannot even connect.
	if out, err := asNobody(65534); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody connected to a root-only socket: %v %s", err, out)
	}
	// The socket's group admits its members.
	os.Chown(sock, 0, 4242)
	if out, err := asNobody(4242); err != nil {
		t.Errorf("a member of the socket's group was refused: %v %s", err, out)
	}
}

func init() {
	// The unprivileged client of TestSocketPermissions: ping and exit.
	if sock := os.Getenv("VSWITCH_TEST_CLIENT"); sock != "" {
		c := &control.Client{Path: sock, Timeout: 5 * time.Second}
		if err := c.Call(context.Background(), control.MethodPing, nil, nil); err != nil {
			os.Stdout.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// TestRingbufRead follows the count example's ring buffer through the
// control socket: a frame of a new EtherType makes a record.
func TestRingbufRead(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	e.cli(t, "prog", "load", "../../examples/count.o")
	c := &control.Client{Path: e.socket}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := c.Stream(ctx, control.MethodRingbufRead, control.RingbufParams{Name: "events"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h1.send(t, frame(broadcast, h1.mac, "ring"))
	got := make(chan []byte, 1)
	go func() {
		var hdr [4]byte
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			return
		}
		rec := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		io.ReadFull(rc, rec)
		got <- rec
	}()
	select {
	case rec := <-got:
		if len(rec) < 2 {
			t.Fatalf("record %x", rec)
		}
		t.Logf("ring buffer record: %x", rec)
	case <-time.After(5 * time.Second):
		t.Fatal("no ring buffer record for a new EtherType")
	}
	if _, errOut, code := e.run("map", "dump", "events"); code == 0 || !strings.Contains(errOut, "map read events") {
		t.Errorf("map dump of a ring buffer: %d %s", code, errOut)
	}
}
