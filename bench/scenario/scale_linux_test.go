package scenario

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// checkScaleRow fails t for a row without sane figures. A port the switch
// refused is fine (the switch's limits are what the scenario reports) as
// long as the note says so and the rest was measured.
func checkScaleRow(t *testing.T, r ScaleResult) {
	t.Helper()
	if r.Skipped != "" {
		t.Errorf("%s %d ports: %s", r.Switch, r.Ports, r.Skipped)
		return
	}
	if r.Attached == 0 || r.Attached > r.Ports {
		t.Errorf("%s: %d of %d ports attached", r.Switch, r.Attached, r.Ports)
	}
	if r.Attached < r.Ports && !strings.Contains(r.Note, "refused") {
		t.Errorf("%s: %d of %d ports attached and the note does not say why: %q", r.Switch, r.Attached, r.Ports, r.Note)
	}
	if r.RSSBaseKB == 0 || r.RSSKB == 0 || r.ThreadsBase == 0 || r.Threads == 0 {
		t.Errorf("%s %d ports: no memory or thread figures: %+v", r.Switch, r.Ports, r)
	}
	if r.AttachTime <= 0 || r.PortShow <= 0 || r.Stats <= 0 || r.IdleCPU < 0 {
		t.Errorf("%s %d ports: no times: %+v", r.Switch, r.Ports, r)
	}
}

func checkBusyRow(t *testing.T, r ScaleBusyResult) {
	t.Helper()
	if strings.Contains(r.Skipped, "the sink received nothing") {
		t.Logf("%s busy pair: %s: machine too busy to judge", r.Switch, r.Skipped)
		return
	}
	if r.Skipped != "" || r.Mpps <= 0 || r.AloneMpps <= 0 || r.OfAlone <= 0 || r.Attached == 0 {
		t.Errorf("%s busy pair: %+v", r.Switch, r)
	}
	if r.Attached < r.IdlePorts && !strings.Contains(r.Note, "refused") {
		t.Errorf("%s busy pair: %d of %d idle ports attached and the note does not say why: %q", r.Switch, r.Attached, r.IdlePorts, r.Note)
	}
}

// TestRunScale runs the scale scenario against a vswitch daemon process
// (this test binary, see TestMain) with 2 and 66 idle ports (more than
// the 64 port queues a switch without a worker pool took: a refused port
// must be reported and the rest measured) and a busy pair among 3 idle
// ports: rows with figures, and nothing left behind, processes included.
func TestRunScale(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := short(t, Scale)
	o.Subjects = []string{VswitchJIT}
	o.ScalePorts = []int{2, 66}
	o.ScaleBusyIdle = 3
	daemonOptions(t, &o)
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Scale) != 2 || len(tb.ScaleBusy) != 1 {
		t.Fatalf("rows %+v %+v", tb.Scale, tb.ScaleBusy)
	}
	for i, r := range tb.Scale {
		if r.Switch != VswitchJIT || r.Ports != o.ScalePorts[i] {
			t.Errorf("row %d: %s %d ports", i, r.Switch, r.Ports)
		}
		checkScaleRow(t, r)
	}
	checkBusyRow(t, tb.ScaleBusy[0])
	checkLeftovers(t, before)
}

// TestRunScaleOVS runs the scale scenario against ovs-vswitchd; without
// OVS installed, the rows say how to get it.
func TestRunScaleOVS(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := short(t, Scale)
	o.Subjects = []string{OVSAFPacket}
	o.ScalePorts = []int{3}
	o.ScaleBusyIdle = 2
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Scale) != 1 || len(tb.ScaleBusy) != 1 {
		t.Fatalf("rows %+v %+v", tb.Scale, tb.ScaleBusy)
	}
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		for _, s := range []string{tb.Scale[0].Skipped, tb.ScaleBusy[0].Skipped} {
			if !strings.Contains(s, "apt-get install -y openvswitch-switch") {
				t.Errorf("without OVS: %q", s)
			}
		}
		return
	}
	checkScaleRow(t, tb.Scale[0])
	checkBusyRow(t, tb.ScaleBusy[0])
	checkLeftovers(t, before)
}

// TestCancelDuringScale cancels the scale scenario in its idle window:
// Run returns the context's error, the daemon process is gone and nothing
// else is left behind.
func TestCancelDuringScale(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := short(t, Scale)
	o.Subjects = []string{VswitchJIT}
	o.ScalePorts = []int{4}
	o.Duration = time.Minute
	daemonOptions(t, &o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-time.After(3 * time.Second)
		cancel()
	}()
	start := time.Now()
	if _, err := Run(ctx, o); err == nil {
		t.Fatal("no error from a cancelled run")
	}
	if time.Since(start) > 40*time.Second {
		t.Errorf("the cancelled run went on for %v", time.Since(start))
	}
	checkLeftovers(t, before)
}

// TestDaemonProcessError: a daemon command that cannot run gives a row
// that says why, and leaves nothing behind.
func TestDaemonProcessError(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := short(t, Scale)
	o.Subjects = []string{VswitchJIT}
	o.ScalePorts = []int{1}
	o.ScaleBusyIdle = 1
	o.DaemonCommand = []string{os.DevNull}
	tb, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Scale) != 1 || !strings.Contains(tb.Scale[0].Skipped, "vswitch daemon") {
		t.Errorf("rows %+v", tb.Scale)
	}
	checkLeftovers(t, before)
}
