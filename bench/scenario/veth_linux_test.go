package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/internal/netenv"
)

func requireNetns(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if err := netenv.Check(); err != nil {
		t.Skip(err)
	}
}

// TestRunVeth runs the veth plumbing with short windows: the ceiling,
// vswitch with the JIT and the bridge must all deliver frames.
func TestRunVeth(t *testing.T) {
	requireNetns(t)
	o := short(t, Veth)
	o.Subjects = []string{VswitchJIT, Bridge}
	o.Sizes, o.Flows = []int{60}, []int{4}
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Veth) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(tb.Veth), tb.Veth)
	}
	for i, want := range []string{Ceiling, VswitchJIT, Bridge} {
		r := tb.Veth[i]
		if starved(t, r) {
			continue
		}
		if r.Switch != want || r.Skipped != "" || r.Mpps <= 0 || r.OfferedMpps <= 0 {
			t.Errorf("row %d: %+v", i, r)
		}
		if want != Ceiling && r.OfCeiling <= 0 {
			t.Errorf("%s: no fraction of the ceiling", want)
		}
	}
}

// TestRunVethOVS checks that Open vSwitch comes up, forwards and goes
// away with its directory; without it installed, that the row says how
// to get it.
func TestRunVethOVS(t *testing.T) {
	requireNetns(t)
	o := short(t, Veth)
	o.Subjects = []string{OVSAFPacket}
	o.Sizes, o.Flows = []int{60}, []int{1}
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := tb.Veth[len(tb.Veth)-1]
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		if r.Skipped != "skipped: ovs-vswitchd not installed (apt-get install -y openvswitch-switch)" {
			t.Errorf("without OVS: %+v", r)
		}
		return
	}
	if !starved(t, r) && (r.Skipped != "" || r.Mpps <= 0) {
		t.Errorf("OVS: %+v", r)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("%sovs-%d-*", tempPrefix, os.Getpid()))); len(left) > 0 {
		t.Errorf("OVS directories left behind: %v", left)
	}
}

// starved reports (and logs) a row whose sink saw nothing because the
// generator hardly ran: on a loaded machine a short window can pass with
// the generator's core busy elsewhere. That says nothing of the plumbing.
func starved(t *testing.T, r VethResult) bool {
	if strings.Contains(r.Skipped, "the sink received nothing") && r.OfferedMpps < 0.01 {
		t.Logf("%s: generator starved (offered %.4f Mpps): machine too busy to judge", r.Switch, r.OfferedMpps)
		return true
	}
	return false
}

func TestRunLatency(t *testing.T) {
	requireNetns(t)
	o := short(t, Latency)
	o.LatencyRate = 20000
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Latency) != len(LatencySubjects) {
		t.Fatalf("%+v", tb.Latency)
	}
	for _, r := range tb.Latency {
		if r.Skipped != "" || r.Received == 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Sent < r.Received {
			t.Errorf("%+v", r)
		}
	}
}

// TestCancelDuringVeth cancels a veth run in its window: Run returns the
// context's error and leaves nothing behind.
func TestCancelDuringVeth(t *testing.T) {
	requireNetns(t)
	o := short(t, Veth)
	o.Subjects = []string{VswitchJIT}
	o.Sizes, o.Flows = []int{60}, []int{1}
	o.Duration = 10 * o.Duration
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-ctxAfter(o.Warmup + o.Duration/5)
		cancel()
	}()
	_, err := Run(ctx, o)
	if err == nil {
		t.Fatal("no error from a cancelled run")
	}
}
