package daemon

import (
	"os"
	"testing"

	"github.com/govswitch/vswitch/internal/testenv"
)

// TestMain keeps the state of any daemon a test runs out of
// /var/lib/vswitch.
func TestMain(m *testing.M) {
	if testenv.StateDirEnv != StateDirEnv {
		panic("testenv.StateDirEnv differs from daemon.StateDirEnv")
	}
	os.Exit(testenv.IsolateState(m))
}
