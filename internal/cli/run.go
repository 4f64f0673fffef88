package cli

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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

// progRun runs a program locally on a frame, like `bpftool prog run`.
func (c *cmd) progRun(args []string) error {
	fs := flag.NewFlagSet("prog run", flag.ContinueOnError)
	dataIn := fs.String("data-in", "", "file holding the frame")
	dataOut := fs.String("data-out", "", "file to write the frame to after the run")
	repeat := fs.Int("repeat", 1, "runs (the duration is their average)")
	engine := fs.String("engine", "", "jit or interp")
	ingress := fs.Uint("ingress-port", 0, "ingress port index")
	mapInit := fs.String("map-init", "", "file of `MAPNAME KEYHEX VALUEHEX` lines")
	section := fs.String("section", "", "program (function or section name)")
	compat := fs.String("compat", "", "vale-bpf")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataIn == "" {
		return usagef("prog run: want FILE.o --data-in FILE")
	}
	if *repeat < 1 || *repeat > 100_000_000 {
		return usagef("prog run: --repeat must be 1..100000000")
	}
	if *ingress > 253 {
		return usagef("prog run: --ingress-port must be 0..253")
	}
	frame, err := os.ReadFile(*dataIn)
	if err != nil {
		return err
	}
	obj, err := readObject(pos[0])
	if err != nil {
		return err
	}
	opts := loader.Options{ObjectName: strings.SplitN(filepath.Base(pos[0]), ".", 2)[0]}
	if *compat == "vale-bpf" {
		opts.Compat = loader.CompatVALEBPF
	} else if *compat != "" {
		return usagef("prog run: unknown --compat %q", *compat)
	}
	coll, err := loader.LoadReader(strings.NewReader(string(obj)), opts)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	defer coll.Close()
	p, _, err := daemon.PickProgram(coll, *section, opts.ObjectName)
	if err != nil {
		return err
	}
	if *mapInit != "" {
		if err := initMaps(coll.Maps, *mapInit); err != nil {
			return err
		}
	}
	var runner vm.Runner = p
	eng := "interp"
	if *engine == "jit" || *engine == "" && jitAvailable() {
		for _, cp := range coll.Programs {
			code, err := jit.Compile(cp)
			if err != nil {
				return fmt.Errorf("jit: %w: use --engine interp", err)
			}
			defer code.Close()
			cp.Native.Store(&vm.Native{Runner: code, Size: code.Size()})
			if cp == p {
				runner = code
			}
		}
		eng = "jit"
	} else if *engine != "" && *engine != "interp" {
		return usagef("prog run: unknown --engine %q (jit or interp)", *engine)
	}
	env := vm.NewEnv()
	buf := append([]byte(nil), frame...)
	res := RunResult{Engine: eng}
	// The engine's own repeat loop, timed as a whole: the duration is the
	// engine's, as bpftool prog run's is the kernel's.
	out, mean := env.RunRepeat(runner, buf, uint32(*ingress), *repeat)
	if err := out.Err(); err != nil {
		res.Error = err.Error()
	} else {
		res.Retval, res.RingNr = out.R0, out.RingNr
	}
	res.Duration = int64(mean)
	if *dataOut != "" {
		if err := os.WriteFile(*dataOut, buf, 0o644); err != nil {
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

func jitAvailable() bool {
	_, err := jit.Compile(vm.MustLoad([]asm.Instruction{{Op: asm.OpExit}}, vm.Options{}))
	return !errors.Is(err, jit.ErrNotSupported)
}

// initMaps applies `MAPNAME KEYHEX VALUEHEX` lines.
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
		if err := m.Update(k, v, maps.UpdateAny); err != nil {
			return fmt.Errorf("%s:%d: map %s: %w", path, n, parts[0], err)
		}
	}
	return sc.Err()
}

func (c *cmd) pktgen(args []string) error {
	if code := pktgen.Main(c.ctx, args, c.out, c.errw); code != 0 {
		return exitError(code)
	}
	return nil
}
