package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/internal/btfjson"
	"github.com/govswitch/vswitch/loader"
	"github.com/govswitch/vswitch/maps"
	vswitch "github.com/govswitch/vswitch/switch"
	"github.com/govswitch/vswitch/vm"
)

type asmLine struct {
	text  string
	slots int
}

func asmLines(insns []asm.Instruction, mapNames []string) []asmLine {
	var out []asmLine
	for n := 0; n < len(insns); n++ {
		var next asm.Instruction
		if n+1 < len(insns) {
			next = insns[n+1]
		}
		s := asm.FormatNamed(insns[n], next, mapNames)
		slots := 1
		if insns[n].IsLDDW() && !strings.HasPrefix(s, ".raw") {
			slots = 2
			n++
		}
		out = append(out, asmLine{s, slots})
	}
	return out
}

func traceLines(p *vm.Program) ([]string, uint64) {
	lines := maps.TraceLogOf(p).Lines(0)
	var out []string
	var dropped uint64
	if len(lines) > 0 {
		dropped = lines[0].Seq
	}
	for _, l := range lines {
		out = append(out, fmt.Sprintf("%s cpu%d %s: %s", l.Time.Format(time.TimeOnly), l.CPU, l.Program, l.Text))
	}
	return out, dropped
}

func mapInfo(name string, m maps.Map) control.Map {
	s := m.Spec()
	info := control.Map{Name: name, Type: s.Type.String(), KeySize: s.KeySize, ValueSize: s.ValueSize,
		MaxEntries: s.MaxEntries, Flags: s.Flags, Entries: -1}
	if l, ok := m.(interface{ Len() int }); ok {
		info.Entries = l.Len()
	} else if s.Type == maps.Array || s.Type == maps.PerCPUArray {
		info.Entries = int(s.MaxEntries)
	}
	return info
}

// MapShow lists the installed program's maps.
func (d *Daemon) MapShow() (control.MapShowResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return control.MapShowResult{}, err
	}
	res := control.MapShowResult{Maps: []control.Map{}}
	for name, m := range l.coll.Maps {
		res.Maps = append(res.Maps, mapInfo(name, m))
	}
	sort.Slice(res.Maps, func(i, j int) bool { return res.Maps[i].Name < res.Maps[j].Name })
	return res, nil
}

func (d *Daemon) lookupMap(name string) (maps.Map, error) {
	m, _, _, err := d.lookupMapTypes(name)
	return m, err
}

// lookupMapTypes returns the installed program's map name, its BTF types
// and the program's generation (see Daemon.progGen).
func (d *Daemon) lookupMapTypes(name string) (maps.Map, loader.MapTypes, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gen := d.progGen.Load()
	l, err := d.current()
	if err != nil {
		return nil, loader.MapTypes{}, gen, err
	}
	ty := l.coll.Types[name]
	m, ok := l.coll.Maps[name]
	if !ok {
		var names []string
		for n := range l.coll.Maps {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, ty, gen, control.Errorf(control.CodeNotFound, "no map %q (the program has: %s)", name, strings.Join(names, ", "))
	}
	return m, ty, gen, nil
}

// errReplaced is returned by a map write that raced with a program load.
func errReplaced(name string) error {
	return control.Errorf(control.CodeBusy, "map %s: the program was replaced meanwhile: try again", name)
}

// each calls fn with every entry of m, in iteration order. Entries
// deleted while it runs are skipped; the walk is bounded by the map's size
// so that concurrent updates cannot keep it going.
func each(m maps.Map, fn func(key, value []byte)) {
	var key []byte
	for n := 0; n <= int(m.Spec().MaxEntries); n++ {
		next, err := m.NextKey(key)
		if err != nil {
			return
		}
		key = next
		if v, err := m.Lookup(key); err == nil {
			fn(key, v)
		}
	}
}

func isPerCPU(t maps.Type) bool { return t == maps.PerCPUArray || t == maps.PerCPUHash }

// fields formats an entry's key and value by their BTF types. Per-CPU
// values are split into the slots of workers (see perCPU) and summed.
func (d *Daemon) fields(m maps.Map, ty loader.MapTypes, e *control.MapEntry) {
	if ty.Key != nil {
		if f, err := btfjson.Format(ty.Key, e.Key); err == nil {
			e.KeyFields = f
		}
	}
	s := m.Spec()
	if isPerCPU(s.Type) {
		d.perCPU(s, ty.Value, e)
		return
	}
	if ty.Value == nil {
		return
	}
	if f, err := btfjson.Format(ty.Value, e.Value); err == nil {
		e.ValueFields = f
	}
}

// perCPU fills e.PerCPU with the slots of the switch's workers (a
// program's CPU index is the worker's) and any other slot holding a
// non-zero value (a map kept from a switch with more workers), and e.Sum
// with all slots added up.
func (d *Daemon) perCPU(s maps.Spec, vt btf.Type, e *control.MapEntry) {
	vsize := int(s.ValueSize)
	stride := (vsize + 7) &^ 7
	workers := d.sw.Workers()
	var all [][]byte
	for cpu, off := 0, 0; off+vsize <= len(e.Value); cpu, off = cpu+1, off+stride {
		v := e.Value[off : off+vsize]
		all = append(all, v)
		if cpu >= workers && allZero(v) {
			continue
		}
		cv := control.CPUValue{CPU: cpu, Value: v, Worker: cpu < workers}
		if vt != nil {
			if f, err := btfjson.Format(vt, v); err == nil {
				cv.ValueFields = f
			}
		}
		e.PerCPU = append(e.PerCPU, cv)
	}
	if vt != nil {
		if sum, ok := btfjson.Sum(vt, all); ok {
			e.Sum = sum
		}
		return
	}
	switch vsize {
	case 1, 2, 4, 8:
		var total uint64
		for _, v := range all {
			var x uint64
			for i := len(v) - 1; i >= 0; i-- {
				x = x<<8 | uint64(v[i])
			}
			total += x
		}
		e.Sum = json.RawMessage(strconv.FormatUint(total, 10))
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// fromFields fills p.Key and p.Value from their typed forms.
func fromFields(m maps.Map, ty loader.MapTypes, p *control.MapParams) error {
	if len(p.KeyFields) > 0 {
		if ty.Key == nil {
			return bad("map %s has no BTF for its key: give the key in hex", p.Name)
		}
		k, err := btfjson.Parse(ty.Key, p.KeyFields)
		if err != nil {
			return bad("map %s: key: %v", p.Name, err)
		}
		p.Key = k
	}
	if len(p.ValueFields) > 0 {
		if ty.Value == nil {
			return bad("map %s has no BTF for its value: give the value in hex", p.Name)
		}
		// Global data: variables left out keep their values (the section
		// is one value; zeroing the others would surprise).
		var base []byte
		if _, ok := btf.UnderlyingType(ty.Value).(*btf.Datasec); ok && len(p.Key) > 0 {
			base, _ = m.Lookup(p.Key)
		}
		v, err := btfjson.ParseOnto(ty.Value, p.ValueFields, base)
		if err != nil {
			return bad("map %s: value: %v", p.Name, err)
		}
		p.Value = v
	}
	return nil
}

// everySlot repeats one per-CPU value for every slot, as the control
// plane writes per-CPU values (one value for all, like the JSON form).
func everySlot(s maps.Spec, v []byte) []byte {
	stride := int(s.ValueSize+7) &^ 7
	all := make([]byte, stride*max(s.CPUs, 1))
	for off := 0; off < len(all); off += stride {
		copy(all[off:], v)
	}
	return all
}

func mapError(err error, name string) error {
	switch {
	case errors.Is(err, maps.ErrKeyNotExist):
		return control.Errorf(control.CodeNotFound, "map %s: key not found", name)
	case errors.Is(err, maps.ErrKeyExist):
		return control.Errorf(control.CodeExists, "map %s: key already exists (use `any` to replace it)", name)
	case errors.Is(err, maps.ErrFull):
		return control.Errorf(control.CodeInvalid, "map %s is full", name)
	}
	return control.Errorf(control.CodeInvalid, "map %s: %v", name, err)
}

// MapOp performs map.dump, map.lookup, map.update and map.delete. With a
// state directory, an update or delete is recorded before MapOp returns.
func (d *Daemon) MapOp(method string, p control.MapParams) (any, error) {
	m, ty, gen, err := d.lookupMapTypes(p.Name)
	if err != nil {
		return nil, err
	}
	if pa, ok := m.(*maps.ProgramArray); ok && method == control.MethodMapUpdate {
		return d.progArrayUpdate(pa, ty, gen, p)
	}
	if err := fromFields(m, ty, &p); err != nil {
		return nil, err
	}
	if method == control.MethodMapUpdate || method == control.MethodMapDelete {
		// A write and its record go together, in the order of the writes,
		// and to the map of the installed program.
		d.mapMu.Lock()
		defer d.mapMu.Unlock()
		if d.progGen.Load() != gen {
			return nil, errReplaced(p.Name)
		}
	}
	s := m.Spec()
	checkKey := func() error {
		if uint32(len(p.Key)) != s.KeySize {
			return bad("map %s: key has %d bytes, the map's keys have %d", p.Name, len(p.Key), s.KeySize)
		}
		return nil
	}
	switch method {
	case control.MethodMapDump:
		res := control.MapDumpResult{Map: mapInfo(p.Name, m), Entries: []control.MapEntry{}}
		if s.Type == maps.RingBuf {
			return nil, control.Errorf(control.CodeUnsupported, "map %s is a ring buffer: follow its records with `vswitch map read %s`", p.Name, p.Name)
		}
		each(m, func(k, v []byte) {
			e := control.MapEntry{Key: k, Value: v}
			d.fields(m, ty, &e)
			res.Entries = append(res.Entries, e)
		})
		return res, nil
	case control.MethodMapLookup:
		if err := checkKey(); err != nil {
			return nil, err
		}
		v, err := m.Lookup(p.Key)
		if err != nil {
			return nil, mapError(err, p.Name)
		}
		e := control.MapEntry{Key: p.Key, Value: v}
		d.fields(m, ty, &e)
		return e, nil
	case control.MethodMapUpdate:
		if err := checkKey(); err != nil {
			return nil, err
		}
		var flags uint64
		switch p.Flags {
		case "", "any":
		case "noexist":
			flags = maps.UpdateNoExist
		case "exist":
			flags = maps.UpdateExist
		default:
			return nil, bad("map %s: unknown flag %q (any, exist or noexist)", p.Name, p.Flags)
		}
		if isPerCPU(s.Type) && len(p.Value) == int(s.ValueSize) {
			p.Value = everySlot(s, p.Value)
		}
		if err := m.Update(p.Key, p.Value, flags); err != nil {
			if errors.Is(err, maps.ErrBadValue) {
				return nil, bad("map %s: value has %d bytes, the map's values have %d: %v", p.Name, len(p.Value), s.ValueSize, err)
			}
			return nil, mapError(err, p.Name)
		}
		if err := d.record(mapChange{Op: "update", Map: p.Name, Key: p.Key, Value: p.Value}); err != nil {
			return nil, err
		}
		return control.MapEntry{Key: p.Key, Value: p.Value}, nil
	case control.MethodMapDelete:
		if err := checkKey(); err != nil {
			return nil, err
		}
		if err := m.Delete(p.Key); err != nil {
			return nil, mapError(err, p.Name)
		}
		if err := d.record(mapChange{Op: "delete", Map: p.Name, Key: p.Key}); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	return nil, bad("unknown map method %q", method)
}

// record saves a map change made (the caller holds mapMu).
func (d *Daemon) record(c mapChange) error {
	if d.state == nil {
		return nil
	}
	if err := d.state.appendChange(c); err != nil {
		return control.Errorf(control.CodeInternal, "map %s: the change is made but could not be saved in %s (%v): it will be lost when the daemon restarts", c.Map, d.state.path, err)
	}
	return nil
}

// progArrayUpdate puts a program of the loaded object into a program
// array's slot. The value names the program: as JSON (value json
// '"NAME"' or '{"name":"NAME"}'), or as its 4-byte number, 1 + its place
// among the object's programs sorted by name (`prog show` lists them).
func (d *Daemon) progArrayUpdate(pa *maps.ProgramArray, ty loader.MapTypes, gen uint64, p control.MapParams) (any, error) {
	if len(p.KeyFields) > 0 {
		if ty.Key == nil {
			return nil, bad("map %s has no BTF for its key: give the key in hex", p.Name)
		}
		k, err := btfjson.Parse(ty.Key, p.KeyFields)
		if err != nil {
			return nil, bad("map %s: key: %v", p.Name, err)
		}
		p.Key = k
	}
	if len(p.Key) != 4 {
		return nil, bad("map %s: key has %d bytes, a program array's keys have 4", p.Name, len(p.Key))
	}
	if p.Flags != "" && p.Flags != "any" {
		return nil, bad("map %s is a program array: only `any` updates are possible", p.Name)
	}
	d.mu.Lock()
	l := d.prog
	d.mu.Unlock()
	if l == nil || l.coll.Maps[p.Name] != maps.Map(pa) {
		return nil, control.Errorf(control.CodeNotFound, "map %s: the program was replaced meanwhile: try again", p.Name)
	}
	names := l.coll.ProgramNames()
	var list []string
	for i, n := range names {
		list = append(list, fmt.Sprintf("%d %s", i+1, n))
	}
	how := fmt.Sprintf(`give a program of the loaded object by name (value json '"%s"') or by number (%s)`, names[0], strings.Join(list, ", "))
	var name string
	switch {
	case len(p.ValueFields) > 0:
		var v struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(p.ValueFields, &name) != nil {
			if json.Unmarshal(p.ValueFields, &v) != nil || v.Name == "" {
				return nil, bad("map %s is a program array: value %s is not a program name: %s", p.Name, p.ValueFields, how)
			}
			name = v.Name
		}
	case len(p.Value) == 4:
		n := int(binary.NativeEndian.Uint32(p.Value))
		if n < 1 || n > len(names) {
			return nil, control.Errorf(control.CodeNotFound, "map %s: no program number %d: %s", p.Name, n, how)
		}
		name = names[n-1]
	default:
		return nil, bad("map %s is a program array: its values are programs: %s", p.Name, how)
	}
	d.mapMu.Lock()
	defer d.mapMu.Unlock()
	if d.progGen.Load() != gen {
		return nil, errReplaced(p.Name)
	}
	if err := setProgSlot(l.coll, pa, p.Key, name); err != nil {
		if errors.Is(err, maps.ErrKeyNotExist) {
			return nil, control.Errorf(control.CodeNotFound, "map %s: no program %q: %s", p.Name, name, how)
		}
		return nil, mapError(err, p.Name)
	}
	if err := d.record(mapChange{Op: "update", Map: p.Name, Key: p.Key, Program: name}); err != nil {
		return nil, err
	}
	v, _ := pa.Lookup(p.Key)
	return control.MapEntry{Key: p.Key, Value: v}, nil
}

// setProgSlot puts the object's program name into slot key of pa, with
// its number (1 + its place among the object's programs by name) as the
// id that lookups report.
func setProgSlot(coll *loader.Collection, pa *maps.ProgramArray, key []byte, name string) error {
	prog, ok := coll.Programs[name]
	if !ok {
		return maps.ErrKeyNotExist
	}
	id := uint32(sort.SearchStrings(coll.ProgramNames(), name) + 1)
	if err := pa.SetProgramID(binary.NativeEndian.Uint32(key), prog, id); err != nil {
		return err
	}
	return nil
}

// setResolvers lets the object's program arrays take program numbers in
// Update (1 + the program's place among the object's programs by name).
func setResolvers(coll *loader.Collection) {
	names := coll.ProgramNames()
	for _, m := range coll.Maps {
		if pa, ok := m.(*maps.ProgramArray); ok {
			pa.SetResolver(func(id uint32) (*vm.Program, error) {
				if id < 1 || int(id) > len(names) {
					return nil, fmt.Errorf("no program number %d in the object (1 to %d): %w", id, len(names), maps.ErrKeyNotExist)
				}
				return coll.Programs[names[id-1]], nil
			})
		}
	}
}

// RingbufStream streams the records of a ring buffer map, each prefixed by
// its length (4 bytes, little endian): raw, or with p.Fields a JSON
// control.RingbufRecord decoded by the record type (p.Type, a type of the
// object's BTF, else the ring buffer's __type(value, ...)).
func (d *Daemon) RingbufStream(p control.RingbufParams) (control.RingbufResult, func(context.Context, io.Writer) error, error) {
	m, ty, _, err := d.lookupMapTypes(p.Name)
	if err != nil {
		return control.RingbufResult{}, nil, err
	}
	rb, ok := m.(*maps.RingBuffer)
	if !ok {
		return control.RingbufResult{}, nil, bad("map %s is a %s, not a ring buffer", p.Name, m.Spec().Type)
	}
	var rt btf.Type
	var res control.RingbufResult
	if p.Fields {
		if rt, err = d.recordType(p.Type, ty.Value); err != nil {
			return res, nil, err
		}
		if rt != nil {
			res.Type = typeName(rt)
		}
	}
	return res, func(ctx context.Context, w io.Writer) error {
		for {
			rec, err := rb.Read(ctx)
			if err != nil {
				return err
			}
			if p.Fields {
				r := control.RingbufRecord{Record: rec}
				if rt != nil {
					if f, err := btfjson.Format(rt, rec); err == nil {
						r.Fields = f
					}
				}
				if rec, err = json.Marshal(r); err != nil {
					return err
				}
			}
			var hdr [4]byte
			binary.LittleEndian.PutUint32(hdr[:], uint32(len(rec)))
			if _, err := w.Write(append(hdr[:], rec...)); err != nil {
				return err
			}
		}
	}, nil
}

// recordType finds the BTF type a ring buffer's records are decoded
// with: the one named (a struct, union or typedef of the object), else the
// map's declared value type, else none.
func (d *Daemon) recordType(name string, declared btf.Type) (btf.Type, error) {
	if name == "" {
		return declared, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return nil, err
	}
	if l.coll.BTF == nil {
		return nil, bad("program %s has no BTF: build it with clang -g to decode records by type", l.name)
	}
	cands, _ := l.coll.BTF.AnyTypesByName(strings.TrimPrefix(strings.TrimPrefix(name, "struct "), "union "))
	for _, c := range cands {
		switch c.(type) {
		case *btf.Struct, *btf.Union, *btf.Typedef, *btf.Int:
			if n, err := btf.Sizeof(c); err == nil && n > 0 {
				return c, nil
			}
		}
	}
	return nil, control.Errorf(control.CodeNotFound, "program %s has no type %q in its BTF (give a struct, union or typedef name)", l.name, name)
}

func typeName(t btf.Type) string {
	switch t.(type) {
	case *btf.Struct:
		return "struct " + t.TypeName()
	case *btf.Union:
		return "union " + t.TypeName()
	}
	return t.TypeName()
}

// Capture streams a port's frames, both directions, as pcap. The capture
// starts before the reply, so that a refusal (a capture already running on
// the port) reaches the client as an error, and every frame after the
// reply is in the stream.
func (d *Daemon) Capture(p control.CaptureParams) (func(context.Context, io.Writer) error, error) {
	idx, err := d.sw.PortByName(p.Port)
	if err != nil {
		return nil, control.Errorf(control.CodeNotFound, "no port %s attached: see `vswitch port show`", p.Port)
	}
	lw := &latchWriter{}
	stop, err := d.sw.Capture(idx, lw, bpfport.CaptureConfig{SnapLen: p.Snaplen})
	// A capture whose client just left is released by its own connection's
	// goroutine: give it a moment before refusing, so that stopping a
	// capture and starting the next one at once works.
	for deadline := time.Now().Add(time.Second); errors.Is(err, vswitch.ErrCaptureRunning) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		stop, err = d.sw.Capture(idx, lw, bpfport.CaptureConfig{SnapLen: p.Snaplen})
	}
	if err != nil {
		if errors.Is(err, vswitch.ErrCaptureRunning) {
			return nil, control.Errorf(control.CodeExists, "%v", err)
		}
		return nil, control.Errorf(control.CodeInvalid, "%v", err)
	}
	return func(ctx context.Context, w io.Writer) error {
		lw.attach(w)
		<-ctx.Done()
		return stop()
	}, nil
}

// latchWriter holds what is written to it until attach gives it the real
// writer (the stream to the client), then writes through.
type latchWriter struct {
	mu  sync.Mutex
	buf []byte
	w   io.Writer
}

func (l *latchWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		l.buf = append(l.buf, p...)
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *latchWriter) attach(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w = w
	if len(l.buf) > 0 {
		w.Write(l.buf)
		l.buf = nil
	}
}
