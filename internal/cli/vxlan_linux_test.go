package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/govswitch/vswitch/internal/testenv"
)

// TestVXLANCommands drives a daemon through the command line: a VXLAN
// port, static remote stations in fdb show (text and JSON), fdb del.
func TestVXLANCommands(t *testing.T) {
	ns, peer := nettest.NewNS(t), nettest.NewNS(t)
	nettest.Veth(t, ns, "u0", peer, "u1", 0)
	nettest.AddAddr(t, ns, "u0", "10.99.0.1/24")
	d := daemon.New(daemon.Config{Netns: &netenv.NS{H: ns.H}})
	t.Cleanup(func() { d.Close() })
	if _, err := d.LoadDefault("interp"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testenv.SocketDir(t), "s")
	srv, err := control.Listen(control.ServerConfig{Path: sock}, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	vs := func(args ...string) (string, string, int) { return run(append([]string{"--socket", sock}, args...)...) }
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := vs(args...)
		if code != 0 {
			t.Fatalf("vswitch %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	out := must("port", "add", "vx0", "--type", "vxlan", "--vni", "42", "--remote", "10.99.0.2,10.99.0.3", "--ttl", "32")
	if !strings.Contains(out, "port vx0 attached") || !strings.Contains(must("port", "show"), "vxlan") {
		t.Errorf("port add: %q", out)
	}
	must("fdb", "add", "02:00:00:00:00:07", "port", "vx0", "remote", "10.99.0.3")
	out = must("fdb", "show")
	if !strings.Contains(out, "02:00:00:00:00:07") || !strings.Contains(out, "static") || !strings.Contains(out, "10.99.0.3") {
		t.Errorf("fdb show:\n%s", out)
	}
	var r control.FDBResult
	if err := json.Unmarshal([]byte(must("-j", "fdb", "show")), &r); err != nil || len(r.Entries) != 1 ||
		r.Entries[0].Remote != "10.99.0.3" || !r.Entries[0].Static || r.Entries[0].PortName != "vx0" {
		t.Errorf("fdb show -j: %+v %v", r, err)
	}
	must("fdb", "del", "02:00:00:00:00:07", "port", "vx0")
	if out := must("fdb", "show"); strings.Contains(out, "02:00:00:00:00:07") {
		t.Errorf("deleted entry listed:\n%s", out)
	}
	for _, args := range [][]string{
		{"port", "add", "vx1", "--type", "vxlan", "--remote", "10.99.0.2"},             // no VNI
		{"port", "add", "vx1", "--type", "vxlan", "--vni", "x", "--remote", "1.2.3.4"}, // bad VNI
		{"port", "attach", "eth9", "--vni", "3"},                                       // not vxlan
		{"fdb", "add", "02:00:00:00:00:07", "port", "vx0"},                             // no remote
		{"fdb", "add", "02:00:00:00:00:07", "port", "vx0", "remote", "10.99.0.x"},      // bad remote
		{"fdb", "del", "02:00:00:00:00:07"},                                            // not there
		{"fdb", "del"},
	} {
		if _, errOut, code := vs(args...); code == 0 || errOut == "" {
			t.Errorf("vswitch %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
}
