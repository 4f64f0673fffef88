//go:build linux

package jit

import (
	"encoding/hex"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestEncoding checks the bytes of each encoder function and, side by side,
// what an independent disassembler reads in them.
func TestEncoding(t *testing.T) {
	tests := []struct {
		name  string
		emit  func(a *assembler)
		bytes string
		text  string // x86asm Intel syntax
	}{
		{"add64 rr", func(a *assembler) { a.aluRR(true, aluAdd, rax, rdi) }, "4801f8", "add rax, rdi"},
		{"sub32 rr ext", func(a *assembler) { a.aluRR(false, aluSub, r13, r15) }, "4529fd", "sub r13d, r15d"},
		{"xor32 zero", func(a *assembler) { a.aluRR(false, aluXor, r9, r9) }, "4531c9", "xor r9d, r9d"},
		{"add imm8", func(a *assembler) { a.aluRI(true, aluAdd, r9, 6) }, "4983c106", "add r9, 0x6"},
		{"and imm32 sign", func(a *assembler) { a.aluRI(true, aluAnd, rbx, -65536) }, "4881e30000ffff", "and rbx, -0x10000"},
		{"cmp rax imm32", func(a *assembler) { a.aluRI(true, aluCmp, rax, 1000) }, "483de8030000", "cmp rax, 0x3e8"},
		{"cmp32 imm8 -1", func(a *assembler) { a.aluRI(false, aluCmp, r11, -1) }, "4183fbff", "cmp r11d, -0x1"},
		{"cmp r9 mem r12", func(a *assembler) { a.aluRM(aluCmp, r9, r12, 0x70) }, "4d3b4c2470", "cmp r9, qword ptr [r12+0x70]"},
		{"sub mem disp32", func(a *assembler) { a.aluRM(aluSub, r10, r12, 0x200) }, "4d2b942400020000", "sub r10, qword ptr [r12+0x200]"},
		{"cmp mem imm", func(a *assembler) { a.aluMI(aluCmp, r12, 0x70, 0) }, "49837c247000", "cmp qword ptr [r12+0x70], 0x0"},
		{"add mem reg", func(a *assembler) { a.aluMR(aluAdd, r12, 0x140, r10) }, "4d01942440010000", "add qword ptr [r12+0x140], r10"},
		{"cmovb", func(a *assembler) { a.cmov(condB, rax, rcx) }, "480f42c1", "cmovb rax, rcx"},
		{"mul", func(a *assembler) { a.mul(true, rdi) }, "48f7e7", "mul rdi"},
		{"test32 sign bit", func(a *assembler) { a.testRI(false, r10, -1<<31) }, "41f7c200000080", "test r10d, -0x80000000"},
		{"cmovae ext", func(a *assembler) { a.cmov(condAE, r11, r10) }, "4d0f43da", "cmovnb r11, r10"},
		{"test32 imm", func(a *assembler) { a.testRI(false, r11, 7) }, "41f7c307000000", "test r11d, 0x7"},
		{"test rax imm", func(a *assembler) { a.testRI(true, rax, -1) }, "48a9ffffffff", "test rax, -0x1"},
		{"test rr", func(a *assembler) { a.testRR(true, rcx, rdx) }, "4885d1", "test rcx, rdx"},
		{"mov rr", func(a *assembler) { a.movRR(true, rbp, rsp) }, "4889e5", "mov rbp, rsp"},
		{"mov32 self", func(a *assembler) { a.movRR(false, rax, rax) }, "89c0", "mov eax, eax"},
		{"mov imm32 zero-ext", func(a *assembler) { a.movImm64(r14, 0xffffffff) }, "41beffffffff", "mov r14d, -0x1"},
		{"mov imm sign-ext", func(a *assembler) { a.movImm64(rdx, 0xffffffffffffff80) }, "48c7c280ffffff", "mov rdx, -0x80"},
		{"mov imm64", func(a *assembler) { a.movImm64(r15, 0x123456789abcdef0) }, "49bff0debc9a78563412", "mov r15, 0x123456789abcdef0"},
		{"mov imm 0", func(a *assembler) { a.movImm64(rsi, 0) }, "31f6", "xor esi, esi"},
		{"load8", func(a *assembler) { a.load(1, rdi, r11, 0) }, "410fb63b", "movzx edi, byte ptr [r11]"},
		{"load16 rbp", func(a *assembler) { a.load(2, r13, rbp, -2) }, "440fb76dfe", "movzx r13d, word ptr [rbp-0x2]"},
		{"load32 r13 base", func(a *assembler) { a.load(4, rax, r13, 0) }, "418b4500", "mov eax, dword ptr [r13]"},
		{"load64 disp32", func(a *assembler) { a.load(8, rbx, rbp, -512) }, "488b9d00feffff", "mov rbx, qword ptr [rbp-0x200]"},
		{"loadsx8", func(a *assembler) { a.loadSX(1, rax, r11, 0) }, "490fbe03", "movsx rax, byte ptr [r11]"},
		{"loadsx16", func(a *assembler) { a.loadSX(2, rcx, rbp, -8) }, "480fbf4df8", "movsx rcx, word ptr [rbp-0x8]"},
		{"loadsx32", func(a *assembler) { a.loadSX(4, r8, r11, 0) }, "4d6303", "movsxd r8, dword ptr [r11]"},
		{"store8 sil", func(a *assembler) { a.store(1, r11, 0, rsi) }, "418833", "mov byte ptr [r11], sil"},
		{"store8 dil rbp", func(a *assembler) { a.store(1, rbp, -1, rdi) }, "40887dff", "mov byte ptr [rbp-0x1], dil"},
		{"store8 bpl", func(a *assembler) { a.store(1, r11, 0, rbp) }, "41882b", "mov byte ptr [r11], bpl"},
		{"store8 al", func(a *assembler) { a.store(1, r11, 0, rax) }, "418803", "mov byte ptr [r11], al"},
		{"store16", func(a *assembler) { a.store(2, r11, 0, r15) }, "6645893b", "mov word ptr [r11], r15w"},
		{"store32", func(a *assembler) { a.store(4, rbp, -4, rdx) }, "8955fc", "mov dword ptr [rbp-0x4], edx"},
		{"store64 r12 base", func(a *assembler) { a.store(8, r12, 8, rdi) }, "49897c2408", "mov qword ptr [r12+0x8], rdi"},
		{"storeImm8", func(a *assembler) { a.storeImm(1, r11, 0, 0x7f) }, "41c6037f", "mov byte ptr [r11], 0x7f"},
		{"storeImm16", func(a *assembler) { a.storeImm(2, rbp, -2, -2) }, "66c745fefeff", "mov word ptr [rbp-0x2], -0x2"},
		{"storeImm32", func(a *assembler) { a.storeImm(4, r11, 0, -1) }, "41c703ffffffff", "mov dword ptr [r11], -0x1"},
		{"storeImm64 sign", func(a *assembler) { a.storeImm(8, rbp, -8, -1) }, "48c745f8ffffffff", "mov qword ptr [rbp-0x8], -0x1"},
		{"lea", func(a *assembler) { a.lea(r11, rdi, 14) }, "4c8d5f0e", "lea r11, ptr [rdi+0xe]"},
		{"lea r13 base", func(a *assembler) { a.lea(r11, r13, 0) }, "4d8d5d00", "lea r11, ptr [r13]"},
		{"lea index", func(a *assembler) { a.leaIndex(r10, r12, r10, 8, 0x100) }, "4f8d94d400010000", "lea r10, ptr [r12+8*r10+0x100]"},
		{"imul rr", func(a *assembler) { a.imulRR(true, rdi, rsi) }, "480faffe", "imul rdi, rsi"},
		{"imul32 rr", func(a *assembler) { a.imulRR(false, r8, rcx) }, "440fafc1", "imul r8d, ecx"},
		{"imul imm8", func(a *assembler) { a.imulRI(true, rax, -2) }, "486bc0fe", "imul rax, rax, -0x2"},
		{"imul32 imm32", func(a *assembler) { a.imulRI(false, rax, 0xffff) }, "69c0ffff0000", "imul eax, eax, 0xffff"},
		{"imul3", func(a *assembler) { a.imulRRI(true, r10, r11, 48) }, "4d6bd330", "imul r10, r11, 0x30"},
		{"neg", func(a *assembler) { a.neg(true, r15) }, "49f7df", "neg r15"},
		{"neg32", func(a *assembler) { a.neg(false, rax) }, "f7d8", "neg eax"},
		{"div", func(a *assembler) { a.div(true, r11) }, "49f7f3", "div r11"},
		{"idiv32", func(a *assembler) { a.idiv(false, r11) }, "41f7fb", "idiv r11d"},
		{"cqo", func(a *assembler) { a.signExtendRAX(true) }, "4899", "cqo"},
		{"cdq", func(a *assembler) { a.signExtendRAX(false) }, "99", "cdq"},
		{"shl imm", func(a *assembler) { a.shiftRI(true, shShl, rdx, 63) }, "48c1e23f", "shl rdx, 0x3f"},
		{"sar32 imm", func(a *assembler) { a.shiftRI(false, shSar, r13, 1) }, "41c1fd01", "sar r13d, 0x1"},
		{"shr cl", func(a *assembler) { a.shiftRCL(true, shShr, r10) }, "49d3ea", "shr r10, cl"},
		{"shl32 cl", func(a *assembler) { a.shiftRCL(false, shShl, rcx) }, "d3e1", "shl ecx, cl"},
		{"rol16", func(a *assembler) { a.rol16by8(rsi) }, "66c1c608", "rol si, 0x8"},
		{"rol16 r8", func(a *assembler) { a.rol16by8(r8) }, "6641c1c008", "rol r8w, 0x8"},
		{"movzx16", func(a *assembler) { a.movzx16(r9, r9) }, "450fb7c9", "movzx r9d, r9w"},
		{"bswap32", func(a *assembler) { a.bswap(false, rbx) }, "0fcb", "bswap ebx"},
		{"bswap64", func(a *assembler) { a.bswap(true, r14) }, "490fce", "bswap r14"},
		{"movsx8 sil", func(a *assembler) { a.movsx(true, 1, rax, rsi) }, "480fbec6", "movsx rax, sil"},
		{"movsx8 32", func(a *assembler) { a.movsx(false, 1, rdx, rdi) }, "400fbed7", "movsx edx, dil"},
		{"movsx16", func(a *assembler) { a.movsx(true, 2, r13, rbx) }, "4c0fbfeb", "movsx r13, bx"},
		{"movsxd", func(a *assembler) { a.movsx(true, 4, rcx, r15) }, "4963cf", "movsxd rcx, r15d"},
		{"lock add", func(a *assembler) { a.lockOp(true, aluAdd, r11, 0, rsi) }, "f0490133", "lock add qword ptr [r11], rsi"},
		{"lock xor32", func(a *assembler) { a.lockOp(false, aluXor, r11, 0, r14) }, "f0453133", "lock xor dword ptr [r11], r14d"},
		{"xadd", func(a *assembler) { a.xadd(true, r11, 0, rdi) }, "f0490fc13b", "lock xadd qword ptr [r11], rdi"},
		{"xchg32", func(a *assembler) { a.xchg(false, r11, 0, rax) }, "418703", "xchg dword ptr [r11], eax"},
		{"cmpxchg", func(a *assembler) { a.cmpxchg(true, r11, 0, rdx) }, "f0490fb113", "lock cmpxchg qword ptr [r11], rdx"},
		{"push r8", func(a *assembler) { a.push(r8) }, "4150", "push r8"},
		{"pop rbx", func(a *assembler) { a.pop(rbx) }, "5b", "pop rbx"},
		{"ret", func(a *assembler) { a.ret() }, "c3", "ret"},
		{"jmp mem", func(a *assembler) { a.jmpMem(r12, 0x48) }, "41ff642448", "jmp qword ptr [r12+0x48]"},
		{"jmp mem r10", func(a *assembler) { a.jmpMem(r10, 32) }, "41ff6220", "jmp qword ptr [r10+0x20]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a assembler
			tc.emit(&a)
			if got := hex.EncodeToString(a.b); got != tc.bytes {
				t.Errorf("bytes: got %s, want %s", got, tc.bytes)
			}
			inst, err := x86asm.Decode(a.b, 64)
			if err != nil {
				t.Fatalf("x86asm cannot decode % x: %v", a.b, err)
			}
			if inst.Len != len(a.b) {
				t.Errorf("x86asm decodes %d of %d bytes", inst.Len, len(a.b))
			}
			if got := x86asm.IntelSyntax(inst, 0, nil); got != tc.text {
				t.Errorf("disassembly: got %q, want %q", got, tc.text)
			}
		})
	}
}

// TestJumpRelaxation checks that a jump uses rel8 while its target is
// within reach and rel32 past it, in both directions.
func TestJumpRelaxation(t *testing.T) {
	for _, tc := range []struct {
		pad      int
		backward bool
		want     string // Intel syntax of the jump
		size     int
	}{
		{pad: 127, want: "jnz .+127", size: 2},
		{pad: 128, want: "jnz .+128", size: 6},
		{pad: 126, backward: true, want: "jnz .-128", size: 2},
		{pad: 127, backward: true, want: "jnz .-133", size: 6},
	} {
		var a assembler
		var at int
		for pass := 0; ; pass++ {
			a.reset()
			l := a.newLabel()
			if tc.backward {
				a.bind(l)
				a.b = append(a.b, make([]byte, tc.pad)...)
				at = a.pos()
				a.jcc(condNE, l)
			} else {
				at = a.pos()
				a.jcc(condNE, l)
				a.b = append(a.b, make([]byte, tc.pad)...)
				a.bind(l)
			}
			if a.resolve() {
				break
			}
		}
		inst, err := x86asm.Decode(a.b[at:], 64)
		if err != nil {
			t.Fatal(err)
		}
		disp := int64(inst.Args[0].(x86asm.Rel))
		got := "jnz ."
		if disp >= 0 {
			got += "+"
		}
		got += itoa(disp)
		if got != tc.want || inst.Len != tc.size {
			t.Errorf("pad %d backward %v: got %s (%d bytes), want %s (%d bytes)", tc.pad, tc.backward, got, inst.Len, tc.want, tc.size)
		}
	}
}

func itoa(v int64) string {
	if v < 0 {
		return "-" + itoa(-v)
	}
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoa(v/10) + string(rune('0'+v%10))
}
