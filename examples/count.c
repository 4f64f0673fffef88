//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * count.c: a counting hub. Counts frames and bytes per EtherType in the
 * per-CPU hash `ethertypes`, emits a record on the ring buffer `events` the
 * first time an EtherType is seen (tracked in the hash `seen`), and floods
 * every frame.
 */
#include "vswitch.h"

struct counters {
	__u64 frames;
	__u64 bytes;
};

struct new_ethertype {
	__u16 ethertype;    /* host byte order */
	__u16 pad;
	__u32 ingress_port; /* where it was first seen */
	__u64 timestamp;    /* bpf_ktime_get_ns() */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32); /* EtherType, host byte order */
	__type(value, struct counters);
	__uint(max_entries, 1024);
} ethertypes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32); /* ingress port of the first frame */
	__uint(max_entries, 1024);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

static __always_inline int count_frame(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;

	if (c->data + 14 > c->data_end)
		return VSWITCH_DROP;
	__u32 type = (eth[12] << 8) | eth[13];
	__u64 len = c->data_end - c->data;

	struct counters *n = bpf_map_lookup_elem(&ethertypes, &type);
	if (n) {
		n->frames += 1;
		n->bytes += len;
	} else {
		struct counters first = {.frames = 1, .bytes = len};
		bpf_map_update_elem(&ethertypes, &type, &first, BPF_NOEXIST);
	}

	/* BPF_NOEXIST succeeds exactly once per EtherType, on any CPU. */
	if (bpf_map_update_elem(&seen, &type, &c->ingress_port, BPF_NOEXIST) == 0) {
		struct new_ethertype rec = {
			.ethertype = type,
			.ingress_port = c->ingress_port,
			.timestamp = bpf_ktime_get_ns(),
		};
		bpf_ringbuf_output(&events, &rec, sizeof(rec), 0);
	}
	return VSWITCH_FLOOD;
}

VSWITCH_PROGRAM(count, count_frame)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
