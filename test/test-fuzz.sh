#!/usr/bin/env bash
# test-fuzz.sh -- builds the libFuzzer targets (make fuzz, clang) and runs each for a few seconds from its
# seed corpus (test/fuzz/corpus/<target>, copied); a crash, leak, hang or sanitizer report fails the target.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 1

# Five targets two at a time: three rounds of this many seconds, plus the build.
SECONDS_PER_TARGET=${CC_FUZZ_SECONDS:-6}
if [ "${SANITIZE:-}" = 1 ]; then
    echo "# skip: the fuzz targets carry their own sanitizers and ran in the normal check"
    exit 77
fi
FUZZ_CC=${FUZZ_CC:-clang}
if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
    echo "# skip: $FUZZ_CC is not installed (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$T_DIR/probe.c"
if ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$T_DIR/probe.c" -o "$T_DIR/probe" >"$T_DIR/probe.log" 2>&1; then
    echo "# skip: $FUZZ_CC cannot link libFuzzer programs (libclang-rt-14-dev missing?): $(head -1 "$T_DIR/probe.log")"
    exit 77
fi

# A make of our own, not a part of the caller's (make check) job server.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -j2 FUZZ_CC="$FUZZ_CC" fuzz >"$T_DIR/build.log" 2>&1; then
    not_ok "make fuzz" "$(tail -n 30 "$T_DIR/build.log")"
    t_done
fi
ok "make fuzz builds $(ls build/fuzz/fuzz-* | wc -l) targets"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$CC_SRC/test/fuzz/ubsan.supp
export LSAN_OPTIONS=suppressions=$CC_SRC/test/lsan.supp:print_suppressions=0

# run NAME: fuzzes build/fuzz/NAME in the background; output in $T_DIR/NAME.log.
run() {
    local name=$1
    mkdir -p "$T_DIR/$name/corpus" "$T_DIR/$name/crash"
    cp test/fuzz/corpus/"$name"/* "$T_DIR/$name/corpus/" 2>/dev/null
    timeout $((SECONDS_PER_TARGET + 30)) "build/fuzz/$name" -max_total_time="$SECONDS_PER_TARGET" -timeout=5 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$T_DIR/$name/crash/" "$T_DIR/$name/corpus" \
        >"$T_DIR/$name.log" 2>&1 &
    PIDS[$name]=$!
    T_PIDS+=("$!")
}

report() {
    local name=$1 rc=0
    wait "${PIDS[$name]}" || rc=$?
    local runs rate
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T_DIR/$name.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$T_DIR/$name.log" | tail -1)
    local crash
    crash=$(ls "$T_DIR/$name/crash/" 2>/dev/null | head -1)
    if [ "$rc" -eq 0 ] && [ -z "$crash" ] && [ -n "$runs" ]; then
        ok "$name: $runs runs ($rate/s), no crash"
    else
        local keep=""
        if [ -n "$crash" ]; then
            mkdir -p build/fuzz/crashes
            cp "$T_DIR/$name/crash/$crash" "build/fuzz/crashes/$name-$crash"
            keep="input kept as build/fuzz/crashes/$name-$crash (rerun: build/fuzz/$name FILE)"
        fi
        not_ok "$name: exit status $rc${crash:+, $crash}" "$keep" \
            "$(grep -v -E '^(#[0-9]+|INFO:|MERGE|stat::)' "$T_DIR/$name.log" | tail -n 40)"
    fi
}

declare -A PIDS
targets=()
for f in build/fuzz/fuzz-*; do
    [ -f "$f" ] && [ -x "$f" ] && targets+=("$(basename "$f")")
done
# Two at a time: the machines have two cores.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    run "${targets[i]}"
    [ -n "${targets[i + 1]:-}" ] && run "${targets[i + 1]}"
    report "${targets[i]}"
    [ -n "${targets[i + 1]:-}" ] && report "${targets[i + 1]}"
done
t_done
