package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	casm "github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/maps"
	"github.com/govswitch/vswitch/vm"
)

// linker holds the state of one Load.
type linker struct {
	opts   Options
	spec   *ebpf.CollectionSpec
	legacy map[string][]byte // CompatVALEBPF: raw legacy map definitions by symbol

	coll   *Collection
	bySpec map[string]maps.Map // by the map's name in the CollectionSpec
}

func (l *linker) link() (_ *Collection, err error) {
	l.coll = &Collection{
		Programs: map[string]*vm.Program{},
		Sections: map[string]string{},
		Maps:     map[string]maps.Map{},
		Types:    map[string]MapTypes{},
		Lines:    map[string][]Line{},
		BTF:      l.spec.Types,
	}
	l.bySpec = map[string]maps.Map{}
	defer func() {
		if err != nil {
			l.coll.Close()
		}
	}()

	selected, err := l.selectPrograms()
	if err != nil {
		return nil, err
	}
	// Check every selected program before creating any map, so that an
	// object vswitch cannot run costs no memory.
	for _, name := range selected {
		if err := checkProgram(l.spec.Programs[name]); err != nil {
			return nil, err
		}
	}
	if err := l.createMaps(); err != nil {
		return nil, err
	}
	helpers := l.opts.Helpers
	if helpers == nil {
		helpers = DefaultHelpers()
	}
	for _, name := range selected {
		ps := l.spec.Programs[name]
		insns, mapNames, lines, err := l.convert(ps)
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", name, err)
		}
		ms := make([]vm.Map, len(mapNames))
		for k, n := range mapNames {
			ms[k] = l.bySpec[n]
		}
		p, err := vm.Load(insns, vm.Options{Name: name, Helpers: helpers, Maps: ms})
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", name, err)
		}
		l.coll.Programs[name] = p
		l.coll.Sections[name] = ps.SectionName
		if lines != nil {
			l.coll.Lines[name] = lines
		}
	}
	if err := l.fillProgramArrays(); err != nil {
		return nil, err
	}
	return l.coll, nil
}

// selectPrograms returns the names of the programs to load, sorted: those
// Options.Programs names (by function or section) and the programs they
// can reach through statically initialized program arrays.
func (l *linker) selectPrograms() ([]string, error) {
	all := sortedKeys(l.spec.Programs)
	if len(all) == 0 {
		hint := ""
		if l.opts.Compat == CompatNone {
			hint = " (programs must be in a named section: SEC(\"vswitch\"); a VALE-BPF object needs Compat: CompatVALEBPF)"
		}
		return nil, fmt.Errorf("%w: no programs in object%s", ErrUnsupported, hint)
	}
	if len(l.opts.Programs) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, sel := range l.opts.Programs {
		found := false
		for _, n := range all {
			if n == sel || l.spec.Programs[n].SectionName == sel {
				want[n] = true
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no program or section %q in object (have %s)", sel, strings.Join(all, ", "))
		}
	}
	// Tail call targets the object wires up itself come along.
	for _, ms := range l.spec.Maps {
		if ms.Type != ebpf.ProgramArray {
			continue
		}
		for _, kv := range ms.Contents {
			if n, ok := kv.Value.(string); ok && l.spec.Programs[n] != nil {
				want[n] = true
			}
		}
	}
	return sortedKeys(want), nil
}

// checkProgram refuses programs that need a kernel, naming the symbol.
func checkProgram(ps *ebpf.ProgramSpec) error {
	for i := range ps.Instructions {
		ins := &ps.Instructions[i]
		if relo := btf.CORERelocationMetadata(ins); relo != nil {
			return fmt.Errorf("%w: program %s: CO-RE relocation %v needs a kernel's BTF", ErrUnsupported, ps.Name, relo)
		}
		switch {
		case ins.IsKfuncCall():
			return fmt.Errorf("%w: program %s: calls kernel function %s (kfuncs need a kernel)", ErrUnsupported, ps.Name, refName(ins))
		case ins.IsLoadOfFunctionPointer():
			return fmt.Errorf("%w: program %s: takes the address of function %s (callbacks such as bpf_loop are not supported)", ErrUnsupported, ps.Name, refName(ins))
		case ins.IsLoadFromMap() && ins.Reference() == ".kconfig":
			return fmt.Errorf("%w: program %s: reads kernel configuration (.kconfig)", ErrUnsupported, ps.Name)
		case ins.IsLoadFromMap() || ins.IsFunctionCall():
			// Resolved by convert.
		case ins.Reference() != "":
			return fmt.Errorf("%w: program %s: refers to undefined symbol %s (a __ksym kernel symbol or another extern)", ErrUnsupported, ps.Name, ins.Reference())
		}
	}
	return nil
}

func refName(ins *casm.Instruction) string {
	if r := ins.Reference(); r != "" {
		return r
	}
	return "(unnamed)"
}

// mapEstimate is the memory a map asks for, roughly.
func mapEstimate(s maps.Spec) uint64 {
	if s.Type == maps.RingBuf {
		return uint64(s.MaxEntries)
	}
	per := uint64(s.KeySize) + uint64(s.ValueSize)
	if s.Type == maps.PerCPUArray || s.Type == maps.PerCPUHash {
		cpus := s.CPUs
		if cpus <= 0 {
			cpus = 1
		}
		per = uint64(s.KeySize) + (uint64(s.ValueSize)+7)/8*8*uint64(cpus)
	}
	return uint64(s.MaxEntries) * per
}

// isDataSection tells global data maps (.data, .rodata, .bss and their
// .data.foo variants) from declared maps.
func isDataSection(name string) bool {
	return name == ".bss" || strings.HasPrefix(name, ".data") || strings.HasPrefix(name, ".rodata")
}

// dataMapName names a global data map as libbpf does: up to 15 bytes, the
// start of the object name followed by the section name.
func dataMapName(obj, sec string) string {
	const objNameLen = 16 // BPF_OBJ_NAME_LEN
	pfx := min(objNameLen-len(sec)-1, len(obj))
	if pfx < 0 {
		pfx = 0
	}
	return obj[:pfx] + sec
}

func (l *linker) createMaps() error {
	for _, name := range sortedKeys(l.spec.Maps) {
		ms := l.spec.Maps[name]
		if name == ".kconfig" || name == ".ksyms" {
			continue // refused where a program refers to it
		}
		s, err := l.mapSpec(name, ms)
		if err != nil {
			return fmt.Errorf("map %s: %w", name, err)
		}
		data := isDataSection(name)
		if data {
			s.Name = dataMapName(l.opts.ObjectName, name)
		}
		if ms.Key != nil || ms.Value != nil {
			l.coll.Types[s.Name] = MapTypes{Key: ms.Key, Value: ms.Value}
		}
		if old, ok := l.opts.ReuseMaps[s.Name]; ok && !data {
			have := old.Spec()
			if have.Type != s.Type || have.KeySize != s.KeySize || have.ValueSize != s.ValueSize ||
				have.MaxEntries != s.MaxEntries || have.Flags != s.Flags {
				return fmt.Errorf("map %s: %w: have %s, object wants %s", s.Name, ErrMapMismatch, specString(have), specString(s))
			}
			l.bySpec[name] = old
			l.coll.Maps[s.Name] = old
			continue
		}
		if est := mapEstimate(s); est > l.opts.maxMapBytes() {
			return fmt.Errorf("map %s: %w: %s needs about %d bytes, more than the limit of %d", s.Name, ErrUnsupported, specString(s), est, l.opts.maxMapBytes())
		}
		newMap := l.opts.NewMap
		if newMap == nil {
			newMap = defaultNewMap
		}
		m, err := newMap(s)
		if err != nil {
			return fmt.Errorf("map %s: %w", s.Name, err)
		}
		l.coll.created = append(l.coll.created, m)
		l.bySpec[name] = m
		l.coll.Maps[s.Name] = m
		if data && len(ms.Contents) == 1 {
			if v, ok := ms.Contents[0].Value.([]byte); ok && len(v) == int(s.ValueSize) {
				if err := m.Update(make([]byte, 4), v, maps.UpdateAny); err != nil {
					return fmt.Errorf("map %s: initial contents: %w", s.Name, err)
				}
			}
		}
	}
	return nil
}

func specString(s maps.Spec) string {
	return fmt.Sprintf("%v(key %d, value %d, max entries %d, flags %#x)", s.Type, s.KeySize, s.ValueSize, s.MaxEntries, s.Flags)
}

// mapSpec translates a cilium MapSpec into ours.
func (l *linker) mapSpec(name string, ms *ebpf.MapSpec) (maps.Spec, error) {
	if raw, ok := l.legacy[name]; ok {
		return valeMapSpec(name, raw, l.opts.CPUs)
	}
	if ms.InnerMap != nil {
		return maps.Spec{}, fmt.Errorf("%w: maps of maps", ErrUnsupported)
	}
	s := maps.Spec{
		Name:       name,
		Type:       maps.Type(ms.Type),
		KeySize:    ms.KeySize,
		ValueSize:  ms.ValueSize,
		MaxEntries: ms.MaxEntries,
		Flags:      ms.Flags,
		CPUs:       l.opts.CPUs,
	}
	if s.Type == maps.RingBuf && ms.Value != nil && ms.Key == nil {
		// __type(value, struct rec) on a ring buffer describes its
		// records (the control plane decodes them); a ring buffer
		// itself has no key or value size.
		s.ValueSize = 0
	}
	// cilium marks .rodata maps.FlagRdOnlyProg, so programs cannot write
	// their constants; the control plane still can (as with libbpf before
	// the map is frozen).
	switch s.Type {
	case maps.Hash, maps.Array, maps.ProgArray, maps.PerCPUHash, maps.PerCPUArray,
		maps.LRUHash, maps.LPMTrie, maps.RingBuf:
	default:
		return maps.Spec{}, fmt.Errorf("%w: map type %v (%d)", ErrUnsupported, ms.Type, uint32(ms.Type))
	}
	return s, nil
}

// convert turns a flattened cilium program into our instruction stream:
// map references become indexes into the returned map names, calls to
// local functions get their relative offsets, and in VALE-BPF mode the
// helper numbers are translated. lines has the source line of each slot
// where the object has line info (nil if it has none).
func (l *linker) convert(ps *ebpf.ProgramSpec) (_ []asm.Instruction, _ []string, lines []Line, _ error) {
	// Offsets of the functions in the flattened stream.
	funcs := map[string]int{}
	off := 0
	for i := range ps.Instructions {
		ins := &ps.Instructions[i]
		if sym := ins.Symbol(); sym != "" {
			funcs[sym] = off
		}
		off += int(ins.Width())
	}
	if off > vm.MaxInstructions {
		return nil, nil, nil, fmt.Errorf("%w: %d instructions, more than %d", ErrUnsupported, off, vm.MaxInstructions)
	}

	var mapNames []string
	mapIndex := func(name string) int {
		if k := slices.Index(mapNames, name); k >= 0 {
			return k
		}
		mapNames = append(mapNames, name)
		return len(mapNames) - 1
	}

	out := make([]asm.Instruction, 0, off)
	var buf bytes.Buffer
	for i := range ps.Instructions {
		ins := ps.Instructions[i]
		pc := len(out)
		ref := ins.Reference()
		switch {
		case ins.IsLoadFromMap():
			if ref == "" {
				return nil, nil, nil, fmt.Errorf("%w: insn %d: map load without a map", ErrBadObject, pc)
			}
			if ref == ".kconfig" {
				return nil, nil, nil, fmt.Errorf("%w: insn %d: reads kernel configuration (.kconfig)", ErrUnsupported, pc)
			}
			if l.bySpec[ref] == nil {
				return nil, nil, nil, fmt.Errorf("%w: insn %d: refers to map %s, which the object does not define", ErrUnsupported, pc, ref)
			}
		case ins.IsFunctionCall():
			if ref != "" {
				if _, ok := funcs[ref]; !ok {
					return nil, nil, nil, fmt.Errorf("%w: insn %d: calls %s, which the object does not define", ErrUnsupported, pc, ref)
				}
			}
		case ref != "":
			return nil, nil, nil, fmt.Errorf("%w: insn %d: refers to undefined symbol %s (a kernel symbol or an extern)", ErrUnsupported, pc, ref)
		}

		buf.Reset()
		if _, err := ins.Marshal(&buf, binary.LittleEndian); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: insn %d: %v", ErrBadObject, pc, err)
		}
		dec, err := asm.Decode(buf.Bytes())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: insn %d: %v", ErrBadObject, pc, err)
		}
		switch {
		case ins.IsLoadFromMap():
			dec[0].Imm = int32(mapIndex(ref))
			if ins.Src == casm.PseudoMapFD {
				dec[1].Imm = 0
			}
		case ins.IsFunctionCall() && ref != "":
			dec[0].Imm = int32(funcs[ref] - (pc + 1))
		case ins.IsBuiltinCall() && l.opts.Compat == CompatVALEBPF:
			// VALE-BPF: 1 update, 2 lookup; Linux: 1 lookup, 2 update.
			switch dec[0].Imm {
			case 1:
				dec[0].Imm = vm.HelperMapUpdateElem
			case 2:
				dec[0].Imm = vm.HelperMapLookupElem
			}
		}
		if src, ok := ins.Source().(*btf.Line); ok && src != nil && strings.TrimSpace(src.Line()) != "" {
			if lines == nil {
				lines = make([]Line, off)
			}
			lines[pc] = Line{File: src.FileName(), Number: int(src.LineNumber()), Text: strings.TrimSpace(src.Line())}
		}
		out = append(out, dec...)
	}
	return out, mapNames, lines, nil
}

// progArray is what the loader needs of a program array to fill it: the
// maps package's program arrays implement it.
type progArray interface {
	SetProgram(index uint32, p *vm.Program) error
}

// fillProgramArrays stores the programs named by statically initialized
// program arrays (`.values = { [0] = &prog }`).
func (l *linker) fillProgramArrays() error {
	for _, name := range sortedKeys(l.spec.Maps) {
		ms := l.spec.Maps[name]
		if ms.Type != ebpf.ProgramArray || len(ms.Contents) == 0 {
			continue
		}
		m := l.bySpec[name]
		if m == nil {
			continue
		}
		pa, ok := m.(progArray)
		if !ok {
			return fmt.Errorf("map %s: %w: program array %T cannot hold programs", name, ErrUnsupported, m)
		}
		for _, kv := range ms.Contents {
			idx, ok1 := kv.Key.(uint32)
			prog, ok2 := kv.Value.(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("map %s: %w: contents %v: %v", name, ErrBadObject, kv.Key, kv.Value)
			}
			p := l.coll.Programs[prog]
			if p == nil {
				continue // not selected
			}
			if err := pa.SetProgram(idx, p); err != nil {
				return fmt.Errorf("map %s: slot %d = %s: %w", name, idx, prog, err)
			}
		}
	}
	return nil
}
