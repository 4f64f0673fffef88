package bpfport

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testFrame returns an Ethernet frame of n bytes (EtherType 0x88b5, local
// experimental) whose payload encodes seq.
func testFrame(n int, seq uint32) []byte {
	f := make([]byte, n)
	copy(f, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for i := 14; i < n; i++ {
		f[i] = byte(int(seq) + i)
	}
	if n >= 18 {
		f[14], f[15], f[16], f[17] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
	}
	return f
}

func TestVirtualRoundTrip(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{RingSize: 8, MTU: 9000})
	defer a.Close()
	defer b.Close()
	sizes := []int{14, 60, 1514, 9014}
	var frames [][]byte
	for i, n := range sizes {
		frames = append(frames, testFrame(n, uint32(i)))
	}
	frames = append(frames, vlanFrame(9018, 4)) // MTU + 18 only with a tag
	for _, dir := range []struct {
		name     string
		from, to *Virtual
	}{{"a->b", a, b}, {"b->a", b, a}} {
		t.Run(dir.name, func(t *testing.T) {
			n, err := dir.from.SendBatch(0, frames, nil)
			if err != nil || n != len(frames) {
				t.Fatalf("SendBatch = %d, %v; want %d, nil", n, err, len(frames))
			}
			bt := NewBatch(16)
			got, err := dir.to.RecvBatch(0, bt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(frames, bt.Frames[:got]); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVirtualOversizeAndFull(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{RingSize: 4})
	defer a.Close()
	defer b.Close()
	frames := [][]byte{testFrame(60, 1), testFrame(1519, 2), testFrame(10, 3), testFrame(60, 4),
		testFrame(60, 5), testFrame(60, 6), testFrame(60, 7)}
	n, err := a.SendBatch(0, frames, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 2 oversize/short consumed and counted, 4 fit, the last is refused.
	if n != 6 {
		t.Errorf("SendBatch consumed %d, want 6", n)
	}
	want := Stats{TxPackets: 4, TxBytes: 240, TxOversize: 2, TxRingFull: 1}
	if diff := cmp.Diff(want, a.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	bt := NewBatch(2)
	for i, want := range []uint32{1, 4, 5, 6} {
		if i%2 == 0 {
			if n, err := b.RecvBatch(0, bt); n != 2 || err != nil {
				t.Fatalf("RecvBatch = %d, %v", n, err)
			}
		}
		if !bytes.Equal(bt.Frames[i%2], testFrame(60, want)) {
			t.Errorf("frame %d: not seq %d", i, want)
		}
	}
}

func TestVirtualWakeAndClose(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{})
	bt := NewBatch(4)
	errc := make(chan error, 1)
	recv := func() {
		n, err := b.RecvBatch(0, bt)
		if n != 0 {
			err = errors.New("got frames")
		}
		errc <- err
	}
	wait := func(want error) {
		t.Helper()
		select {
		case err := <-errc:
			if !errors.Is(err, want) {
				t.Fatalf("RecvBatch error %v, want %v", err, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("RecvBatch still blocked")
		}
	}
	go recv()
	waitParked(t, b)
	b.Wake()
	wait(nil)

	go recv()
	waitParked(t, b)
	a.Close() // peer gone
	wait(ErrLinkGone)
	if _, err := b.SendBatch(0, [][]byte{testFrame(60, 0)}, nil); !errors.Is(err, ErrLinkGone) {
		t.Errorf("SendBatch to closed peer: %v, want ErrLinkGone", err)
	}

	// Close while blocked (fresh pair: b's peer is gone above).
	a, b = NewVirtualPair("a", "b", VirtualConfig{})
	defer a.Close()
	go recv()
	waitParked(t, b)
	b.Close()
	wait(ErrClosed)
}

func TestVirtualConcurrent(t *testing.T) {
	const queues, perQueue = 3, 5000
	a, b := NewVirtualPair("a", "b", VirtualConfig{Queues: queues, RingSize: 64})
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2*queues)
	for q := 0; q < queues; q++ {
		wg.Add(2)
		go func() { // two senders per queue: SendBatch is safe for concurrent use
			defer wg.Done()
			frames := make([][]byte, 16)
			for i := range frames {
				frames[i] = testFrame(64, uint32(q))
			}
			deadline := time.Now().Add(10 * time.Second)
			for sent := 0; sent < perQueue && time.Now().Before(deadline); {
				n, err := a.SendBatch(q, frames[:min(16, perQueue-sent)], nil)
				if err != nil {
					errs <- err
					return
				}
				sent += n
				if n == 0 {
					runtime.Gosched() // ring full: let the receiver run
				}
			}
		}()
		go func() {
			defer wg.Done()
			bt := NewBatch(32)
			deadline := time.Now().Add(10 * time.Second)
			for got := 0; got < perQueue && time.Now().Before(deadline); {
				n, err := b.RecvBatch(q, bt)
				if err != nil {
					errs <- err
					return
				}
				for _, f := range bt.Frames[:n] {
					if !bytes.Equal(f, testFrame(64, uint32(q))) {
						errs <- errors.New("corrupt frame")
						return
					}
				}
				got += n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := b.Stats(); s.RxPackets != queues*perQueue {
		t.Errorf("received %d, want %d", s.RxPackets, queues*perQueue)
	}
}

func TestVirtualAllocs(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{})
	defer a.Close()
	defer b.Close()
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = testFrame(64, uint32(i))
	}
	bt := NewBatch(64)
	allocs := testing.AllocsPerRun(1000, func() {
		a.SendBatch(0, frames, nil)
		b.RecvBatch(0, bt)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// BenchmarkVirtual64 measures one core moving 64-byte frames through a
// virtual pair: SendBatch on one end, RecvBatch on the other, batches of
// 256. ns/op is per frame.
func BenchmarkVirtual64(b *testing.B) { benchVirtual(b, 64, 256) }

// BenchmarkVirtual1514 is BenchmarkVirtual64 with full-size frames.
func BenchmarkVirtual1514(b *testing.B) { benchVirtual(b, 1514, 256) }

func benchVirtual(b *testing.B, size, batch int) {
	x, y := NewVirtualPair("x", "y", VirtualConfig{RingSize: 1024})
	defer x.Close()
	defer y.Close()
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = testFrame(size, uint32(i))
	}
	bt := NewBatch(batch)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(batch, b.N-done)
		x.SendBatch(0, frames[:k], nil)
		n, _ := y.RecvBatch(0, bt)
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// waitParked waits until a receiver is parked on queue 0 of p.
func waitParked(t testing.TB, p *Virtual) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !p.rx[0].waiting.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no receiver parked within 10s", p.Name())
		}
		time.Sleep(100 * time.Microsecond)
	}
}
