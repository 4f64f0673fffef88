package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// resolve rewrites a command line before cobra parses it:
//
//   - abbreviated command names become whole ones: at each level the
//     first command, in the order they are listed, whose name starts with
//     what was typed (bpftool's and iproute2's rule: `vswitch p s` is
//     `port show`, `vswitch pr s` is `prog show`); after `help` the
//     command names that follow are resolved from the top;
//   - a long flag written with one dash (`-queues 2`, as the flag package
//     of earlier versions took it) gets its second dash;
//   - where an argument is a negative number (`map update m key json 1
//     value json -1`), the arguments move after a "--" so that it is not
//     taken for a flag.
//
// Anything it does not recognise is left for cobra to report, with its
// "did you mean" suggestions.
func resolve(root *cobra.Command, args []string) []string {
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		return args
	}
	cur := root
	var path, flags, pos []string
	var typed []string // everything, in the order typed
	negative := false
	inPath := true // still reading command names
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			typed = append(typed, args[i:]...)
			pos = append(pos, args[i+1:]...)
			for _, p := range args[i+1:] {
				negative = negative || isNumber(p)
			}
			break
		}
		if len(a) > 1 && a[0] == '-' && !isNumber(a) {
			if !strings.HasPrefix(a, "--") && len(a) > 2 && !strings.Contains(a, "=") && lookupFlag(cur, a[1:]) != nil {
				a = "-" + a
			}
			flags = append(flags, a)
			typed = append(typed, a)
			if takesValue(cur, a) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				typed = append(typed, args[i+1])
				i++
			}
			continue
		}
		if inPath && cur.HasSubCommands() {
			if next := findCommand(cur, a); next != nil {
				path = append(path, next.Name())
				typed = append(typed, next.Name())
				if next.Name() == "help" && cur == root {
					continue // help COMMAND...: resolved from the top
				}
				cur = next
				continue
			}
		}
		inPath = false
		negative = negative || isNumber(a)
		pos = append(pos, a)
		typed = append(typed, a)
	}
	if !negative {
		return typed // only names and dashes changed
	}
	out := append(path, flags...)
	out = append(out, "--")
	return append(out, pos...)
}

// findCommand returns cur's verb named name or, failing that, the first
// listed whose name starts with it.
func findCommand(cur *cobra.Command, name string) *cobra.Command {
	for _, c := range cur.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	for _, c := range cur.Commands() {
		if (c.IsAvailableCommand() || c.Name() == "help") && strings.HasPrefix(c.Name(), name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds a long flag of cur or one it inherits.
func lookupFlag(cur *cobra.Command, name string) *pflag.Flag {
	if f := cur.Flags().Lookup(name); f != nil {
		return f
	}
	for c := cur; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	return nil
}

func lookupShort(cur *cobra.Command, short byte) *pflag.Flag {
	if short >= 0x80 {
		return nil // shorthands are ASCII (pflag panics on others)
	}
	if f := cur.Flags().ShorthandLookup(string(short)); f != nil {
		return f
	}
	for c := cur; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().ShorthandLookup(string(short)); f != nil {
			return f
		}
	}
	return nil
}

// takesValue tells whether flag a (as typed) consumes the next argument.
func takesValue(cur *cobra.Command, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	if strings.HasPrefix(a, "--") {
		f := lookupFlag(cur, a[2:])
		return f != nil && f.NoOptDefVal == ""
	}
	// -abc is a run of shorthands; the first that takes a value takes the
	// rest of the run, or the next argument if it is the last letter.
	for i := 1; i < len(a); i++ {
		f := lookupShort(cur, a[i])
		if f == nil {
			return false
		}
		if f.NoOptDefVal == "" {
			return i == len(a)-1
		}
	}
	return false
}

func isNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, r := range s[1:] {
		if (r < '0' || r > '9') && r != '.' && r != 'x' && (r < 'a' || r > 'f') {
			return false
		}
	}
	return s[1] >= '0' && s[1] <= '9'
}
