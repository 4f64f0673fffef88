#!/bin/sh
# check.sh: prove that each committed object in examples/ was built from the
# source beside it. With clang installed it rebuilds every object into a
# temporary directory and compares:
#
#   1. byte for byte (same clang version: the Makefile maps the build
#      directory out of the debug info, so the bytes are reproducible);
#   2. failing that, the disassembly of the code (llvm-objdump -d, with the
#      relocations, -r), which ignores debug info and the order of
#      unrelated sections. An object that differs there was not built from
#      its source (or by a clang that generates different code).
#
# Without clang it says so and exits 0, so CI without a BPF toolchain
# passes; the Go tests never need clang.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CLANG=${CLANG:-clang}
OBJDUMP=${OBJDUMP:-llvm-objdump}

if ! command -v "$CLANG" >/dev/null 2>&1; then
	echo "check.sh: $CLANG not found: skipping the rebuild check of examples/*.o"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
make -s -C "$here" OUT="$tmp" CLANG="$CLANG" >/dev/null

status=0
cd "$here"
for obj in *.o xdp/*.o testdata/*.o; do
	new="$tmp/$obj"
	if [ ! -f "$new" ]; then
		echo "FAIL $obj: not built by the Makefile"
		status=1
		continue
	fi
	if cmp -s "$obj" "$new"; then
		echo "ok   $obj (byte-identical)"
		continue
	fi
	if command -v "$OBJDUMP" >/dev/null 2>&1 &&
		"$OBJDUMP" -dr --no-show-raw-insn "$obj" | tail -n +3 >"$tmp/want.txt" &&
		"$OBJDUMP" -dr --no-show-raw-insn "$new" | tail -n +3 >"$tmp/got.txt" &&
		cmp -s "$tmp/want.txt" "$tmp/got.txt"; then
		echo "ok   $obj (same code by $OBJDUMP -dr; other bytes differ, e.g. another clang version)"
		continue
	fi
	echo "FAIL $obj: differs from a rebuild of its source ($("$CLANG" --version | head -n 1)); run make -C examples"
	status=1
done
exit $status
