package pktgen

import (
	"fmt"
	"runtime"

	"github.com/govswitch/vswitch/bpfport"
	"github.com/vishvananda/netns"
)

// openPort opens the AF_PACKET port of o, inside o.Netns when set. The
// sockets stay in that namespace; the calling thread does not.
func openPort(o Options) (bpfport.Port, error) {
	cfg := bpfport.AFPacketConfig{TX: o.TXMode, RingFrames: sinkRing, RcvBuf: sinkRcvBuf}
	if o.Netns == "" {
		p, err := bpfport.OpenAFPacket(o.Iface, cfg)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	target, err := netns.GetFromName(o.Netns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w (list them with \"ip netns list\")", o.Netns, err)
	}
	defer target.Close()
	type result struct {
		p   bpfport.Port
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters the namespace; if it cannot come back it stays
		// locked and exits with this goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{nil, fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{nil, fmt.Errorf("entering network namespace %q: %w", o.Netns, err)}
			return
		}
		p, err := bpfport.OpenAFPacket(o.Iface, cfg)
		if err := netns.Set(orig); err != nil {
			if p != nil {
				p.Close()
			}
			ch <- result{nil, fmt.Errorf("leaving network namespace %q: %w", o.Netns, err)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- result{nil, fmt.Errorf("in network namespace %q: %w", o.Netns, err)}
			return
		}
		ch <- result{p, nil}
	}()
	r := <-ch
	return r.p, r.err
}
