#!/usr/bin/env bash
# Fetches the bpf_conformance project's test corpus, the second, independent
# conformance check of vswitch's eBPF engines (the first, testdata/conformance,
# is in the repository). It clones github.com/Alan-Jowett/bpf_conformance at a
# pinned commit into a cache folder and prints the variable to set:
#
#   eval "$(scripts/get-conformance.sh)"   # sets VSWITCH_CONFORMANCE
#   go test ./vm ./jit ./internal/conformance ./cmd/bpf-conformance-plugin ./asm
#
# The cache is $XDG_CACHE_HOME/vswitch (default ~/.cache/vswitch); running the
# script again reuses it. VSWITCH_CONFORMANCE_REPO replaces the repository URL
# (a mirror, a local clone).
set -euo pipefail

commit=f558566280d8e76c95a502cfd8014264d8668130
repo=${VSWITCH_CONFORMANCE_REPO:-https://github.com/Alan-Jowett/bpf_conformance}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vswitch
dir=$cache/bpf_conformance-${commit:0:12}

if [ ! -d "$dir/tests" ]; then
  command -v git >/dev/null || { echo "get-conformance: git is needed" >&2; exit 1; }
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.bpf_conformance.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "get-conformance: fetching $repo at $commit into $dir" >&2
  git -C "$tmp" init -q
  git -C "$tmp" remote add origin "$repo"
  # One commit, without history, where the server allows it; else all of it.
  if ! git -C "$tmp" fetch -q --depth 1 origin "$commit" 2>/dev/null; then
    git -C "$tmp" fetch -q origin
  fi
  git -C "$tmp" -c advice.detachedHead=false checkout -q "$commit"
  got=$(git -C "$tmp" rev-parse HEAD)
  if [ "$got" != "$commit" ]; then
    echo "get-conformance: got commit $got, want $commit" >&2
    exit 1
  fi
  mv "$tmp" "$dir"
  trap - EXIT
fi

n=$(find "$dir/tests" -maxdepth 1 -name '*.data' | wc -l)
if [ "$n" -eq 0 ]; then
  echo "get-conformance: no *.data files in $dir/tests" >&2
  exit 1
fi
echo "get-conformance: $n test files in $dir/tests" >&2
echo "export VSWITCH_CONFORMANCE=$dir/tests"
