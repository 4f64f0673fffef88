// End-to-end tests: a daemon with three hosts in network namespaces, driven
// through the control socket and the CLI as a user would.
package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/cli"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
)

const etherTest = 0x88b5 // local experimental EtherType: no host kernel answers it

// env is a running daemon on a three-host topology.
type env struct {
	t      *testing.T
	topo   *demo.Topology
	d      *daemon.Daemon
	srv    *control.Server
	socket string
	hosts  []*host
}

// host is a test station: an AF_PACKET socket on a host's eth0.
type host struct {
	port bpfport.Port
	mac  net.HardwareAddr
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func setup(t *testing.T) *env {
	t.Helper()
	if err := netenv.Check(); err != nil {
		t.Skipf("end-to-end tests %v", err)
	}
	topo, err := demo.Build(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	e := &env{t: t, topo: topo}
	e.d = daemon.New(daemon.Config{Netns: topo.Switch})
	t.Cleanup(func() { e.d.Close() })
	if _, err := e.d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	e.socket = filepath.Join(t.TempDir(), "vswitch.sock")
	if e.srv, err = control.Listen(control.ServerConfig{Path: e.socket}, e.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close() })
	for _, p := range topo.Ports {
		e.cli(t, "port", "attach", p)
	}
	for i, ns := range topo.Hosts {
		h := &host{mac: topo.MACs[i], done: make(chan struct{})}
		if err := ns.Run(func() error {
			var err error
			h.port, err = bpfport.OpenAFPacket("eth0", bpfport.AFPacketConfig{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		go h.collect()
		t.Cleanup(func() { h.port.Close(); <-h.done })
		e.hosts = append(e.hosts, h)
	}
	return e
}

func (h *host) collect() {
	defer close(h.done)
	b := bpfport.NewBatch(64)
	for {
		n, err := h.port.RecvBatch(0, b)
		if err != nil {
			return
		}
		h.mu.Lock()
		for _, f := range b.Frames[:n] {
			if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == etherTest {
				h.got = append(h.got, append([]byte(nil), f...))
			}
		}
		h.mu.Unlock()
	}
}

// take returns (and forgets) the test frames h received.
func (h *host) take() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.got
	h.got = nil
	return g
}

func (h *host) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	if n, err := h.port.SendBatch(0, frames, nil); err != nil || n != len(frames) {
		t.Fatalf("send: %d of %d: %v", n, len(frames), err)
	}
}

func frame(dst, src net.HardwareAddr, tag string) []byte {
	f := make([]byte, 60)
	copy(f[0:], dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], etherTest)
	copy(f[14:], tag)
	return f
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// settle waits for frames in flight to arrive.
func settle() { time.Sleep(150 * time.Millisecond) }

// tags returns the tags of frames.
func tags(frames [][]byte) []string {
	var s []string
	for _, f := range frames {
		s = append(s, strings.TrimRight(string(f[14:30]), "\x00"))
	}
	return s
}

// cli runs a vswitch command against the daemon and returns its stdout.
func (e *env) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		t.Fatalf("vswitch %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func (e *env) run(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), append([]string{"--socket", e.socket}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestLearningAndFlooding(t *testing.T) {
	e := setup(t)
	h1, h2, h3 := e.hosts[0], e.hosts[1], e.hosts[2]

	// Broadcast floods to everyone but the sender, and teaches the switch h1.
	h1.send(t, frame(broadcast, h1.mac, "bcast"))
	settle()
	if g1, g2, g3 := h1.take(), h2.take(), h3.take(); len(g1) != 0 || len(g2) != 1 || len(g3) != 1 {
		t.Fatalf("broadcast: h1 %v, h2 %v, h3 %v", tags(g1), tags(g2), tags(g3))
	}
	// Unknown unicast floods.
	h2.send(t, frame(net.HardwareAddr{2, 0, 0, 0, 0, 0x99}, h2.mac, "unknown"))
	settle()
	if g1, g3 := h1.take(), h3.take(); len(g1) != 1 || len(g3) != 1 {
		t.Fatalf("unknown unicast: h1 %v, h3 %v", tags(g1), tags(g3))
	}
	// The reply to h1 is unicast to h1 only; then h1 -> h2 is unicast to h2 only.
	h2.send(t, frame(h1.mac, h2.mac, "reply"))
	settle()
	h1.send(t, frame(h2.mac, h1.mac, "unicast"))
	settle()
	g1, g2, g3 := h1.take(), h2.take(), h3.take()
	if len(g1) != 1 || tags(g1)[0] != "reply" || len(g2) != 1 || tags(g2)[0] != "unicast" {
		t.Fatalf("learned unicast: h1 %v, h2 %v", tags(g1), tags(g2))
	}
	if len(g3) != 0 {
		t.Fatalf("h3 saw unicast frames between h1 and h2: %v", tags(g3))
	}
	// The FDB shows both stations on their ports.
	var fdb control.FDBResult
	if err := json.Unmarshal([]byte(e.cli(t, "-j", "fdb", "show")), &fdb); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{}
	for _, en := range fdb.Entries {
		ports[en.MAC] = en.Port
	}
	if ports[h1.mac.String()] != 0 || ports[h2.mac.String()] != 1 {
		t.Errorf("fdb: %+v", fdb.Entries)
	}
	if out := e.cli(t, "fdb", "show"); !strings.Contains(out, h1.mac.String()) || !strings.Contains(out, e.topo.Ports[0]) {
		t.Errorf("fdb show:\n%s", out)
	}
	e.cli(t, "fdb", "flush")
	if out := e.cli(t, "-j", "fdb", "show"); strings.Contains(out, h1.mac.String()) {
		t.Errorf("fdb after flush:\n%s", out)
	}
}

func TestVLANExample(t *testing.T) {
	e := setup(t)
	h1, h2, h3 := e.hosts[0], e.hosts[1], e.hosts[2]
	e.cli(t, "prog", "load", "../../examples/vlan.o")
	// Ports 0 and 1 in VLAN 10 (native), port 2 in VLAN 20.
	for port, vlan := range []int{10, 10, 20} {
		e.cli(t, "map", "update", "port_vlan", "key", fmt.Sprint(port), "0", "0", "0", "value", fmt.Sprint(vlan), "0", "0", "0")
	}
	e.cli(t, "map", "update", "vlan_members", "key", "10", "0", "0", "0", "value", "hex", "03"+strings.Repeat("00", 31))
	e.cli(t, "map", "update", "vlan_members", "key", "20", "0", "0", "0", "value", "hex", "04"+strings.Repeat("00", 31))
	h1.send(t, frame(broadcast, h1.mac, "vlan10"))
	settle()
	if g2, g3 := h2.take(), h3.take(); len(g2) != 1 || len(g3) != 0 {
		t.Fatalf("VLAN 10 broadcast: h2 %v, h3 %v (h3 is in VLAN 20)", tags(g2), tags(g3))
	}
	h3.send(t, frame(broadcast, h3.mac, "vlan20"))
	settle()
	if g1, g2 := h1.take(), h2.take(); len(g1) != 0 || len(g2) != 0 {
		t.Fatalf("VLAN 20 broadcast leaked: h1 %v, h2 %v", tags(g1), tags(g2))
	}
}

func TestACLExample(t *testing.T) {
	e := setup(t)
	h1, h2 := e.hosts[0], e.hosts[1]
	e.cli(t, "prog", "load", "../../examples/acl.o")
	// Block 10.66.0.0/16 as rule 5.
	e.cli(t, "map", "update", "blocklist", "key", "hex", "10000000", "0a420000", "value", "5", "0", "0", "0")
	ipFrame := func(src [4]byte, tag string) []byte {
		f := frame(broadcast, h1.mac, "")
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		f[14] = 0x45
		copy(f[26:], src[:])
		copy(f[34:], tag)
		return f
	}
	// The host port only keeps our test EtherType: count at h2 by port counters instead.
	before := e.portTx(t, 1)
	h1.send(t, ipFrame([4]byte{10, 66, 1, 2}, "blocked"), ipFrame([4]byte{10, 67, 1, 2}, "allowed"))
	settle()
	if got := e.portTx(t, 1) - before; got != 1 {
		t.Fatalf("%d frames forwarded to h2, want 1 (the allowed one)", got)
	}
	// -j prints bpftool's form: hex byte keys, per-CPU values and their sum.
	var dump []struct {
		Key []string `json:"key"`
		Sum uint64   `json:"sum"`
	}
	if err := json.Unmarshal([]byte(e.cli(t, "-j", "map", "dump", "drops")), &dump); err != nil {
		t.Fatal(err)
	}
	var rule5 uint64
	for _, en := range dump {
		if strings.Join(en.Key, " ") == "0x05 0x00 0x00 0x00" {
			rule5 = en.Sum
		}
	}
	if rule5 != 1 {
		t.Errorf("rule 5 counted %d drops, want 1", rule5)
	}
	_ = h2
}

func (e *env) portTx(t *testing.T, idx int) uint64 {
	t.Helper()
	st, err := e.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Ports {
		if p.Index == idx {
			return p.Stats.TxPackets
		}
	}
	t.Fatalf("no port %d", idx)
	return 0
}

func TestHotSwapKeepsStateUnderTraffic(t *testing.T) {
	e := setup(t)
	h1, h2 := e.hosts[0], e.hosts[1]
	h2.send(t, frame(broadcast, h2.mac, "hello"))
	settle()
	h1.take()
	e.hosts[2].take()
	stop := make(chan struct{})
	var sent int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := frame(h2.mac, h1.mac, fmt.Sprintf("s%d", i))
			if n, _ := h1.port.SendBatch(0, [][]byte{f}, nil); n == 1 {
				sent++
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 3; i++ {
		out := e.cli(t, "prog", "load", "../../examples/learn.o")
		if !strings.Contains(out, "kept the contents of maps: fdb") {
			t.Errorf("reload %d: %s", i, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	settle()
	got := h2.take()
	g3 := e.hosts[2].take()
	if len(g3) != 0 {
		t.Errorf("h3 saw %d frames: the learned table was lost in a swap", len(g3))
	}
	if len(got) < sent*99/100 {
		t.Errorf("h2 received %d of %d frames across program swaps", len(got), sent)
	}
	t.Logf("%d sent, %d received across 3 swaps", sent, len(got))
}

func TestPortDeletedUnderTraffic(t *testing.T) {
	e := setup(t)
	h1, h2 := e.hosts[0], e.hosts[1]
	h1.send(t, frame(broadcast, h1.mac, "learn1"))
	h2.send(t, frame(broadcast, h2.mac, "learn2"))
	settle()
	h1.take()
	h2.take()
	// Delete h3's link (both ends of the veth go) while h1 talks to h2 and floods.
	if err := netenv.DelLink(e.topo.Hosts[2], "eth0"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ps control.PortShowResult
		if err := json.Unmarshal([]byte(e.cli(t, "-j", "port", "show")), &ps); err != nil {
			t.Fatal(err)
		}
		if ps.Ports[2].Gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port 2 not reported gone: %+v", ps.Ports[2])
		}
		h1.send(t, frame(broadcast, h1.mac, "poke"))
		time.Sleep(20 * time.Millisecond)
	}
	h2.take()
	h1.send(t, frame(h2.mac, h1.mac, "after"), frame(broadcast, h1.mac, "bcast-after"))
	settle()
	if g := tags(h2.take()); len(g) != 2 {
		t.Fatalf("h2 got %v after port 2 disappeared, want the unicast and the broadcast", g)
	}
	if out := e.cli(t, "port", "show"); !strings.Contains(out, "gone") {
		t.Errorf("port show does not report the gone port:\n%s", out)
	}
	// The interface comes back: attaching it again replaces the dead port.
	if err := netenv.Veth(e.topo.Hosts[2], "eth0", e.topo.Switch, e.topo.Ports[2], 0); err != nil {
		t.Fatal(err)
	}
	e.cli(t, "port", "attach", e.topo.Ports[2])
	var ps control.PortShowResult
	if err := json.Unmarshal([]byte(e.cli(t, "-j", "port", "show")), &ps); err != nil {
		t.Fatal(err)
	}
	if p := ps.Ports[len(ps.Ports)-1]; p.Name != e.topo.Ports[2] || p.Gone || !p.Up {
		t.Errorf("re-attached port: %+v", p)
	}
	e.cli(t, "port", "detach", e.topo.Ports[2])
}

func TestCapture(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	c := &control.Client{Path: e.socket}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := c.Stream(ctx, control.MethodCapture, control.CaptureParams{Port: e.topo.Ports[1]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { buf.ReadFrom(rc); close(done) }()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 5; i++ {
		h1.send(t, frame(broadcast, h1.mac, fmt.Sprintf("cap%d", i)))
	}
	settle()
	rc.Close()
	<-done
	frames := readPcap(t, buf.Bytes())
	n := 0
	for _, f := range frames {
		if strings.HasPrefix(string(f[14:]), "cap") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("capture of port 1 holds %d of the 5 frames sent to it (%d frames in all)", n, len(frames))
	}

	// The same through the CLI, into a file, ended as Ctrl-C would.
	file := filepath.Join(t.TempDir(), "cap.pcap")
	cctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var errOut bytes.Buffer
	go func() {
		exited <- cli.Main(cctx, []string{"--socket", e.socket, "capture", e.topo.Ports[1], "-w", file}, io.Discard, &errOut)
	}()
	time.Sleep(200 * time.Millisecond)
	h1.send(t, frame(broadcast, h1.mac, "clicap"))
	settle()
	stop()
	if code := <-exited; code != 0 {
		t.Fatalf("vswitch capture: exit %d: %s", code, errOut.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, f := range readPcap(t, b) {
		if strings.HasPrefix(string(f[14:]), "clicap") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("vswitch capture -w: %d of the frame sent (stderr %q)", n, errOut.String())
	}
}

func TestCLIErrors(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"port", "attach", "nosuch0"}, "not found"},
		{[]string{"port", "attach", e.topo.Ports[0]}, "already attached"},
		{[]string{"port", "detach", "nosuch0"}, "no port nosuch0"},
		{[]string{"map", "lookup", "fdb", "key", "hex", "00", "11"}, "key has 2 bytes"},
		{[]string{"map", "lookup", "nosuch", "key", "1"}, "no map"},
		{[]string{"map", "lookup", "fdb", "key", "hex", "zz"}, "not hex"},
		{[]string{"map", "update", "fdb", "key", "hex", "001122334455", "value", "hex", "01"}, "value has 1 bytes"},
		{[]string{"prog", "load", "../../README.md"}, "prog load README.md"},
		{[]string{"prog", "load", "/nonexistent.o"}, "no such file"},
		{[]string{"prog", "dump", "sideways"}, "want xlated or jited"},
		{[]string{"frobnicate"}, "unknown object"},
	} {
		_, errOut, code := e.run(c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("vswitch %s: exit %d, stderr %q; want an error containing %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
	// The switch is still there and forwarding after all that.
	h1, h2 := e.hosts[0], e.hosts[1]
	h1.send(t, frame(broadcast, h1.mac, "still"))
	settle()
	if len(h2.take()) != 1 {
		t.Error("the switch stopped forwarding after bad requests")
	}
	// A dead socket gives the hint to start a daemon.
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "port", "show"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "start one with `vswitch daemon`") {
		t.Errorf("no daemon: exit %d, %q", code, errOut.String())
	}
}

func TestCLICommands(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	h1.send(t, frame(broadcast, h1.mac, "x"))
	settle()
	for _, args := range [][]string{
		{"port", "show"}, {"port", "show", "-s"}, {"prog", "show"}, {"prog", "dump", "xlated"},
		{"prog", "dump", "jited"}, {"prog", "log"}, {"map", "show"}, {"map", "dump", "fdb"}, {"fdb", "show"}, {"stats"}, {"version"},
	} {
		human := e.cli(t, args...)
		if strings.TrimSpace(human) == "" && args[1] != "log" {
			t.Errorf("vswitch %s printed nothing", strings.Join(args, " "))
		}
		js := e.cli(t, append([]string{"-j"}, args...)...)
		var v any
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			t.Errorf("vswitch -j %s: not JSON: %v\n%s", strings.Join(args, " "), err, js)
		}
	}
	if out := e.cli(t, "prog", "dump", "jited"); !strings.Contains(out, "ldxdw") || !strings.Contains(out, "mov") {
		t.Errorf("prog dump jited does not interleave eBPF and x86:\n%.400s", out)
	}
	key := "hex 02 00 00 00 00 42"
	e.cli(t, append(append([]string{"map", "update", "fdb", "key"}, strings.Fields(key)...), "value", "hex", "02000000000000000000000000000000", "noexist")...)
	if out := e.cli(t, append([]string{"map", "lookup", "fdb", "key"}, strings.Fields(key)...)...); !strings.Contains(out, `"port":2`) {
		t.Errorf("lookup after update: %s", out)
	}
	if _, errOut, code := e.run(append(append([]string{"map", "update", "fdb", "key"}, strings.Fields(key)...), "value", "hex", "02000000000000000000000000000000", "noexist")...); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("noexist on an existing key: %d %s", code, errOut)
	}
	e.cli(t, append([]string{"map", "delete", "fdb", "key"}, strings.Fields(key)...)...)
	if _, errOut, code := e.run(append([]string{"map", "lookup", "fdb", "key"}, strings.Fields(key)...)...); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("lookup after delete: %d %s", code, errOut)
	}
	// Typed keys and values from the object's BTF.
	e.cli(t, "map", "update", "fdb", "key", "json", `{"addr":"02:00:00:00:00:43"}`, "value", "json", `{"port":2}`)
	if out := e.cli(t, "map", "lookup", "fdb", "key", "hex", "020000000043"); !strings.Contains(out, `{"addr":"02:00:00:00:00:43"}`) || !strings.Contains(out, `"port":2`) {
		t.Errorf("typed lookup: %s", out)
	}
	if _, errOut, code := e.run("map", "update", "fdb", "key", "json", `{"adr":"x"}`, "value", "json", `{}`); code == 0 || !strings.Contains(errOut, `no field "adr"`) {
		t.Errorf("typed key with a wrong field: %d %s", code, errOut)
	}
	e.cli(t, "port", "detach", e.topo.Ports[2])
	e.cli(t, "port", "detach", e.topo.Ports[2], "--if-exists")
	e.cli(t, "attach", e.topo.Ports[2])
	e.cli(t, "port", "attach", e.topo.Ports[2], "--may-exist")
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
