package vm

import (
	"math/rand/v2"
	"time"
)

var bootTime = time.Now()

// Ktime returns the clock of bpf_ktime_get_ns: monotonic nanoseconds since
// the process started. Control planes use it to age what programs stamp.
func Ktime() uint64 { return uint64(time.Since(bootTime)) }

// BaseHelpers returns a registry with the helpers that need no maps:
// bpf_ktime_get_ns (5, monotonic nanoseconds: Env.Clock when it is set), bpf_get_prandom_u32 (7) and
// bpf_get_smp_processor_id (8, the Env's CPU, that is the worker index).
// Package maps adds the map, tail call, trace and ring buffer helpers.
func BaseHelpers() *Helpers {
	hs := &Helpers{}
	for _, h := range []Helper{
		{ID: HelperKtimeGetNS, Clock: true, Fn: func(e *Env, _, _, _, _, _ uint64) (uint64, error) {
			if e.Clock != 0 {
				return e.Clock, nil
			}
			return Ktime(), nil
		}},
		{ID: HelperGetPrandomU32, Fn: func(*Env, uint64, uint64, uint64, uint64, uint64) (uint64, error) {
			return uint64(rand.Uint32()), nil
		}},
		{ID: HelperGetSmpProcessorID, Fn: func(e *Env, _, _, _, _, _ uint64) (uint64, error) {
			return uint64(uint32(e.CPU)), nil
		}},
	} {
		if err := hs.Register(h); err != nil {
			panic(err)
		}
	}
	return hs
}
