package e2e

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/internal/netenv"
	vswitch "github.com/govswitch/vswitch/switch"
)

// procStatus returns a field of /proc/self/status in its unit (kB for
// memory).
func procStatus(t *testing.T, field string) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestManyPorts attaches the most ports a switch takes (254 AF_PACKET
// ports on veth pairs) with default settings: idle ports hold no thread
// and no goroutine, two of them carry traffic between real hosts, and
// everything detaches.
func TestManyPorts(t *testing.T) {
	requireNetns(t)
	if testing.Short() {
		t.Skip("254 veth pairs: not in -short")
	}
	topo, err := demo.Build(2) // h1, h2 with addresses, their switch ends
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	idle, err := netenv.New() // where the idle ports' far ends sit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Close() })
	names := append([]string(nil), topo.Ports...)
	for len(names) < vswitch.MaxPorts {
		n := netenv.Name("vsi")
		if err := netenv.Veth(topo.Switch, n, idle, netenv.Name("vsj"), 0); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	d := daemon.New(daemon.Config{Netns: topo.Switch})
	t.Cleanup(func() { d.Close() })
	if _, err := d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	threads0, rss0, g0 := procStatus(t, "Threads"), procStatus(t, "VmRSS"), runtime.NumGoroutine()
	start := time.Now()
	for _, n := range names {
		if _, err := d.Attach(control.PortAttachParams{Name: n}); err != nil {
			t.Fatalf("attach %s (after %d ports): %v", n, len(d.Ports(false)), err)
		}
	}
	attach := time.Since(start)
	runtime.GC()
	threads1, rss1, g1 := procStatus(t, "Threads"), procStatus(t, "VmRSS"), runtime.NumGoroutine()
	t.Logf("%d ports attached in %v; threads %d -> %d, goroutines %d -> %d, RSS %d -> %d kB (%d kB per port)",
		len(names), attach, threads0, threads1, g0, g1, rss0, rss1, (rss1-rss0)/len(names))
	// Bounds that do not grow with the ports: a few for the runtime.
	if threads1-threads0 > 8 {
		t.Errorf("%d more threads with %d idle ports", threads1-threads0, len(names))
	}
	if g1-g0 > 8 {
		t.Errorf("%d more goroutines with %d idle ports", g1-g0, len(names))
	}
	if per := (rss1 - rss0) / len(names); per > 512 {
		t.Errorf("%d kB of RSS per idle port, want at most 512", per)
	}
	start = time.Now()
	ports := d.Ports(true)
	t.Logf("port show -s with %d ports: %v", len(ports), time.Since(start))
	if len(ports) != vswitch.MaxPorts {
		t.Fatalf("%d ports, want %d", len(ports), vswitch.MaxPorts)
	}
	rtt, err := demo.UDPEcho(t.Context(), topo.Hosts[0], topo.Hosts[1], topo.IPs[1], 7010)
	if err != nil {
		t.Fatalf("h1 -> h2 among %d ports: %v", len(names), err)
	}
	t.Logf("UDP echo h1 -> h2 among %d ports: %v", len(names), rtt)
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[1], topo.Hosts[0], topo.IPs[0], 7011); err != nil {
		t.Fatalf("h2 -> h1: %v", err)
	}
	start = time.Now()
	for _, n := range names {
		if err := d.Detach(control.PortDetachParams{Name: n}); err != nil {
			t.Fatalf("detach %s: %v", n, err)
		}
	}
	t.Logf("%d ports detached in %v", len(names), time.Since(start))
	if n := len(d.Ports(false)); n != 0 {
		t.Errorf("%d ports left", n)
	}
}
