package bpfport

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// isTestFrame reports whether f carries EtherType 0x88b5 (possibly behind
// one VLAN tag): the tests ignore everything else the kernel may send.
func isTestFrame(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(f[12:])
	if (et == 0x8100 || et == 0x88a8) && len(f) >= 18 {
		et = binary.BigEndian.Uint16(f[16:])
	}
	return et == 0x88b5
}

// vlanFrame returns a test frame of n bytes with an 802.1Q tag (VID 42).
func vlanFrame(n int, seq uint32) []byte {
	f := testFrame(n, seq)
	copy(f[12:], []byte{0x81, 0x00, 0x20, 0x2a, 0x88, 0xb5})
	return f
}

// recvTest receives test frames from queue q of p until want arrived or
// timeout passed, and returns copies of them.
func recvTest(t *testing.T, p Port, q, want int, timeout time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	b := NewBatch(64)
	deadline := time.Now().Add(timeout)
	defer wakeAfter(p, deadline)()
	for len(got) < want && time.Now().Before(deadline) {
		n, err := p.RecvBatch(q, b)
		if err != nil {
			t.Fatalf("%s: RecvBatch: %v", p.Name(), err)
		}
		for _, f := range b.Frames[:n] {
			if isTestFrame(f) {
				got = append(got, bytes.Clone(f))
			}
		}
	}
	return got
}

// wakeAfter wakes p's receivers at deadline and every 50ms after it, until
// the returned function is called. A single wake is not enough for a loop
// that checks a deadline: it can be consumed by a RecvBatch that also
// returned frames just before the deadline, and the next call would then
// block for good.
func wakeAfter(p Port, deadline time.Time) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.Wake()
				t.Reset(50 * time.Millisecond)
			}
		}
	}()
	return func() { close(done) }
}

// sendAll sends frames on queue q, retrying while the ring is full.
func sendAll(t *testing.T, p Port, q int, frames [][]byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(frames) > 0 {
		n, err := p.SendBatch(q, frames, nil)
		if err != nil {
			t.Fatalf("%s: SendBatch: %v", p.Name(), err)
		}
		frames = frames[n:]
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d frames still unsent", p.Name(), len(frames))
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}
