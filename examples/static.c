//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * static.c: static forwarding. The destination port of a unicast frame is
 * ports[last byte of the destination MAC], an array map the operator fills
 * from the CLI:
 *
 *	vswitch map update ports key json 5 value json '{"port": 2, "valid": 1}'
 *
 * Broadcast and multicast frames flood. Entries that are not valid take
 * `unknown_action` (global data, .data, VSWITCH_FLOOD unless changed). The
 * program counts the frames it saw in .bss, and only considers frames of at
 * least `min_len` bytes (.rodata).
 */
#include "vswitch.h"

struct port_entry {
	__u32 port;  /* 0..253 */
	__u32 valid; /* 0: not configured */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct port_entry);
	__uint(max_entries, 256);
} ports SEC(".maps");

volatile __u32 unknown_action = VSWITCH_FLOOD; /* .data */
volatile __u64 frames;                         /* .bss */
const volatile __u32 min_len = 14;             /* .rodata */

static __always_inline int static_forward(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;

	__sync_fetch_and_add(&frames, 1);
	if (c->data + 14 > c->data_end || c->data + min_len > c->data_end)
		return VSWITCH_DROP;
	if (eth[0] & 1)
		return VSWITCH_FLOOD;

	__u32 key = eth[5];
	struct port_entry *e = bpf_map_lookup_elem(&ports, &key);
	if (!e || !e->valid)
		return unknown_action;
	if (e->port >= VSWITCH_MAX_PORTS)
		return VSWITCH_DROP;
	return e->port;
}

VSWITCH_PROGRAM(static_fwd, static_forward)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
