//go:build !linux

package bpfport

func newNotifyFD() int             { return -1 }
func closeNotifyWhenUnused(*vring) {}
func notifySignal(int)             {}
func notifyDrain(int)              {}
