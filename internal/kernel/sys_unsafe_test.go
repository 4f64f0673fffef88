//go:build linux && !mips

package kernel

import (
	"testing"
	"unsafe"
)

// TestAttrLayout pins the offsets of the bpf_attr fields we set to those of
// include/uapi/linux/bpf.h.
func TestAttrLayout(t *testing.T) {
	var pl progLoadAttr
	var tr testRunAttr
	var mc mapCreateAttr
	var me mapElemAttr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"ptr size", unsafe.Sizeof(ptr{}), 8},
		{"prog_load.insns", unsafe.Offsetof(pl.insns), 8},
		{"prog_load.license", unsafe.Offsetof(pl.license), 16},
		{"prog_load.log_level", unsafe.Offsetof(pl.logLevel), 24},
		{"prog_load.log_buf", unsafe.Offsetof(pl.logBuf), 32},
		{"prog_load.prog_name", unsafe.Offsetof(pl.progName), 48},
		{"prog_load size", unsafe.Sizeof(pl), 64},
		{"test.data_in", unsafe.Offsetof(tr.dataIn), 16},
		{"test.data_out", unsafe.Offsetof(tr.dataOut), 24},
		{"test.repeat", unsafe.Offsetof(tr.repeat), 32},
		{"test.duration", unsafe.Offsetof(tr.duration), 36},
		{"map_create.map_name", unsafe.Offsetof(mc.mapName), 28},
		{"elem.key", unsafe.Offsetof(me.key), 8},
		{"elem.value", unsafe.Offsetof(me.value), 16},
		{"elem.flags", unsafe.Offsetof(me.flags), 24},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
