package scenario

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/vishvananda/netlink"
)

// envDaemon makes this test binary, run again by the scale scenario with
// "daemon" as its first argument, a vswitch daemon (the real binary's
// `vswitch daemon`: internal/cli cannot be imported here, it imports this
// package). Its flags are the ones the scenario passes; it knows no
// state-directory flag, so the scenario's fallback runs too.
const envDaemon = "VSWITCH_SCENARIO_TEST_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(envDaemon) == "1" && len(os.Args) > 1 && os.Args[1] == "daemon" {
		os.Exit(testDaemon(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func testDaemon(args []string) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	var rc daemon.RunConfig
	fs.StringVar(&rc.Socket, "socket", "", "control socket")
	fs.StringVar(&rc.Netns, "netns", "", "namespace of the ports")
	fs.StringVar(&rc.Engine, "engine", "", "engine of the default program")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rc.Log = os.Stderr
	rc.NoState = true // a benchmark's switch: nothing kept
	if err := daemon.Run(ctx, rc); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

// daemonOptions points o's scale scenario at this test binary as the
// daemon.
func daemonOptions(t *testing.T, o *Options) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envDaemon, "1")
	o.DaemonCommand = []string{exe, "daemon"}
}

// leftovers is what a scenario could leave behind: network namespace
// handles of this process, child processes, links in this process's
// namespace named as the scenarios name theirs, and temporary directories
// of this process (other processes on a shared machine make and remove
// their own at any time).
type leftovers struct {
	netns    int
	children []string
	links    []string
	dirs     []string
}

func leftoversNow(t *testing.T) leftovers {
	t.Helper()
	var l leftovers
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "net:[") {
			l.netns++
		}
	}
	procs, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me { // field 4: ppid
			l.children = append(l.children, p.Name()+" "+s[:strings.LastIndexByte(s, ')')+1])
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range links {
		if n := k.Attrs().Name; scenarioLink.MatchString(n) {
			l.links = append(l.links, n)
		}
	}
	slices.Sort(l.links)
	l.dirs, _ = filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("%s*-%d-*", tempPrefix, os.Getpid())))
	return l
}

// scenarioLink matches the names of the links the scenarios make (in
// their own namespaces: none may appear in this one).
var scenarioLink = regexp.MustCompile(`^(s0|s1|g0|k0|eth0|br0|x0|x1|[if][0-9]+)$`)

// checkLeftovers fails t if anything was left behind since before.
func checkLeftovers(t *testing.T, before leftovers) {
	t.Helper()
	after := leftoversNow(t)
	if after.netns > before.netns {
		t.Errorf("%d namespace handles left open (%d before)", after.netns, before.netns)
	}
	if len(after.children) > 0 {
		t.Errorf("processes left running: %q", after.children)
	}
	if !slices.Equal(before.links, after.links) {
		t.Errorf("links in this namespace changed: %q -> %q", before.links, after.links)
	}
	if len(after.dirs) > len(before.dirs) {
		t.Errorf("directories left behind: %q", after.dirs)
	}
}
