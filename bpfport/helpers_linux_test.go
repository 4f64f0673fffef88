package bpfport

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/bpfport/nettest"
)

// bridge forwards frames between two ports in both directions (queue 0)
// until they are closed, like a two-port switch would.
func bridge(t *testing.T, x, y Port) {
	var wg sync.WaitGroup
	fwd := func(from, to Port) {
		defer wg.Done()
		b := NewBatch(64)
		for {
			n, err := from.RecvBatch(0, b)
			if err != nil {
				return
			}
			frames, offl := b.Frames[:n], b.Offloads[:n]
			for tries := 0; len(frames) > 0 && tries < 100; tries++ {
				k, err := to.SendBatch(0, frames, offl)
				if err != nil {
					return
				}
				frames, offl = frames[k:], offl[k:]
				if len(frames) > 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
	}
	wg.Add(2)
	go fwd(x, y)
	go fwd(y, x)
	t.Cleanup(func() {
		x.Close()
		y.Close()
		wg.Wait()
	})
}

// tcpTransfer sends size random bytes from a client in nsC to a server
// at addr in nsS and checks the server's SHA-256 of what it received.
func tcpTransfer(t *testing.T, nsC, nsS *nettest.NS, addr string, size int) {
	t.Helper()
	var ln net.Listener
	nsS.Do(t, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	defer ln.Close()
	sums := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sums <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		io.Copy(h, c)
		sums <- h.Sum(nil)
	}()
	data := make([]byte, size)
	rand.Read(data)
	var c net.Conn
	nsC.Do(t, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.Write(data); err != nil {
		c.Close()
		t.Fatalf("tcp write: %v", err)
	}
	c.Close()
	var got []byte
	select {
	case got = <-sums:
	case <-time.After(40 * time.Second):
		t.Fatal("tcp server did not finish")
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("tcp: server received different bytes (sha256 %x, want %x)", got, want)
	}
	t.Logf("tcp: %d bytes in %v (%.1f MB/s)", size, time.Since(start), float64(size)/time.Since(start).Seconds()/1e6)
}

func waitErr(t *testing.T, errc <-chan error, want error, within time.Duration) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, want) {
			t.Fatalf("got error %v, want %v", err, want)
		}
	case <-time.After(within):
		t.Fatalf("no return within %v (want %v)", within, want)
	}
}

// waitBlocked waits until a receiver is blocked in queue q of p (an
// AF_PACKET or TAP port), so that a test acts on a blocked receiver.
func waitBlocked(t testing.TB, p Port, q int) {
	t.Helper()
	var w *waiter
	switch p := p.(type) {
	case *AFPacket:
		w = &p.rxq[q].w
	case *TAP:
		w = &p.queues[q].w
	default:
		t.Fatalf("waitBlocked: %T", p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !w.blocked.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no receiver blocked on queue %d within 10s", p.Name(), q)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
