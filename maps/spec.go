package maps

import (
	"errors"
	"fmt"

	"github.com/govswitch/vswitch/vm"
)

// Type is a map type, numbered as in Linux (enum bpf_map_type).
type Type uint32

// Map types and their kernel ids.
const (
	Hash        Type = 1
	Array       Type = 2
	ProgArray   Type = 3
	PerCPUHash  Type = 5
	PerCPUArray Type = 6
	LRUHash     Type = 9
	LPMTrie     Type = 11
	RingBuf     Type = 27
)

var typeNames = map[Type]string{
	Hash: "hash", Array: "array", ProgArray: "prog_array", PerCPUHash: "percpu_hash",
	PerCPUArray: "percpu_array", LRUHash: "lru_hash", LPMTrie: "lpm_trie", RingBuf: "ringbuf",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// Update flags, as in Linux.
const (
	UpdateAny     = 0 // BPF_ANY: create or replace
	UpdateNoExist = 1 // BPF_NOEXIST: create only
	UpdateExist   = 2 // BPF_EXIST: replace only
)

// Flags of Spec.Flags, as in Linux.
const (
	FlagNoPrealloc = 1 << 0 // BPF_F_NO_PREALLOC (required for LPM tries)
)

// Spec describes a map.
type Spec struct {
	Name       string
	Type       Type
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	// CPUs is the number of per-CPU slots (workers) of per-CPU maps; 0
	// means runtime.NumCPU().
	CPUs int
}

// Errors, as Linux returns them; helpers turn them into negative errnos.
var (
	ErrKeyNotExist  = errors.New("key does not exist")       // ENOENT
	ErrKeyExist     = errors.New("key already exists")       // EEXIST
	ErrFull         = errors.New("map is full")              // E2BIG
	ErrBadKey       = errors.New("bad key size or contents") // EINVAL
	ErrBadValue     = errors.New("bad value size")           // EINVAL
	ErrBadFlags     = errors.New("bad update flags")         // EINVAL
	ErrNotSupported = errors.New("operation not supported by this map type")
)

// Map is a map shared by programs and the control plane.
//
// The control-plane methods (Lookup, Update, Delete, NextKey) copy keys and
// values; they are safe to call while programs run. For per-CPU maps a
// control-plane value is the concatenation of every CPU's value (each
// padded to a multiple of 8 bytes, as Linux does).
type Map interface {
	vm.Map
	Spec() Spec
	// Lookup copies the value of key into a new slice.
	Lookup(key []byte) ([]byte, error)
	// Update creates or replaces key's value (flags: UpdateAny, UpdateNoExist, UpdateExist).
	Update(key, value []byte, flags uint64) error
	Delete(key []byte) error
	// NextKey returns the key after key in iteration order, the first key
	// when key is nil, or ErrKeyNotExist at the end.
	NextKey(key []byte) ([]byte, error)
	// LookupAddr is the data-path lookup: the address of the value (of
	// CPU cpu's slot for per-CPU maps), 0 when key is absent. It does not
	// allocate.
	LookupAddr(key []byte, cpu int) uint64
	// UpdateFrom is the data-path update of one CPU's slot; it does not allocate.
	UpdateFrom(key, value []byte, flags uint64, cpu int) error
	Close() error
}
