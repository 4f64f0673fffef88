package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/examples"
)

func TestLoadAndMaps(t *testing.T) {
	d := New(Config{})
	defer d.Close()
	if _, err := d.ProgramInfo(); control.CodeOf(err) != control.CodeNotFound {
		t.Errorf("no program: %v", err)
	}
	info, err := d.LoadDefault("interp")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "learn" || info.Engine != "interp" || len(info.Maps) != 1 {
		t.Errorf("%+v", info)
	}
	key := []byte{2, 0, 0, 0, 0, 1}
	val := make([]byte, 16)
	val[0] = 3
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: key, Value: val}); err != nil {
		t.Fatal(err)
	}
	// Reloading keeps the fdb.
	obj, _ := examples.Object("learn")
	info, err = d.Load(control.ProgLoadParams{Object: obj, File: "learn.o", Engine: "interp"})
	if err != nil || len(info.Reused) != 1 {
		t.Fatalf("reload: %+v %v", info, err)
	}
	fdb, err := d.FDB()
	if err != nil || len(fdb.Entries) != 1 || fdb.Entries[0].Port != 3 || fdb.Entries[0].MAC != "02:00:00:00:00:01" {
		t.Errorf("fdb after reload: %+v %v", fdb, err)
	}
	// A bad object changes nothing.
	if _, err := d.Load(control.ProgLoadParams{Object: []byte("\x7fELF garbage"), File: "bad.o"}); control.CodeOf(err) != control.CodeInvalid {
		t.Errorf("bad object: %v", err)
	}
	if p, _ := d.ProgramInfo(); p.ID != info.ID {
		t.Errorf("a failed load replaced the program")
	}
	if _, err := d.MapOp(control.MethodMapLookup, control.MapParams{Name: "fdb", Key: []byte{1}}); control.CodeOf(err) != control.CodeBadRequest {
		t.Errorf("short key: %v", err)
	}
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: key, Value: val, Flags: "noexist"}); control.CodeOf(err) != control.CodeExists {
		t.Errorf("noexist: %v", err)
	}
	if out, err := d.Dump("xlated"); err != nil || !strings.Contains(out.Text, "exit") {
		t.Errorf("xlated: %v", err)
	}
	if _, err := d.Dump("jited"); control.CodeOf(err) != control.CodeUnsupported {
		t.Errorf("jited dump of an interpreted program: %v", err)
	}
}

func TestPickProgram(t *testing.T) {
	d := New(Config{})
	defer d.Close()
	obj, _ := examples.Object("acl")
	info, err := d.Load(control.ProgLoadParams{Object: obj, File: "acl.o", Engine: "interp"})
	if err != nil || info.Name != "acl" {
		t.Fatalf("acl.o: %+v %v", info, err)
	}
	if _, err := d.Load(control.ProgLoadParams{Object: obj, File: "other.o", Engine: "interp"}); err == nil || !strings.Contains(err.Error(), "--section") {
		t.Errorf("ambiguous object: %v", err)
	}
	if info, err := d.Load(control.ProgLoadParams{Object: obj, File: "x.o", Section: "acl_learn", Engine: "interp"}); err != nil || info.Name != "acl_learn" {
		t.Errorf("--section acl_learn: %+v %v", info, err)
	}
}

// FuzzHandle: no request, however malformed, makes the daemon panic or
// return anything but a clean error.
func FuzzHandle(f *testing.F) {
	f.Add("port.attach", `{"name":""}`)
	f.Add("map.update", `{"name":"fdb","key":"AAAAAAAA","value":"AA=="}`)
	f.Add("prog.load", `{"object":"f0VMRg==","file":"x.o"}`)
	f.Add("prog.dump", `{"kind":"jited"}`)
	f.Add("map.dump", `{"name":"fdb"}`)
	f.Add("fdb.show", ``)
	d := New(Config{})
	defer d.Close()
	if _, err := d.LoadDefault("interp"); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, params string) {
		if method == control.MethodPortAttach || method == control.MethodCapture || method == control.MethodRingbufRead {
			return // touch interfaces or block
		}
		_, _, err := d.Handle(context.Background(), method, json.RawMessage(params))
		var ce *control.Error
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("%s %s: error is not a protocol error: %v", method, params, err)
		}
	})
}
