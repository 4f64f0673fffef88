package kernel

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/govswitch/vswitch/asm"
)

// wrapper is the XDP main program Run64 puts in front of the program under
// test, which it calls as a bpf-to-bpf subprogram. The kernel's XDP programs
// return only 32 bits, so the main stores the callee's whole r0 into the
// first 8 bytes of the packet and returns XDP_PASS.
var wrapper = []asm.Instruction{
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcX, Dst: 6, Src: 1}, // r6 = r1 (ctx)
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 1},         // r1..r5 = 0: the callee's arguments
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 2},
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 3},
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 4},
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 5},
	{Op: asm.OpCall, Src: asm.PseudoCall, Imm: 8},                         // call the program under test at slot 15
	{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeW, Dst: 2, Src: 6, Off: 0},  // r2 = ctx->data
	{Op: asm.ClassLDX | asm.ModeMEM | asm.SizeW, Dst: 3, Src: 6, Off: 4},  // r3 = ctx->data_end
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcX, Dst: 4, Src: 2},          // r4 = r2
	{Op: asm.ClassALU64 | asm.ALUAdd | asm.SrcK, Dst: 4, Imm: 8},          // r4 += 8
	{Op: asm.ClassJMP | asm.JmpJGT | asm.SrcX, Dst: 4, Src: 3, Off: 1},    // if r4 > r3 goto +1
	{Op: asm.ClassSTX | asm.ModeMEM | asm.SizeDW, Dst: 2, Src: 0, Off: 0}, // *(u64 *)(r2 + 0) = r0
	{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 0, Imm: 2},          // r0 = XDP_PASS
	{Op: asm.OpExit},
}

// Run64Offset is the slot at which Run64 places the program under test:
// instruction numbers in the verifier log of a Run64 error are this much
// larger than in the program.
const Run64Offset = 15

func init() {
	if len(wrapper) != Run64Offset || int(wrapper[6].Imm) != Run64Offset-7 {
		panic("kernel: Run64 wrapper and Run64Offset disagree")
	}
}

// Wrap64 returns the XDP program Run64 loads: a main at slots
// [0, Run64Offset) that calls insns as a bpf-to-bpf subprogram and stores
// its 64-bit r0 into the first 8 bytes of the packet. Jumps and local calls
// inside insns are relative, so they need no change; insns may contain local
// calls of its own.
func Wrap64(insns []asm.Instruction) []asm.Instruction {
	out := make([]asm.Instruction, 0, len(wrapper)+len(insns))
	out = append(out, wrapper...)
	return append(out, insns...)
}

// Run64 loads insns (with map references resolved against maps, as in
// LoadProgramWithMaps) as a subprogram of an XDP main, runs it once and
// returns its full 64-bit r0: the only way to see more than the low 32 bits
// of r0 from the kernel.
//
// The program under test is entered with r1..r5 = 0 (they carry nothing
// meaningful: no context, no packet) and r10 pointing at its own 512-byte
// stack, of which the main uses none. r6..r9 and r0 start uninitialized, so
// the verifier refuses a program that reads them before writing them. It
// must return a scalar, and the total stack of its own local calls must fit
// in 512 bytes. A refusal is a *VerifierError whose log counts instructions
// from the start of the wrapper: subtract Run64Offset.
func Run64(insns []asm.Instruction, maps ...*Map) (uint64, error) {
	p, err := LoadProgramWithMaps(XDP, Wrap64(insns), maps)
	if err != nil {
		return 0, fmt.Errorf("run64 (program at slot %d): %w", Run64Offset, err)
	}
	defer p.Close()
	var pkt [64]byte
	_, out, _, err := p.TestRun(pkt[:], 1)
	if err != nil {
		return 0, fmt.Errorf("run64: %w", err)
	}
	if len(out) < 8 {
		return 0, fmt.Errorf("run64: kernel returned %d bytes of packet", len(out))
	}
	return binary.LittleEndian.Uint64(out), nil
}

var available = sync.OnceValue(func() error {
	p, err := LoadProgram(XDP, []asm.Instruction{
		{Op: asm.ClassALU64 | asm.ALUMov | asm.SrcK, Dst: 0, Imm: 2},
		{Op: asm.OpExit},
	})
	if err != nil {
		return err
	}
	defer p.Close()
	ret, _, _, err := p.TestRun(make([]byte, 64), 1)
	if err != nil {
		return err
	}
	if ret != 2 {
		return fmt.Errorf("BPF_PROG_TEST_RUN of `r0 = 2; exit` returned %d: %w", ret, ErrNotSupported)
	}
	return nil
})

// Available returns nil if this process can load and test-run XDP programs,
// else an error (wrapping ErrNotSupported where the cause is the platform or
// a permission) that says why, suitable for t.Skip. The answer is computed
// once.
func Available() error { return available() }
