//go:build linux && !mips

package kernel

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ptrTo(b []byte) ptr {
	if len(b) == 0 {
		return ptr{}
	}
	return ptr{p: unsafe.Pointer(&b[0])}
}

// Leading parts of the members of union bpf_attr we use
// (include/uapi/linux/bpf.h); the kernel takes a shorter attr as zero-filled.

type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       ptr
	license     ptr
	logLevel    uint32
	logSize     uint32
	logBuf      ptr
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      ptr
	dataOut     ptr
	repeat      uint32
	duration    uint32
}

type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	mapName    [16]byte
}

type mapElemAttr struct {
	mapFD uint32
	_     uint32
	key   ptr
	value ptr // or next_key
	flags uint64
}

// bpf issues bpf(2). attr must point to one of the structs above.
func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	runtime.KeepAlive(attr)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

func sysProgLoad(typ uint32, code, license, logBuf []byte, logLevel uint32, name string) (int, error) {
	attr := progLoadAttr{
		progType: typ,
		insnCnt:  uint32(len(code) / 8),
		insns:    ptrTo(code),
		license:  ptrTo(license),
		logLevel: logLevel,
		logSize:  uint32(len(logBuf)),
		logBuf:   ptrTo(logBuf),
	}
	copy(attr.progName[:15], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	return int(fd), err
}

func sysTestRun(fd int, in, out []byte, repeat uint32) (retval, outLen, duration uint32, err error) {
	attr := testRunAttr{
		progFD:      uint32(fd),
		dataSizeIn:  uint32(len(in)),
		dataSizeOut: uint32(len(out)),
		dataIn:      ptrTo(in),
		dataOut:     ptrTo(out),
		repeat:      repeat,
	}
	_, err = bpf(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	return attr.retval, attr.dataSizeOut, attr.duration, err
}

func sysMapCreate(typ, keySize, valueSize, maxEntries, flags uint32, name string) (int, error) {
	attr := mapCreateAttr{
		mapType:    typ,
		keySize:    keySize,
		valueSize:  valueSize,
		maxEntries: maxEntries,
		mapFlags:   flags,
	}
	copy(attr.mapName[:15], name)
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return int(fd), err
}

func sysMapElem(cmd uintptr, fd int, key, value []byte, flags uint64) error {
	attr := mapElemAttr{mapFD: uint32(fd), key: ptrTo(key), value: ptrTo(value), flags: flags}
	_, err := bpf(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}
