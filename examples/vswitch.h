/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vswitch.h: everything a vswitch forwarding program needs, with no other
 * header: the context (struct vswitch_md), the return values, SEC(), the
 * BTF map definition macros and the helpers, numbered as in Linux.
 *
 * A forwarding program is entered with a pointer to struct vswitch_md and
 * returns the destination of the frame:
 *
 *	0..253		that port
 *	VSWITCH_FLOOD	every port but the ingress one (254)
 *	VSWITCH_DROP	nothing (255 and above)
 *
 * Build with: clang -O2 -g -target bpf -c prog.c -o prog.o
 *
 * The examples are written against struct vswitch_ctx through
 * VSWITCH_PROGRAM() so that the same source also builds, with
 * -DVSWITCH_XDP, as a kernel XDP program: the tests run both and compare.
 * Your own program can simply be
 *
 *	SEC("vswitch") int prog(struct vswitch_md *md) { ... }
 */
#ifndef VSWITCH_H
#define VSWITCH_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;

/* The program's context. The first 24 bytes are VALE-BPF's struct
 * vale_bpf_md; later fields only append. */
struct vswitch_md {
	__u64 data;         /* first byte of the frame */
	__u64 data_end;     /* one past the last byte */
	__u32 ingress_port; /* port the frame came in on */
	__u8 ring_nr;       /* queue on the destination port (writable) */
	__u8 pad[3];
};

enum {
	VSWITCH_FLOOD = 254, /* every port but the ingress one */
	VSWITCH_DROP = 255,  /* nothing */
	VSWITCH_MAX_PORTS = 254,
};

/* Flood groups. A program that returns VSWITCH_FLOOD and defines a map
 * named vswitch_flood (BPF_MAP_TYPE_PERCPU_ARRAY, one entry, value struct
 * vswitch_portset) restricts the flood to the ports whose bits it set in its
 * CPU's slot; an all-zero set means every port. See docs/programs.md. */
struct vswitch_portset {
	__u64 bits[4]; /* bit p of bits[p/64]: port p */
};

#define SEC(name) __attribute__((section(name), used))
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* BTF-defined maps, as in libbpf's bpf_helpers.h. */
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]

/* Map types (enum bpf_map_type) and flags, as in Linux. */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
	BPF_F_NO_PREALLOC = 1,
};

/* Helpers, numbered as in Linux. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_tail_call)(void *ctx, void *prog_array, __u32 index) = (void *)12;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static void (*bpf_ringbuf_discard)(void *data, __u64 flags) = (void *)133;

#define bpf_htons(x) ((__be16)__builtin_bswap16(x))
#define bpf_ntohs(x) ((__u16)__builtin_bswap16(x))
#define bpf_htonl(x) ((__be32)__builtin_bswap32(x))
#define bpf_ntohl(x) ((__u32)__builtin_bswap32(x))

/* What the examples' forwarding logic sees, whatever the entry point. */
struct vswitch_ctx {
	void *data;
	void *data_end;
	__u32 ingress_port;
	void *md; /* the program's real context, for bpf_tail_call */
};

#ifndef VSWITCH_XDP
/* VSWITCH_CTX is the type of the programs' context. */
#define VSWITCH_CTX struct vswitch_md
/* VSWITCH_PROGRAM(name, fn) defines the vswitch program `name` that runs
 * `static int fn(struct vswitch_ctx *)` on each frame. */
#define VSWITCH_PROGRAM(name, fn)                                          \
	SEC("vswitch") int name(struct vswitch_md *md)                     \
	{                                                                  \
		struct vswitch_ctx c = {                                   \
			.data = (void *)(long)md->data,                    \
			.data_end = (void *)(long)md->data_end,            \
			.ingress_port = md->ingress_port,                  \
			.md = md,                                          \
		};                                                         \
		return fn(&c);                                             \
	}
#else
/* The kernel build: an XDP program for BPF_PROG_TEST_RUN. The test
 * prepends 8 bytes to the frame: the ingress port (u32, little endian) and
 * room for the decision, which the program writes there before returning
 * XDP_PASS. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};
#define VSWITCH_CTX struct xdp_md
#define VSWITCH_PROGRAM(name, fn)                                          \
	SEC("xdp") int name(struct xdp_md *md)                             \
	{                                                                  \
		void *data = (void *)(long)md->data;                       \
		void *data_end = (void *)(long)md->data_end;               \
		if (data + 8 > data_end)                                   \
			return 0; /* XDP_ABORTED */                        \
		struct vswitch_ctx c = {                                   \
			.data = data + 8,                                  \
			.data_end = data_end,                              \
			.ingress_port = *(__u32 *)data,                    \
			.md = md,                                          \
		};                                                         \
		((__u32 *)data)[1] = fn(&c);                               \
		return 2; /* XDP_PASS */                                   \
	}
#endif

#endif /* VSWITCH_H */
