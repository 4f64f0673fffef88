package bpfport

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// CaptureConfig configures NewCapture. The zero value means defaults.
type CaptureConfig struct {
	// SnapLen is the most bytes kept of each frame (default: the port's
	// MTU + 18, i.e. whole frames).
	SnapLen int
	// Slots is the number of frames the capture buffer holds between the
	// port and the writer goroutine (default 4096). When it is full, frames
	// are left out of the capture and counted, never waited for.
	Slots int
	// RxOnly and TxOnly restrict the capture to one direction (default both).
	RxOnly, TxOnly bool
}

// CaptureStats are the counters of a capture.
type CaptureStats struct {
	Captured    uint64 // frames written to the pcap writer
	Dropped     uint64 // frames left out because the capture buffer was full
	WriteErrors uint64 // frames the writer failed to write
}

// Capture is a Port that forwards every call to the port it wraps and
// copies the frames received and sent, with timestamps, to a pcap stream.
// Copying happens on the caller's goroutine into a bounded buffer (one
// memcpy per frame, no allocation); a separate goroutine writes the pcap
// records. A slow writer never slows the port: frames that do not fit are
// dropped from the capture and counted.
type Capture struct {
	p    Port
	w    *pcapgo.Writer
	cfg  CaptureConfig
	slot int

	mu   sync.Mutex // serializes producers
	tail atomic.Uint64
	head atomic.Uint64
	data []byte
	lens []int32
	orig []int32
	ts   []int64

	sig      chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopped  atomic.Bool
	stopOnce sync.Once
	werr     error

	captured, dropped, writeErrs atomic.Uint64
}

// NewCapture writes a pcap file header (nanosecond timestamps, Ethernet) to
// w and returns a port wrapping p that copies its traffic to w. Stop ends
// the capture and leaves p in use; Close ends it and closes p.
func NewCapture(p Port, w io.Writer, cfg CaptureConfig) (*Capture, error) {
	if cfg.Slots <= 0 {
		cfg.Slots = 4096
	}
	slot := max(p.MTU(), 1500) + 18
	if cfg.SnapLen <= 0 {
		cfg.SnapLen = slot
	}
	slot = min(slot, cfg.SnapLen)
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(uint32(cfg.SnapLen), layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("capture %s: pcap header: %w", p.Name(), err)
	}
	c := &Capture{
		p: p, w: pw, cfg: cfg, slot: slot,
		data: make([]byte, cfg.Slots*slot),
		lens: make([]int32, cfg.Slots),
		orig: make([]int32, cfg.Slots),
		ts:   make([]int64, cfg.Slots),
		sig:  make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.writer()
	return c, nil
}

// Unwrap returns the captured port.
func (c *Capture) Unwrap() Port { return c.p }

// CaptureStats returns the capture's counters.
func (c *Capture) CaptureStats() CaptureStats {
	return CaptureStats{Captured: c.captured.Load(), Dropped: c.dropped.Load(), WriteErrors: c.writeErrs.Load()}
}

// record copies frames into the capture buffer; ts may be nil (now).
func (c *Capture) record(frames [][]byte, ts []int64) {
	if len(frames) == 0 || c.stopped.Load() {
		return
	}
	var now int64
	if ts == nil {
		now = time.Now().UnixNano()
	}
	size := uint64(len(c.lens))
	c.mu.Lock()
	tail := c.tail.Load()
	free := size - (tail - c.head.Load())
	k := 0
	for ; k < len(frames) && free > 0; k++ {
		f := frames[k]
		i := tail % size
		l := min(len(f), c.slot)
		off := int(i) * c.slot
		copy(c.data[off:off+l], f)
		c.lens[i] = int32(l)
		c.orig[i] = int32(len(f))
		if ts != nil {
			c.ts[i] = ts[k]
		} else {
			c.ts[i] = now
		}
		tail++
		free--
	}
	c.tail.Store(tail)
	c.mu.Unlock()
	if rest := len(frames) - k; rest > 0 {
		c.dropped.Add(uint64(rest))
	}
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

func (c *Capture) writer() {
	defer close(c.done)
	size := uint64(len(c.lens))
	for {
		stopping := false
		select {
		case <-c.sig:
		case <-c.stop:
			stopping = true
		}
		head, tail := c.head.Load(), c.tail.Load()
		for ; head != tail; head++ {
			i := head % size
			off := int(i) * c.slot
			ci := gopacket.CaptureInfo{
				Timestamp:     time.Unix(0, c.ts[i]),
				CaptureLength: int(c.lens[i]),
				Length:        int(c.orig[i]),
			}
			if err := c.w.WritePacket(ci, c.data[off:off+int(c.lens[i])]); err != nil {
				c.writeErrs.Add(1)
				if c.werr == nil {
					c.werr = err
				}
			} else {
				c.captured.Add(1)
			}
			c.head.Store(head + 1)
		}
		if stopping {
			return
		}
	}
}

// Stop ends the capture after writing what is buffered and returns the
// first write error. The wrapped port keeps working through c.
func (c *Capture) Stop() error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopped.Store(true) // no producer is inside record after this
		c.mu.Unlock()
		close(c.stop)
	})
	<-c.done
	if c.werr != nil {
		return fmt.Errorf("capture %s: %w", c.p.Name(), c.werr)
	}
	return nil
}

// Name implements Port.
func (c *Capture) Name() string { return c.p.Name() }

// NumQueues implements Port.
func (c *Capture) NumQueues() int { return c.p.NumQueues() }

// RecvBatch implements Port and captures the received frames.
func (c *Capture) RecvBatch(q int, b *Batch) (int, error) {
	n, err := c.p.RecvBatch(q, b)
	if n > 0 && !c.cfg.TxOnly {
		c.record(b.Frames[:n], b.Timestamps[:n])
	}
	return n, err
}

// SendBatch implements Port and captures the frames the port consumed.
func (c *Capture) SendBatch(q int, frames [][]byte) (int, error) {
	n, err := c.p.SendBatch(q, frames)
	if n > 0 && !c.cfg.RxOnly {
		c.record(frames[:n], nil)
	}
	return n, err
}

// Wake implements Port.
func (c *Capture) Wake() { c.p.Wake() }

// MTU implements Port.
func (c *Capture) MTU() int { return c.p.MTU() }

// Up implements Port.
func (c *Capture) Up() bool { return c.p.Up() }

// Stats implements Port.
func (c *Capture) Stats() Stats { return c.p.Stats() }

// Close stops the capture and closes the wrapped port.
func (c *Capture) Close() error {
	serr := c.Stop()
	if err := c.p.Close(); err != nil {
		return err
	}
	return serr
}

var _ Port = (*Capture)(nil)
