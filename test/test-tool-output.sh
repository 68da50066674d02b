#!/usr/bin/env bash
# test-tool-output.sh -- what the tools print: cc-client's "errno", "peer" and "ts" in --json,
# IPv6 addresses in brackets (both tools), the warning about an expired or expiring certificate.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
BAD=$(t_psk bad)
GRANT=$(t_license_page 25 7)
FULL=$(t_license_page 10 10)
CLIENT_ARGS=(--cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK")
has() { grep -q -- "$2" "$1"; }
hasnt() { ! grep -q -- "$2" "$1"; }
# The number the header gives a cc_error name.
errnum() { t_errnum "$1"; }
# Every JSON line naming a CC_ERR_ code carries "errno" with that code's number, at the end.
errno_matches() {
    local f=$1 line name n bad=0 seen=0
    while IFS= read -r line; do
        name=$(printf '%s' "$line" | grep -o '"code":"CC_ERR_[A-Z0-9_]*"' | head -1 | cut -d'"' -f4)
        [ -n "$name" ] || continue
        seen=1
        n=$(errnum "$name")
        printf '%s' "$line" | grep -qE "\"errno\":$n(,\"peer\":\"[^\"]*\",\"ts\":\"[^\"]*\")?}\$" || { echo "# no errno $n: $line"; bad=1; }
    done <"$f"
    [ "$seen" -eq 1 ] && [ "$bad" -eq 0 ]
}
TS='"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'

# --- 1. "errno" next to "code" in cc-client's lines ---
# (and in cc-console's: its failure lines end in "errno" too, after "message".)

start_client full "${CLIENT_ARGS[@]}" --license-file "$FULL" || exit 1
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --json >"$T_DIR/fullc.out" 2>&1
check "licence denied: the console exits 5" [ $? -eq 5 ]
sleep 0.3
D=$(errnum CC_ERR_LICENSE_DENIED)
check "licence denied: errnum found $D in the header" [ -n "$D" ]
check "client: the denied licence line has \"code\":\"CC_ERR_LICENSE_DENIED\",...\"errno\":$D" \
    grep -qE "^\\{\"event\":\"license\",\"session\":1,.*\"granted\":false,\"code\":\"CC_ERR_LICENSE_DENIED\",\"message\":\"[^\"]*\",\"errno\":$D,\"peer\"" "$T_DIR/full.out"
check "client: the error line has \"errno\":$D after the message" \
    grep -qE "^\\{\"event\":\"error\",\"session\":1,\"code\":\"CC_ERR_LICENSE_DENIED\",\"message\":\"[^\"]*\",\"errno\":$D,\"peer\"" "$T_DIR/full.out"
check "client: every line with a code has the matching errno" errno_matches "$T_DIR/full.out"
check "console: its error line has \"errno\":$D after the message" \
    grep -qE "^\\{\"event\":\"error\",\"code\":\"CC_ERR_LICENSE_DENIED\",\"message\":\"client: [^\"]*\",\"errno\":$D\\}\$" "$T_DIR/fullc.out"
check "console: its denied licence line has \"errno\":$D last" \
    grep -qE "^\\{\"event\":\"license\",\"count\":10,\"in_use\":10,\"granted\":false,\"code\":\"CC_ERR_LICENSE_DENIED\",\"message\":\"[^\"]*\",\"errno\":$D\\}\$" "$T_DIR/fullc.out"
check "console: every line with a code has the matching errno" errno_matches "$T_DIR/fullc.out"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

start_client main "${CLIENT_ARGS[@]}" --license-file "$GRANT" --echo || exit 1
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$BAD" --json >"$T_DIR/bad.out" 2>&1
check "wrong key: the console exits 6" [ $? -eq 6 ]
check "wrong key: the console's auth and error lines carry the matching errno" errno_matches "$T_DIR/bad.out"
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user alice --json >"$T_DIR/good.out" 2>&1
check "a good session: exit 0" [ $? -eq 0 ]
check "the console's lines carry no peer or ts (it has one peer, and \"ms\")" hasnt "$T_DIR/good.out" '"peer":'
sleep 0.3
check "client: its error lines carry errno too, every one matching its code" errno_matches "$T_DIR/main.out"

# --- 5. --send progress: {"event":"progress"} in --json, a bar only on a terminal ---
head -c 33554432 /dev/urandom >"$T_DIR/big.bin"
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --send "$T_DIR/big.bin" --json \
    >"$T_DIR/send.json" 2>"$T_DIR/send.err"
check "--send 32 MiB --json: exit 0" [ $? -eq 0 ]
# progress lines: bytes never fall, never pass total, total is the file's size, at most 4 a second by
# their own "ms" (every gap but the last one's >= 250 ms), the last one has bytes == total and comes
# before "closed"
check "--send --json: progress events as specified" /usr/bin/python3 - "$T_DIR/send.json" 33554432 <<'PY'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
size = int(sys.argv[2])
prog = [(i, o) for i, o in enumerate(objs) if o["event"] == "progress"]
closed = [i for i, o in enumerate(objs) if o["event"] == "closed"]
ok = len(prog) >= 1 and closed and prog[-1][0] < closed[0]
for k, (i, o) in enumerate(prog):
    ok = ok and set(o) == {"event", "bytes", "total", "rate", "ms"} and o["total"] == size and 0 <= o["bytes"] <= size
    ok = ok and isinstance(o["rate"], int) and o["rate"] >= 0
    if k:
        ok = ok and o["bytes"] >= prog[k - 1][1]["bytes"]
        if k < len(prog) - 1:
            ok = ok and o["ms"] - prog[k - 1][1]["ms"] >= 250
ok = ok and prog[-1][1]["bytes"] == size and prog[-1][1]["rate"] > 0
print("# %d progress events" % len(prog))
sys.exit(0 if ok else 1)
PY
check "--send --json: no bar on stderr" bash -c "! grep -q '%' '$T_DIR/send.err'"
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --send "$T_DIR/big.bin" \
    >"$T_DIR/send-h.out" 2>"$T_DIR/send-h.err"
check "--send, stderr not a terminal: no bar" bash -c "! grep -q \$'\\r' '$T_DIR/send-h.err' && grep -q 'echo verified' '$T_DIR/send-h.err'"
if command -v script >/dev/null; then
    script -q -e -c "'$CC_BIN/cc-console' 127.0.0.1:$CLIENT_PORT --ca '$C/ca.pem' --auth psk --psk-file '$PSK' --send '$T_DIR/big.bin'" \
        /dev/null >"$T_DIR/tty.out" 2>&1
    check "--send on a terminal (script): exit 0" [ $? -eq 0 ]
    check "--send on a terminal: the bar redraws over itself and ends at 100% of 32.0 MiB" \
        grep -qaE $'\r\\[#{30}\\] 100% 32\\.0 MiB of 32\\.0 MiB, [0-9.]+ [KMG]?i?B/s' "$T_DIR/tty.out"
    check "--send on a terminal: then the verdict on its own line" grep -qa 'sent 33554432 bytes, echo verified' "$T_DIR/tty.out"
else
    echo "# skip: no script(1): the terminal bar is not checked"
fi

# --- 3. the peer and a timestamp on the client's per-session events ---
check "client: \"established\" ends with \"peer\":\"127.0.0.1:PORT\" and a UTC ts" \
    grep -qE "^\\{\"event\":\"established\",\"session\":[0-9]+,\"identity\":\"psk:alice\",\"resumed\":false,\"session_id\":\"[0-9a-f]{32}\",\"peer\":\"127\\.0\\.0\\.1:[0-9]+\",$TS}\$" "$T_DIR/main.out"
check "client: \"license\" lines carry peer and ts" \
    grep -qE "^\\{\"event\":\"license\",\"session\":[0-9]+,.*\"peer\":\"127\\.0\\.0\\.1:[0-9]+\",$TS}\$" "$T_DIR/main.out"
check "client: \"auth\" lines carry peer and ts" \
    grep -qE "^\\{\"event\":\"auth\",\"session\":[0-9]+,.*\"peer\":\"127\\.0\\.0\\.1:[0-9]+\",$TS}\$" "$T_DIR/main.out"
check "client: \"closed\" lines carry peer and ts" \
    grep -qE "^\\{\"event\":\"closed\",\"session\":[0-9]+,.*\"peer\":\"127\\.0\\.0\\.1:[0-9]+\",$TS}\$" "$T_DIR/main.out"
check "client: \"error\" lines carry errno, then peer and ts" \
    grep -qE "^\\{\"event\":\"error\",\"session\":[0-9]+,.*\"errno\":-[0-9]+,\"peer\":\"127\\.0\\.0\\.1:[0-9]+\",$TS}\$" "$T_DIR/main.out"
check "client: every line with a session has peer and ts" \
    bash -c "! grep '\"session\":' '$T_DIR/main.out' | grep -vqE '\"peer\":\"[^\"]+\",$TS}\$'"
check "client: the ts is today's UTC date" has "$T_DIR/main.out" "\"ts\":\"$(date -u +%Y-%m-%d)T"
check "client: \"listening\" has no peer (not a session's)" grep -q '^{"event":"listening","address":"127.0.0.1:[0-9]*"}$' "$T_DIR/main.out"

# --- 2. IPv6 in brackets ---
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    "$CC_BIN/cc-client" --listen '[::1]:0' --json "${CLIENT_ARGS[@]}" --license-file "$GRANT" --echo >"$T_DIR/v6.out" 2>"$T_DIR/v6.err" &
    V6_PID=$!
    T_PIDS+=("$V6_PID")
    V6_PORT=
    for i in $(seq 1 100); do
        V6_PORT=$(grep -o '"listening","address":"\[::1\]:[0-9]*"' "$T_DIR/v6.out" 2>/dev/null | grep -o '[0-9]*"$' | tr -d '"')
        [ -n "$V6_PORT" ] && break
        sleep 0.05
    done
    check "cc-client --listen [::1]:0 prints \"address\":\"[::1]:PORT\"" [ -n "$V6_PORT" ]
    "$CC_BIN/cc-console" "[::1]:$V6_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user bob --json >"$T_DIR/v6c.out" 2>&1
    check "cc-console connects to [::1]:PORT (exit 0)" [ $? -eq 0 ]
    sleep 0.3
    check "client: the session's peer is \"[::1]:PORT\"" \
        grep -qE "\"event\":\"established\",.*\"identity\":\"psk:bob\",\"resumed\":false,\"session_id\":\"[0-9a-f]{32}\",\"peer\":\"\\[::1\\]:[0-9]+\",$TS}\$" "$T_DIR/v6.out"
    kill "$V6_PID" 2>/dev/null; wait "$V6_PID" 2>/dev/null
    "$CC_BIN/cc-client" --listen '[::1]:0' "${CLIENT_ARGS[@]}" --license-file "$GRANT" >"$T_DIR/v6h.out" 2>"$T_DIR/v6h.err" &
    V6_PID=$!
    T_PIDS+=("$V6_PID")
    for i in $(seq 1 100); do has "$T_DIR/v6h.err" 'listening on' && break; sleep 0.05; done
    check "human output: \"listening on [::1]:PORT\"" grep -qE '^cc-client: listening on \[::1\]:[0-9]+$' "$T_DIR/v6h.err"
    kill "$V6_PID" 2>/dev/null; wait "$V6_PID" 2>/dev/null
else
    echo "# skip: no IPv6 loopback (::1) on this machine: the bracket checks are not run"
fi
check "IPv4 stays unbracketed: \"listening on 127.0.0.1:PORT\"" \
    bash -c "'$CC_BIN/cc-client' --listen 127.0.0.1:0 --cert '$C/client.pem' --key '$C/client.key' --auth psk --psk-file '$PSK' --license-file '$GRANT' 2>'$T_DIR/v4h.err' & p=\$!; for i in \$(seq 1 100); do grep -q listening '$T_DIR/v4h.err' && break; sleep 0.05; done; kill \$p; wait \$p 2>/dev/null; grep -qE '^cc-client: listening on 127\\.0\\.0\\.1:[0-9]+\$' '$T_DIR/v4h.err'"

# --- 4. the warning about the client's own certificate ---
mkcert() { # name days-from-now-of-notBefore days-from-now-of-notAfter
    /usr/bin/python3 - "$T_DIR/$1" "$2" "$3" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
path, nb, na = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=nb))
        .not_valid_after(now + datetime.timedelta(days=na, hours=1))
        .sign(key, hashes.SHA256()))
open(path + ".pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(path + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
PY
}
mkcert expired -30 -2 && mkcert soon -30 10 && mkcert fine -30 365
check "python3-cryptography made the three certificates" [ -s "$T_DIR/expired.pem" -a -s "$T_DIR/soon.pem" -a -s "$T_DIR/fine.pem" ]
# run_client NAME CERT [--json]: starts cc-client with CERT until it listens, then stops it.
run_client() {
    local name=$1 cert=$2; shift 2
    "$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$T_DIR/$cert.pem" --key "$T_DIR/$cert.key" --auth psk \
        --psk-file "$PSK" --license-file "$GRANT" "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" &
    local p=$! i
    for i in $(seq 1 100); do grep -q listening "$T_DIR/$name.out" "$T_DIR/$name.err" 2>/dev/null && break; sleep 0.05; done
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
}
run_client x-h expired
check "expired: a warning on stderr \"the certificate in FILE expired on DATE\"" \
    grep -qE "^cc-client: warning: the certificate in $T_DIR/expired.pem expired on [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC\$" "$T_DIR/x-h.err"
check "expired: the client still starts (a warning, not a refusal)" has "$T_DIR/x-h.err" 'listening on'
run_client x-j expired --json
check "expired, --json: a {\"event\":\"warning\"} line" \
    grep -qE "^\\{\"event\":\"warning\",\"message\":\"the certificate in $T_DIR/expired.pem expired on [^\"]*\"}\$" "$T_DIR/x-j.out"
check "expired, --json: the warning comes before \"listening\"" \
    bash -c "head -1 '$T_DIR/x-j.out' | grep -q '\"event\":\"warning\"'"
check "expired, --json: the warning on stderr as well" has "$T_DIR/x-j.err" 'warning: the certificate in .* expired on'
soon=$(date -u -d '+10 days +1 hour' +%Y-%m-%d) # notAfter is now + 10 days + 1 hour
run_client s-h soon
check "expiring in 10 days: \"... expires on $soon ..., in 10 days\"" \
    grep -qE "^cc-client: warning: the certificate in $T_DIR/soon.pem expires on $soon [0-9:]{8} UTC, in 10 days\$" "$T_DIR/s-h.err"
run_client s-j soon --json
check "expiring in 10 days, --json: the warning line" \
    grep -qE "^\\{\"event\":\"warning\",\"message\":\"the certificate in [^\"]*soon.pem expires on $soon [0-9:]{8} UTC, in 10 days\"}\$" "$T_DIR/s-j.out"
run_client f-h fine
check "valid for a year: no warning" bash -c "has() { grep -q \"\$2\" \"\$1\"; }; ! has '$T_DIR/f-h.err' warning && has '$T_DIR/f-h.err' 'listening on'"
run_client f-j fine --json
check "valid for a year, --json: no warning line, it listens" \
    bash -c "! grep -q '\"warning\"' '$T_DIR/f-j.out' && grep -q '\"listening\"' '$T_DIR/f-j.out'"
run_client t-h ../certs/client
check "the test PKI's client certificate (ten years): no warning" bash -c "! grep -q warning '$T_DIR/t-h.err'"

t_done
