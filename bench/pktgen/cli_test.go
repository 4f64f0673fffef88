package pktgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/govswitch/vswitch/bpfport"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want Options
	}{
		{"minimal", []string{"-i", "veth0"}, Options{Iface: "veth0", TXMode: bpfport.TXSendmmsg, Config: Config{Mode: Transmit}}},
		{"everything long", []string{"--iface=eth1", "--netns", "gen", "--mode", "rx", "--size", "1514",
			"--rate", "1.5M", "--count", "10k", "--duration", "2.5", "--flows", "64", "--vary", "sip,dport",
			"--burst", "32", "--src-mac", "02:aa:00:00:00:01", "--dst-mac", "02:bb:00:00:00:02",
			"--src-ip", "10.1.0.1", "--dst-ip", "10.2.0.1", "--src-port", "5000", "--dst-port", "6000",
			"--interval", "500ms", "--tx-mode", "ring", "--json"},
			Options{Iface: "eth1", Netns: "gen", JSON: true, TXMode: bpfport.TXRing, Config: Config{
				Mode: Receive, Size: 1514, Rate: 1.5e6, Count: 10000, Duration: 2500 * time.Millisecond,
				Flows: 64, Vary: VarySrcIP | VaryDstPort, Burst: 32,
				SrcMAC: net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0xbb, 0, 0, 0, 2},
				SrcIP: netip.MustParseAddr("10.1.0.1"), DstIP: netip.MustParseAddr("10.2.0.1"),
				SrcPort: 5000, DstPort: 6000, Interval: 500 * time.Millisecond}}},
		{"short", []string{"-i", "g0", "-s", "64", "-r", "0", "-n", "5", "-d", "1m", "-f", "2", "-b", "1", "-j"},
			Options{Iface: "g0", JSON: true, TXMode: bpfport.TXSendmmsg, Config: Config{Mode: Transmit, Size: 64,
				Count: 5, Duration: time.Minute, Flows: 2, Burst: 1}}},
		{"help", []string{"--help"}, Options{Help: true}},
		{"help after", []string{"-i", "x", "-h"}, Options{Iface: "x", Help: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{}, "no interface"},
		{[]string{"-i", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"-i", "x", "--bogus"}, "bogus"},
		{[]string{"-i"}, "needs an argument"},
		{[]string{"-i", "x", "--mode", "both"}, "want tx or rx"},
		{[]string{"-i", "x", "-s", "59"}, "60..9000"},
		{[]string{"-i", "x", "-s", "9001"}, "60..9000"},
		{[]string{"-i", "x", "-s", "big"}, "not a whole number"},
		{[]string{"-i", "x", "-r", "-5"}, "--rate"},
		{[]string{"-i", "x", "-r", "fast"}, "--rate"},
		{[]string{"-i", "x", "-n", "0"}, "--count"},
		{[]string{"-i", "x", "-n", "1.5"}, "--count"},
		{[]string{"-i", "x", "-d", "0"}, "positive"},
		{[]string{"-i", "x", "-d", "soon"}, "like 10s"},
		{[]string{"-i", "x", "-f", "0"}, "1..65536"},
		{[]string{"-i", "x", "-f", "65537"}, "1..65536"},
		{[]string{"-i", "x", "--vary", "ttl"}, `unknown field "ttl"`},
		{[]string{"-i", "x", "--vary", "none"}, "no field varies"},
		{[]string{"-i", "x", "-b", "5000"}, "1..4096"},
		{[]string{"-i", "x", "--src-mac", "02:00"}, "--src-mac"},
		{[]string{"-i", "x", "--dst-mac", "zz"}, "--dst-mac"},
		{[]string{"-i", "x", "--dst-ip", "::1"}, "IPv4"},
		{[]string{"-i", "x", "--src-ip", "1.2.3"}, "--src-ip"},
		{[]string{"-i", "x", "--dst-port", "0"}, "1..65535"},
		{[]string{"-i", "x", "--interval", "1ms"}, "at least 10ms"},
		{[]string{"-i", "x", "--tx-mode", "xdp"}, "sendmmsg or ring"},
	} {
		_, err := ParseArgs(tc.args)
		if err == nil {
			t.Errorf("%q: no error", tc.args)
			continue
		}
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want one wrapping ErrUsage containing %q", tc.args, err, tc.want)
		}
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--help"}, &out, &errb); code != 0 || out.String() != Usage {
		t.Errorf("--help: exit %d, stdout %q", code, out.String())
	}
	// Every option in the help text parses.
	for _, f := range []string{"--iface", "--netns", "--mode", "--size", "--rate", "--count", "--duration", "--flows",
		"--vary", "--burst", "--src-mac", "--dst-mac", "--src-ip", "--dst-ip", "--src-port", "--dst-port",
		"--interval", "--tx-mode", "--json", "--help", "-i,", "-s,", "-r,", "-n,", "-d,", "-f,", "-b,", "-j,", "-h,"} {
		if !strings.Contains(Usage, f) {
			t.Errorf("Usage does not mention %s", f)
		}
	}
	out.Reset()
	if code := Main(context.Background(), []string{"-s", "10"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "vswitch pktgen: ") {
		t.Errorf("bad usage: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(context.Background(), []string{"-i", "pktgen-no-such-if0"}, &out, &errb); code != 1 || errb.Len() == 0 {
		t.Errorf("missing interface: exit %d, stderr %q", code, errb.String())
	}
}

func ExampleSummary_String() {
	s := Summary{Type: "summary", Mode: "rx", Port: "k0", Flows: 2, Seconds: 2, Counters: Counters{
		Packets: 2_000_000, Bytes: 120_000_000, Lost: 3, Duplicates: 1, Reordered: 2,
		Latency: &Latency{Samples: 2_000_000, P50: 12_000, P99: 45_500, P999: 101_000, Max: 2_000_000}}}
	s.setRates(2 * time.Second)
	fmt.Println(s)
	// Output:
	// rx on k0: 2000000 frames (120.000MB) received in 2.000s
	// rx: 1.000M pps, 672.000Mb/s on the wire (L1: +24 B FCS/preamble/gap per frame), 480.000Mb/s of frames lost 3 dup 1 reord 2 latency p50 12µs p99 45.5µs p99.9 101µs max 2ms
}

func ExampleInterval_String() {
	iv := Interval{Type: "interval", Mode: "tx", Elapsed: 3, Seconds: 1, Counters: Counters{Packets: 1_700_000, Bytes: 102_000_000, RingFull: 5}}
	iv.setRates(time.Second)
	fmt.Println(iv)
	// Output:
	//    3.000s tx 1.700M pps 1.142Gb/s ring-full 5
}

func FuzzParseArgs(f *testing.F) {
	f.Add("-i\x00g0\x00-r\x001.5M\x00-n\x0010k\x00--vary\x00sip,dport")
	f.Add("--iface=x\x00--mode\x00rx\x00-d\x002.5\x00--src-mac\x0002:00:00:00:00:01")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseArgs(strings.Split(s, "\x00"))
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("error %v does not wrap ErrUsage", err)
			}
			return
		}
		if o.Help {
			return
		}
		if _, err := o.Config.withDefaults(); err != nil {
			t.Fatalf("ParseArgs accepted %q but the config is invalid: %v", s, err)
		}
	})
}

func FuzzParseProbe(f *testing.F) {
	good, _ := BuildFrame(Config{}, 0, 1, 2)
	f.Add(good)
	f.Add(good[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := ParseProbe(b)
		if !ok {
			return
		}
		// A frame accepted is long enough for its probe.
		if len(b) < hdrLen+probeLen {
			t.Fatalf("accepted %d bytes", len(b))
		}
		_ = p
	})
}
