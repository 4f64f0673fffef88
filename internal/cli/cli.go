// Package cli is the vswitch command line: `vswitch [-j] [--socket PATH]
// OBJECT VERB ...`, in the manner of bpftool and ovs-vsctl. Every command
// but daemon, demo, pktgen, bench and prog run talks to a running daemon
// over its control socket.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/govswitch/vswitch/control"
)

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cmd{ctx: ctx, out: stdout, errw: stderr}
	err := c.run(args)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "vswitch: %v\n", err)
		fmt.Fprintln(stderr, "run `vswitch help` for the commands")
		return 2
	}
	var ex exitError
	if errors.As(err, &ex) {
		return int(ex)
	}
	fmt.Fprintf(stderr, "vswitch: %v\n", err)
	return 1
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError ends the command with a status, its message already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type cmd struct {
	ctx    context.Context
	out    io.Writer
	errw   io.Writer
	json   bool
	socket string
}

const usage = `usage: vswitch [-j] [--socket PATH] OBJECT VERB [ARGS]

  daemon [--socket PATH] [--config FILE] [--metrics ADDR] [--log-level L] [--log-format text|json]
         [--max-workers N] [--engine jit|interp] [--no-default-program] [--netns PATH]
  port attach IFACE [--type afpacket|tap] [--queues N] [--may-exist]
  port add NAME --type tap            create a TAP device and attach it
  port add NAME --type vxlan --vni N --remote IP[,IP...] [--local IP] [--dstport 4789] [--ttl N]
                                      a VXLAN tunnel port (floods go to every remote)
  port detach IFACE [--if-exists]
  port show [-s]
  attach IFACE / detach IFACE         short forms of port attach / port detach
  prog load FILE.o [--section S] [--engine jit|interp] [--compat vale-bpf]
  prog show
  prog dump xlated|jited
  prog log                            the program's bpf_trace_printk lines
  prog run FILE.o --data-in FILE [--repeat N] [--engine jit|interp] [--ingress-port N]
           [--map-init FILE] [--section S] [--data-out FILE]   (runs locally, no daemon)
  map show
  map dump NAME
  map lookup NAME key [hex] BYTES...
  map update NAME key [hex] BYTES... value [hex] BYTES... [any|exist|noexist]
  map delete NAME key [hex] BYTES...
                                      (or key json '{"addr":"02:00:00:00:00:01"}' and value json '{...}'
                                      where the object has BTF; entries then print as fields)
  map read NAME                       follow a ring buffer's records
  fdb show | fdb flush                the learning program's MAC table (with the VTEP of remote stations)
  fdb add MAC port VXPORT remote IP   a static remote station (as an EVPN control plane pushes)
  fdb del MAC [port PORT]
  stats
  capture PORT -w FILE|-              pcap of a port's traffic until Ctrl-C
  pktgen ...                          packet generator (vswitch pktgen --help)
  bench [--only vm,core,veth,latency] [--runs N] [--plot FILE.png|.svg] [-j]
                                      benchmark scenarios against the kernel, the bridge and OVS (vswitch bench -h)
  demo                                three hosts in namespaces on the switch, then cleaned up
  version

-j prints JSON. The socket is --socket, else $VSWITCH_SOCKET, else /run/vswitch/vswitch.sock.
`

func (c *cmd) run(args []string) error {
	// Global options come before the object.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		switch {
		case a == "-j" || a == "--json":
			c.json = true
		case a == "--socket" || a == "-socket":
			if len(args) < 2 {
				return usagef("--socket needs a path")
			}
			c.socket = args[1]
			args = args[1:]
		case strings.HasPrefix(a, "--socket="):
			c.socket = strings.TrimPrefix(a, "--socket=")
		case a == "-h" || a == "--help":
			fmt.Fprint(c.out, usage)
			return nil
		default:
			return usagef("unknown option %s", a)
		}
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(c.errw, usage)
		return exitError(2)
	}
	obj, rest := args[0], args[1:]
	switch obj {
	case "help":
		fmt.Fprint(c.out, usage)
		return nil
	case "version":
		return c.version()
	case "daemon":
		return c.daemon(rest)
	case "port":
		return c.port(rest)
	case "attach":
		return c.port(append([]string{"attach"}, rest...))
	case "detach":
		return c.port(append([]string{"detach"}, rest...))
	case "prog":
		return c.prog(rest)
	case "map":
		return c.mapCmd(rest)
	case "fdb":
		return c.fdb(rest)
	case "stats":
		return c.stats(rest)
	case "capture":
		return c.capture(rest)
	case "pktgen":
		return c.pktgen(rest)
	case "bench":
		return c.bench(rest)
	case "demo":
		return c.demo(rest)
	}
	return usagef("unknown object %q", obj)
}

func (c *cmd) client() *control.Client {
	return &control.Client{Path: control.SocketPath(c.socket)}
}

func (c *cmd) call(method string, params, result any) error {
	return c.client().Call(c.ctx, method, params, result)
}

// emit prints v as JSON with -j, else calls human.
func (c *cmd) emit(v any, human func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

// parse parses flags that may stand anywhere among the positional
// arguments and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' && !isNumber(a) {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			f := fs.Lookup(name)
			if f == nil {
				return nil, usagef("unknown option %s", a)
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 >= len(args) {
				return nil, usagef("option %s needs a value", a)
			}
			flags = append(flags, args[i+1])
			i++
			continue
		}
		pos = append(pos, a)
	}
	if err := fs.Parse(flags); err != nil {
		return nil, usageError{err}
	}
	return pos, nil
}

func isNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *cmd) version() error {
	v := map[string]any{"vswitch": Version, "protocol": control.Version}
	return c.emit(v, func(w io.Writer) {
		fmt.Fprintf(w, "vswitch %s (control protocol %d)\n", Version, control.Version)
	})
}

// Version is the program's version.
var Version = "0.1.0"

func readObject(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file (build the examples with `make -C examples`, or give the path of your .o)", path)
		}
		return nil, err
	}
	return b, nil
}
