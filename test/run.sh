#!/usr/bin/env bash
# run.sh -- runs every test (build/test/test-* binaries and test/test-*.sh
# scripts), one line per test, and closes with "N passed, N failed".
# Usage: test/run.sh BUILD_DIR [TEST...]   (VALGRIND=1 runs the C tests under valgrind)
# TEST names one test file: test-session (a C test) or test-abi.sh / test-abi (a script).
set -u
B=${1:-build}
[ $# -gt 0 ] && shift
only=("$@")
cd "$(dirname "$0")/.." || exit 2
export CC_BUILD=$PWD/$B CC_BIN=$PWD/$B/bin CC_TEST_DATA=$PWD/test/data CC_SRC=$PWD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/test/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0 fail=0 skip=0 failed_names=()
per_test_timeout=${CC_TEST_TIMEOUT:-600}

run_one() { # name, command...
    local name=$1; shift
    local out rc
    out=$(timeout "$per_test_timeout" "$@" 2>&1); rc=$?
    local p f
    p=$(printf '%s\n' "$out" | grep -c '^ok ' || true)
    f=$(printf '%s\n' "$out" | grep -c '^not ok ' || true)
    printf '%s\n' "$out" | grep -E '^(ok|not ok) ' | sed "s/^/[$name] /"
    if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        printf '%s\n' "$out" | grep -vE '^(ok|not ok) ' | tail -n 60 | sed "s/^/[$name] # /"
    fi
    if [ "$rc" -eq 77 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "[$name] skipped: $(printf '%s\n' "$out" | grep -m1 -i 'skip' | sed 's/^# *//')"
        skip=$((skip + 1))
    fi
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$f" -eq 0 ]; then
        echo "[$name] not ok - exited with status $rc"
        f=1
    fi
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -gt 0 ] && failed_names+=("$name")
}

# wanted FILE: is FILE one of the TEST arguments (all are, without arguments)?
wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local base o
    base=$(basename "$1")
    for o in "${only[@]}"; do
        [ "$o" = "$base" ] || [ "$o.sh" = "$base" ] && return 0
    done
    return 1
}
for o in "${only[@]}"; do
    [ -x "$B/test/$o" ] || [ -f "test/$o" ] || [ -f "test/$o.sh" ] ||
        { echo "run.sh: no test file $o (not $B/test/$o, not test/$o.sh)" >&2; exit 2; }
done

for t in "$B"/test/test-*; do
    [ -x "$t" ] || continue
    wanted "$t" || continue
    name=$(basename "$t")
    if [ "${VALGRIND:-}" = 1 ]; then
        run_one "$name" valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=97 --suppressions=test/valgrind.supp "$t"
    else
        run_one "$name" "$t"
    fi
done
if [ "${VALGRIND:-}" != 1 ]; then
    for t in test/test-*.sh; do
        [ -f "$t" ] || continue
        wanted "$t" || continue
        run_one "$(basename "$t")" bash "$t"
    done
fi
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
