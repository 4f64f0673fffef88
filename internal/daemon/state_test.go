package daemon

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/govswitch/vswitch/control"
	"github.com/govswitch/vswitch/examples"
	"github.com/govswitch/vswitch/vm"
)

// logBuf collects a daemon's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stateDaemon starts a daemon on the state in dir, as Run does, with fc
// as its configuration. stop ends it as a clean shutdown does; kill ends
// it as SIGKILL would (nothing more is written).
func stateDaemon(t *testing.T, dir string, fc FileConfig) (d *Daemon, log *logBuf, stop, kill func()) {
	t.Helper()
	log = &logBuf{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	st, sv, err := openStore(dir, logger)
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	d = New(Config{Logger: logger})
	d.state = st
	if err := d.restore(sv, &fc, false, "interp"); err != nil {
		t.Fatalf("restore: %v\n%s", err, log)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		if err := d.SaveSnapshot(); err != nil {
			t.Errorf("snapshot: %v", err)
		}
		d.Close()
		st.Close()
	}
	kill = func() {
		if done {
			return
		}
		done = true
		d.Close()
		st.Close()
	}
	t.Cleanup(kill)
	return d, log, stop, kill
}

func objectOf(t *testing.T, name string) []byte {
	t.Helper()
	obj, err := examples.Object(name)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// blockKey is the LPM key of 10.66.0.0/16 in acl.o's blocklist.
var blockKey = []byte{16, 0, 0, 0, 10, 66, 0, 0}

func lookup(t *testing.T, d *Daemon, m string, key []byte) []byte {
	t.Helper()
	r, err := d.MapOp(control.MethodMapLookup, control.MapParams{Name: m, Key: key})
	if err != nil {
		return nil
	}
	return r.(control.MapEntry).Value
}

// The ACL of issue 11: a blocklist entry written through the control
// plane survives a SIGKILL (nothing written at shutdown) and a restart.
func TestStateKeepsProgramAndMapChangesAcrossKill(t *testing.T) {
	dir := t.TempDir()
	d, _, _, kill := stateDaemon(t, dir, FileConfig{})
	if _, err := d.Load(control.ProgLoadParams{Object: objectOf(t, "acl"), File: "acl.o", Section: "acl", Engine: "interp"}); err != nil {
		t.Fatal(err)
	}
	rule := []byte{5, 0, 0, 0}
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "blocklist", Key: blockKey, Value: rule}); err != nil {
		t.Fatal(err)
	}
	other := []byte{24, 0, 0, 0, 10, 67, 1, 0}
	d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "blocklist", Key: other, Value: rule})
	if _, err := d.MapOp(control.MethodMapDelete, control.MapParams{Name: "blocklist", Key: other}); err != nil {
		t.Fatal(err)
	}
	kill()

	d, log, _, _ := stateDaemon(t, dir, FileConfig{})
	p, err := d.ProgramInfo()
	if err != nil || p.Name != "acl" || p.Engine != "interp" || p.File != "acl.o" {
		t.Fatalf("program after restart: %+v %v\n%s", p, err, log)
	}
	if v := lookup(t, d, "blocklist", blockKey); !bytes.Equal(v, rule) {
		t.Errorf("blocklist entry after restart: %x, want %x\n%s", v, rule, log)
	}
	if v := lookup(t, d, "blocklist", other); v != nil {
		t.Errorf("deleted entry back after restart: %x", v)
	}
}

// A clean shutdown saves what the program learned; a restart puts it
// back.
func TestStateSnapshotOfLearnedEntries(t *testing.T) {
	dir := t.TempDir()
	d, _, stop, _ := stateDaemon(t, dir, FileConfig{})
	// Learned, as the data path does: straight into the map, not recorded.
	mac := []byte{2, 0, 0, 0, 0, 7}
	val := make([]byte, 16)
	val[0] = 2
	d.mu.Lock()
	fdb := d.prog.coll.Maps["fdb"]
	d.mu.Unlock()
	if err := fdb.Update(mac, val, 0); err != nil {
		t.Fatal(err)
	}
	stop()
	d, log, _, kill := stateDaemon(t, dir, FileConfig{})
	if v := lookup(t, d, "fdb", mac); !bytes.Equal(v, val) {
		t.Fatalf("learned entry after a clean restart: %x\n%s", v, log)
	}
	// fdb flush is recorded: after a crash the snapshot's entry stays flushed.
	if err := d.FDBFlush(); err != nil {
		t.Fatal(err)
	}
	kill()
	d, log, _, _ = stateDaemon(t, dir, FileConfig{})
	if v := lookup(t, d, "fdb", mac); v != nil {
		t.Errorf("flushed entry back after a crash: %x\n%s", v, log)
	}
}

// A program replaced by another keeps the maps they share, with their
// recorded changes; the changes of maps not kept are forgotten, so they
// do not reappear in a later program's map of the same name.
func TestStateProgramReplaced(t *testing.T) {
	dir := t.TempDir()
	d, _, _, kill := stateDaemon(t, dir, FileConfig{})
	acl := control.ProgLoadParams{Object: objectOf(t, "acl"), File: "acl.o", Section: "acl", Engine: "interp"}
	if _, err := d.Load(acl); err != nil {
		t.Fatal(err)
	}
	mac := []byte{2, 0, 0, 0, 0, 9}
	val := make([]byte, 16)
	val[0] = 1
	for _, p := range []control.MapParams{
		{Name: "blocklist", Key: blockKey, Value: []byte{5, 0, 0, 0}},
		{Name: "fdb", Key: mac, Value: val},
	} {
		if _, err := d.MapOp(control.MethodMapUpdate, p); err != nil {
			t.Fatal(err)
		}
	}
	// learn.o shares fdb, not blocklist.
	if _, err := d.Load(control.ProgLoadParams{Object: objectOf(t, "learn"), File: "learn.o", Engine: "interp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Load(acl); err != nil {
		t.Fatal(err)
	}
	if v := lookup(t, d, "blocklist", blockKey); v != nil {
		t.Fatalf("a fresh blocklist holds %x", v)
	}
	kill()
	d, log, _, _ := stateDaemon(t, dir, FileConfig{})
	if p, _ := d.ProgramInfo(); p.Name != "acl" {
		t.Errorf("program after restart: %s", p.Name)
	}
	if v := lookup(t, d, "fdb", mac); !bytes.Equal(v, val) {
		t.Errorf("fdb entry kept across both loads lost in the restart: %x\n%s", v, log)
	}
	if v := lookup(t, d, "blocklist", blockKey); v != nil {
		t.Errorf("blocklist entry of a replaced map came back: %x\n%s", v, log)
	}
}

// The configuration's program wins over the saved one; the saved map
// changes apply to its maps of the same name.
func TestStateConfigProgramWins(t *testing.T) {
	dir := t.TempDir()
	d, _, _, kill := stateDaemon(t, dir, FileConfig{})
	if _, err := d.Load(control.ProgLoadParams{Object: objectOf(t, "learn"), File: "learn.o", Engine: "interp"}); err != nil {
		t.Fatal(err)
	}
	mac := []byte{2, 0, 0, 0, 0, 10}
	val := make([]byte, 16)
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: mac, Value: val}); err != nil {
		t.Fatal(err)
	}
	kill()
	aclFile := filepath.Join(t.TempDir(), "acl.o")
	os.WriteFile(aclFile, objectOf(t, "acl"), 0o644)
	fc := FileConfig{Program: &struct {
		File    string `json:"file"`
		Section string `json:"section,omitempty"`
		Engine  string `json:"engine,omitempty"`
		Compat  string `json:"compat,omitempty"`
	}{File: aclFile, Section: "acl", Engine: "interp"}}
	d, log, _, _ := stateDaemon(t, dir, fc)
	if p, _ := d.ProgramInfo(); p.Name != "acl" {
		t.Fatalf("program: %s, want the configuration's acl", p.Name)
	}
	if v := lookup(t, d, "fdb", mac); !bytes.Equal(v, val) {
		t.Errorf("saved fdb change not applied to the configuration's program: %x\n%s", v, log)
	}
}

func TestStateCorruptFileSetAside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600)
		}},
		{"truncated", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			os.WriteFile(path, b[:len(b)/3], 0o600)
		}},
		{"pages overwritten", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			// Keep the two meta pages (the first 8 KiB at most), scribble
			// over the rest.
			for i := 8192; i < len(b); i++ {
				b[i] = byte(i * 7)
			}
			os.WriteFile(path, b, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, _, _, kill := stateDaemon(t, dir, FileConfig{})
			if _, err := d.Load(control.ProgLoadParams{Object: objectOf(t, "acl"), File: "acl.o", Section: "acl", Engine: "interp"}); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 50; i++ {
				key := []byte{32, 0, 0, 0, 10, 66, 0, byte(i)}
				d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "blocklist", Key: key, Value: []byte{1, 0, 0, 0}})
			}
			kill()
			path := filepath.Join(dir, StateFile)
			before, _ := os.ReadFile(path)
			tc.corrupt(t, path)
			corrupt, _ := os.ReadFile(path)
			d, log, _, _ := stateDaemon(t, dir, FileConfig{})
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("set-aside files: %v (%d bytes before, %d corrupt)\n%s", aside, len(before), len(corrupt), log)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, corrupt) {
				t.Errorf("the set-aside file is not the corrupt one")
			}
			if !strings.Contains(log.String(), "set aside") || !strings.Contains(log.String(), aside[0]) {
				t.Errorf("no clear log line:\n%s", log)
			}
			// A fresh state: the default program, and it records again.
			if p, err := d.ProgramInfo(); err != nil || p.Name != "learn" {
				t.Errorf("program on a fresh state: %+v %v", p, err)
			}
			if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: []byte{2, 0, 0, 0, 0, 1}, Value: make([]byte, 16)}); err != nil {
				t.Errorf("recording on the fresh state: %v", err)
			}
		})
	}
}

func TestStateLockedByAnotherDaemon(t *testing.T) {
	dir := t.TempDir()
	stateDaemon(t, dir, FileConfig{})
	_, _, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "another daemon") || !strings.Contains(err.Error(), "--state-dir") {
		t.Fatalf("second daemon on the same state: %v", err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(aside) != 0 {
		t.Errorf("a locked state was set aside: %v", aside)
	}
}

// Program arrays are updated over the socket with a program's name (or
// number), and the change is kept across a restart.
func TestProgArrayUpdate(t *testing.T) {
	dir := t.TempDir()
	d, _, _, kill := stateDaemon(t, dir, FileConfig{})
	if _, err := d.Load(control.ProgLoadParams{Object: objectOf(t, "acl"), File: "acl.o", Section: "acl", Engine: "interp"}); err != nil {
		t.Fatal(err)
	}
	// A known station on port 3, a frame to it from port 0.
	dst := []byte{2, 0, 0, 0, 0, 0x33}
	val := make([]byte, 16)
	val[0] = 3
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: dst, Value: val}); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 60)
	copy(frame, dst)
	copy(frame[6:], []byte{2, 0, 0, 0, 0, 0x11})
	frame[12], frame[13] = 0x88, 0xb5
	run := func() uint64 {
		t.Helper()
		d.mu.Lock()
		r := d.prog.runner
		d.mu.Unlock()
		ret, err := vm.NewEnv().RunFrame(r, append([]byte(nil), frame...), 0)
		if err != nil {
			t.Fatal(err)
		}
		return ret
	}
	slot0 := []byte{0, 0, 0, 0}
	if got := run(); got != 3 {
		t.Fatalf("with acl_learn in slot 0: %d, want port 3", got)
	}
	if _, err := d.MapOp(control.MethodMapDelete, control.MapParams{Name: "next", Key: slot0}); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != 254 {
		t.Fatalf("with slot 0 empty: %d, want 254 (flood)", got)
	}
	// By name, as `map update next key 0 0 0 0 value json '"acl_learn"'`.
	r, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "next", Key: slot0, ValueFields: json.RawMessage(`"acl_learn"`)})
	if err != nil {
		t.Fatalf("update by name: %v", err)
	}
	if id := binary.NativeEndian.Uint32(r.(control.MapEntry).Value); id != 2 {
		t.Errorf("acl_learn is program %d, want 2 (acl, acl_learn)", id)
	}
	if got := run(); got != 3 {
		t.Fatalf("after the update by name: %d, want 3", got)
	}
	// By number, as `map update next key 0 0 0 0 value 2 0 0 0`.
	if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "next", Key: []byte{1, 0, 0, 0}, Value: []byte{2, 0, 0, 0}}); err != nil {
		t.Errorf("update by number: %v", err)
	}
	for _, tc := range []struct {
		p    control.MapParams
		want string
	}{
		{control.MapParams{Name: "next", Key: slot0, Value: []byte{9, 0, 0, 0}}, "no program number 9"},
		{control.MapParams{Name: "next", Key: slot0, ValueFields: json.RawMessage(`"nosuch"`)}, `no program "nosuch"`},
		{control.MapParams{Name: "next", Key: slot0, Value: []byte{1}}, "by name (value json"},
	} {
		_, err := d.MapOp(control.MethodMapUpdate, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "1 acl, 2 acl_learn") {
			t.Errorf("%+v: %v, want an error with %q and the programs", tc.p, err, tc.want)
		}
	}
	d.MapOp(control.MethodMapDelete, control.MapParams{Name: "next", Key: slot0})
	d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "next", Key: slot0, ValueFields: json.RawMessage(`{"name":"acl_learn"}`)})
	kill()
	d, log, _, _ := stateDaemon(t, dir, FileConfig{})
	if got := run(); got != 3 {
		t.Errorf("after a restart: %d, want 3\n%s", got, log)
	}
	if v := lookup(t, d, "next", []byte{1, 0, 0, 0}); binary.NativeEndian.Uint32(v) != 2 {
		t.Errorf("slot 1 after a restart: %x", v)
	}
}

// BenchmarkMapUpdateRecorded is the cost of an acknowledged map update
// with a state directory: the update, its record and the commit (fsync)
// before the reply. Compare with BenchmarkMapUpdateNoState. Run it on the
// disk the daemon's state lives on: go test ./internal/daemon -bench MapUpdate
func BenchmarkMapUpdateRecorded(b *testing.B) {
	dir := b.TempDir()
	st, sv, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	d := New(Config{})
	defer d.Close()
	d.state = st
	if err := d.restore(sv, &FileConfig{}, false, "interp"); err != nil {
		b.Fatal(err)
	}
	benchUpdates(b, d)
}

func BenchmarkMapUpdateNoState(b *testing.B) {
	d := New(Config{})
	defer d.Close()
	if _, err := d.LoadDefault("interp"); err != nil {
		b.Fatal(err)
	}
	benchUpdates(b, d)
}

func benchUpdates(b *testing.B, d *Daemon) {
	key := []byte{2, 0, 0, 0, 0, 0}
	val := make([]byte, 16)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key[5] = byte(i)
		if _, err := d.MapOp(control.MethodMapUpdate, control.MapParams{Name: "fdb", Key: key, Value: val}); err != nil {
			b.Fatal(err)
		}
	}
}
