package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/bpfport"
	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/maps"
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
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.current()
	if err != nil {
		return nil, err
	}
	m, ok := l.coll.Maps[name]
	if !ok {
		var names []string
		for n := range l.coll.Maps {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, control.Errorf(control.CodeNotFound, "no map %q (the program has: %s)", name, strings.Join(names, ", "))
	}
	return m, nil
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
	m, err := d.lookupMap(p.Name)
	if err != nil {
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
		if s.Type == maps.RingBuf || s.Type == maps.ProgArray && false {
			return nil, control.Errorf(control.CodeUnsupported, "map %s is a ring buffer: read its records with `vswitch map dump %s --follow` (ringbuf.read)", p.Name, p.Name)
		}
		var key []byte
		limit := int(s.MaxEntries) + 1
		for n := 0; n < limit; n++ {
			next, err := m.NextKey(key)
			if err != nil {
				break
			}
			key = next
			v, err := m.Lookup(key)
			if err != nil {
				continue // deleted meanwhile
			}
			res.Entries = append(res.Entries, control.MapEntry{Key: key, Value: v})
		}
		return res, nil
	case control.MethodMapLookup:
		if err := checkKey(); err != nil {
			return nil, err
		}
		v, err := m.Lookup(p.Key)
		if err != nil {
			return nil, mapError(err, p.Name)
		}
		return control.MapEntry{Key: p.Key, Value: v}, nil
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

// Capture streams a port's frames, both directions, as pcap.
func (d *Daemon) Capture(p control.CaptureParams) (func(context.Context, io.Writer) error, error) {
	idx, err := d.sw.PortByName(p.Port)
	if err != nil {
		return nil, control.Errorf(control.CodeNotFound, "no port %s attached: see `vswitch port show`", p.Port)
	}
	return func(ctx context.Context, w io.Writer) error {
		stop, err := d.sw.Capture(idx, w, bpfport.CaptureConfig{SnapLen: p.Snaplen})
		if err != nil {
			return err
		}
		<-ctx.Done()
		return stop()
	}, nil
}
