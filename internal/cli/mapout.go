package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/govswitch/vswitch/control"
)

// Map entries as -j prints them: as bpftool does, keys and values as
// arrays of hex bytes ("0x0a"), per-CPU values as "values" [{cpu,
// value}], and the BTF-typed form under "formatted"; vswitch adds the
// per-CPU "sum".

// hexArray marshals as bpftool's ["0x0a", "0x00", ...].
type hexArray []byte

func (h hexArray) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range h {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"0x%02x"`, x)
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}

type jsonEntry struct {
	Key       hexArray        `json:"key"`
	Value     hexArray        `json:"value,omitempty"`
	Values    []jsonCPUValue  `json:"values,omitempty"`
	Sum       json.RawMessage `json:"sum,omitempty"`
	Formatted *jsonFormatted  `json:"formatted,omitempty"`
}

type jsonCPUValue struct {
	CPU   int      `json:"cpu"`
	Value hexArray `json:"value"`
}

type jsonFormatted struct {
	Key    json.RawMessage  `json:"key,omitempty"`
	Value  json.RawMessage  `json:"value,omitempty"`
	Values []jsonCPUFormats `json:"values,omitempty"`
}

type jsonCPUFormats struct {
	CPU   int             `json:"cpu"`
	Value json.RawMessage `json:"value"`
}

func toJSONEntry(e control.MapEntry) jsonEntry {
	j := jsonEntry{Key: e.Key, Sum: e.Sum}
	f := &jsonFormatted{Key: e.KeyFields, Value: e.ValueFields}
	if len(e.PerCPU) > 0 {
		for _, v := range e.PerCPU {
			j.Values = append(j.Values, jsonCPUValue{v.CPU, v.Value})
			if len(v.ValueFields) > 0 {
				f.Values = append(f.Values, jsonCPUFormats{v.CPU, v.ValueFields})
			}
		}
	} else {
		j.Value = e.Value
	}
	if len(f.Key) > 0 || len(f.Value) > 0 || len(f.Values) > 0 {
		j.Formatted = f
	}
	return j
}

// printEntry prints an entry as typed fields where the object has BTF for
// them, else in hex; a per-CPU value one line per worker slot, then the
// sum.
func printEntry(w io.Writer, e control.MapEntry) {
	k := hexBytes(e.Key)
	if len(e.KeyFields) > 0 {
		k = string(e.KeyFields)
	}
	if len(e.PerCPU) == 0 {
		v := hexBytes(e.Value)
		if len(e.ValueFields) > 0 {
			v = string(e.ValueFields)
		}
		fmt.Fprintf(w, "key: %s\tvalue: %s\n", k, v)
		return
	}
	fmt.Fprintf(w, "key: %s\n", k)
	others := 0
	for _, c := range e.PerCPU {
		if !c.Worker {
			others++
			continue
		}
		v := hexBytes(c.Value)
		if len(c.ValueFields) > 0 {
			v = string(c.ValueFields)
		}
		fmt.Fprintf(w, "  cpu %s:\t%s\n", strconv.Itoa(c.CPU), v)
	}
	if len(e.Sum) > 0 {
		fmt.Fprintf(w, "  sum:\t%s\n", e.Sum)
	}
	if others > 0 {
		fmt.Fprintf(w, "  (%s of no worker: in the sum, -j shows them)\n", plural(others, "other slot"))
	}
}
