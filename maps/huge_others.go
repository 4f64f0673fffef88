//go:build !linux

package maps

func adviseHuge([]uint64)   {}
func adviseHuge32([]uint32) {}
