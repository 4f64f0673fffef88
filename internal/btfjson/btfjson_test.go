package btfjson_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/govswitch/vswitch/examples"
	"github.com/govswitch/vswitch/internal/btfjson"
	"github.com/govswitch/vswitch/loader"
)

func types(t *testing.T, name, m string) loader.MapTypes {
	t.Helper()
	obj, err := examples.Object(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loader.LoadReader(bytes.NewReader(obj), loader.Options{ObjectName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ty, ok := c.Types[m]
	if !ok {
		t.Fatalf("%s.o has no BTF for map %s (have %v)", name, m, c.Types)
	}
	return ty
}

func TestFDB(t *testing.T) {
	ty := types(t, "learn", "fdb")
	key := []byte{0x02, 0, 0, 0, 0, 0x01}
	got, err := btfjson.Format(ty.Key, key)
	if err != nil || string(got) != `{"addr":"02:00:00:00:00:01"}` {
		t.Fatalf("key: %s %v", got, err)
	}
	val := make([]byte, 16)
	val[0] = 3
	val[8] = 0x10
	got, err = btfjson.Format(ty.Value, val)
	if err != nil || string(got) != `{"port":3,"pad":0,"last_seen":16}` {
		t.Fatalf("value: %s %v", got, err)
	}
	back, err := btfjson.Parse(ty.Key, json.RawMessage(`{"addr":"02:00:00:00:00:01"}`))
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("parse key: %x %v", back, err)
	}
	back, err = btfjson.Parse(ty.Value, json.RawMessage(`{"port":3,"last_seen":16}`))
	if err != nil || !bytes.Equal(back, val) {
		t.Fatalf("parse value: %x %v", back, err)
	}
	for _, bad := range []string{`{"addr":"02:00"}`, `{"nope":1}`, `{"addr":5}`, `[1]`, `{`} {
		if _, err := btfjson.Parse(ty.Key, json.RawMessage(bad)); err == nil {
			t.Errorf("Parse(%s) succeeded", bad)
		}
	}
	if _, err := btfjson.Parse(ty.Value, json.RawMessage(`{"port":4294967296}`)); err == nil {
		t.Error("a port that does not fit in 32 bits was accepted")
	}
}

func TestGlobalData(t *testing.T) {
	ty := types(t, "static", "static.rodata")
	n, _ := btf.Sizeof(ty.Value)
	got, err := btfjson.Format(ty.Value, make([]byte, n))
	if err != nil || got[0] != '{' {
		t.Fatalf("%s %v", got, err)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil || len(m) == 0 {
		t.Errorf("rodata as fields: %s %v", got, err)
	}
}

// FuzzParse: any JSON against any example type gives bytes or an error.
func FuzzParse(f *testing.F) {
	f.Add(`{"addr":"02:00:00:00:00:01"}`)
	f.Add(`{"port":1,"last_seen":"0x10"}`)
	f.Add(`[[[[1]]]]`)
	obj, _ := examples.Object("learn")
	c, err := loader.LoadReader(bytes.NewReader(obj), loader.Options{ObjectName: "learn"})
	if err != nil {
		f.Fatal(err)
	}
	ty := c.Types["fdb"]
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range []btf.Type{ty.Key, ty.Value} {
			if b, err := btfjson.Parse(typ, json.RawMessage(s)); err == nil {
				if _, err := btfjson.Format(typ, b); err != nil {
					t.Fatalf("parsed %s but cannot format it back: %v", s, err)
				}
			}
		}
	})
}

// TestSum: a per-CPU value's slots add up field by field, in 64 bits;
// fields that are not numbers are left out.
func TestSum(t *testing.T) {
	u32 := &btf.Int{Name: "u32", Size: 4}
	s16 := &btf.Int{Name: "s16", Size: 2, Encoding: btf.Signed}
	u8 := &btf.Int{Name: "u8", Size: 1}
	st := &btf.Struct{Name: "c", Size: 16, Members: []btf.Member{
		{Name: "frames", Type: u32, Offset: 0},
		{Name: "delta", Type: s16, Offset: 32},
		{Name: "mac", Type: &btf.Array{Type: u8, Index: u32, Nelems: 6}, Offset: 48},
		{Name: "hist", Type: &btf.Array{Type: u8, Index: u32, Nelems: 2}, Offset: 96},
	}}
	a := []byte{0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	b := []byte{0x02, 0x00, 0x00, 0x00, 0x05, 0x00, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0}
	got, ok := btfjson.Sum(st, [][]byte{a, b})
	if want := `{"frames":4294967297,"delta":3}`; !ok || string(got) != want {
		t.Errorf("struct: %s %v, want %s", got, ok, want)
	}
	if got, ok := btfjson.Sum(u32, [][]byte{{1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}}); !ok || string(got) != "6" {
		t.Errorf("u32: %s %v", got, ok)
	}
	arr := &btf.Array{Type: u32, Index: u32, Nelems: 2}
	if got, ok := btfjson.Sum(arr, [][]byte{{1, 0, 0, 0, 9, 0, 0, 0}, {2, 0, 0, 0, 1, 0, 0, 0}}); !ok || string(got) != "[3,10]" {
		t.Errorf("array: %s %v", got, ok)
	}
	onlyMAC := &btf.Struct{Name: "m", Size: 6, Members: []btf.Member{{Name: "mac", Type: &btf.Array{Type: u8, Index: u32, Nelems: 6}}}}
	if got, ok := btfjson.Sum(onlyMAC, [][]byte{make([]byte, 6)}); ok {
		t.Errorf("a struct of nothing to add: %s", got)
	}
}

// TestGlobalData: a global data section reads and writes as an object of
// its variables; ParseOnto keeps the variables left out.
func TestGlobalDataParse(t *testing.T) {
	ty := types(t, "static", "static.data")
	got, err := btfjson.Parse(ty.Value, json.RawMessage(`{"unknown_action": 255}`))
	if err != nil || !bytes.Equal(got, []byte{255, 0, 0, 0}) {
		t.Fatalf("static.data: %x %v", got, err)
	}
	if _, err := btfjson.Parse(ty.Value, json.RawMessage(`{"nosuch": 1}`)); err == nil {
		t.Error("unknown variable accepted")
	}
	u32 := &btf.Int{Name: "u32", Size: 4}
	sec := &btf.Datasec{Name: ".data", Size: 8, Vars: []btf.VarSecinfo{
		{Type: &btf.Var{Name: "a", Type: u32}, Offset: 0, Size: 4},
		{Type: &btf.Var{Name: "b", Type: u32}, Offset: 4, Size: 4},
	}}
	got, err = btfjson.ParseOnto(sec, json.RawMessage(`{"b": 7}`), []byte{1, 0, 0, 0, 2, 0, 0, 0})
	if err != nil || !bytes.Equal(got, []byte{1, 0, 0, 0, 7, 0, 0, 0}) {
		t.Errorf("ParseOnto: %x %v", got, err)
	}
}
