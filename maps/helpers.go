package maps

import (
	"bytes"
	"errors"

	"github.com/govswitch/vswitch/vm"
)

// Faults of helpers: the run stops with a vm.KindHelper error wrapping one
// of these. They are what the kernel's verifier would have refused.
var (
	ErrBadHandle  = errors.New("not a map handle of this program")
	ErrBadPointer = errors.New("pointer argument outside the program's memory")
	ErrBadMapType = errors.New("helper does not apply to this map type")
	ErrNotRecord  = errors.New("not a ring buffer record reserved by this run")
)

// RegisterHelpers adds the helpers of this package to hs, with Linux ids:
// 1 bpf_map_lookup_elem, 2 bpf_map_update_elem, 3 bpf_map_delete_elem,
// 6 bpf_trace_printk, 12 bpf_tail_call, 130 bpf_ringbuf_output,
// 131 bpf_ringbuf_reserve, 132 bpf_ringbuf_submit, 133 bpf_ringbuf_discard.
//
// Failures Linux reports to the program (a missing key, a full map, bad
// flags) return a negative errno. Arguments the kernel's verifier would
// have refused (a handle that is not one of the program's maps, a key or
// value pointer outside the program's memory, a record that was not
// reserved) stop the run with a fault.
func RegisterHelpers(hs *vm.Helpers) error {
	for _, h := range []vm.Helper{
		{ID: vm.HelperMapLookupElem, Fn: mapLookupElem, Op: vm.OpMapLookup},
		{ID: vm.HelperMapUpdateElem, Fn: mapUpdateElem, Op: vm.OpMapUpdate},
		{ID: vm.HelperMapDeleteElem, Fn: mapDeleteElem, Op: vm.OpMapDelete},
		{ID: vm.HelperTracePrintk, Fn: tracePrintk},
		{ID: vm.HelperTailCall, Fn: tailCall},
		{ID: vm.HelperRingbufOutput, Fn: ringbufOutput},
		{ID: vm.HelperRingbufReserve, Fn: ringbufReserve},
		{ID: vm.HelperRingbufSubmit, Fn: ringbufSubmit},
		{ID: vm.HelperRingbufDiscard, Fn: ringbufDiscard},
	} {
		if err := hs.Register(h); err != nil {
			return err
		}
	}
	return nil
}

// Helpers returns vm.BaseHelpers with this package's helpers added: every
// helper a forwarding program built against libbpf's headers may call.
func Helpers() *vm.Helpers {
	hs := vm.BaseHelpers()
	if err := RegisterHelpers(hs); err != nil {
		panic(err)
	}
	return hs
}

// CompatVALEHelpers returns Helpers with VALE-BPF's numbering of the map
// helpers: 1 update, 2 lookup, 3 delete (same arguments as Linux's). The
// other ids are Linux's.
func CompatVALEHelpers() *vm.Helpers {
	hs := Helpers()
	for _, h := range []vm.Helper{
		{ID: 1, Name: "vale_bpf_map_update_elem", Fn: mapUpdateElem, Op: vm.OpMapUpdate},
		{ID: 2, Name: "vale_bpf_map_lookup_elem", Fn: mapLookupElem, Op: vm.OpMapLookup},
		{ID: 3, Name: "vale_bpf_map_delete_elem", Fn: mapDeleteElem, Op: vm.OpMapDelete},
	} {
		if err := hs.Register(h); err != nil {
			panic(err)
		}
	}
	return hs
}

// mapOf resolves a map handle the program passed.
func mapOf(env *vm.Env, handle uint64) (Map, error) {
	vmm, ok := env.Map(handle)
	if !ok {
		return nil, ErrBadHandle
	}
	m, ok := vmm.(Map)
	if !ok {
		return nil, ErrBadMapType
	}
	return m, nil
}

// sizes returns the key size and the size of a value a program passes.
func sizes(m Map) (uint64, uint64) {
	switch m := m.(type) {
	case *htab:
		return uint64(m.spec.KeySize), uint64(m.spec.ValueSize)
	case *array:
		return 4, uint64(m.spec.ValueSize)
	}
	s := m.Spec()
	return uint64(s.KeySize), uint64(s.ValueSize)
}

func mapLookupElem(env *vm.Env, r1, r2, _, _, _ uint64) (uint64, error) {
	vmm, ok := env.Map(r1)
	if !ok {
		return 0, ErrBadHandle
	}
	// Concrete types first: a type switch on them is a pointer compare,
	// the assertion to the Map interface an itab lookup.
	switch m := vmm.(type) {
	case *htab:
		key, ok := env.Bytes(r2, uint64(m.spec.KeySize), false)
		if !ok {
			return 0, ErrBadPointer
		}
		env.Charge(costProbe + uint64(m.kw))
		return m.LookupAddr(key, env.CPU), nil
	case *array:
		key, ok := env.Bytes(r2, 4, false)
		if !ok {
			return 0, ErrBadPointer
		}
		return m.LookupAddr(key, env.CPU), nil
	}
	m, err := mapOf(env, r1)
	if err != nil {
		return 0, err
	}
	ks, _ := sizes(m)
	key, ok := env.Bytes(r2, ks, false)
	if !ok {
		return 0, ErrBadPointer
	}
	env.Charge(opCost(m, opLookup))
	return m.LookupAddr(key, env.CPU), nil
}

func mapUpdateElem(env *vm.Env, r1, r2, r3, r4, _ uint64) (uint64, error) {
	vmm, ok := env.Map(r1)
	if !ok {
		return 0, ErrBadHandle
	}
	var m Map
	switch c := vmm.(type) {
	case *htab:
		m = c
	case *array:
		m = c
	default:
		var err error
		if m, err = mapOf(env, r1); err != nil {
			return 0, err
		}
	}
	ks, vs := sizes(m)
	key, ok := env.Bytes(r2, ks, false)
	if !ok {
		return 0, ErrBadPointer
	}
	value, ok := env.Bytes(r3, vs, false)
	if !ok {
		return 0, ErrBadPointer
	}
	env.Charge(opCost(m, opUpdate))
	if err := m.UpdateFrom(key, value, r4, env.CPU); err != nil {
		return negErrno(err), nil
	}
	return 0, nil
}

func mapDeleteElem(env *vm.Env, r1, r2, _, _, _ uint64) (uint64, error) {
	m, err := mapOf(env, r1)
	if err != nil {
		return 0, err
	}
	switch m.(type) {
	case *ProgramArray, *RingBuffer:
		return 0, ErrBadMapType
	}
	if m.Spec().Flags&FlagRdOnlyProg != 0 {
		return neg(EPERM), nil
	}
	ks, _ := sizes(m)
	key, ok := env.Bytes(r2, ks, false)
	if !ok {
		return 0, ErrBadPointer
	}
	env.Charge(opCost(m, opDelete))
	if err := m.Delete(key); err != nil {
		return negErrno(err), nil
	}
	return 0, nil
}

// tracePrintk is bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3): it
// appends a line to the program's TraceLog (TraceLogOf) and returns its
// length, or -EINVAL for a format it does not accept.
func tracePrintk(env *vm.Env, r1, r2, r3, r4, r5 uint64) (uint64, error) {
	if r2 == 0 || r2 > 1024 {
		return neg(EINVAL), nil
	}
	f, ok := env.Bytes(r1, r2, false)
	if !ok {
		return 0, ErrBadPointer
	}
	end := bytes.IndexByte(f, 0)
	if end < 0 {
		return neg(EINVAL), nil // Linux wants the format NUL-terminated
	}
	s, ok := formatTrace(f[:end], [3]uint64{r3, r4, r5})
	if !ok {
		return neg(EINVAL), nil
	}
	env.Charge(costTrace)
	p := env.Program()
	n := len(s)
	if len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	TraceLogOf(p).Add(TraceLine{Time: timeNow(), CPU: env.CPU, Program: p.Name, Text: s})
	return uint64(n), nil
}

// tailCall is bpf_tail_call(ctx, prog_array, index): on success the
// engine replaces the running program when the helper returns; on failure
// (empty slot, index out of range, 33 tail calls done) the program goes on
// with r0 = -ENOENT or -E2BIG.
func tailCall(env *vm.Env, _, r2, r3, _, _ uint64) (uint64, error) {
	vmm, ok := env.Map(r2)
	if !ok {
		return 0, ErrBadHandle
	}
	a, ok := vmm.(*ProgramArray)
	if !ok {
		return 0, ErrBadMapType
	}
	p := a.Program(uint32(r3))
	if p == nil {
		return neg(ENOENT), nil
	}
	if !env.TailCall(p) {
		return neg(E2BIG), nil
	}
	return 0, nil
}

func ringOf(env *vm.Env, handle uint64) (*RingBuffer, error) {
	vmm, ok := env.Map(handle)
	if !ok {
		return nil, ErrBadHandle
	}
	r, ok := vmm.(*RingBuffer)
	if !ok {
		return nil, ErrBadMapType
	}
	return r, nil
}

// ringbufOutput is bpf_ringbuf_output(ringbuf, data, size, flags): 0, or
// -EAGAIN when the record does not fit (counted as a drop).
func ringbufOutput(env *vm.Env, r1, r2, r3, r4, _ uint64) (uint64, error) {
	r, err := ringOf(env, r1)
	if err != nil {
		return 0, err
	}
	if r4&^(RingNoWakeup|RingForceWakeup) != 0 {
		return neg(EINVAL), nil
	}
	data, ok := env.Bytes(r2, r3, false)
	if !ok {
		return 0, ErrBadPointer
	}
	env.Charge(costProbe + uint64(words(len(data)))*costWord)
	if !r.Output(data, r4) {
		return neg(EAGAIN), nil
	}
	return 0, nil
}

// ringbufReserve is bpf_ringbuf_reserve(ringbuf, size, flags): the address
// of size writable bytes, or 0 (NULL) when they do not fit.
func ringbufReserve(env *vm.Env, r1, r2, r3, _, _ uint64) (uint64, error) {
	r, err := ringOf(env, r1)
	if err != nil {
		return 0, err
	}
	if r3 != 0 {
		return 0, nil
	}
	a := r.reserve(r2)
	if a == 0 {
		return 0, nil
	}
	if !env.AddRegion(vm.Region{Start: a, Size: r2, Writable: true}) {
		r.commit(a, true, RingNoWakeup)
		r.discarded.Add(^uint64(0))
		r.dropped.Add(1)
		return 0, nil
	}
	return a, nil
}

func ringbufCommit(env *vm.Env, addr, flags uint64, discard bool) (uint64, error) {
	if !env.RemoveRegion(addr) {
		return 0, ErrNotRecord
	}
	for _, m := range env.Program().Maps() {
		if r, ok := m.(*RingBuffer); ok && r.contains(addr) {
			if !r.commit(addr, discard, flags) {
				return 0, ErrNotRecord
			}
			return 0, nil
		}
	}
	return 0, ErrNotRecord
}

func ringbufSubmit(env *vm.Env, r1, r2, _, _, _ uint64) (uint64, error) {
	return ringbufCommit(env, r1, r2, false)
}

func ringbufDiscard(env *vm.Env, r1, r2, _, _, _ uint64) (uint64, error) {
	return ringbufCommit(env, r1, r2, true)
}
