#!/usr/bin/env bash
# priority-main.sh -- bench/priority.c built against the library before send priorities (one
# FIFO send queue; issue 13) and run beside this tree's, so `make bench` shows both.
# Usage: bench/priority-main.sh [BUILD_DIR]. CC_BENCH_BASELINE_REF: the commit to build (default
# 9af4a4b, main when the priorities were written); CC_BENCH_BASELINE=0 skips it. The commit is
# checked out in a temporary `git worktree` (removed at exit) and only its library is built.
set -u
B=${1:-build}
cd "$(dirname "$0")/.." || exit 2
[ "${CC_BENCH_BASELINE:-1}" = 0 ] && { echo "priority-main: skipped (CC_BENCH_BASELINE=0)"; exit 0; }
ref=${CC_BENCH_BASELINE_REF:-9af4a4b}
git rev-parse --verify -q "$ref^{commit}" >/dev/null || { echo "priority-main: no commit $ref here; skipped"; exit 0; }
tmp=$(mktemp -d) || exit 2
cleanup() { git worktree remove --force "$tmp/src" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add --detach "$tmp/src" "$ref" >/dev/null 2>&1 || { echo "priority-main: git worktree add failed"; exit 1; }
objs="build/obj/test/harness.o build/obj/test/pair.o build/obj/examples/common.o build/obj/examples/diag.o build/obj/examples/psk.o"
# shellcheck disable=SC2086
(cd "$tmp/src" && make -j2 build/libcarboncopy-internal.a $objs >"$tmp/build.log" 2>&1) ||
    { echo "priority-main: building $ref failed:"; tail -5 "$tmp/build.log"; exit 1; }
libs="-lssl -lcrypto -lcurl -lexpat -L/usr/lib/x86_64-linux-gnu/mit-krb5 -lgssapi_krb5 -lkrb5 -lk5crypto -lcom_err -lpthread"
# shellcheck disable=SC2086
(cd "$tmp/src" && ${CC:-cc} -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude \
    -o "$tmp/priority" "$OLDPWD/bench/priority.c" $objs build/libcarboncopy-internal.a $libs) ||
    { echo "priority-main: bench/priority.c does not build against $ref"; exit 1; }
echo "priority-main: bench/priority.c against $ref ($(git log -1 --format=%cs "$ref")), one FIFO send queue:"
shift $(( $# > 0 ? 1 : 0 ))
CC_SRC=$PWD "$tmp/priority" "$@"
