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
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/cli"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/internal/testenv"
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
	// barrierVLAN, if set, tags barrier markers with this VLAN id (for
	// programs that keep VLANs apart).
	barrierVLAN uint16
}

// host is a test station: an AF_PACKET socket on a host's eth0.
type host struct {
	port  bpfport.Port
	mac   net.HardwareAddr
	mu    sync.Mutex
	got   [][]byte
	marks map[string]bool // barrier markers seen (not in got)
	done  chan struct{}
}

func setup(t *testing.T) *env {
	t.Helper()
	requireNetns(t)
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
	e.socket = filepath.Join(testenv.SocketDir(t), "vswitch.sock")
	if e.srv, err = control.Listen(control.ServerConfig{Path: e.socket}, e.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close() })
	for _, p := range topo.Ports {
		e.cli(t, "port", "attach", p)
	}
	for i, ns := range topo.Hosts {
		h := &host{mac: topo.MACs[i], marks: map[string]bool{}, done: make(chan struct{})}
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
			if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == 0x8100 {
				// A VLAN tag added on the way: the tag of the test is behind it.
				f = append(append([]byte(nil), f[:12]...), f[16:]...)
			}
			if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == etherTest {
				if tag := tags([][]byte{f})[0]; strings.HasPrefix(tag, barrierTag) {
					h.marks[tag] = true
					continue
				}
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

// wait waits until h holds at least n test frames, then returns (and
// forgets) what it holds.
func (h *host) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d frames at %s", n, h.mac), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.got) >= n
	})
	return h.take()
}

const barrierTag = "barrier"

var barriers atomic.Uint32

// barrier sends a marker frame from `from` to dst and waits until every
// host of `to` has it. The switch handles a port's frames in order, and a
// host's socket delivers in order, so every frame `from` sent before, to
// any of `to`, has then arrived: what the hosts do not hold did not come.
// Markers are kept apart from the hosts' frames.
func (e *env) barrier(t *testing.T, from *host, dst net.HardwareAddr, to ...*host) {
	t.Helper()
	tag := fmt.Sprintf("%s%d", barrierTag, barriers.Add(1))
	f := frame(dst, from.mac, tag)
	if e.barrierVLAN != 0 {
		f = append(append(append([]byte(nil), f[:12]...), 0x81, 0, byte(e.barrierVLAN>>8), byte(e.barrierVLAN)), f[12:]...)
	}
	from.send(t, f)
	for _, h := range to {
		waitUntil(t, "barrier "+tag+" at "+h.mac.String(), func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.marks[tag]
		})
	}
}

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
	h2.wait(t, 1)
	h3.wait(t, 1)
	e.barrier(t, h1, broadcast, h2, h3)
	if g1, g2, g3 := h1.take(), h2.take(), h3.take(); len(g1) != 0 || len(g2) != 0 || len(g3) != 0 {
		t.Fatalf("broadcast: more than one copy each, or one back to the sender: h1 %v, h2 %v, h3 %v", tags(g1), tags(g2), tags(g3))
	}
	// Unknown unicast floods.
	h2.send(t, frame(net.HardwareAddr{2, 0, 0, 0, 0, 0x99}, h2.mac, "unknown"))
	h1.wait(t, 1)
	h3.wait(t, 1)
	e.barrier(t, h2, broadcast, h1, h3)
	if g1, g2, g3 := h1.take(), h2.take(), h3.take(); len(g1) != 0 || len(g2) != 0 || len(g3) != 0 {
		t.Fatalf("unknown unicast: extra copies: h1 %v, h2 %v, h3 %v", tags(g1), tags(g2), tags(g3))
	}
	// The reply to h1 is unicast to h1 only; then h1 -> h2 is unicast to h2 only.
	h2.send(t, frame(h1.mac, h2.mac, "reply"))
	g1 := h1.wait(t, 1)
	h1.send(t, frame(h2.mac, h1.mac, "unicast"))
	g2 := h2.wait(t, 1)
	e.barrier(t, h2, broadcast, h1, h3)
	e.barrier(t, h1, broadcast, h2, h3)
	g1, g2 = append(g1, h1.take()...), append(g2, h2.take()...)
	g3 := h3.take()
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
	// Barrier markers travel tagged in VLAN 30, which has every port.
	e.cli(t, "map", "update", "vlan_members", "key", "30", "0", "0", "0", "value", "hex", "07"+strings.Repeat("00", 31))
	e.barrierVLAN = 30
	h1.send(t, frame(broadcast, h1.mac, "vlan10"))
	g2 := h2.wait(t, 1)
	e.barrier(t, h1, broadcast, h2, h3)
	if g2, g3 := append(g2, h2.take()...), h3.take(); len(g2) != 1 || len(g3) != 0 {
		t.Fatalf("VLAN 10 broadcast: h2 %v, h3 %v (h3 is in VLAN 20)", tags(g2), tags(g3))
	}
	h3.send(t, frame(broadcast, h3.mac, "vlan20"))
	e.barrier(t, h3, broadcast, h1, h2)
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
	e.barrier(t, h1, broadcast, h2)
	// The barrier is counted too.
	if got := e.portTx(t, 1) - before - 1; got != 1 {
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
	h1.wait(t, 1)
	e.hosts[2].wait(t, 1)
	stop := make(chan struct{})
	var sent atomic.Int64
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
				sent.Add(1)
			}
			time.Sleep(100 * time.Microsecond) // the pace of the traffic
		}
	}()
	// Each swap happens with traffic flowing: frames arrive between swaps.
	received := func() int {
		h2.mu.Lock()
		defer h2.mu.Unlock()
		return len(h2.got)
	}
	for i := 0; i < 3; i++ {
		n := received()
		waitUntil(t, "traffic before swap "+fmt.Sprint(i), func() bool { return received() > n+20 })
		out := e.cli(t, "prog", "load", "../../examples/learn.o")
		if !strings.Contains(out, "kept the contents of maps: fdb") {
			t.Errorf("reload %d: %s", i, out)
		}
	}
	close(stop)
	wg.Wait()
	e.barrier(t, h1, h2.mac, h2)
	got := h2.take()
	g3 := e.hosts[2].take()
	if len(g3) != 0 {
		t.Errorf("h3 saw %d frames: the learned table was lost in a swap", len(g3))
	}
	if n := int(sent.Load()); len(got) < n*99/100 {
		t.Errorf("h2 received %d of %d frames across program swaps", len(got), n)
	}
	t.Logf("%d sent, %d received across 3 swaps", sent.Load(), len(got))
}

func TestPortDeletedUnderTraffic(t *testing.T) {
	e := setup(t)
	h1, h2 := e.hosts[0], e.hosts[1]
	h1.send(t, frame(broadcast, h1.mac, "learn1"))
	h2.send(t, frame(broadcast, h2.mac, "learn2"))
	h1.wait(t, 1)
	h2.wait(t, 1)
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
	e.barrier(t, h1, broadcast, h2)
	h2.take()
	h1.send(t, frame(h2.mac, h1.mac, "after"), frame(broadcast, h1.mac, "bcast-after"))
	g := h2.wait(t, 2)
	e.barrier(t, h1, broadcast, h2)
	if g = append(g, h2.take()...); len(g) != 2 {
		t.Fatalf("h2 got %v after port 2 disappeared, want the unicast and the broadcast", tags(g))
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

// pcapTags returns the test tags of the frames of a pcap stream read so
// far (a last record still being written is left out).
func pcapTags(b []byte) []string {
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	var out []string
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		if len(data) >= 30 {
			out = append(out, strings.TrimRight(string(data[14:30]), "\x00"))
		}
	}
}

func countPrefix(tags []string, prefix string) int {
	n := 0
	for _, s := range tags {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// captureActive sends probe frames from h (broadcast) until the capture
// (read by tagsNow) holds one.
func (e *env) captureActive(t *testing.T, h *host, tagsNow func() []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countPrefix(tagsNow(), "probe") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the capture recorded no probe frame in 10s")
		}
		h.send(t, frame(broadcast, h.mac, "probe"))
		time.Sleep(20 * time.Millisecond) // the probes' pace
	}
}

// captureBarrier sends a marker to the host of the captured port and
// waits until the capture holds it: the frames sent before it are in the
// capture.
func (e *env) captureBarrier(t *testing.T, h, captured *host, tagsNow func() []string) {
	t.Helper()
	e.barrier(t, h, broadcast, captured)
	tag := fmt.Sprintf("%s%d", barrierTag, barriers.Load())
	waitUntil(t, "the marker in the capture", func() bool { return countPrefix(tagsNow(), tag) == 1 })
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
	var buf lockedBuffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, rc); close(done) }()
	streamTags := func() []string { return pcapTags([]byte(buf.String())) }
	e.captureActive(t, h1, streamTags)
	for i := 0; i < 5; i++ {
		h1.send(t, frame(broadcast, h1.mac, fmt.Sprintf("cap%d", i)))
	}
	e.captureBarrier(t, h1, e.hosts[1], streamTags)
	rc.Close()
	<-done
	if n := countPrefix(streamTags(), "cap"); n != 5 {
		t.Errorf("capture of port 1 holds %d of the 5 frames sent to it (%v)", n, streamTags())
	}

	// The same through the CLI, into a file, ended as Ctrl-C would (of
	// port 2: the capture of port 1 may still be ending in the daemon).
	file := filepath.Join(testenv.SocketDir(t), "cap.pcap")
	cctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var errOut lockedBuffer
	go func() {
		exited <- cli.Main(cctx, []string{"--socket", e.socket, "capture", e.topo.Ports[2], "-w", file}, io.Discard, &errOut)
	}()
	fileTags := func() []string {
		b, _ := os.ReadFile(file)
		return pcapTags(b)
	}
	e.captureActive(t, h1, fileTags)
	h1.send(t, frame(broadcast, h1.mac, "clicap"))
	e.captureBarrier(t, h1, e.hosts[2], fileTags)
	stop()
	if code := <-exited; code != 0 {
		t.Fatalf("vswitch capture: exit %d: %s", code, errOut.String())
	}
	if n := countPrefix(fileTags(), "clicap"); n != 1 {
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
	e.barrier(t, h1, broadcast, h2)
	if len(h2.take()) != 1 {
		t.Error("the switch stopped forwarding after bad requests")
	}
	// A dead socket gives the hint to start a daemon.
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"--socket", filepath.Join(testenv.SocketDir(t), "none.sock"), "port", "show"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "start one with `vswitch daemon`") {
		t.Errorf("no daemon: exit %d, %q", code, errOut.String())
	}
}

func TestCLICommands(t *testing.T) {
	e := setup(t)
	h1 := e.hosts[0]
	h1.send(t, frame(broadcast, h1.mac, "x"))
	e.hosts[1].wait(t, 1)
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

// requireNetns skips the test without root or network namespaces (fails
// it where the environment must have them, see testenv).
func requireNetns(t *testing.T) {
	t.Helper()
	testenv.Netns(t)
}

func TestMain(m *testing.M) {
	os.Exit(testenv.IsolateState(m))
}
