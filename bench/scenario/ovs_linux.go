package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ovs is an Open vSwitch userspace datapath (ovsdb-server and
// ovs-vswitchd, datapath_type=netdev) of this process, with its database,
// sockets and logs in a temporary directory. No kernel module is used.
type ovs struct {
	dir      string
	env      []string
	db, vswd *exec.Cmd
	logf     func(string, ...any)
	// forks runs functions on the owner thread: a thread locked in the
	// switch namespace for the life of this ovs, which forks both
	// daemons. Their parent-death signal is tied to the forking thread,
	// so it must outlive them (a pooled thread could exit with some other
	// locked goroutine and take the daemons with it), and it dies with
	// this process, so they never outlive the benchmark.
	forks chan func()
}

// ovsSchemas are where distributions put the database schema.
var ovsSchemas = []string{"/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"}

// startOVS runs OVS with br0 of s0 (OpenFlow port 1) and s1 (port 2) in
// the switch namespace, flows 1 -> 2 and 2 -> 1. portType "" gives
// AF_PACKET ports ("system", polled by the main thread); "afxdp" gives
// AF_XDP ports in xdpMode (generic or native) served by one PMD thread on
// switchCPU. ovs-vswitchd runs pinned to switchCPU in its own session at
// nice -20, as the generator does.
func startOVS(ctx context.Context, ns *netenv.NS, portType, xdpMode string, logf func(string, ...any)) (_ *ovs, err error) {
	for _, c := range []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, skipf("skipped: %s not installed (apt-get install -y openvswitch-switch)", c)
		}
	}
	schema := ""
	for _, s := range ovsSchemas {
		if _, err := os.Stat(s); err == nil {
			schema = s
		}
	}
	if schema == "" {
		return nil, skipf("skipped: OVS database schema not found in %s", strings.Join(ovsSchemas, ", "))
	}
	dir, err := os.MkdirTemp("", "vswitch-bench-ovs-")
	if err != nil {
		return nil, err
	}
	o := &ovs{dir: dir, logf: logf, forks: make(chan func())}
	ready := make(chan error, 1)
	go o.owner(ns, ready)
	if err := <-ready; err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for _, k := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"} {
		o.env = append(o.env, k+"="+dir)
	}
	defer func() {
		if err != nil {
			o.stop()
		}
	}()
	db := filepath.Join(dir, "conf.db")
	sock := filepath.Join(dir, "db.sock")
	if err := o.run(ctx, "ovsdb-tool", "create", db, schema); err != nil {
		return nil, err
	}
	o.db = o.command("ovsdb-server", db, "--remote=punix:"+sock, "--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--no-chdir")
	if err := o.start(o.db, "ovsdb-server"); err != nil {
		return nil, err
	}
	if err := waitFile(sock, 5*time.Second); err != nil {
		return nil, fmt.Errorf("ovsdb-server: %w", err)
	}
	vsctl := func(args ...string) error {
		return o.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + sock, "--timeout=30"}, args...)...)
	}
	if err := vsctl("--no-wait", "init"); err != nil {
		return nil, err
	}
	if runtime.NumCPU() > switchCPU {
		if err := vsctl("--no-wait", "set", "Open_vSwitch", ".", fmt.Sprintf("other_config:pmd-cpu-mask=%#x", 1<<switchCPU)); err != nil {
			return nil, err
		}
	}
	args := []string{"unix:" + sock, "--pidfile=" + filepath.Join(dir, "ovs-vswitchd.pid"),
		"--log-file=" + filepath.Join(dir, "ovs-vswitchd.log"), "--no-chdir"}
	if tp, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() > switchCPU {
		o.vswd = o.command(tp, append([]string{"-c", strconv.Itoa(switchCPU), "ovs-vswitchd"}, args...)...)
	} else {
		o.vswd = o.command("ovs-vswitchd", args...)
	}
	// The daemon lives in the switch namespace: a child inherits the
	// namespace of the thread that forks it.
	if err := o.start(o.vswd, "ovs-vswitchd"); err != nil {
		return nil, err
	}
	raise(o.vswd.Process.Pid)
	br := []string{"add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
		"--", "add-port", "br0", devSwIn, "--", "set", "interface", devSwIn, "ofport_request=1",
		"--", "add-port", "br0", devSwOut, "--", "set", "interface", devSwOut, "ofport_request=2"}
	if portType != "" {
		for _, dev := range []string{devSwIn, devSwOut} {
			br = append(br, "--", "set", "interface", dev, "type="+portType, "options:xdp-mode="+xdpMode)
		}
	}
	if err := vsctl(br...); err != nil {
		return nil, err
	}
	if err := o.run(ctx, "ovs-ofctl", "del-flows", "br0"); err != nil {
		return nil, err
	}
	for _, f := range []string{"in_port=1,actions=output:2", "in_port=2,actions=output:1"} {
		if err := o.run(ctx, "ovs-ofctl", "add-flow", "br0", f); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	for _, dev := range []string{devSwIn, devSwOut} {
		out, _ := o.output(ctx, "ovs-vsctl", "--db=unix:"+sock, "get", "interface", dev, "error")
		if e := strings.TrimSpace(out); e != "" && e != "[]" {
			return nil, skipf("skipped: OVS port %s: %s", dev, strings.Trim(e, `"`))
		}
	}
	return o, nil
}

func (o *ovs) command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), o.env...)
	c.Dir = o.dir
	return c
}

// owner is the owner thread (see ovs.forks): it enters ns and runs what
// forks sends until forks is closed, then exits with its thread.
func (o *ovs) owner(ns *netenv.NS, ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
	if err := netns.Set(ns.H); err != nil {
		ready <- fmt.Errorf("entering the switch namespace: %w", err)
		return
	}
	ready <- nil
	for fn := range o.forks {
		fn()
	}
}

// start starts a daemon in its own session (so that its autogroup can be
// raised) from the owner thread, with its output in the temporary
// directory.
func (o *ovs) start(c *exec.Cmd, name string) error {
	f, err := os.Create(filepath.Join(o.dir, name+".out"))
	if err != nil {
		return err
	}
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	errc := make(chan error, 1)
	o.forks <- func() { errc <- c.Start() }
	if err = <-errc; err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// raise gives pid nice -20 and its autogroup -20.
func raise(pid int) {
	unix.Setpriority(unix.PRIO_PROCESS, pid, -20)
	os.WriteFile(fmt.Sprintf("/proc/%d/autogroup", pid), []byte("-20"), 0)
}

func (o *ovs) run(ctx context.Context, name string, args ...string) error {
	_, err := o.output(ctx, name, args...)
	return err
}

func (o *ovs) output(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = append(os.Environ(), o.env...)
	c.Dir = o.dir
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(lastLines(string(out), 3)))
	}
	return string(out), nil
}

// stop ends both daemons (asking ovs-vswitchd to remove its ports first)
// and removes the directory. Only the processes this ovs started are
// signalled.
func (o *ovs) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if o.vswd != nil && o.vswd.Process != nil {
		o.run(ctx, "ovs-appctl", "-t", "ovs-vswitchd", "exit", "--cleanup")
		stopProcess(o.vswd)
	}
	if o.db != nil && o.db.Process != nil {
		stopProcess(o.db)
	}
	close(o.forks)
	os.RemoveAll(o.dir)
}

// stopProcess sends SIGTERM to c's process, then SIGKILL after 5s, and
// reaps it.
func stopProcess(c *exec.Cmd) {
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	c.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}
