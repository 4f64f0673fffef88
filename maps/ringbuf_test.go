package maps

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRingBufferWrap(t *testing.T) {
	rb := mustNew(t, Spec{Type: RingBuf, MaxEntries: 4096}).(*RingBuffer)
	rec := make([]byte, 1000) // 1008 bytes with the header
	for round := range 20 {
		for i := range 3 {
			rec[0] = byte(round*3 + i)
			if !rb.Output(rec, 0) {
				t.Fatalf("round %d: record %d does not fit: %+v", round, i, rb.Stats())
			}
		}
		// A fourth fits only in what is left at the end of the area, which
		// changes every round: it is dropped or placed after a skip.
		var seen []byte
		rb.Poll(func(r []byte) {
			if len(r) != 1000 {
				t.Errorf("record of %d bytes", len(r))
			}
			seen = append(seen, r[0])
		})
		if len(seen) != 3 || seen[0] != byte(round*3) || seen[2] != byte(round*3+2) {
			t.Fatalf("round %d: records %v", round, seen)
		}
	}
	if !rb.Output(make([]byte, 2040), 0) {
		t.Error("a record of half the area (with its header) does not fit an empty ring")
	}
	if rb.Output(make([]byte, 4089), 0) {
		t.Error("a record larger than the area fit")
	}
}

func TestRingBufferFullNeverBlocks(t *testing.T) {
	rb := mustNew(t, Spec{Type: RingBuf, MaxEntries: 4096}).(*RingBuffer)
	ok := 0
	for range 1000 {
		if rb.Output(make([]byte, 56), 0) {
			ok++
		}
	}
	st := rb.Stats()
	if ok != 64 || st.Dropped != 1000-64 || st.Pending != 4096 {
		t.Errorf("%d records fit (want 64), stats %+v", ok, st)
	}
	if n := rb.Poll(func([]byte) {}); n != 64 {
		t.Errorf("polled %d", n)
	}
	if !rb.Output(make([]byte, 56), 0) {
		t.Error("no room after the consumer caught up")
	}
}

func TestRingBufferAbandoned(t *testing.T) {
	old := AbandonAfter
	AbandonAfter = 20 * time.Millisecond
	defer func() { AbandonAfter = old }()
	rb := mustNew(t, Spec{Type: RingBuf, MaxEntries: 4096}).(*RingBuffer)
	if rb.reserve(16) == 0 { // never submitted
		t.Fatal("reserve failed")
	}
	rb.Output([]byte("after"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := rb.Read(ctx)
	if err != nil || string(rec) != "after" {
		t.Fatalf("Read = %q, %v", rec, err)
	}
	if st := rb.Stats(); st.Abandoned != 1 {
		t.Errorf("stats %+v, want 1 abandoned", st)
	}
}

func TestRingBufferReadClosed(t *testing.T) {
	rb := mustNew(t, Spec{Type: RingBuf, MaxEntries: 4096}).(*RingBuffer)
	rb.Output([]byte("last"), 0)
	errc := make(chan error, 1)
	go func() {
		ctx := context.Background()
		if rec, err := rb.Read(ctx); err != nil || string(rec) != "last" {
			errc <- err
			return
		}
		_, err := rb.Read(ctx)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	rb.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	rb2 := mustNew(t, Spec{Type: RingBuf, MaxEntries: 4096}).(*RingBuffer)
	if _, err := rb2.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read of an empty ring: %v", err)
	}
}
