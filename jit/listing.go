package jit

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/govswitch/vswitch/asm"
)

// Listing is a compiled program's machine code and, for each eBPF
// instruction, where its native code starts: what `vswitch prog dump
// jited` prints.
type Listing struct {
	Code  []byte            // the machine code
	Insns []asm.Instruction // the program as loaded
	// Offsets[pc] is the offset in Code of the first native instruction of
	// slot pc, or -1 for the second slot of lddw. The code of slot pc ends
	// where the next slot's begins (ColdFrom for the last one). When the
	// load-time analysis proved context or frame accesses (which hold only
	// in frame runs, as the switch's), the program is compiled twice and
	// these are the offsets in the copy for frame runs; the generic copy
	// that other runs use lies in [Generic[0], Generic[1]).
	Offsets []int
	// Proven[pc] is set for the memory accesses the analysis proved in
	// bounds: they have no run-time check.
	Proven  []bool
	Generic [2]int
	// ColdFrom is where the out-of-line fault exits begin, StubsFrom the
	// code shared by the whole program (exits to Go, the slow-path memory
	// check, the return from local calls). Code before Offsets[0] is the
	// entry that sets up the registers.
	ColdFrom  int
	StubsFrom int
	// Stubs names the shared stubs by offset: fault_exit, helper_exit,
	// frame_done, frame_start, lookup_mapN, resume, nested_entry,
	// local_return, check_load, check_store.
	Stubs map[int]string
	// MapNames and Source, set by the caller where it knows them, name the
	// maps of lddw map[N] and give the C source line each slot starts
	// ("" where none starts), printed above the instructions.
	MapNames []string
	Source   []string
}

// Listing returns c's machine code and instruction offsets, or nil once c
// is closed.
func (c *Code) Listing() *Listing {
	code := c.image()
	if code == nil {
		return nil
	}
	return &Listing{
		Code:      code,
		Insns:     c.prog.Instructions(),
		Offsets:   c.offsets,
		Proven:    c.proven,
		Generic:   c.generic,
		ColdFrom:  c.coldFrom,
		StubsFrom: c.stubFrom,
		Stubs:     c.stubs,
	}
}

// Format writes the x86-64 disassembly (Intel syntax) interleaved with the
// eBPF instructions it came from, each preceded by its slot number.
func (l *Listing) Format(w io.Writer) error {
	var b strings.Builder
	names := map[uint64]string{}
	for pc, off := range l.Offsets {
		if off >= 0 {
			names[uint64(off)] = fmt.Sprintf("insn%d", pc)
		}
	}
	type section struct {
		from, to int
		title    string
		note     bool // the title alone
	}
	var secs []section
	entry := 0
	if l.Generic[1] > 0 {
		secs = append(secs, section{title: fmt.Sprintf(
			"; generic copy at %#x-%#x (%d bytes, not listed): the program for runs that are not frame runs, every context and frame access checked",
			l.Generic[0], l.Generic[1], l.Generic[1]-l.Generic[0]), note: true})
		entry = l.Generic[1]
	}
	if len(l.Offsets) > 0 && l.Offsets[0] > entry {
		secs = append(secs, section{from: entry, to: l.Offsets[0], title: "; entry"})
	}
	for pc := 0; pc < len(l.Offsets); pc++ {
		from := l.Offsets[pc]
		if from < 0 {
			continue
		}
		next := pc + 1
		for next < len(l.Offsets) && l.Offsets[next] < 0 {
			next++
		}
		to := l.ColdFrom
		if next < len(l.Offsets) {
			to = l.Offsets[next]
		}
		var nxt asm.Instruction
		if pc+1 < len(l.Insns) {
			nxt = l.Insns[pc+1]
		}
		title := fmt.Sprintf("; %d: %s", pc, asm.FormatNamed(l.Insns[pc], nxt, l.MapNames))
		if pc < len(l.Proven) && l.Proven[pc] {
			title += "    ; proven in bounds: no check"
		}
		if pc < len(l.Source) && l.Source[pc] != "" {
			title = "; " + l.Source[pc] + "\n" + title
		}
		secs = append(secs, section{from: from, to: to, title: title})
	}
	secs = append(secs, section{from: l.ColdFrom, to: l.StubsFrom, title: "; fault exits"})
	var stubs []int
	for off, name := range l.Stubs {
		names[uint64(off)] = name
		stubs = append(stubs, off)
	}
	sort.Ints(stubs)
	for k, off := range stubs {
		end := len(l.Code)
		if k+1 < len(stubs) {
			end = stubs[k+1]
		}
		secs = append(secs, section{from: off, to: end, title: "; " + l.Stubs[off]})
	}
	sym := func(addr uint64) (string, uint64) {
		if n, ok := names[addr]; ok {
			return n, addr
		}
		return "", 0
	}
	for _, s := range secs {
		if s.note {
			b.WriteString(s.title)
			b.WriteByte('\n')
			continue
		}
		if s.from >= s.to {
			continue
		}
		b.WriteString(s.title)
		b.WriteByte('\n')
		for off := s.from; off < s.to; {
			inst, err := x86asm.Decode(l.Code[off:s.to], 64)
			n := inst.Len
			text := ""
			if err != nil || n == 0 {
				n = 1
				text = fmt.Sprintf(".byte %#02x", l.Code[off])
			} else {
				text = x86asm.IntelSyntax(inst, uint64(off), sym)
			}
			fmt.Fprintf(&b, "%6x:  %-30s %s\n", off, hexBytes(l.Code[off:off+n]), text)
			off += n
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String returns what Format writes.
func (l *Listing) String() string {
	var b strings.Builder
	l.Format(&b)
	return b.String()
}

func hexBytes(b []byte) string {
	var s strings.Builder
	for k, v := range b {
		if k > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", v)
	}
	return s.String()
}
