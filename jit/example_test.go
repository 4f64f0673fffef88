//go:build linux && amd64

package jit_test

import (
	"fmt"
	"os"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// The listing `vswitch prog dump jited` prints: each eBPF instruction
// followed by the x86-64 code it became. The block's instruction count is
// added to r9 at its first instruction; exit stores the count and returns
// to Go (a program with local calls first checks for an active call); the
// resume stub is where helper calls and tail calls re-enter.
func ExampleListing_Format() {
	p := vm.MustLoad(asm.MustAssemble("mov %r0, 2\nadd %r0, %r1\nexit"), vm.Options{})
	c, err := jit.Compile(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	l := c.Listing()
	for pc := range l.Insns {
		fmt.Printf("insn %d at %#x\n", pc, l.Offsets[pc])
	}
	l.Format(os.Stdout)
	// Output:
	// insn 0 at 0x26
	// insn 1 at 0x2f
	// insn 2 at 0x32
	// ; entry
	//      0:  31 c0                          xor eax, eax
	//      2:  49 8b 7c 24 10                 mov rdi, qword ptr [r12+0x10]
	//      7:  49 8b 74 24 18                 mov rsi, qword ptr [r12+0x18]
	//      c:  31 d2                          xor edx, edx
	//      e:  31 c9                          xor ecx, ecx
	//     10:  45 31 c0                       xor r8d, r8d
	//     13:  31 db                          xor ebx, ebx
	//     15:  45 31 ed                       xor r13d, r13d
	//     18:  45 31 f6                       xor r14d, r14d
	//     1b:  45 31 ff                       xor r15d, r15d
	//     1e:  49 8b 6c 24 58                 mov rbp, qword ptr [r12+0x58]
	//     23:  45 31 c9                       xor r9d, r9d
	// ; 0: mov %r0, 2
	//     26:  49 83 c1 03                    add r9, 0x3
	//     2a:  b8 02 00 00 00                 mov eax, 0x2
	// ; 1: add %r0, %r1
	//     2f:  48 01 f8                       add rax, rdi
	// ; 2: exit
	//     32:  4d 89 4c 24 60                 mov qword ptr [r12+0x60], r9
	//     37:  c3                             ret
	// ; resume
	//     38:  49 8b 44 24 08                 mov rax, qword ptr [r12+0x8]
	//     3d:  49 8b 7c 24 10                 mov rdi, qword ptr [r12+0x10]
	//     42:  49 8b 74 24 18                 mov rsi, qword ptr [r12+0x18]
	//     47:  49 8b 54 24 20                 mov rdx, qword ptr [r12+0x20]
	//     4c:  49 8b 4c 24 28                 mov rcx, qword ptr [r12+0x28]
	//     51:  4d 8b 44 24 30                 mov r8, qword ptr [r12+0x30]
	//     56:  49 8b 5c 24 38                 mov rbx, qword ptr [r12+0x38]
	//     5b:  4d 8b 6c 24 40                 mov r13, qword ptr [r12+0x40]
	//     60:  4d 8b 74 24 48                 mov r14, qword ptr [r12+0x48]
	//     65:  4d 8b 7c 24 50                 mov r15, qword ptr [r12+0x50]
	//     6a:  49 8b 6c 24 58                 mov rbp, qword ptr [r12+0x58]
	//     6f:  4d 8b 4c 24 60                 mov r9, qword ptr [r12+0x60]
	//     74:  41 ff a4 24 80 00 00 00        jmp qword ptr [r12+0x80]
}
