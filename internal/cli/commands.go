package cli

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
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

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
)

func (c *cmd) daemon(args []string) error {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	var rc daemon.RunConfig
	fs.StringVar(&rc.Socket, "socket", "", "control socket")
	fs.StringVar(&rc.ConfigFile, "config", "", "declarative configuration (JSON)")
	fs.StringVar(&rc.Metrics, "metrics", "", "serve Prometheus metrics on ADDR")
	fs.StringVar(&rc.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&rc.LogFormat, "log-format", "text", "text or json")
	fs.IntVar(&rc.Workers, "workers", 0, "worker goroutines serving every port, and per-CPU map slots (default one per CPU)")
	fs.IntVar(&rc.Workers, "max-workers", 0, "old name of --workers")
	fs.StringVar(&rc.BusyPoll, "busy-poll", "", "longest a worker keeps polling a port after its last frame (default 5ms; 0: none)")
	fs.StringVar(&rc.Engine, "engine", "", "engine of the default program: jit or interp")
	fs.BoolVar(&rc.NoDefault, "no-default-program", false, "start without the built-in learning program")
	fs.StringVar(&rc.Netns, "netns", "", "open ports in the network namespace at PATH")
	fs.IntVar(&rc.Group, "group", 0, "numeric group allowed to use the socket")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("daemon takes no arguments, have %q", pos)
	}
	if rc.Socket == "" {
		rc.Socket = control.SocketPath(c.socket)
	}
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

func (c *cmd) port(args []string) error {
	if len(args) == 0 {
		return usagef("port: want attach, add, detach or show")
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("port", flag.ContinueOnError)
	typ := fs.String("type", "", "afpacket, tap or vxlan")
	queues := fs.Int("queues", 0, "queues")
	busyPoll := fs.String("busy-poll", "", "busy-poll window of this port (e.g. 50us, 2ms; 0: none)")
	ringSize := fs.Int("ring-size", 0, "receive ring slots per queue (afpacket; default 128)")
	mayExist := fs.Bool("may-exist", false, "")
	ifExists := fs.Bool("if-exists", false, "")
	stats := fs.Bool("s", false, "with counters")
	vni := fs.String("vni", "", "VXLAN network identifier (vxlan)")
	var remotes []string
	fs.Func("remote", "remote VTEPs, comma-separated (vxlan; repeatable)", func(v string) error { remotes = append(remotes, v); return nil })
	local := fs.String("local", "", "local underlay address (vxlan)")
	dstport := fs.Int("dstport", 0, "UDP port (vxlan; default 4789)")
	ttl := fs.Int("ttl", 0, "outer TTL (vxlan; default 64)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch verb {
	case "attach", "add":
		if len(pos) != 1 {
			return usagef("port %s: want one interface name", verb)
		}
		p := control.PortAttachParams{Name: pos[0], Type: *typ, Queues: *queues, MayExist: *mayExist,
			BusyPoll: *busyPoll, RingFrames: *ringSize, Remote: remotes, Local: *local, DstPort: *dstport, TTL: *ttl}
		if *vni != "" {
			v, err := strconv.ParseUint(*vni, 0, 32)
			if err != nil {
				return usagef("--vni %q: want a number from 0 to 16777215", *vni)
			}
			v32 := uint32(v)
			p.VNI = &v32
		}
		if *typ == "vxlan" && p.VNI == nil {
			return usagef("port %s: a vxlan port needs --vni N and --remote IP[,IP...]", verb)
		}
		if *typ != "vxlan" && (p.VNI != nil || len(remotes) > 0 || *local != "" || *dstport != 0 || *ttl != 0) {
			return usagef("--vni, --remote, --local, --dstport and --ttl are for --type vxlan")
		}
		if verb == "add" {
			switch *typ {
			case "tap":
				p.Create = true
			case "vxlan":
			default:
				return usagef("port add creates TAP devices (--type tap) and VXLAN ports (--type vxlan): attach existing interfaces with port attach")
			}
		}
		var r control.Port
		if err := c.call(control.MethodPortAttach, p, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) {
			fmt.Fprintf(w, "port %s attached at index %d (%s, %d queues)\n", r.Name, r.Index, r.Type, r.Queues)
		})
	case "detach":
		if len(pos) != 1 {
			return usagef("port detach: want one interface name")
		}
		if err := c.call(control.MethodPortDetach, control.PortDetachParams{Name: pos[0], IfExists: *ifExists}, nil); err != nil {
			return err
		}
		return c.emit(map[string]string{"detached": pos[0]}, func(w io.Writer) { fmt.Fprintf(w, "port %s detached\n", pos[0]) })
	case "show":
		if len(pos) != 0 {
			return usagef("port show takes no arguments")
		}
		var r control.PortShowResult
		if err := c.call(control.MethodPortShow, control.PortShowParams{Stats: *stats}, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) { printPorts(w, r.Ports, *stats) })
	}
	return usagef("port: unknown verb %q (attach, add, detach, show)", verb)
}

func state(p control.Port) string {
	switch {
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

func (c *cmd) prog(args []string) error {
	if len(args) == 0 {
		return usagef("prog: want load, show, dump, log or run")
	}
	verb, args := args[0], args[1:]
	if verb == "run" {
		return c.progRun(args)
	}
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	section := fs.String("section", "", "program (function or section name)")
	engine := fs.String("engine", "", "jit or interp")
	compat := fs.String("compat", "", "vale-bpf")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch verb {
	case "load":
		if len(pos) != 1 {
			return usagef("prog load: want one object file")
		}
		obj, err := readObject(pos[0])
		if err != nil {
			return err
		}
		var r control.Program
		if err := c.call(control.MethodProgLoad, control.ProgLoadParams{Object: obj, File: filepath.Base(pos[0]),
			Section: *section, Engine: *engine, Compat: *compat}, &r); err != nil {
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
	case "show":
		var r control.Program
		if err := c.call(control.MethodProgShow, nil, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tNAME\tFILE\tENGINE\tINSNS\tJITED\tMAPS\tRUNS\tFAULTS")
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\n", r.ID, r.Name, r.File, r.Engine, r.Instructions,
				r.JitedBytes, strings.Join(r.Maps, ","), r.Runs, r.Faults)
			for k, n := range r.FaultsByKind {
				fmt.Fprintf(w, "  fault: %s\t%d\n", k, n)
			}
		})
	case "dump":
		if len(pos) != 1 || (pos[0] != "xlated" && pos[0] != "jited") {
			return usagef("prog dump: want xlated or jited")
		}
		var r control.TextResult
		if err := c.call(control.MethodProgDump, control.ProgDumpParams{Kind: pos[0]}, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) { io.WriteString(c.out, r.Text) })
	case "log":
		var r control.LogResult
		if err := c.call(control.MethodProgLog, nil, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) {
			if r.Dropped > 0 {
				fmt.Fprintf(c.out, "(%d older lines were overwritten)\n", r.Dropped)
			}
			for _, l := range r.Lines {
				fmt.Fprintln(c.out, l)
			}
		})
	}
	return usagef("prog: unknown verb %q (load, show, dump, log, run)", verb)
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

func (c *cmd) mapCmd(args []string) error {
	if len(args) == 0 {
		return usagef("map: want show, dump, lookup, update, delete or read")
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "show":
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
	case "dump":
		if len(args) != 1 {
			return usagef("map dump: want a map name")
		}
		var r control.MapDumpResult
		if err := c.call(control.MethodMapDump, control.MapParams{Name: args[0]}, &r); err != nil {
			return err
		}
		return c.emit(r, func(w io.Writer) {
			for _, e := range r.Entries {
				printEntry(w, e)
			}
			fmt.Fprintf(w, "Found %d elements\n", len(r.Entries))
		})
	case "read":
		if len(args) != 1 {
			return usagef("map read: want a ring buffer map name")
		}
		return c.ringbuf(args[0])
	case "lookup", "update", "delete":
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
		return c.emit(r, func(w io.Writer) {
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
	return usagef("map: unknown verb %q (show, dump, lookup, update, delete, read)", verb)
}

// printEntry prints an entry as typed fields where the object has BTF for
// them, else in hex.
func printEntry(w io.Writer, e control.MapEntry) {
	k, v := hexBytes(e.Key), hexBytes(e.Value)
	if len(e.KeyFields) > 0 {
		k = string(e.KeyFields)
	}
	if len(e.ValueFields) > 0 {
		v = string(e.ValueFields)
	}
	fmt.Fprintf(w, "key: %s\tvalue: %s\n", k, v)
}

func (c *cmd) ringbuf(name string) error {
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rc, err := c.client().Stream(ctx, control.MethodRingbufRead, control.RingbufParams{Name: name}, nil)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); rc.Close() }()
	defer rc.Close()
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			return nil
		}
		rec := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(rc, rec); err != nil {
			return nil
		}
		if c.json {
			fmt.Fprintf(c.out, "{\"record\":%q}\n", hex.EncodeToString(rec))
		} else {
			fmt.Fprintln(c.out, hexBytes(rec))
		}
	}
}

func (c *cmd) fdb(args []string) error {
	if len(args) == 0 {
		return usagef("fdb: want show, flush, add or del")
	}
	switch verb, rest := args[0], args[1:]; verb {
	case "show", "flush":
		if len(rest) != 0 {
			return usagef("fdb %s takes no arguments", verb)
		}
		if verb == "flush" {
			if err := c.call(control.MethodFDBFlush, nil, nil); err != nil {
				return err
			}
			return c.emit(map[string]bool{"flushed": true}, func(w io.Writer) { fmt.Fprintln(w, "fdb flushed (static entries kept)") })
		}
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
	case "add":
		// fdb add MAC port PORT remote IP
		if len(rest) != 5 || rest[1] != "port" || rest[3] != "remote" {
			return usagef("fdb add: want MAC port PORT remote IP (a station behind a VXLAN port)")
		}
		p := control.FDBAddParams{MAC: rest[0], Port: rest[2], Remote: rest[4]}
		if err := c.call(control.MethodFDBAdd, p, nil); err != nil {
			return err
		}
		return c.emit(p, func(w io.Writer) { fmt.Fprintf(w, "%s is behind %s at %s (static)\n", p.MAC, p.Port, p.Remote) })
	case "del":
		// fdb del MAC [port PORT]
		if !(len(rest) == 1 || len(rest) == 3 && rest[1] == "port") {
			return usagef("fdb del: want MAC [port PORT]")
		}
		p := control.FDBDelParams{MAC: rest[0]}
		if len(rest) == 3 {
			p.Port = rest[2]
		}
		if err := c.call(control.MethodFDBDel, p, nil); err != nil {
			return err
		}
		return c.emit(map[string]string{"deleted": p.MAC}, func(w io.Writer) { fmt.Fprintf(w, "%s deleted\n", p.MAC) })
	}
	return usagef("fdb: unknown verb %q (show, flush, add, del)", args[0])
}

func (c *cmd) stats(args []string) error {
	if len(args) != 0 {
		return usagef("stats takes no arguments")
	}
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
}

func (c *cmd) capture(args []string) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	file := fs.String("w", "", "pcap file, - for stdout")
	snaplen := fs.Int("snaplen", 0, "bytes kept per frame")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *file == "" {
		return usagef("capture: want PORT -w FILE|-")
	}
	var out io.Writer = c.out
	if *file != "-" {
		f, err := os.Create(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rc, err := c.client().Stream(ctx, control.MethodCapture, control.CaptureParams{Port: pos[0], Snaplen: *snaplen}, nil)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); rc.Close() }()
	n, err := io.Copy(out, rc)
	rc.Close()
	if *file != "-" {
		fmt.Fprintf(c.errw, "captured %d bytes of pcap from %s into %s\n", n, pos[0], *file)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("capture of %s ended: %w", pos[0], err)
	}
	return nil
}
