package cli

import (
	"os"
	"testing"

	"github.com/govswitch/vswitch/internal/testenv"
)

// TestMain keeps the state of any daemon a test runs (in process or as
// the built binary) out of /var/lib/vswitch.
func TestMain(m *testing.M) {
	os.Exit(testenv.IsolateState(m))
}
