package vswitch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// rig is a switch with n virtual ports; hosts[i] is the far end of port i.
type rig struct {
	s     *Switch
	hosts []*bpfport.Virtual
}

func newRig(t testing.TB, n int, cfg bpfport.VirtualConfig) *rig {
	t.Helper()
	r := &rig{s: New(Config{})}
	for i := 0; i < n; i++ {
		sw, host := bpfport.NewVirtualPair(fmt.Sprintf("sw%d", i), fmt.Sprintf("h%d", i), cfg)
		idx, err := r.s.Attach(sw, "virtual")
		if err != nil {
			t.Fatal(err)
		}
		if idx != i {
			t.Fatalf("port %d attached at index %d", i, idx)
		}
		r.hosts = append(r.hosts, host)
	}
	t.Cleanup(func() {
		r.s.Close()
		for _, h := range r.hosts {
			h.Close()
		}
	})
	return r
}

func program(t testing.TB, src string) *Program {
	t.Helper()
	p, err := vm.Load(asm.MustAssemble(src), vm.Options{Helpers: vm.BaseHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	return &Program{Name: "test", Engine: "interp", Runner: p, VM: p}
}

// byDstByte forwards to the port named by the last byte of the destination MAC.
const byDstByte = `
	ldxdw %r2, [%r1+0]
	ldxb %r0, [%r2+5]
	exit`

func frame(dst byte, size int, seq uint32) []byte {
	f := make([]byte, size)
	copy(f, []byte{0x02, 0, 0, 0, 0, dst, 0x02, 0, 0, 0, 0, 0xee, 0x88, 0xb5})
	binary.BigEndian.PutUint32(f[14:], seq)
	return f
}

func send(t testing.TB, h *bpfport.Virtual, frames ...[]byte) {
	t.Helper()
	if n, err := h.SendBatch(0, frames, nil); err != nil || n != len(frames) {
		t.Fatalf("send: %d of %d, %v", n, len(frames), err)
	}
}

// recvN receives from queue q of h until want frames arrived (or 10 s
// passed: then the test fails, saying how many came).
func recvN(t testing.TB, h *bpfport.Virtual, q, want int) [][]byte {
	t.Helper()
	var got [][]byte
	b := bpfport.NewBatch(64)
	deadline := time.Now().Add(10 * time.Second)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // wake the receiver at the deadline, and after it
		tk := time.NewTimer(time.Until(deadline))
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				h.Wake()
				tk.Reset(50 * time.Millisecond)
			}
		}
	}()
	for len(got) < want && time.Now().Before(deadline) {
		n, err := h.RecvBatch(q, b)
		if err != nil {
			t.Fatalf("%s: receive: %v", h.Name(), err)
		}
		for _, f := range b.Frames[:n] {
			got = append(got, append([]byte(nil), f...))
		}
	}
	if len(got) < want {
		t.Fatalf("%s: received %d of %d frames within 10s", h.Name(), len(got), want)
	}
	return got
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// txCounts returns every port's TxPackets.
func txCounts(s *Switch) []uint64 {
	var out []uint64
	for _, st := range s.PortStats() {
		out = append(out, st.TxPackets)
	}
	return out
}

func TestForwardAndFlood(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{})
	r.s.SetProgram(program(t, byDstByte))
	send(t, r.hosts[0], frame(1, 60, 1), frame(2, 60, 2))
	got1 := recvN(t, r.hosts[1], 0, 1)
	got2 := recvN(t, r.hosts[2], 0, 1)
	if got1[0][5] != 1 || got2[0][5] != 2 {
		t.Fatalf("unicast: port 1 got a frame for %d, port 2 for %d", got1[0][5], got2[0][5])
	}
	send(t, r.hosts[0], frame(Flood, 60, 3))
	recvN(t, r.hosts[1], 0, 1)
	recvN(t, r.hosts[2], 0, 1)
	// Exactly these: the counters say what the switch sent where.
	waitFor(t, "counters", func() bool {
		st := r.s.PortStats()
		return st[0].RxPackets == 3 && st[1].TxPackets == 2 && st[2].TxPackets == 2 && st[0].TxPackets == 0
	})
}

func TestDrops(t *testing.T) {
	r := newRig(t, 2, bpfport.VirtualConfig{MTU: 1500})
	send(t, r.hosts[0], frame(1, 60, 0)) // no program yet
	waitFor(t, "no-program drop", func() bool { return r.s.PortStats()[0].Drops[DropNoProgram] == 1 })

	r.s.SetProgram(program(t, `
		ldxdw %r2, [%r1+0]
		ldxb %r0, [%r2+5]
		jne %r0, 0x77, +1
		ldxb %r0, [%r2+2000]
		exit`))
	send(t, r.hosts[0],
		frame(0, 60, 1),    // to itself
		frame(9, 60, 2),    // empty slot
		frame(255, 60, 3),  // program drop
		frame(200, 60, 4),  // empty slot 200
		frame(0x77, 60, 5), // fault: reads past the frame
	)
	want := map[DropReason]uint64{DropIngress: 1, DropNoPort: 2, DropProgram: 1, DropFault: 1, DropNoProgram: 1}
	waitFor(t, "drop counters", func() bool {
		st := r.s.PortStats()[0]
		for k, v := range want {
			if st.Drops[k] != v {
				return false
			}
		}
		return true
	})
	ps, _ := r.s.ProgramStats()
	if ps.Runs != 5 || ps.Faults != 1 || ps.FaultsByKind["out-of-bounds read"] != 1 {
		t.Errorf("program stats: %+v", ps)
	}
}

// mtuPort makes the switch believe a port's MTU is mtu.
type mtuPort struct {
	bpfport.Port
	mtu *atomic.Int64
}

func (m mtuPort) MTU() int { return int(m.mtu.Load()) }

func TestRuntAndOversizeNeverReachTheProgram(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	sw, host := bpfport.NewVirtualPair("sw0", "h0", bpfport.VirtualConfig{MTU: 9000})
	defer host.Close()
	var mtu atomic.Int64
	mtu.Store(1500)
	if _, err := s.Attach(mtuPort{sw, &mtu}, "virtual"); err != nil {
		t.Fatal(err)
	}
	s.SetProgram(program(t, "mov %r0, 255\nexit"))
	gso, o := gsoFrame(1448, 8)     // segments of 1514 bytes: not oversize
	bigSeg, bo := gsoFrame(1465, 8) // 54 + 1465 > 1500 + 18
	bad := append([]byte(nil), gso...)
	bad[12], bad[13] = 0x88, 0xb5 // not IP: cannot be segmented
	w := s.workers[0]
	w.process(s.ports[0].Load(), [][]byte{make([]byte, 13), make([]byte, 1519), make([]byte, 1518), gso, bigSeg, bad},
		[]bpfport.Offload{{}, {}, {}, o, bo, o})
	st := s.PortStats()[0]
	want := map[string]uint64{"runt": 1, "oversize": 2, "program": 2, "bad_offload": 1}
	if diff := cmp.Diff(want, st.DropsByName()); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
	if ps, _ := s.ProgramStats(); ps.Runs != 2 {
		t.Errorf("program ran %d times, want 2", ps.Runs)
	}
	// The MTU is raised after attach: frames up to the new MTU pass (the
	// switch re-reads the MTU when a frame exceeds it, at most every
	// 10 ms).
	mtu.Store(9000)
	waitFor(t, "a 9014-byte frame run by the program", func() bool {
		send(t, host, make([]byte, 9014))
		time.Sleep(time.Millisecond)
		ps, _ := s.ProgramStats()
		return ps.Runs >= 3
	})
	seen := func() (runs, oversize uint64) {
		ps, _ := s.ProgramStats()
		return ps.Runs, s.PortStats()[0].Drops[DropOversize]
	}
	waitFor(t, "the frames sent so far", func() bool {
		r, o := seen()
		st := s.PortStats()[0]
		return r+o == st.RxPackets-st.Drops[DropRunt]-st.Drops[DropBadOffload]
	})
	r0, o0 := seen()
	send(t, host, make([]byte, 9014))
	waitFor(t, "the next one", func() bool { r, o := seen(); return r+o == r0+o0+1 })
	if r, _ := seen(); r != r0+1 {
		t.Errorf("a frame within the new MTU was dropped as oversize")
	}
}

// gsoFrame returns a TCP/IPv4 super-frame of n segments of mss bytes and
// its offload description.
func gsoFrame(mss, n int) ([]byte, bpfport.Offload) {
	f := make([]byte, 14+20+20+mss*n)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0xee, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(min(len(f)-14, 65535)))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := ip[20:]
	tcp[12] = 5 << 4
	return f, bpfport.Offload{Flags: bpfport.OffloadNeedsCsum, GSOType: bpfport.GSOTCPv4, HdrLen: 54,
		GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}
}

func TestRingSelection(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	in, inHost := bpfport.NewVirtualPair("sw0", "h0", bpfport.VirtualConfig{})
	out, outHost := bpfport.NewVirtualPair("sw1", "h1", bpfport.VirtualConfig{Queues: 2})
	defer inHost.Close()
	defer outHost.Close()
	s.Attach(in, "virtual")
	s.Attach(out, "virtual")
	// ring_nr = first payload byte; port 1.
	s.SetProgram(program(t, `
		ldxdw %r2, [%r1+0]
		ldxb %r3, [%r2+14]
		stxb [%r1+20], %r3
		mov %r0, 1
		exit`))
	f0, f1, f9 := frame(1, 60, 0), frame(1, 60, 0), frame(1, 60, 0)
	f0[14], f1[14], f9[14] = 0, 1, 9
	send(t, inHost, f0, f1, f9)
	q0 := recvN(t, outHost, 0, 1)
	q1 := recvN(t, outHost, 1, 2)
	if q0[0][14] != 0 || q1[0][14] != 1 || q1[1][14] != 9 {
		t.Errorf("rings: queue 0 got %d, queue 1 got %d and %d (ring 9 clamped to 1)", q0[0][14], q1[0][14], q1[1][14])
	}
	waitFor(t, "exactly 3 frames out", func() bool { return s.PortStats()[1].TxPackets == 3 })
}

// closeTracker is a Program.Close that records whether the program ran
// after it was closed.
type closeTracker struct {
	vm.Runner
	closed, lateRuns atomic.Int64
}

func (c *closeTracker) Run(env *vm.Env, r1, r2 uint64) (uint64, error) {
	if c.closed.Load() != 0 {
		c.lateRuns.Add(1)
	}
	return c.Runner.Run(env, r1, r2)
}

func TestHotSwapUnderTraffic(t *testing.T) {
	r := newRig(t, 2, bpfport.VirtualConfig{RingSize: 4096})
	// Every program forwards to port 1 and stamps byte 20 with its mark.
	// Each has a real Close: JIT code is unmapped where the JIT exists.
	var trackers []*closeTracker
	mark := func(m int) *Program {
		p := program(t, fmt.Sprintf(`
			ldxdw %%r2, [%%r1+0]
			stb [%%r2+20], %d
			mov %%r0, 1
			exit`, m))
		tr := &closeTracker{Runner: p.Runner}
		if code, err := jit.Compile(p.VM); err == nil {
			tr.Runner = code
			p.Engine = "jit"
			p.Close = func() { tr.closed.Store(1); code.Close() }
		} else {
			p.Close = func() { tr.closed.Store(1) }
		}
		p.Runner = tr
		trackers = append(trackers, tr)
		return p
	}
	// A worker that has loaded the program is held there for a while now
	// and then, as a preempted goroutine would be.
	var holds atomic.Int64
	testHookAfterLoad = func() {
		if holds.Add(1)%97 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	defer func() { testHookAfterLoad = nil }()
	r.s.SetProgram(mark(0))
	const total = 20000
	var received atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		batch := make([][]byte, 0, 32)
		deadline := time.Now().Add(30 * time.Second)
		for seq := 0; seq < total && time.Now().Before(deadline); {
			// Keep fewer frames in flight than the rings hold, so that a
			// loss can only be the switch's.
			if int64(seq)-received.Load() > 1024 {
				runtime.Gosched()
				continue
			}
			batch = batch[:0]
			for len(batch) < 32 && seq+len(batch) < total {
				batch = append(batch, frame(1, 60, uint32(seq+len(batch))))
			}
			n, err := r.hosts[0].SendBatch(0, batch, nil)
			if err != nil {
				return
			}
			seq += n
		}
	}()
	var swaps atomic.Int64
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r.s.SetProgram(mark(i % 250))
			swaps.Add(1)
			runtime.Gosched()
		}
	}()
	seen := make([]bool, total)
	marks := map[byte]int{}
	got := recvEach(t, r.hosts[1], total, func(f []byte) {
		seq := binary.BigEndian.Uint32(f[14:])
		if seen[seq] {
			t.Fatalf("frame %d delivered twice", seq)
		}
		seen[seq] = true
		marks[f[20]]++
		received.Add(1)
	})
	close(stop)
	<-swapped
	wg.Wait()
	r.s.SetProgram(nil)
	r.s.retiring.Wait()
	if got != total {
		t.Fatalf("received %d of %d frames across swaps (drops: %v)", got, total, r.s.PortStats()[0].DropsByName())
	}
	if ps := r.s.PortStats()[0]; ps.Drops[DropFault] != 0 {
		t.Errorf("%d frames faulted (a worker ran closed code?)", ps.Drops[DropFault])
	}
	closed := 0
	for _, tr := range trackers {
		if n := tr.lateRuns.Load(); n != 0 {
			t.Errorf("a program ran %d times after it was closed", n)
		}
		closed += int(tr.closed.Load())
	}
	if closed != len(trackers) {
		t.Errorf("%d of %d replaced programs closed", closed, len(trackers))
	}
	if swaps.Load() < 1000 {
		t.Logf("only %d swaps happened during the traffic", swaps.Load())
	}
	t.Logf("%d frames, %d swaps, %d marks", total, swaps.Load(), len(marks))
}

// recvEach receives total frames from h (queue 0), calling fn on each,
// and returns how many came within 30 s.
func recvEach(t testing.TB, h *bpfport.Virtual, total int, fn func([]byte)) int {
	t.Helper()
	rb := bpfport.NewBatch(256)
	deadline := time.Now().Add(30 * time.Second)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if time.Now().After(deadline) {
					h.Wake()
				}
			}
		}
	}()
	got := 0
	for got < total && time.Now().Before(deadline) {
		n, err := h.RecvBatch(0, rb)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rb.Frames[:n] {
			fn(f)
			got++
		}
	}
	return got
}

func TestPortGoneUnderTraffic(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{})
	r.s.SetProgram(program(t, byDstByte))
	r.hosts[2].Close() // the "interface" of port 2 disappears
	waitFor(t, "port 2 marked gone", func() bool { return r.s.Ports()[2].Gone })
	send(t, r.hosts[0], frame(1, 60, 1), frame(2, 60, 2), frame(Flood, 60, 3))
	recvN(t, r.hosts[1], 0, 2) // unicast and flood
	waitFor(t, "no-port drop", func() bool { return r.s.PortStats()[0].Drops[DropNoPort] == 1 })
	if got := txCounts(r.s); got[1] != 2 || got[2] != 0 {
		t.Errorf("tx counts %v, want 2 to port 1 and none to the gone port", got)
	}
	if err := r.s.Detach("sw2"); err != nil {
		t.Errorf("detach gone port: %v", err)
	}
	if err := r.s.Detach("sw2"); !errors.Is(err, ErrNoSuchPort) {
		t.Errorf("detach twice: %v", err)
	}
}

// unpollable is a port whose queues have no file descriptor.
type unpollable struct{ bpfport.Port }

func (unpollable) PollFD(int) int { return -1 }

func TestAttachErrors(t *testing.T) {
	s := New(Config{})
	a, ah := bpfport.NewVirtualPair("a", "ah", bpfport.VirtualConfig{})
	defer ah.Close()
	if _, err := s.Attach(a, "virtual"); err != nil {
		t.Fatal(err)
	}
	a2, a2h := bpfport.NewVirtualPair("a", "a2h", bpfport.VirtualConfig{})
	defer a2h.Close()
	defer a2.Close()
	if _, err := s.Attach(a2, "virtual"); !errors.Is(err, ErrPortExists) {
		t.Errorf("same name twice: %v", err)
	}
	b, bh := bpfport.NewVirtualPair("b", "bh", bpfport.VirtualConfig{})
	defer bh.Close()
	defer b.Close()
	if _, err := s.Attach(unpollable{b}, "virtual"); err == nil || !strings.Contains(err.Error(), "cannot be polled") {
		t.Errorf("unpollable port: %v", err)
	}
	s.Close()
	if _, err := s.Attach(b, "virtual"); !errors.Is(err, ErrClosed) {
		t.Errorf("attach after Close: %v", err)
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{RingSize: 1 << 16})
	r.s.SetProgram(program(t, byDstByte))
	w := r.s.workers[0]
	in := r.s.ports[0].Load()
	gso, o := gsoFrame(1000, 4)
	gso[5] = 1
	fault := frame(1, 60, 5)
	frames := [][]byte{frame(1, 60, 0), frame(2, 60, 1), frame(Flood, 60, 2), frame(0, 60, 3), frame(255, 60, 4), gso, fault[:10]}
	offl := make([]bpfport.Offload, len(frames))
	offl[5] = o
	w.process(in, frames, offl) // first sight of each destination allocates its queue
	if n := testing.AllocsPerRun(1000, func() { w.process(in, frames, offl) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
	// A faulting frame does not allocate either.
	r.s.SetProgram(program(t, "ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+3000]\nexit"))
	w.process(in, frames[:1], offl[:1])
	if n := testing.AllocsPerRun(1000, func() { w.process(in, frames[:1], offl[:1]) }); n != 0 {
		t.Errorf("%v allocations per faulting frame, want 0", n)
	}
}

// TestManyPorts attaches the most ports a switch takes, with default
// settings: idle ports cost no goroutine, and two of them forward.
func TestManyPorts(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(Config{})
	defer s.Close()
	var hosts []*bpfport.Virtual
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	for i := 0; i < MaxPorts; i++ {
		sw, h := bpfport.NewVirtualPair(fmt.Sprintf("p%d", i), fmt.Sprintf("h%d", i), bpfport.VirtualConfig{RingSize: 8})
		hosts = append(hosts, h)
		if idx, err := s.Attach(sw, "virtual"); err != nil || idx != i {
			t.Fatalf("port %d: index %d, %v", i, idx, err)
		}
	}
	if g := runtime.NumGoroutine() - before; g > s.Workers()+4 {
		t.Errorf("%d goroutines for %d ports and %d workers", g, MaxPorts, s.Workers())
	}
	sw, h := bpfport.NewVirtualPair("one-too-many", "h", bpfport.VirtualConfig{RingSize: 8})
	defer h.Close()
	defer sw.Close()
	if _, err := s.Attach(sw, "virtual"); !errors.Is(err, ErrFull) {
		t.Errorf("port %d: %v, want ErrFull", MaxPorts, err)
	}
	// Port 253, the last index a program can name, forwards.
	s.SetProgram(program(t, "mov %r0, 253\nexit"))
	send(t, hosts[0], frame(0, 60, 1))
	recvN(t, hosts[253], 0, 1)
	for i := 0; i < MaxPorts; i += 2 {
		if err := s.Detach(fmt.Sprintf("p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Ports()); n != MaxPorts/2 {
		t.Errorf("%d ports after detaching half, want %d", n, MaxPorts/2)
	}
}

// TestBusyPortDoesNotStarveOthers: one port sending as fast as it can,
// another sending a few frames: the few all arrive.
func TestBusyPortDoesNotStarveOthers(t *testing.T) {
	s := New(Config{Workers: 1})
	defer s.Close()
	var hosts []*bpfport.Virtual
	for i := 0; i < 4; i++ {
		sw, h := bpfport.NewVirtualPair(fmt.Sprintf("p%d", i), fmt.Sprintf("h%d", i), bpfport.VirtualConfig{RingSize: 4096})
		defer h.Close()
		hosts = append(hosts, h)
		if _, err := s.Attach(sw, "virtual"); err != nil {
			t.Fatal(err)
		}
	}
	s.SetProgram(program(t, byDstByte)) // 0 -> 1 (busy), 2 -> 3 (a few)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the busy sender
		defer wg.Done()
		batch := make([][]byte, 64)
		for i := range batch {
			batch[i] = frame(1, 60, 0)
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			hosts[0].SendBatch(0, batch, nil)
		}
	}()
	go func() { // the busy sink
		defer wg.Done()
		b := bpfport.NewBatch(256)
		for {
			if _, err := hosts[1].RecvBatch(0, b); err != nil {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	waitFor(t, "the busy port forwarding", func() bool { return s.PortStats()[1].TxPackets > 10000 })
	for i := 0; i < 100; i++ {
		send(t, hosts[2], frame(3, 60, uint32(i)))
	}
	recvN(t, hosts[3], 0, 100)
	close(stop)
	hosts[1].Wake()
	wg.Wait()
}

// TestCaptureSeesTheFirstFrame: a capture started on an idle port records
// the very next frame.
func TestCaptureSeesTheFirstFrame(t *testing.T) {
	r := newRig(t, 2, bpfport.VirtualConfig{})
	r.s.SetProgram(program(t, byDstByte))
	send(t, r.hosts[0], frame(1, 60, 0))
	recvN(t, r.hosts[1], 0, 1) // the worker has served port 0 and gone idle again
	var buf syncBuffer
	stop, err := r.s.Capture(0, &buf, bpfport.CaptureConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.Capture(0, &buf, bpfport.CaptureConfig{}); !errors.Is(err, ErrCaptureRunning) {
		t.Errorf("second capture: %v", err)
	}
	send(t, r.hosts[0], frame(1, 60, 1))
	recvN(t, r.hosts[1], 0, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rd, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := rd.ReadPacketData()
	if err != nil {
		t.Fatalf("no frame in the capture: %v", err)
	}
	if binary.BigEndian.Uint32(data[14:]) != 1 {
		t.Errorf("captured frame %d, want 1", binary.BigEndian.Uint32(data[14:]))
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
