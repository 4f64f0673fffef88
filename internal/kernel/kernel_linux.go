//go:build !mips

package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/govswitch/vswitch/asm"
	"golang.org/x/sys/unix"
)

var license = []byte("GPL\x00")

// Verifier log buffer sizes: the first try on refusal, and the retry when
// the kernel says it did not fit. Since Linux 6.4 the log rotates, so a
// truncated log still ends with the reason for the refusal.
const (
	logSize    = 1 << 20
	logSizeMax = 16 << 20
)

// loadProgram loads without a log first (cheap: most loads succeed), then
// loads again with a level 1 log to explain a refusal.
func loadProgram(typ ProgType, insns []asm.Instruction) (int, error) {
	code := asm.Encode(insns)
	fd, err := sysProgLoad(uint32(typ), code, license, nil, 0, "vswitch")
	if err == nil {
		return fd, nil
	}
	if err := permission(err); err != nil {
		return -1, err
	}
	for size := logSize; ; size *= 4 {
		buf := make([]byte, size)
		fd2, err2 := sysProgLoad(uint32(typ), code, license, buf, 1, "vswitch")
		if err2 == nil {
			// Refused without a log, accepted with one: should not happen,
			// but the program is loaded, so use it.
			return fd2, nil
		}
		truncated := errors.Is(err2, unix.ENOSPC)
		if truncated && size < logSizeMax {
			continue
		}
		n := strings.IndexByte(string(buf), 0)
		if n < 0 {
			n = len(buf)
		}
		return -1, &VerifierError{Err: err, Log: string(buf[:n]), Truncated: truncated}
	}
}

// permission turns the errors that mean "not allowed here" into ones that
// wrap ErrNotSupported and say what to do.
func permission(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("bpf(2): %w (run as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): %w", err, ErrNotSupported)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("bpf(2) is not implemented by this kernel: %w", ErrNotSupported)
	}
	return nil
}

// testRunSlack is how much the output buffer exceeds the input: room for a
// program that grows the packet.
const testRunSlack = 4096

func testRun(fd int, data []byte, repeat uint32) (uint32, []byte, time.Duration, error) {
	out := make([]byte, len(data)+testRunSlack)
	ret, n, dur, err := sysTestRun(fd, data, out, repeat)
	if err != nil {
		if perr := permission(err); perr != nil {
			return 0, nil, 0, perr
		}
		return 0, nil, 0, err
	}
	if int(n) > len(out) {
		return 0, nil, 0, fmt.Errorf("kernel reports %d bytes of output, buffer has %d", n, len(out))
	}
	return ret, out[:n], time.Duration(dur), nil
}

func closeFD(fd int) error { return unix.Close(fd) }

func createMap(typ MapType, keySize, valueSize, maxEntries uint32, flags MapFlags) (int, error) {
	fd, err := sysMapCreate(uint32(typ), keySize, valueSize, maxEntries, uint32(flags), "vswitch")
	if err != nil {
		if perr := permission(err); perr != nil {
			return -1, perr
		}
		return -1, err
	}
	return fd, nil
}

func elemErr(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return ErrKeyNotExist
	}
	return err
}

func mapLookup(fd int, key, value []byte) error {
	return elemErr(sysMapElem(unix.BPF_MAP_LOOKUP_ELEM, fd, key, value, 0))
}

func mapUpdate(fd int, key, value []byte) error {
	return elemErr(sysMapElem(unix.BPF_MAP_UPDATE_ELEM, fd, key, value, 0 /* BPF_ANY */))
}

func mapDelete(fd int, key []byte) error {
	return elemErr(sysMapElem(unix.BPF_MAP_DELETE_ELEM, fd, key, nil, 0))
}

func mapNextKey(fd int, key, next []byte) error {
	return elemErr(sysMapElem(unix.BPF_MAP_GET_NEXT_KEY, fd, key, next, 0))
}

// possibleCPUs is the number of possible CPUs, which sizes per-CPU values.
var possibleCPUs = sync.OnceValues(func() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	return parseCPURanges(strings.TrimSpace(string(b)))
})
