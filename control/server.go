package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Handler serves requests. Handle returns a result to encode, or a stream
// function that writes raw bytes after the response line until ctx ends
// (the client closed the connection or the server stopped). A stream
// function that Handle returned is always called once, so that it can
// release what Handle set up for it: with a done ctx and io.Discard when
// the client went away before the response.
type Handler interface {
	Handle(ctx context.Context, method string, params json.RawMessage) (result any, stream func(ctx context.Context, w io.Writer) error, err error)
}

// Admission limits of a server, where ServerConfig leaves them zero.
const (
	DefaultMaxConns    = 64
	DefaultReadTimeout = 10 * time.Second
	DefaultCloseWait   = 5 * time.Second
)

// ServerConfig configures Listen. Zero fields mean the defaults.
type ServerConfig struct {
	// Path of the socket; default DefaultSocket.
	Path string
	// Group owning the socket (numeric gid); -1 or 0 keeps root's.
	Group int
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxRequest bounds one request line; default (and at most) the
	// package's MaxRequest.
	MaxRequest int
	// MaxConns caps the connections served at once (streams included);
	// one more is answered "busy" and closed. Default DefaultMaxConns.
	MaxConns int
	// MaxInFlight caps the bytes of requests held at once, summed over
	// connections (a request holds its bytes until it is answered); a
	// request that would pass it is answered "busy". Default
	// twice MaxRequest; at least MaxRequest+1.
	MaxInFlight int64
	// ReadTimeout bounds each read of a request (not the whole request:
	// a large upload that keeps moving is not cut). Default
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// CloseWait bounds how long Close waits for handlers in flight after
	// it has interrupted every half-read request. Default DefaultCloseWait.
	CloseWait time.Duration
}

// Server accepts control connections.
type Server struct {
	cfg    ServerConfig
	ln     *net.UnixListener
	path   string
	h      Handler
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{} // one per connection being served
	budget *budget

	mu      sync.Mutex
	reading map[*net.UnixConn]struct{} // connections still reading their request

	refusals  *rateLog
	acceptErr *rateLog
}

// Listen creates the socket (mode 0660) and its directory. A stale socket
// left by a dead daemon is replaced; a live one is an error.
func Listen(cfg ServerConfig, h Handler) (*Server, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultSocket
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxRequest <= 0 || cfg.MaxRequest > MaxRequest {
		cfg.MaxRequest = MaxRequest
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 2 * int64(cfg.MaxRequest)
	}
	cfg.MaxInFlight = max(cfg.MaxInFlight, int64(cfg.MaxRequest)+1)
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.CloseWait <= 0 {
		cfg.CloseWait = DefaultCloseWait
	}
	if err := checkSocketPath(cfg.Path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if _, err := os.Stat(cfg.Path); err == nil {
		if c, err := net.DialTimeout("unix", cfg.Path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("a daemon is already listening on %s: stop it first, or use --socket", cfg.Path)
		}
		os.Remove(cfg.Path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(cfg.Path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.Group > 0 {
		if err := os.Chown(cfg.Path, -1, cfg.Group); err != nil {
			ln.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, path: cfg.Path, h: h, log: cfg.Logger, ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, cfg.MaxConns), budget: &budget{max: cfg.MaxInFlight},
		reading:   map[*net.UnixConn]struct{}{},
		refusals:  newRateLog(cfg.Logger, "control: refused a client", time.Second),
		acceptErr: newRateLog(cfg.Logger, "control: accept", time.Second)}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, interrupts requests still being received, ends
// streams, waits (at most CloseWait) for handlers in flight and removes
// the socket.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.reading {
		c.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.CloseWait):
		s.log.Warn("control: handlers still running at shutdown; not waiting for them", "waited", s.cfg.CloseWait)
	}
	s.refusals.flush()
	s.acceptErr.flush()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.acceptErr.warn("err", err)
			// Out of file descriptors, most likely: give the others time
			// to finish instead of spinning.
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.refuse(c, Errorf(CodeBusy, "the daemon is serving %d connections, its limit: try again in a moment", s.cfg.MaxConns), false,
					"reason", "too many connections", "limit", s.cfg.MaxConns)
			}()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.handle(c)
		}()
	}
}

// refuse answers err and closes c, logging at most once a second. The
// client reads the answer even if it is still writing (a Unix socket
// delivers what was queued before the reset); drain also reads what it
// still sends, for clients that read only once they have written all.
func (s *Server) refuse(c *net.UnixConn, err *Error, drain bool, logArgs ...any) {
	s.refusals.warn(logArgs...)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	writeResponse(c, Response{Version: Version, Error: err})
	if drain {
		s.discard(c)
	}
	c.Close()
}

func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	if err := checkPeer(c, s.path); err != nil {
		s.refuse(c, Errorf(CodeBadRequest, "%v", err), false, "err", err)
		return
	}
	line, held, err := s.readRequest(c)
	if err != nil {
		s.budget.release(held)
		var e *Error
		if errors.As(err, &e) {
			s.refuse(c, e, true, "reason", e.Message)
		}
		return // else the client went away mid-request (or we stop): nothing to do
	}
	defer s.budget.release(held)
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		writeResponse(c, Response{Version: Version, Error: Errorf(CodeBadRequest, "malformed request: %v", err)})
		return
	}
	line = nil
	if req.Version != Version {
		writeResponse(c, Response{Version: Version, Error: Errorf(CodeBadRequest, "protocol version %d not supported (this daemon speaks %d): use a matching vswitch binary", req.Version, Version)})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// A stream ends when the client closes its end.
	go func() {
		var b [1]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				cancel()
				return
			}
		}
	}()
	result, stream, err := s.safeHandle(ctx, req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = Errorf(CodeInternal, "%v", err)
		}
		writeResponse(c, Response{Version: Version, Error: e})
		return
	}
	resp := Response{Version: Version, Stream: stream != nil}
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			writeResponse(c, Response{Version: Version, Error: Errorf(CodeInternal, "encoding result: %v", err)})
			if stream != nil {
				cancel()
				stream(ctx, io.Discard) // releases what the handler set up
			}
			return
		}
		resp.Result = b
	}
	if err := writeResponse(c, resp); err != nil {
		if stream != nil {
			// The client is gone: the stream still runs, to release what
			// the handler set up for it, with nothing to write to.
			cancel()
			stream(ctx, io.Discard)
		}
		return
	}
	if stream == nil {
		return
	}
	if err := stream(ctx, c); err != nil && ctx.Err() == nil {
		s.log.Warn("control: stream ended", "method", req.Method, "err", err)
	}
}

// readChunk is the smallest growth of a request buffer.
const readChunk = 64 << 10

// readRequest reads one request line, growing its buffer only with bytes
// reserved from the server's in-flight budget (held, to release once the
// request is answered). Each read has its own deadline. A request over
// MaxRequest, or one the budget cannot hold, is an *Error for the client;
// other errors mean the client went away or the server is stopping.
func (s *Server) readRequest(c *net.UnixConn) (line []byte, held int64, err error) {
	if !s.track(c) {
		return nil, 0, s.ctx.Err()
	}
	defer s.untrack(c)
	var buf []byte
	scanned := 0
	for {
		if len(buf) == cap(buf) {
			if len(buf) > s.cfg.MaxRequest {
				return nil, held, Errorf(CodeBadRequest, "request larger than %d bytes: the limit of this daemon", s.cfg.MaxRequest)
			}
			grow := int64(min(max(cap(buf), readChunk), s.cfg.MaxRequest+1-cap(buf)))
			if !s.budget.take(grow) {
				return nil, held, Errorf(CodeBusy, "the daemon holds %d bytes of requests being received, its limit: try again in a moment", s.budget.max)
			}
			held += grow
			nb := make([]byte, len(buf), cap(buf)+int(grow))
			copy(nb, buf)
			buf = nb
		}
		if !s.readDeadline(c, time.Now().Add(s.cfg.ReadTimeout)) {
			return nil, held, s.ctx.Err()
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		for ; scanned < len(buf); scanned++ {
			if buf[scanned] == '\n' {
				if scanned > s.cfg.MaxRequest {
					return nil, held, Errorf(CodeBadRequest, "request larger than %d bytes: the limit of this daemon", s.cfg.MaxRequest)
				}
				return buf[:scanned+1], held, nil
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) && len(buf) > 0 && len(buf) <= s.cfg.MaxRequest {
				return buf, held, nil // a last line without its newline
			}
			return nil, held, rerr
		}
	}
}

// discard reads and drops what the client still sends after its refusal
// (bounded in bytes and time), so that a client writing its whole request
// before it reads finishes writing and finds the refusal, not a broken
// pipe.
func (s *Server) discard(c *net.UnixConn) {
	if !s.track(c) {
		return
	}
	defer s.untrack(c)
	var b [32 << 10]byte
	if !s.readDeadline(c, time.Now().Add(2*time.Second)) {
		return
	}
	for n := 0; n < 2*s.cfg.MaxRequest; {
		m, err := c.Read(b[:])
		n += m
		if err != nil {
			return
		}
	}
}

// track registers a connection whose reads Close interrupts; false if the
// server is stopping.
func (s *Server) track(c *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.reading[c] = struct{}{}
	return true
}

// readDeadline sets a tracked connection's read deadline, unless the
// server is stopping (under mu, so that Close's interruption is never
// overwritten).
func (s *Server) readDeadline(c *net.UnixConn, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	c.SetReadDeadline(t)
	return true
}

func (s *Server) untrack(c *net.UnixConn) {
	s.mu.Lock()
	delete(s.reading, c)
	s.mu.Unlock()
	c.SetReadDeadline(time.Time{})
}

// safeHandle turns a handler panic into an error: a bad request must never
// take the daemon down.
func (s *Server) safeHandle(ctx context.Context, req Request) (result any, stream func(context.Context, io.Writer) error, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("control: handler panicked", "method", req.Method, "panic", fmt.Sprint(p))
			result, stream, err = nil, nil, Errorf(CodeInternal, "internal error handling %s: %v", req.Method, p)
		}
	}()
	return s.h.Handle(ctx, req.Method, req.Params)
}

func writeResponse(w io.Writer, r Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// budget counts bytes reserved against a maximum.
type budget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// rateLog writes a warning at most once per interval; the ones it held
// back are counted in the next line.
type rateLog struct {
	log      *slog.Logger
	msg      string
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newRateLog(l *slog.Logger, msg string, interval time.Duration) *rateLog {
	return &rateLog{log: l, msg: msg, interval: interval}
}

func (r *rateLog) warn(args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed, r.last = 0, now
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "similar_not_logged", n)
	}
	r.log.Warn(r.msg, args...)
}

// flush logs how many warnings were held back since the last line.
func (r *rateLog) flush() {
	r.mu.Lock()
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	if n > 0 {
		r.log.Warn(r.msg, "similar_not_logged", n)
	}
}
