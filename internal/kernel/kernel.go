// Package kernel runs eBPF programs in the Linux kernel through bpf(2), as the
// reference that vswitch's own interpreter and JIT are compared against. It is
// a test and benchmark aid only: nothing on the data path may depend on it.
//
// The package wraps the few commands that need: BPF_PROG_LOAD (with the
// verifier log on refusal), BPF_PROG_TEST_RUN, and BPF_MAP_CREATE with the
// element commands. On systems other than Linux every function returns an
// error wrapping ErrNotSupported, so the module builds everywhere.
//
// Everything here needs root (or CAP_BPF and CAP_PERFMON). Tests should call
// Available first and skip with the error it returns.
package kernel

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/govswitch/vswitch/asm"
)

// ErrNotSupported is wrapped by every error caused by the platform or kernel
// lacking what a function needs (another GOOS, no bpf(2), no permission).
var ErrNotSupported = errors.New("kernel eBPF not supported")

// ErrKeyNotExist is returned by Map.Lookup, Map.Delete and Map.NextKey when
// the key is not in the map (or, for NextKey, is the last one).
var ErrKeyNotExist = errors.New("key does not exist")

// ProgType is a kernel program type. The values are the kernel's
// (enum bpf_prog_type); the zero value is invalid.
type ProgType uint32

// Program types that BPF_PROG_TEST_RUN can run on a packet.
const (
	SchedCLS ProgType = 3 // BPF_PROG_TYPE_SCHED_CLS (tc)
	XDP      ProgType = 6 // BPF_PROG_TYPE_XDP
)

func (t ProgType) String() string {
	switch t {
	case SchedCLS:
		return "sched_cls"
	case XDP:
		return "xdp"
	}
	return fmt.Sprintf("ProgType(%d)", uint32(t))
}

// MapType is a kernel map type. The values are the kernel's
// (enum bpf_map_type); the zero value is invalid.
type MapType uint32

// Map types vswitch implements itself and compares against.
const (
	Hash        MapType = 1
	Array       MapType = 2
	ProgArray   MapType = 3
	PerCPUHash  MapType = 5
	PerCPUArray MapType = 6
	LRUHash     MapType = 9
	LPMTrie     MapType = 11
)

func (t MapType) String() string {
	switch t {
	case Hash:
		return "hash"
	case Array:
		return "array"
	case ProgArray:
		return "prog_array"
	case PerCPUHash:
		return "percpu_hash"
	case PerCPUArray:
		return "percpu_array"
	case LRUHash:
		return "lru_hash"
	case LPMTrie:
		return "lpm_trie"
	}
	return fmt.Sprintf("MapType(%d)", uint32(t))
}

func (t MapType) perCPU() bool { return t == PerCPUHash || t == PerCPUArray }

// MapFlags are BPF_MAP_CREATE flags (BPF_F_*).
type MapFlags uint32

// MapNoPrealloc is BPF_F_NO_PREALLOC; LPM tries require it.
const MapNoPrealloc MapFlags = 1

// VerifierError is returned when the kernel refuses a program. Err is the
// errno of the refusal (usually EACCES or EINVAL); Log is the verifier log at
// level 1, its tail kept when it did not fit (Truncated).
type VerifierError struct {
	Err       error
	Log       string
	Truncated bool
}

// maxLogLines bounds how much of the log Error prints; Log holds all of it.
const maxLogLines = 60

func (e *VerifierError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "program refused: %v", e.Err)
	log := strings.TrimRight(e.Log, "\x00\n")
	if log == "" {
		b.WriteString(" (empty verifier log)")
		return b.String()
	}
	lines := strings.Split(log, "\n")
	b.WriteString("; verifier log")
	if e.Truncated {
		b.WriteString(" (truncated by the kernel)")
	}
	if len(lines) > maxLogLines {
		fmt.Fprintf(&b, " (last %d of %d lines)", maxLogLines, len(lines))
		lines = lines[len(lines)-maxLogLines:]
	}
	b.WriteString(":\n")
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

func (e *VerifierError) Unwrap() error { return e.Err }

// Program is a program loaded into the kernel. It is safe for concurrent
// TestRun calls; Close must not race with them.
type Program struct {
	fd  int
	typ ProgType
}

// Type returns the program's type.
func (p *Program) Type() ProgType { return p.typ }

// FD returns the program's file descriptor, or -1 once closed.
func (p *Program) FD() int { return p.fd }

// Map is a map created in the kernel. Its methods are safe for concurrent
// use; Close must not race with them.
type Map struct {
	fd                             int
	typ                            MapType
	keySize, valueSize, maxEntries uint32
}

// FD returns the map's file descriptor, or -1 once closed.
func (m *Map) FD() int { return m.fd }

// Type returns the map's type.
func (m *Map) Type() MapType { return m.typ }

// KeySize returns the size of a key in bytes.
func (m *Map) KeySize() int { return int(m.keySize) }

// ValueSize returns the size of the value buffer Lookup and Update take: the
// value size, or for per-CPU maps the value size rounded up to 8 bytes times
// the number of possible CPUs (the kernel's layout).
func (m *Map) ValueSize() int {
	if m.typ.perCPU() {
		n, err := possibleCPUs()
		if err != nil {
			n = 1
		}
		return int(m.valueSize+7) &^ 7 * n
	}
	return int(m.valueSize)
}

// MaxEntries returns the capacity the map was created with.
func (m *Map) MaxEntries() int { return int(m.maxEntries) }

func (m *Map) checkSizes(key, value []byte) error {
	if len(key) != int(m.keySize) {
		return fmt.Errorf("key of %d bytes, map has %d-byte keys", len(key), m.keySize)
	}
	if value != nil && len(value) != m.ValueSize() {
		return fmt.Errorf("value of %d bytes, map needs %d", len(value), m.ValueSize())
	}
	return nil
}

// LoadProgram loads insns as a program of type typ with license "GPL". On
// refusal the error is a *VerifierError carrying the verifier log. The
// caller must Close the program.
func LoadProgram(typ ProgType, insns []asm.Instruction) (*Program, error) {
	return LoadProgramWithMaps(typ, insns, nil)
}

// LoadProgramWithMaps is LoadProgram for programs that refer to maps: the
// first slot of `lddw rX, map[k]` (Src asm.PseudoMapFD) and of
// `lddw rX, map[k]+off` (Src asm.PseudoMapValue) names maps[k]; its Imm is
// replaced by that map's file descriptor, which is what the kernel expects
// (BPF_PSEUDO_MAP_FD and BPF_PSEUDO_MAP_VALUE). insns is not modified.
func LoadProgramWithMaps(typ ProgType, insns []asm.Instruction, maps []*Map) (*Program, error) {
	insns, err := relocateMaps(insns, maps)
	if err != nil {
		return nil, err
	}
	fd, err := loadProgram(typ, insns)
	if err != nil {
		return nil, fmt.Errorf("load %v program of %d instructions: %w", typ, len(insns), err)
	}
	return &Program{fd: fd, typ: typ}, nil
}

// LoadProgramFuncs is LoadProgramWithMaps with BTF function information
// for the program's functions (instruction 0 and the targets of local
// calls), which the kernel requires of some programs: a tail call made in
// a local function is refused without it.
func LoadProgramFuncs(typ ProgType, insns []asm.Instruction, maps []*Map) (*Program, error) {
	insns, err := relocateMaps(insns, maps)
	if err != nil {
		return nil, err
	}
	fd, err := loadProgramFuncs(typ, insns)
	if err != nil {
		return nil, fmt.Errorf("load %v program of %d instructions with BTF: %w", typ, len(insns), err)
	}
	return &Program{fd: fd, typ: typ}, nil
}

func relocateMaps(insns []asm.Instruction, maps []*Map) ([]asm.Instruction, error) {
	var out []asm.Instruction
	for n := 0; n < len(insns); n++ {
		i := insns[n]
		if !i.IsLDDW() || (i.Src != asm.PseudoMapFD && i.Src != asm.PseudoMapValue) {
			continue
		}
		k := int(i.Imm)
		if k < 0 || k >= len(maps) || maps[k] == nil || maps[k].fd < 0 {
			return nil, fmt.Errorf("insn %d: lddw refers to map %d, %d maps given", n, k, len(maps))
		}
		if out == nil {
			out = append([]asm.Instruction(nil), insns...)
		}
		out[n].Imm = int32(maps[k].fd)
		n++ // skip the second slot
	}
	if out == nil {
		return insns, nil
	}
	return out, nil
}

// TestRun runs the program repeat times (at least once) on a copy of data
// with BPF_PROG_TEST_RUN. It returns the program's 32-bit return value of
// the last run, the packet as the program left it, and the mean duration of
// one run as the kernel measured it. The kernel's figure excludes the cost
// of the system call, which for XDP includes installing the program in the
// dispatcher (milliseconds): benchmarks should use a large repeat and this
// duration, never wall time. data must be at least 14 bytes (an Ethernet
// header) for XDP and SchedCLS.
func (p *Program) TestRun(data []byte, repeat int) (ret uint32, dataOut []byte, duration time.Duration, err error) {
	if p.fd < 0 {
		return 0, nil, 0, errors.New("test run: program is closed")
	}
	if repeat < 1 {
		repeat = 1
	}
	r := uint32(repeat)
	if uint64(repeat) > 1<<32-1 {
		r = 1<<32 - 1
	}
	ret, dataOut, duration, err = testRun(p.fd, data, r)
	// A signal (Go's preemption, a profiler) interrupts a long test run
	// with EINTR: run it again.
	for try := 0; try < 5 && errors.Is(err, syscall.EINTR); try++ {
		ret, dataOut, duration, err = testRun(p.fd, data, r)
	}
	if err != nil {
		return 0, nil, 0, fmt.Errorf("test run %v program: %w", p.typ, err)
	}
	return ret, dataOut, duration, nil
}

// Close releases the program. Closing twice is harmless.
func (p *Program) Close() error {
	if p == nil || p.fd < 0 {
		return nil
	}
	fd := p.fd
	p.fd = -1
	return closeFD(fd)
}

// CreateMap creates a map. Sizes are in bytes; flags is usually 0 (LPMTrie
// needs MapNoPrealloc). The caller must Close the map.
func CreateMap(typ MapType, keySize, valueSize, maxEntries uint32, flags MapFlags) (*Map, error) {
	fd, err := createMap(typ, keySize, valueSize, maxEntries, flags)
	if err != nil {
		return nil, fmt.Errorf("create %v map (key %d, value %d, %d entries): %w", typ, keySize, valueSize, maxEntries, err)
	}
	return &Map{fd: fd, typ: typ, keySize: keySize, valueSize: valueSize, maxEntries: maxEntries}, nil
}

// Lookup copies the value stored under key into value, which must be
// ValueSize bytes. It returns ErrKeyNotExist if there is none.
func (m *Map) Lookup(key, value []byte) error {
	if err := m.checkSizes(key, value); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	if err := mapLookup(m.fd, key, value); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	return nil
}

// Update stores value (ValueSize bytes) under key, creating or replacing
// the entry (BPF_ANY).
func (m *Map) Update(key, value []byte) error {
	if err := m.checkSizes(key, value); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := mapUpdate(m.fd, key, value); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// Delete removes key. It returns ErrKeyNotExist if it is not there; arrays
// refuse deletion with EINVAL.
func (m *Map) Delete(key []byte) error {
	if err := m.checkSizes(key, nil); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := mapDelete(m.fd, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// NextKey writes the key that follows key into next (the first key if key
// is nil), for iterating over a map. It returns ErrKeyNotExist after the
// last key.
func (m *Map) NextKey(key, next []byte) error {
	if key != nil {
		if err := m.checkSizes(key, nil); err != nil {
			return fmt.Errorf("next key: %w", err)
		}
	}
	if err := m.checkSizes(next, nil); err != nil {
		return fmt.Errorf("next key: %w", err)
	}
	if err := mapNextKey(m.fd, key, next); err != nil {
		return fmt.Errorf("next key: %w", err)
	}
	return nil
}

// Close releases the map. Closing twice is harmless.
func (m *Map) Close() error {
	if m == nil || m.fd < 0 {
		return nil
	}
	fd := m.fd
	m.fd = -1
	return closeFD(fd)
}
