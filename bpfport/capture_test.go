package bpfport

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestCaptureReadBack(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{})
	defer b.Close()
	var out bytes.Buffer
	c, err := NewCapture(a, &out, CaptureConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var sent [][]byte
	for i := 0; i < 10; i++ {
		sent = append(sent, testFrame(60+i*100, uint32(i)))
	}
	before := time.Now()
	sendAll(t, c, 0, sent) // a -> b, captured as transmitted
	want = append(want, sent...)
	var back [][]byte
	for i := 0; i < 5; i++ {
		back = append(back, testFrame(1514, uint32(100+i)))
	}
	sendAll(t, b, 0, back) // b -> a, captured as received
	want = append(want, back...)
	if got := recvTest(t, c, 0, len(back), 10*time.Second); len(got) != len(back) {
		t.Fatalf("received %d", len(got))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := c.CaptureStats(); s.Captured != 15 || s.Dropped != 0 {
		t.Errorf("capture stats %+v", s)
	}

	r, err := pcapgo.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v", r.LinkType())
	}
	var got [][]byte
	last := before.Add(-time.Second)
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ci.Timestamp.Before(last) || ci.Timestamp.After(time.Now()) {
			t.Errorf("timestamp %v out of order or range", ci.Timestamp)
		}
		last = ci.Timestamp
		if ci.Length != len(data) {
			t.Errorf("length %d, captured %d", ci.Length, len(data))
		}
		got = append(got, data)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pcap frames (-want +got):\n%s", diff)
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

func TestCaptureDropsInsteadOfBlocking(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{RingSize: 256})
	defer b.Close()
	w := blockingWriter{release: make(chan struct{})}
	hdr := make(chan *Capture, 1)
	go func() { // the file header write blocks too
		c, _ := NewCapture(a, w, CaptureConfig{Buffer: 8 * 80})
		hdr <- c
	}()
	w.release <- struct{}{}
	c := <-hdr
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = testFrame(60, uint32(i))
	}
	done := make(chan struct{})
	go func() {
		sendAll(t, c, 0, frames)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("SendBatch blocked on the capture writer")
	}
	s := c.CaptureStats()
	// The 4096-byte minimum buffer holds 4096/80 records of 60-byte frames.
	if s.Dropped < 100-4096/80-1 {
		t.Errorf("dropped %d, want at least %d", s.Dropped, 100-4096/80-1)
	}
	close(w.release)
	c.Close()
	t.Logf("%+v", c.CaptureStats())
}

func TestCaptureAllocs(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{})
	defer b.Close()
	c, _ := NewCapture(a, io.Discard, CaptureConfig{})
	defer c.Close()
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = testFrame(60, uint32(i))
	}
	bt := NewBatch(64)
	allocs := testing.AllocsPerRun(200, func() {
		c.SendBatch(0, frames, nil)
		b.SendBatch(0, frames, nil)
		b.RecvBatch(0, bt)
		c.RecvBatch(0, bt)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// stampedPort is a virtual port whose received frames carry a fixed,
// old timestamp, as a kernel's receive stamp can be older than the
// frames a capture already recorded as sent.
type stampedPort struct {
	*Virtual
	ts int64
}

func (p stampedPort) TryRecv(q int, b *Batch) (int, error) {
	n, err := p.Virtual.TryRecv(q, b)
	for i := range b.Timestamps[:n] {
		b.Timestamps[i] = p.ts
	}
	return n, err
}

// TestCaptureTimesNeverGoBack: a frame received with a kernel timestamp
// older than a frame already recorded as sent is written at the later
// time, so the file's times never go backwards.
func TestCaptureTimesNeverGoBack(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{})
	defer b.Close()
	var out bytes.Buffer
	c, err := NewCapture(stampedPort{a, time.Now().Add(-time.Hour).UnixNano()}, &out, CaptureConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, c, 0, [][]byte{testFrame(60, 1)}) // sent now
	sendAll(t, b, 0, [][]byte{testFrame(60, 2)}) // received, stamped an hour ago
	bt := NewBatch(8)
	for n := 0; n == 0; {
		if n, err = c.TryRecv(0, bt); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	r, err := pcapgo.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for {
		_, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, ci.Timestamp)
	}
	if len(times) != 2 || times[1].Before(times[0]) {
		t.Errorf("capture times %v: want 2 frames, not going back", times)
	}
}

// TestCaptureOnlyWhatWasSent: frames the port refused (too long for its
// MTU) are not in the capture.
func TestCaptureOnlyWhatWasSent(t *testing.T) {
	a, b := NewVirtualPair("a", "b", VirtualConfig{MTU: 1500})
	defer b.Close()
	var out bytes.Buffer
	c, err := NewCapture(a, &out, CaptureConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.SendBatch(0, [][]byte{testFrame(60, 1), testFrame(3000, 2), testFrame(61, 3)}, nil)
	if n != 3 || err != nil {
		t.Fatalf("SendBatch = %d, %v", n, err)
	}
	c.Close()
	r, err := pcapgo.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	var lens []int
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lens = append(lens, len(data))
	}
	if diff := cmp.Diff([]int{60, 61}, lens); diff != "" {
		t.Errorf("captured frame lengths (-want +got):\n%s", diff)
	}
}
