//go:build ignore

/* hub.c: the shortest forwarding program (docs/programs.md). Build:
 *   clang -O2 -g -target bpf -I examples -c docs/hub.c -o docs/hub.o
 */
#include "vswitch.h"

SEC("vswitch")
int hub(struct vswitch_md *md)
{
	return VSWITCH_FLOOD; /* every frame to every other port */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
