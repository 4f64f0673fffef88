//go:build !linux

package pktgen

import (
	"fmt"
	"runtime"

	"github.com/govswitch/vswitch/bpfport"
)

func openPort(o Options) (bpfport.Port, error) {
	if o.Netns != "" {
		return nil, fmt.Errorf("--netns: not supported on %s/%s: %w", runtime.GOOS, runtime.GOARCH, bpfport.ErrNotSupported)
	}
	return bpfport.OpenAFPacket(o.Iface, bpfport.AFPacketConfig{TX: o.TXMode, RingFrames: sinkRing, RcvBuf: sinkRcvBuf})
}
