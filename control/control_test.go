package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/testenv"
)

type testHandler struct{}

func (testHandler) Handle(ctx context.Context, method string, params json.RawMessage) (any, func(context.Context, io.Writer) error, error) {
	switch method {
	case "echo":
		var v map[string]any
		if err := json.Unmarshal(params, &v); err != nil {
			return nil, nil, Errorf(CodeBadRequest, "bad params: %v", err)
		}
		return v, nil, nil
	case "panic":
		panic("boom")
	case "stream":
		return nil, func(ctx context.Context, w io.Writer) error {
			for i := 0; ; i++ {
				if _, err := w.Write([]byte("x")); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Millisecond):
				}
			}
		}, nil
	}
	return nil, nil, Errorf(CodeBadRequest, "unknown method %q", method)
}

func listen(t *testing.T) (*Server, *Client) {
	t.Helper()
	path := filepath.Join(testenv.SocketDir(t), "s.sock")
	s, err := Listen(ServerConfig{Path: path}, testHandler{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &Client{Path: path, Timeout: 5 * time.Second}
}

func raw(t *testing.T, path, req string) Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no response to %q: %v", req, err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCallsAndErrors(t *testing.T) {
	s, c := listen(t)
	var out map[string]any
	if err := c.Call(context.Background(), "echo", map[string]int{"a": 1}, &out); err != nil || out["a"] != 1.0 {
		t.Fatalf("echo: %v %v", out, err)
	}
	err := c.Call(context.Background(), "nope", nil, nil)
	if CodeOf(err) != CodeBadRequest || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("unknown method: %v", err)
	}
	if err := c.Call(context.Background(), "panic", nil, nil); CodeOf(err) != CodeInternal {
		t.Errorf("handler panic: %v", err)
	}
	for req, want := range map[string]string{
		"not json\n":                            "malformed request",
		`{"version":99,"method":"echo"}` + "\n": "protocol version 99",
	} {
		if r := raw(t, s.Path(), req); r.Error == nil || !strings.Contains(r.Error.Message, want) {
			t.Errorf("%q: %+v", req, r)
		}
	}
	// The server still answers after all that.
	if err := c.Call(context.Background(), "echo", map[string]int{"b": 2}, nil); err != nil {
		t.Errorf("after bad requests: %v", err)
	}
}

func TestClientGoneMidRequest(t *testing.T) {
	s, c := listen(t)
	for i := 0; i < 20; i++ {
		conn, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, `{"version":1,"method":"ec`) // no end of line
		conn.Close()
	}
	if err := c.Call(context.Background(), "echo", map[string]int{"a": 1}, nil); err != nil {
		t.Errorf("after clients vanished mid-request: %v", err)
	}
}

func TestStreamEndsWhenClientCloses(t *testing.T) {
	_, c := listen(t)
	rc, err := c.Stream(context.Background(), "stream", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	// Close of the server waits for the stream's handler: it must have ended.
	done := make(chan struct{})
	go func() {
		c.Call(context.Background(), "echo", map[string]int{}, nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("server stuck after a stream client left")
	}
}

func TestNoDaemon(t *testing.T) {
	c := &Client{Path: filepath.Join(testenv.SocketDir(t), "none.sock")}
	err := c.Call(context.Background(), "echo", nil, nil)
	if !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "vswitch daemon") {
		t.Errorf("%v", err)
	}
}

func TestStaleSocketReplacedLiveRefused(t *testing.T) {
	path := filepath.Join(testenv.SocketDir(t), "s.sock")
	os.WriteFile(path, nil, 0o600) // stale leftover
	s, err := Listen(ServerConfig{Path: path}, testHandler{})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer s.Close()
	if _, err := Listen(ServerConfig{Path: path}, testHandler{}); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second daemon on a live socket: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
}

// A socket path longer than a Unix socket can have is refused with what to
// do, by the daemon and the client, not with the kernel's "invalid
// argument".
func TestSocketPathTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("s", 60)+".sock")
	_, err := Listen(ServerConfig{Path: path}, nil)
	if err == nil || !strings.Contains(err.Error(), "shorter --socket") {
		t.Fatalf("Listen: got %v, want an error naming --socket", err)
	}
	c := &Client{Path: path}
	err = c.Call(context.Background(), "ping", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "shorter --socket") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Call: got %v, want an error naming the path and --socket", err)
	}
}
