package bpfport

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/bpfport/internal/nettest"
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
	timer := time.AfterFunc(timeout, p.Wake)
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
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

// sendAll sends frames on queue q, retrying while the ring is full.
func sendAll(t *testing.T, p Port, q int, frames [][]byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(frames) > 0 {
		n, err := p.SendBatch(q, frames)
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
			frames := b.Frames[:n]
			for tries := 0; len(frames) > 0 && tries < 100; tries++ {
				k, err := to.SendBatch(0, frames)
				if err != nil {
					return
				}
				frames = frames[k:]
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
