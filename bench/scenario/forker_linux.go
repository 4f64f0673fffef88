package scenario

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/govswitch/vswitch/internal/netenv"
	"github.com/vishvananda/netns"
)

// forker starts processes from one OS thread, locked (in a network
// namespace when given one) for the forker's whole life. A child inherits
// the namespace of the thread that forks it, and its parent-death signal
// is tied to that thread: the thread must outlive the child (a pooled
// thread could exit with some other locked goroutine and take the child
// with it), and it dies with this process, so children started with a
// parent-death signal never outlive the benchmark.
type forker struct {
	fns chan func()
}

// newForker starts the forker's thread, in ns when ns is not nil.
func newForker(ns *netenv.NS) (*forker, error) {
	f := &forker{fns: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if ns != nil {
			if err := netns.Set(ns.H); err != nil {
				ready <- fmt.Errorf("entering a namespace: %w", err)
				return
			}
		}
		ready <- nil
		for fn := range f.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return f, nil
}

// start starts c from the forker's thread in its own session (so that
// its autogroup can be raised and a terminal's Ctrl-C reaches only this
// process, which stops it), with SIGTERM as its parent-death signal.
func (f *forker) start(c *exec.Cmd) error {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Setsid = true
	c.SysProcAttr.Pdeathsig = syscall.SIGTERM
	errc := make(chan error, 1)
	f.fns <- func() { errc <- c.Start() }
	return <-errc
}

// close ends the forker's thread: children still running get their
// parent-death signal.
func (f *forker) close() { close(f.fns) }

// tempDir makes a temporary directory for kind ("ovs", "daemon") named
// after this process (vswitch-bench-KIND-PID-*), so that what a killed
// run leaves behind says whose it was, and a test can tell its own.
func tempDir(kind string) (string, error) {
	return os.MkdirTemp("", fmt.Sprintf("%s%s-%d-", tempPrefix, kind, os.Getpid()))
}

// tempPrefix begins the name of every temporary directory of a scenario.
const tempPrefix = "vswitch-bench-"
