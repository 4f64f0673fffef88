//go:build ignore

/*
 * needs_kernel.c: programs that only a kernel can run, each refused by the
 * loader with an error naming what it needs.
 */
#include "../vswitch.h"

extern void bpf_rcu_read_lock(void) __attribute__((section(".ksyms")));

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

SEC("vswitch") int uses_kfunc(struct vswitch_md *md)
{
	bpf_rcu_read_lock();
	return VSWITCH_DROP;
}

SEC("vswitch") int uses_core(struct vswitch_md *md)
{
	struct task_struct *t = (void *)(long)md->data;
	return __builtin_preserve_access_index(t->pid);
}

SEC("vswitch") int fine(struct vswitch_md *md)
{
	return VSWITCH_FLOOD;
}

char LICENSE[] SEC("license") = "GPL";
