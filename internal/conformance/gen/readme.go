package main

import (
	"fmt"
	"strings"
)

// kernelLinePrefix starts the README line that names the kernel, which
// -check does not compare (the answers must match; the kernel may differ).
const kernelLinePrefix = "Last generated with Linux "

func readme(n int) string {
	return strings.TrimLeft(fmt.Sprintf(`
# vswitch's own eBPF conformance corpus

%d cases of the eBPF instruction set (RFC 9669), one per `+"`.data`"+` file, in the format
of the bpf_conformance project (sections `+"`-- asm` or `-- raw`, `-- mem`, `-- result` or `-- error`"+`),
so that internal/conformance and the bpf_conformance runner (with
cmd/bpf-conformance-plugin) both read them. Every `+"`go test ./...`"+` runs them on the
interpreter, the switch interpreter and the JIT (vm and jit's TestConformance).

The files are generated; do not edit them. To change or add a case, edit
internal/conformance/gen (cases_*.go) and run, as root on Linux, from the root of the
repository:

    go run ./internal/conformance/gen

`+"`go run ./internal/conformance/gen -check`"+` says whether the files are what the generator
makes on this kernel; TestCorpusUpToDate (internal/conformance/gen) does the same in
`+"`go test`"+` when it runs as root.

%s%s.

## Where the expected answers come from

Each file says, in its comments, which of these rules gave its answer.

1. The kernel. The generator loads the program with BPF_PROG_LOAD and runs it with
   BPF_PROG_TEST_RUN. By default the program is a bpf-to-bpf subprogram of a small XDP
   program that passes r1 = the address of the case's memory (an array map value; 0
   without memory) and r2 = its length, and stores the program's whole 64-bit r0 in the
   packet: the kernel's own XDP return value has 32 bits. Where the program must be the
   XDP program itself (tail calls, the deepest call chain) only the low 32 bits of r0
   come back and the file says so. Line numbers in the kernel's messages then count the
   wrapper's 16 slots.
2. RFC 9669, checked. For arithmetic, byte swaps, jumps and lddw the generator also
   works out the ISA's answer itself (internal/conformance/gen/model.go) and stops if
   the kernel disagrees.
3. RFC 9669, where the kernel refuses a program the ISA defines: an immediate shift by
   the width or more, a division or modulo by an immediate zero. The file quotes the
   verifier's refusal. callx, which neither RFC 9669 nor Linux has, follows the callx
   group of bpf_conformance (the register holds a helper id).
4. RFC 9669, where a kernel is known to answer wrongly: the file then gives the
   kernel's answer and why it is wrong. No case needs this with the kernel named above
   (Linux 6.18 once left r0's upper half set after a 32-bit cmpxchg whose 64-bit use
   was on a pruned path; atomic32-cmpxchg-pruned-path checks that program).
5. Errors (files named err-* and fault-*). The expected error is vswitch's: a program
   that breaks a rule decidable before running is refused at load time
   (`+"`invalid program: at insn N: REASON`"+`); one that breaks a rule while running stops
   with a typed fault (`+"`fault at insn N: KIND`"+`). The kernel must refuse each of these programs
   too, and the file quotes its reason. A case passes only if the engine's error,
   written as internal/conformance.ErrorText writes it, equals the `+"`-- error`"+` line: the
   instruction and the kind of error (or the validator's reason) must both match.

## The harness

As in internal/conformance (RunCase) and the plugin: r1 = a private copy of the
`+"`-- mem`"+` bytes (0 without memory), r2 = their length, r10 = the top of the stack (8
frames of 512 bytes); the helpers of package maps; map[0] is a program array whose slot
0 holds the program under test, map[1] a one-entry array of 8 bytes. Programs that use
the maps are written as `+"`-- raw`"+` slots, with their disassembly in comments, because
the bpf_conformance assembler has no map syntax; with another plugin than ours those
cases (tail-call-*, fault-tail-call-wrong-map) cannot pass, and the callx-* cases need
the runner's callx group.
`, n, kernelLinePrefix, kernelRelease()), "\n")
}
