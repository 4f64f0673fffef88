//go:build !linux

package bpfport

import (
	"fmt"
	"runtime"
)

func errUnsupported(what string) error {
	return fmt.Errorf("%s ports: not supported on %s/%s: %w", what, runtime.GOOS, runtime.GOARCH, ErrNotSupported)
}

// unsupported is the Port of platforms without kernel packet I/O.
type unsupported struct{}

func (unsupported) Name() string                       { return "" }
func (unsupported) NumQueues() int                     { return 0 }
func (unsupported) RecvBatch(int, *Batch) (int, error) { return 0, ErrNotSupported }
func (unsupported) TryRecv(int, *Batch) (int, error)   { return 0, ErrNotSupported }
func (unsupported) PollFD(int) int                     { return -1 }
func (unsupported) Release(int)                        {}
func (unsupported) Arm(int) bool                       { return false }
func (unsupported) Caps() Caps                         { return 0 }
func (unsupported) SendBatch(int, [][]byte, []Offload) (int, error) {
	return 0, ErrNotSupported
}
func (unsupported) Wake()        {}
func (unsupported) MTU() int     { return 0 }
func (unsupported) Up() bool     { return false }
func (unsupported) Stats() Stats { return Stats{} }
func (unsupported) Close() error { return nil }

// AFPacket is a port on a Linux interface; not available on this platform.
type AFPacket struct{ unsupported }

// Config returns the zero configuration.
func (*AFPacket) Config() AFPacketConfig { return AFPacketConfig{} }

// OpenAFPacket reports that AF_PACKET ports need Linux.
func OpenAFPacket(ifname string, cfg AFPacketConfig) (*AFPacket, error) {
	return nil, errUnsupported("AF_PACKET")
}

// TAP is a port on a TAP device; not available on this platform.
type TAP struct{ unsupported }

// OpenTAP reports that TAP ports need Linux.
func OpenTAP(name string, cfg TAPConfig) (*TAP, error) {
	return nil, errUnsupported("TAP")
}
