package pktgen

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/govswitch/vswitch/internal/testenv"
)

// Named network namespaces ("ip netns add") for tests that run other
// programs inside them (trafgen, this test binary as `vswitch pktgen`).
// Names carry the pid and a counter; t.Cleanup deletes them, which also
// deletes the veths inside.

var nsCounter atomic.Uint32

func requireRoot(t testing.TB) {
	t.Helper()
	testenv.Root(t, "creates network namespaces and veth pairs")
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skip(t, "needs the ip command (iproute2)")
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// namedNS creates a named namespace with lo up, IPv6 off (no router
// solicitations or DAD on the test links) and IPv4 forwarding off (no
// ICMP errors for frames to addresses not its own).
func namedNS(t testing.TB, role string) string {
	t.Helper()
	name := fmt.Sprintf("pktgen-%d-%d-%s", os.Getpid(), nsCounter.Add(1), role)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	for _, kv := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
		"net.ipv4.ip_forward=0"} {
		exec.Command("ip", "netns", "exec", name, "sysctl", "-qw", kv).Run()
	}
	return name
}

// namedVeth creates veth a (in nsA, MAC macA) <-> b (in nsB, MAC macB),
// both up.
func namedVeth(t testing.TB, nsA, a, macA, nsB, b, macB string) {
	t.Helper()
	run(t, "ip", "link", "add", a, "netns", nsA, "address", macA, "type", "veth",
		"peer", "name", b, "netns", nsB, "address", macB)
	run(t, "ip", "-n", nsA, "link", "set", a, "up")
	run(t, "ip", "-n", nsB, "link", "set", b, "up")
}

// linkStats reads the counters of link name in named namespace ns.
func linkStats(t testing.TB, ns, name string) *netlink.LinkStatistics {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", ns, err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, ns, err)
	}
	return l.Attrs().Statistics
}

// helperEnv makes this test binary run Main with the arguments in it (a
// JSON list) instead of the tests: a stand-in for `vswitch pktgen` that
// other packages' commands need not exist for.
const helperEnv = "PKTGEN_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if a := os.Getenv(helperEnv); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// pktgenCmd returns the command that runs `vswitch pktgen args...` (this
// binary in helper mode), prefixed by wrap (e.g. taskset).
func pktgenCmd(t testing.TB, wrap []string, args ...string) *exec.Cmd {
	t.Helper()
	a, _ := json.Marshal(args)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, wrap...), self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(a))
	return cmd
}

// lastJSON decodes the last line of out that starts with '{' into v.
func lastJSON(t testing.TB, out string, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
				t.Fatalf("decoding %q: %v", lines[i], err)
			}
			return
		}
	}
	t.Fatalf("no JSON line in output:\n%s", out)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
