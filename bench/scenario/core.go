package scenario

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/daemon"
)

// Addresses of the core scenario's two stations.
var (
	coreMACA = [6]byte{0x02, 0, 0, 0xc0, 0, 0x0a}
	coreMACB = [6]byte{0x02, 0, 0, 0xc0, 0, 0x0b}
)

// coreCases are the engine and worker counts of the core scenario.
var coreCases = []struct {
	engine  string
	workers int
}{{"jit", 1}, {"jit", 2}, {"interp", 1}}

func runCore(ctx context.Context, o Options, logf func(string, ...any)) []CoreResult {
	var out []CoreResult
	for _, c := range coreCases {
		if ctx.Err() != nil {
			break
		}
		r := CoreResult{Engine: c.engine, Workers: c.workers, Size: 60}
		if err := measureCoreRuns(ctx, o, &r); err != nil {
			r.Skipped = err.Error()
			if ctx.Err() != nil {
				r.Skipped = "interrupted"
			}
			logf("core %s %d workers: %s", r.Engine, r.Workers, r.Skipped)
		} else {
			logf("core %s %d workers: %.2f Mpps", r.Engine, r.Workers, r.Mpps)
		}
		out = append(out, r)
	}
	return out
}

// measureCoreRuns measures o.Runs times and keeps the run with the
// median rate.
func measureCoreRuns(ctx context.Context, o Options, r *CoreResult) error {
	var runs []CoreResult
	for i := 0; i < o.Runs; i++ {
		x := *r
		if err := measureCore(ctx, o, &x); err != nil {
			*r = x // what was measured before the error
			return err
		}
		runs = append(runs, x)
	}
	slices.SortFunc(runs, func(a, b CoreResult) int { return cmp.Compare(a.Mpps, b.Mpps) })
	*r = runs[len(runs)/2]
	for _, x := range runs {
		if len(runs) > 1 {
			r.RunsMpps = append(r.RunsMpps, x.Mpps)
		}
	}
	return nil
}

// coreFrame is a 60-byte frame from src to dst (EtherType 0x88b5, local
// experimental).
func coreFrame(dst, src [6]byte) []byte {
	f := make([]byte, 60)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	return f
}

// measureCore runs the learning program in a switch with two virtual
// ports, A with r.Workers queues (so r.Workers workers serve A) and B.
// B's station is learned first (a broadcast from it, which floods to A);
// then a generator goroutine sends unicast frames A -> B as fast as A's
// rings take them and drains B. The rate is what it received over the
// window.
func measureCore(ctx context.Context, o Options, r *CoreResult) error {
	d := daemon.New(daemon.Config{Workers: r.Workers})
	defer d.Close()
	if _, err := d.LoadDefault(r.Engine); err != nil {
		return err
	}
	sw := d.Switch()
	// A has a queue per worker; the program leaves ring_nr at 0, so every
	// worker sends to B's queue 0 and B needs no more.
	swA, hostA := bpfport.NewVirtualPair("core-a", "gen", bpfport.VirtualConfig{Queues: r.Workers, RingSize: 4096})
	swB, hostB := bpfport.NewVirtualPair("core-b", "sink", bpfport.VirtualConfig{RingSize: 4096})
	defer hostA.Close()
	defer hostB.Close()
	for _, p := range []*bpfport.Virtual{swA, swB} {
		if _, err := sw.Attach(p, "virtual"); err != nil {
			swA.Close()
			swB.Close()
			return err
		}
	}
	// Teach the switch where B is.
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if _, err := hostB.SendBatch(0, [][]byte{coreFrame(bcast, coreMACB)}, nil); err != nil {
		return err
	}
	if err := waitLearned(d, coreMACB, 2*time.Second); err != nil {
		return err
	}

	frames := make([][]byte, 256)
	f := coreFrame(coreMACB, coreMACA)
	for i := range frames {
		frames[i] = f
	}
	// One goroutine both generates and drains, so that the workers have
	// the other cores: it hands A a batch per queue, then takes from B
	// what the switch has put there (B's transmit counter says how much,
	// so RecvBatch never waits).
	var stop atomic.Bool
	var delivered atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := bpfport.NewBatch(256)
		var consumed uint64
		for !stop.Load() {
			sent := 0
			for q := 0; q < r.Workers; q++ {
				n, err := hostA.SendBatch(q, frames, nil)
				if err != nil {
					return
				}
				sent += n
			}
			avail := swB.Stats().TxPackets - consumed
			for avail > 0 {
				n, err := hostB.RecvBatch(0, b)
				if err != nil {
					return
				}
				consumed += uint64(n)
				avail -= min(avail, uint64(n))
				delivered.Add(uint64(n))
			}
			if sent == 0 {
				runtime.Gosched()
			}
		}
	}()
	defer func() {
		stop.Store(true)
		hostB.Wake()
		<-done
	}()

	if err := sleep(ctx, o.Warmup); err != nil {
		return err
	}
	c0, d0, t0, cpu0 := delivered.Load(), switchDrops(d), time.Now(), processCPU()
	if err := sleep(ctx, o.Duration); err != nil {
		return err
	}
	c1, d1, t1, cpu1 := delivered.Load(), switchDrops(d), time.Now(), processCPU()
	r.Cores = (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds()
	r.Frames = c1 - c0
	for k, v := range d1 {
		if n := v - d0[k]; n > 0 {
			r.Dropped += n
			r.DropReasons = append(r.DropReasons, fmt.Sprintf("%s %d", k, n))
		}
	}
	slices.Sort(r.DropReasons)
	r.Mpps = float64(r.Frames) / t1.Sub(t0).Seconds() / 1e6
	if r.Frames == 0 {
		return fmt.Errorf("nothing was forwarded (drops: %s)", strings.Join(r.DropReasons, ", "))
	}
	return nil
}

// waitLearned waits until the daemon's FDB has mac.
func waitLearned(d *daemon.Daemon, mac [6]byte, timeout time.Duration) error {
	return waitInFDB(d.FDB, mac, timeout)
}

// waitInFDB waits until the FDB that fdb returns has mac.
func waitInFDB(fdb func() (control.FDBResult, error), mac [6]byte, timeout time.Duration) error {
	want := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
	deadline := time.Now().Add(timeout)
	for {
		r, err := fdb()
		if err != nil {
			return err
		}
		for _, e := range r.Entries {
			if e.MAC == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the switch did not learn %s within %v", want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// switchDrops sums the drop counters of every port by reason.
func switchDrops(d *daemon.Daemon) map[string]uint64 {
	m := map[string]uint64{}
	for _, p := range d.Switch().PortStats() {
		for k, v := range p.DropsByName() {
			m[k] += v
		}
	}
	return m
}

// processCPU returns the CPU time this process used so far (user and
// system, all threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sleep waits for d or the end of ctx.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
