//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * learn.c: the default forwarding program, an L2 learning switch.
 *
 * Learns source MAC -> ingress port in the LRU hash `fdb`, forwards known
 * unicast destinations to their port, floods broadcast, multicast and
 * unknown destinations, and drops frames whose destination sits on the port
 * they came in on.
 */
#include "vswitch.h"
#include "fdb.h"

VSWITCH_PROGRAM(learn, fdb_forward)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
