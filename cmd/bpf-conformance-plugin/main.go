// Command bpf-conformance-plugin lets the bpf_conformance project's runner
// drive vswitch's eBPF engines.
//
// Usage: bpf-conformance-plugin [MEM] [--engine=interp|jit]
//
// MEM, present only when the test has memory, is one argument of hex bytes
// separated by whitespace. The program arrives on stdin as hex bytes
// separated by whitespace, 8 bytes per instruction. The plugin prints r0 as
// 64-bit hex with a 0x prefix and exits 0, or prints the error on one line
// and exits 1. The error is written as internal/conformance.ErrorText
// writes it, which is what the `-- error` sections of vswitch's own corpus
// (testdata/conformance) hold, so that the bpf_conformance runner, which
// compares that line exactly, checks the kind of error too.
//
// The program runs in the harness of internal/conformance: r1 = a private
// copy of MEM (no memory: 0) and r2 = its length; the helpers of package
// maps (bpf_ktime_get_ns, bpf_tail_call, ...); map[0] a program array
// holding the program in slot 0 and map[1] a one-entry 8-byte array.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/conformance"
	"github.com/govswitch/vswitch/vm"
)

func main() {
	out, err := run(os.Args[1:], os.Stdin)
	if err != nil {
		fmt.Println(conformance.ErrorText(err))
		os.Exit(1)
	}
	fmt.Println(out)
}

// engines maps --engine names to how a program is run; the JIT adds itself
// where it is supported (see engine_*.go).
var engines = map[string]func(*vm.Program) (vm.Runner, error){
	"interp": func(p *vm.Program) (vm.Runner, error) { return p, nil },
}

// defaultEngine is the fastest engine available.
var defaultEngine = "interp"

func parseHex(s string) ([]byte, error) {
	var b []byte
	for _, w := range strings.Fields(s) {
		v, err := strconv.ParseUint(strings.TrimPrefix(w, "0x"), 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad hex byte %q", w)
		}
		b = append(b, byte(v))
	}
	return b, nil
}

func run(args []string, stdin io.Reader) (string, error) {
	var mem []byte
	engine := defaultEngine
	for n, a := range args {
		switch {
		case strings.HasPrefix(a, "--engine="):
			engine = strings.TrimPrefix(a, "--engine=")
		case strings.HasPrefix(a, "--"):
			// Options of other plugins are ignored.
		case n == 0:
			var err error
			if mem, err = parseHex(a); err != nil {
				return "", fmt.Errorf("memory: %v", err)
			}
		default:
			return "", fmt.Errorf("unexpected argument %q", a)
		}
	}
	compile, ok := engines[engine]
	if !ok {
		return "", fmt.Errorf("unknown engine %q", engine)
	}
	src, err := io.ReadAll(stdin)
	if err != nil {
		return "", err
	}
	code, err := parseHex(string(src))
	if err != nil {
		return "", fmt.Errorf("program: %v", err)
	}
	insns, err := asm.Decode(code)
	if err != nil {
		return "", err
	}
	h, err := conformance.NewHarness()
	if err != nil {
		return "", err
	}
	p, err := h.Load(conformance.Case{Program: insns}, nil)
	if err != nil {
		return "", err
	}
	r, err := compile(p)
	if err != nil {
		return "", err
	}
	env := vm.NewEnv()
	mem = conformance.Guarded(mem)
	env.SetArgBytes(0, mem)
	var addr uint64
	if len(mem) > 0 {
		addr = vm.AddrOf(mem)
	}
	r0, err := r.Run(env, addr, uint64(len(mem)))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%#016x", r0), nil
}
