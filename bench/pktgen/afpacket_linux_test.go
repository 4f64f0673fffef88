package pktgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/bpfport/nettest"
)

// TestAFPacketTxRx sends frames from one namespace to another over a veth
// pair through AF_PACKET ports and checks that the sink gets them all, in
// order, with latencies.
func TestAFPacketTxRx(t *testing.T) {
	nsA, nsB := nettest.NewNS(t), nettest.NewNS(t)
	ifA, ifB := nettest.Name("pga"), nettest.Name("pgb")
	nettest.Veth(t, nsA, ifA, nsB, ifB, 9000)
	var pa, pb *bpfport.AFPacket
	nsA.Do(t, func() (err error) { pa, err = bpfport.OpenAFPacket(ifA, bpfport.AFPacketConfig{}); return })
	defer pa.Close()
	// The sink's ring as `pktgen --mode rx` has it: a sink descheduled on
	// a loaded machine must not drop frames itself.
	sinkCfg := bpfport.AFPacketConfig{RingFrames: sinkRing, RcvBuf: sinkRcvBuf}
	nsB.Do(t, func() (err error) { pb, err = bpfport.OpenAFPacket(ifB, sinkCfg); return })
	defer pb.Close()

	for _, tc := range []struct {
		size, flows int
		n           uint64
		rate        float64
	}{{60, 1, 20_000, 100_000}, {1514, 8, 5_000, 50_000}, {9000, 3, 1_000, 10_000}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var rx Summary
		var rxErr error
		var wg sync.WaitGroup
		wg.Add(1)
		// The sink's socket is open: frames wait in its ring until it reads.
		go func() {
			defer wg.Done()
			rx, rxErr = Run(ctx, pb, Config{Mode: Receive, Count: tc.n}, nil)
		}()
		tx, err := Run(ctx, pa, Config{Size: tc.size, Flows: tc.flows, Count: tc.n, Rate: tc.rate}, nil)
		if err != nil {
			t.Fatalf("size %d: tx: %v", tc.size, err)
		}
		wg.Wait()
		cancel()
		if rxErr != nil {
			t.Fatalf("size %d: rx: %v (rx %v)", tc.size, rxErr, rx)
		}
		if why := rxProblem(rx, tc.n, tc.flows, tc.n*uint64(tc.size)); why != "" || tx.Packets != tc.n {
			t.Errorf("size %d: %s (tx sent %d of %d)\ntx %v\nrx %v", tc.size, why, tx.Packets, tc.n, tx, rx)
		}
		if l := rx.Latency; l == nil || l.Samples != tc.n || l.P50 <= 0 || l.P50 > int64(time.Second) {
			t.Errorf("size %d: latency %+v", tc.size, rx.Latency)
		}
		t.Logf("size %d: %v", tc.size, rx)
	}
}

// rxProblem says, first, what is wrong with a sink's summary: frames
// lost (and whether the sink's own ring dropped them), duplicated,
// reordered, or counts that differ; "" if nothing.
func rxProblem(s Summary, n uint64, flows int, bytes uint64) string {
	switch {
	case s.Lost != 0 && s.RingDrops > 0:
		return fmt.Sprintf("%d of %d frames lost, %d of them dropped by the kernel because the sink's receive ring was full (the sink fell behind)", s.Lost, n, s.RingDrops)
	case s.Lost != 0:
		return fmt.Sprintf("%d of %d frames lost on the way (the sink's ring dropped none)", s.Lost, n)
	case s.Packets != n:
		return fmt.Sprintf("%d of %d frames received", s.Packets, n)
	case s.Duplicates != 0 || s.Reordered != 0:
		return fmt.Sprintf("%d duplicates, %d reordered", s.Duplicates, s.Reordered)
	case s.Flows != flows:
		return fmt.Sprintf("%d flows seen, want %d", s.Flows, flows)
	case bytes != 0 && s.Bytes != bytes:
		return fmt.Sprintf("%d bytes, want %d", s.Bytes, bytes)
	case s.Interrupted:
		return "interrupted"
	}
	return ""
}

// TestMainNetns runs `vswitch pktgen` (Main, in this binary) as sink and
// as generator in two named namespaces joined by a veth, as a user would.
func TestMainNetns(t *testing.T) {
	requireRoot(t)
	gen, sinkNS := namedNS(t, "gen"), namedNS(t, "sink")
	namedVeth(t, gen, "g0", "02:00:00:00:00:01", sinkNS, "k0", "02:00:00:00:00:02")
	var rxOut, rxErr syncBuffer
	rx := pktgenCmd(t, nil, "-i", "k0", "--netns", sinkNS, "--mode", "rx", "-n", "3000", "-d", "15", "-j", "--interval", "100ms")
	rx.Stdout, rx.Stderr = &rxOut, &rxErr
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	defer rx.Process.Kill()
	// The sink's first report says its port is open.
	waitOutput(t, &rxOut, `"type":"interval"`)
	tx := pktgenCmd(t, nil, "-i", "g0", "--netns", gen, "-n", "3000", "-r", "20k", "-f", "4", "-s", "100")
	out, err := tx.CombinedOutput()
	if err != nil {
		t.Fatalf("tx: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tx on g0: 3000 frames (300.000kB) sent") {
		t.Errorf("tx output:\n%s", out)
	}
	if err := rx.Wait(); err != nil {
		t.Fatalf("rx: %v\n%s", err, rxErr.String())
	}
	var s Summary
	lastJSON(t, rxOut.String(), &s)
	if s.Type != "summary" || s.Latency == nil {
		t.Errorf("rx summary %+v", s)
	}
	if why := rxProblem(s, 3000, 4, 0); why != "" {
		t.Errorf("rx: %s\n%v", why, s)
	}
	for _, l := range strings.Split(strings.TrimSpace(rxOut.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("not JSON: %q", l)
		}
	}
	t.Logf("tx:\n%s", out)

	// Ctrl-C: the sink stops at once, exits 0 and prints what it saw.
	rxOut.Reset()
	rx = pktgenCmd(t, nil, "-i", "k0", "--netns", sinkNS, "--mode", "rx", "--interval", "100ms")
	rx.Stdout, rx.Stderr = &rxOut, &rxErr
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	defer rx.Process.Kill()
	waitOutput(t, &rxOut, " rx ")
	// Without a count or a duration, only the signal ends it.
	rx.Process.Signal(os.Interrupt)
	exited := make(chan error, 1)
	go func() { exited <- rx.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rx after SIGINT: %v\n%s", err, rxErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("rx still running 20s after SIGINT:\n%s", rxOut.String())
	}
	if !strings.Contains(rxOut.String(), "(interrupted)") {
		t.Errorf("rx output after SIGINT does not say it was interrupted:\n%s", rxOut.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// waitOutput waits (at most 10s) until b holds want.
func waitOutput(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.String(), want) {
			return
		}
	}
	t.Fatalf("no %q in output after 10s:\n%s", want, b.String())
}

// TestAFPacketAllocs checks that a burst through a kernel port allocates
// nothing, with either transmit method.
func TestAFPacketAllocs(t *testing.T) {
	nsA, nsB := nettest.NewNS(t), nettest.NewNS(t)
	ifA, ifB := nettest.Name("pga"), nettest.Name("pgb")
	nettest.Veth(t, nsA, ifA, nsB, ifB, 0)
	for _, mode := range []bpfport.TXMode{bpfport.TXRing, bpfport.TXSendmmsg} {
		var p *bpfport.AFPacket
		nsA.Do(t, func() (err error) { p, err = bpfport.OpenAFPacket(ifA, bpfport.AFPacketConfig{TX: mode}); return })
		c, _ := Config{Flows: 4}.withDefaults()
		g := newGenerator(p, c)
		done := make(chan struct{})
		if n := testing.AllocsPerRun(100, func() {
			if err := g.burst(done, 64, 1); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: %v allocations per burst, want 0", mode, n)
		}
		p.Close()
	}
}
