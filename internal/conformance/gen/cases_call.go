package main

import (
	"fmt"
	"strings"

	"github.com/govswitch/vswitch/asm"
)

func callSpecs() []*spec {
	out := []*spec{
		{
			name: "call-local-arguments",
			what: []string{"a local call passes r1..r5 and returns r0"},
			asm: `
				mov %r1, 1
				mov %r2, 2
				mov %r3, 3
				mov %r4, 4
				mov %r5, 5
				call local f
				exit
			f:
				mov %r0, %r5
				mul %r0, 10
				add %r0, %r4
				mul %r0, 10
				add %r0, %r3
				mul %r0, 10
				add %r0, %r2
				mul %r0, 10
				add %r0, %r1
				exit`,
			isa: u64(54321),
		},
		{
			name: "call-local-callee-saved",
			what: []string{"r6..r9 of the caller survive a callee that overwrites them"},
			asm: `
				mov %r6, 6
				mov %r7, 7
				mov %r8, 8
				mov %r9, 9
				call local f
				add %r0, %r6
				add %r0, %r7
				add %r0, %r8
				add %r0, %r9
				exit
			f:
				mov %r6, 0x600
				mov %r7, 0x700
				mov %r8, 0x800
				mov %r9, 0x900
				mov %r0, %r6
				add %r0, %r9
				exit`,
			isa: u64(0x600 + 0x900 + 30),
		},
		{
			name: "call-local-own-frame",
			what: []string{"each call has its own stack frame at r10"},
			asm: `
				stdw [%r10-8], 11
				call local f
				mul %r0, 100
				ldxdw %r1, [%r10-8]
				add %r0, %r1
				exit
			f:
				stdw [%r10-8], 22
				ldxdw %r0, [%r10-8]
				exit`,
			isa: u64(2211),
		},
		{
			name: "call-local-caller-stack-pointer",
			what: []string{"a callee writes the caller's stack through a pointer it was passed"},
			asm: `
				stdw [%r10-8], 5
				mov %r1, %r10
				add %r1, -8
				call local f
				ldxdw %r0, [%r10-8]
				exit
			f:
				ldxdw %r0, [%r1+0]
				add %r0, 1
				stxdw [%r1+0], %r0
				exit`,
			isa: u64(6),
		},
		{
			name: "call-local-several",
			what: []string{"two functions called in turn, one of them twice"},
			asm: `
				mov %r1, 3
				call local double
				mov %r1, %r0
				call local inc
				mov %r1, %r0
				call local double
				exit
			double:
				mov %r0, %r1
				add %r0, %r1
				exit
			inc:
				mov %r0, %r1
				add %r0, 1
				exit`,
			isa: u64(14),
		},
		{
			name: "call-helper-callee-saved",
			what: []string{"a helper call (bpf_ktime_get_ns) keeps r6..r9 and the stack"},
			asm: `
				mov %r6, 6
				mov %r9, 9
				stdw [%r10-8], 100
				call 5
				ldxdw %r0, [%r10-8]
				add %r0, %r6
				add %r0, %r9
				exit`,
			isa: u64(115),
		},
	}
	// The deepest chain the ISA's 8 frames allow: main and 7 callees, each
	// with a word of stack. In the kernel it runs as the XDP program itself,
	// since the wrapper would add a ninth frame.
	var b strings.Builder
	b.WriteString("mov %r0, 0\nstdw [%r10-8], 1\ncall local f1\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n")
	for k := 1; k <= 7; k++ {
		fmt.Fprintf(&b, "f%d:\nstdw [%%r10-8], %d\n", k, 1<<k)
		if k < 7 {
			fmt.Fprintf(&b, "call local f%d\n", k+1)
		} else {
			b.WriteString("mov %r0, 0\n")
		}
		b.WriteString("ldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit\n")
	}
	out = append(out, &spec{
		name:   "call-local-depth-8",
		what:   []string{"a chain of 8 frames (the program and 7 nested local calls), each with its own stack word"},
		asm:    b.String(),
		isa:    u64(0xff),
		direct: true,
	})
	// callx: the register holds a helper id. Neither RFC 9669 nor Linux
	// has callx: these follow the callx group of bpf_conformance.
	out = append(out,
		&spec{
			name: "callx-helper",
			what: []string{"callx (call %rN) calls the helper whose id is in the register (5, bpf_ktime_get_ns),", "which returns non-zero; r6 survives"},
			asm: `
				mov %r6, 7
				mov %r0, 0
				mov %r2, 5
				call %r2
				jeq %r0, 0, +1
				add %r6, 100
				mov %r0, %r6
				exit`,
			isa:      u64(107),
			isaWhy:   "callx calls the helper whose id is in its register",
			isaSpec:  "the callx group of bpf_conformance, since callx is not in RFC 9669",
			noKernel: "Linux has no callx instruction",
		},
		&spec{
			name: "callx-register-r9",
			what: []string{"callx through r9, which survives the call"},
			asm: `
				mov %r9, 5
				call %r9
				mov %r0, %r9
				exit`,
			isa:      u64(5),
			isaWhy:   "callx calls the helper whose id is in its register",
			isaSpec:  "the callx group of bpf_conformance, since callx is not in RFC 9669",
			noKernel: "Linux has no callx instruction",
		},
	)
	return out
}

// Tail calls: map[0] is the harness's program array, whose slot 0 holds
// the program itself; map[1] a one-entry 8-byte array. Programs that use
// maps are written as raw slots (the bpf_conformance assembler has no map
// syntax), with their disassembly beside them. In the kernel they run as
// the XDP program itself, so that slot 0 can hold them.
func tailCallSpecs() []*spec {
	mk := func(name string, what []string, text string, isa *uint64, why string) *spec {
		return &spec{name: name, what: what, raw: asm.MustAssemble(text), isa: isa, isaWhy: why, direct: true}
	}
	counter := `
		lddw %r6, map[1]+0
		ldxdw %r0, [%r6+0]
		add %r0, 1
		stxdw [%r6+0], %r0
		lddw %r2, map[0]
		mov %r3, 0
		call 12
		ldxdw %r0, [%r6+0]
		exit`
	out := []*spec{
		mk("tail-call-limit",
			[]string{"a program that tail-calls itself, counting its runs in map[1]: the first run and 33 tail", "calls, then bpf_tail_call fails and the program goes on"},
			counter, nil, ""),
		mk("tail-call-empty-slot",
			[]string{"a tail call to an empty slot fails and the program goes on"},
			"lddw %r2, map[0]\nmov %r3, 1\ncall 12\nmov %r0, 7\nexit", u64(7), "bpf_tail_call returns to the caller when the slot is empty"),
		mk("tail-call-index-out-of-range",
			[]string{"a tail call to an index past the end of the array fails and the program goes on"},
			"lddw %r2, map[0]\nmov %r3, 100\ncall 12\nmov %r0, 7\nexit", u64(7), "bpf_tail_call returns to the caller when the index is out of range"),
		mk("tail-call-from-function",
			[]string{"a tail call made in a local function: the program that replaces the function returns", "to the function's caller, so each of the 34 runs adds 100 on its way out"},
			`
				call local f
				add %r0, 100
				exit
			f:`+counter, nil, ""),
	}
	// The kernel takes a tail call in a local function only with BTF.
	out[len(out)-1].btf = true
	return out
}
