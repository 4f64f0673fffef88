package cli

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bench/pktgen"
	"github.com/govswitch/vswitch/internal/daemon"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// RunResult is what `prog run` reports.
type RunResult struct {
	Retval   uint64 `json:"retval"`
	Duration int64  `json:"duration"` // average ns per run
	RingNr   uint8  `json:"ring_nr"`
	Engine   string `json:"engine"`
	Error    string `json:"error,omitempty"`
}

// runParams are the flags of `prog run`.
type runParams struct {
	object, dataIn, dataOut, mapInit, section, compat, engine string
	repeat                                                    int
	ingress                                                   uint
}

func (c *cmd) progRunCommand() *cobra.Command {
	var p runParams
	cc := &cobra.Command{
		Use:   "run FILE.o --data-in FILE",
		Short: "run a program locally on one frame, without a daemon (like bpftool prog run)",
		Long: `run loads an object in this process, runs its program on the frame read from
--data-in and prints the return value (0..253 a port, 254 flood, 255 drop)
and the average duration of a run. --map-init fills maps first: one entry a
line, MAPNAME KEYHEX VALUEHEX (see docs/map-init.md).`,
		Example: `  vswitch prog run examples/learn.o --data-in frame.bin
  vswitch prog run examples/learn.o --data-in frame.bin --repeat 1000000 --engine interp
  vswitch -j prog run examples/static.o --data-in frame.bin --map-init init.txt --ingress-port 1`,
		Args:              nArgs(1, "prog run: want FILE.o --data-in FILE"),
		ValidArgsFunction: objectFiles,
		RunE: func(_ *cobra.Command, args []string) error {
			p.object = args[0]
			return c.progRun(p)
		},
	}
	f := cc.Flags()
	f.StringVar(&p.dataIn, "data-in", "", "file holding the frame (required)")
	f.StringVar(&p.dataOut, "data-out", "", "file to write the frame to after the run")
	f.IntVar(&p.repeat, "repeat", 1, "runs (the duration printed is their average)")
	f.StringVar(&p.engine, "engine", "", "jit (default where supported) or interp")
	f.UintVar(&p.ingress, "ingress-port", 0, "ingress port index the program sees, 0..253")
	f.StringVar(&p.mapInit, "map-init", "", "file of `MAPNAME KEYHEX VALUEHEX` lines applied before the run")
	f.StringVar(&p.section, "section", "", "program to run, by function or section name")
	f.StringVar(&p.compat, "compat", "", "vale-bpf: a VALE-BPF object")
	completeWords(cc, "engine", "jit", "interp")
	completeWords(cc, "compat", "vale-bpf")
	return cc
}

// progRun runs a program locally on a frame, like `bpftool prog run`.
func (c *cmd) progRun(p runParams) error {
	if p.dataIn == "" {
		return usagef("prog run: want FILE.o --data-in FILE")
	}
	if p.repeat < 1 || p.repeat > 100_000_000 {
		return usagef("prog run: --repeat must be 1..100000000")
	}
	if p.ingress > 253 {
		return usagef("prog run: --ingress-port must be 0..253")
	}
	frame, err := os.ReadFile(p.dataIn)
	if err != nil {
		return err
	}
	obj, err := readObject(p.object)
	if err != nil {
		return err
	}
	opts := loader.Options{ObjectName: strings.SplitN(filepath.Base(p.object), ".", 2)[0]}
	if p.section != "" {
		opts.Programs = []string{p.section} // the others need not be runnable
	}
	if p.compat == "vale-bpf" {
		opts.Compat = loader.CompatVALEBPF
	} else if p.compat != "" {
		return usagef("prog run: unknown --compat %q", p.compat)
	}
	coll, err := loader.LoadReader(strings.NewReader(string(obj)), opts)
	if err != nil {
		return fmt.Errorf("%s: %w", p.object, err)
	}
	defer coll.Close()
	prog, _, err := daemon.PickProgram(coll, p.section, opts.ObjectName)
	if err != nil {
		return err
	}
	if p.mapInit != "" {
		if err := initMaps(coll.Maps, p.mapInit); err != nil {
			return err
		}
	}
	var runner vm.Runner = prog
	eng := "interp"
	if p.engine == "jit" || p.engine == "" && jitAvailable() {
		for _, cp := range coll.Programs {
			code, err := jit.Compile(cp)
			if err != nil {
				return fmt.Errorf("jit: %w: use --engine interp", err)
			}
			defer code.Close()
			cp.Native.Store(&vm.Native{Runner: code, Size: code.Size()})
			if cp == prog {
				runner = code
			}
		}
		eng = "jit"
	} else if p.engine != "" && p.engine != "interp" {
		return usagef("prog run: unknown --engine %q (jit or interp)", p.engine)
	}
	res, out := runFrame(runner, frame, uint32(p.ingress), p.repeat)
	res.Engine = eng
	if p.dataOut != "" {
		if err := os.WriteFile(p.dataOut, out, 0o644); err != nil {
			return err
		}
	}
	if err := c.emit(res, func(w io.Writer) {
		if res.Error != "" {
			fmt.Fprintf(w, "Fault: %s\n", res.Error)
			return
		}
		fmt.Fprintf(w, "Return value: %d, duration (average): %dns\n", res.Retval, res.Duration)
	}); err != nil {
		return err
	}
	if res.Error != "" {
		return exitError(1)
	}
	return nil
}

// runFrame runs r repeat times on a fresh copy of frame and returns what
// the last run returned, the average time of a run and the frame as the
// last run left it. It is all of the measuring `prog run` does.
func runFrame(r vm.Runner, frame []byte, ingress uint32, repeat int) (RunResult, []byte) {
	env := vm.NewEnv()
	buf := append([]byte(nil), frame...)
	var res RunResult
	// The engine's own repeat loop, timed as a whole: the duration is the
	// engine's, as bpftool prog run's is the kernel's.
	out, mean := env.RunRepeat(r, buf, ingress, repeat)
	if err := out.Err(); err != nil {
		res.Error = err.Error()
	} else {
		res.Retval, res.RingNr = out.R0, out.RingNr
	}
	res.Duration = int64(mean)
	return res, buf
}

func jitAvailable() bool {
	_, err := jit.Compile(vm.MustLoad([]asm.Instruction{{Op: asm.OpExit}}, vm.Options{}))
	return !errors.Is(err, jit.ErrNotSupported)
}

// initMaps applies `MAPNAME KEYHEX VALUEHEX` lines (docs/map-init.md).
func initMaps(ms map[string]maps.Map, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			return fmt.Errorf("%s:%d: want MAPNAME KEYHEX VALUEHEX", path, n)
		}
		m, ok := ms[parts[0]]
		if !ok {
			return fmt.Errorf("%s:%d: no map %q in the object", path, n, parts[0])
		}
		k, err1 := hex.DecodeString(parts[1])
		v, err2 := hex.DecodeString(parts[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%s:%d: key and value must be hex strings", path, n)
		}
		if s := m.Spec(); (s.Type == maps.PerCPUArray || s.Type == maps.PerCPUHash) && len(v) == int(s.ValueSize) {
			// One value for a per-CPU map: every slot gets it.
			stride := int(s.ValueSize+7) &^ 7
			all := make([]byte, stride*max(s.CPUs, 1))
			for off := 0; off < len(all); off += stride {
				copy(all[off:], v)
			}
			v = all
		}
		if err := m.Update(k, v, maps.UpdateAny); err != nil {
			return fmt.Errorf("%s:%d: map %s: %w", path, n, parts[0], err)
		}
	}
	return sc.Err()
}

func (c *cmd) pktgenCommand() *cobra.Command {
	var a pktgen.Args
	cc := &cobra.Command{
		Use:   "pktgen -i IFACE",
		Short: "packet generator and receiver: UDP/IPv4 test frames, rates, loss and latency",
		Long:  pktgen.Description,
		Example: `  vswitch pktgen -i veth1 -r 100000 -d 5s
  vswitch pktgen -i veth2 --mode rx -d 5s
  vswitch pktgen --netns gen -i eth0 -s 1514 -f 64 -n 1M -j`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("pktgen: unexpected argument %q: options only", args[0])
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			a.JSON = c.json
			o, err := a.Options()
			if err != nil {
				return usagef("pktgen: %v", err)
			}
			ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if code := pktgen.Exec(ctx, o, c.out, c.errw); code != 0 {
				return exitError(code)
			}
			return nil
		},
	}
	f := cc.Flags()
	f.SortFlags = false // in the order of pktgen.Usage
	for _, fl := range a.Flags() {
		switch {
		case fl.Long == "json":
			// the global -j/--json
		case fl.Bool != nil:
			f.BoolVarP(fl.Bool, fl.Long, fl.Short, false, fl.Usage)
		default:
			f.VarP(placeholder{fl.Str, fl.Value}, fl.Long, fl.Short, fl.Usage)
		}
	}
	completeWords(cc, "mode", "tx", "rx")
	completeWords(cc, "tx-mode", "sendmmsg", "ring")
	return cc
}

// placeholder is a string flag whose help shows its value as name (-r,
// --rate PPS) rather than as its type.
type placeholder struct {
	p    *string
	name string
}

func (v placeholder) String() string     { return *v.p }
func (v placeholder) Set(s string) error { *v.p = s; return nil }
func (v placeholder) Type() string       { return v.name }
