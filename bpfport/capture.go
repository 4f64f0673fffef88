package bpfport

import (
	"encoding/binary"
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
	// SnapLen is the most bytes kept of each frame (default 262144, as
	// tcpdump: whole frames, super-frames included).
	SnapLen int
	// Buffer is the size in bytes of the capture buffer between the port
	// and the writer goroutine (default 8 MiB). When it is full, frames
	// are left out of the capture and counted, never waited for.
	Buffer int
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
// copies the frames received and sent, with timestamps, to a pcap stream:
// what tcpdump on the interface would show (super-frames whole, as the
// kernel hands them over). Copying happens on the caller's goroutine into
// a bounded byte ring (one memcpy per frame, no allocation); a separate
// goroutine writes the pcap records. A slow writer never slows the port:
// frames that do not fit are dropped from the capture and counted.
//
// Timestamps never go backwards in the file: a received frame carries the
// kernel's arrival time, which can be earlier than a frame already
// recorded as sent; such a frame is recorded at the time of the last
// record instead.
type Capture struct {
	p    Port
	w    *pcapgo.Writer
	cfg  CaptureConfig
	snap int

	mu     sync.Mutex // serializes producers
	tail   atomic.Uint64
	head   atomic.Uint64
	buf    []byte
	lastTS int64

	sig      chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopped  atomic.Bool
	stopOnce sync.Once
	werr     error

	captured, dropped, writeErrs atomic.Uint64
}

// A record in the ring: timestamp (8 bytes), captured length (4; -1 marks
// the unused end of the ring before a wrap), original length (4), the
// bytes, padding to 8.
const capHdr = 16

// NewCapture writes a pcap file header (nanosecond timestamps, Ethernet) to
// w and returns a port wrapping p that copies its traffic to w. Stop ends
// the capture and leaves p in use; Close ends it and closes p.
func NewCapture(p Port, w io.Writer, cfg CaptureConfig) (*Capture, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 8 << 20
	}
	cfg.Buffer = (max(cfg.Buffer, 4096) + 7) &^ 7
	if cfg.SnapLen <= 0 {
		cfg.SnapLen = 262144
	}
	snap := min(cfg.SnapLen, cfg.Buffer/2-capHdr)
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(uint32(cfg.SnapLen), layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("capture %s: pcap header: %w", p.Name(), err)
	}
	c := &Capture{
		p: p, w: pw, cfg: cfg, snap: snap,
		buf:  make([]byte, cfg.Buffer),
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

// record copies frames into the capture buffer; ts may be nil (now). keep,
// when not nil, says which frames to record.
func (c *Capture) record(frames [][]byte, ts []int64, keep func(i int) bool) {
	if len(frames) == 0 || c.stopped.Load() {
		return
	}
	now := time.Now().UnixNano()
	size := uint64(len(c.buf))
	ne := binary.NativeEndian
	var dropped uint64
	c.mu.Lock()
	tail := c.tail.Load()
	head := c.head.Load()
	for k, f := range frames {
		if keep != nil && !keep(k) {
			continue
		}
		l := min(len(f), c.snap)
		need := uint64(capHdr+l+7) &^ 7
		pos := tail % size
		skip := uint64(0)
		if pos+need > size {
			skip = size - pos // the record does not fit before the end: wrap
		}
		if tail+skip+need-head > size {
			dropped++
			continue
		}
		if skip > 0 {
			ne.PutUint32(c.buf[pos+8:], 0xffffffff)
			tail += skip
			pos = 0
		}
		t := now
		if ts != nil {
			t = ts[k]
		}
		if t < c.lastTS {
			t = c.lastTS
		}
		c.lastTS = t
		ne.PutUint64(c.buf[pos:], uint64(t))
		ne.PutUint32(c.buf[pos+8:], uint32(l))
		ne.PutUint32(c.buf[pos+12:], uint32(len(f)))
		copy(c.buf[pos+capHdr:], f[:l])
		tail += need
	}
	c.tail.Store(tail)
	c.mu.Unlock()
	if dropped > 0 {
		c.dropped.Add(dropped)
	}
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

func (c *Capture) writer() {
	defer close(c.done)
	size := uint64(len(c.buf))
	ne := binary.NativeEndian
	for {
		stopping := false
		select {
		case <-c.sig:
		case <-c.stop:
			stopping = true
		}
		head, tail := c.head.Load(), c.tail.Load()
		for head != tail {
			pos := head % size
			l := ne.Uint32(c.buf[pos+8:])
			if l == 0xffffffff {
				head += size - pos
				c.head.Store(head)
				continue
			}
			ci := gopacket.CaptureInfo{
				Timestamp:     time.Unix(0, int64(ne.Uint64(c.buf[pos:]))),
				CaptureLength: int(l),
				Length:        int(ne.Uint32(c.buf[pos+12:])),
			}
			if err := c.w.WritePacket(ci, c.buf[pos+capHdr:pos+capHdr+uint64(l)]); err != nil {
				c.writeErrs.Add(1)
				if c.werr == nil {
					c.werr = err
				}
			} else {
				c.captured.Add(1)
			}
			head += uint64(capHdr+l+7) &^ 7
			c.head.Store(head)
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
		c.record(b.Frames[:n], b.Timestamps[:n], nil)
	}
	return n, err
}

// TryRecv implements Port and captures the received frames.
func (c *Capture) TryRecv(q int, b *Batch) (int, error) {
	n, err := c.p.TryRecv(q, b)
	if n > 0 && !c.cfg.TxOnly {
		c.record(b.Frames[:n], b.Timestamps[:n], nil)
	}
	return n, err
}

// PollFD implements Port.
func (c *Capture) PollFD(q int) int { return c.p.PollFD(q) }

// Release implements Port.
func (c *Capture) Release(q int) { c.p.Release(q) }

// Arm implements Port.
func (c *Capture) Arm(q int) bool { return c.p.Arm(q) }

// Caps implements Port.
func (c *Capture) Caps() Caps { return c.p.Caps() }

// SendBatch implements Port and captures the frames the port sent (not
// those it consumed by dropping them as oversize).
func (c *Capture) SendBatch(q int, frames [][]byte, offl []Offload) (int, error) {
	n, err := c.p.SendBatch(q, frames, offl)
	if n > 0 && !c.cfg.RxOnly {
		mtu := c.p.MTU()
		c.record(frames[:n], nil, func(i int) bool { return TxAccepts(frames[i], offloadAt(offl, i), mtu) })
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
