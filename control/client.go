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

// Client talks to a daemon.
type Client struct {
	Path string
	// Timeout bounds connecting and a non-streaming call (default 60s).
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

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.timeout()}
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w at %s: start one with `vswitch daemon` (or point --socket / $%s at it)", ErrNoDaemon, c.Path, SocketEnv)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("cannot use %s: permission denied: run as root or as a member of the socket's group", c.Path)
		}
		return nil, fmt.Errorf("connecting to the daemon at %s: %w", c.Path, err)
	}
	return conn, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 60 * time.Second
}

func (c *Client) send(ctx context.Context, method string, params any) (net.Conn, *bufio.Reader, Response, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, Response{}, err
	}
	req := Request{Version: Version, Method: method}
	if params != nil {
		if req.Params, err = json.Marshal(params); err != nil {
			conn.Close()
			return nil, nil, Response{}, err
		}
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		return nil, nil, Response{}, fmt.Errorf("sending request: %w (did the daemon die?)", err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, nil, Response{}, fmt.Errorf("the daemon closed the connection without answering %s: check its log", method)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		conn.Close()
		return nil, nil, Response{}, fmt.Errorf("malformed response: %w", err)
	}
	if resp.Error != nil {
		conn.Close()
		return nil, nil, Response{}, resp.Error
	}
	return conn, r, resp, nil
}

// Call sends a request and decodes the result into result (may be nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
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
// and the decoded result. Close the stream to end it.
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
	return struct {
		io.Reader
		io.Closer
	}{r, conn}, nil
}
