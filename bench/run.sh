#!/usr/bin/env bash
# run.sh -- runs every benchmark binary (BUILD_DIR/bench/*) one after another and
# prints their figures; never a pass/fail test. Usage: bench/run.sh [BUILD_DIR]
# Sizes: CC_BENCH_BYTES (throughput, default 256M), CC_BENCH_REPEAT (default 3),
# CC_BENCH_SECONDS (handshake and krb5, per phase, default 3), CC_BENCH_CONSOLES (consoles:
# the N to run, default "10 1000 10000"), CC_BENCH_SESSIONS (memory, pairs,
# default 1000). Throughput runs twice: one
# thread driving both ends, then sender and receiver on two threads. Then
# bench/flights.sh: round trips to established through a delay relay
# (CC_BENCH_DELAY_MS, default 20 each way; CC_BENCH_RUNS, default 5). Then
# bench/priority-main.sh: bench/priority against the library before send priorities
# (CC_BENCH_BASELINE=0 skips it; CC_BENCH_BASELINE_REF picks the commit).
set -u
B=${1:-build}
cd "$(dirname "$0")/.." || exit 2
shopt -s nullglob
bins=("$B"/bench/*)
if [ ${#bins[@]} -eq 0 ]; then
    echo "bench/run.sh: no benchmarks in $B/bench; run 'make bench'" >&2
    exit 2
fi
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(uname -sr), $(nproc) CPUs, $(openssl version 2>/dev/null)"
status=0
run() { # A benchmark that cannot finish in two minutes is broken; say so and go on.
    if ! timeout 120 "$@"; then
        echo "bench/run.sh: $* did not complete" >&2
        status=1
    fi
    echo
}
run_long() { # the same, for the consoles benchmark: five minutes
    if ! timeout 300 "$@"; then
        echo "bench/run.sh: $* did not complete" >&2
        status=1
    fi
    echo
}
for b in "${bins[@]}"; do
    [ -x "$b" ] || continue
    if [ "$(basename "$b")" = throughput ]; then
        CC_BENCH_THREADS=1 run "$b"
        CC_BENCH_THREADS=2 run "$b"
    elif [ "$(basename "$b")" = consoles ]; then
        # One bounded run per N (10,000 TLS handshakes take about a minute on 2 cores); each
        # process holds N descriptors, so the soft limit goes up to the hard one.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null
        for n in ${CC_BENCH_CONSOLES:-10 1000 10000}; do
            run_long "$b" "$n"
        done
    else
        run "$b"
    fi
done
# Round trips to established through a delay relay (doc/PROTOCOL.md 4.1; bench/README.md).
run_long bench/flights.sh "$B"
# Input during a bulk transfer, with the library before the send priorities (bench/README.md).
run_long bench/priority-main.sh "$B"
exit $status
