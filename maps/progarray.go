package maps

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/govswitch/vswitch/vm"
)

// ProgramArray is a program array (BPF_MAP_TYPE_PROG_ARRAY), the table of
// bpf_tail_call. Its values are programs: programs cannot look them up or
// write them, so it exposes no memory to them. The control plane sets
// slots with SetProgram, or with Update and a 4-byte program id that the
// resolver (SetResolver) turns into a program.
//
// Slots are swapped atomically: a tail call runs either the old or the new
// program, never a mix.
type ProgramArray struct {
	spec     Spec
	slots    []atomic.Pointer[progSlot]
	resolver atomic.Pointer[ProgramResolver]
	closed   atomic.Bool
}

// ProgramResolver returns the program with the given id (the daemon's
// program table).
type ProgramResolver func(id uint32) (*vm.Program, error)

type progSlot struct {
	prog *vm.Program
	id   uint32
}

func newProgramArray(spec Spec) *ProgramArray {
	return &ProgramArray{spec: spec, slots: make([]atomic.Pointer[progSlot], spec.MaxEntries)}
}

// SetResolver sets how Update turns program ids into programs.
func (a *ProgramArray) SetResolver(r ProgramResolver) { a.resolver.Store(&r) }

// SetProgram puts p (nil: nothing) in slot idx. Lookup reports id 0 for it.
func (a *ProgramArray) SetProgram(idx uint32, p *vm.Program) error {
	return a.set(idx, p, 0)
}

// SetProgramID is SetProgram recording the program's id for Lookup.
func (a *ProgramArray) SetProgramID(idx uint32, p *vm.Program, id uint32) error {
	return a.set(idx, p, id)
}

func (a *ProgramArray) set(idx uint32, p *vm.Program, id uint32) error {
	if idx >= a.spec.MaxEntries {
		return ErrFull
	}
	if p == nil {
		a.slots[idx].Store(nil)
		return nil
	}
	a.slots[idx].Store(&progSlot{prog: p, id: id})
	return nil
}

// Program returns the program in slot idx, or nil. It does not allocate.
func (a *ProgramArray) Program(idx uint32) *vm.Program {
	if idx >= a.spec.MaxEntries {
		return nil
	}
	if s := a.slots[idx].Load(); s != nil {
		return s.prog
	}
	return nil
}

func (a *ProgramArray) Spec() Spec                         { return a.spec }
func (a *ProgramArray) Regions() []vm.Region               { return nil }
func (a *ProgramArray) DirectValue(uint32) (uint64, error) { return 0, ErrNotSupported }
func (a *ProgramArray) Close() error                       { a.closed.Store(true); return nil }

// LookupAddr is always 0: programs cannot read a program array.
func (a *ProgramArray) LookupAddr([]byte, int) uint64 { return 0 }

// UpdateFrom fails: programs cannot write a program array.
func (a *ProgramArray) UpdateFrom([]byte, []byte, uint64, int) error { return ErrNotSupported }

func (a *ProgramArray) index(key []byte) (uint32, error) {
	if len(key) != 4 {
		return 0, ErrBadKey
	}
	return binary.NativeEndian.Uint32(key), nil
}

// Lookup returns the id of the program in the slot (4 bytes).
func (a *ProgramArray) Lookup(key []byte) ([]byte, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	idx, err := a.index(key)
	if err != nil {
		return nil, err
	}
	if idx >= a.spec.MaxEntries {
		return nil, ErrKeyNotExist
	}
	s := a.slots[idx].Load()
	if s == nil {
		return nil, ErrKeyNotExist
	}
	return binary.NativeEndian.AppendUint32(nil, s.id), nil
}

// Update stores the program whose id is value. As in Linux, only
// UpdateAny is accepted.
func (a *ProgramArray) Update(key, value []byte, flags uint64) error {
	if a.closed.Load() {
		return ErrClosed
	}
	idx, err := a.index(key)
	if err != nil {
		return err
	}
	if len(value) != 4 {
		return ErrBadValue
	}
	if flags != UpdateAny {
		return errFDArrayFlag
	}
	if idx >= a.spec.MaxEntries {
		return ErrFull
	}
	r := a.resolver.Load()
	if r == nil {
		return fmt.Errorf("program array %s: no program resolver set: %w", a.spec.Name, ErrNotSupported)
	}
	id := binary.NativeEndian.Uint32(value)
	p, err := (*r)(id)
	if err != nil {
		return fmt.Errorf("program %d: %w", id, err)
	}
	if p == nil {
		return fmt.Errorf("program %d: not found: %w", id, ErrBadValue)
	}
	return a.set(idx, p, id)
}

// Delete empties a slot.
func (a *ProgramArray) Delete(key []byte) error {
	if a.closed.Load() {
		return ErrClosed
	}
	idx, err := a.index(key)
	if err != nil {
		return err
	}
	if idx >= a.spec.MaxEntries || a.slots[idx].Swap(nil) == nil {
		return ErrKeyNotExist
	}
	return nil
}

// NextKey iterates over every index, filled or not, as Linux does for
// arrays.
func (a *ProgramArray) NextKey(key []byte) ([]byte, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	next := uint32(0)
	if key != nil {
		idx, err := a.index(key)
		if err != nil {
			return nil, err
		}
		if idx < a.spec.MaxEntries {
			if idx == a.spec.MaxEntries-1 {
				return nil, ErrKeyNotExist
			}
			next = idx + 1
		}
	}
	return binary.NativeEndian.AppendUint32(nil, next), nil
}
