//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vlan.c: a VLAN-aware learning switch.
 *
 * A frame belongs to the VLAN of its 802.1Q tag or, untagged, to the native
 * VLAN of its ingress port (port_vlan). A port may send and receive the
 * VLANs whose member set (vlan_members) holds it; frames from a port that is
 * not a member of their VLAN are dropped. Stations are learned per
 * (VLAN, MAC), so the same MAC may live in two VLANs.
 *
 * Flooding (broadcast, multicast, unknown unicast) must reach only the ports
 * of the frame's VLAN. A program returns one port or VSWITCH_FLOOD, so it
 * names the subset through a flood group: before returning VSWITCH_FLOOD it
 * copies the VLAN's member set into its CPU's slot of the map
 * `vswitch_flood`, which the switch consults (see vswitch.h and
 * docs/programs.md).
 *
 * Frames leave as they came: this program does not push or pop tags (one
 * decision covers every destination; per-port egress tagging would need an
 * egress hook).
 */
#include "vswitch.h"

struct port_config {
	__u16 native_vlan; /* VLAN of untagged frames; 0: untagged frames are dropped */
	__u16 pad;
};

struct vlan_mac {
	__u16 vlan;
	__u8 addr[6];
};

struct fdb_entry {
	__u32 port;
	__u32 pad;
	__u64 last_seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct port_config);
	__uint(max_entries, 256);
} port_vlan SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32); /* VLAN id, 0..4095 */
	__type(value, struct vswitch_portset);
	__uint(max_entries, 4096);
} vlan_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct vlan_mac);
	__type(value, struct fdb_entry);
	__uint(max_entries, 4096);
} vlan_fdb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct vswitch_portset);
	__uint(max_entries, 1);
} vswitch_flood SEC(".maps");

static __always_inline int member(struct vswitch_portset *s, __u32 port)
{
	return port < 256 && (s->bits[(port >> 6) & 3] >> (port & 63)) & 1;
}

static __attribute__((noinline)) int flood(struct vswitch_portset *members)
{
	__u32 zero = 0;
	struct vswitch_portset *out = bpf_map_lookup_elem(&vswitch_flood, &zero);

	if (!out)
		return VSWITCH_DROP;
	*out = *members;
	return VSWITCH_FLOOD;
}

static __always_inline int vlan_forward(struct vswitch_ctx *c)
{
	__u8 *eth = c->data;
	__u32 vlan, port = c->ingress_port;

	if (c->data + 14 > c->data_end)
		return VSWITCH_DROP;
	if (eth[12] == 0x81 && eth[13] == 0x00) {
		if (c->data + 18 > c->data_end)
			return VSWITCH_DROP;
		vlan = ((eth[14] & 0x0f) << 8) | eth[15];
	} else {
		struct port_config *pc = bpf_map_lookup_elem(&port_vlan, &port);
		if (!pc)
			return VSWITCH_DROP;
		vlan = pc->native_vlan;
	}
	if (vlan == 0 || vlan >= 4095)
		return VSWITCH_DROP;

	struct vswitch_portset *members = bpf_map_lookup_elem(&vlan_members, &vlan);
	if (!members || !member(members, port))
		return VSWITCH_DROP; /* ingress filtering */

	struct vlan_mac key = {.vlan = vlan};
	struct fdb_entry *e;
	if (!(eth[6] & 1)) {
		__u64 now = bpf_ktime_get_ns();
		__builtin_memcpy(key.addr, eth + 6, 6);
		e = bpf_map_lookup_elem(&vlan_fdb, &key);
		if (!e || e->port != port) {
			struct fdb_entry n = {.port = port, .last_seen = now};
			bpf_map_update_elem(&vlan_fdb, &key, &n, BPF_ANY);
		} else if (now - e->last_seen > 1000000000ULL) {
			e->last_seen = now;
		}
	}

	if (eth[0] & 1)
		return flood(members);
	__builtin_memcpy(key.addr, eth, 6);
	e = bpf_map_lookup_elem(&vlan_fdb, &key);
	if (!e)
		return flood(members);
	if (e->port == port)
		return VSWITCH_DROP;
	if (!member(members, e->port))
		return flood(members); /* the station's port left the VLAN */
	return e->port;
}

VSWITCH_PROGRAM(vlan, vlan_forward)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
