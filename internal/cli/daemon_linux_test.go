package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/bpfport/nettest"
	"github.com/govswitch/vswitch/internal/daemon"
)

// TestPortAddTAP: port add creates a TAP device without --type (the only
// type it creates) and says "1 queue"; as root, in a namespace of its own.
func TestPortAddTAP(t *testing.T) {
	ns := nettest.NewNS(t)
	td := startDaemon(t, daemon.RunConfig{Netns: fmt.Sprintf("/proc/self/fd/%d", ns.H)})
	name := nettest.Name("tap")
	if out := td.vs(t, "port", "add", name); out != "port "+name+" attached at index 0 (tap, 1 queue)\n" {
		t.Errorf("port add: %q", out)
	}
	if out := td.vs(t, "port", "detach", name, "--if-exists"); out != "port "+name+" detached\n" {
		t.Errorf("port detach: %q", out)
	}
	if _, errOut, code := td.run("port", "add", name, "--type", "afpacket"); code != 2 || !strings.Contains(errOut, "port add creates TAP devices") {
		t.Errorf("port add --type afpacket: exit %d, %q", code, errOut)
	}
}
