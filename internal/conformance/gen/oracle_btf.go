package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	casm "github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/internal/kernel"
)

// runKernelBTF is runKernel in direct mode for programs the kernel takes
// only with BTF function information: a tail call in a local function
// ("tail_call is not allowed in subprogs without BTF"). internal/kernel
// loads raw instructions only, so these go through github.com/cilium/ebpf,
// which writes the function information. Every function is described as a
// static function of no arguments returning an int.
func runKernelBTF(insns []asm.Instruction, progs, data *kernel.Map) (kernelAnswer, error) {
	// Map references: the harness's map index becomes the map's fd.
	fds := []int{progs.FD(), data.FD()}
	prog := append([]asm.Instruction(nil), insns...)
	entries := map[int]bool{0: true}
	for n := 0; n < len(prog); n++ {
		i := prog[n]
		if i.IsLDDW() {
			if i.Src == asm.PseudoMapFD || i.Src == asm.PseudoMapValue {
				if i.Imm < 0 || int(i.Imm) >= len(fds) {
					return kernelAnswer{}, fmt.Errorf("insn %d: map %d is not in the harness", n, i.Imm)
				}
				prog[n].Imm = int32(fds[i.Imm])
			}
			n++
			continue
		}
		if i.Op == asm.OpCall && i.Src == asm.PseudoCall {
			entries[n+1+int(i.Imm)] = true
		}
	}
	cinsns, err := casm.AppendInstructions(nil, bytes.NewReader(asm.Encode(prog)), binary.LittleEndian, "linux")
	if err != nil {
		return kernelAnswer{}, err
	}
	intType := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	iter := cinsns.Iterate()
	for iter.Next() {
		if entries[int(iter.Offset)] {
			name := fmt.Sprintf("f%d", iter.Offset)
			linkage := btf.StaticFunc
			if iter.Offset == 0 {
				name, linkage = "main", btf.GlobalFunc
			}
			*iter.Ins = btf.WithFuncMetadata(*iter.Ins, &btf.Func{
				Name: name, Type: &btf.FuncProto{Return: intType}, Linkage: linkage,
			})
		}
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "conformance", Type: ebpf.XDP, License: "GPL", Instructions: cinsns})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return kernelAnswer{refused: lastLogLine(verr.Log)}, nil
		}
		return kernelAnswer{}, err
	}
	defer p.Close()
	var fd [4]byte
	binary.LittleEndian.PutUint32(fd[:], uint32(p.FD()))
	if err := progs.Update(make([]byte, 4), fd[:]); err != nil {
		return kernelAnswer{}, err
	}
	defer progs.Delete(make([]byte, 4))
	ret, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil {
		return kernelAnswer{}, err
	}
	return kernelAnswer{value: uint64(ret)}, nil
}

func lastLogLine(log []string) string {
	for k := len(log) - 1; k >= 0; k-- {
		l := strings.TrimSpace(log[k])
		if l != "" && !strings.HasPrefix(l, "processed ") && !strings.HasPrefix(l, "verification time") {
			return l
		}
	}
	return "refused with no log"
}
