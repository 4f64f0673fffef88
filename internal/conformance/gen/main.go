// Command gen writes vswitch's own eBPF conformance corpus,
// testdata/conformance/*.data, with the Linux kernel as the oracle.
//
// Usage, as root on Linux, from the root of the repository:
//
//	go run ./internal/conformance/gen [-out testdata/conformance] [-check]
//
// Each case is a small program (cases_*.go). The generator runs it in the
// kernel with BPF_PROG_TEST_RUN and writes the kernel's answer as the
// expected result, after checking it against RFC 9669 where the generator
// knows the ISA's answer (model.go). Where the kernel refuses a program
// the ISA defines, or is known to answer wrongly, the ISA's answer is
// written instead, and the file says so. Error cases carry vswitch's
// expected error; the kernel must refuse those programs too. README.md in
// the output folder records the kernel the corpus was made with and the
// rules. -check compares with the files in place instead of writing them.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/govswitch/vswitch/internal/kernel"
)

func main() {
	out := flag.String("out", filepath.Join("testdata", "conformance"), "output folder")
	check := flag.Bool("check", false, "compare with the files in the output folder instead of writing them")
	flag.Parse()
	if err := run(*out, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// allSpecs is the whole corpus.
func allSpecs() []*spec {
	var all []*spec
	for _, f := range []func() []*spec{aluSpecs, jumpSpecs, loadSpecs, storeSpecs, atomicSpecs, lddwSpecs, callSpecs, tailCallSpecs, validationSpecs, faultSpecs} {
		all = append(all, f()...)
	}
	return all
}

// generate returns the corpus: file name to contents.
func generate() (map[string]string, error) {
	kerr := kernel.Available()
	files := map[string]string{}
	var errs []error
	for _, s := range allSpecs() {
		name := s.name + ".data"
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("two cases named %s", s.name)
		}
		insns, err := s.program()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r, err := decide(s, insns, kerr == nil)
		if err != nil {
			if kerr != nil {
				return nil, fmt.Errorf("%w (kernel: %v)", err, kerr)
			}
			errs = append(errs, err)
			continue
		}
		files[name] = render(s, insns, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	files["README.md"] = readme(len(files))
	return files, nil
}

func run(dir string, check bool) error {
	files, err := generate()
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.data"))
	if check {
		var diffs []string
		for name, text := range files {
			have, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(maskKernel(have), maskKernel([]byte(text))) {
				diffs = append(diffs, name)
			}
		}
		for _, f := range old {
			if _, ok := files[filepath.Base(f)]; !ok {
				diffs = append(diffs, filepath.Base(f)+" (not generated)")
			}
		}
		if len(diffs) > 0 {
			sort.Strings(diffs)
			return fmt.Errorf("%d files differ from what the generator makes:\n%s", len(diffs), strings.Join(diffs, "\n"))
		}
		fmt.Printf("%s: %d files up to date\n", dir, len(files))
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%s: wrote %d files\n", dir, len(files))
	return nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// maskKernel blanks the README line that names the kernel.
func maskKernel(b []byte) []byte {
	lines := strings.Split(string(b), "\n")
	for k, l := range lines {
		if strings.HasPrefix(l, kernelLinePrefix) {
			lines[k] = kernelLinePrefix
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
