package e2e

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/demo"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/maps"
	vswitch "github.com/govswitch/vswitch/switch"
	"github.com/govswitch/vswitch/vm"
)

// The two reproductions of issue 11's crash: JIT code unmapped under a
// worker still running it. A slow program (a loop of bpf_map_update_elem
// on a 1 MiB array value, which once held a worker for 30-57 s per frame)
// runs on a frame; then a program is loaded, or the frame's port is
// detached and a program loaded. The slow frame now ends at the run
// budget (a fault), the old program's code is closed only after, and the
// switch goes on with the new program.

// slowProgram returns the slow program, on the JIT where there is one,
// with a Close that records that it was called and a runner that counts
// runs after it.
func slowProgram(t *testing.T) (*vswitch.Program, *atomic.Int64, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	big, err := maps.New(maps.Spec{Name: "big", Type: maps.Array, KeySize: 4, ValueSize: 1 << 20, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := vm.Load(asm.MustAssemble(`
	stw [%r10-4], 0
	mov %r2, %r10
	add %r2, -4
	lddw %r1, map[0]
	call 1
	jeq %r0, 0, out
	mov %r6, %r0
loop:
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	mov %r3, %r6
	mov %r4, 0
	call 2
	ja loop
out:
	mov %r0, 255
	exit`), vm.Options{Name: "slow", Helpers: maps.Helpers(), Maps: []vm.Map{big}})
	if err != nil {
		t.Fatal(err)
	}
	var closed, late, started atomic.Int64
	prog := &vswitch.Program{Name: "slow", Engine: "interp", VM: p}
	var runner vm.Runner = p
	if code, err := jit.Compile(p); err == nil {
		runner, prog.Engine = code, "jit"
		prog.Close = func() { closed.Add(1); code.Close() }
	} else {
		prog.Close = func() { closed.Add(1) }
	}
	prog.Runner = lateRunner{runner, &closed, &late, &started}
	return prog, &closed, &late, &started
}

// lateRunner counts the runs of a program, and those after its Close.
type lateRunner struct {
	vm.Runner
	closed, late, started *atomic.Int64
}

func (r lateRunner) Run(env *vm.Env, r1, r2 uint64) (uint64, error) {
	r.started.Add(1)
	if r.closed.Load() != 0 {
		r.late.Add(1)
	}
	return r.Runner.Run(env, r1, r2)
}

// provoke makes host 0 send a broadcast (an ARP request for an address
// nobody has) that reaches the switch's first port.
func provoke(t *testing.T, topo *demo.Topology) {
	t.Helper()
	if err := topo.Hosts[0].Run(func() error {
		c, err := net.Dial("udp4", "10.77.0.250:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func faults(d interface{ Ports(bool) []control.Port }, port string) uint64 {
	for _, p := range d.Ports(true) {
		if p.Name == port && p.Stats != nil {
			return p.Stats.Drops["fault"]
		}
	}
	return 0
}

func TestSlowFrameThenProgLoad(t *testing.T) {
	topo, d := hostsDaemon(t, 2)
	slow, closed, late, started := slowProgram(t)
	d.Switch().SetProgram(slow)
	provoke(t, topo)
	waitUntil(t, "a frame in the slow program", func() bool { return started.Load() > 0 })
	if _, err := d.LoadDefault(""); err != nil { // prog load while the slow frame may run
		t.Fatal(err)
	}
	waitUntil(t, "the slow frame to end in a fault", func() bool { return faults(d, topo.Ports[0]) > 0 })
	waitUntil(t, "the slow program's code to be closed", func() bool { return closed.Load() == 1 })
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[0], topo.Hosts[1], topo.IPs[1], 7030); err != nil {
		t.Fatalf("with the new program: %v", err)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("the slow program ran %d times after its Close", n)
	}
}

func TestSlowFrameThenDetachAndProgLoad(t *testing.T) {
	topo, d := hostsDaemon(t, 3)
	slow, closed, late, started := slowProgram(t)
	d.Switch().SetProgram(slow)
	provoke(t, topo)
	waitUntil(t, "a frame in the slow program", func() bool { return started.Load() > 0 })
	if err := d.Detach(control.PortDetachParams{Name: topo.Ports[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadDefault(""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the slow program's code to be closed", func() bool { return closed.Load() == 1 })
	if _, err := demo.UDPEcho(t.Context(), topo.Hosts[1], topo.Hosts[2], topo.IPs[2], 7031); err != nil {
		t.Fatalf("between the other ports with the new program: %v", err)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("the slow program ran %d times after its Close", n)
	}
}
