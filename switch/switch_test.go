package vswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bpfport"
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
	if n, err := h.SendBatch(0, frames); err != nil || n != len(frames) {
		t.Fatalf("send: %d of %d, %v", n, len(frames), err)
	}
}

// recv collects frames arriving at h for d.
func recv(h *bpfport.Virtual, d time.Duration) [][]byte {
	var got [][]byte
	b := bpfport.NewBatch(64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := h.RecvBatch(0, b)
			if err != nil {
				return
			}
			for _, f := range b.Frames[:n] {
				got = append(got, append([]byte(nil), f...))
			}
			if n == 0 {
				return
			}
		}
	}()
	time.Sleep(d)
	h.Wake()
	<-done
	return got
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestForwardAndFlood(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{})
	r.s.SetProgram(program(t, byDstByte))
	send(t, r.hosts[0], frame(1, 60, 1), frame(2, 60, 2))
	got1 := recv(r.hosts[1], 100*time.Millisecond)
	got2 := recv(r.hosts[2], 10*time.Millisecond)
	if len(got1) != 1 || got1[0][5] != 1 || len(got2) != 1 || got2[0][5] != 2 {
		t.Fatalf("unicast: port 1 got %d, port 2 got %d frames", len(got1), len(got2))
	}
	send(t, r.hosts[0], frame(Flood, 60, 3))
	for i, h := range r.hosts {
		got := recv(h, 50*time.Millisecond)
		want := 1
		if i == 0 {
			want = 0
		}
		if len(got) != want {
			t.Errorf("flood: port %d got %d frames, want %d", i, len(got), want)
		}
	}
	st := r.s.PortStats()
	if st[0].RxPackets != 3 || st[1].TxPackets != 2 || st[2].TxPackets != 2 || st[0].TxPackets != 0 {
		t.Errorf("counters: %+v", st)
	}
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
		frame(200, 60, 4),  // program drop? no: empty slot 200
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

func TestRuntAndOversizeNeverReachTheProgram(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	sw, host := bpfport.NewVirtualPair("sw0", "h0", bpfport.VirtualConfig{MTU: 9000})
	defer host.Close()
	// The switch believes the port's MTU is 1500 by wrapping it.
	if _, err := s.Attach(mtuPort{sw, 1500}, "virtual"); err != nil {
		t.Fatal(err)
	}
	s.SetProgram(program(t, "mov %r0, 255\nexit"))
	w := s.ports[0].Load().workers[0]
	w.process([][]byte{make([]byte, 13), make([]byte, 1519), make([]byte, 1518)})
	st := s.PortStats()[0]
	if st.Drops[DropRunt] != 1 || st.Drops[DropOversize] != 1 || st.Drops[DropProgram] != 1 {
		t.Errorf("drops %v", st.DropsByName())
	}
	if ps, _ := s.ProgramStats(); ps.Runs != 1 {
		t.Errorf("program ran %d times, want 1", ps.Runs)
	}
}

type mtuPort struct {
	bpfport.Port
	mtu int
}

func (m mtuPort) MTU() int { return m.mtu }

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
	b := bpfport.NewBatch(8)
	counts := [2]int{}
	deadline := time.Now().Add(3 * time.Second)
	for counts[0]+counts[1] < 3 && time.Now().Before(deadline) {
		for q := 0; q < 2; q++ {
			go func() { time.Sleep(20 * time.Millisecond); outHost.Wake() }()
			n, _ := outHost.RecvBatch(q, b)
			counts[q] += n
		}
	}
	if counts != [2]int{1, 2} {
		t.Errorf("frames per ring %v, want [1 2] (ring 9 clamped to 1)", counts)
	}
}

func TestHotSwapUnderTraffic(t *testing.T) {
	r := newRig(t, 2, bpfport.VirtualConfig{RingSize: 4096})
	// Both programs forward to port 1 and stamp byte 20 with their mark.
	mark := func(m int) *Program {
		return program(t, fmt.Sprintf(`
			ldxdw %%r2, [%%r1+0]
			stb [%%r2+20], %d
			mov %%r0, 1
			exit`, m))
	}
	a, b := mark(0xa), mark(0xb)
	r.s.SetProgram(a)
	const total = 20000
	var received atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		batch := make([][]byte, 0, 32)
		deadline := time.Now().Add(15 * time.Second)
		for seq := 0; seq < total && time.Now().Before(deadline); {
			// Keep fewer frames in flight than the rings hold, so that a
			// loss can only be the switch's.
			if int64(seq)-received.Load() > 1024 {
				time.Sleep(20 * time.Microsecond)
				continue
			}
			batch = batch[:0]
			for len(batch) < 32 && seq+len(batch) < total {
				batch = append(batch, frame(1, 60, uint32(seq+len(batch))))
			}
			n, err := r.hosts[0].SendBatch(0, batch)
			if err != nil {
				return
			}
			seq += n
			if n < len(batch) {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	var swaps atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if swaps.Load()%2 == 0 {
				r.s.SetProgram(b)
			} else {
				r.s.SetProgram(a)
			}
			swaps.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	seen := make([]bool, total)
	marks := map[byte]int{}
	rb := bpfport.NewBatch(256)
	deadline := time.Now().Add(20 * time.Second)
	got := 0
	for got < total && time.Now().Before(deadline) {
		go func(g int64) {
			time.Sleep(200 * time.Millisecond)
			if received.Load() == g {
				r.hosts[1].Wake()
			}
		}(received.Load())
		n, err := r.hosts[1].RecvBatch(0, rb)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rb.Frames[:n] {
			seq := binary.BigEndian.Uint32(f[14:])
			if seen[seq] {
				t.Fatalf("frame %d delivered twice", seq)
			}
			seen[seq] = true
			marks[f[20]]++
			got++
			received.Add(1)
		}
	}
	close(stop)
	wg.Wait()
	if got != total {
		t.Fatalf("received %d of %d frames across swaps (drops: %v)", got, total, r.s.PortStats()[0].DropsByName())
	}
	if len(marks) > 2 || marks[0xa]+marks[0xb] != total {
		t.Errorf("frames not stamped by exactly one program: %v", marks)
	}
	if swaps.Load() < 2 {
		t.Errorf("only %d swaps happened during the traffic", swaps.Load())
	}
	t.Logf("%d frames, %d swaps, marks %v", total, swaps.Load(), marks)
}

func TestPortGoneUnderTraffic(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{})
	r.s.SetProgram(program(t, byDstByte))
	r.hosts[2].Close() // the "interface" of port 2 disappears
	waitFor(t, "port 2 marked gone", func() bool { return r.s.Ports()[2].Gone })
	send(t, r.hosts[0], frame(1, 60, 1), frame(2, 60, 2), frame(Flood, 60, 3))
	got := recv(r.hosts[1], 100*time.Millisecond)
	if len(got) != 2 {
		t.Errorf("port 1 got %d frames, want 2 (unicast and flood)", len(got))
	}
	waitFor(t, "no-port drop", func() bool { return r.s.PortStats()[0].Drops[DropNoPort] == 1 })
	if err := r.s.Detach("sw2"); err != nil {
		t.Errorf("detach gone port: %v", err)
	}
	if err := r.s.Detach("sw2"); !errors.Is(err, ErrNoSuchPort) {
		t.Errorf("detach twice: %v", err)
	}
}

func TestAttachErrors(t *testing.T) {
	s := New(Config{MaxWorkers: 2})
	defer s.Close()
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
	b, bh := bpfport.NewVirtualPair("b", "bh", bpfport.VirtualConfig{Queues: 2})
	defer bh.Close()
	defer b.Close()
	if _, err := s.Attach(b, "virtual"); !errors.Is(err, ErrFull) {
		t.Errorf("more workers than allowed: %v", err)
	}
}

func TestProcessDoesNotAllocate(t *testing.T) {
	r := newRig(t, 3, bpfport.VirtualConfig{RingSize: 1 << 16})
	r.s.SetProgram(program(t, byDstByte))
	w := r.s.ports[0].Load().workers[0]
	frames := [][]byte{frame(1, 60, 0), frame(2, 60, 1), frame(Flood, 60, 2), frame(0, 60, 3), frame(255, 60, 4)}
	w.process(frames) // first sight of each destination allocates its queue
	if n := testing.AllocsPerRun(1000, func() { w.process(frames) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
}

func TestMaxPorts(t *testing.T) {
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
	sw, h := bpfport.NewVirtualPair("one-too-many", "h", bpfport.VirtualConfig{RingSize: 8})
	defer h.Close()
	defer sw.Close()
	if _, err := s.Attach(sw, "virtual"); !errors.Is(err, ErrFull) {
		t.Errorf("port %d: %v, want ErrFull", MaxPorts, err)
	}
	// Port 253, the last index a program can name, forwards.
	s.SetProgram(program(t, "mov %r0, 253\nexit"))
	send(t, hosts[0], frame(0, 60, 1))
	if got := recv(hosts[253], 100*time.Millisecond); len(got) != 1 {
		t.Errorf("port 253 got %d frames", len(got))
	}
}
