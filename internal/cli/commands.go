package cli

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
)

func (c *cmd) daemonCommand() *cobra.Command {
	var rc daemon.RunConfig
	cc := &cobra.Command{
		Use:   "daemon",
		Short: "run the switch (until SIGINT or SIGTERM)",
		Long: `daemon runs the switch with the built-in learning program (unless told
otherwise) and serves the control socket the other commands use. The first
SIGINT or SIGTERM stops it cleanly (ports detached, their interfaces
restored, the socket removed); a second one exits at once.

What it acknowledges is kept in --state-dir (default $VSWITCH_STATE_DIR, else
/var/lib/vswitch) and restored at the next start: ports, the program, map
changes, and on a clean stop what the program learned (docs/state.md).
--no-state keeps nothing (a throw-away switch).`,
		Example: `  vswitch daemon &
  vswitch daemon --socket /tmp/vs.sock --metrics 127.0.0.1:9464
  vswitch daemon --netns sw --config /etc/vswitch/config.json   # docs/config.md`,
		Args: noArgs("daemon"),
		RunE: func(*cobra.Command, []string) error { return c.daemon(rc) },
	}
	f := cc.Flags()
	f.StringVar(&rc.ConfigFile, "config", "", "declarative configuration: ports to attach and a program to load at start (JSON, see docs/config.md)")
	f.StringVar(&rc.Metrics, "metrics", "", "serve Prometheus metrics on ADDR (such as 127.0.0.1:9464)")
	f.StringVar(&rc.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&rc.LogFormat, "log-format", "text", "text or json")
	f.IntVar(&rc.Workers, "workers", 0, "worker goroutines serving every port, and per-CPU map slots (default one per CPU)")
	f.IntVar(&rc.Workers, "max-workers", 0, "old name of --workers")
	f.MarkHidden("max-workers")
	f.StringVar(&rc.BusyPoll, "busy-poll", "", "longest a worker keeps polling a port after its last frame (default 5ms; 0: none)")
	f.StringVar(&rc.Engine, "engine", "", "engine of the default program: jit or interp")
	f.BoolVar(&rc.NoDefault, "no-default-program", false, "start without the built-in learning program")
	f.StringVar(&rc.Netns, "netns", "", "open ports in network namespace NAME (as made by `ip netns add NAME`) or the one mounted at PATH")
	f.IntVar(&rc.Group, "group", 0, "numeric group allowed to use the socket (mode 0660)")
	f.StringVar(&rc.StateDir, "state-dir", "", "directory of the state kept across restarts (default $"+daemon.StateDirEnv+", else "+daemon.DefaultStateDir+"; docs/state.md)")
	f.BoolVar(&rc.NoState, "no-state", false, "keep no state: nothing restored at start, nothing saved")
	cc.MarkFlagsMutuallyExclusive("state-dir", "no-state")
	completeWords(cc, "engine", "jit", "interp")
	completeWords(cc, "log-level", "debug", "info", "warn", "error")
	completeWords(cc, "log-format", "text", "json")
	return cc
}

// netnsPath turns a namespace name (ip netns add NAME) into its path;
// anything with a slash is a path already.
func netnsPath(s string) string {
	if s == "" || strings.Contains(s, "/") {
		return s
	}
	return "/var/run/netns/" + s
}

func (c *cmd) daemon(rc daemon.RunConfig) error {
	rc.Socket = control.SocketPath(c.socket)
	rc.Netns = netnsPath(rc.Netns)
	rc.Log = c.errw
	// The first SIGINT/SIGTERM shuts down cleanly; a second one exits at once.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
			return
		}
		select {
		case <-sig:
			fmt.Fprintln(c.errw, "vswitch: second signal: exiting without cleanup")
			os.Exit(130)
		case <-time.After(30 * time.Second):
			fmt.Fprintln(c.errw, "vswitch: shutdown takes too long: exiting")
			os.Exit(1)
		}
	}()
	return daemon.Run(ctx, rc)
}

func (c *cmd) portCommand() *cobra.Command {
	return group(&cobra.Command{
		Use:   "port",
		Short: "attach, create, detach and list ports",
		Example: `  vswitch port attach veth0
  vswitch port add tap0
  vswitch port add vx0 --type vxlan --vni 42 --remote 192.0.2.2
  vswitch port show -s`,
	},
		c.attachCommand("attach", "attach an existing interface (AF_PACKET) or TAP device"),
		c.addCommand(),
		c.detachCommand("detach", "detach a port, restoring its interface"),
		c.portShowCommand(),
	)
}

// attachCommand is `port attach` and its short form `attach`.
func (c *cmd) attachCommand(name, short string) *cobra.Command {
	var p control.PortAttachParams
	cc := &cobra.Command{
		Use:   name + " IFACE",
		Short: short,
		Example: `  vswitch port attach veth0
  vswitch port attach eth1 --queues 2 --may-exist
  vswitch port attach eth2 --type afxdp --xdp-mode native
  vswitch attach veth1`,
		Args:              nArgs(1, "port attach: want one interface name"),
		ValidArgsFunction: noCompletion,
		RunE: func(_ *cobra.Command, args []string) error {
			p.Name = args[0]
			return c.portAttach(p)
		},
	}
	f := cc.Flags()
	f.StringVar(&p.Type, "type", "", "afpacket (any interface, the default), afxdp (AF_XDP, the fast path for NICs) or tap (an existing TAP device)")
	f.IntVar(&p.Queues, "queues", 0, "queues (default: the interface's)")
	f.StringVar(&p.BusyPoll, "busy-poll", "", "busy-poll window of this port (such as 50us, 2ms; 0: none; default: the daemon's)")
	f.IntVar(&p.RingFrames, "ring-size", 0, "receive ring slots per queue (afpacket: 2 KiB each, default 192), or each ring's size (afxdp; a power of two, default 512)")
	f.StringVar(&p.XDPMode, "xdp-mode", "", "afxdp: where the XDP program runs: native, generic or auto (default: native where the driver has it)")
	f.StringVar(&p.ZeroCopy, "zero-copy", "", "afxdp: on, off or auto (default: zero-copy where the driver has it)")
	f.BoolVar(&p.MayExist, "may-exist", false, "succeed if the port is attached already")
	completeWords(cc, "type", "afpacket", "afxdp", "tap")
	completeWords(cc, "xdp-mode", "native", "generic", "auto")
	completeWords(cc, "zero-copy", "on", "off", "auto")
	return cc
}

func (c *cmd) addCommand() *cobra.Command {
	var p control.PortAttachParams
	var vni uint32
	cc := &cobra.Command{
		Use:   "add NAME",
		Short: "create a TAP device or a VXLAN tunnel port and attach it",
		Long: `add creates a TAP device (--type tap, the default) or a VXLAN tunnel port
(--type vxlan: frames to a station learned behind a remote VTEP go to it,
floods go to every --remote; see docs/vxlan.md) and attaches it.`,
		Example: `  vswitch port add tap0
  vswitch port add tap1 --queues 2
  vswitch port add vx0 --type vxlan --vni 42 --remote 192.0.2.2,192.0.2.3`,
		Args:              nArgs(1, "port add: want the name of the port to create"),
		ValidArgsFunction: noCompletion,
		RunE: func(cc *cobra.Command, args []string) error {
			vxlanFlags := cc.Flags().Changed("vni") || len(p.Remote) > 0 || p.Local != "" || p.DstPort != 0 || p.TTL != 0
			switch p.Type {
			case "", "tap":
				if vxlanFlags {
					return usagef("--vni, --remote, --local, --dstport and --ttl are for --type vxlan")
				}
				p.Type, p.Create = "tap", true
			case "vxlan":
				if !cc.Flags().Changed("vni") {
					return usagef("port add %s: a VXLAN port needs --vni N (and --remote IP[,IP...])", args[0])
				}
				p.VNI = &vni
			default:
				return usagef("port add creates TAP devices and VXLAN ports, not %s: attach existing interfaces with port attach", p.Type)
			}
			p.Name = args[0]
			return c.portAttach(p)
		},
	}
	f := cc.Flags()
	f.StringVar(&p.Type, "type", "tap", "what to create: tap or vxlan")
	f.IntVar(&p.Queues, "queues", 0, "queues (tap; default 1)")
	f.StringVar(&p.BusyPoll, "busy-poll", "", "busy-poll window of this port (such as 50us, 2ms; 0: none; default: the daemon's)")
	f.BoolVar(&p.MayExist, "may-exist", false, "succeed if the port is attached already")
	f.Uint32Var(&vni, "vni", 0, "VXLAN network identifier, 0 to 16777215 (vxlan)")
	f.StringSliceVar(&p.Remote, "remote", nil, "remote VTEPs that floods go to, comma-separated (vxlan)")
	f.StringVar(&p.Local, "local", "", "local underlay address (vxlan; default: the route's)")
	f.IntVar(&p.DstPort, "dstport", 0, "UDP port (vxlan; default 4789)")
	f.IntVar(&p.TTL, "ttl", 0, "TTL of the outer IP header (vxlan; default 64)")
	completeWords(cc, "type", "tap", "vxlan")
	return cc
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func (c *cmd) portAttach(p control.PortAttachParams) error {
	var r control.Port
	if err := c.call(control.MethodPortAttach, p, &r); err != nil {
		return err
	}
	return c.emit(r, func(w io.Writer) {
		fmt.Fprintf(w, "port %s attached at index %d (%s, %s)\n", r.Name, r.Index, r.Type, plural(r.Queues, "queue"))
		if r.XDP != "" {
			fmt.Fprintf(w, "  %s\n", r.XDP)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	})
}

// detachCommand is `port detach` and its short form `detach`.
func (c *cmd) detachCommand(name, short string) *cobra.Command {
	var p control.PortDetachParams
	cc := &cobra.Command{
		Use:   name + " IFACE",
		Short: short,
		Example: `  vswitch port detach veth0
  vswitch port detach tap0 --if-exists`,
		Args:              nArgs(1, "port detach: want one interface name"),
		ValidArgsFunction: c.completePorts,
		RunE: func(_ *cobra.Command, args []string) error {
			p.Name = args[0]
			var r control.PortDetachResult
			if err := c.call(control.MethodPortDetach, p, &r); err != nil {
				return err
			}
			return c.emit(map[string]any{"detached": p.Name, "absent": r.Absent}, func(w io.Writer) {
				if r.Absent {
					fmt.Fprintf(w, "port %s is not attached: nothing to detach\n", p.Name)
				} else {
					fmt.Fprintf(w, "port %s detached\n", p.Name)
				}
			})
		},
	}
	cc.Flags().BoolVar(&p.IfExists, "if-exists", false, "succeed if no such port is attached")
	return cc
}

func (c *cmd) portShowCommand() *cobra.Command {
	var p control.PortShowParams
	cc := &cobra.Command{
		Use:   "show",
		Short: "list the ports (-s: with counters)",
		Example: `  vswitch port show
  vswitch port show -s -j`,
		Args: noArgs("port show"),
		RunE: func(*cobra.Command, []string) error {
			var r control.PortShowResult
			if err := c.call(control.MethodPortShow, p, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) { printPorts(w, r.Ports, p.Stats) })
		},
	}
	cc.Flags().BoolVarP(&p.Stats, "stats", "s", false, "with counters")
	return cc
}

func state(p control.Port) string {
	switch {
	case p.NotRestored:
		return "not-restored"
	case p.Gone:
		return "gone"
	case p.Up:
		return "up"
	}
	return "down"
}

func offload(p control.Port) string {
	if p.Offload {
		return "tso,csum"
	}
	return "-"
}

func busyPoll(p control.Port) string {
	if p.BusyPoll == "" {
		return "-"
	}
	return p.BusyPoll
}

func printPorts(w io.Writer, ports []control.Port, stats bool) {
	if stats {
		fmt.Fprintln(w, "INDEX\tNAME\tTYPE\tSTATE\tRX_PACKETS\tRX_BYTES\tTX_PACKETS\tTX_BYTES\tDROPS")
	} else {
		fmt.Fprintln(w, "INDEX\tNAME\tTYPE\tQUEUES\tMTU\tSTATE\tOFFLOAD\tBUSY_POLL")
	}
	for _, p := range ports {
		if stats && p.Stats != nil {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Index, p.Name, p.Type, state(p),
				p.Stats.RxPackets, p.Stats.RxBytes, p.Stats.TxPackets, p.Stats.TxBytes, kv(p.Stats.Drops))
		} else {
			fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Index, p.Name, p.Type, p.Queues, p.MTU, state(p), offload(p), busyPoll(p))
		}
	}
}

func kv(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func (c *cmd) progCommand() *cobra.Command {
	dump := group(&cobra.Command{
		Use:   "dump",
		Short: "print the installed program: xlated (eBPF) or jited (x86-64)",
	},
		c.progDumpCommand("xlated", "the program's eBPF instructions, with map names and source lines"),
		c.progDumpCommand("jited", "the machine code the JIT made, under the instructions it came from"),
	)
	return group(&cobra.Command{
		Use:   "prog",
		Short: "load, show, dump and run forwarding programs",
		Example: `  vswitch prog load examples/acl.o
  vswitch prog show
  vswitch prog dump xlated
  vswitch prog run examples/learn.o --data-in frame.bin`,
	},
		c.progLoadCommand(),
		c.progShowCommand(),
		dump,
		c.progLogCommand(),
		c.progRunCommand(),
	)
}

func (c *cmd) progLoadCommand() *cobra.Command {
	var p control.ProgLoadParams
	cc := &cobra.Command{
		Use:   "load FILE.o",
		Short: "load an object and install its program (maps shared by name keep their contents)",
		Long: `load reads an eBPF object built with clang -target bpf and installs its
program in the running switch, replacing the one there: workers switch over
between two batches, no frame is lost. Maps of the new object named like
maps of the old one keep their contents. With several programs in the object,
--section picks one (by function or section name); the others are not used.`,
		Example: `  vswitch prog load examples/acl.o
  vswitch prog load prog.o --section classify --engine interp
  vswitch prog load vale.o --compat vale-bpf`,
		Args:              nArgs(1, "prog load: want one object file"),
		ValidArgsFunction: objectFiles,
		RunE: func(_ *cobra.Command, args []string) error {
			obj, err := readObject(args[0])
			if err != nil {
				return err
			}
			p.Object, p.File = obj, filepath.Base(args[0])
			var r control.Program
			if err := c.call(control.MethodProgLoad, p, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) {
				fmt.Fprintf(w, "program %s loaded from %s (id %d, %s, %d instructions", r.Name, r.File, r.ID, r.Engine, r.Instructions)
				if r.JitedBytes > 0 {
					fmt.Fprintf(w, ", %d bytes of machine code", r.JitedBytes)
				}
				fmt.Fprintln(w, ")")
				if len(r.Reused) > 0 {
					fmt.Fprintf(w, "kept the contents of maps: %s\n", strings.Join(r.Reused, ", "))
				}
			})
		},
	}
	f := cc.Flags()
	f.StringVar(&p.Section, "section", "", "program to install, by function or section name (default: the only one, or the one named like the file)")
	f.StringVar(&p.Engine, "engine", "", "jit (default where supported) or interp")
	f.StringVar(&p.Compat, "compat", "", "vale-bpf: a VALE-BPF object (legacy maps section, VALE's helper numbers)")
	completeWords(cc, "engine", "jit", "interp")
	completeWords(cc, "compat", "vale-bpf")
	return cc
}

func (c *cmd) progShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "describe the installed program, with its run and fault counters",
		Args:  noArgs("prog show"),
		RunE: func(*cobra.Command, []string) error {
			var r control.Program
			if err := c.call(control.MethodProgShow, nil, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tFILE\tENGINE\tINSNS\tJITED\tMAPS\tRUNS\tFAULTS")
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\n", r.ID, r.Name, r.File, r.Engine, r.Instructions,
					r.JitedBytes, strings.Join(r.Maps, ","), r.Runs, r.Faults)
				var kinds []string
				for k := range r.FaultsByKind {
					kinds = append(kinds, k)
				}
				sort.Strings(kinds)
				for _, k := range kinds {
					fmt.Fprintf(w, "  fault: %s\t%d\n", k, r.FaultsByKind[k])
				}
			})
		},
	}
}

func (c *cmd) progDumpCommand(kind, short string) *cobra.Command {
	return &cobra.Command{
		Use:     kind,
		Short:   short,
		Example: "  vswitch prog dump " + kind,
		Args:    noArgs("prog dump " + kind),
		RunE: func(*cobra.Command, []string) error {
			var r control.TextResult
			if err := c.call(control.MethodProgDump, control.ProgDumpParams{Kind: kind}, &r); err != nil {
				return err
			}
			return c.emit(r, func(io.Writer) { io.WriteString(c.out, r.Text) })
		},
	}
}

func (c *cmd) progLogCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "log",
		Short: "the program's bpf_trace_printk lines",
		Args:  noArgs("prog log"),
		RunE: func(*cobra.Command, []string) error {
			var r control.LogResult
			if err := c.call(control.MethodProgLog, nil, &r); err != nil {
				return err
			}
			return c.emit(r, func(io.Writer) {
				if r.Dropped > 0 {
					fmt.Fprintf(c.out, "(%d older lines were overwritten)\n", r.Dropped)
				}
				for _, l := range r.Lines {
					fmt.Fprintln(c.out, l)
				}
			})
		},
	}
}

// parseBytes reads `[hex] BYTES...` up to a stop word. Hex tokens may hold
// several bytes ("0a0b"); without `hex`, tokens are decimal bytes.
func parseBytes(what string, args []string, stop ...string) ([]byte, []string, error) {
	isHex := false
	if len(args) > 0 && args[0] == "hex" {
		isHex, args = true, args[1:]
	}
	var out []byte
	i := 0
loop:
	for ; i < len(args); i++ {
		for _, s := range stop {
			if args[i] == s {
				break loop
			}
		}
		tok := args[i]
		if isHex {
			tok = strings.TrimPrefix(strings.ReplaceAll(tok, ":", ""), "0x")
			if len(tok)%2 == 1 {
				tok = "0" + tok
			}
			b, err := hex.DecodeString(tok)
			if err != nil {
				return nil, nil, usagef("%s: %q is not hex", what, args[i])
			}
			out = append(out, b...)
		} else {
			v, err := strconv.ParseUint(tok, 0, 8)
			if err != nil {
				return nil, nil, usagef("%s: %q is not a byte (0..255; write `hex` before hex bytes)", what, args[i])
			}
			out = append(out, byte(v))
		}
	}
	if len(out) == 0 {
		return nil, nil, usagef("%s: no bytes given", what)
	}
	return out, args[i:], nil
}

func hexBytes(b []byte) string {
	var parts []string
	for _, x := range b {
		parts = append(parts, fmt.Sprintf("%02x", x))
	}
	return strings.Join(parts, " ")
}

const keyHelp = `A key or value is given as bytes: decimal (1 2 255) or, after the word hex,
hex (hex 0a 00 00 01, or hex 0a000001); or, where the object has BTF for the
map, as typed JSON after the word json (json '{"addr":"02:00:00:00:00:01"}').`

func (c *cmd) mapCommand() *cobra.Command {
	return group(&cobra.Command{
		Use:   "map",
		Short: "show, dump, look up, update and delete map entries; follow ring buffers",
		Example: `  vswitch map show
  vswitch map dump fdb
  vswitch map lookup fdb key hex 02 00 00 00 00 01`,
	},
		c.mapShowCommand(),
		c.mapDumpCommand(),
		c.mapEntryCommand("lookup", "print one entry", `  vswitch map lookup fdb key hex 02 00 00 00 00 01
  vswitch map lookup fdb key json '{"addr":"02:00:00:00:00:01"}'`),
		c.mapEntryCommand("update", "add or change an entry", `  vswitch map update blocklist key hex 18000000 0a420000 value 5 0 0 0
  vswitch map update ports key json 11 value json '{"port": 3, "valid": 1}' noexist`),
		c.mapEntryCommand("delete", "remove an entry", `  vswitch map delete fdb key hex 02:00:00:00:00:01`),
		c.mapReadCommand(),
	)
}

func (c *cmd) mapShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "list the installed program's maps",
		Args:  noArgs("map show"),
		RunE: func(*cobra.Command, []string) error {
			var r control.MapShowResult
			if err := c.call(control.MethodMapShow, nil, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tTYPE\tKEY\tVALUE\tMAX_ENTRIES\tENTRIES")
				for _, m := range r.Maps {
					n := "-"
					if m.Entries >= 0 {
						n = strconv.Itoa(m.Entries)
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\n", m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, n)
				}
			})
		},
	}
}

func (c *cmd) mapDumpCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "dump NAME",
		Short:             "print every entry of a map",
		Example:           "  vswitch map dump fdb\n  vswitch -j map dump blocklist",
		Args:              nArgs(1, "map dump: want a map name"),
		ValidArgsFunction: c.completeMaps,
		RunE: func(_ *cobra.Command, args []string) error {
			var r control.MapDumpResult
			if err := c.call(control.MethodMapDump, control.MapParams{Name: args[0]}, &r); err != nil {
				return err
			}
			js := make([]jsonEntry, 0, len(r.Entries))
			for _, e := range r.Entries {
				js = append(js, toJSONEntry(e))
			}
			return c.emit(js, func(w io.Writer) {
				for _, e := range r.Entries {
					printEntry(w, e)
				}
				fmt.Fprintf(w, "Found %d elements\n", len(r.Entries))
			})
		},
	}
}

func (c *cmd) mapReadCommand() *cobra.Command {
	var p control.RingbufParams
	cc := &cobra.Command{
		Use:   "read NAME",
		Short: "follow a ring buffer's records until Ctrl-C",
		Long: `read prints the records a program sends on a ring buffer map, as they come,
until Ctrl-C. Records are decoded as fields by BTF when the object describes
them: the type named by --type (a struct of the object, as bpf2go -type
names it), else the ring buffer's own __type(value, struct ...) in its
definition; else they print in hex.`,
		Example:           "  vswitch map read events\n  vswitch map read events --type new_ethertype -j",
		Args:              nArgs(1, "map read: want a ring buffer map name"),
		ValidArgsFunction: c.completeMaps,
		RunE: func(_ *cobra.Command, args []string) error {
			p.Name, p.Fields = args[0], true
			return c.ringbuf(p)
		},
	}
	cc.Flags().StringVar(&p.Type, "type", "", "decode records as this BTF type of the object (struct name)")
	return cc
}

// mapEntryCommand is map lookup, update and delete: NAME key [hex|json]
// BYTES... [value [hex|json] BYTES... [any|exist|noexist]].
func (c *cmd) mapEntryCommand(verb, short, example string) *cobra.Command {
	use := verb + " NAME key [hex|json] KEY..."
	long := verb + " " + short + ".\n\n" + keyHelp
	if verb == "update" {
		use += " value [hex|json] VALUE... [any|exist|noexist]"
		long += "\n\nany (the default) adds or replaces, noexist only adds, exist only replaces."
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long,
		Example:           example,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: c.completeMaps,
		RunE:              func(_ *cobra.Command, args []string) error { return c.mapEntry(verb, args) },
	}
}

func (c *cmd) mapEntry(verb string, args []string) error {
	if len(args) < 3 || args[1] != "key" {
		return usagef("map %s: want NAME key [hex] BYTES...", verb)
	}
	p := control.MapParams{Name: args[0]}
	var rest []string
	var err error
	if args[2] == "json" {
		if len(args) < 4 || !json.Valid([]byte(args[3])) {
			return usagef("map %s: `key json` wants one JSON argument, such as '{\"addr\":\"02:00:00:00:00:01\"}'", verb)
		}
		p.KeyFields, rest = json.RawMessage(args[3]), args[4:]
	} else if p.Key, rest, err = parseBytes("key", args[2:], "value", "any", "exist", "noexist"); err != nil {
		return err
	}
	if verb == "update" {
		if len(rest) < 2 || rest[0] != "value" {
			return usagef("map update: want NAME key [hex|json] BYTES... value [hex|json] BYTES... [any|exist|noexist]")
		}
		if rest[1] == "json" {
			if len(rest) < 3 || !json.Valid([]byte(rest[2])) {
				return usagef("map update: `value json` wants one JSON argument")
			}
			p.ValueFields, rest = json.RawMessage(rest[2]), rest[3:]
		} else if p.Value, rest, err = parseBytes("value", rest[1:], "any", "exist", "noexist"); err != nil {
			return err
		}
		if len(rest) > 0 {
			p.Flags, rest = rest[0], rest[1:]
		}
	}
	if len(rest) > 0 {
		return usagef("map %s: unexpected %q", verb, rest)
	}
	method := map[string]string{"lookup": control.MethodMapLookup, "update": control.MethodMapUpdate, "delete": control.MethodMapDelete}[verb]
	var r control.MapEntry
	if err := c.call(method, p, &r); err != nil {
		return err
	}
	var js any = toJSONEntry(r)
	if verb == "delete" {
		js = map[string]hexArray{"key": p.Key}
		if p.Key == nil {
			js = map[string]json.RawMessage{"key": p.KeyFields}
		}
	}
	return c.emit(js, func(w io.Writer) {
		switch verb {
		case "lookup":
			printEntry(w, r)
		case "update":
			fmt.Fprintln(w, "updated")
		case "delete":
			fmt.Fprintln(w, "deleted")
		}
	})
}

func (c *cmd) ringbuf(p control.RingbufParams) error {
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var res control.RingbufResult
	rc, err := c.client().Stream(ctx, control.MethodRingbufRead, p, &res)
	if control.CodeOf(err) == control.CodeBadRequest && p.Type == "" && strings.Contains(err.Error(), "unknown field") {
		// A daemon from before decoding: raw records.
		p.Fields = false
		rc, err = c.client().Stream(ctx, control.MethodRingbufRead, p, &res)
	}
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); rc.Close() }()
	defer rc.Close()
	switch {
	case res.Type != "" && !c.json:
		fmt.Fprintf(c.errw, "records of %s as %s (Ctrl-C to stop)\n", p.Name, res.Type)
	case !c.json:
		fmt.Fprintf(c.errw, "records of %s in hex (Ctrl-C to stop)\n", p.Name)
	}
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			return nil
		}
		b := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(rc, b); err != nil {
			return nil
		}
		rec := control.RingbufRecord{Record: b}
		if p.Fields {
			if err := json.Unmarshal(b, &rec); err != nil {
				return fmt.Errorf("map read %s: bad record from the daemon: %w", p.Name, err)
			}
		}
		if c.json {
			out, _ := json.Marshal(struct {
				Record    hexArray        `json:"record"`
				Formatted json.RawMessage `json:"formatted,omitempty"`
			}{rec.Record, rec.Fields})
			fmt.Fprintf(c.out, "%s\n", out)
		} else if len(rec.Fields) > 0 {
			fmt.Fprintf(c.out, "%s\n", rec.Fields)
		} else {
			fmt.Fprintln(c.out, hexBytes(rec.Record))
		}
	}
}

func (c *cmd) fdbCommand() *cobra.Command {
	show := &cobra.Command{
		Use:     "show",
		Short:   "list learned MAC addresses with their port, age and (behind a VXLAN port) remote VTEP",
		Example: "  vswitch fdb show\n  vswitch fdb show -j",
		Args:    noArgs("fdb show"),
		RunE: func(*cobra.Command, []string) error {
			var r control.FDBResult
			if err := c.call(control.MethodFDBShow, nil, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) {
				fmt.Fprintln(w, "MAC\tPORT\tNAME\tAGE\tREMOTE")
				for _, e := range r.Entries {
					age, remote := fmt.Sprintf("%.1fs", e.Age), "-"
					if e.Static {
						age = "static"
					}
					if e.Remote != "" {
						remote = e.Remote
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", e.MAC, e.Port, e.PortName, age, remote)
				}
			})
		},
	}
	flush := &cobra.Command{
		Use:   "flush",
		Short: "forget every learned address (static entries stay)",
		Args:  noArgs("fdb flush"),
		RunE: func(*cobra.Command, []string) error {
			if err := c.call(control.MethodFDBFlush, nil, nil); err != nil {
				return err
			}
			return c.emit(map[string]bool{"flushed": true}, func(w io.Writer) { fmt.Fprintln(w, "fdb flushed") })
		},
	}
	add := &cobra.Command{
		Use:   "add MAC port VXPORT remote IP",
		Short: "a static remote station: frames to MAC go out of VXLAN port VXPORT to VTEP IP only",
		Long: `add puts a static entry in a VXLAN port's station table (and the learning
program's): what an EVPN control plane pushes. Learning never changes it;
fdb flush keeps it; fdb del removes it.`,
		Example: "  vswitch fdb add 02:00:00:00:00:07 port vx0 remote 192.0.2.3",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 5 || args[1] != "port" || args[3] != "remote" {
				return usagef("fdb add: want MAC port VXPORT remote IP (a station behind a VXLAN port)")
			}
			return nil
		},
		ValidArgsFunction: noCompletion,
		RunE: func(_ *cobra.Command, args []string) error {
			p := control.FDBAddParams{MAC: args[0], Port: args[2], Remote: args[4]}
			if err := c.call(control.MethodFDBAdd, p, nil); err != nil {
				return err
			}
			return c.emit(p, func(w io.Writer) { fmt.Fprintf(w, "%s is behind %s at %s (static)\n", p.MAC, p.Port, p.Remote) })
		},
	}
	del := &cobra.Command{
		Use:     "del MAC [port PORT]",
		Short:   "forget a station (learned or static), on one port or all",
		Example: "  vswitch fdb del 02:00:00:00:00:07\n  vswitch fdb del 02:00:00:00:00:07 port vx0",
		Args: func(_ *cobra.Command, args []string) error {
			if !(len(args) == 1 || len(args) == 3 && args[1] == "port") {
				return usagef("fdb del: want MAC [port PORT]")
			}
			return nil
		},
		ValidArgsFunction: noCompletion,
		RunE: func(_ *cobra.Command, args []string) error {
			p := control.FDBDelParams{MAC: args[0]}
			if len(args) == 3 {
				p.Port = args[2]
			}
			if err := c.call(control.MethodFDBDel, p, nil); err != nil {
				return err
			}
			return c.emit(map[string]string{"deleted": p.MAC}, func(w io.Writer) { fmt.Fprintf(w, "%s deleted\n", p.MAC) })
		},
	}
	return group(&cobra.Command{
		Use:   "fdb",
		Short: "the learning program's MAC table, with the remote stations of VXLAN ports",
	}, show, flush, add, del)
}

func (c *cmd) statsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "stats",
		Short:   "per port and per program counters, drops by reason",
		Example: "  vswitch stats\n  vswitch stats -j",
		Args:    noArgs("stats"),
		RunE: func(*cobra.Command, []string) error {
			var r control.StatsResult
			if err := c.call(control.MethodStats, nil, &r); err != nil {
				return err
			}
			return c.emit(r, func(w io.Writer) {
				printPorts(w, r.Ports, true)
				if p := r.Program; p != nil {
					fmt.Fprintln(w)
					fmt.Fprintln(w, "PROGRAM\tENGINE\tRUNS\tINSNS\tFAULTS")
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d %s\n", p.Name, p.Engine, p.Runs, p.Executed, p.Faults, kv(p.FaultsByKind))
				}
			})
		},
	}
}

func (c *cmd) captureCommand() *cobra.Command {
	var file string
	var p control.CaptureParams
	cc := &cobra.Command{
		Use:   "capture PORT -w FILE|-",
		Short: "write a port's traffic (both directions) as pcap until Ctrl-C",
		Example: `  vswitch capture veth0 -w veth0.pcap
  vswitch capture veth0 -w - | tcpdump -n -r -`,
		Args:              nArgs(1, "capture: want PORT -w FILE|-"),
		ValidArgsFunction: c.completePorts,
		RunE: func(_ *cobra.Command, args []string) error {
			if file == "" {
				return usagef("capture: want PORT -w FILE|-")
			}
			p.Port = args[0]
			return c.capture(p, file)
		},
	}
	f := cc.Flags()
	f.StringVarP(&file, "write", "w", "", "pcap file, - for stdout")
	f.IntVar(&p.Snaplen, "snaplen", 0, "bytes kept per frame (default: all)")
	return cc
}

func (c *cmd) capture(p control.CaptureParams, file string) error {
	var out io.Writer = c.out
	if file != "-" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rc, err := c.client().Stream(ctx, control.MethodCapture, p, nil)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); rc.Close() }()
	n, err := io.Copy(out, rc)
	rc.Close()
	if file != "-" {
		fmt.Fprintf(c.errw, "captured %d bytes of pcap from %s into %s\n", n, p.Port, file)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("capture of %s ended: %w", p.Port, err)
	}
	return nil
}

// Shell completion of arguments.

func noCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

func objectFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"o"}, cobra.ShellCompDirectiveFilterFileExt
}

func completeWords(cc *cobra.Command, flag string, words ...string) {
	cc.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return words, cobra.ShellCompDirectiveNoFileComp
	})
}

// completionClient asks the daemon briefly: completion must not hang the
// shell when no daemon runs.
func (c *cmd) completionCall(method string, result any) bool {
	cl := c.client()
	cl.Timeout = 2 * time.Second
	return cl.Call(c.ctx, method, nil, result) == nil
}

func (c *cmd) completePorts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	var r control.PortShowResult
	if len(args) > 0 || !c.completionCall(control.MethodPortShow, &r) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, p := range r.Ports {
		names = append(names, p.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (c *cmd) completeMaps(cc *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch {
	case len(args) == 0:
	case len(args) == 1 && cc.Name() != "dump" && cc.Name() != "read":
		return []string{"key"}, cobra.ShellCompDirectiveNoFileComp
	default:
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var r control.MapShowResult
	if !c.completionCall(control.MethodMapShow, &r) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, m := range r.Maps {
		names = append(names, m.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
