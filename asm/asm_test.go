package asm_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/conformance"
)

func TestEncodings(t *testing.T) {
	tests := []struct {
		text string
		want string // hex of the encoding
	}{
		{"mov32 %r0, 1", "b400000001000000"},
		{"mov %r1, -1", "b7010000ffffffff"},
		{"ldxw %r1, [%r2+4]", "6121040000000000"},
		{"stxdw [%r10-8], %r0", "7b0af8ff00000000"},
		{"jeq %r1, 16, +3", "1501030010000000"},
		{"jne32 %r1, %r2, -1", "5e21ffff00000000"},
		{"exit", "9500000000000000"},
		{"call 5", "8500000005000000"},
		{"call %r2", "8d02000000000000"},
		{"call local +2", "8510000002000000"},
		{"lddw %r0, 0x1122334455667788", "18000000887766550000000044332211"},
		{"lddw %r1, map[3]", "18110000030000000000000000000000"},
		{"lddw %r1, map[3]+16", "18210000030000000000000010000000"},
		{"lock fetch add32 [%r10-4], %r3", "c33afcff01000000"},
		{"lock cmpxchg [%r10-8], %r1", "db1af8fff1000000"},
		{"sdiv %r0, %r1", "3f10010000000000"},
		{"smod32 %r0, 3", "9400010003000000"},
		{"movsx864 %r0, %r1", "bf10080000000000"},
		{"movsx1632 %r4, %r3", "bc34100000000000"},
		{"ldxsh %r0, [%r1+2]", "8910020000000000"},
		{"be16 %r3", "dc03000010000000"},
		{"le64 %r0", "d400000040000000"},
		{"bswap32 %r0", "d700000020000000"},
		{"ja32 -1", "06000000ffffffff"},
		{"stb [%r1+2], 17", "7201020011000000"},
		{"neg32 %r0", "8400000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			insns, err := asm.Assemble(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", asm.Encode(insns)); got != tt.want {
				t.Errorf("encoding: want %s, got %s", tt.want, got)
			}
			if diff := cmp.Diff([]string{tt.text}, asm.Disassemble(insns)); diff != "" {
				t.Errorf("disassembly (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAssembleErrors(t *testing.T) {
	for _, src := range []string{
		"mov %r11, 1",
		"mov32 %r0, 0x100000000",
		"ja nowhere",
		"ldxw %r0, %r1",
		"frob %r0",
		"jeq %r0, 1",
		"x:\nx:\nexit",
		"ldxw %r0, [%r1+40000]",
	} {
		if _, err := asm.Assemble(src); err == nil {
			t.Errorf("Assemble(%q) succeeded, want an error", src)
		} else if !strings.Contains(err.Error(), "line") {
			t.Errorf("error %q does not name the line", err)
		}
	}
}

func TestLabels(t *testing.T) {
	got := asm.MustAssemble("mov %r0, 0\nlddw %r1, 1\nja end\nmov %r0, 1\nend:\nexit")
	if got[3].Off != 1 {
		t.Errorf("ja end: offset %d, want 1", got[3].Off)
	}
}

// Every program of the own conformance corpus disassembles and assembles
// back to the same slots.
func TestCorpusRoundTrip(t *testing.T) { roundTripCorpus(t, conformance.OwnDir()) }

// TestExternalCorpusRoundTrip: the same for the bpf_conformance corpus, when
// it is on this machine.
func TestExternalCorpusRoundTrip(t *testing.T) { roundTripCorpus(t, conformance.External(t)) }

func roundTripCorpus(t *testing.T, dir string) {
	cases, err := conformance.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		text := strings.Join(asm.Disassemble(c.Program), "\n")
		back, err := asm.Assemble(text)
		if err != nil {
			t.Errorf("%s: %v\n%s", c.Name, err, text)
			continue
		}
		if diff := cmp.Diff(c.Program, back); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", c.Name, diff)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(asm.Encode(asm.MustAssemble("lddw %r0, 5\nexit")))
	f.Add([]byte{0x18, 0x21, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0})
	f.Add([]byte{0xc3, 0x3a, 0xfc, 0xff, 0xe1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b)/8*8]
		insns, err := asm.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(asm.Disassemble(insns), "\n")
		back, err := asm.Assemble(text)
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		if got := asm.Encode(back); string(got) != string(b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x\n%s", b, got, text)
		}
	})
}

func ExampleDisassemble() {
	prog := asm.MustAssemble(`
		ldxh %r2, [%r1+12]
		jne %r2, 0x800, +1
		mov %r0, 1
		exit`)
	for _, l := range asm.Disassemble(prog) {
		fmt.Println(l)
	}
	// Output:
	// ldxh %r2, [%r1+12]
	// jne %r2, 2048, +1
	// mov %r0, 1
	// exit
}

func ExampleFormatNamed() {
	insns, err := asm.Assemble("lddw %r1, map[1]\nlddw %r2, map[0]+8\nlddw %r3, map[7]\nexit")
	if err != nil {
		panic(err)
	}
	names := []string{"fdb", "ports"}
	for n := 0; n < len(insns); n++ {
		var next asm.Instruction
		if n+1 < len(insns) {
			next = insns[n+1]
		}
		fmt.Println(asm.FormatNamed(insns[n], next, names))
		if insns[n].IsLDDW() {
			n++
		}
	}
	// Output:
	// lddw %r1, map[ports]
	// lddw %r2, map[fdb]+8
	// lddw %r3, map[7]
	// exit
}
