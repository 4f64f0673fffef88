package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/bench/scenario"
)

// benchParams are the flags of `vswitch bench`.
type benchParams struct {
	only, switches, sizes, flows, plot, cpuprofile string
	duration, warmup                               time.Duration
	rate                                           float64
	runs                                           int
	quiet                                          bool
}

func (c *cmd) benchCommand() *cobra.Command {
	var p benchParams
	cc := &cobra.Command{
		Use:   "bench",
		Short: "benchmark scenarios against the kernel's eBPF, the Linux bridge and Open vSwitch",
		Long: `bench runs the benchmark scenarios (as root, in network namespaces it creates
and removes) and prints one table; -j prints JSON; --plot draws the veth,
hosts and scale comparisons as bar charts. Scenarios: ` + strings.Join(scenario.All, ", ") + `.
Switches: ` + strings.Join(scenario.Switches(), ", ") + `.
Progress goes to stderr (-q: none). On a shared machine run it under setsid
so that it can raise its autogroup priority.`,
		Example: `  vswitch bench --only vm,core
  vswitch bench --only veth --switches vswitch-jit,bridge --sizes 60 --flows 1 --plot bench.png
  vswitch bench -j --runs 3 > bench.json`,
		Args: noArgs("bench"),
		RunE: func(*cobra.Command, []string) error { return c.bench(p) },
	}
	f := cc.Flags()
	f.StringVar(&p.only, "only", "", "scenarios, comma-separated: "+strings.Join(scenario.All, ",")+" (default all)")
	f.DurationVar(&p.duration, "duration", 3*time.Second, "measurement window of each figure")
	f.DurationVar(&p.warmup, "warmup", time.Second, "warm-up before each window")
	f.StringVar(&p.switches, "switches", "", "switches of every scenario, comma-separated (default all)")
	f.StringVar(&p.sizes, "sizes", "", "veth frame lengths without FCS, comma-separated (default 60,1514)")
	f.StringVar(&p.flows, "flows", "", "veth flow counts, comma-separated (default 1,64)")
	f.Float64Var(&p.rate, "latency-rate", 50000, "frames per second of the latency scenario")
	f.IntVar(&p.runs, "runs", 1, "measure each core and veth figure this many times and keep the median")
	f.StringVar(&p.plot, "plot", "", "write the veth, hosts and scale comparisons as bar charts (.svg or .png)")
	f.BoolVarP(&p.quiet, "quiet", "q", false, "no progress lines on stderr")
	f.StringVar(&p.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run (the in-process switch, pktgen) to FILE")
	completeList(cc, "only", scenario.All)
	completeList(cc, "switches", scenario.Switches())
	return cc
}

// completeList completes a comma-separated list of words.
func completeList(cc *cobra.Command, flag string, words []string) {
	cc.RegisterFlagCompletionFunc(flag, func(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
		done := ""
		if i := strings.LastIndexByte(typed, ','); i >= 0 {
			done = typed[:i+1]
		}
		var out []string
		for _, w := range words {
			out = append(out, done+w)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// bench runs `vswitch bench`.
func (c *cmd) bench(p benchParams) error {
	var err error
	if p.plot != "" {
		switch strings.ToLower(filepath.Ext(p.plot)) {
		case ".svg", ".png":
		default:
			return usagef("--plot %s: the file name must end in .svg or .png", p.plot)
		}
	}
	o := scenario.Options{
		Only:        scenario.ParseList(p.only),
		Duration:    p.duration,
		Warmup:      p.warmup,
		Subjects:    scenario.ParseList(p.switches),
		LatencyRate: p.rate,
		Runs:        p.runs,
		Log:         c.errw,
	}
	if p.plot != "" && len(o.Only) > 0 && !slices.ContainsFunc(o.Only, plotted) {
		return usagef("--plot draws the %s comparisons, which --only %s leaves out: add one of them to --only, or drop --plot", strings.Join(plottedScenarios, ", "), p.only)
	}
	if p.quiet {
		o.Log = nil
	}
	if o.Sizes, err = intList("--sizes", p.sizes); err != nil {
		return err
	}
	if o.Flows, err = intList("--flows", p.flows); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(c.errw, "vswitch bench: not root: the core and VM interpreter/JIT figures run, the kernel, veth, latency, hosts and scale rows say why they were skipped (run it with sudo)")
	}
	if p.cpuprofile != "" {
		f, err := os.Create(p.cpuprofile)
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
	if p.plot != "" {
		if !t.HasPlot() {
			fmt.Fprintf(c.errw, "vswitch bench: nothing to plot: no %s figures were measured (see their rows): %s not written\n", strings.Join(plottedScenarios, ", "), p.plot)
		} else if perr := t.WritePlotFile(p.plot); perr != nil {
			return fmt.Errorf("plot: %w", perr)
		} else {
			fmt.Fprintf(c.errw, "# wrote %s\n", p.plot)
		}
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

// plottedScenarios are the scenarios --plot draws.
var plottedScenarios = []string{scenario.Veth, scenario.Hosts, scenario.Scale}

func plotted(s string) bool { return slices.Contains(plottedScenarios, s) }

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
