package scenario

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/govswitch/vswitch/internal/netenv"
)

// hostsOptions are short windows: 10 round trips at 20/s, 250 at 500/s,
// a 300ms TCP window.
func hostsOptions(t *testing.T, subjects ...string) Options {
	o := short(t, Hosts)
	o.Subjects = subjects
	o.RTTWindow = 500 * time.Millisecond
	return o
}

// checkHostsRow fails t for a row without sane figures.
func checkHostsRow(t *testing.T, r HostsResult) {
	t.Helper()
	if r.Skipped != "" {
		t.Errorf("%s %s: %s", r.Switch, r.Measure, r.Skipped)
		return
	}
	switch r.Measure {
	case MeasureRTT:
		if r.Sent == 0 || r.Received == 0 || r.Received > r.Sent || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
			t.Errorf("%s rtt: %+v", r.Switch, r)
		}
		// Requests go out on schedule: all of them, whatever the switch.
		if want := uint64(r.Rate * 0.5); r.Sent != want {
			t.Errorf("%s rtt @ %v/s: sent %d, want %d", r.Switch, r.Rate, r.Sent, want)
		}
	case MeasureTCP:
		if r.Gbps <= 0 || r.Bytes == 0 {
			t.Errorf("%s tcp: %+v", r.Switch, r)
		}
		if _, err := exec.LookPath("iperf3"); err == nil && r.Iperf3Gbps <= 0 {
			t.Errorf("%s tcp: iperf3 is installed but gave no figure: %s", r.Switch, r.Note)
		}
	default:
		t.Errorf("unknown measure %q", r.Measure)
	}
}

// TestRunHosts runs the hosts scenario through vswitch and the bridge
// with short windows: both carry round trips at both rates and a TCP
// stream, vswitch's figures are set against the bridge's, and nothing
// is left behind.
func TestRunHosts(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	tb, err := Run(context.Background(), hostsOptions(t, VswitchJIT, Bridge))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Hosts) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(tb.Hosts), tb.Hosts)
	}
	want := []struct {
		sw, measure string
		rate        float64
	}{
		{VswitchJIT, MeasureRTT, 20}, {VswitchJIT, MeasureRTT, 500}, {VswitchJIT, MeasureTCP, 0},
		{Bridge, MeasureRTT, 20}, {Bridge, MeasureRTT, 500}, {Bridge, MeasureTCP, 0},
	}
	for i, w := range want {
		r := tb.Hosts[i]
		if r.Switch != w.sw || r.Measure != w.measure || r.Rate != w.rate {
			t.Errorf("row %d is %s %s %v, want %s %s %v", i, r.Switch, r.Measure, r.Rate, w.sw, w.measure, w.rate)
		}
		checkHostsRow(t, r)
		if r.Skipped == "" && r.XBridge <= 0 {
			t.Errorf("%s %s: no figure relative to the bridge", r.Switch, r.Measure)
		}
	}
	checkLeftovers(t, before)
}

// TestRunHostsOVS runs the hosts scenario through Open vSwitch with
// AF_PACKET ports (hosts with tx checksum offload off) and AF_XDP ports;
// without OVS installed, the rows say how to get it.
func TestRunHostsOVS(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	tb, err := Run(context.Background(), hostsOptions(t, OVSAFPacket, OVSAFXDPNative))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Hosts) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(tb.Hosts), tb.Hosts)
	}
	_, lookErr := exec.LookPath("ovs-vswitchd")
	for _, r := range tb.Hosts {
		switch {
		case lookErr != nil:
			if !strings.Contains(r.Skipped, "apt-get install -y openvswitch-switch") {
				t.Errorf("without OVS: %+v", r)
			}
		case r.Switch == OVSAFXDPNative && strings.HasPrefix(r.Skipped, "skipped: OVS port"):
			t.Logf("%s: %s", r.Switch, r.Skipped) // AF_XDP not available here: said so
		default:
			checkHostsRow(t, r)
		}
		if r.Switch == OVSAFPacket && !strings.Contains(r.Note, "ethtool -K eth0 tx off") {
			t.Errorf("%s: the note does not say the hosts run with tx off: %q", r.Switch, r.Note)
		}
	}
	checkLeftovers(t, before)
}

// TestCancelDuringHosts cancels the hosts scenario in its first round
// trips: Run returns the context's error and leaves nothing behind.
func TestCancelDuringHosts(t *testing.T) {
	requireNetns(t)
	before := leftoversNow(t)
	o := hostsOptions(t, VswitchJIT)
	o.RTTWindow = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-time.After(2 * time.Second)
		cancel()
	}()
	start := time.Now()
	tb, err := Run(ctx, o)
	if err == nil {
		t.Fatal("no error from a cancelled run")
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the cancelled run went on for %v", time.Since(start))
	}
	for _, r := range tb.Hosts {
		if r.Skipped == "" && r.Measure == MeasureTCP {
			t.Errorf("TCP measured after the cancel: %+v", r)
		}
	}
	checkLeftovers(t, before)
}

// TestTxChecksum turns a veth's transmit checksum offload off and on
// again (setTxChecksum reads it back each time).
func TestTxChecksum(t *testing.T) {
	requireNetns(t)
	a, err := netenv.New()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := netenv.New()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := netenv.Veth(a, "x0", b, "x1", 0); err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		if err := setTxChecksum(a, "x0", on); err != nil {
			t.Errorf("tx %v: %v", on, err)
		}
	}
	if err := setTxChecksum(a, "nosuchdev", false); err == nil {
		t.Error("no error for a missing interface")
	}
}
