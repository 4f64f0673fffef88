//go:build ignore

/* needs_ksym.c: a program reading a kernel variable (__ksym), refused. */
#include "../vswitch.h"

extern const void bpf_prog_active __attribute__((section(".ksyms")));

SEC("vswitch") int uses_ksym(struct vswitch_md *md)
{
	return (long)&bpf_prog_active & 0xff;
}

char LICENSE[] SEC("license") = "GPL";
