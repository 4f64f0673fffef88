//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.c: a test program (report) for map output. Counts frames per ingress port
 * in the per-CPU array `counts` and sends a record described by BTF
 * (__type(value, struct event) on the ring buffer) for every frame on
 * `events`. Floods.
 *
 * Rebuild (from this folder; tests never need clang):
 *   clang -O2 -g -target bpf -Wall -Werror -I../../../examples \
 *     -fdebug-prefix-map=$PWD=. -c events.c -o events.o
 */
#include "vswitch.h"

struct counter {
	__u64 frames;
	__u64 bytes;
	__u8 last_mac[6];
};

struct event {
	__u32 port;
	__u16 len;
	__u8 dst[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 4);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__type(value, struct event);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

static __always_inline int events_frame(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;
	__u32 port = c->ingress_port & 3;

	if (c->data + 14 > c->data_end)
		return VSWITCH_DROP;
	struct counter *n = bpf_map_lookup_elem(&counts, &port);
	if (n) {
		n->frames += 1;
		n->bytes += c->data_end - c->data;
		__builtin_memcpy(n->last_mac, eth + 6, 6);
	}
	struct event e = {.port = c->ingress_port, .len = c->data_end - c->data};
	__builtin_memcpy(e.dst, eth, 6);
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return VSWITCH_FLOOD;
}

VSWITCH_PROGRAM(report, events_frame)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
