package pktgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/govswitch/vswitch/bpfport"
)

// Run transmits or receives on queue cfg.Queue of port, as cfg.Mode says,
// until cfg.Count frames, cfg.Duration or the end of ctx, whichever comes
// first, calling report (if not nil) once per cfg.Interval from the
// goroutine that runs the data path. It returns the summary of what was
// done, also when ctx ends the run (then with Interrupted set and a nil
// error). An invalid cfg returns an error before anything is sent; a port
// error ends the run and is returned with the summary so far. Run does not
// close the port.
func Run(ctx context.Context, port bpfport.Port, cfg Config, report func(Interval)) (Summary, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	if nq := port.NumQueues(); c.Queue >= nq {
		return Summary{}, fmt.Errorf("queue %d: port %s has %d queues", c.Queue, port.Name(), nq)
	}
	if c.Mode == Receive {
		return newReceiver(port, c).run(ctx, report)
	}
	if maxLen := port.MTU() + 14; c.Size > maxLen {
		return Summary{}, fmt.Errorf("frame size %d: port %s takes at most %d bytes (MTU %d + 14); raise its MTU or use a smaller size",
			c.Size, port.Name(), maxLen, port.MTU())
	}
	return newGenerator(port, c).run(ctx, report)
}

func errFlowRange(flow, flows int) error {
	return fmt.Errorf("flow %d: must be 0..%d", flow, flows-1)
}

// ticker decides when an interval ends, from times the data path reads
// anyway.
type ticker struct {
	start, last time.Time
	every       time.Duration
	next        time.Duration
}

func newTicker(start time.Time, every time.Duration) ticker {
	return ticker{start: start, last: start, every: every, next: every}
}

// due reports whether an interval ended at now and returns its bounds.
func (t *ticker) due(now time.Time) (el, secs float64, ok bool) {
	e := now.Sub(t.start)
	if e < t.next {
		return 0, 0, false
	}
	secs = now.Sub(t.last).Seconds()
	t.last = now
	for t.next <= e {
		t.next += t.every
	}
	return e.Seconds(), secs, true
}

// generator is the transmit side. Frames are built once; a burst copies
// each frame's flow header when flows differ, then writes the sequence
// number and the send time in place.
type generator struct {
	port  bpfport.Port
	cfg   Config
	hdrs  []byte   // Flows * hdrLen: headers of every flow
	seqs  []uint64 // next sequence number per flow
	slots [][]byte // Burst frames of cfg.Size
	flow  int      // flow of the next frame

	sent, ringFull uint64
	zeroSends      int
}

func newGenerator(port bpfport.Port, c Config) *generator {
	g := &generator{port: port, cfg: c, seqs: make([]uint64, c.Flows)}
	g.hdrs = make([]byte, c.Flows*hdrLen)
	for i := 0; i < c.Flows; i++ {
		flowHeader(g.hdrs[i*hdrLen:(i+1)*hdrLen], &g.cfg, i)
	}
	buf := make([]byte, c.Burst*c.Size)
	g.slots = make([][]byte, c.Burst)
	for i := range g.slots {
		f := buf[i*c.Size : (i+1)*c.Size : (i+1)*c.Size]
		copy(f, g.hdrs[:hdrLen])
		putProbe(f, 0, 0)
		g.slots[i] = f
	}
	return g
}

// fill stamps the first k slots with the next frames of the flows.
func (g *generator) fill(k int, t int64) [][]byte {
	frames := g.slots[:k]
	nf := len(g.seqs)
	if nf == 1 {
		seq := g.seqs[0]
		for _, f := range frames {
			putSeqTime(f, seq, t)
			seq++
		}
		g.seqs[0] = seq
		return frames
	}
	fl := g.flow
	for _, f := range frames {
		copy(f[:hdrLen], g.hdrs[fl*hdrLen:(fl+1)*hdrLen])
		putSeqTime(f, g.seqs[fl], t)
		g.seqs[fl]++
		if fl++; fl == nf {
			fl = 0
		}
	}
	g.flow = fl
	return frames
}

// send hands frames to the port until all are taken, waiting while the
// transmit ring is full. It returns early only on ctx's end or an error.
func (g *generator) send(done <-chan struct{}, frames [][]byte) error {
	for len(frames) > 0 {
		n, err := g.port.SendBatch(g.cfg.Queue, frames, nil)
		g.sent += uint64(n)
		frames = frames[n:]
		if err != nil {
			if errors.Is(err, bpfport.ErrLinkDown) {
				// Transient: wait for the link to come back.
				select {
				case <-done:
					return nil
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			return err
		}
		if len(frames) == 0 {
			g.zeroSends = 0
			return nil
		}
		g.ringFull++
		if n > 0 {
			g.zeroSends = 0
			continue
		}
		// Nothing went: the kernel still holds every slot. Let it (and
		// softirq work on this CPU) run before trying again.
		if g.zeroSends++; g.zeroSends < 8 {
			runtime.Gosched()
			continue
		}
		select {
		case <-done:
			return nil
		default:
		}
		time.Sleep(20 * time.Microsecond)
	}
	return nil
}

// burst sends the next k frames stamped with t. It does not allocate.
func (g *generator) burst(done <-chan struct{}, k int, t int64) error {
	return g.send(done, g.fill(k, t))
}

// rateQuantum is the batch size of a rate-limited run: about 50µs worth of
// frames, 1..burst.
func rateQuantum(rate float64, burst int) float64 {
	return min(max(1, float64(int(rate*50e-6))), float64(burst))
}

func (g *generator) run(ctx context.Context, report func(Interval)) (Summary, error) {
	c := &g.cfg
	done := ctx.Done()
	start := time.Now()
	tk := newTicker(start, c.Interval)
	st0 := g.port.Stats()
	lastStats := st0
	var lastSent, lastRingFull uint64
	emit := func(el, secs float64) {
		st := g.port.Stats()
		iv := Interval{Type: "interval", Mode: c.Mode.String(), Elapsed: el, Seconds: secs}
		iv.Packets = g.sent - lastSent
		iv.Bytes = iv.Packets * uint64(c.Size)
		iv.RingFull = g.ringFull - lastRingFull
		iv.Dropped = (st.TxOversize + st.TxErrors) - (lastStats.TxOversize + lastStats.TxErrors)
		iv.setRates(time.Duration(secs * 1e9))
		lastSent, lastRingFull, lastStats = g.sent, g.ringFull, st
		if report != nil {
			report(iv)
		}
	}

	var (
		tokens, quantum, capacity float64
		last                      = start
	)
	if c.Rate > 0 {
		quantum = rateQuantum(c.Rate, c.Burst)
		// Up to 10ms of frames may go at once (in bursts) to catch up
		// after the generator was descheduled: the average holds.
		capacity = max(float64(c.Burst), c.Rate*10e-3)
		tokens = quantum
	}
	var err error
	interrupted := false
	for {
		select {
		case <-done:
			interrupted = true
		default:
		}
		if interrupted {
			break
		}
		now := time.Now()
		if el, secs, ok := tk.due(now); ok {
			emit(el, secs)
		}
		if c.Duration > 0 && now.Sub(start) >= c.Duration {
			break
		}
		k := c.Burst
		if c.Count > 0 {
			if g.sent >= c.Count {
				break
			}
			k = int(min(uint64(k), c.Count-g.sent))
		}
		if c.Rate > 0 {
			tokens = min(capacity, tokens+now.Sub(last).Seconds()*c.Rate)
			last = now
			if tokens < quantum && tokens < float64(k) {
				wait := time.Duration((min(quantum, float64(k)) - tokens) / c.Rate * 1e9)
				if wait >= 20*time.Microsecond {
					// Sleep accuracy does not matter: the bucket keeps
					// what an oversleep earned. Shorter waits spin.
					t := time.NewTimer(wait)
					select {
					case <-done:
					case <-t.C:
					}
					t.Stop()
				}
				continue
			}
			k = min(k, int(tokens))
			tokens -= float64(k)
		}
		if err = g.burst(done, k, now.UnixNano()); err != nil {
			break
		}
	}
	end := time.Now()
	if el, secs := end.Sub(start).Seconds(), end.Sub(tk.last).Seconds(); g.sent != lastSent && secs > 0 {
		emit(el, secs)
	}
	st := g.port.Stats()
	s := Summary{Type: "summary", Mode: c.Mode.String(), Port: g.port.Name(), Size: c.Size,
		Flows: c.Flows, Rate: c.Rate, Burst: c.Burst, Seconds: end.Sub(start).Seconds(),
		Interrupted: interrupted && err == nil}
	s.Packets = g.sent
	s.Bytes = g.sent * uint64(c.Size)
	s.RingFull = g.ringFull
	s.Dropped = (st.TxOversize + st.TxErrors) - (st0.TxOversize + st0.TxErrors)
	s.setRates(end.Sub(start))
	if err != nil {
		return s, fmt.Errorf("transmit on %s: %w", g.port.Name(), err)
	}
	return s, nil
}
