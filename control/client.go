package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultTimeout bounds a call when Client.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Client talks to a daemon.
type Client struct {
	Path string
	// Timeout bounds a whole call: connecting, sending the request and
	// receiving the answer (default DefaultTimeout). A stream is bounded
	// until its answer line; after that, a silence longer than Timeout
	// makes the client ping the daemon on a second connection, and the
	// stream fails only if that ping is not answered in time either (a
	// capture of a quiet port is silent, not stuck).
	Timeout time.Duration
}

// SocketPath returns the socket a client should use: flag if set, else
// $VSWITCH_SOCKET, else DefaultSocket.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	return DefaultSocket
}

// ErrNoDaemon is wrapped by errors connecting to a daemon that is not there.
var ErrNoDaemon = errors.New("no daemon")

// ErrTimeout is wrapped by errors of calls the daemon did not answer in
// time.
var ErrTimeout = errors.New("daemon did not answer in time")

// timeoutError says which daemon did not answer and what to do.
type timeoutError struct {
	path    string
	timeout time.Duration
	what    string
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("daemon at %s did not answer %s within %v: is it stuck? check its log, or raise --timeout", e.path, e.what, e.timeout)
}

func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }

// MaxSocketPath is the longest path a Unix socket can have on Linux
// (sun_path holds 108 bytes with the terminating NUL).
const MaxSocketPath = 107

// checkSocketPath says what to do about a path too long to be a socket,
// which the kernel would refuse with a bare "invalid argument".
func checkSocketPath(path string) error {
	if len(path) > MaxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes, more than the %d a Unix socket can have: use a shorter --socket (or $%s)", path, len(path), MaxSocketPath, SocketEnv)
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if err := checkSocketPath(c.Path); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w at %s: start one with `vswitch daemon` (or point --socket / $%s at it)", ErrNoDaemon, c.Path, SocketEnv)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("cannot use %s: permission denied: run as root or as a member of the socket's group", c.Path)
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && context.Cause(ctx) == errCallTimeout {
			return nil, &timeoutError{c.Path, c.timeout(), "the connection"}
		}
		return nil, fmt.Errorf("connecting to the daemon at %s: %w", c.Path, err)
	}
	return conn, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// errCallTimeout is the cause of a call's context ending at its Timeout.
var errCallTimeout = errors.New("call timeout")

// send connects, sends the request and reads the answer line, all before
// deadline (and before ctx ends: a cancelled ctx closes the connection).
// On success the connection's deadline is cleared.
func (c *Client) send(ctx context.Context, method string, params any) (net.Conn, *bufio.Reader, Response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout(), errCallTimeout)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, Response{}, err
	}
	fail := func(err error) (net.Conn, *bufio.Reader, Response, error) {
		conn.Close()
		return nil, nil, Response{}, err
	}
	// The deadline bounds every read and write below; a cancelled ctx
	// interrupts them at once.
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	expired := func(err error, what string) error {
		if cerr := context.Cause(ctx); cerr != nil && cerr != errCallTimeout {
			return cerr // the caller's context ended: not the daemon's fault
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &timeoutError{c.Path, c.timeout(), what}
		}
		return nil
	}
	req := Request{Version: Version, Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			return fail(err)
		}
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		if e := expired(err, method); e != nil {
			return fail(e)
		}
		// The daemon may have refused the request before reading all of
		// it (too large): its answer says why.
		if resp, rerr := readResponse(bufio.NewReader(conn)); rerr == nil && resp.Error != nil {
			return fail(resp.Error)
		}
		return fail(fmt.Errorf("sending request to the daemon at %s: %w (did the daemon die?)", c.Path, err))
	}
	r := bufio.NewReader(conn)
	resp, err := readResponse(r)
	if err != nil {
		if e := expired(err, method); e != nil {
			return fail(e)
		}
		var se *syntaxError
		if errors.As(err, &se) {
			return fail(err)
		}
		return fail(fmt.Errorf("the daemon at %s closed the connection without answering %s: check its log", c.Path, method))
	}
	if resp.Error != nil {
		return fail(resp.Error)
	}
	if !stop() {
		// ctx ended just now, and its AfterFunc has set the deadline
		// (or will): honour the end.
		return fail(expired(os.ErrDeadlineExceeded, method))
	}
	conn.SetDeadline(time.Time{})
	return conn, r, resp, nil
}

type syntaxError struct{ err error }

func (e *syntaxError) Error() string { return "malformed response: " + e.err.Error() }
func (e *syntaxError) Unwrap() error { return e.err }

func readResponse(r *bufio.Reader) (Response, error) {
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Response{}, err
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, &syntaxError{err}
	}
	return resp, nil
}

// Call sends a request and decodes the result into result (may be nil).
// It returns within Timeout (or when ctx ends): an error wrapping
// ErrTimeout names the socket and says what to do.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	conn, _, resp, err := c.send(ctx, method, params)
	if err != nil {
		return err
	}
	defer conn.Close()
	if result != nil && len(resp.Result) > 0 {
		return json.Unmarshal(resp.Result, result)
	}
	return nil
}

// Stream sends a request whose answer is a stream and returns the stream
// and the decoded result. Close the stream to end it. The answer line
// must come within Timeout; then the stream may be silent for as long as
// the daemon still answers a ping (see Client.Timeout). Reads fail with
// an error wrapping ErrTimeout when it does not.
func (c *Client) Stream(ctx context.Context, method string, params, result any) (io.ReadCloser, error) {
	conn, r, resp, err := c.send(ctx, method, params)
	if err != nil {
		return nil, err
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if !resp.Stream {
		conn.Close()
		return nil, fmt.Errorf("%s: the daemon sent no stream", method)
	}
	return &stream{c: c, ctx: ctx, conn: conn, r: r}, nil
}

// stream reads a stream with a per-read deadline pushed forward as data
// arrives; a silence as long as the client's Timeout is checked with a
// ping to the daemon.
type stream struct {
	c    *Client
	ctx  context.Context
	conn net.Conn
	r    *bufio.Reader
}

func (s *stream) Read(p []byte) (int, error) {
	for {
		s.conn.SetReadDeadline(time.Now().Add(s.c.timeout()))
		n, err := s.r.Read(p)
		var ne net.Error
		if n > 0 || err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		if s.ctx.Err() != nil {
			return 0, s.ctx.Err()
		}
		// Silent for a whole Timeout: a quiet port, or a stuck daemon?
		// Any answer, even a refusal, says the daemon is alive.
		if err := s.c.Call(s.ctx, MethodPing, nil, nil); err != nil && CodeOf(err) == "" {
			if errors.Is(err, ErrTimeout) {
				return 0, err
			}
			return 0, fmt.Errorf("stream from the daemon at %s was silent for %v and the daemon does not answer: %w", s.c.Path, s.c.timeout(), err)
		}
	}
}

func (s *stream) Close() error { return s.conn.Close() }
