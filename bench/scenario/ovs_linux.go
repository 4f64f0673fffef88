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
	"golang.org/x/sys/unix"
)

// ovs is an Open vSwitch userspace datapath (ovsdb-server and
// ovs-vswitchd, datapath_type=netdev) of this process, with its database,
// sockets and logs in a temporary directory. No kernel module is used.
type ovs struct {
	dir      string
	sock     string // ovsdb-server's socket
	env      []string
	db, vswd *exec.Cmd
	logf     func(string, ...any)
	// fk forks both daemons from a thread in the switch namespace that
	// lives as long as this ovs (see forker).
	fk *forker
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
	o, err := startOVSDaemons(ctx, ns, logf)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			o.stop()
		}
	}()
	br := []string{"add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
		"--", "add-port", "br0", devSwIn, "--", "set", "interface", devSwIn, "ofport_request=1",
		"--", "add-port", "br0", devSwOut, "--", "set", "interface", devSwOut, "ofport_request=2"}
	if portType != "" {
		for _, dev := range []string{devSwIn, devSwOut} {
			br = append(br, "--", "set", "interface", dev, "type="+portType, "options:xdp-mode="+xdpMode)
		}
	}
	if err := o.vsctl(ctx, br...); err != nil {
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
		if err := o.portError(ctx, dev); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// portError returns a skip error when OVS reports an error on the
// interface dev.
func (o *ovs) portError(ctx context.Context, dev string) error {
	out, _ := o.output(ctx, "ovs-vsctl", "--db=unix:"+o.sock, "get", "interface", dev, "error")
	if e := strings.TrimSpace(out); e != "" && e != "[]" {
		return skipf("skipped: OVS port %s: %s", dev, strings.Trim(e, `"`))
	}
	return nil
}

// startOVSDaemons runs ovsdb-server and ovs-vswitchd (userspace datapath
// only, no bridge yet) with the daemon in ns, pinned to switchCPU in its
// own session at nice -20.
func startOVSDaemons(ctx context.Context, ns *netenv.NS, logf func(string, ...any)) (_ *ovs, err error) {
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
	dir, err := tempDir("ovs")
	if err != nil {
		return nil, err
	}
	o := &ovs{dir: dir, logf: logf, sock: filepath.Join(dir, "db.sock")}
	// The daemon lives in the switch namespace: a child inherits the
	// namespace of the thread that forks it.
	if o.fk, err = newForker(ns); err != nil {
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
	if err := o.run(ctx, "ovsdb-tool", "create", db, schema); err != nil {
		return nil, err
	}
	o.db = o.command("ovsdb-server", db, "--remote=punix:"+o.sock, "--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--no-chdir")
	if err := o.start(o.db, "ovsdb-server"); err != nil {
		return nil, err
	}
	if err := waitFile(o.sock, 5*time.Second); err != nil {
		return nil, fmt.Errorf("ovsdb-server: %w", err)
	}
	if err := o.vsctl(ctx, "--no-wait", "init"); err != nil {
		return nil, err
	}
	if runtime.NumCPU() > switchCPU {
		if err := o.vsctl(ctx, "--no-wait", "set", "Open_vSwitch", ".", fmt.Sprintf("other_config:pmd-cpu-mask=%#x", 1<<switchCPU)); err != nil {
			return nil, err
		}
	}
	args := []string{"unix:" + o.sock, "--pidfile=" + filepath.Join(dir, "ovs-vswitchd.pid"),
		"--log-file=" + filepath.Join(dir, "ovs-vswitchd.log"), "--no-chdir"}
	if tp, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() > switchCPU {
		o.vswd = o.command(tp, append([]string{"-c", strconv.Itoa(switchCPU), "ovs-vswitchd"}, args...)...)
	} else {
		o.vswd = o.command("ovs-vswitchd", args...)
	}
	if err := o.start(o.vswd, "ovs-vswitchd"); err != nil {
		return nil, err
	}
	raise(o.vswd.Process.Pid)
	return o, nil
}

// vsctl runs ovs-vsctl on this OVS's database.
func (o *ovs) vsctl(ctx context.Context, args ...string) error {
	return o.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + o.sock, "--timeout=30"}, args...)...)
}

func (o *ovs) command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), o.env...)
	c.Dir = o.dir
	return c
}

// start starts a daemon in its own session (so that its autogroup can be
// raised) from the forker's thread, with its output in the temporary
// directory.
func (o *ovs) start(c *exec.Cmd, name string) error {
	f, err := os.Create(filepath.Join(o.dir, name+".out"))
	if err != nil {
		return err
	}
	defer f.Close()
	c.Stdout, c.Stderr = f, f
	if err = o.fk.start(c); err != nil {
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
	o.fk.close()
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
