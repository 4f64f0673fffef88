package cli

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/bench/scenario"
)

var benchUsage = `usage: vswitch bench [--only ` + strings.Join(scenario.All, ",") + `] [--duration 3s] [--warmup 1s]
                     [--switches LIST] [--sizes 60,1514] [--flows 1,64] [--latency-rate 50000] [--runs N]
                     [--plot out.svg|out.png] [-j] [-q] [--cpuprofile FILE]

Runs the benchmark scenarios (as root, in network namespaces it creates and
removes) and prints one table; -j prints JSON; --plot draws the veth, hosts
and scale comparisons as bar charts. Switches: ` + strings.Join(scenario.Switches(), ", ") + `.
Progress goes to stderr (-q: none). On a shared machine run it under setsid so
that it can raise its autogroup priority.
`

// bench runs `vswitch bench`.
func (c *cmd) bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	only := fs.String("only", "", "scenarios: comma-separated "+strings.Join(scenario.All, ", ")+" (default all)")
	dur := fs.Duration("duration", 3*time.Second, "measurement window of each figure")
	warm := fs.Duration("warmup", time.Second, "warm-up before each window")
	switches := fs.String("switches", "", "switches of every scenario, comma-separated (default all)")
	sizes := fs.String("sizes", "", "veth frame lengths without FCS, comma-separated (default 60,1514)")
	flows := fs.String("flows", "", "veth flow counts, comma-separated (default 1,64)")
	rate := fs.Float64("latency-rate", 50000, "frames per second of the latency scenario")
	runs := fs.Int("runs", 1, "measure each core and veth figure this many times and keep the median")
	plot := fs.String("plot", "", "write the veth, hosts and scale comparisons as bar charts (.svg or .png)")
	js := fs.Bool("j", false, "print JSON")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	cpuprof := fs.String("cpuprofile", "", "write a CPU profile of the whole run (the in-process switch, pktgen) to FILE")
	help := fs.Bool("h", false, "help")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *help {
		fmt.Fprint(c.out, benchUsage)
		return nil
	}
	if len(pos) > 0 {
		return usagef("bench takes no arguments (got %q)", strings.Join(pos, " "))
	}
	if *js {
		c.json = true
	}
	if *plot != "" {
		switch strings.ToLower(filepath.Ext(*plot)) {
		case ".svg", ".png":
		default:
			return usagef("--plot %s: the file name must end in .svg or .png", *plot)
		}
	}
	o := scenario.Options{
		Only:        scenario.ParseList(*only),
		Duration:    *dur,
		Warmup:      *warm,
		Subjects:    scenario.ParseList(*switches),
		LatencyRate: *rate,
		Runs:        *runs,
		Log:         c.errw,
	}
	if *quiet {
		o.Log = nil
	}
	if o.Sizes, err = intList("--sizes", *sizes); err != nil {
		return err
	}
	if o.Flows, err = intList("--flows", *flows); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(c.errw, "vswitch bench: not root: the core and VM interpreter/JIT figures run, the kernel, veth, latency, hosts and scale rows say why they were skipped (run it with sudo)")
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	t, err := scenario.Run(ctx, o)
	if t == nil {
		return usagef("%v", err)
	}
	if err != nil {
		fmt.Fprintf(c.errw, "vswitch bench: interrupted (%v): printing what was measured\n", err)
	}
	if *plot != "" && t.HasPlot() {
		if perr := t.WritePlotFile(*plot); perr != nil {
			return fmt.Errorf("plot: %w", perr)
		}
		fmt.Fprintf(c.errw, "# wrote %s\n", *plot)
	}
	if c.json {
		if werr := t.WriteJSON(c.out); werr != nil {
			return werr
		}
	} else if werr := t.WriteText(c.out); werr != nil {
		return werr
	}
	if err != nil {
		return exitError(130)
	}
	return nil
}

func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range scenario.ParseList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, usagef("%s: %q is not a number", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}
