package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkipBecomesFailure runs a test that skips in a child process, with
// and without the variable.
func TestSkipBecomesFailure(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "" {
		Skip(t, "no frobnicator here")
		return
	}
	run := func(required string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSkipBecomesFailure$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", RequireEnv+"="+required)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "no frobnicator here") {
		t.Errorf("without %s: %v\n%s", RequireEnv, err, out)
	}
	out, err = run("0")
	if err != nil || !strings.Contains(out, "--- SKIP") {
		t.Errorf("with %s=0: %v\n%s", RequireEnv, err, out)
	}
	out, err = run("1")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "no frobnicator here") || !strings.Contains(out, RequireEnv) {
		t.Errorf("with %s=1: %v\n%s", RequireEnv, err, out)
	}
}
