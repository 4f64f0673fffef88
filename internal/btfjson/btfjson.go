// Package btfjson prints map keys and values as typed fields, using the
// BTF types an object carries, and reads them back from JSON: MAC
// addresses as "02:00:00:00:00:01", integers as numbers, structs as
// objects.
package btfjson

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// maxDepth bounds nesting, so that a hostile object cannot recurse forever.
const maxDepth = 32

// Format decodes b, laid out as t, into JSON.
func Format(t btf.Type, b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := format(&buf, t, b, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func size(t btf.Type) (int, error) { return btf.Sizeof(t) }

func format(w *bytes.Buffer, t btf.Type, b []byte, depth int) error {
	if depth > maxDepth {
		return errors.New("type nested too deeply")
	}
	t = btf.UnderlyingType(t)
	switch t := t.(type) {
	case *btf.Void:
		// A global data map's key: no type to show it by (hex is better).
		return errNoType
	case *btf.Int:
		if int(t.Size) > len(b) {
			return errShort
		}
		if t.Encoding&btf.Bool != 0 {
			w.WriteString(strconv.FormatBool(uint64Of(b[:t.Size]) != 0))
			return nil
		}
		v := uint64Of(b[:t.Size])
		if t.Encoding&btf.Signed != 0 {
			shift := 64 - 8*t.Size
			w.WriteString(strconv.FormatInt(int64(v<<shift)>>shift, 10))
		} else {
			w.WriteString(strconv.FormatUint(v, 10))
		}
	case *btf.Enum:
		if int(t.Size) > len(b) {
			return errShort
		}
		v := uint64Of(b[:t.Size])
		for _, ev := range t.Values {
			if ev.Value == v {
				w.WriteString(strconv.Quote(ev.Name))
				return nil
			}
		}
		w.WriteString(strconv.FormatUint(v, 10))
	case *btf.Pointer:
		if len(b) < 8 {
			return errShort
		}
		w.WriteString(strconv.FormatUint(binary.LittleEndian.Uint64(b), 10))
	case *btf.Float:
		switch t.Size {
		case 4:
			w.WriteString(strconv.FormatFloat(float64(math.Float32frombits(uint32(uint64Of(b[:4])))), 'g', -1, 32))
		case 8:
			w.WriteString(strconv.FormatFloat(math.Float64frombits(uint64Of(b[:8])), 'g', -1, 64))
		default:
			return fmt.Errorf("float of %d bytes", t.Size)
		}
	case *btf.Array:
		es, err := size(t.Type)
		if err != nil {
			return err
		}
		n := int(t.Nelems)
		if es*n > len(b) {
			return errShort
		}
		if es == 1 && isByte(t.Type) {
			w.WriteString(strconv.Quote(colonHex(b[:n])))
			return nil
		}
		w.WriteByte('[')
		for i := 0; i < n; i++ {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := format(w, t.Type, b[i*es:], depth+1); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	case *btf.Struct:
		return formatMembers(w, t.Members, b, depth)
	case *btf.Union:
		return formatMembers(w, t.Members, b, depth)
	case *btf.Datasec:
		w.WriteByte('{')
		first := true
		for _, v := range t.Vars {
			vr, ok := v.Type.(*btf.Var)
			if !ok || int(v.Offset+v.Size) > len(b) {
				continue
			}
			if !first {
				w.WriteByte(',')
			}
			first = false
			w.WriteString(strconv.Quote(vr.Name) + ":")
			if err := format(w, vr.Type, b[v.Offset:v.Offset+v.Size], depth+1); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	default:
		w.WriteString(strconv.Quote(hex.EncodeToString(b)))
	}
	return nil
}

var (
	errShort  = errors.New("data shorter than its type")
	errNoType = errors.New("no type information")
)

func formatMembers(w *bytes.Buffer, ms []btf.Member, b []byte, depth int) error {
	w.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(strconv.Quote(memberName(m, i)) + ":")
		off := int(m.Offset / 8)
		if off > len(b) {
			return errShort
		}
		if m.BitfieldSize > 0 {
			v := bitfield(b, m)
			w.WriteString(strconv.FormatUint(v, 10))
			continue
		}
		if err := format(w, m.Type, b[off:], depth+1); err != nil {
			return err
		}
	}
	w.WriteByte('}')
	return nil
}

func memberName(m btf.Member, i int) string {
	if m.Name == "" {
		return "_" + strconv.Itoa(i)
	}
	return m.Name
}

func bitfield(b []byte, m btf.Member) uint64 {
	var v uint64
	start := int(m.Offset)
	for i := 0; i < int(m.BitfieldSize); i++ {
		bit := start + i
		if bit/8 < len(b) && b[bit/8]>>(bit%8)&1 != 0 {
			v |= 1 << i
		}
	}
	return v
}

func isByte(t btf.Type) bool {
	i, ok := btf.UnderlyingType(t).(*btf.Int)
	return ok && i.Size == 1
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func uint64Of(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// Parse encodes JSON fields as t's bytes. Fields left out are zero.
func Parse(t btf.Type, msg json.RawMessage) ([]byte, error) {
	return ParseOnto(t, msg, nil)
}

// ParseOnto is Parse starting from base (copied, when it has t's size)
// instead of zeros: fields left out keep base's values.
func ParseOnto(t btf.Type, msg json.RawMessage, base []byte) ([]byte, error) {
	n, err := size(t)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > 1<<20 {
		return nil, fmt.Errorf("type of %d bytes", n)
	}
	b := make([]byte, n)
	if len(base) == n {
		copy(b, base)
	}
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if err := parse(t, v, b, 0, ""); err != nil {
		return nil, err
	}
	return b, nil
}

func parse(t btf.Type, v any, b []byte, depth int, path string) error {
	if depth > maxDepth {
		return errors.New("type nested too deeply")
	}
	// errf prefixes errors below the top with the field's path.
	errf := func(format string, args ...any) error {
		if path == "" {
			return fmt.Errorf(format, args...)
		}
		return fmt.Errorf(path+": "+format, args...)
	}
	t = btf.UnderlyingType(t)
	switch t := t.(type) {
	case *btf.Int:
		if t.Encoding&btf.Bool != 0 {
			bv, ok := v.(bool)
			if !ok {
				return errf("want true or false")
			}
			if bv {
				b[0] = 1
			}
			return nil
		}
		x, err := intOf(v, t.Size, t.Encoding&btf.Signed != 0)
		if err != nil {
			return errf("%w", err)
		}
		putUint(b[:t.Size], x)
	case *btf.Enum:
		if s, ok := v.(string); ok {
			for _, ev := range t.Values {
				if ev.Name == s {
					putUint(b[:t.Size], ev.Value)
					return nil
				}
			}
			return errf("%q is not a value of enum %s", s, t.Name)
		}
		x, err := intOf(v, t.Size, t.Signed)
		if err != nil {
			return errf("%w", err)
		}
		putUint(b[:t.Size], x)
	case *btf.Pointer:
		x, err := intOf(v, 8, false)
		if err != nil {
			return errf("%w", err)
		}
		putUint(b[:8], x)
	case *btf.Array:
		es, err := size(t.Type)
		if err != nil {
			return err
		}
		n := int(t.Nelems)
		if s, ok := v.(string); ok && es == 1 && isByte(t.Type) {
			raw, err := hex.DecodeString(strings.NewReplacer(":", "", "-", "", " ", "").Replace(s))
			if err != nil || len(raw) != n {
				return errf("want %d bytes as hex like 02:00:00:00:00:01, have %q", n, s)
			}
			copy(b, raw)
			return nil
		}
		arr, ok := v.([]any)
		if !ok || len(arr) > n {
			return errf("want an array of at most %d elements", n)
		}
		for i, e := range arr {
			if err := parse(t.Type, e, b[i*es:], depth+1, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case *btf.Datasec:
		// Global data (.data, .rodata, .bss): an object of its variables.
		obj, ok := v.(map[string]any)
		if !ok {
			return errf("want an object of the section's variables")
		}
		vars := map[string]btf.VarSecinfo{}
		var names []string
		for _, vs := range t.Vars {
			if vr, ok := vs.Type.(*btf.Var); ok {
				vars[vr.Name] = vs
				names = append(names, vr.Name)
			}
		}
		for k, fv := range obj {
			vs, ok := vars[k]
			if !ok {
				return errf("no variable %q (variables: %s)", k, strings.Join(names, ", "))
			}
			if int(vs.Offset+vs.Size) > len(b) {
				return errf("variable %s lies outside the section", k)
			}
			if err := parse(vs.Type.(*btf.Var).Type, fv, b[vs.Offset:vs.Offset+vs.Size], depth+1, strings.TrimPrefix(path+"."+k, ".")); err != nil {
				return err
			}
		}
	case *btf.Struct, *btf.Union:
		var ms []btf.Member
		if s, ok := t.(*btf.Struct); ok {
			ms = s.Members
		} else {
			ms = t.(*btf.Union).Members
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return errf("want an object with fields %s", fieldNames(ms))
		}
		known := map[string]btf.Member{}
		for i, m := range ms {
			known[memberName(m, i)] = m
		}
		for k, fv := range obj {
			m, ok := known[k]
			if !ok {
				return errf("no field %q (fields: %s)", k, fieldNames(ms))
			}
			if m.BitfieldSize > 0 {
				return errf("field %s: bitfields cannot be set", k)
			}
			off := int(m.Offset / 8)
			if err := parse(m.Type, fv, b[off:], depth+1, strings.TrimPrefix(path+"."+k, ".")); err != nil {
				return err
			}
		}
	default:
		return errf("type %T cannot be set from JSON", t)
	}
	return nil
}

func fieldNames(ms []btf.Member) string {
	var s []string
	for i, m := range ms {
		s = append(s, memberName(m, i))
	}
	return strings.Join(s, ", ")
}

func intOf(v any, size uint32, signed bool) (uint64, error) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0, fmt.Errorf("want a number, have %v", v)
	}
	bits := int(size * 8)
	if signed {
		x, err := strconv.ParseInt(s, 0, bits)
		if err != nil {
			return 0, fmt.Errorf("%s does not fit in a signed %d-bit integer", s, bits)
		}
		return uint64(x), nil
	}
	x, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%s does not fit in an unsigned %d-bit integer", s, bits)
	}
	return x, nil
}

func putUint(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// Sum adds up values laid out as t (the slots of a per-CPU value): integer
// fields are summed (in 64 bits, so that 32-bit counters do not wrap);
// other fields (byte arrays such as MAC addresses, enums, pointers, bools)
// are left out. ok is false when nothing in t can be added up.
func Sum(t btf.Type, values [][]byte) (_ json.RawMessage, ok bool) {
	var buf bytes.Buffer
	if !sum(&buf, t, values, 0) {
		return nil, false
	}
	return buf.Bytes(), true
}

func sum(w *bytes.Buffer, t btf.Type, values [][]byte, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch t := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		if t.Encoding&btf.Bool != 0 {
			return false
		}
		var u uint64
		var s int64
		for _, b := range values {
			if int(t.Size) > len(b) {
				return false
			}
			v := uint64Of(b[:t.Size])
			shift := 64 - 8*t.Size
			s += int64(v<<shift) >> shift
			u += v
		}
		if t.Encoding&btf.Signed != 0 {
			w.WriteString(strconv.FormatInt(s, 10))
		} else {
			w.WriteString(strconv.FormatUint(u, 10))
		}
		return true
	case *btf.Array:
		es, err := size(t.Type)
		if err != nil || es <= 0 || isByte(t.Type) {
			return false
		}
		var inner bytes.Buffer
		inner.WriteByte('[')
		for i := 0; i < int(t.Nelems); i++ {
			if i > 0 {
				inner.WriteByte(',')
			}
			if !sum(&inner, t.Type, sliceAll(values, i*es), depth+1) {
				return false
			}
		}
		inner.WriteByte(']')
		w.Write(inner.Bytes())
		return true
	case *btf.Struct:
		return sumMembers(w, t.Members, values, depth)
	case *btf.Union:
		return false
	}
	return false
}

func sumMembers(w *bytes.Buffer, ms []btf.Member, values [][]byte, depth int) bool {
	var inner bytes.Buffer
	inner.WriteByte('{')
	n := 0
	for i, m := range ms {
		if m.BitfieldSize > 0 {
			continue
		}
		var field bytes.Buffer
		if !sum(&field, m.Type, sliceAll(values, int(m.Offset/8)), depth+1) {
			continue
		}
		if n > 0 {
			inner.WriteByte(',')
		}
		n++
		inner.WriteString(strconv.Quote(memberName(m, i)) + ":")
		inner.Write(field.Bytes())
	}
	inner.WriteByte('}')
	if n == 0 {
		return false
	}
	w.Write(inner.Bytes())
	return true
}

// sliceAll returns each value from off on (empty where it is shorter).
func sliceAll(values [][]byte, off int) [][]byte {
	out := make([][]byte, len(values))
	for i, b := range values {
		if off <= len(b) {
			out[i] = b[off:]
		}
	}
	return out
}
