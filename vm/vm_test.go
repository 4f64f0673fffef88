package vm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/vm"
)

func TestValidatorRefuses(t *testing.T) {
	raw := func(i ...asm.Instruction) []asm.Instruction { return i }
	exit := asm.Instruction{Op: asm.OpExit}
	tests := []struct {
		name  string
		prog  []asm.Instruction
		pc    int
		cause string
	}{
		{"empty", nil, -1, "empty program"},
		{"unknown opcode", raw(asm.Instruction{Op: 0xff}, exit), 0, "unknown opcode"},
		{"bad register", raw(asm.Instruction{Op: 0xb7, Dst: 11}, exit), 0, "bad destination register"},
		{"write r10", asm.MustAssemble("mov %r10, 1\nexit"), 0, "read-only frame pointer"},
		{"load into r10", asm.MustAssemble("ldxdw %r10, [%r1+0]\nexit"), 0, "read-only frame pointer"},
		{"jump out of range", asm.MustAssemble("ja +5\nexit"), 0, "out of range"},
		{"jump backwards out", asm.MustAssemble("ja -2\nexit"), 0, "out of range"},
		{"jump into lddw", asm.MustAssemble("ja +1\nlddw %r0, 1\nexit"), 0, "middle of lddw"},
		{"truncated lddw", raw(asm.Instruction{Op: asm.OpLDDW}), 0, "second slot"},
		{"bad lddw second slot", raw(asm.Instruction{Op: asm.OpLDDW}, asm.Instruction{Op: 0xb7}, exit), 1, "second slot"},
		{"fall through", asm.MustAssemble("mov %r0, 1"), 0, "fall through"},
		{"fall through cond", asm.MustAssemble("mov %r0, 1\njeq %r0, 1, -2"), 1, "fall through"},
		{"unknown helper", asm.MustAssemble("call 99\nexit"), 0, "unknown helper 99"},
		{"named unknown helper", asm.MustAssemble("call 23\nexit"), 0, "bpf_redirect"},
		{"kfunc", asm.MustAssemble("call runtime 7\nexit"), 0, "kfuncs need a kernel"},
		{"reserved imm", raw(asm.Instruction{Op: 0xbf, Imm: 1}, exit), 0, "immediate must be zero"},
		{"reserved src", raw(asm.Instruction{Op: 0xb7, Src: 1}, exit), 0, "source register must be zero"},
		{"reserved exit", raw(asm.Instruction{Op: asm.OpExit, Imm: 1}), 0, "reserved fields of exit"},
		{"bad swap width", raw(asm.Instruction{Op: 0xd4, Imm: 8}, exit), 0, "byte swap width"},
		{"legacy ld abs", raw(asm.Instruction{Op: 0x20}, exit), 0, "legacy packet loads"},
		{"map without maps", asm.MustAssemble("lddw %r1, map[0]\nexit"), 0, "has 0 maps"},
		{"movsx32 alu32", raw(asm.Instruction{Op: 0xbc, Off: 32}, exit), 0, "offset must be zero"},
		{"atomic byte", raw(asm.Instruction{Op: 0xd3, Dst: 10, Off: -8}, exit), 0, "32 or 64 bits"},
		{"atomic op", raw(asm.Instruction{Op: 0xdb, Dst: 10, Off: -8, Imm: 0x10}, exit), 0, "unknown atomic"},
		{"fetch into r10", asm.MustAssemble("lock fetch add [%r10-8], %r10\nexit"), 0, "read-only frame pointer"},
		{"xchg into r10", asm.MustAssemble("lock xchg [%r10-8], %r10\nexit"), 0, "read-only frame pointer"},
		{"recursion", asm.MustAssemble("call local f\nexit\nf:\ncall local f\nexit"), 2, "recursive"},
		{"too deep", deepCalls(9), 1, "more than 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := vm.Load(tt.prog, vm.Options{Helpers: vm.BaseHelpers()})
			var ve *vm.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			if !errors.Is(err, vm.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) is false")
			}
			if ve.PC != tt.pc || !strings.Contains(err.Error(), tt.cause) {
				t.Errorf("want insn %d and %q, got %v", tt.pc, tt.cause, err)
			}
		})
	}
}

// deepCalls returns a program whose call chain has n frames.
func deepCalls(n int) []asm.Instruction {
	var b strings.Builder
	b.WriteString("mov %r0, 0\n")
	for k := 1; k < n; k++ {
		b.WriteString("call local f" + itoa(k) + "\nexit\nf" + itoa(k) + ":\nadd %r0, 1\n")
	}
	b.WriteString("exit\n")
	return asm.MustAssemble(b.String())
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+n/10)) + string(rune('0'+n%10)))
}

func TestCallDepth(t *testing.T) {
	p, err := vm.Load(deepCalls(8), vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Run(vm.NewEnv(), 0, 0)
	if err != nil || got != 7 {
		t.Fatalf("8 frames: got %d, %v; want 7", got, err)
	}
}

func run(t *testing.T, src string, mem []byte) (uint64, error) {
	t.Helper()
	p, err := vm.Load(asm.MustAssemble(src), vm.Options{Helpers: vm.BaseHelpers()})
	if err != nil {
		t.Fatal(err)
	}
	env := vm.NewEnv()
	env.SetArgBytes(0, mem)
	return p.Run(env, vm.AddrOf(mem), uint64(len(mem)))
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name string
		src  string
		mem  int
		kind vm.Kind
		pc   int
		is   error
	}{
		{"read past mem", "ldxw %r0, [%r1+6]\nexit", 8, vm.KindRead, 0, vm.ErrOutOfBounds},
		{"read before mem", "ldxb %r0, [%r1-1]\nexit", 8, vm.KindRead, 0, vm.ErrOutOfBounds},
		{"write past mem", "mov %r0, 0\nstxdw [%r1+1], %r0\nexit", 8, vm.KindWrite, 1, vm.ErrOutOfBounds},
		{"read above stack", "ldxdw %r0, [%r10+0]\nexit", 0, vm.KindRead, 0, vm.ErrOutOfBounds},
		{"write below stack", "stdw [%r10-4104], 1\nexit", 0, vm.KindWrite, 0, vm.ErrOutOfBounds},
		{"null", "mov %r1, 0\nldxb %r0, [%r1+0]\nexit", 0, vm.KindRead, 1, vm.ErrOutOfBounds},
		{"wrapping address", "lddw %r1, -1\nldxdw %r0, [%r1+0]\nexit", 0, vm.KindRead, 2, vm.ErrOutOfBounds},
		{"wrap around to mem", "mov %r2, -1\nadd %r1, %r2\nldxh %r0, [%r1+0]\nexit", 8, vm.KindRead, 2, vm.ErrOutOfBounds},
		{"atomic past mem", "mov %r2, 1\nlock add [%r1+8], %r2\nexit", 8, vm.KindWrite, 1, vm.ErrOutOfBounds},
		{"misaligned atomic", "mov %r2, 1\nlock add [%r10-12], %r2\nexit", 0, vm.KindMisaligned, 1, nil},
		{"infinite loop", "mov %r0, 0\nloop:\nadd %r0, 1\nja loop", 0, vm.KindBudget, 2, vm.ErrBudget},
		{"callx garbage", "mov %r3, 1000000\ncall %r3\nexit", 0, vm.KindBadHelper, 1, vm.ErrHelper},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.src, make([]byte, tt.mem))
			var e *vm.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *vm.Error, got %v", err)
			}
			if e.Kind != tt.kind || e.PC != tt.pc {
				t.Errorf("want %v at %d, got %v", tt.kind, tt.pc, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
			if !strings.Contains(err.Error(), "at insn") {
				t.Errorf("error %q does not name the instruction", err)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	p := vm.MustLoad(asm.MustAssemble("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 100, loop\nexit"), vm.Options{})
	env := vm.NewEnv()
	got, err := p.Run(env, 0, 0)
	if err != nil || got != 100 {
		t.Fatalf("got %d, %v", got, err)
	}
	if env.Executed != 1+2*100+1 {
		t.Errorf("executed %d instructions, want %d", env.Executed, 202)
	}
	env.Budget = 50
	if _, err := p.Run(env, 0, 0); !errors.Is(err, vm.ErrBudget) {
		t.Errorf("budget 50: got %v", err)
	}
}

func TestRunFrame(t *testing.T) {
	// Return the ingress port plus the first byte of the frame, and choose ring 3.
	p := vm.MustLoad(asm.MustAssemble(`
		ldxdw %r2, [%r1+0]
		ldxdw %r3, [%r1+8]
		mov %r4, %r2
		add %r4, 14
		jgt %r4, %r3, drop
		ldxb %r0, [%r2+0]
		ldxw %r5, [%r1+16]
		add %r0, %r5
		stb [%r1+20], 3
		exit
	drop:
		mov %r0, 255
		exit`), vm.Options{})
	env := vm.NewEnv()
	frame := make([]byte, 60)
	frame[0] = 7
	got, err := env.RunFrame(p, frame, 2)
	if err != nil || got != 9 || env.MD.RingNr != 3 {
		t.Fatalf("got %d ring %d, %v", got, env.MD.RingNr, err)
	}
	got, _ = env.RunFrame(p, frame[:10], 2)
	if got != 255 {
		t.Errorf("runt: got %d, want drop", got)
	}
	// Reading past data_end faults even when the program does not check.
	p2 := vm.MustLoad(asm.MustAssemble("ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+60]\nexit"), vm.Options{})
	if _, err := env.RunFrame(p2, frame, 0); !errors.Is(err, vm.ErrOutOfBounds) {
		t.Errorf("read past data_end: %v", err)
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	p := vm.MustLoad(asm.MustAssemble(`
		mov %r0, 0
		stdw [%r10-8], 5
		ldxdw %r2, [%r10-8]
		mov %r3, 1
		lock add [%r10-8], %r3
		call 5
		exit`), vm.Options{Helpers: vm.BaseHelpers()})
	env := vm.NewEnv()
	frame := make([]byte, 64)
	if n := testing.AllocsPerRun(1000, func() { env.RunFrame(p, frame, 1) }); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
	bad := vm.MustLoad(asm.MustAssemble("ldxdw %r0, [%r10+8]\nexit"), vm.Options{})
	if n := testing.AllocsPerRun(1000, func() { env.RunFrame(bad, frame, 1) }); n != 0 {
		t.Errorf("%v allocations per faulting run, want 0", n)
	}
}

// FuzzInterpreter feeds arbitrary bytes as programs and memory: loading and
// running must never panic or hang.
func FuzzInterpreter(f *testing.F) {
	f.Add(asm.Encode(asm.MustAssemble("mov %r0, 1\nexit")), []byte{1, 2, 3})
	f.Add(asm.Encode(asm.MustAssemble("ldxdw %r0, [%r1+0]\nlock fetch add [%r1+0], %r0\nexit")), make([]byte, 8))
	f.Add(asm.Encode(asm.MustAssemble("loop:\nja loop")), []byte{})
	f.Add(asm.Encode(asm.MustAssemble("call local f\nexit\nf:\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit")), []byte{})
	f.Fuzz(func(t *testing.T, code, mem []byte) {
		insns, err := asm.Decode(code[:len(code)/8*8])
		if err != nil {
			t.Fatal(err)
		}
		p, err := vm.Load(insns, vm.Options{Helpers: vm.BaseHelpers()})
		if err != nil {
			return
		}
		env := vm.NewEnv()
		env.Budget = 10000
		env.SetArgBytes(0, mem)
		p.Run(env, vm.AddrOf(mem), uint64(len(mem)))
	})
}

// fakeMap is a map of 4 values of 12 bytes with a 16-byte stride, for
// accesses outside the stack and argument regions.
type fakeMap struct{ mem []byte }

func (m *fakeMap) Regions() []vm.Region {
	return []vm.Region{{Start: vm.AddrOf(m.mem), Size: uint64(len(m.mem)), Stride: 16, Elem: 12, Writable: true}}
}

func (m *fakeMap) DirectValue(off uint32) (uint64, error) { return vm.AddrOf(m.mem) + uint64(off), nil }

func TestMapRegionAccess(t *testing.T) {
	m := &fakeMap{mem: make([]byte, 64)}
	m.mem[16] = 7
	p := vm.MustLoad(asm.MustAssemble(`
		lddw %r1, map[0]+16
		ldxb %r0, [%r1+0]
		stxw [%r1+4], %r0
		mov %r2, 1
		lock add32 [%r1+8], %r2
		exit`), vm.Options{Maps: []vm.Map{m}})
	got, err := p.Run(vm.NewEnv(), 0, 0)
	if err != nil || got != 7 || m.mem[20] != 7 || m.mem[24] != 1 {
		t.Fatalf("got %d, %v; memory %v", got, err, m.mem[16:32])
	}
	// Bytes 12..15 of each element are a gap the program may not touch.
	bad := vm.MustLoad(asm.MustAssemble("lddw %r1, map[0]+16\nldxw %r0, [%r1+10]\nexit"), vm.Options{Maps: []vm.Map{m}})
	if _, err := bad.Run(vm.NewEnv(), 0, 0); !errors.Is(err, vm.ErrOutOfBounds) {
		t.Errorf("read across the element gap: %v", err)
	}
}
