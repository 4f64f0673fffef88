package maps

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// More flags of Spec.Flags, as in Linux. Those not listed here
// (BPF_F_RDONLY, BPF_F_WRONLY, ...) are refused by New.
const (
	FlagNoCommonLRU = 1 << 1  // BPF_F_NO_COMMON_LRU: accepted, no effect
	FlagNumaNode    = 1 << 2  // BPF_F_NUMA_NODE: accepted, no effect
	FlagZeroSeed    = 1 << 6  // BPF_F_ZERO_SEED: accepted, no effect (the hash seed is random)
	FlagRdOnlyProg  = 1 << 7  // BPF_F_RDONLY_PROG: programs may only read values (.rodata)
	FlagMmapable    = 1 << 10 // BPF_F_MMAPABLE: accepted (values never move anyway)
)

// ErrBadSpec is wrapped by every error New returns for a spec it refuses.
var ErrBadSpec = errors.New("invalid map spec")

// MaxMemory bounds the memory one map may preallocate.
const MaxMemory = 4 << 30

// Limits of sizes, as in Linux where it has one.
const (
	MaxKeySize     = 512 // MAX_BPF_STACK: a key must fit on the stack
	MaxValueSize   = 1 << 20
	MaxLPMDataSize = 256 // LPM_DATA_SIZE_MAX
)

// New creates a map. The error wraps ErrBadSpec and says which field is
// wrong. Every map preallocates all of its memory here: nothing a program
// or the control plane does later allocates map memory.
func New(spec Spec) (Map, error) {
	bad := func(format string, args ...any) error {
		name := spec.Name
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Errorf("map %s (%v): %s: %w", name, spec.Type, fmt.Sprintf(format, args...), ErrBadSpec)
	}
	const known = FlagNoPrealloc | FlagNoCommonLRU | FlagNumaNode | FlagZeroSeed | FlagRdOnlyProg | FlagMmapable
	if f := spec.Flags &^ known; f != 0 {
		return nil, bad("unsupported flags %#x", f)
	}
	if spec.Type.perCPU() {
		if spec.CPUs < 0 || spec.CPUs > 4096 {
			return nil, bad("%d CPUs, want 0 (all) to 4096", spec.CPUs)
		}
		if spec.CPUs == 0 {
			spec.CPUs = runtime.NumCPU()
		}
	} else {
		spec.CPUs = 0
	}
	if spec.MaxEntries == 0 {
		return nil, bad("max entries is 0")
	}
	checkKV := func() error {
		switch {
		case spec.KeySize == 0:
			return bad("key size is 0")
		case spec.KeySize > MaxKeySize:
			return bad("key size %d is more than %d", spec.KeySize, MaxKeySize)
		case spec.ValueSize == 0:
			return bad("value size is 0")
		case spec.ValueSize > MaxValueSize:
			return bad("value size %d is more than %d", spec.ValueSize, MaxValueSize)
		}
		return nil
	}
	mem := func(perEntry uint64) error {
		if n := perEntry * uint64(spec.MaxEntries); n > MaxMemory {
			return bad("%d entries need %d MiB, more than the limit of %d MiB", spec.MaxEntries, n>>20, MaxMemory>>20)
		}
		return nil
	}
	cpus := uint64(max(spec.CPUs, 1))
	switch spec.Type {
	case Array, PerCPUArray:
		if err := checkKV(); err != nil {
			return nil, err
		}
		if spec.KeySize != 4 {
			return nil, bad("key size %d, arrays have 4-byte keys", spec.KeySize)
		}
		if spec.Flags&FlagNoPrealloc != 0 {
			return nil, bad("arrays are always preallocated (drop BPF_F_NO_PREALLOC)")
		}
		if err := mem(cpus * stride(spec.ValueSize)); err != nil {
			return nil, err
		}
		return newArray(spec), nil
	case Hash, PerCPUHash, LRUHash:
		if err := checkKV(); err != nil {
			return nil, err
		}
		if spec.Type == LRUHash && spec.Flags&FlagNoPrealloc != 0 {
			return nil, bad("LRU hashes are always preallocated (drop BPF_F_NO_PREALLOC)")
		}
		if spec.MaxEntries >= 1<<31 {
			return nil, bad("%d entries, at most %d", spec.MaxEntries, 1<<31-1)
		}
		if err := mem(cpus*stride(spec.ValueSize) + 8*uint64(recHdr+words(int(spec.KeySize)))*2 + 20); err != nil {
			return nil, err
		}
		return newHtab(spec), nil
	case LPMTrie:
		if spec.Flags&FlagNoPrealloc == 0 {
			return nil, bad("LPM tries need BPF_F_NO_PREALLOC (flags %#x), as in Linux", FlagNoPrealloc)
		}
		if err := checkKV(); err != nil {
			return nil, err
		}
		if spec.KeySize <= 4 || spec.KeySize > 4+MaxLPMDataSize {
			return nil, bad("key size %d: an LPM key is a 4-byte prefix length and 1 to %d bytes of data (8 for IPv4, 20 for IPv6)", spec.KeySize, MaxLPMDataSize)
		}
		if spec.MaxEntries >= 1<<30 {
			return nil, bad("%d entries, at most %d", spec.MaxEntries, 1<<30-1)
		}
		if err := mem(stride(spec.ValueSize) + 2*8*uint64(lpmHdr+words(int(spec.KeySize-4))) + 16); err != nil {
			return nil, err
		}
		return newLPM(spec), nil
	case ProgArray:
		if spec.KeySize != 4 || spec.ValueSize != 4 {
			return nil, bad("key size %d and value size %d, program arrays have 4-byte keys and values (program ids)", spec.KeySize, spec.ValueSize)
		}
		if spec.Flags != 0 {
			return nil, bad("program arrays take no flags (have %#x)", spec.Flags)
		}
		if err := mem(16); err != nil {
			return nil, err
		}
		return newProgramArray(spec), nil
	case RingBuf:
		page := uint32(os.Getpagesize())
		switch {
		case spec.KeySize != 0 || spec.ValueSize != 0:
			return nil, bad("key size %d and value size %d, ring buffers have neither (both must be 0)", spec.KeySize, spec.ValueSize)
		case spec.MaxEntries%page != 0 || spec.MaxEntries&(spec.MaxEntries-1) != 0:
			return nil, bad("size %d (max entries) must be a power of two multiple of the page size %d", spec.MaxEntries, page)
		case uint64(spec.MaxEntries) > MaxMemory:
			return nil, bad("size %d is more than %d", spec.MaxEntries, uint64(MaxMemory))
		case spec.Flags != 0:
			return nil, bad("ring buffers take no flags (have %#x)", spec.Flags)
		}
		return newRingBuffer(spec), nil
	}
	return nil, bad("unsupported map type")
}

func (t Type) perCPU() bool { return t == PerCPUArray || t == PerCPUHash }

// cpuIndex maps a worker index to a per-CPU slot. Workers beyond the map's
// CPUs share slots (index modulo CPUs): memory stays safe, but their plain
// (non-atomic) updates of a shared slot may race. Give per-CPU maps at
// least as many CPUs as there are workers.
func cpuIndex(cpu, n int) int {
	if uint(cpu) < uint(n) {
		return cpu
	}
	if cpu < 0 {
		cpu = -cpu
	}
	return cpu % n
}

// checkFlags validates update flags as Linux does for plain maps.
func checkFlags(flags uint64) error {
	if flags > UpdateExist {
		return ErrBadFlags
	}
	return nil
}

// perCPUValueSize is the control-plane value size of a per-CPU map.
func perCPUValueSize(vsize uint32, cpus int) int { return int((vsize+7)&^7) * cpus }
