package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/testenv"
)

func listenCfg(t *testing.T, cfg ServerConfig) (*Server, *Client) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(testenv.SocketDir(t), "s.sock")
	}
	s, err := Listen(cfg, testHandler{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &Client{Path: cfg.Path, Timeout: 10 * time.Second}
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s", what)
		}
	}
}

func (s *Server) conns() int { return len(s.slots) }

func TestConnectionCap(t *testing.T) {
	s, c := listenCfg(t, ServerConfig{MaxConns: 2})
	var streams []io.ReadCloser
	for i := 0; i < 2; i++ {
		rc, err := c.Stream(context.Background(), "stream", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, rc)
	}
	err := c.Call(context.Background(), "echo", map[string]int{"a": 1}, nil)
	if CodeOf(err) != CodeBusy || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("third connection: %v, want a busy refusal", err)
	}
	for _, rc := range streams {
		rc.Close()
	}
	waitFor(t, "streams ended", func() bool { return s.conns() == 0 })
	if err := c.Call(context.Background(), "echo", map[string]int{"a": 1}, nil); err != nil {
		t.Errorf("after the streams ended: %v", err)
	}
}

// halfRequest opens a connection and sends n bytes of a request that
// never ends.
func halfRequest(t *testing.T, path string, n int) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, `{"version":1,"method":"echo","params":{"pad":"`+strings.Repeat("x", n)); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestInFlightBytesCap(t *testing.T) {
	const max = 1 << 20
	s, c := listenCfg(t, ServerConfig{MaxRequest: max, MaxInFlight: max + max/2})
	halfRequest(t, s.Path(), max*3/4)
	waitFor(t, "the first upload held", func() bool { return s.budget.inUse() >= max*3/4 })
	// A second large upload does not fit beside it.
	big := map[string]string{"pad": strings.Repeat("y", max*3/4)}
	err := c.Call(context.Background(), "echo", big, nil)
	if CodeOf(err) != CodeBusy || !strings.Contains(err.Error(), "being received") {
		t.Fatalf("second upload: %v, want a busy refusal", err)
	}
	// Small requests still fit.
	if err := c.Call(context.Background(), "echo", map[string]int{"a": 1}, nil); err != nil {
		t.Errorf("small request beside the upload: %v", err)
	}
	// What refused requests held is given back.
	waitFor(t, "budget back to the first upload", func() bool { return s.budget.inUse() <= max })
}

func TestTooLargeReachesClient(t *testing.T) {
	const max = 64 << 10
	s, c := listenCfg(t, ServerConfig{MaxRequest: max})
	big := map[string]string{"pad": strings.Repeat("z", 4*max)}
	err := c.Call(context.Background(), "echo", big, nil)
	if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), "request larger than 65536 bytes") {
		t.Fatalf("too large a request: %v", err)
	}
	// A client that writes all of its request before it reads gets the
	// refusal too.
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, `{"version":1,"method":"echo","params":{"pad":"`+strings.Repeat("z", 2*max)+`"}}`+"\n"); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	line, _ := bufio.NewReader(conn).ReadBytes('\n')
	var r Response
	if err := json.Unmarshal(line, &r); err != nil || r.Error == nil || !strings.Contains(r.Error.Message, "request larger") {
		t.Fatalf("raw client: %q %v", line, err)
	}
	if budget := s.budget.inUse(); budget != 0 {
		t.Errorf("%d bytes still held after the refusals", budget)
	}
}

// The read deadline is per read: an upload that keeps moving is not cut,
// one that stalls is.
func TestReadDeadlineIsPerRead(t *testing.T) {
	s, _ := listenCfg(t, ServerConfig{ReadTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, `{"version":1,"method":"echo","params":{"pad":"`)
	// Ten pieces, 100 ms apart: 1 s in all, more than three read timeouts.
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(conn, "xxxx"); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
	}
	io.WriteString(conn, `"}}`+"\n")
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	var r Response
	if err != nil || json.Unmarshal(line, &r) != nil || r.Error != nil {
		t.Fatalf("slow but moving upload: %q %v", line, err)
	}
	// A stalled one is closed.
	stalled := halfRequest(t, s.Path(), 10)
	if err := returns(t, "read of a stalled connection", func() error {
		_, err := stalled.Read(make([]byte, 1))
		return err
	}); err == nil {
		t.Error("a stalled request was not closed")
	}
}

// Close interrupts requests still being received instead of waiting for
// them.
func TestCloseDoesNotWaitForHalfSentRequests(t *testing.T) {
	s, _ := listenCfg(t, ServerConfig{ReadTimeout: time.Hour, CloseWait: time.Hour})
	for i := 0; i < 50; i++ {
		halfRequest(t, s.Path(), 1000)
	}
	waitFor(t, "50 requests being read", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.reading) == 50
	})
	// Bounded by the read timeout and the close wait, an hour each, were
	// the requests not interrupted.
	returns(t, "Close", func() error { return s.Close() })
}

func TestRefusalLogsRateLimited(t *testing.T) {
	var logBuf syncWriter
	s, c := listenCfg(t, ServerConfig{MaxConns: 1, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	rc, err := c.Stream(context.Background(), "stream", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	const refused = 300
	for i := 0; i < refused; i++ {
		if err := c.Call(context.Background(), "echo", nil, nil); CodeOf(err) != CodeBusy {
			t.Fatalf("call %d: %v, want busy", i, err)
		}
	}
	elapsed := time.Since(start)
	rc.Close()
	s.Close()
	// Every refusal is accounted for: one line each, or counted in a
	// later line; at most one line a second (and the final count).
	lines, counted := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		if !strings.Contains(l, "refused a client") {
			continue
		}
		lines++
		var n int
		if i := strings.Index(l, "similar_not_logged="); i >= 0 {
			json.Unmarshal([]byte(strings.Fields(l[i+len("similar_not_logged="):])[0]), &n)
		}
		counted += n
		if strings.Contains(l, "reason=") {
			counted++ // not the final count
		}
	}
	if counted != refused {
		t.Errorf("log accounts for %d refusals, want %d:\n%s", counted, refused, logBuf.String())
	}
	if max := int(elapsed/time.Second) + 3; lines > max {
		t.Errorf("%d log lines for %d refusals in %v", lines, refused, elapsed)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
