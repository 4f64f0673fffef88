package pktgen

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCompareTrafgen is the generator's ceiling scenario: `vswitch pktgen`
// (this binary running Main) and trafgen (netsniff-ng: PACKET_TX_RING with
// qdisc bypass) each transmit the same 60-byte UDP/IPv4 frame on one core
// into a bare veth whose peer (in another namespace, no address, IPv4
// forwarding off) drops it, in turns, in one run. The rate is read at the
// peer's rx_packets over a window after a warm-up. Both generators run
// pinned to CPU 0 in their own session with autogroup priority -20, as
// ../shared/tools/switch-peers.sh runs trafgen.
//
// It takes about (2 + PKTGEN_SECS) * 4 * PKTGEN_RUNS seconds, so it runs
// only with PKTGEN_COMPARE=1:
//
//	PKTGEN_COMPARE=1 go test -run TestCompareTrafgen -v ./bench/pktgen
//
// PKTGEN_RUNS (default 3) and PKTGEN_SECS (default 3s) set the runs per
// generator and the window; PKTGEN_MIN_RATIO (e.g. 0.9) makes a lower
// pktgen/trafgen ratio of the medians fail the test.
func TestCompareTrafgen(t *testing.T) {
	if os.Getenv("PKTGEN_COMPARE") != "1" {
		t.Skip("takes ~30s of both CPUs: run with PKTGEN_COMPARE=1")
	}
	requireRoot(t)
	for _, c := range []string{"taskset", "setsid"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (util-linux)", c)
		}
	}
	trafgen, err := exec.LookPath("trafgen")
	if err != nil {
		t.Log("trafgen not installed (apt-get install -y netsniff-ng): measuring pktgen alone")
	}
	runs := envInt("PKTGEN_RUNS", 3)
	window := envDur("PKTGEN_SECS", 3*time.Second)
	const warmup = 1500 * time.Millisecond

	gen, sinkNS := namedNS(t, "gen"), namedNS(t, "sink")
	const genMAC, sinkMAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
	namedVeth(t, gen, "g0", genMAC, sinkNS, "k0", sinkMAC)

	frame, err := BuildFrame(Config{}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "frame.cfg")
	var b strings.Builder
	b.WriteString("{ ")
	for i, x := range frame {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "0x%02x", x)
	}
	b.WriteString(" }\n")
	if err := os.WriteFile(cfgFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	// measure runs cmd (a generator in its own session) and returns the
	// rate seen at the sink over the window, and the generator's output.
	// It also logs the CPU time the generator's session (with the softirq
	// work the kernel does on its behalf) spent per frame: a figure that
	// holds better than the rate when other work shares the machine.
	measure := func(name string, cmd *exec.Cmd) (float64, string) {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("%v: %v", cmd.Args, err)
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
		defer stop()
		time.Sleep(warmup)
		back0 := linkStats(t, gen, "g0").RxPackets
		c0, t0, cpu0 := linkStats(t, sinkNS, "k0").RxPackets, time.Now(), sessionCPU(cmd.Process.Pid)
		time.Sleep(window)
		c1, t1, cpu1 := linkStats(t, sinkNS, "k0").RxPackets, time.Now(), sessionCPU(cmd.Process.Pid)
		if c1 > c0 {
			t.Logf("%s: %.0f%% of a CPU, %v of CPU per frame", name,
				100*(cpu1-cpu0).Seconds()/t1.Sub(t0).Seconds(), (cpu1-cpu0)/time.Duration(c1-c0))
		}
		back := linkStats(t, gen, "g0").RxPackets - back0
		stop()
		if back > 0 {
			t.Errorf("the sink answered with %d frames (ICMP?)", back)
		}
		return float64(c1-c0) / t1.Sub(t0).Seconds(), out.String()
	}
	session := []string{"setsid", "sh", "-c",
		`echo -20 > /proc/self/autogroup 2>/dev/null; exec taskset -c 0 "$@"`, "sh"}

	var tg, pg, pgRing, pg64 []float64
	for r := 0; r < runs; r++ {
		if trafgen != "" {
			argv := append([]string{"ip", "netns", "exec", gen}, session...)
			argv = append(argv, trafgen, "-o", "g0", "-i", cfgFile, "-P", "1", "--no-sock-mem", "-Q")
			pps, out := measure("trafgen", exec.Command(argv[0], argv[1:]...))
			if !strings.Contains(out, "packets outgoing") {
				t.Logf("trafgen output: %s", strings.ReplaceAll(out, "\r", ""))
			}
			t.Logf("run %d trafgen: %.3f Mpps", r+1, pps/1e6)
			tg = append(tg, pps)
		}
		args := []string{"-i", "g0", "--netns", gen, "--src-mac", genMAC, "--dst-mac", sinkMAC, "-j"}
		pps, out := measure("pktgen", pktgenCmd(t, session, args...))
		var s Summary
		lastJSON(t, out, &s)
		t.Logf("run %d pktgen: %.3f Mpps (pktgen says %.3f Mpps, ring full %d)", r+1, pps/1e6, s.PPS/1e6, s.RingFull)
		pg = append(pg, pps)
		pps, out = measure("pktgen --tx-mode ring", pktgenCmd(t, session, append(args, "--tx-mode", "ring")...))
		lastJSON(t, out, &s)
		t.Logf("run %d pktgen --tx-mode ring: %.3f Mpps", r+1, pps/1e6)
		pgRing = append(pgRing, pps)
		pps, out = measure("pktgen -f 64", pktgenCmd(t, session, append(args, "-f", "64")...))
		lastJSON(t, out, &s)
		t.Logf("run %d pktgen 64 flows: %.3f Mpps", r+1, pps/1e6)
		pg64 = append(pg64, pps)
	}
	mp := median(pg)
	t.Logf("pktgen 60-byte frames, 1 flow, one core: median %.3f Mpps; with the TX ring %.3f; 64 flows %.3f",
		mp/1e6, median(pgRing)/1e6, median(pg64)/1e6)
	if trafgen == "" {
		return
	}
	mt := median(tg)
	ratio := mp / mt
	t.Logf("trafgen: median %.3f Mpps; pktgen/trafgen = %.2f", mt/1e6, ratio)
	if min := os.Getenv("PKTGEN_MIN_RATIO"); min != "" {
		var want float64
		fmt.Sscan(min, &want)
		if ratio < want {
			t.Errorf("pktgen reaches %.2f of trafgen's rate, want at least %.2f", ratio, want)
		}
	}
}

// sessionCPU is the user and system time of the processes of session sid.
func sessionCPU(sid int) time.Duration {
	const clkTck = 100 // USER_HZ, fixed by the kernel ABI
	var ticks int64
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): session is field 6, utime 14, stime 15.
		if len(f) < 13 || f[3] != fmt.Sprint(sid) {
			continue
		}
		var u, s int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &s)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / clkTck
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}
