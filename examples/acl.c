//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * acl.c: an IPv4 source blocklist in front of the learning switch.
 *
 * IPv4 frames whose source address matches a prefix of the LPM trie
 * `blocklist` are dropped; the value of the matching prefix is a rule
 * number, and `drops` (per-CPU array) counts the drops of each rule. Every
 * other frame goes on to the program in slot 0 of the program array `next`,
 * by a tail call: initially `acl_learn`, the learning switch of learn.c
 * (same fdb map name, so hot-swapping learn.o for acl.o keeps the table).
 * If the slot is empty the frame floods.
 */
#include "vswitch.h"
#include "fdb.h"

#define MAX_RULES 64

struct ipv4_prefix {
	__u32 prefixlen; /* bits of addr that must match */
	__u8 addr[4];    /* network byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipv4_prefix);
	__type(value, __u32); /* rule number, < MAX_RULES */
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MAX_RULES);
} drops SEC(".maps");

int acl_learn(VSWITCH_CTX *md);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 4);
	__array(values, int(void *));
} next SEC(".maps") = {
	.values = {[0] = (void *)&acl_learn},
};

static __always_inline int acl_check(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;

	if (c->data + 14 > c->data_end)
		return VSWITCH_DROP;
	if (eth[12] == 0x08 && eth[13] == 0x00) {
		if (c->data + 14 + 20 > c->data_end)
			return VSWITCH_DROP;
		struct ipv4_prefix key = {.prefixlen = 32};
		__builtin_memcpy(key.addr, eth + 14 + 12, 4);
		__u32 *rule = bpf_map_lookup_elem(&blocklist, &key);
		if (rule) {
			__u32 r = *rule;
			__u64 *n = bpf_map_lookup_elem(&drops, &r);
			if (n)
				*n += 1; /* per-CPU: no atomic needed */
			return VSWITCH_DROP;
		}
	}
	bpf_tail_call(c->md, &next, 0);
	return VSWITCH_FLOOD; /* empty slot */
}

VSWITCH_PROGRAM(acl, acl_check)
VSWITCH_PROGRAM(acl_learn, fdb_forward)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
