package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/testenv"
)

// fakeServer accepts connections on a fresh socket and gives each to
// serve (which may never answer). It returns the socket's path.
func fakeServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	path := filepath.Join(testenv.SocketDir(t), "fake.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	return path
}

// returns runs fn and fails the test if it has not returned within a
// bound far above what it should take (a hang, not a slow machine).
func returns[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still blocked after 30s", what)
	}
	panic("unreachable")
}

func TestCallTimesOutOnSilentDaemon(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
	}{
		{"accepts and never reads", func(c net.Conn) {}},
		{"reads the request and never answers", func(c net.Conn) { io.Copy(io.Discard, c) }},
		{"answers half a line", func(c net.Conn) {
			bufio.NewReader(c).ReadBytes('\n')
			io.WriteString(c, `{"version":1,"res`)
			io.Copy(io.Discard, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fakeServer(t, tc.serve)
			c := &Client{Path: path, Timeout: 200 * time.Millisecond}
			// A large request fills the socket buffer of a daemon that
			// does not read: the write must be bounded too.
			params := map[string]string{"pad": strings.Repeat("x", 4<<20)}
			err := returns(t, "Call", func() error { return c.Call(context.Background(), "echo", params, nil) })
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("got %v, want ErrTimeout", err)
			}
			for _, want := range []string{path, "did not answer", "200ms", "check its log", "--timeout"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestCallEndsWithContext(t *testing.T) {
	path := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := &Client{Path: path, Timeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := returns(t, "Call", func() error { return c.Call(ctx, "echo", nil, nil) })
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestDefaultTimeout(t *testing.T) {
	if d := (&Client{}).timeout(); d != 10*time.Second {
		t.Errorf("default timeout %v", d)
	}
}

// quietHandler streams nothing until it has been pinged twice while the
// stream is silent, then writes "data".
type quietHandler struct {
	mu     sync.Mutex
	pings  int
	pinged chan struct{}
}

func (h *quietHandler) Handle(ctx context.Context, method string, params json.RawMessage) (any, func(context.Context, io.Writer) error, error) {
	switch method {
	case MethodPing:
		h.mu.Lock()
		h.pings++
		if h.pings == 2 {
			close(h.pinged)
		}
		h.mu.Unlock()
		return PingResult{Version: Version}, nil, nil
	case "quiet":
		return nil, func(ctx context.Context, w io.Writer) error {
			select {
			case <-h.pinged:
			case <-ctx.Done():
				return nil
			}
			io.WriteString(w, "data")
			<-ctx.Done()
			return nil
		}, nil
	}
	return nil, nil, Errorf(CodeBadRequest, "unknown method %q", method)
}

// A stream may be silent for longer than the timeout while the daemon
// answers pings: a capture of a quiet port is not a stuck daemon.
func TestStreamSilentWhileDaemonAnswers(t *testing.T) {
	path := filepath.Join(testenv.SocketDir(t), "s.sock")
	h := &quietHandler{pinged: make(chan struct{})}
	s, err := Listen(ServerConfig{Path: path}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &Client{Path: path, Timeout: 100 * time.Millisecond}
	rc, err := c.Stream(context.Background(), "quiet", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 4)
	if err := returns(t, "stream read", func() error { _, err := io.ReadFull(rc, buf); return err }); err != nil {
		t.Fatalf("read of a silent stream of a live daemon: %v", err)
	}
	if string(buf) != "data" {
		t.Errorf("read %q", buf)
	}
}

// A stream whose daemon stops answering fails, naming the socket.
func TestStreamOfStuckDaemonFails(t *testing.T) {
	var mu sync.Mutex
	first := true
	path := fakeServer(t, func(c net.Conn) {
		bufio.NewReader(c).ReadBytes('\n')
		mu.Lock()
		f := first
		first = false
		mu.Unlock()
		if f {
			io.WriteString(c, `{"version":1,"stream":true}`+"\n"+"abc")
		}
		io.Copy(io.Discard, c) // then nothing, on this and any other connection
	})
	c := &Client{Path: path, Timeout: 100 * time.Millisecond}
	rc, err := c.Stream(context.Background(), "capture", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("first bytes: %q %v", buf, err)
	}
	err = returns(t, "stream read", func() error { _, err := rc.Read(buf); return err })
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrTimeout naming %s", err, path)
	}
}

// The answer to a stream request is bounded like a call.
func TestStreamAnswerTimesOut(t *testing.T) {
	path := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := &Client{Path: path, Timeout: 100 * time.Millisecond}
	err := returns(t, "Stream", func() error {
		rc, err := c.Stream(context.Background(), "capture", nil, nil)
		if err == nil {
			rc.Close()
		}
		return err
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}
