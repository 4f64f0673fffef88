// Package conformance reads the bpf_conformance corpus (`*.data` files:
// sections `-- asm`, `-- result`, `-- mem`, `-- raw`, `-- error`) so that
// every engine can be run against it.
package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

// Case is one test of the corpus.
type Case struct {
	Name     string // file name without .data
	Program  []asm.Instruction
	Mem      []byte
	Result   uint64
	HasError bool   // the case expects an error instead of a result
	Error    string // the expected error text
}

// Dir returns the corpus folder: $VSWITCH_CONFORMANCE if set, otherwise
// ../shared/conformance/bpf_conformance relative to the repository root.
func Dir() string {
	if d := os.Getenv("VSWITCH_CONFORMANCE"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	return filepath.Join(root, "..", "shared", "conformance", "bpf_conformance")
}

// Load parses every .data file in dir.
func Load(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.data"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no conformance corpus (*.data) in %s: the folder ../shared/conformance/bpf_conformance must sit beside the checkout, or set VSWITCH_CONFORMANCE", dir)
	}
	sort.Strings(files)
	var cases []Case
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c, err := Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		c.Name = strings.TrimSuffix(filepath.Base(f), ".data")
		cases = append(cases, c)
	}
	return cases, nil
}

// Parse reads one .data file.
func Parse(text string) (Case, error) {
	var c Case
	var asmText, rawWords []string
	var memWords []string
	section := ""
	hasResult := false
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "--") {
			switch {
			case strings.Contains(line, "asm"):
				section = "asm"
			case strings.Contains(line, "result"):
				section = "result"
			case strings.Contains(line, "mem"):
				section = "mem"
			case strings.Contains(line, "raw"):
				section = "raw"
			case strings.Contains(line, "no register offset"):
				section = "ignore"
			case strings.Contains(line, " c"):
				section = "ignore"
			case strings.Contains(line, "error"):
				section = "error"
				c.HasError = true
			default:
				return c, fmt.Errorf("unknown directive %q", strings.TrimSpace(line))
			}
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		switch section {
		case "asm":
			asmText = append(asmText, line)
		case "result":
			v, err := parseResult(line)
			if err != nil {
				return c, err
			}
			c.Result, hasResult = v, true
		case "mem":
			memWords = append(memWords, strings.Fields(line)...)
		case "raw":
			rawWords = append(rawWords, line)
		case "error":
			if c.Error != "" {
				c.Error += "\n"
			}
			c.Error += line
		}
	}
	if !hasResult && !c.HasError {
		return c, errors.New("no result and no error section")
	}
	for _, w := range memWords {
		v, err := strconv.ParseUint(w, 16, 8)
		if err != nil {
			return c, fmt.Errorf("mem: bad byte %q", w)
		}
		c.Mem = append(c.Mem, byte(v))
	}
	if len(rawWords) > 0 {
		for _, w := range rawWords {
			v, err := strconv.ParseUint(w, 0, 64)
			if err != nil {
				return c, fmt.Errorf("raw: bad word %q", w)
			}
			var b [8]byte
			for n := range b {
				b[n] = byte(v >> (8 * n))
			}
			c.Program = append(c.Program, asm.DecodeOne(b[:]))
		}
		return c, nil
	}
	prog, err := asm.Assemble(strings.Join(asmText, "\n"))
	if err != nil {
		return c, err
	}
	c.Program = prog
	return c, nil
}

func parseResult(s string) (uint64, error) {
	if strings.Contains(s, "0x") || strings.Contains(s, "0X") {
		return strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// Engine turns a loaded program into something that runs it.
type Engine func(*vm.Program) (vm.Runner, error)

// Outcome is the result of one case on one engine.
type Outcome struct {
	Case Case
	Got  uint64
	Err  error // load, compile or run error
	Pass bool
}

// RunCase loads c's program with the base helpers, runs it on the engine
// with r1 = a private copy of c.Mem and r2 = its length, and compares.
func RunCase(c Case, engine Engine) Outcome {
	o := Outcome{Case: c}
	p, err := vm.Load(c.Program, vm.Options{Name: c.Name, Helpers: vm.BaseHelpers()})
	if err != nil {
		o.Err = err
		o.Pass = c.HasError
		return o
	}
	r, err := engine(p)
	if err != nil {
		o.Err = err
		return o
	}
	env := vm.NewEnv()
	mem := append(make([]byte, 0, len(c.Mem)+1), c.Mem...)
	env.SetArgBytes(0, mem)
	var addr uint64
	if len(mem) > 0 {
		addr = vm.AddrOf(mem)
	}
	o.Got, o.Err = r.Run(env, addr, uint64(len(mem)))
	if c.HasError {
		o.Pass = o.Err != nil
	} else {
		o.Pass = o.Err == nil && o.Got == c.Result
	}
	return o
}

// T is the part of *testing.T that Check uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Fatal(args ...any)
}

// Check runs the whole corpus on an engine, reports every failing case,
// prints the closing line `conformance (NAME): N passed, M failed` and
// requires every case of the corpus to pass.
func Check(t T, name string, engine Engine) {
	t.Helper()
	cases, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	passed, failed := 0, 0
	for _, c := range cases {
		o := RunCase(c, engine)
		if o.Pass {
			passed++
			continue
		}
		failed++
		t.Errorf("%s: want %#x, got %#x (err: %v)", c.Name, c.Result, o.Got, o.Err)
	}
	fmt.Printf("conformance (%s): %d passed, %d failed\n", name, passed, failed)
	if failed != 0 || passed != len(cases) {
		t.Errorf("want all %d cases to pass, %d did", len(cases), passed)
	}
}
