package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/netenv"
)

// RunConfig configures Run (the `vswitch daemon` command).
type RunConfig struct {
	Socket     string // control socket (default control.DefaultSocket)
	Group      int    // gid owning the socket (0: root's)
	LogLevel   string // debug, info (default), warn, error
	LogFormat  string // text (default) or json
	ConfigFile string // optional declarative config (FileConfig as JSON)
	Metrics    string // address for Prometheus metrics, e.g. 127.0.0.1:9464 (default off)
	Workers    int    // worker goroutines (default one per CPU)
	BusyPoll   string // default busy-poll window of ports ("" default, "0" none)
	Engine     string // default engine of the default program
	NoDefault  bool   // start without the built-in learning program
	Netns      string // path of a network namespace to open ports in
	// StateDir keeps ports, program and map changes across restarts
	// (default $VSWITCH_STATE_DIR, else DefaultStateDir); NoState keeps
	// nothing (a throw-away switch: tests, the demo, benchmarks). See
	// docs/state.md.
	StateDir string
	NoState  bool
	Log      io.Writer
	// Ready, if set, is called once the socket accepts requests.
	Ready func(*Daemon)
}

// FileConfig is the daemon's declarative configuration file (JSON):
//
//	{"ports": [{"name": "veth0"}, {"name": "tap0", "type": "tap", "create": true}],
//	 "program": {"file": "/etc/vswitch/learn.o", "engine": "jit"}}
type FileConfig struct {
	Ports   []control.PortAttachParams `json:"ports"`
	Program *struct {
		File    string `json:"file"`
		Section string `json:"section,omitempty"`
		Engine  string `json:"engine,omitempty"`
		Compat  string `json:"compat,omitempty"`
	} `json:"program,omitempty"`
}

// NewLogger builds the daemon's logger.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); level != "" && err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// Run runs a daemon until ctx is done, then shuts it down: the socket is
// removed, ports are detached (their interfaces restored) and the program
// released.
func Run(ctx context.Context, rc RunConfig) error {
	if rc.Log == nil {
		rc.Log = os.Stderr
	}
	log, err := NewLogger(rc.Log, rc.LogLevel, rc.LogFormat)
	if err != nil {
		return err
	}
	var fc FileConfig
	if rc.ConfigFile != "" {
		b, err := os.ReadFile(rc.ConfigFile)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return fmt.Errorf("config %s: %w", rc.ConfigFile, err)
		}
	}
	cfg := Config{Workers: rc.Workers, Logger: log}
	if rc.BusyPoll != "" {
		bp, err := ParseBusyPoll(rc.BusyPoll)
		if err != nil {
			return fmt.Errorf("--%v", err)
		}
		cfg.BusyPoll = bp
	}
	if rc.Netns != "" {
		ns, err := netenv.Open(rc.Netns)
		if err != nil {
			return err
		}
		defer ns.Close()
		cfg.Netns = ns
	}
	d := New(cfg)
	var st *store
	var sv *saved
	if !rc.NoState {
		dir := rc.StateDir
		if dir == "" {
			dir = os.Getenv(StateDirEnv)
		}
		if dir == "" {
			dir = DefaultStateDir
		}
		if st, sv, err = openStore(dir, log); err != nil {
			d.Close()
			return err
		}
		d.state = st
		log.Info("state", "file", st.path)
	}
	stopped := false
	shutdown := func() {
		if stopped {
			return
		}
		stopped = true
		if err := d.SaveSnapshot(); err != nil {
			log.Warn("saving the maps", "err", err)
		}
		if err := d.Close(); err != nil {
			log.Warn("closing ports", "err", err)
		}
		if st != nil {
			st.Close()
		}
		log.Info("daemon stopped")
	}
	defer shutdown()
	if err := d.restore(sv, &fc, rc.NoDefault, rc.Engine); err != nil {
		// Nothing is snapshot from a start that failed half-way.
		d.fallback = true
		return err
	}
	srv, err := control.Listen(control.ServerConfig{Path: rc.Socket, Group: rc.Group, Logger: log}, d)
	if err != nil {
		d.fallback = true
		return err
	}
	defer srv.Close()
	if rc.Metrics != "" {
		ln, err := net.Listen("tcp", rc.Metrics)
		if err != nil {
			return fmt.Errorf("--metrics %s: %w", rc.Metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.Registry(), promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	log.Info("daemon ready", "socket", srv.Path(), "pid", os.Getpid())
	if rc.Ready != nil {
		rc.Ready(d)
	}
	<-ctx.Done()
	log.Info("shutting down")
	// No control request runs past this point, then the maps are saved
	// and the ports closed.
	srv.Close()
	shutdown()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil
	}
	return nil
}
