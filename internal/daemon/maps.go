package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

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

func asmLines(insns []asm.Instruction) []asmLine {
	var out []asmLine
	for n := 0; n < len(insns); n++ {
		var next asm.Instruction
		if n+1 < len(insns) {
			next = insns[n+1]
		}
		s := asm.Format(insns[n], next)
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
	m, _, err := d.lookupMapTypes(name)
	return m, err
}

func (d *Daemon) lookupMapTypes(name string) (maps.Map, loader.MapTypes, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return nil, loader.MapTypes{}, err
	}
	ty := l.coll.Types[name]
	m, ok := l.coll.Maps[name]
	if !ok {
		var names []string
		for n := range l.coll.Maps {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, ty, control.Errorf(control.CodeNotFound, "no map %q (the program has: %s)", name, strings.Join(names, ", "))
	}
	return m, ty, nil
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

func perCPU(t maps.Type) bool { return t == maps.PerCPUArray || t == maps.PerCPUHash }

// fields formats an entry's key and value by their BTF types (per-CPU
// values as an array with one element per CPU slot).
func fields(m maps.Map, ty loader.MapTypes, e *control.MapEntry) {
	if ty.Key != nil {
		if f, err := btfjson.Format(ty.Key, e.Key); err == nil {
			e.KeyFields = f
		}
	}
	if ty.Value == nil {
		return
	}
	s := m.Spec()
	if !perCPU(s.Type) {
		if f, err := btfjson.Format(ty.Value, e.Value); err == nil {
			e.ValueFields = f
		}
		return
	}
	stride := int(s.ValueSize+7) &^ 7
	var parts []string
	for off := 0; off+int(s.ValueSize) <= len(e.Value); off += stride {
		f, err := btfjson.Format(ty.Value, e.Value[off:off+int(s.ValueSize)])
		if err != nil {
			return
		}
		parts = append(parts, string(f))
	}
	e.ValueFields = json.RawMessage("[" + strings.Join(parts, ",") + "]")
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
		v, err := btfjson.Parse(ty.Value, p.ValueFields)
		if err != nil {
			return bad("map %s: value: %v", p.Name, err)
		}
		if s := m.Spec(); perCPU(s.Type) {
			// One value for every CPU slot.
			stride := int(s.ValueSize+7) &^ 7
			all := make([]byte, stride*max(s.CPUs, 1))
			for off := 0; off < len(all); off += stride {
				copy(all[off:], v)
			}
			v = all
		}
		p.Value = v
	}
	return nil
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

// MapOp performs map.dump, map.lookup, map.update and map.delete.
func (d *Daemon) MapOp(method string, p control.MapParams) (any, error) {
	m, ty, err := d.lookupMapTypes(p.Name)
	if err != nil {
		return nil, err
	}
	if err := fromFields(m, ty, &p); err != nil {
		return nil, err
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
			fields(m, ty, &e)
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
		fields(m, ty, &e)
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
		if err := m.Update(p.Key, p.Value, flags); err != nil {
			if errors.Is(err, maps.ErrBadValue) {
				return nil, bad("map %s: value has %d bytes, the map's values have %d: %v", p.Name, len(p.Value), s.ValueSize, err)
			}
			return nil, mapError(err, p.Name)
		}
		return control.MapEntry{Key: p.Key, Value: p.Value}, nil
	case control.MethodMapDelete:
		if err := checkKey(); err != nil {
			return nil, err
		}
		if err := m.Delete(p.Key); err != nil {
			return nil, mapError(err, p.Name)
		}
		return struct{}{}, nil
	}
	return nil, bad("unknown map method %q", method)
}

// RingbufStream streams the records of a ring buffer map, each prefixed by
// its length (4 bytes, little endian).
func (d *Daemon) RingbufStream(name string) (func(context.Context, io.Writer) error, error) {
	m, err := d.lookupMap(name)
	if err != nil {
		return nil, err
	}
	rb, ok := m.(*maps.RingBuffer)
	if !ok {
		return nil, bad("map %s is a %s, not a ring buffer", name, m.Spec().Type)
	}
	return func(ctx context.Context, w io.Writer) error {
		for {
			rec, err := rb.Read(ctx)
			if err != nil {
				return err
			}
			var hdr [4]byte
			binary.LittleEndian.PutUint32(hdr[:], uint32(len(rec)))
			if _, err := w.Write(append(hdr[:], rec...)); err != nil {
				return err
			}
		}
	}, nil
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
