package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/testenv"
)

func requireKernel(t testing.TB) {
	t.Helper()
	testenv.Need(t, "kernel eBPF (needs Linux and root)", Available())
}

func TestTestRun(t *testing.T) {
	requireKernel(t)
	for _, typ := range []ProgType{XDP, SchedCLS} {
		t.Run(typ.String(), func(t *testing.T) {
			p, err := LoadProgram(typ, asm.MustAssemble("mov %r0, 42\nexit"))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pkt := make([]byte, 64)
			for n := range pkt {
				pkt[n] = byte(n)
			}
			ret, out, dur, err := p.TestRun(pkt, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if ret != 42 {
				t.Errorf("ret = %d, want 42", ret)
			}
			if !bytes.Equal(out, pkt) {
				t.Errorf("data out differs from data in:\n%x\n%x", out, pkt)
			}
			if dur <= 0 || dur > 1e6 {
				t.Errorf("duration per run = %v, want between 0 and 1ms", dur)
			}
			t.Logf("%v: %v per run", typ, dur)
		})
	}
}

func TestTestRunClosed(t *testing.T) {
	requireKernel(t)
	p, err := LoadProgram(XDP, asm.MustAssemble("mov %r0, 1\nexit"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, _, err := p.TestRun(make([]byte, 64), 1); err == nil {
		t.Error("TestRun after Close succeeded")
	}
}

func TestRun64(t *testing.T) {
	requireKernel(t)
	tests := []struct {
		name string
		src  string
		want uint64
	}{
		{"small", "mov %r0, 42\nexit", 42},
		{"lddw", "lddw %r0, 0x1122334455667788\nexit", 0x1122334455667788},
		{"minus one", "mov %r0, -1\nexit", 0xffffffffffffffff},
		{"alu32 zero-extends", "mov %r0, -1\nadd32 %r0, 0\nexit", 0xffffffff},
		{"args are zero", "mov %r0, %r1\nor %r0, %r2\nor %r0, %r3\nor %r0, %r4\nor %r0, %r5\nexit", 0},
		{"stack", "lddw %r1, 0x8000000000000001\nstxdw [%r10-512], %r1\nldxdw %r0, [%r10-512]\nexit", 0x8000000000000001},
		{"local call", `
			mov %r6, 7
			call local +3
			mul %r0, %r6
			add %r0, 1
			exit
			lddw %r0, 0x100000000
			mov %r6, 5
			call local +2
			add %r0, %r6
			exit
			lddw %r0, 0x2000000000
			exit`,
			// inner: 0x20_0000_0000; middle: + 5 -> 0x20_0000_0005;
			// outer: * 7 + 1, its r6 kept across the calls
			(0x2000000000+5)*7 + 1},
		{"forward and backward jumps", `
			mov %r0, 0
			mov %r1, 10
		loop:
			add %r0, %r1
			sub %r1, 1
			jne %r1, 0, loop
			lsh %r0, 40
			exit`, 55 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Run64(asm.MustAssemble(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("r0 = %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestRefusedProgramHasLog(t *testing.T) {
	requireKernel(t)
	// r0 is never written: the verifier says "R0 !read_ok".
	_, err := LoadProgram(XDP, asm.MustAssemble("mov %r1, 1\nexit"))
	var verr *VerifierError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v (%T), want a *VerifierError", err, err)
	}
	if !strings.Contains(verr.Log, "R0 !read_ok") {
		t.Errorf("log does not say why:\n%s", verr.Log)
	}
	if !strings.Contains(err.Error(), "R0 !read_ok") {
		t.Errorf("error does not include the log: %v", err)
	}
	if errors.Is(err, ErrNotSupported) {
		t.Errorf("a refusal must not look like missing support: %v", err)
	}

	// Through Run64, r6 starts uninitialized. (Uninitialized stack is no
	// longer a refusal: root may read it.)
	_, err = Run64(asm.MustAssemble("mov %r0, %r6\nexit"))
	if !errors.As(err, &verr) {
		t.Fatalf("Run64 err = %v (%T), want a *VerifierError", err, err)
	}
	if !strings.Contains(verr.Log, "R6 !read_ok") {
		t.Errorf("Run64 log does not say why:\n%s", verr.Log)
	}
}

func TestMapRoundTrip(t *testing.T) {
	requireKernel(t)
	m, err := CreateMap(Hash, 4, 8, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	key := []byte{1, 2, 3, 4}
	val := make([]byte, 8)
	if err := m.Lookup(key, val); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Lookup of a missing key: %v, want ErrKeyNotExist", err)
	}
	want := []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}
	if err := m.Update(key, want); err != nil {
		t.Fatal(err)
	}
	if err := m.Lookup(key, val); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, val); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	next := make([]byte, 4)
	if err := m.NextKey(nil, next); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(next, key) {
		t.Errorf("first key = %x, want %x", next, key)
	}
	if err := m.NextKey(key, next); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("NextKey after the last key: %v, want ErrKeyNotExist", err)
	}
	if err := m.Delete(key); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(key); !errors.Is(err, ErrKeyNotExist) {
		t.Errorf("second Delete: %v, want ErrKeyNotExist", err)
	}
	if err := m.Update(key[:3], want); err == nil {
		t.Error("Update with a short key succeeded")
	}
	if err := m.Update(key, want[:4]); err == nil {
		t.Error("Update with a short value succeeded")
	}
}

func TestPerCPUValueSize(t *testing.T) {
	requireKernel(t)
	m, err := CreateMap(PerCPUArray, 4, 4, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n, err := possibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if m.ValueSize() != 8*n {
		t.Fatalf("ValueSize = %d, want %d (%d CPUs, 4 rounded to 8)", m.ValueSize(), 8*n, n)
	}
	val := make([]byte, m.ValueSize())
	val[0] = 9
	if err := m.Update(make([]byte, 4), val); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, m.ValueSize())
	if err := m.Lookup(make([]byte, 4), got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, val) {
		t.Errorf("Lookup = %x, want %x", got, val)
	}
}

// hashLookupProg looks up the 4-byte key 0x0a0b0c0d in map[0] and returns the
// 8-byte value, or -1 when the key is missing.
const hashLookupProg = `
	stw [%r10-4], 0x0a0b0c0d
	lddw %r1, map[0]
	mov %r2, %r10
	add %r2, -4
	call 1
	jeq %r0, 0, miss
	ldxdw %r0, [%r0+0]
	exit
miss:
	mov %r0, -1
	exit`

func TestProgramHashLookup(t *testing.T) {
	requireKernel(t)
	m, err := CreateMap(Hash, 4, 8, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	insns := asm.MustAssemble(hashLookupProg)

	if got, err := Run64(insns, m); err != nil || got != 0xffffffffffffffff {
		t.Fatalf("empty map: Run64 = %#x, %v; want -1", got, err)
	}
	key := binary.LittleEndian.AppendUint32(nil, 0x0a0b0c0d)
	val := binary.LittleEndian.AppendUint64(nil, 0x1234_5678_9abc_def0)
	if err := m.Update(key, val); err != nil {
		t.Fatal(err)
	}
	if got, err := Run64(insns, m); err != nil || got != 0x1234_5678_9abc_def0 {
		t.Errorf("Run64 = %#x, %v; want 0x123456789abcdef0", got, err)
	}

	p, err := LoadProgramWithMaps(SchedCLS, insns, []*Map{m})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ret, _, _, err := p.TestRun(make([]byte, 64), 1)
	if err != nil || ret != 0x9abc_def0 {
		t.Errorf("TestRun = %#x, %v; want the low 32 bits 0x9abcdef0", ret, err)
	}
	if insns[1].Imm != 0 {
		t.Errorf("LoadProgramWithMaps modified its input: imm %d", insns[1].Imm)
	}
}

func TestProgramMapValue(t *testing.T) {
	requireKernel(t)
	m, err := CreateMap(Array, 4, 16, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	val := make([]byte, 16)
	binary.LittleEndian.PutUint64(val[8:], 77)
	if err := m.Update(make([]byte, 4), val); err != nil {
		t.Fatal(err)
	}
	// `lddw r1, map[0]+8` is the address of byte 8 of element 0.
	got, err := Run64(asm.MustAssemble("lddw %r1, map[0]+8\nldxdw %r0, [%r1+0]\nexit"), m)
	if err != nil || got != 77 {
		t.Errorf("Run64 = %d, %v; want 77", got, err)
	}
}

func TestRelocateMapsErrors(t *testing.T) {
	insns := asm.MustAssemble("lddw %r1, map[1]\nmov %r0, 0\nexit")
	if _, err := relocateMaps(insns, []*Map{{fd: 3}}); err == nil || !strings.Contains(err.Error(), "map 1") {
		t.Errorf("reference to a missing map: err = %v", err)
	}
	if _, err := relocateMaps(insns, []*Map{{fd: 3}, {fd: -1}}); err == nil {
		t.Error("reference to a closed map succeeded")
	}
	got, err := relocateMaps(insns, []*Map{{fd: 3}, {fd: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Imm != 9 || got[0].Src != asm.PseudoMapFD || got[1].Imm != 0 {
		t.Errorf("relocated lddw = %+v %+v, want imm 9 src 1", got[0], got[1])
	}
}

func TestParseCPURanges(t *testing.T) {
	for _, tt := range []struct {
		have string
		want int
	}{{"0", 1}, {"0-1", 2}, {"0-3,8,10-11", 7}} {
		got, err := parseCPURanges(tt.have)
		if err != nil || got != tt.want {
			t.Errorf("parseCPURanges(%q) = %d, %v; want %d", tt.have, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "0-"} {
		if _, err := parseCPURanges(bad); err == nil {
			t.Errorf("parseCPURanges(%q) succeeded", bad)
		}
	}
}

func TestWrap64(t *testing.T) {
	insns := asm.MustAssemble("mov %r0, 1\nexit")
	w := Wrap64(insns)
	if len(w) != Run64Offset+2 {
		t.Fatalf("len = %d", len(w))
	}
	call := w[6]
	if call.Op != asm.OpCall || call.Src != asm.PseudoCall || 7+int(call.Imm) != Run64Offset {
		t.Errorf("wrapper call %v does not reach slot %d", call, Run64Offset)
	}
	if diff := cmp.Diff(insns, w[Run64Offset:]); diff != "" {
		t.Errorf("program under test (-want +got):\n%s", diff)
	}
}

func BenchmarkTestRunXDP(b *testing.B) {
	requireKernel(b)
	p, err := LoadProgram(XDP, asm.MustAssemble("mov %r0, 42\nexit"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	pkt := make([]byte, 64)
	var total int64
	for b.Loop() {
		_, _, d, err := p.TestRun(pkt, 10000)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(d)
	}
	b.ReportMetric(float64(total)/float64(b.N), "kernel-ns/run")
}

// TestLoadProgramFuncs: a program that tail-calls itself from a local
// function loads only with BTF function information, and then runs with
// Linux's semantics (the target returns to the function's caller: 34 runs
// each add 100 on the way out, 33 tail calls, the counter reaches 34).
func TestLoadProgramFuncs(t *testing.T) {
	requireKernel(t)
	progs, err := CreateMap(ProgArray, 4, 4, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer progs.Close()
	data, err := CreateMap(Array, 4, 8, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	insns := asm.MustAssemble(`
		call local f
		add %r0, 100
		exit
	f:
		lddw %r6, map[1]+0
		ldxdw %r0, [%r6+0]
		add %r0, 1
		stxdw [%r6+0], %r0
		lddw %r2, map[0]
		mov %r3, 0
		call 12
		ldxdw %r0, [%r6+0]
		exit`)
	maps := []*Map{progs, data}
	_, err = LoadProgramWithMaps(XDP, insns, maps)
	var verr *VerifierError
	if !errors.As(err, &verr) || !strings.Contains(verr.Log, "BTF") {
		t.Errorf("without BTF: err = %v, want a refusal that names BTF", err)
	}
	p, err := LoadProgramFuncs(XDP, insns, maps)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fd := make([]byte, 4)
	binary.LittleEndian.PutUint32(fd, uint32(p.FD()))
	if err := progs.Update(make([]byte, 4), fd); err != nil {
		t.Fatal(err)
	}
	defer progs.Delete(make([]byte, 4))
	ret, _, _, err := p.TestRun(make([]byte, 64), 1)
	if err != nil {
		t.Fatal(err)
	}
	count := make([]byte, 8)
	if err := data.Lookup(make([]byte, 4), count); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(count); ret != 34*100+34 || n != 34 {
		t.Errorf("returned %d after %d runs, want %d after 34", ret, n, 34*100+34)
	}
	// A refusal with BTF is a *VerifierError too.
	_, err = LoadProgramFuncs(XDP, asm.MustAssemble("exit"), nil)
	if !errors.As(err, &verr) {
		t.Errorf("a refused program: err = %v, want a *VerifierError", err)
	}
}
