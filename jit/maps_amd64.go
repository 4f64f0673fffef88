//go:build linux

package jit

import (
	"math/bits"

	"github.com/govswitch/vswitch/vm"
)

// Map lookups in machine code. bpf_map_lookup_elem on an array, per-CPU
// array, hash, per-CPU hash or LRU hash whose handle the analysis found in
// r1 (vm.Program.CallMap) is done without leaving the machine code, over
// the map's own memory as its vm.MapLayout describes it: an array lookup
// is a bounds check and an address computation (as the kernel inlines
// it); a hash lookup hashes the key and walks the bucket's chain as the
// map's lock-free LookupAddr does, in an out-of-line stub per map. Whatever
// the machine code does not handle goes to the helper as before: a key
// pointer the check refuses (the helper faults), a worker index past a
// per-CPU map's CPUs, a chain that changed under the walk (the helper
// retries and locks). The charge to the budget is the helper's.

// nullsBit ends a hash chain (package maps).
const nullsBit = 1 << 31

// mixHash is the last multiplier of the maps' hash (package maps, htab.hash).
const mixHash = 0x9e3779b97f4a7c15

// recHdr is the number of header words of a hash record (package maps).
const recHdr = 2

// inlineLookup reports whether a lookup in a map of layout l is done in
// machine code.
func inlineLookup(l *vm.MapLayout) bool {
	if l == nil || l.Stride == 0 || l.Stride&(l.Stride-1) != 0 || l.CPUs < 1 {
		return false
	}
	switch l.Kind {
	case vm.MapArray, vm.MapPerCPUArray:
		return l.KeySize == 4 && uint64(l.MaxEntries)*l.Stride < 1<<31
	case vm.MapHash, vm.MapPerCPUHash, vm.MapLRUHash:
		kw := (l.KeySize + 7) / 8
		return kw <= maxInlineKeyWords && l.RecWords >= recHdr+uint64(kw) && l.RecWords*8 < 1<<31 &&
			l.MaxEntries < nullsBit && l.Mask < 1<<31
	}
	return false
}

// mapLookup emits the lookup of map k at the helper call at pc, whose
// layout inlineLookup accepted. It leaves r0 and goes on at the next
// instruction, or jumps to slow (the helper exit) for what it leaves to
// the helper.
func (c *compiler) mapLookup(pc, k int, l *vm.MapLayout, slow label) {
	a := &c.a
	// The key pointer must be readable for KeySize bytes, as the helper
	// checks it (env.Bytes): unless proven, the stack inline, else the
	// region search; a refused key goes to the helper, which faults.
	a.movRR(true, addrReg, regMap[2])
	if pr := c.prog.KeyProof(pc); !(pr == vm.ProvenAlways || pr == vm.ProvenFrame && c.inFrame) {
		ok := a.newLabel()
		n := int32(l.KeySize)
		if n <= vm.ProgramStackSize {
			a.movRR(true, tmp, addrReg)
			a.aluRM(aluSub, tmp, regCtx, offStackBase)
			a.aluRI(true, aluCmp, tmp, vm.ProgramStackSize-n+1)
			a.jcc(condB, ok)
		}
		a.movImm32(tmp, uint32(n))
		a.call(c.checkR)
		c.usedR = true
		a.testRR(false, tmp, tmp)
		a.jcc(condNE, slow)
		a.bind(ok)
	}
	r0 := regMap[0]
	switch l.Kind {
	case vm.MapArray, vm.MapPerCPUArray:
		null, done := a.newLabel(), a.newLabel()
		a.load(4, r0, addrReg, 0)
		a.aluRI(false, aluCmp, r0, int32(l.MaxEntries))
		a.jcc(condAE, null)
		if l.Kind == vm.MapPerCPUArray {
			a.loadQ(tmp, regCtx, offCPU)
			a.movImm64(addrReg, uint64(l.CPUs))
			a.aluRR(true, aluCmp, tmp, addrReg)
			a.jcc(condAE, slow)
			a.imulRRI(true, tmp, tmp, int32(uint64(l.MaxEntries)*l.Stride))
		}
		a.shiftRI(true, shShl, r0, uint8(bits.TrailingZeros64(l.Stride)))
		a.movImm64(addrReg, l.Values)
		a.aluRR(true, aluAdd, r0, addrReg)
		if l.Kind == vm.MapPerCPUArray {
			a.aluRR(true, aluAdd, r0, tmp)
		}
		a.jmp(done)
		a.bind(null)
		a.aluRR(false, aluXor, r0, r0)
		a.bind(done)
	default:
		a.call(c.lookupStub(k))
		a.testRR(false, tmp, tmp)
		a.jcc(condNE, slow)
	}
	if l.LookupCost > 0 {
		c.charge(l.LookupCost)
	}
	a.jmp(c.pcLabel[pc+1])
}

// charge takes cost from the run's budget, as vm.SubBudget: the budget
// left, or 0. It uses r10 and r11.
func (c *compiler) charge(cost uint64) {
	a := &c.a
	a.loadQ(tmp, regCtx, offBudget)
	a.movImm64(addrReg, cost)
	a.aluRR(true, aluSub, tmp, addrReg)
	// mov, not xor, which would clear the borrow the cmov tests: a budget
	// below the cost must become 0, not wrap around to 2^64-cost.
	a.movImm32(addrReg, 0)
	a.cmov(condB, tmp, addrReg)
	a.storeQ(regCtx, offBudget, tmp)
}

// lookupStub returns the label of map k's hash lookup stub, emitted with
// the other stubs.
func (c *compiler) lookupStub(k int) label {
	if l, ok := c.lookups[k]; ok {
		return l
	}
	l := c.a.newLabel()
	c.lookups[k] = l
	c.lookupOrder = append(c.lookupOrder, k)
	return l
}

// hashStub emits the lookup stub of a hash map of layout l: r11 holds the
// key's address; it returns r0 = the value's address or 0 with r10 = 0, or
// r10 = 1 when the helper must do the lookup (the walk met a record that
// changed, as htab.walk retries). It preserves every other register.
func (c *compiler) hashStub(entry label, l *vm.MapLayout) {
	a := &c.a
	a.bind(entry)
	saved := []xreg{rcx, rdx, rsi, rdi, r8}
	for _, r := range saved {
		a.push(r)
	}
	kw := int32((l.KeySize + 7) / 8)
	// The key's words, the last one padded with zeros, read without
	// touching a byte past the key.
	for i := int32(0); i < kw; i++ {
		rem := int32(l.KeySize) - 8*i
		if rem >= 8 {
			a.loadQ(rax, addrReg, 8*i)
		} else {
			c.loadPartial(rax, addrReg, 8*i, rem)
		}
		a.storeQ(regCtx, offKeyq+8*i, rax)
	}
	// The hash (htab.hash): rcx = x.
	a.movImm64(rcx, l.Seed[0]^uint64(kw))
	for i := int32(0); i < kw; i += 2 {
		a.loadQ(rax, regCtx, offKeyq+8*i)
		a.movImm64(rdi, l.Seed[1])
		a.aluRR(true, aluXor, rax, rdi)
		a.aluRR(true, aluXor, rax, rcx)
		a.movImm64(rdi, l.Seed[2])
		if i+1 < kw {
			a.aluRM(aluXor, rdi, regCtx, offKeyq+8*(i+1))
		}
		a.mul(true, rdi)
		a.movRR(true, rcx, rdx)
		a.aluRR(true, aluXor, rcx, rax)
	}
	a.movRR(true, rax, rcx)
	a.movImm64(rdi, l.Seed[2])
	a.aluRR(true, aluXor, rax, rdi)
	a.movImm64(rdi, l.Seed[1]^mixHash)
	a.mul(true, rdi)
	a.aluRR(true, aluXor, rax, rdx)
	// rsi = bucket, rcx = tag.
	a.movRR(true, rsi, rax)
	a.movImm64(rdi, l.Mask)
	a.aluRR(true, aluAnd, rsi, rdi)
	a.movRR(true, rcx, rax)
	a.shiftRI(true, shShr, rcx, 32)
	// The walk (htab.walk): r10 = link, r8 = steps, rdi = record, rdx = meta.
	loop, skip, end, found, retry, out := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	a.movImm64(rdi, l.Heads)
	a.leaIndex(rdi, rdi, rsi, 4, 0)
	a.load(4, tmp, rdi, 0)
	a.aluRR(false, aluXor, r8, r8)
	a.bind(loop)
	a.testRI(false, tmp, -1<<31)
	a.jcc(condNE, end)
	a.aluRI(true, aluCmp, r8, int32(l.MaxEntries))
	a.jcc(condA, retry)
	a.aluRI(true, aluCmp, tmp, int32(l.MaxEntries))
	a.jcc(condAE, retry)
	a.imulRRI(true, rdi, tmp, int32(l.RecWords*8))
	a.movImm64(rax, l.Recs)
	a.aluRR(true, aluAdd, rdi, rax)
	a.loadQ(rdx, rdi, 0)
	a.load(4, rax, rdi, 8) // the next link
	a.testRI(false, rdx, 1)
	a.jcc(condNE, skip)
	a.movRR(true, addrReg, rdx)
	a.shiftRI(true, shShr, addrReg, 32)
	a.aluRR(false, aluCmp, addrReg, rcx)
	a.jcc(condNE, skip)
	for i := int32(0); i < kw; i++ {
		a.loadQ(addrReg, rdi, 8*(recHdr+i))
		a.aluRM(aluCmp, addrReg, regCtx, offKeyq+8*i)
		a.jcc(condNE, skip)
	}
	a.aluRM(aluCmp, rdx, rdi, 0)
	a.jcc(condNE, retry)
	a.jmp(found)
	a.bind(skip)
	a.movRR(false, tmp, rax)
	a.aluRI(true, aluAdd, r8, 1)
	a.jmp(loop)
	// The end of the chain must be this bucket's marker, or the walk
	// strayed into another chain.
	a.bind(end)
	a.movRR(false, rax, rsi)
	a.aluRI(false, aluOr, rax, -1<<31)
	a.aluRR(false, aluCmp, tmp, rax)
	a.jcc(condNE, retry)
	a.aluRR(false, aluXor, rax, rax)
	a.aluRR(false, aluXor, tmp, tmp)
	a.jmp(out)
	a.bind(found)
	if l.Kind == vm.MapLRUHash {
		// bpf_lru_node_set_ref: a store only when the bit is clear.
		noRef := a.newLabel()
		a.movImm64(rax, l.Refs)
		a.leaIndex(rax, rax, tmp, 4, 0)
		a.load(4, rdx, rax, 0)
		a.testRR(false, rdx, rdx)
		a.jcc(condNE, noRef)
		a.storeImm(4, rax, 0, 1)
		a.bind(noRef)
	}
	a.movRR(true, rax, tmp)
	if l.Kind == vm.MapPerCPUHash {
		a.loadQ(rdx, regCtx, offCPU)
		a.movImm64(rdi, uint64(l.CPUs))
		a.aluRR(true, aluCmp, rdx, rdi)
		a.jcc(condAE, retry)
		a.movImm64(rdi, uint64(l.MaxEntries))
		a.imulRR(true, rdx, rdi)
		a.aluRR(true, aluAdd, rax, rdx)
	}
	a.shiftRI(true, shShl, rax, uint8(bits.TrailingZeros64(l.Stride)))
	a.movImm64(rdi, l.Values)
	a.aluRR(true, aluAdd, rax, rdi)
	a.aluRR(false, aluXor, tmp, tmp)
	a.jmp(out)
	a.bind(retry)
	a.movImm32(tmp, 1)
	a.bind(out)
	for k := len(saved) - 1; k >= 0; k-- {
		a.pop(saved[k])
	}
	a.ret()
}

// loadPartial loads the n < 8 bytes at base+disp into dst, zero-extended,
// without touching the bytes after them. It uses rdx.
func (c *compiler) loadPartial(dst, base xreg, disp, n int32) {
	a := &c.a
	a.aluRR(false, aluXor, dst, dst)
	at := int32(0)
	for _, size := range []int32{4, 2, 1} {
		if n&size == 0 {
			continue
		}
		if at == 0 {
			a.load(int(size), dst, base, disp)
		} else {
			a.load(int(size), rdx, base, disp+at)
			a.shiftRI(true, shShl, rdx, uint8(8*at))
			a.aluRR(true, aluOr, dst, rdx)
		}
		at += size
	}
}
