package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
)

// kernelAnswer is what the kernel made of a case.
type kernelAnswer struct {
	value   uint64 // r0 (all 64 bits, or 32 in direct mode)
	refused string // the verifier's reason, if it refused the program
}

// runKernel runs a case in the kernel with BPF_PROG_TEST_RUN, in the
// harness of internal/conformance rebuilt from kernel maps: map[0] a
// program array, map[1] a one-entry 8-byte array, and (kernel only)
// map[2] an array whose one value holds the case's memory.
//
// By default the program runs as a bpf-to-bpf subprogram of an XDP main
// (see wrap) that passes r1 = the address of that memory (0 without
// memory) and r2 = its length, and stores the whole 64-bit r0 in the
// packet. In direct mode (tail calls, call depth) it runs as the XDP main
// itself: r1 is the XDP context, slot 0 of map[0] holds it, and only the
// low 32 bits of r0 come back.
func runKernel(s *spec, insns []asm.Instruction) (kernelAnswer, error) {
	progs, err := kernel.CreateMap(kernel.ProgArray, 4, 4, 4, 0)
	if err != nil {
		return kernelAnswer{}, err
	}
	defer progs.Close()
	data, err := kernel.CreateMap(kernel.Array, 4, 8, 1, 0)
	if err != nil {
		return kernelAnswer{}, err
	}
	defer data.Close()
	if s.btf {
		return runKernelBTF(insns, progs, data)
	}
	memSize := uint32(max(len(s.mem), 1))
	mem, err := kernel.CreateMap(kernel.Array, 4, memSize, 1, 0)
	if err != nil {
		return kernelAnswer{}, err
	}
	defer mem.Close()
	if len(s.mem) > 0 {
		if err := mem.Update(make([]byte, 4), s.mem); err != nil {
			return kernelAnswer{}, err
		}
	}
	prog := insns
	if !s.direct {
		prog = wrap(insns, len(s.mem))
	}
	p, err := kernel.LoadProgramWithMaps(kernel.XDP, prog, []*kernel.Map{progs, data, mem})
	if err != nil {
		var verr *kernel.VerifierError
		if errors.As(err, &verr) {
			return kernelAnswer{refused: refusal(verr)}, nil
		}
		return kernelAnswer{}, err
	}
	defer p.Close()
	var fd [4]byte
	binary.LittleEndian.PutUint32(fd[:], uint32(p.FD()))
	if err := progs.Update(make([]byte, 4), fd[:]); err != nil {
		return kernelAnswer{}, err
	}
	// Break the reference cycle prog -> map -> prog before closing.
	defer progs.Delete(make([]byte, 4))
	ret, out, _, err := p.TestRun(make([]byte, 64), 1)
	if err != nil {
		return kernelAnswer{}, err
	}
	if s.direct {
		return kernelAnswer{value: uint64(ret)}, nil
	}
	if ret != 2 || len(out) < 8 {
		return kernelAnswer{}, fmt.Errorf("wrapper returned %d with %d bytes of packet", ret, len(out))
	}
	return kernelAnswer{value: binary.LittleEndian.Uint64(out)}, nil
}

// wrap puts insns behind an XDP main that calls them as a subprogram with
// r1 = the address of map[2]'s value (0 if memLen is 0), r2 = memLen, r3-r5
// = 0, and stores the subprogram's r0 in the first 8 bytes of the packet.
func wrap(insns []asm.Instruction, memLen int) []asm.Instruction {
	setR1 := "mov %r1, 0\nmov %r1, 0" // two slots, as the lddw
	if memLen > 0 {
		setR1 = "lddw %r1, map[2]+0"
	}
	head := asm.MustAssemble(fmt.Sprintf(`
		mov %%r6, %%r1
		%s
		mov %%r2, %d
		mov %%r3, 0
		mov %%r4, 0
		mov %%r5, 0`, setR1, memLen))
	tail := asm.MustAssemble(`
		ldxw %r2, [%r6+0]
		ldxw %r3, [%r6+4]
		mov %r4, %r2
		add %r4, 8
		jgt %r4, %r3, +1
		stxdw [%r2+0], %r0
		mov %r0, 2
		exit`)
	out := append(head, asm.Instruction{Op: asm.OpCall, Src: asm.PseudoCall, Imm: int32(len(tail))})
	out = append(out, tail...)
	return append(out, insns...)
}

// refusal is the verifier's reason: the last line of its log that is not
// a statistic.
func refusal(e *kernel.VerifierError) string {
	lines := strings.Split(strings.TrimRight(e.Log, "\x00\n"), "\n")
	for k := len(lines) - 1; k >= 0; k-- {
		l := lines[k]
		if i := strings.Index(l, "processed "); i > 0 {
			l = l[:i] // the kernel sometimes omits the newline before the statistics
		}
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time") ||
			strings.HasPrefix(l, "stack depth") || strings.HasPrefix(l, "max_states_per_insn") {
			continue
		}
		return l + " (" + errnoName(e.Err) + ")"
	}
	return "refused with " + errnoName(e.Err) + " and no log"
}

func errnoName(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
