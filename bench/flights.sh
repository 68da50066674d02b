#!/usr/bin/env bash
# flights.sh -- round trips to established through a delay relay (bench/relay.py): for psk,
# nt and kerberos, cc-console connects to cc-client through a relay that delays each
# direction by CC_BENCH_DELAY_MS (default 20, so one round trip of data is 40 ms; TCP's
# own handshake is not delayed), beside a bare TLS 1.3 handshake and its first echo
# through the same relay. Then what the licence server costs: the console's link
# delayed, the management server on the client's network answering at once, then late.
# Figures, never pass/fail. Usage: bench/flights.sh [BUILD_DIR]
# CC_BENCH_RUNS (default 5) connections per row; the median is printed.
set -u
B=${1:-build}
cd "$(dirname "$0")/.." || exit 2
export CC_SRC=$PWD CC_BIN=$PWD/$B/bin
. test/lib.sh
. test/fixtures/kdc.sh
PY=/usr/bin/python3
D=${CC_BENCH_DELAY_MS:-20}
N=${CC_BENCH_RUNS:-5}
RTT=$((2 * D))

C=$(t_certs) || { echo "flights: no certificates" >&2; exit 1; }
PSK=$(t_psk bench)
GRANT=$(t_license_page 25 7)
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
X=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX
printf 'alice:1000:%s:%s:[U          ]:LCT-5F5E1000:\n' "$X" "$(nthash alice-pw)" >"$T_DIR/smbpasswd"
printf 'alice-pw\n' >"$T_DIR/alice.pw"
K=$T_DIR/kdc
have_krb=0
if kdc_start "$K" CC.TEST >/dev/null 2>&1 && kdc_addprinc alice alice-pw >/dev/null 2>&1 &&
    kdc_addprinc host/127.0.0.1 >/dev/null 2>&1 && kdc_ktadd "$K/service.keytab" host/127.0.0.1 >/dev/null 2>&1 &&
    kdc_kinit alice alice-pw -c "FILE:$K/alice.cc" >/dev/null 2>&1; then
    have_krb=1
    T_PIDS+=("$KDC_PID")
fi

# relay TARGET_PORT [UP_MS]: starts a relay; sets RELAY_PORT
relay() {
    local f=$T_DIR/relay.$RANDOM
    RELAY_LOG=$f.log
    "$PY" bench/relay.py "$1" "$D" ${2:+--up-ms "$2"} --run-for 300 --log "$RELAY_LOG" >"$f" &
    T_PIDS+=($!)
    RELAY_PID=$!
    for _ in $(seq 100); do [ -s "$f" ] && break; sleep 0.05; done
    RELAY_PORT=$(head -n 1 "$f")
    CONN0=0
}
median() { sort -n | awk '{a[NR] = $1} END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
# after_tcp FILE: ms from the TCP connection (state preamble) to established in a --json run
after_tcp() {
    awk -F'"ms":' '/"state":"preamble"/ { split($2, a, "}"); p = a[1] } /"event":"established"/ { split($2, a, "}"); e = a[1] }
        END { if (p != "" && e != "") printf "%.1f\n", e - p }' "$1"
}
# flights LOG CONN: the console's flights on connection CONN of a relay log (runs of chunks
# from the console that the client's chunks separate), less the last one, its CLOSE after
# established: the data round trips to established, counted rather than timed.
flights() {
    awk -v c="$2" '$1 == c { if ($2 != last) { if ($2 == "C") n++; last = $2 } } END { print n - 1 }' "$1"
}
# row NAME CONSOLE_ARGS...: N connections of cc-console through the relay; prints the row
row() {
    local name=$1 i ms
    shift
    : >"$T_DIR/$name.ms"
    for i in $(seq "$N"); do
        "$CC_BIN/cc-console" "127.0.0.1:$RELAY_PORT" --ca "$C/ca.pem" --json "$@" >"$T_DIR/$name.$i.out" 2>&1
        ms=$(after_tcp "$T_DIR/$name.$i.out")
        [ -n "$ms" ] && echo "$ms" >>"$T_DIR/$name.ms" && flights "$RELAY_LOG" "$((CONN0 + i))" >>"$T_DIR/$name.fl"
    done
    CONN0=$((CONN0 + N))
    ms=$(median <"$T_DIR/$name.ms")
    if [ "$ms" = - ]; then
        printf '%-34s %10s %8s   (no run established: %s)\n' "$name" - - \
            "$(grep -ao '"code":"[A-Z_]*"' "$T_DIR/$name.1.out" | head -n 1)"
    else
        printf '%-34s %10s %8s %8s\n' "$name" "$ms" "$(awk -v m="$ms" -v r="$RTT" 'BEGIN { if (r > 0) printf "%.2f", m / r; else printf "-" }')" \
            "$(median <"$T_DIR/$name.fl")"
    fi
}

echo "# flights: through bench/relay.py, ${D} ms each way (data round trip ${RTT} ms), median of $N"
printf '%-34s %10s %8s %8s\n' "connection (ms after TCP)" "ms" "ms/RTT" "flights"

# bare TLS 1.3: handshake complete on the TLS client, then its first echo
"$PY" bench/tlsprobe.py server "$C/client.pem" "$C/client.key" >"$T_DIR/tls.port" &
T_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T_DIR/tls.port" ] && break; sleep 0.05; done
relay "$(cat "$T_DIR/tls.port")"
"$PY" bench/tlsprobe.py client "$RELAY_PORT" "$C/ca.pem" "$N" >"$T_DIR/tls.ms" 2>&1
for col in 1 2; do
    ms=$(awk -v c="$col" '{print $c}' "$T_DIR/tls.ms" | median)
    printf '%-34s %10s %8s\n' "$([ "$col" = 1 ] && echo "bare TLS 1.3 handshake" || echo "bare TLS 1.3, first echo")" "$ms" \
        "$(awk -v m="$ms" -v r="$RTT" 'BEGIN { if (r > 0) printf "%.2f", m / r; else printf "-" }')"
done
kill "$RELAY_PID" 2>/dev/null

start_client psk --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" >/dev/null || exit 1
relay "$CLIENT_PORT"
row "psk" --auth psk --psk-file "$PSK" --user tech
row "psk, guess wrong (console: nt, psk)" --auth nt --auth psk --psk-file "$PSK" --user tech --password-file "$T_DIR/alice.pw"
# A reconnection (doc/RECONNECT.md): cc-console --reconnect 1 makes a full connection, drops it
# and comes back with the ticket; the row is the second connection of each run (after_tcp takes
# the last preamble and established lines, which are the reconnection's).
reconnect_row() {
    local name="psk, reconnect (ticket)" i ms
    : >"$T_DIR/reconnect.ms"
    : >"$T_DIR/reconnect.fl"
    for i in $(seq "$N"); do
        "$CC_BIN/cc-console" "127.0.0.1:$RELAY_PORT" --ca "$C/ca.pem" --json --auth psk --psk-file "$PSK" \
            --user tech --reconnect 1 >"$T_DIR/reconnect.$i.out" 2>&1
        ms=$(after_tcp "$T_DIR/reconnect.$i.out")
        grep -q '"resumed":true' "$T_DIR/reconnect.$i.out" && [ -n "$ms" ] && echo "$ms" >>"$T_DIR/reconnect.ms" &&
            flights "$RELAY_LOG" "$((CONN0 + 2 * i))" >>"$T_DIR/reconnect.fl"
    done
    CONN0=$((CONN0 + 2 * N))
    ms=$(median <"$T_DIR/reconnect.ms")
    printf '%-34s %10s %8s %8s\n' "$name" "$ms" "$(awk -v m="$ms" -v r="$RTT" 'BEGIN { if (r > 0 && m != "-") printf "%.2f", m / r; else printf "-" }')" \
        "$(median <"$T_DIR/reconnect.fl")"
}
reconnect_row
kill "$RELAY_PID" "$CLIENT_PID" 2>/dev/null

# The consent stage (doc/PROTOCOL.md 4.8) with a person who answers at once: CONSENT_WAIT rides
# with LICENSE, AUTH_RESULT follows the command's exit; no round trip of its own.
start_client consent --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" \
    --consent-command true >/dev/null || exit 1
relay "$CLIENT_PORT"
row "psk, consent (command: true)" --auth psk --psk-file "$PSK" --user tech
kill "$RELAY_PID" "$CLIENT_PID" 2>/dev/null

start_client nt --cert "$C/client.pem" --key "$C/client.key" --accounts "$T_DIR/smbpasswd" --license-file "$GRANT" >/dev/null || exit 1
relay "$CLIENT_PORT"
row "nt" --auth nt --user alice --domain WORKGROUP --password-file "$T_DIR/alice.pw"
kill "$RELAY_PID" "$CLIENT_PID" 2>/dev/null

if [ "$have_krb" = 1 ]; then
    start_client krb --cert "$C/client.pem" --key "$C/client.key" --keytab "$K/service.keytab" --license-file "$GRANT" >/dev/null || exit 1
    relay "$CLIENT_PORT"
    KRB5CCNAME=FILE:$K/alice.cc row "kerberos (ticket cache)" --auth kerberos
    kill "$RELAY_PID" "$CLIENT_PID" 2>/dev/null
else
    printf '%-34s %10s %8s   (no KDC: krb5kdc missing?)\n' "kerberos" - -
fi

# The licence: the management server sits on the client's network (no delay), the console's
# link is delayed as above. Each run starts a fresh cc-client, so no cached verdict helps.
lic_row() { # NAME SERVER_DELAY_S
    "$PY" test/hostile/attack.py license-server --port-file "$T_DIR/ls.$2.port" --count-file "$T_DIR/ls.$2.count" \
        --delay "$2" --lifetime 300 >/dev/null 2>&1 &
    local lsp=$! i ms
    T_PIDS+=("$lsp")
    for _ in $(seq 100); do [ -s "$T_DIR/ls.$2.port" ] && break; sleep 0.05; done
    : >"$T_DIR/lic.$2.ms"
    for i in $(seq "$N"); do
        start_client "lic$i" --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" \
            --license-url "http://127.0.0.1:$(cat "$T_DIR/ls.$2.port")/GetLicenseDetails.aspx" >/dev/null || exit 1
        relay "$CLIENT_PORT"
        "$CC_BIN/cc-console" "127.0.0.1:$RELAY_PORT" --ca "$C/ca.pem" --json --auth psk --psk-file "$PSK" \
            >"$T_DIR/lic.$2.$i.out" 2>&1
        ms=$(after_tcp "$T_DIR/lic.$2.$i.out")
        [ -n "$ms" ] && echo "$ms" >>"$T_DIR/lic.$2.ms" && flights "$RELAY_LOG" 1 >>"$T_DIR/lic.$2.fl"
        kill "$RELAY_PID" "$CLIENT_PID" 2>/dev/null
    done
    kill "$lsp" 2>/dev/null
    ms=$(median <"$T_DIR/lic.$2.ms")
    printf '%-34s %10s %8s %8s\n' "$1" "$ms" "$(awk -v m="$ms" -v r="$RTT" 'BEGIN { if (r > 0) printf "%.2f", m / r; else printf "-" }')" \
        "$(median <"$T_DIR/lic.$2.fl")"
}
lic_row "psk, licence server answers at once" 0
lic_row "psk, licence server takes 100 ms" 0.1
lic_row "psk, licence server takes 300 ms" 0.3
