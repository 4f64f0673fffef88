package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/netenv"
)

// TestRunVXLAN runs the VXLAN demo and checks what it says it showed:
// every echo answered, machine B's hosts behind vx0 at machine B's
// underlay address, the static entry, the TCP transfer, and that it
// removed what it made.
func TestRunVXLAN(t *testing.T) {
	if err := netenv.Check(); err != nil {
		t.Skipf("the demo %v", err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := RunVXLAN(ctx, Options{Out: &out, Engine: "interp"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	if n := strings.Count(s, "UDP echo answered"); n != 4 {
		t.Errorf("%d echoes answered, want 4", n)
	}
	var remote int
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[2] == "vx0" && f[4] == "10.98.0.2" {
			remote++
		}
	}
	// h3 and h4 (learned), then the static entry.
	if remote != 3 {
		t.Errorf("%d fdb lines for stations behind vx0 at 10.98.0.2, want 3", remote)
	}
	for _, want := range []string{"02:00:5e:00:53:01  2     vx0   static  10.98.0.2", "16 MiB in", "removed the namespaces"} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", s)
	}
}
