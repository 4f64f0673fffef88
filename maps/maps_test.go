package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/vm"
)

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func mustNew(t testing.TB, s Spec) Map {
	t.Helper()
	m, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func wantErrno(t *testing.T, what string, err error, errno int) {
	t.Helper()
	if got := Errno(err); got != errno {
		t.Errorf("%s: errno %d (%v), want %d", what, got, err, errno)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"zero key", Spec{Type: Hash, ValueSize: 4, MaxEntries: 1}},
		{"zero value", Spec{Type: Hash, KeySize: 4, MaxEntries: 1}},
		{"zero entries", Spec{Type: Hash, KeySize: 4, ValueSize: 4}},
		{"huge key", Spec{Type: Hash, KeySize: 513, ValueSize: 4, MaxEntries: 1}},
		{"unknown type", Spec{Type: 99, KeySize: 4, ValueSize: 4, MaxEntries: 1}},
		{"unknown flag", Spec{Type: Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: 1 << 3}},
		{"array key size", Spec{Type: Array, KeySize: 8, ValueSize: 4, MaxEntries: 1}},
		{"array no prealloc", Spec{Type: Array, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: FlagNoPrealloc}},
		{"lru no prealloc", Spec{Type: LRUHash, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: FlagNoPrealloc}},
		{"lpm without no prealloc", Spec{Type: LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 1}},
		{"lpm key too short", Spec{Type: LPMTrie, KeySize: 4, ValueSize: 4, MaxEntries: 1, Flags: FlagNoPrealloc}},
		{"lpm key too long", Spec{Type: LPMTrie, KeySize: 4 + 257, ValueSize: 4, MaxEntries: 1, Flags: FlagNoPrealloc}},
		{"ringbuf not page multiple", Spec{Type: RingBuf, MaxEntries: 1000}},
		{"ringbuf not power of two", Spec{Type: RingBuf, MaxEntries: 3 * 4096}},
		{"ringbuf with key", Spec{Type: RingBuf, KeySize: 4, MaxEntries: 4096}},
		{"prog array value", Spec{Type: ProgArray, KeySize: 4, ValueSize: 8, MaxEntries: 4}},
		{"too much memory", Spec{Type: Array, KeySize: 4, ValueSize: 1 << 20, MaxEntries: 1 << 20}},
		{"per-cpu cpus", Spec{Type: PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1, CPUs: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.spec)
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("New(%+v) = %v, want an ErrBadSpec", tt.spec, err)
			}
			t.Log(err)
		})
	}
}

func TestArray(t *testing.T) {
	m := mustNew(t, Spec{Name: "a", Type: Array, KeySize: 4, ValueSize: 12, MaxEntries: 4})
	v, err := m.Lookup(u32(3))
	if err != nil || !slices.Equal(v, make([]byte, 12)) {
		t.Fatalf("fresh element: %x, %v; want zeros", v, err)
	}
	wantErrno(t, "lookup past the end", errOnly(m.Lookup(u32(4))), ENOENT)
	val := []byte("hello world!")
	if err := m.Update(u32(1), val, UpdateAny); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "update NOEXIST", m.Update(u32(1), val, UpdateNoExist), EEXIST)
	wantErrno(t, "update EXIST", m.Update(u32(2), val, UpdateExist), 0)
	wantErrno(t, "update bad flags", m.Update(u32(2), val, 4), EINVAL)
	wantErrno(t, "update past the end", m.Update(u32(4), val, UpdateAny), E2BIG)
	wantErrno(t, "update short value", m.Update(u32(0), val[:4], UpdateAny), EINVAL)
	wantErrno(t, "delete", m.Delete(u32(1)), EINVAL)
	if got, _ := m.Lookup(u32(1)); string(got) != string(val) {
		t.Errorf("lookup = %q, want %q", got, val)
	}
	var keys []uint32
	var k []byte
	for {
		k, err = m.NextKey(k)
		if err != nil {
			break
		}
		keys = append(keys, binary.NativeEndian.Uint32(k))
	}
	if !errors.Is(err, ErrKeyNotExist) || !slices.Equal(keys, []uint32{0, 1, 2, 3}) {
		t.Errorf("keys %v (%v), want 0..3 then ErrKeyNotExist", keys, err)
	}
	if k, _ := m.NextKey(u32(99)); binary.NativeEndian.Uint32(k) != 0 {
		t.Errorf("next key after an index past the end: %x, want 0", k)
	}
	// Region: one strided region, value size accessible per element.
	r := m.Regions()
	if len(r) != 1 || r[0].Stride != 16 || r[0].Elem != 12 || r[0].Size != 64 {
		t.Fatalf("regions %+v", r)
	}
	a1 := m.LookupAddr(u32(1), 0)
	if !r[0].Contains(a1, 12) || r[0].Contains(a1, 13) || r[0].Contains(a1+12, 1) {
		t.Errorf("value 1 at %#x: region does not bound it to 12 bytes", a1)
	}
	if _, err := m.DirectValue(0); err == nil {
		t.Error("DirectValue on a 4-element array succeeded; Linux wants max_entries 1")
	}
	g := mustNew(t, Spec{Name: ".data", Type: Array, KeySize: 4, ValueSize: 20, MaxEntries: 1})
	if a, err := g.DirectValue(8); err != nil || a != g.LookupAddr(u32(0), 0)+8 {
		t.Errorf("DirectValue(8) = %#x, %v", a, err)
	}
	if _, err := g.DirectValue(20); err == nil {
		t.Error("DirectValue past the value succeeded")
	}
}

func errOnly(_ []byte, err error) error { return err }

func TestHash(t *testing.T) {
	m := mustNew(t, Spec{Name: "h", Type: Hash, KeySize: 6, ValueSize: 8, MaxEntries: 4})
	key := func(i int) []byte { return []byte{2, 0, 0, 0, 0, byte(i)} }
	wantErrno(t, "lookup missing", errOnly(m.Lookup(key(0))), ENOENT)
	wantErrno(t, "update EXIST missing", m.Update(key(0), u64(1), UpdateExist), ENOENT)
	for i := range 4 {
		wantErrno(t, fmt.Sprint("insert ", i), m.Update(key(i), u64(uint64(i)), UpdateNoExist), 0)
	}
	wantErrno(t, "insert into full", m.Update(key(9), u64(9), UpdateAny), E2BIG)
	wantErrno(t, "NOEXIST existing", m.Update(key(1), u64(1), UpdateNoExist), EEXIST)
	wantErrno(t, "replace when full", m.Update(key(1), u64(11), UpdateAny), 0)
	wantErrno(t, "bad flags", m.Update(key(1), u64(11), 3), EINVAL)
	wantErrno(t, "bad key size", m.Update(key(1)[:5], u64(11), 0), EINVAL)
	if v, _ := m.Lookup(key(1)); binary.NativeEndian.Uint64(v) != 11 {
		t.Errorf("key 1 = %x, want 11", v)
	}
	a2 := m.LookupAddr(key(2), 0)
	wantErrno(t, "delete", m.Delete(key(2)), 0)
	wantErrno(t, "delete again", m.Delete(key(2)), ENOENT)
	if m.LookupAddr(key(2), 0) != 0 {
		t.Error("deleted key still found")
	}
	// The freed slot is reused, at the same address.
	wantErrno(t, "insert after delete", m.Update(key(7), u64(7), UpdateAny), 0)
	if a := m.LookupAddr(key(7), 0); a != a2 {
		t.Errorf("reused slot at %#x, want %#x (the deleted one)", a, a2)
	}
	got := allKeys(t, m)
	want := [][]byte{key(0), key(1), key(3), key(7)}
	sortKeys(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if k, err := m.NextKey(key(42)); err != nil || len(k) != 6 {
		t.Errorf("next key of a missing key: %x, %v; want the first key", k, err)
	}
	if m.(*htab).Len() != 4 {
		t.Errorf("Len %d, want 4", m.(*htab).Len())
	}
}

func allKeys(t *testing.T, m Map) [][]byte {
	t.Helper()
	var keys [][]byte
	var k []byte
	for {
		next, err := m.NextKey(k)
		if errors.Is(err, ErrKeyNotExist) {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > int(m.Spec().MaxEntries)+1 {
			t.Fatal("NextKey does not end")
		}
		keys = append(keys, next)
		k = next
	}
}

func sortKeys(k [][]byte) { slices.SortFunc(k, func(a, b []byte) int { return slices.Compare(a, b) }) }

func TestHashManyKeys(t *testing.T) {
	const n = 5000
	m := mustNew(t, Spec{Type: Hash, KeySize: 4, ValueSize: 4, MaxEntries: n})
	for i := range uint32(n) {
		if err := m.Update(u32(i), u32(i*3), UpdateNoExist); err != nil {
			t.Fatal(i, err)
		}
	}
	for i := uint32(0); i < n; i += 2 {
		if err := m.Delete(u32(i)); err != nil {
			t.Fatal(i, err)
		}
	}
	for i := range uint32(n) {
		v, err := m.Lookup(u32(i))
		if i%2 == 0 {
			if err == nil {
				t.Fatalf("deleted key %d found", i)
			}
			continue
		}
		if err != nil || binary.NativeEndian.Uint32(v) != i*3 {
			t.Fatalf("key %d: %x, %v", i, v, err)
		}
	}
	if k := allKeys(t, m); len(k) != n/2 {
		t.Errorf("iteration saw %d keys, want %d", len(k), n/2)
	}
}

func TestLRU(t *testing.T) {
	m := mustNew(t, Spec{Type: LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	has := func(keys ...uint32) {
		t.Helper()
		var got []uint32
		for _, k := range allKeys(t, m) {
			got = append(got, binary.NativeEndian.Uint32(k))
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("keys %v, want %v", got, keys)
		}
	}
	for _, k := range []uint32{1, 2, 3} {
		if err := m.Update(u32(k), u64(uint64(k)), UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	m.LookupAddr(u32(1), 0) // 1 is now more recent than 2 and 3
	m.Update(u32(4), u64(4), UpdateAny)
	has(1, 3, 4) // 2 evicted
	m.Update(u32(5), u64(5), UpdateAny)
	has(1, 4, 5) // 3 evicted
	m.Update(u32(6), u64(6), UpdateAny)
	has(4, 5, 6)     // 1 evicted: its lookup was before 4, 5 and 6 came
	m.Lookup(u32(4)) // control-plane lookups do not refresh (Linux)
	m.Update(u32(5), u64(55), UpdateExist)
	m.Update(u32(7), u64(7), UpdateAny)
	has(5, 6, 7) // 4 evicted; 5 was refreshed by its update
	wantErrno(t, "NOEXIST existing", m.Update(u32(7), u64(7), UpdateNoExist), EEXIST)
	m.Delete(u32(6))
	m.Update(u32(8), u64(8), UpdateAny)
	has(5, 7, 8)                 // the free slot was used, nothing evicted
	for i := range uint32(100) { // never full
		if err := m.Update(u32(100+i), u64(1), UpdateNoExist); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(allKeys(t, m)); n != 3 {
		t.Errorf("%d keys, want 3", n)
	}
}

// TestLRUHotKeysSurvive: a learning switch's active MACs stay while a scan
// of new ones churns through.
func TestLRUHotKeysSurvive(t *testing.T) {
	m := mustNew(t, Spec{Type: LRUHash, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	for k := range uint32(8) {
		m.Update(u32(k), u32(k), UpdateAny)
	}
	for i := range uint32(1000) {
		for k := range uint32(8) {
			if m.LookupAddr(u32(k), 0) == 0 {
				t.Fatalf("hot key %d evicted after %d cold inserts", k, i)
			}
		}
		m.Update(u32(1000+i), u32(i), UpdateAny)
	}
}

func lpmKey(p string) []byte {
	pf := netip.MustParsePrefix(p)
	k := u32(uint32(pf.Bits()))
	return append(k, pf.Addr().AsSlice()...)
}

func lpmQuery(a string) []byte {
	ad := netip.MustParseAddr(a)
	return append(u32(uint32(ad.BitLen())), ad.AsSlice()...)
}

func TestLPMIPv4(t *testing.T) {
	m := mustNew(t, Spec{Type: LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 16, Flags: FlagNoPrealloc})
	routes := []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.168.0.0/24", "10.1.2.0/24"}
	for i, r := range routes {
		if err := m.Update(lpmKey(r), u32(uint32(i)), UpdateNoExist); err != nil {
			t.Fatal(r, err)
		}
	}
	lookup := func(addr string) string {
		v, err := m.Lookup(lpmQuery(addr))
		if err != nil {
			return "none"
		}
		return routes[binary.NativeEndian.Uint32(v)]
	}
	tests := []struct{ addr, want string }{
		{"10.1.2.3", "10.1.2.3/32"},
		{"10.1.2.4", "10.1.2.0/24"},
		{"10.1.3.4", "10.1.0.0/16"},
		{"10.2.0.0", "10.0.0.0/8"},
		{"11.0.0.0", "0.0.0.0/0"},
		{"192.168.0.255", "192.168.0.0/24"},
		{"192.168.1.1", "0.0.0.0/0"},
		{"255.255.255.255", "0.0.0.0/0"},
	}
	for _, tt := range tests {
		if got := lookup(tt.addr); got != tt.want {
			t.Errorf("lookup %s = %s, want %s", tt.addr, got, tt.want)
		}
		if a := m.LookupAddr(lpmQuery(tt.addr), 0); a == 0 {
			t.Errorf("LookupAddr %s = 0", tt.addr)
		}
	}
	// A query with a shorter prefix length matches only up to it.
	q := lpmQuery("10.1.2.3")
	binary.NativeEndian.PutUint32(q, 16)
	if v, _ := m.Lookup(q); routes[binary.NativeEndian.Uint32(v)] != "10.1.0.0/16" {
		t.Errorf("lookup 10.1.2.3 limited to /16: %v", v)
	}
	wantErrno(t, "NOEXIST existing", m.Update(lpmKey("10.0.0.0/8"), u32(9), UpdateNoExist), EEXIST)
	wantErrno(t, "EXIST missing", m.Update(lpmKey("10.0.0.0/9"), u32(9), UpdateExist), ENOENT)
	wantErrno(t, "prefix too long", m.Update(append(u32(33), 1, 2, 3, 4), u32(9), UpdateAny), EINVAL)
	wantErrno(t, "delete missing", m.Delete(lpmKey("10.0.0.0/9")), ENOENT)
	wantErrno(t, "delete /0", m.Delete(lpmKey("0.0.0.0/0")), 0)
	if got := lookup("11.0.0.0"); got != "none" {
		t.Errorf("after deleting /0, 11.0.0.0 matched %s", got)
	}
	wantErrno(t, "delete /16", m.Delete(lpmKey("10.1.0.0/16")), 0)
	if got := lookup("10.1.3.4"); got != "10.0.0.0/8" {
		t.Errorf("after deleting /16, 10.1.3.4 matched %s", got)
	}
	// Bits past the prefix length do not matter.
	wantErrno(t, "update with host bits", m.Update(lpmKey("10.0.0.0/8")[:4:4], u32(0), UpdateAny), EINVAL)
	k := lpmKey("10.0.0.0/8")
	k[5] = 0xff
	wantErrno(t, "replace with host bits", m.Update(k, u32(1), UpdateExist), 0)
}

// TestLPMNextKey checks the kernel's postorder on the example of
// kernel/bpf/lpm_trie.c.
func TestLPMNextKey(t *testing.T) {
	m := mustNew(t, Spec{Type: LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: 8, Flags: FlagNoPrealloc})
	for _, r := range []string{"192.168.0.0/16", "192.168.0.0/24", "192.168.128.0/24", "192.168.1.0/24"} {
		if err := m.Update(lpmKey(r), []byte{1}, UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, k := range allKeys(t, m) {
		a, _ := netip.AddrFromSlice(k[4:])
		got = append(got, netip.PrefixFrom(a, int(binary.NativeEndian.Uint32(k))).String())
	}
	want := []string{"192.168.0.0/24", "192.168.1.0/24", "192.168.128.0/24", "192.168.0.0/16"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestLPMIPv6AndFull(t *testing.T) {
	m := mustNew(t, Spec{Type: LPMTrie, KeySize: 20, ValueSize: 4, MaxEntries: 3, Flags: FlagNoPrealloc})
	for i, r := range []string{"::/0", "2001:db8::/32", "2001:db8::1/128"} {
		if err := m.Update(lpmKey(r), u32(uint32(i)), UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	wantErrno(t, "insert into full", m.Update(lpmKey("2001:db9::/32"), u32(9), UpdateAny), ENOSPC)
	for addr, want := range map[string]uint32{"2001:db8::1": 2, "2001:db8::2": 1, "fe80::1": 0} {
		v, err := m.Lookup(lpmQuery(addr))
		if err != nil || binary.NativeEndian.Uint32(v) != want {
			t.Errorf("lookup %s: %x, %v; want %d", addr, v, err, want)
		}
	}
}

// TestLPMModel compares random inserts, deletes and lookups with a linear
// search over the same prefixes.
func TestLPMModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := mustNew(t, Spec{Type: LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 200, Flags: FlagNoPrealloc})
	model := map[netip.Prefix]uint32{}
	randPrefix := func() netip.Prefix {
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p, _ := a.Prefix(rng.IntN(33))
		return p
	}
	for i := range 20000 {
		p := randPrefix()
		key := lpmKey(p.String())
		switch rng.IntN(3) {
		case 0:
			err := m.Update(key, u32(uint32(i)), UpdateAny)
			if _, ok := model[p]; ok || len(model) < 200 {
				if err != nil {
					t.Fatalf("insert %v: %v", p, err)
				}
				model[p] = uint32(i)
			} else if Errno(err) != ENOSPC {
				t.Fatalf("insert %v into a full trie: %v", p, err)
			}
		case 1:
			err := m.Delete(key)
			if _, ok := model[p]; ok != (err == nil) {
				t.Fatalf("delete %v: %v, in model: %v", p, err, ok)
			}
			delete(model, p)
		case 2:
			a := p.Addr()
			var best netip.Prefix
			found := false
			for q := range model {
				if q.Contains(a) && (!found || q.Bits() > best.Bits()) {
					best, found = q, true
				}
			}
			v, err := m.Lookup(lpmQuery(a.String()))
			if found != (err == nil) || found && binary.NativeEndian.Uint32(v) != model[best] {
				t.Fatalf("lookup %v: %x, %v; model says %v (%v)", a, v, err, best, found)
			}
		}
	}
	if n := len(allKeys(t, m)); n != len(model) {
		t.Errorf("iteration: %d keys, model has %d", n, len(model))
	}
}

func TestPerCPUArray(t *testing.T) {
	m := mustNew(t, Spec{Type: PerCPUArray, KeySize: 4, ValueSize: 4, MaxEntries: 2, CPUs: 3})
	if m.Spec().CPUs != 3 {
		t.Fatalf("CPUs %d", m.Spec().CPUs)
	}
	if err := m.UpdateFrom(u32(1), u32(7), UpdateAny, 1); err != nil {
		t.Fatal(err)
	}
	v, _ := m.Lookup(u32(1))
	want := []byte{0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !slices.Equal(v, want) {
		t.Errorf("after cpu 1 wrote 7: %x, want %x (8-byte padded per CPU)", v, want)
	}
	all := []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	if err := m.Update(u32(0), all, UpdateAny); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "update with one CPU's value", m.Update(u32(0), u32(1), UpdateAny), EINVAL)
	addrs := map[uint64]bool{}
	for cpu := range 3 {
		a := m.LookupAddr(u32(0), cpu)
		addrs[a] = true
		if !m.Regions()[0].Contains(a, 4) {
			t.Errorf("cpu %d slot outside the region", cpu)
		}
	}
	if len(addrs) != 3 {
		t.Errorf("slots of 3 CPUs at %d distinct addresses", len(addrs))
	}
	if m.LookupAddr(u32(0), 4) != m.LookupAddr(u32(0), 1) {
		t.Error("worker 4 of 3 CPUs does not share slot 1")
	}
}

func TestPerCPUHash(t *testing.T) {
	m := mustNew(t, Spec{Type: PerCPUHash, KeySize: 2, ValueSize: 8, MaxEntries: 4, CPUs: 2})
	if err := m.UpdateFrom([]byte{8, 6}, u64(5), UpdateAny, 1); err != nil {
		t.Fatal(err)
	}
	v, _ := m.Lookup([]byte{8, 6})
	if !slices.Equal(v, append(u64(0), u64(5)...)) {
		t.Errorf("new element from cpu 1: %x, want the other CPU zeroed", v)
	}
	m.Update([]byte{8, 6}, append(u64(1), u64(2)...), UpdateExist)
	m.UpdateFrom([]byte{8, 6}, u64(9), UpdateExist, 0)
	v, _ = m.Lookup([]byte{8, 6})
	if !slices.Equal(v, append(u64(9), u64(2)...)) {
		t.Errorf("after cpu 0 wrote 9: %x", v)
	}
	a0, a1 := m.LookupAddr([]byte{8, 6}, 0), m.LookupAddr([]byte{8, 6}, 1)
	if a0 == a1 || a0 == 0 || a1 == 0 {
		t.Errorf("slots at %#x and %#x", a0, a1)
	}
}

func TestProgramArray(t *testing.T) {
	m := mustNew(t, Spec{Type: ProgArray, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	pa := m.(*ProgramArray)
	wantErrno(t, "update without resolver", m.Update(u32(0), u32(1), UpdateAny), EOPNOTSUPP)
	p := loadProg(t, "mov %r0, 1\nexit", nil)
	pa.SetResolver(func(id uint32) (*vm.Program, error) {
		if id == 42 {
			return p, nil
		}
		return nil, ErrKeyNotExist
	})
	wantErrno(t, "update unknown id", m.Update(u32(0), u32(1), UpdateAny), ENOENT)
	wantErrno(t, "update NOEXIST", m.Update(u32(0), u32(42), UpdateNoExist), EINVAL)
	wantErrno(t, "update past the end", m.Update(u32(2), u32(42), UpdateAny), E2BIG)
	wantErrno(t, "update", m.Update(u32(1), u32(42), UpdateAny), 0)
	if v, err := m.Lookup(u32(1)); err != nil || binary.NativeEndian.Uint32(v) != 42 {
		t.Errorf("lookup = %x, %v; want id 42", v, err)
	}
	wantErrno(t, "lookup empty", errOnly(m.Lookup(u32(0))), ENOENT)
	if pa.Program(1) != p || pa.Program(0) != nil || pa.Program(7) != nil {
		t.Error("Program returns the wrong programs")
	}
	wantErrno(t, "delete", m.Delete(u32(1)), 0)
	wantErrno(t, "delete empty", m.Delete(u32(1)), ENOENT)
	if len(m.Regions()) != 0 || m.LookupAddr(u32(0), 0) != 0 {
		t.Error("a program array exposes memory to programs")
	}
}

func TestErrno(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0}, {ErrKeyNotExist, ENOENT}, {ErrKeyExist, EEXIST}, {ErrFull, E2BIG},
		{ErrBadKey, EINVAL}, {ErrBadFlags, EINVAL}, {errTrieFull, ENOSPC},
		{fmt.Errorf("wrapped: %w", ErrKeyExist), EEXIST}, {errArrayDelete, EINVAL},
	} {
		if got := Errno(tt.err); got != tt.want {
			t.Errorf("Errno(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if !errors.Is(errTrieFull, ErrFull) {
		t.Error("a full trie is not ErrFull")
	}
}
