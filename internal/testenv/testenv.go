// Package testenv is the one way tests leave out what this machine cannot
// run: no root, no network namespaces, no kernel eBPF. By default such a
// test is skipped with the reason. Where the environment must have it
// (CI runs as root: .ci/run sets VSWITCH_REQUIRE_PRIVILEGED=1), the same
// call fails the test instead, so that a broken environment can never
// hide whole suites behind skips.
package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/govswitch/vswitch/internal/netenv"
)

// RequireEnv names the environment variable that turns skips for a
// missing privilege or facility into failures.
const RequireEnv = "VSWITCH_REQUIRE_PRIVILEGED"

// Required reports whether RequireEnv is set (to anything but "" or "0").
func Required() bool {
	v := os.Getenv(RequireEnv)
	return v != "" && v != "0"
}

// Skip skips t with the reason, or fails it when Required.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1: this environment must be able to run it)", msg, RequireEnv)
	}
	t.Skip(msg)
}

var (
	netnsOnce sync.Once
	netnsErr  error
)

// Netns skips (or fails) t unless it runs as root and can create network
// namespaces and veth pairs. The check runs once per process.
func Netns(t testing.TB) {
	t.Helper()
	netnsOnce.Do(func() { netnsErr = netenv.Check() })
	if netnsErr != nil {
		Skip(t, "%v: run the tests as root", netnsErr)
	}
}

// Root skips (or fails) t unless it runs as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (%s): run the tests as root", why)
	}
}

// Need skips (or fails) t when err, the answer of an availability check,
// says what runs the test is not there; what names it. For the kernel's
// eBPF: testenv.Need(t, "kernel eBPF", kernel.Available()).
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		Skip(t, "%s not usable here: %v", what, err)
	}
}

// SocketDir returns a directory for Unix sockets, removed when t ends.
// It is t.TempDir() when that leaves room for a socket's name within the
// 107 bytes a socket path can have, else a fresh directory under /tmp (a
// long $TMPDIR, as in scripts/lone-clone-test.sh, must not fail tests).
func SocketDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) <= 80 {
		return dir
	}
	dir, err := os.MkdirTemp("/tmp", "vs")
	if err != nil {
		t.Fatalf("a directory for sockets: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StateDirEnv is daemon.StateDirEnv (not imported: the daemon's tests use
// this package).
const StateDirEnv = "VSWITCH_STATE_DIR"

// IsolateState runs m with $VSWITCH_STATE_DIR pointing at a temporary
// directory, so that a daemon a test starts without a state directory of
// its own keeps its state there, never in /var/lib/vswitch. Call it from
// TestMain: os.Exit(testenv.IsolateState(m)).
func IsolateState(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vswitch-test-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv(StateDirEnv, dir)
	return m.Run()
}
