//go:build linux && amd64

package jit_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/govswitch/vswitch/asm"
	"github.com/govswitch/vswitch/jit"
	"github.com/govswitch/vswitch/vm"
)

// The listing `vswitch prog dump jited` prints: each eBPF instruction
// followed by the x86-64 code it became. The block's instruction count is
// added to r9 at its first instruction; exit goes to frame_done (a
// program with local calls first checks for an active call), which returns
// to Go at the end of a single run and, in a batch, writes the frame's
// result and starts the next frame at frame_start; the resume stub is
// where helper calls and tail calls re-enter (through nested_entry while
// a tail call made in a local function runs).
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
	//     32:  eb 00                          jmp frame_done
	// ; frame_done
	//     34:  4d 89 4c 24 60                 mov qword ptr [r12+0x60], r9
	//     39:  49 83 bc 24 50 01 00 00 00     cmp qword ptr [r12+0x150], 0x0
	//     42:  75 01                          jnz 0x45
	//     44:  c3                             ret
	//     45:  4d 8b 9c 24 40 01 00 00        mov r11, qword ptr [r12+0x140]
	//     4d:  49 89 03                       mov qword ptr [r11], rax
	//     50:  4d 89 4b 08                    mov qword ptr [r11+0x8], r9
	//     54:  4d 8b 94 24 20 01 00 00        mov r10, qword ptr [r12+0x120]
	//     5c:  45 0f b6 52 14                 movzx r10d, byte ptr [r10+0x14]
	//     61:  4d 89 53 30                    mov qword ptr [r11+0x30], r10
	//     65:  31 c9                          xor ecx, ecx
	//     67:  48 3d fe 00 00 00              cmp rax, 0xfe
	//     6d:  75 3d                          jnz 0xac
	//     6f:  4d 8b 94 24 60 01 00 00        mov r10, qword ptr [r12+0x160]
	//     77:  4d 85 d2                       test r10, r10
	//     7a:  74 30                          jz 0xac
	//     7c:  49 8b 12                       mov rdx, qword ptr [r10]
	//     7f:  49 89 53 10                    mov qword ptr [r11+0x10], rdx
	//     83:  49 89 0a                       mov qword ptr [r10], rcx
	//     86:  49 8b 52 08                    mov rdx, qword ptr [r10+0x8]
	//     8a:  49 89 53 18                    mov qword ptr [r11+0x18], rdx
	//     8e:  49 89 4a 08                    mov qword ptr [r10+0x8], rcx
	//     92:  49 8b 52 10                    mov rdx, qword ptr [r10+0x10]
	//     96:  49 89 53 20                    mov qword ptr [r11+0x20], rdx
	//     9a:  49 89 4a 10                    mov qword ptr [r10+0x10], rcx
	//     9e:  49 8b 52 18                    mov rdx, qword ptr [r10+0x18]
	//     a2:  49 89 53 28                    mov qword ptr [r11+0x28], rdx
	//     a6:  49 89 4a 18                    mov qword ptr [r10+0x18], rcx
	//     aa:  eb 10                          jmp 0xbc
	//     ac:  49 89 4b 10                    mov qword ptr [r11+0x10], rcx
	//     b0:  49 89 4b 18                    mov qword ptr [r11+0x18], rcx
	//     b4:  49 89 4b 20                    mov qword ptr [r11+0x20], rcx
	//     b8:  49 89 4b 28                    mov qword ptr [r11+0x28], rcx
	//     bc:  4d 8b 94 24 48 01 00 00        mov r10, qword ptr [r12+0x148]
	//     c4:  4d 01 94 24 40 01 00 00        add qword ptr [r12+0x140], r10
	//     cc:  4d 8b 94 24 38 01 00 00        mov r10, qword ptr [r12+0x138]
	//     d4:  4d 01 94 24 30 01 00 00        add qword ptr [r12+0x130], r10
	//     dc:  49 83 ac 24 50 01 00 00 01     sub qword ptr [r12+0x150], 0x1
	//     e5:  74 0d                          jz 0xf4
	//     e7:  49 83 bc 24 58 01 00 00 00     cmp qword ptr [r12+0x158], 0x0
	//     f0:  75 02                          jnz 0xf4
	//     f2:  eb 01                          jmp frame_start
	//     f4:  c3                             ret
	// ; frame_start
	//     f5:  4d 8b 9c 24 30 01 00 00        mov r11, qword ptr [r12+0x130]
	//     fd:  49 8b 3b                       mov rdi, qword ptr [r11]
	//    100:  49 8b 73 08                    mov rsi, qword ptr [r11+0x8]
	//    104:  31 c9                          xor ecx, ecx
	//    106:  49 83 7b 10 00                 cmp qword ptr [r11+0x10], 0x0
	//    10b:  48 0f 44 f9                    cmovz rdi, rcx
	//    10f:  49 8b 94 24 20 01 00 00        mov rdx, qword ptr [r12+0x120]
	//    117:  48 89 3a                       mov qword ptr [rdx], rdi
	//    11a:  48 8d 0f                       lea rcx, ptr [rdi]
	//    11d:  48 01 f1                       add rcx, rsi
	//    120:  48 89 4a 08                    mov qword ptr [rdx+0x8], rcx
	//    124:  49 8b 8c 24 28 01 00 00        mov rcx, qword ptr [r12+0x128]
	//    12c:  48 89 4a 10                    mov qword ptr [rdx+0x10], rcx
	//    130:  31 c9                          xor ecx, ecx
	//    132:  49 89 8c 24 88 00 00 00        mov qword ptr [r12+0x88], rcx
	//    13a:  48 89 d7                       mov rdi, rdx
	//    13d:  31 c0                          xor eax, eax
	//    13f:  31 f6                          xor esi, esi
	//    141:  31 d2                          xor edx, edx
	//    143:  31 c9                          xor ecx, ecx
	//    145:  45 31 c0                       xor r8d, r8d
	//    148:  31 db                          xor ebx, ebx
	//    14a:  45 31 ed                       xor r13d, r13d
	//    14d:  45 31 f6                       xor r14d, r14d
	//    150:  45 31 ff                       xor r15d, r15d
	//    153:  49 8b ac 24 18 01 00 00        mov rbp, qword ptr [r12+0x118]
	//    15b:  45 31 c9                       xor r9d, r9d
	//    15e:  e9 c3 fe ff ff                 jmp insn0
	// ; resume
	//    163:  49 8b 44 24 08                 mov rax, qword ptr [r12+0x8]
	//    168:  49 8b 7c 24 10                 mov rdi, qword ptr [r12+0x10]
	//    16d:  49 8b 74 24 18                 mov rsi, qword ptr [r12+0x18]
	//    172:  49 8b 54 24 20                 mov rdx, qword ptr [r12+0x20]
	//    177:  49 8b 4c 24 28                 mov rcx, qword ptr [r12+0x28]
	//    17c:  4d 8b 44 24 30                 mov r8, qword ptr [r12+0x30]
	//    181:  49 8b 5c 24 38                 mov rbx, qword ptr [r12+0x38]
	//    186:  4d 8b 6c 24 40                 mov r13, qword ptr [r12+0x40]
	//    18b:  4d 8b 74 24 48                 mov r14, qword ptr [r12+0x48]
	//    190:  4d 8b 7c 24 50                 mov r15, qword ptr [r12+0x50]
	//    195:  49 8b 6c 24 58                 mov rbp, qword ptr [r12+0x58]
	//    19a:  4d 8b 4c 24 60                 mov r9, qword ptr [r12+0x60]
	//    19f:  41 ff a4 24 80 00 00 00        jmp qword ptr [r12+0x80]
	// ; nested_entry
	//    1a7:  e8 b7 ff ff ff                 call resume
	//    1ac:  49 83 7c 24 70 00              cmp qword ptr [r12+0x70], 0x0
	//    1b2:  75 27                          jnz 0x1db
	//    1b4:  49 c7 44 24 70 04 00 00 00     mov qword ptr [r12+0x70], 0x4
	//    1bd:  49 89 44 24 08                 mov qword ptr [r12+0x8], rax
	//    1c2:  49 89 7c 24 10                 mov qword ptr [r12+0x10], rdi
	//    1c7:  49 89 74 24 18                 mov qword ptr [r12+0x18], rsi
	//    1cc:  49 89 54 24 20                 mov qword ptr [r12+0x20], rdx
	//    1d1:  49 89 4c 24 28                 mov qword ptr [r12+0x28], rcx
	//    1d6:  4d 89 44 24 30                 mov qword ptr [r12+0x30], r8
	//    1db:  c3                             ret
}

// A program that checks its frame against data_end: the analysis proves
// its frame and context accesses in bounds, so the copy of the program
// that frame runs use has no check for them, and the listing says so.
func ExampleListing_proven() {
	p := vm.MustLoad(asm.MustAssemble(`
		ldxdw %r2, [%r1+0]
		ldxdw %r3, [%r1+8]
		mov %r4, %r2
		add %r4, 14
		jgt %r4, %r3, drop
		ldxh %r0, [%r2+12]
		exit
	drop:
		mov %r0, 255
		exit`), vm.Options{})
	c, err := jit.Compile(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	for _, line := range strings.Split(c.Listing().String(), "\n") {
		if strings.HasPrefix(line, "; ") && line[2] >= '0' && line[2] <= '9' {
			fmt.Println(line)
		}
		if strings.HasSuffix(line, "word ptr [rsi+0xc]") {
			fmt.Println(line[40:])
		}
	}
	// Output:
	// ; 0: ldxdw %r2, [%r1+0]    ; proven in bounds: no check
	// ; 1: ldxdw %r3, [%r1+8]    ; proven in bounds: no check
	// ; 2: mov %r4, %r2
	// ; 3: add %r4, 14
	// ; 4: jgt %r4, %r3, +2
	// ; 5: ldxh %r0, [%r2+12]    ; proven in bounds: no check
	// movzx eax, word ptr [rsi+0xc]
	// ; 6: exit
	// ; 7: mov %r0, 255
	// ; 8: exit
}
