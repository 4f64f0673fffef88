package maps

import (
	"encoding/binary"
	"hash/maphash"
	"testing"
)

func BenchmarkCalibGoMap(b *testing.B) {
	m := map[uint32]uint64{}
	for i := range uint32(1024) {
		m[i] = uint64(i)
	}
	defer startCPU().report(b, 1, "op")
	var s uint64
	for i := range uint32(b.N) {
		s += m[spread(i, 1024)]
	}
	_ = s
}

func BenchmarkCalibMaphash(b *testing.B) {
	seed := maphash.MakeSeed()
	k := make([]byte, 4)
	defer startCPU().report(b, 1, "op")
	var s uint64
	for i := range uint32(b.N) {
		binary.NativeEndian.PutUint32(k, i)
		s += maphash.Bytes(seed, k)
	}
	_ = s
}
