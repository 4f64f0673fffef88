/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fdb.h: the L2 learning logic shared by learn.c and acl.c (which tail-calls
 * into it). Include after vswitch.h.
 */
#ifndef VSWITCH_FDB_H
#define VSWITCH_FDB_H

struct mac {
	__u8 addr[6];
};

struct fdb_entry {
	__u32 port;      /* where the MAC was last seen */
	__u32 pad;
	__u64 last_seen; /* bpf_ktime_get_ns() of the last frame from it */
};

/* The forwarding database: source MAC -> port. LRU, so that a full table
 * forgets the stations that have been quiet longest. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct mac);
	__type(value, struct fdb_entry);
	__uint(max_entries, 4096);
} fdb SEC(".maps");

static __always_inline int fdb_forward(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;
	struct fdb_entry *e;
	struct mac dst, src;

	if (c->data + 14 > c->data_end)
		return VSWITCH_DROP;
	__builtin_memcpy(dst.addr, eth, 6);
	__builtin_memcpy(src.addr, eth + 6, 6);

	/* Learn unicast sources. Only write when something changed, or the
	 * timestamp is more than a second old: most frames then only read. */
	if (!(src.addr[0] & 1)) {
		__u64 now = bpf_ktime_get_ns();
		e = bpf_map_lookup_elem(&fdb, &src);
		if (!e || e->port != c->ingress_port) {
			struct fdb_entry n = {.port = c->ingress_port, .last_seen = now};
			bpf_map_update_elem(&fdb, &src, &n, BPF_ANY);
		} else if (now - e->last_seen > 1000000000ULL) {
			e->last_seen = now;
		}
	}

	/* Broadcast and multicast destinations flood. */
	if (dst.addr[0] & 1)
		return VSWITCH_FLOOD;
	e = bpf_map_lookup_elem(&fdb, &dst);
	if (!e)
		return VSWITCH_FLOOD; /* unknown unicast */
	if (e->port == c->ingress_port || e->port >= VSWITCH_MAX_PORTS)
		return VSWITCH_DROP; /* already on the right segment */
	return e->port;
}

#endif /* VSWITCH_FDB_H */
