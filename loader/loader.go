// Package loader turns ELF objects built by clang (`clang -O2 -g -target bpf
// -c prog.c`) into validated vswitch programs and the maps they use.
//
// It reads objects with github.com/cilium/ebpf's userspace ELF reader and
// loads nothing into the kernel. From a CollectionSpec it
//
//   - creates every map: BTF-defined ones (SEC(".maps")), legacy struct
//     bpf_map_def ones (SEC("maps")), and the global data sections (.data,
//     .rodata, .bss), each a one-entry array map initialized with the
//     section's contents and named as libbpf names them ("obj.rodata");
//   - resolves map references: `lddw rX, map` becomes `lddw rX, map[k]`
//     (asm.PseudoMapFD, Imm k) and a global variable access becomes
//     `lddw rX, map[k]+off` (asm.PseudoMapValue), k indexing the maps
//     handed to vm.Load;
//   - flattens bpf-to-bpf calls into one instruction stream per program
//     with relative call offsets;
//   - validates each program with vm.Load and the helpers it may call;
//   - fills program arrays that the object initializes statically
//     (`.values = { [0] = &prog }`).
//
// Objects that need a kernel (kfunc calls, __ksym variables, CO-RE
// relocations, .kconfig) are refused with an error naming the symbol.
// Objects written for VALE-BPF load with Options.Compat = CompatVALEBPF.
//
// Errors: a malformed, truncated or hostile object gives an error wrapping
// ErrBadObject, never a panic; a well-formed object that vswitch cannot run
// gives an error wrapping ErrUnsupported; a program refused by the validator
// gives an error wrapping vm.ErrInvalid (a *vm.ValidationError).
package loader

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// Sentinel errors callers can test with errors.Is.
var (
	// ErrBadObject is wrapped by every error caused by a malformed ELF file.
	ErrBadObject = errors.New("malformed eBPF object")
	// ErrUnsupported is wrapped by errors about well-formed objects that
	// need something vswitch does not have (a kernel, a map type).
	ErrUnsupported = errors.New("not supported by vswitch")
	// ErrMapMismatch is wrapped when a map offered in Options.ReuseMaps has
	// the name of one of the object's maps but a different spec.
	ErrMapMismatch = errors.New("map spec differs from the reused map")
)

// Compat selects how an object's legacy conventions are read.
type Compat uint8

const (
	// CompatNone reads objects the way libbpf does: the zero value.
	CompatNone Compat = iota
	// CompatVALEBPF reads objects written for VALE-BPF: map definitions in
	// the legacy "maps" section name their type with a string ("array",
	// "percpu_array", "hashtable", "percpu_hashtable"; generic-ebpf's
	// numeric ids 1-4 for the same types are accepted too), helpers 1 and
	// 2 are update and lookup (Linux has them the other way round; the
	// loader swaps the call numbers), and a program may be a plain
	// function in .text.
	CompatVALEBPF
)

func (c Compat) String() string {
	switch c {
	case CompatNone:
		return "none"
	case CompatVALEBPF:
		return "vale-bpf"
	}
	return fmt.Sprintf("Compat(%d)", uint8(c))
}

// DefaultMaxMapBytes bounds the memory a single map of an object may ask
// for (estimated as entries × (key + value) bytes) unless
// Options.MaxMapBytes says otherwise.
const DefaultMaxMapBytes = 1 << 30

// Options configure Load. The zero value loads every program of a
// libbpf-style object with the default helpers.
type Options struct {
	// Programs selects the programs to load, by function name or by
	// section name (every program of that section). Empty: all.
	// Programs that a selected program reaches through a statically
	// initialized program array are loaded too.
	Programs []string
	// Compat reads objects written for another runtime.
	Compat Compat
	// Helpers are the helpers programs may call. Nil: DefaultHelpers().
	Helpers *vm.Helpers
	// ReuseMaps offers existing maps by name: an object map with that name
	// uses the offered map (keeping its contents) instead of a new one, as
	// when a program is hot-swapped and must keep its state. The specs
	// must agree, else Load fails with ErrMapMismatch. Global data maps
	// (.data, .rodata, .bss) are never reused: they hold the new object's
	// initial values.
	ReuseMaps map[string]maps.Map
	// ObjectName prefixes the names of global data maps as libbpf does
	// ("learn.rodata"). Load derives it from the file name; empty means no
	// prefix (".rodata").
	ObjectName string
	// CPUs is the number of per-CPU slots of new per-CPU maps; 0 means
	// runtime.NumCPU().
	CPUs int
	// MaxMapBytes bounds the memory one map may ask for; 0 means
	// DefaultMaxMapBytes.
	MaxMapBytes uint64
	// NewMap creates maps; nil means maps.New. Tests and embedders may
	// substitute their own.
	NewMap func(maps.Spec) (maps.Map, error)
}

// Collection is what Load made of an object.
type Collection struct {
	// Programs are the validated programs, by function name.
	Programs map[string]*vm.Program
	// Sections maps each program's name to its ELF section.
	Sections map[string]string
	// Maps are the object's maps by name (global data as "obj.data" and so
	// on), including reused ones.
	Maps map[string]maps.Map
	// Types are the BTF types of maps' keys and values where the object
	// has them, by map name (for printing entries as fields).
	Types map[string]MapTypes
	// Lines are the C source lines the programs' instructions came from,
	// by program name and instruction slot, where the object carries BTF
	// line info (built with clang -g); a zero Line elsewhere.
	Lines map[string][]Line
	// BTF is the object's type information, nil if it has none: the
	// control plane finds record types in it by name (map read --type).
	BTF *btf.Spec

	created []maps.Map // maps this collection made, closed by Close
}

// Line is the C source line an instruction starts, from BTF line info.
type Line struct {
	File   string
	Number int
	Text   string
}

// MapTypes are the BTF types of a map's key and value; either may be nil.
type MapTypes struct {
	Key, Value btf.Type
}

// Program returns the program called name or, failing that, the only
// program of section name.
func (c *Collection) Program(name string) (*vm.Program, error) {
	if p, ok := c.Programs[name]; ok {
		return p, nil
	}
	var found []string
	for n, s := range c.Sections {
		if s == name {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return c.Programs[found[0]], nil
	case 0:
		return nil, fmt.Errorf("no program or section %q (have %s)", name, strings.Join(c.ProgramNames(), ", "))
	}
	sort.Strings(found)
	return nil, fmt.Errorf("section %q holds several programs (%s): name one", name, strings.Join(found, ", "))
}

// ProgramNames returns the names of the programs, sorted.
func (c *Collection) ProgramNames() []string {
	names := make([]string, 0, len(c.Programs))
	for n := range c.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close closes the maps the collection created (not the reused ones).
func (c *Collection) Close() error {
	var errs []error
	for _, m := range c.created {
		errs = append(errs, m.Close())
	}
	c.created = nil
	return errors.Join(errs...)
}

// Load loads the object at path. The object name used for global data maps
// is the file name up to its first dot, as in libbpf.
func Load(path string, opts Options) (*Collection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if opts.ObjectName == "" {
		base := filepath.Base(path)
		if i := strings.IndexByte(base, '.'); i >= 0 {
			base = base[:i]
		}
		opts.ObjectName = base
	}
	c, err := LoadReader(f, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadReader loads the object read from r.
func LoadReader(r io.ReaderAt, opts Options) (*Collection, error) {
	var legacy map[string][]byte
	var textFuncs map[string]bool
	if opts.Compat == CompatVALEBPF {
		var err error
		r, legacy, textFuncs, err = valePrepare(r)
		if err != nil {
			return nil, err
		}
	} else if opts.Compat != CompatNone {
		return nil, fmt.Errorf("unknown compatibility mode %v", opts.Compat)
	}
	spec, err := readSpec(r)
	if err != nil {
		return nil, err
	}
	if textFuncs != nil {
		// VALE-BPF object: its programs are the global functions of .text.
		for name, ps := range spec.Programs {
			if ps.SectionName == valeTextSection && !textFuncs[name] {
				delete(spec.Programs, name)
			} else if ps.SectionName == valeTextSection {
				ps.SectionName = ".text"
			}
		}
	}
	l := &linker{opts: opts, spec: spec, legacy: legacy}
	return l.link()
}

// readSpec runs cilium/ebpf's ELF reader. The reader hardens most of its
// parsing, but it has panicked on crafted inputs in the past (and BTF
// parsing is deep): a panic is turned into an error here, so that a
// hostile object can never take the switch down.
func readSpec(r io.ReaderAt) (spec *ebpf.CollectionSpec, err error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < 4 || string(magic[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("%w: not an ELF object file (it starts with %q; build programs with clang -O2 -g -target bpf -c prog.c -o prog.o)", ErrBadObject, magic[:n])
	}
	defer func() {
		if p := recover(); p != nil {
			spec, err = nil, fmt.Errorf("%w: ELF reader panicked: %v", ErrBadObject, p)
		}
	}()
	spec, err = ebpf.LoadCollectionSpecFromReader(r)
	if err != nil {
		if ext := kernelSymbols(r); len(ext) > 0 {
			// cilium's reader fails on some kernel variables (typed
			// __ksym) before a program can be checked: name them.
			return nil, fmt.Errorf("%w: the object refers to kernel symbol %s (extern __ksym), which only a kernel has: vswitch runs programs outside the kernel (reader: %v)", ErrUnsupported, strings.Join(ext, ", "), err)
		}
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadObject, err)
	}
	return spec, nil
}

// kernelSymbols lists the object's undefined global symbols: the externs
// a kernel would resolve (__ksym variables and kfuncs).
func kernelSymbols(r io.ReaderAt) []string {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF && s.Name != "" && elf.ST_BIND(s.Info) != elf.STB_LOCAL {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// DefaultHelpers returns the helpers programs get when Options.Helpers is
// nil: vm.BaseHelpers and the map, tail call, trace and ring buffer
// helpers of package maps.
func DefaultHelpers() *vm.Helpers {
	return defaultHelpers()
}

func (o *Options) maxMapBytes() uint64 {
	if o.MaxMapBytes == 0 {
		return DefaultMaxMapBytes
	}
	return o.MaxMapBytes
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
