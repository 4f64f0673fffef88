// Package cli is the vswitch command line: `vswitch [-j] [--socket PATH]
// OBJECT VERB ...`, in the manner of bpftool and ovs-vsctl, built on
// github.com/spf13/cobra. Every command but daemon, demo, pktgen, bench
// and prog run talks to a running daemon over its control socket.
//
// Global flags stand anywhere on the line; every command and verb takes
// -h/--help; command names may be abbreviated to any prefix, the first
// command in the listed order that matches winning, as in bpftool and ip
// (`vswitch p s` is `port show`). Usage errors exit with status 2, failed
// commands with 1.
//
// Adding a flag to a command is one line where the command is built: the
// flag is bound straight to the field of the request (control.*Params)
// or configuration (daemon.RunConfig) it sets.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/govswitch/vswitch/control"
)

// Version is the program's version.
var Version = "0.1.0"

func init() {
	// Commands are listed, and abbreviations resolved, in the order they
	// are added: the common ones first.
	cobra.EnableCommandSorting = false
}

// Main runs the command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cmd{ctx: ctx, out: stdout, errw: stderr}
	root := c.rootCommand()
	root.SetArgs(resolve(root, args))
	failed, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ex exitError
	if errors.As(err, &ex) {
		return int(ex)
	}
	fmt.Fprintf(stderr, "vswitch: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		if failed == nil || failed == root {
			fmt.Fprintln(stderr, "run `vswitch help` for the commands")
		} else {
			fmt.Fprintf(stderr, "run `%s --help` for its usage\n", failed.CommandPath())
		}
		return 2
	}
	return 1
}

// usageError is a command line that does not make sense: exit status 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError ends the command with a status, its message already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// globals are the flags every command takes.
type globals struct {
	json    bool
	socket  string
	timeout time.Duration
}

// cmd is one run of the command line.
type cmd struct {
	ctx  context.Context
	out  io.Writer
	errw io.Writer
	globals
}

const globalHelp = `Global flags (anywhere on the line): -j/--json prints JSON; --socket PATH is the
daemon's control socket (else $VSWITCH_SOCKET, else /run/vswitch/vswitch.sock);
--timeout D bounds each call to the daemon.
Commands may be abbreviated: the first one listed that starts with what is typed
wins (vswitch p s = port show, vswitch m d fdb = map dump fdb).
Run "vswitch COMMAND --help" for a command's flags and examples.
`

// rootCommand builds the whole command tree. It is built anew for every
// run, so that flags bound to local variables start from their defaults.
func (c *cmd) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "vswitch",
		Short: "an L2 software switch whose forwarding decision is an eBPF program",
		Long: `vswitch is an L2 software switch whose forwarding decision is an eBPF program,
run by its own JIT or interpreter, with maps you read and change while
traffic flows. "vswitch daemon" runs the switch; the other commands talk to
it over its control socket.`,
		Version:           fmt.Sprintf("%s (control protocol %d)", Version, control.Version),
		Args:              cobra.ArbitraryArgs,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		RunE: func(cc *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(c.errw, synopsis(cc))
				return exitError(2)
			}
			return unknown(cc, "object", args[0])
		},
	}
	root.SetOut(c.out)
	root.SetErr(c.errw)
	root.SetVersionTemplate("vswitch {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.BoolVarP(&c.json, "json", "j", false, "print JSON")
	pf.StringVar(&c.socket, "socket", "", "control socket of the daemon (default $"+control.SocketEnv+", else "+control.DefaultSocket+")")
	pf.DurationVar(&c.timeout, "timeout", 0, "bound on each call to the daemon (default 10s; a stream may stay silent while the daemon answers)")

	root.AddCommand(
		c.portCommand(),
		c.progCommand(),
		c.mapCommand(),
		c.fdbCommand(),
		c.statsCommand(),
		c.captureCommand(),
		c.daemonCommand(),
		c.attachCommand("attach", "short form of port attach"),
		c.detachCommand("detach", "short form of port detach"),
		c.pktgenCommand(),
		c.benchCommand(),
		c.demoCommand(),
		c.versionCommand(),
	)
	root.SetHelpCommand(c.helpCommand(root))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(cc *cobra.Command, args []string) {
		if cc == root {
			fmt.Fprint(c.out, synopsis(root))
			return
		}
		defaultHelp(cc, args)
	})
	return root
}

// group makes a command that only holds verbs: alone, or followed by an
// unknown verb, it is a usage error naming the verbs.
func group(cc *cobra.Command, verbs ...*cobra.Command) *cobra.Command {
	cc.Args = cobra.ArbitraryArgs
	cc.RunE = func(cc *cobra.Command, args []string) error {
		var names []string
		for _, v := range cc.Commands() {
			if v.IsAvailableCommand() {
				names = append(names, v.Name())
			}
		}
		if len(args) == 0 {
			return usagef("%s: want %s", cc.CommandPath()[len("vswitch "):], orList(names))
		}
		return unknown(cc, "verb", args[0])
	}
	cc.AddCommand(verbs...)
	return cc
}

// unknown is the error for a command or verb that does not exist, with
// the ones it may have meant.
func unknown(cc *cobra.Command, what, typed string) error {
	msg := fmt.Sprintf("unknown %s %q", what, typed)
	if cc.HasParent() {
		msg = strings.TrimPrefix(cc.CommandPath(), "vswitch ") + ": " + msg
	}
	if cc.SuggestionsMinimumDistance <= 0 {
		cc.SuggestionsMinimumDistance = 2
	}
	if s := cc.SuggestionsFor(typed); len(s) > 0 {
		return usagef("%s: did you mean %s?", msg, orList(s))
	}
	var names []string
	for _, v := range cc.Commands() {
		if v.IsAvailableCommand() {
			names = append(names, v.Name())
		}
	}
	if cc.HasParent() {
		return usagef("%s: want %s", msg, orList(names))
	}
	return usagef("%s (%s)", msg, strings.Join(names, ", "))
}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// synopsis is `vswitch help`: every command with its arguments, generated
// from the command tree.
func synopsis(root *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: vswitch [-j] [--socket PATH] OBJECT VERB [ARGS] [FLAGS]\n\n")
	const col = 34 // where the descriptions start
	var walk func(cc *cobra.Command)
	walk = func(cc *cobra.Command) {
		for _, sub := range cc.Commands() {
			if !sub.IsAvailableCommand() || sub.Name() == "help" {
				continue
			}
			if sub.Runnable() && !sub.HasAvailableSubCommands() {
				line := "  " + strings.TrimPrefix(sub.CommandPath(), "vswitch ") + strings.TrimPrefix(sub.Use, sub.Name())
				if len(line) >= col {
					line += "\n" + strings.Repeat(" ", col)
				} else {
					line += strings.Repeat(" ", col-len(line))
				}
				b.WriteString(line + sub.Short + "\n")
			}
			walk(sub)
		}
	}
	walk(root)
	b.WriteString("\n" + globalHelp)
	return b.String()
}

func (c *cmd) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]...",
		Short: "help about any command",
		Long:  "help COMMAND prints the usage of the command, with its flags and examples.",
		Example: `  vswitch help
  vswitch help port attach
  vswitch help m u          # map update`,
		RunE: func(_ *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || target == nil {
				return usagef("help: %v", err)
			}
			if len(rest) > 0 {
				return unknown(target, "command", rest[0])
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}

func (c *cmd) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version of vswitch and of its control protocol",
		Args:  noArgs("version"),
		RunE: func(*cobra.Command, []string) error {
			v := map[string]any{"vswitch": Version, "protocol": control.Version}
			return c.emit(v, func(w io.Writer) {
				fmt.Fprintf(w, "vswitch %s (control protocol %d)\n", Version, control.Version)
			})
		},
	}
}

// noArgs refuses positional arguments.
func noArgs(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("%s takes no arguments, have %q", name, strings.Join(args, " "))
		}
		return nil
	}
}

// nArgs wants exactly n positional arguments, else says what it wants.
func nArgs(n int, want string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s", want)
		}
		return nil
	}
}

func (c *cmd) client() *control.Client {
	return &control.Client{Path: control.SocketPath(c.socket), Timeout: c.timeout}
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

func readObject(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file (build the examples with `make -C examples`, or give the path of your .o)", path)
		}
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) && looksLikeC(path, b) {
		obj := strings.TrimSuffix(path, filepath.Ext(path)) + ".o"
		return nil, fmt.Errorf("%s is C source, not a compiled object: build it with `clang -O2 -g -target bpf -c %s -o %s` (with -I for vswitch.h, see docs/programs.md), then load %s", path, path, obj, obj)
	}
	return b, nil
}

// looksLikeC tells C source from other files that are not objects.
func looksLikeC(path string, b []byte) bool {
	switch filepath.Ext(path) {
	case ".c", ".h":
		return true
	}
	head := string(b[:min(len(b), 4096)])
	return strings.Contains(head, "#include") || strings.Contains(head, "SEC(")
}
