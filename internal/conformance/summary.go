package conformance

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Summary prints a closing line of a test so that `go test ./...` shows
// it even when the test passes.
//
// In package list mode `go test` throws away everything a passing test
// binary writes (stdout and stderr alike) and prints only its "ok" line.
// So, when the binary runs under `go test` without -v (and without -json,
// which implies -v), Summary writes the line to the go command's own
// standard output, which is what the user sees. Otherwise, and if that
// fails, it prints to standard output, which `go test` shows with -v and
// for failing tests.
func Summary(line string, failed bool) {
	if !failed && !verbose() && toGoCommand(line) {
		return
	}
	fmt.Println(line)
}

// verbose reports whether the test binary runs with -test.v (which -json
// sets too). It reads the flag rather than calling testing.Verbose, so
// that the plugin, which uses this package, does not link package testing.
func verbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false"
}

// toGoCommand writes line to the standard output of the parent process if
// that is the go command (see summary_linux.go). It reports whether it did.
func toGoCommand(line string) bool {
	ppid := os.Getppid()
	if ppid <= 1 {
		return false
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(ppid), "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return false
	}
	return writeParentStdout(ppid, line+"\n")
}
