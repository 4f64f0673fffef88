// Package maps implements eBPF maps with the kernel's semantics, laid out
// so that programs on either engine can hold pointers to their values, and
// the helpers that touch them.
//
// # Types
//
// New creates any of: Array, PerCPUArray, Hash, PerCPUHash, LRUHash,
// LPMTrie, ProgArray (*ProgramArray) and RingBuf (*RingBuffer), numbered
// as in Linux and checked as Linux checks them (an LPM trie needs
// FlagNoPrealloc, a ring buffer's size is a power-of-two multiple of the
// page size...). Update flags (UpdateAny, UpdateNoExist, UpdateExist),
// NextKey order and errors follow Linux; Errno gives the errno a helper
// returns for an error (ENOENT, EEXIST, E2BIG, EINVAL, ENOSPC for a full
// LPM trie).
//
// # Memory
//
// Every map preallocates all its memory in New. Values live in a slab of
// max-entries slots (times CPUs for per-CPU maps, CPU-major so that
// workers do not share cache lines) of a power-of-two stride larger than
// the value; the map exposes it to programs as one strided vm.Region whose
// elements are value-size bytes long. A program handed a value can read
// and write those bytes, atomics included, and nothing else: not the gap
// after it, not the next value. Slabs never move and are never freed while
// a program refers to the map, so the address bpf_map_lookup_elem returns
// stays valid memory for as long as the program runs, whatever the control
// plane does meanwhile.
//
// A slot whose element was deleted (or evicted from an LRU hash) keeps its
// value until the slot is given to a new element: a program still holding
// the pointer then reads, and writes, the new element's value. The kernel's
// preallocated hash maps behave the same way.
//
// # Concurrency
//
// Any number of workers (programs, LookupAddr, UpdateFrom) and control-plane
// callers may use a map at once; every method is safe for concurrent use.
//
//   - Lookups from programs and LookupAddr take no lock and allocate
//     nothing. Hash maps (hash, per-CPU hash, LRU hash) walk their bucket
//     chains with atomic loads and validate each key against a per-slot
//     sequence number (the kernel's hlist_nulls technique), retrying, then
//     locking, if the slot was reused under them. An LRU lookup stores a
//     reference bit only when it is clear. The LPM trie is read under a
//     sequence counter of the whole trie.
//   - A lookup concurrent with a delete may return the deleted element's
//     value (as with RCU in Linux); a lookup never returns another key's
//     value and never misses a key that stays in the map throughout.
//   - Writers of hash maps lock one of 64 bucket stripes (an LRU hash, whose
//     recency list is global, one lock) and take free slots from a
//     lock-free stack; LPM writers share one lock; array writers lock one
//     element.
//   - Updates write values in place, one 8-byte word at a time (atomic
//     word stores). A program reading a value while it is updated may see
//     a mix of old and new words (torn, as the kernel allows for in-place
//     updates); it never sees a torn word. Control-plane reads (Lookup)
//     retry until they copied a value no concurrent Update, UpdateFrom or
//     helper update wrote meanwhile, so they are never torn by those; they
//     can be torn by a program writing the value through its pointer.
//   - Atomic instructions of programs on a value are atomic with respect to
//     each other and to control-plane updates of the same words.
//   - NextKey iterates while writers run: it returns keys that were in the
//     map when it looked; an iteration sees every key that stays in the map
//     throughout and may or may not see keys added or deleted meanwhile.
//     A key that is no longer in the map restarts the iteration (Linux).
//   - Per-CPU maps give each worker index (vm.Env.CPU) its own slot: give
//     Spec.CPUs at least as many CPUs as workers, as workers beyond share
//     slots (index modulo CPUs).
//   - ProgramArray slots are swapped atomically: a tail call runs the old
//     or the new program. RingBuffer producers never block (a full ring
//     drops and counts), the single consumer reads records in order.
//
// # Helpers
//
// RegisterHelpers and Helpers provide bpf_map_lookup_elem,
// bpf_map_update_elem, bpf_map_delete_elem, bpf_trace_printk (into a
// bounded per-program TraceLog), bpf_tail_call and the ring buffer helpers
// with Linux ids; CompatVALEHelpers the VALE-BPF numbering of the map
// helpers. A helper given an argument the kernel's verifier would have
// refused (a map handle that is not the program's, a pointer outside the
// program's memory) stops the program with a fault, never the process.
// Helpers charge the run's budget for their work (cost.go, vm.Env.Budget).
//
// Arrays, hashes and LPM tries describe their memory to the engines
// (Layout, vm.MapLayout): the load-time analysis then trusts what a lookup
// returns, and the JIT looks arrays and hashes up in machine code, exactly
// as LookupAddr does.
package maps
