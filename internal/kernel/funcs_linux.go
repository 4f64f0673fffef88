//go:build !mips

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	casm "github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/govswitch/vswitch/asm"
)

// loadProgramFuncs loads insns with BTF function information, written by
// github.com/cilium/ebpf: every function (instruction 0 and the targets of
// local calls) is described as a function of no arguments returning an
// int, main global and the others static. The kernel wants it for a tail
// call in a local function ("tail_call is not allowed in subprogs without
// BTF"); internal/conformance/gen does the same.
func loadProgramFuncs(typ ProgType, insns []asm.Instruction) (int, error) {
	entries := map[int]bool{0: true}
	for n := 0; n < len(insns); n++ {
		i := insns[n]
		if i.IsLDDW() {
			n++
			continue
		}
		if i.Op == asm.OpCall && i.Src == asm.PseudoCall {
			entries[n+1+int(i.Imm)] = true
		}
	}
	cinsns, err := casm.AppendInstructions(nil, bytes.NewReader(asm.Encode(insns)), binary.LittleEndian, "linux")
	if err != nil {
		return -1, err
	}
	intType := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	iter := cinsns.Iterate()
	for iter.Next() {
		if !entries[int(iter.Offset)] {
			continue
		}
		name, linkage := fmt.Sprintf("f%d", iter.Offset), btf.StaticFunc
		if iter.Offset == 0 {
			name, linkage = "main", btf.GlobalFunc
		}
		*iter.Ins = btf.WithFuncMetadata(*iter.Ins, &btf.Func{
			Name: name, Type: &btf.FuncProto{Return: intType}, Linkage: linkage,
		})
	}
	p, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: "vswitch", Type: ebpf.ProgramType(typ), License: "GPL", Instructions: cinsns,
	}, ebpf.ProgramOptions{})
	if err != nil {
		if err := permission(err); err != nil {
			return -1, err
		}
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return -1, &VerifierError{Err: verr.Cause, Log: strings.Join(verr.Log, "\n")}
		}
		return -1, err
	}
	defer p.Close()
	// The Program is cilium/ebpf's; ours has a descriptor of its own.
	fd, err := unix.FcntlInt(uintptr(p.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup program fd: %w", err)
	}
	return fd, nil
}
