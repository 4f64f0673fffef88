package vm

import (
	"fmt"
)

// HelperFunc is a helper's implementation. It receives r1..r5 and returns
// r0. A non-nil error stops the run with a KindHelper fault naming the
// call; helpers report ordinary failures (a missing key, a full map) the
// way Linux does, as a negative errno in r0, not as an error.
//
// Helpers reach program memory only through env.Bytes, which checks the
// program's regions.
type HelperFunc func(env *Env, r1, r2, r3, r4, r5 uint64) (uint64, error)

// Helper is a function a program may call by number.
type Helper struct {
	ID   int32
	Name string
	Fn   HelperFunc
	// Clock marks a helper that returns Env.Clock whenever it is not zero
	// (bpf_ktime_get_ns of BaseHelpers): an engine may answer such a call
	// itself, without calling Fn.
	Clock bool
	// Op marks a map helper: Fn performs that operation as package maps'
	// helpers do (r1 a map handle, r2 a key pointer...), so that the
	// load-time analysis may trust what it returns and an engine may
	// perform it itself on maps that describe their layout (LayoutMap).
	Op HelperOp
}

// CallCost is what every helper call costs a run's budget on top of its
// instruction, whatever the helper does (it may charge more): the engines'
// own cost of a call, which a loop of cheap helper calls must pay.
const CallCost = 16

// Helper ids, numbered as in Linux.
const (
	HelperMapLookupElem     = 1
	HelperMapUpdateElem     = 2
	HelperMapDeleteElem     = 3
	HelperKtimeGetNS        = 5
	HelperTracePrintk       = 6
	HelperGetPrandomU32     = 7
	HelperGetSmpProcessorID = 8
	HelperTailCall          = 12
	HelperRingbufOutput     = 130
	HelperRingbufReserve    = 131
	HelperRingbufSubmit     = 132
	HelperRingbufDiscard    = 133
)

// linuxHelperNames names the Linux helpers error messages may mention.
var linuxHelperNames = map[int32]string{
	1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem",
	4: "bpf_probe_read", 5: "bpf_ktime_get_ns", 6: "bpf_trace_printk",
	7: "bpf_get_prandom_u32", 8: "bpf_get_smp_processor_id", 9: "bpf_skb_store_bytes",
	10: "bpf_l3_csum_replace", 11: "bpf_l4_csum_replace", 12: "bpf_tail_call",
	13: "bpf_clone_redirect", 14: "bpf_get_current_pid_tgid", 23: "bpf_redirect",
	25: "bpf_perf_event_output", 26: "bpf_skb_load_bytes", 44: "bpf_xdp_adjust_head",
	51: "bpf_redirect_map", 65: "bpf_xdp_adjust_tail", 87: "bpf_map_push_elem",
	88: "bpf_map_pop_elem", 89: "bpf_map_peek_elem", 113: "bpf_probe_read_kernel",
	130: "bpf_ringbuf_output", 131: "bpf_ringbuf_reserve", 132: "bpf_ringbuf_submit",
	133: "bpf_ringbuf_discard", 134: "bpf_ringbuf_query", 181: "bpf_loop",
}

// HelperName returns the Linux name of helper id, or "" if unknown.
func HelperName(id int32) string { return linuxHelperNames[id] }

// MaxHelperID bounds helper ids.
const MaxHelperID = 1 << 12

// Helpers is a registry of helpers by id. The zero value is empty; it is
// read-only once a program has been loaded with it.
type Helpers struct {
	byID []*Helper
}

// Register adds h, replacing any helper with the same id.
func (hs *Helpers) Register(h Helper) error {
	if h.ID <= 0 || h.ID >= MaxHelperID || h.Fn == nil {
		return fmt.Errorf("helper %d (%s): bad id or nil function", h.ID, h.Name)
	}
	if int(h.ID) >= len(hs.byID) {
		grown := make([]*Helper, h.ID+1)
		copy(grown, hs.byID)
		hs.byID = grown
	}
	if h.Name == "" {
		h.Name = HelperName(h.ID)
	}
	hs.byID[h.ID] = &h
	return nil
}

// Lookup returns the helper with the given id, or nil.
func (hs *Helpers) Lookup(id int32) *Helper {
	if hs == nil || id < 0 || int(id) >= len(hs.byID) {
		return nil
	}
	return hs.byID[id]
}

// Clone returns a copy that can be extended without changing hs.
func (hs *Helpers) Clone() *Helpers {
	c := &Helpers{}
	if hs != nil {
		c.byID = append([]*Helper(nil), hs.byID...)
	}
	return c
}

// unknownHelper formats the refusal of an unknown helper id.
func unknownHelper(id int32) string {
	if n := HelperName(id); n != "" {
		return fmt.Sprintf("unknown helper %d (%s): not available in vswitch", id, n)
	}
	return fmt.Sprintf("unknown helper %d", id)
}
