package xdpprog

import (
	"os"
	"testing"
)

// TestProgram loads the redirect program: the kernel accepts it, it is
// named and carries this process's owner record, and a frame of a queue
// without a socket passes to the kernel's stack.
func TestProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading an XDP program needs root")
	}
	p, err := Load(4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != Name {
		t.Errorf("program name %q, want %q", info.Name, Name)
	}
	ret, _, err := p.prog.Test(make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	if ret != 2 {
		t.Errorf("a frame of a queue without a socket: action %d, want XDP_PASS (2)", ret)
	}
	if st, err := startTime(os.Getpid()); err != nil || st == 0 {
		t.Errorf("start time of this process: %d, %v", st, err)
	}
	if _, err := startTime(1 << 30); err == nil {
		t.Error("start time of a pid that cannot exist: no error")
	}
}
