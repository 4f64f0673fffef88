//go:build ignore

/*
 * vale_bridge.c: a learning bridge written the way VALE-BPF programs were
 * (generic-ebpf headers): no SEC() on the function, which lands in .text; a
 * legacy "maps" section whose map type is a string; helpers numbered
 * 1 = update, 2 = lookup, 3 = delete. vswitch loads it only with
 * loader.Options{Compat: loader.CompatVALEBPF}.
 *
 * The declarations below stand in for VALE-BPF's headers, to keep this file
 * self-contained.
 */
typedef unsigned char uint8_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;

#define EBPF_NAME_MAX 64

struct ebpf_map_def {
	char type[EBPF_NAME_MAX];
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t flags;
};

#define EBPF_DEFINE_MAP(_name, _type, _key_size, _value_size, _max_entries, _flags) \
	struct ebpf_map_def _name __attribute__((section("maps"), used)) = {       \
		.type = _type,                                                      \
		.key_size = _key_size,                                              \
		.value_size = _value_size,                                          \
		.max_entries = _max_entries,                                        \
		.flags = _flags,                                                    \
	}

static int (*ebpf_map_update_elem)(void *map, void *key, void *value, uint64_t flags) = (void *)1;
static void *(*ebpf_map_lookup_elem)(void *map, void *key) = (void *)2;
static int (*ebpf_map_delete_elem)(void *map, void *key) __attribute__((unused)) = (void *)3;

struct vale_bpf_md {
	void *data;
	void *data_end;
	uint32_t ingress_port;
	uint8_t ring_nr;
};

enum { VALE_BPF_BROADCAST = 254, VALE_BPF_DROP = 255 };

EBPF_DEFINE_MAP(ft, "hashtable", sizeof(uint64_t), sizeof(uint32_t), 256, 0);
EBPF_DEFINE_MAP(stats, "percpu_array", sizeof(uint32_t), sizeof(uint64_t), 2, 0);

static __attribute__((noinline)) void count(uint32_t what)
{
	uint64_t *n = ebpf_map_lookup_elem(&stats, &what);
	if (n)
		*n += 1;
}

uint32_t learning_bridge(struct vale_bpf_md *md)
{
	uint8_t *data = md->data;
	uint64_t smac = 0, dmac = 0;
	uint32_t *dport;

	if ((uint8_t *)md->data_end - data < 14)
		return VALE_BPF_DROP;
	__builtin_memcpy(&dmac, data, 6);
	__builtin_memcpy(&smac, data + 6, 6);

	if ((data[6] & 1) == 0 &&
	    ebpf_map_update_elem(&ft, &smac, &md->ingress_port, 0) != 0)
		return VALE_BPF_DROP;

	if (data[0] & 1) {
		count(1);
		return VALE_BPF_BROADCAST;
	}
	dport = ebpf_map_lookup_elem(&ft, &dmac);
	if (!dport) {
		count(1);
		return VALE_BPF_BROADCAST;
	}
	count(0);
	return *dport;
}
