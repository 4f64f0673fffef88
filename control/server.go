package control

import (
	"bufio"
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

// ServerConfig configures Listen.
type ServerConfig struct {
	// Path of the socket; default DefaultSocket.
	Path string
	// Group owning the socket (numeric gid); -1 or 0 keeps root's.
	Group int
	// Logger; nil discards.
	Logger *slog.Logger
}

// Server accepts control connections.
type Server struct {
	ln     *net.UnixListener
	path   string
	h      Handler
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
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
	s := &Server{ln: ln, path: cfg.Path, h: h, log: cfg.Logger, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Close stops accepting, ends streams, waits for requests in flight and
// removes the socket.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
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
			s.log.Warn("control: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	if err := checkPeer(c, s.path); err != nil {
		s.log.Warn("control: refused a client", "err", err)
		writeResponse(c, Response{Version: Version, Error: Errorf(CodeBadRequest, "%v", err)})
		return
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(io.LimitReader(c, MaxRequest+1), 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		if len(line) > MaxRequest {
			writeResponse(c, Response{Version: Version, Error: Errorf(CodeBadRequest, "request larger than %d bytes", MaxRequest)})
		}
		return // the client went away mid-request: nothing to do
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		writeResponse(c, Response{Version: Version, Error: Errorf(CodeBadRequest, "malformed request: %v", err)})
		return
	}
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
