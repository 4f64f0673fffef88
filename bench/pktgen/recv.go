package pktgen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govswitch/vswitch/bpfport"
)

// receiver is the sink side.
type receiver struct {
	port  bpfport.Port
	cfg   Config
	batch *bpfport.Batch
	sink  *sink
	hist  *histogram // current interval
	total *histogram

	packets, bytes, foreign uint64
}

func newReceiver(port bpfport.Port, c Config) *receiver {
	return &receiver{
		port:  port,
		cfg:   c,
		batch: bpfport.NewBatch(max(c.Burst, 256)),
		sink:  newSink(c.Flows),
		hist:  new(histogram),
		total: new(histogram),
	}
}

// handle accounts frames[:n] received at now (ns since the epoch) and
// returns false once cfg.Count frames were counted. It does not allocate
// (unless a flow id above every one seen arrives).
func (r *receiver) handle(frames [][]byte, stamps []int64, now int64) bool {
	for i, f := range frames {
		p, ok := ParseProbe(f)
		if !ok {
			r.foreign++
			continue
		}
		r.packets++
		r.bytes += uint64(len(f))
		r.sink.add(p.Flow, p.Seq)
		at := stamps[i]
		if at <= 0 {
			at = now
		}
		r.hist.record(at - p.Time)
		if r.cfg.Count > 0 && r.packets >= r.cfg.Count {
			return false
		}
	}
	return true
}

func (r *receiver) run(ctx context.Context, report func(Interval)) (Summary, error) {
	c := &r.cfg
	start := time.Now()
	tk := newTicker(start, c.Interval)

	// RecvBatch blocks: a helper wakes it at every interval, at the
	// deadline and when ctx ends, so reports and the end come on time.
	stop := make(chan struct{})
	helperDone := make(chan struct{})
	go func() {
		defer close(helperDone)
		t := time.NewTicker(c.Interval)
		defer t.Stop()
		var deadline <-chan time.Time
		if c.Duration > 0 {
			dt := time.NewTimer(c.Duration)
			defer dt.Stop()
			deadline = dt.C
		}
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				r.port.Wake()
				return
			case <-deadline:
				r.port.Wake()
			case <-t.C:
				r.port.Wake()
			}
		}
	}()
	defer func() {
		close(stop)
		<-helperDone
	}()

	var last struct {
		packets, bytes, foreign uint64
		c                       seqCounters
		ringDrops               uint64
	}
	st0 := r.port.Stats()
	last.ringDrops = st0.RxKernelDrops
	emit := func(el, secs float64) {
		iv := Interval{Type: "interval", Mode: c.Mode.String(), Elapsed: el, Seconds: secs}
		iv.Packets = r.packets - last.packets
		iv.Bytes = r.bytes - last.bytes
		iv.Foreign = r.foreign - last.foreign
		sc := r.sink.c
		iv.Lost = int64(sc.lost()) - int64(last.c.lost())
		iv.Duplicates = sc.duplicates - last.c.duplicates
		iv.Reordered = sc.reordered - last.c.reordered
		iv.Latency = r.hist.latency()
		drops := r.port.Stats().RxKernelDrops
		iv.RingDrops, last.ringDrops = drops-last.ringDrops, drops
		iv.setRates(time.Duration(secs * 1e9))
		r.total.merge(r.hist)
		r.hist.reset()
		last.packets, last.bytes, last.foreign, last.c = r.packets, r.bytes, r.foreign, sc
		if report != nil {
			report(iv)
		}
	}

	var err error
	interrupted := false
	for {
		n, rerr := r.port.RecvBatch(c.Queue, r.batch)
		now := time.Now()
		more := true
		if n > 0 {
			more = r.handle(r.batch.Frames[:n], r.batch.Timestamps[:n], now.UnixNano())
		}
		if rerr != nil {
			if errors.Is(rerr, bpfport.ErrLinkDown) {
				// Transient: the port delivers again when the link is up.
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			} else {
				err = rerr
				break
			}
		}
		if el, secs, ok := tk.due(now); ok {
			emit(el, secs)
		}
		if !more || (c.Duration > 0 && now.Sub(start) >= c.Duration) {
			break
		}
		if ctx.Err() != nil {
			interrupted = true
			break
		}
	}
	end := time.Now()
	if secs := end.Sub(tk.last).Seconds(); secs > 0 && (r.packets != last.packets || r.foreign != last.foreign) {
		emit(end.Sub(start).Seconds(), secs)
	}
	r.total.merge(r.hist)
	r.hist.reset()
	s := Summary{Type: "summary", Mode: c.Mode.String(), Port: r.port.Name(),
		Flows: r.flowsSeen(), Seconds: end.Sub(start).Seconds(), Interrupted: interrupted}
	s.Packets, s.Bytes, s.Foreign = r.packets, r.bytes, r.foreign
	sc := r.sink.c
	s.Lost = int64(sc.lost())
	s.Duplicates, s.Reordered = sc.duplicates, sc.reordered
	s.Latency = r.total.latency()
	s.RingDrops = r.port.Stats().RxKernelDrops - st0.RxKernelDrops
	s.setRates(end.Sub(start))
	if err != nil {
		return s, fmt.Errorf("receive on %s: %w", r.port.Name(), err)
	}
	return s, nil
}

func (r *receiver) flowsSeen() int {
	n := 0
	for i := range r.sink.flows {
		if r.sink.flows[i].started {
			n++
		}
	}
	return n
}
