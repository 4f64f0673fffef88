package scenario

import (
	"context"
	"strings"
	"testing"
)

// TestRunVethAFXDP runs the veth scenario through vswitch with AF_XDP
// ports: small and full-size frames reach the sink, and nothing is left
// behind (no XDP program: the namespaces go with their links).
func TestRunVethAFXDP(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := short(t, Veth)
	o.Subjects = []string{VswitchAFXDP}
	o.Sizes, o.Flows = []int{60, 1514}, []int{1}
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Veth) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(tb.Veth), tb.Veth)
	}
	for _, r := range tb.Veth {
		if r.Switch != VswitchAFXDP || starved(t, r) {
			continue
		}
		if r.Skipped != "" || r.Mpps <= 0 || r.OfCeiling <= 0 {
			t.Errorf("%+v", r)
		}
	}
	checkLeftovers(t, before)
}

// TestRunHostsAFXDP runs the hosts scenario through vswitch with AF_XDP
// ports: round trips at both rates and a TCP stream, with the hosts
// sending finished checksums (said in the rows' note).
func TestRunHostsAFXDP(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	tb, err := Run(context.Background(), hostsOptions(t, VswitchAFXDP))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Hosts) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(tb.Hosts), tb.Hosts)
	}
	for _, r := range tb.Hosts {
		checkHostsRow(t, r)
		if !strings.Contains(r.Note, "tx off") {
			t.Errorf("%s %s: the note does not say the hosts run with tx off: %q", r.Switch, r.Measure, r.Note)
		}
	}
	checkLeftovers(t, before)
}
