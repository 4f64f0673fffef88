package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/govswitch/vswitch/maps"
)

// maxObjectSize bounds the objects CompatVALEBPF reads into memory.
const maxObjectSize = 64 << 20

// valeNameMax is EBPF_NAME_MAX of generic-ebpf, the size of the type name
// at the start of a VALE-BPF map definition:
//
//	struct ebpf_map_def {
//		char     type[64]; /* "array", "percpu_array", "hashtable", "percpu_hashtable" */
//		uint32_t key_size, value_size, max_entries, flags;
//	};
//
// Earlier generic-ebpf versions had `uint32_t type` (1 array, 2
// percpu_array, 3 hashtable, 4 percpu_hashtable) in place of the string;
// both are accepted.
const valeNameMax = 64

// valeTextSection is what .text is renamed to so that cilium's reader
// treats its functions as programs (VALE-BPF programs carry no SEC()).
const valeTextSection = ".vale"

var valeTypes = map[string]maps.Type{
	"array":            maps.Array,
	"percpu_array":     maps.PerCPUArray,
	"hashtable":        maps.Hash,
	"percpu_hashtable": maps.PerCPUHash,
}

var valeTypeIDs = []string{1: "array", 2: "percpu_array", 3: "hashtable", 4: "percpu_hashtable"}

// valePrepare reads a VALE-BPF object into memory and returns a reader for
// cilium's ELF reader plus the raw definitions of its legacy maps, by
// symbol. If the object's only code is in .text, the section is renamed in
// the in-memory copy so that its functions become programs.
func valePrepare(r io.ReaderAt) (_ io.ReaderAt, legacy map[string][]byte, textFuncs map[string]bool, err error) {
	defer func() {
		// debug/elf has panicked on hostile inputs before; never let it
		// take the process down.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: ELF parser panicked: %v", ErrBadObject, p)
		}
	}()
	data, err := io.ReadAll(io.NewSectionReader(r, 0, maxObjectSize+1))
	if err != nil {
		return nil, nil, nil, err
	}
	if len(data) > maxObjectSize {
		return nil, nil, nil, fmt.Errorf("%w: object larger than %d bytes", ErrUnsupported, maxObjectSize)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrBadObject, err)
	}
	if f.Class != elf.ELFCLASS64 || f.ByteOrder != binary.LittleEndian {
		return nil, nil, nil, fmt.Errorf("%w: not a little-endian 64-bit ELF file", ErrBadObject)
	}

	legacy = map[string][]byte{}
	textFuncs = map[string]bool{}
	syms, err := f.Symbols()
	if err != nil && err != elf.ErrNoSymbols {
		return nil, nil, nil, fmt.Errorf("%w: symbols: %w", ErrBadObject, err)
	}
	for _, s := range syms {
		if s.Name == "" || int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		if sec.Name == ".text" && elf.ST_TYPE(s.Info) == elf.STT_FUNC && elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
			textFuncs[s.Name] = true // a program; static functions are not
		}
		if !strings.HasPrefix(sec.Name, "maps") || sec.Type == elf.SHT_NOBITS {
			continue
		}
		if t := elf.ST_TYPE(s.Info); t != elf.STT_OBJECT && t != elf.STT_NOTYPE {
			continue
		}
		if s.Value > sec.Size || s.Size > sec.Size-s.Value || sec.Offset > uint64(len(data)) ||
			sec.Size > uint64(len(data))-sec.Offset {
			return nil, nil, nil, fmt.Errorf("%w: map %s lies outside its section", ErrBadObject, s.Name)
		}
		start := sec.Offset + s.Value
		legacy[s.Name] = data[start : start+s.Size]
	}

	// Rename .text when it holds the only code.
	text := -1
	for i, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
			continue
		}
		if sec.Name != ".text" {
			return bytes.NewReader(data), legacy, nil, nil
		}
		text = i
	}
	if text >= 0 {
		if err := renameSection(data, f, text, valeTextSection); err != nil {
			return nil, nil, nil, err
		}
		return bytes.NewReader(data), legacy, textFuncs, nil
	}
	return bytes.NewReader(data), legacy, nil, nil
}

// renameSection overwrites the name of section idx in the section header
// string table of data with a name of the same length.
func renameSection(data []byte, f *elf.File, idx int, name string) error {
	le := binary.LittleEndian
	if len(data) < 64 {
		return fmt.Errorf("%w: truncated ELF header", ErrBadObject)
	}
	shoff := le.Uint64(data[0x28:])
	shentsize := uint64(le.Uint16(data[0x3a:]))
	shstrndx := int(le.Uint16(data[0x3e:]))
	if shstrndx <= 0 || shstrndx >= len(f.Sections) || shentsize < 64 {
		return fmt.Errorf("%w: bad section header table", ErrBadObject)
	}
	hdr := shoff + uint64(idx)*shentsize
	if hdr < shoff || hdr+4 > uint64(len(data)) {
		return fmt.Errorf("%w: section header %d out of range", ErrBadObject, idx)
	}
	pos := f.Sections[shstrndx].Offset + uint64(le.Uint32(data[hdr:]))
	old := f.Sections[idx].Name
	if len(old) != len(name) || pos+uint64(len(old)) >= uint64(len(data)) || string(data[pos:pos+uint64(len(old))]) != old {
		return fmt.Errorf("%w: cannot locate the name of section %s", ErrBadObject, old)
	}
	copy(data[pos:], name)
	return nil
}

// valeMapSpec decodes a VALE-BPF map definition.
func valeMapSpec(name string, raw []byte, cpus int) (maps.Spec, error) {
	le := binary.LittleEndian
	var typ string
	var fields []byte
	switch {
	case len(raw) >= valeNameMax+16 && raw[0] >= 'a' && raw[0] <= 'z':
		n := bytes.IndexByte(raw[:valeNameMax], 0)
		if n < 0 {
			return maps.Spec{}, fmt.Errorf("%w: VALE-BPF map type name is not NUL-terminated", ErrBadObject)
		}
		typ, fields = string(raw[:n]), raw[valeNameMax:]
	case len(raw) >= 20:
		id := le.Uint32(raw)
		if id == 0 || id >= uint32(len(valeTypeIDs)) {
			return maps.Spec{}, fmt.Errorf("%w: VALE-BPF map type id %d", ErrUnsupported, id)
		}
		typ, fields = valeTypeIDs[id], raw[4:]
	default:
		return maps.Spec{}, fmt.Errorf("%w: VALE-BPF map definition of %d bytes is too short", ErrBadObject, len(raw))
	}
	t, ok := valeTypes[typ]
	if !ok {
		return maps.Spec{}, fmt.Errorf("%w: VALE-BPF map type %q (want array, percpu_array, hashtable or percpu_hashtable)", ErrUnsupported, typ)
	}
	return maps.Spec{
		Name:       name,
		Type:       t,
		KeySize:    le.Uint32(fields[0:]),
		ValueSize:  le.Uint32(fields[4:]),
		MaxEntries: le.Uint32(fields[8:]),
		Flags:      le.Uint32(fields[12:]),
		CPUs:       cpus,
	}, nil
}
