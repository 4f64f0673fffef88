#!/usr/bin/env bash
# Proves that the tests need nothing outside the repository: clones the
# checkout's HEAD into an empty temporary folder (no ../shared beside it, no
# $VSWITCH_CONFORMANCE) and runs `go test` there, as root and as an ordinary
# user (nobody, with its own HOME, GOCACHE, GOPATH and module cache). Needs
# root, git and setpriv (util-linux).
#
#   scripts/lone-clone-test.sh [--root PKGS] [--user PKGS]
#
# PKGS is a space-separated package list for the run as root or as nobody;
# both default to ./... . Besides passing, each run must show the own
# conformance corpus running (the `conformance (own corpus, ...)` lines) and
# the external corpus skipped.
set -euo pipefail

root_pkgs="./..."
user_pkgs="./..."
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root_pkgs=$2; shift 2 ;;
    --user) user_pkgs=$2; shift 2 ;;
    *) echo "usage: $0 [--root PKGS] [--user PKGS]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "lone-clone-test: needs root (to run as nobody too)" >&2
  exit 1
fi
src=$(cd "$(dirname "$0")/.." && pwd)
go=$(command -v go)
user=nobody
group=$(id -gn "$user")

tmp=$(mktemp -d /tmp/vswitch-lone.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
echo "lone-clone-test: $(git -C "$src" rev-parse --short HEAD) cloned into $tmp"

# check LOG WHO PKGS: the own corpus ran on the interpreter without a
# failure (when PKGS has package vm), and the bpf_conformance corpus was
# not used.
check() {
  local log=$1 who=$2 pkgs=" $3 "
  if [[ $pkgs == *" ./... "* || $pkgs == *" ./vm "* || $pkgs == *" ./vm/... "* ]] &&
    ! grep -q '^conformance (own corpus, interpreter): [0-9]* passed, 0 failed' "$log"; then
    echo "lone-clone-test ($who): the own conformance corpus did not run on the interpreter" >&2
    return 1
  fi
  if grep -q '^conformance (bpf_conformance' "$log"; then
    echo "lone-clone-test ($who): the bpf_conformance corpus was found outside the clone" >&2
    return 1
  fi
}

# The environment of a new user: nothing that points at the corpus.
unset VSWITCH_CONFORMANCE VSWITCH_REQUIRE_CONFORMANCE

echo "== as root: go test $root_pkgs"
git clone -q "$src" "$tmp/root/vswitch"
(cd "$tmp/root/vswitch" && "$go" test -count=1 -timeout 10m $root_pkgs) 2>&1 | tee "$tmp/root.log"
check "$tmp/root.log" root "$root_pkgs"

echo "== as $user: go test $user_pkgs"
mkdir -p "$tmp/user" "$tmp/user/home" "$tmp/user/gocache" "$tmp/user/gopath" "$tmp/user/tmp"
git clone -q "$src" "$tmp/user/vswitch"
# A module cache of the user's own, filled from root's (no network needed);
# from the proxy if root's lacks a module.
modcache=$("$go" env GOMODCACHE)
(cd "$tmp/user/vswitch" &&
  GOMODCACHE="$tmp/user/gomod" GOPROXY="file://$modcache/cache/download" GOSUMDB=off "$go" mod download 2>/dev/null ||
  GOMODCACHE="$tmp/user/gomod" "$go" mod download)
chown -R "$user:$group" "$tmp/user"
setpriv --reuid="$user" --regid="$group" --clear-groups --inh-caps=-all \
  env -i PATH="$(dirname "$go"):/usr/sbin:/usr/bin:/sbin:/bin" HOME="$tmp/user/home" USER="$user" \
  GOCACHE="$tmp/user/gocache" GOPATH="$tmp/user/gopath" GOMODCACHE="$tmp/user/gomod" \
  GOPROXY=off GOFLAGS="$("$go" env GOFLAGS)" GOTOOLCHAIN=local TMPDIR="$tmp/user/tmp" \
  sh -c 'cd "$1" && shift && exec "$@"' sh "$tmp/user/vswitch" "$go" test -count=1 -timeout 10m $user_pkgs 2>&1 | tee "$tmp/user.log"
check "$tmp/user.log" "$user" "$user_pkgs"
echo "lone-clone-test: passed as root and as $user"
