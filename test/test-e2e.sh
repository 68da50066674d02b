#!/usr/bin/env bash
# test-e2e.sh -- cc-console and cc-client end to end on loopback: the whole
# process with the psk example mechanism, certificate failures, licence denial,
# bad peers, deadlines, which mechanisms prove the client (--require-mutual), and a client
# that keeps serving after each of them.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
BAD=$(t_psk bad)
GRANT=$(t_license_page 25 7)
FULL=$(t_license_page 10 10)
CLIENT_ARGS=(--cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK")
# An NT account too, for a mechanism that proves the console's user but not the client.
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
H=$(nthash tech-pw)
[ ${#H} -eq 32 ] || { echo "not ok - NT hash of the test password (openssl md4)"; exit 1; }
printf 'tech:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n' "$H" >"$T_DIR/smbpasswd"
printf 'tech-pw\n' >"$T_DIR/tech.pw"
NT_CONSOLE=(--auth nt --user tech --domain WORKGROUP --password-file "$T_DIR/tech.pw")
console() { "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" "$@"; }
has() { grep -q -- "$2" "$1"; }
# exited RC WANT FILE PATTERN: the exit status is WANT and FILE has PATTERN (both asserted)
exited() { [ "$1" -eq "$2" ] && has "$3" "$4"; }

# --- the whole process, 64 MiB echoed intact, on a client serving many consoles ---
start_client main "${CLIENT_ARGS[@]}" --accounts "$T_DIR/smbpasswd" --license-file "$GRANT" --echo || exit 1
head -c $((64 << 20)) /dev/urandom >"$T_DIR/big.bin"
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user alice --send "$T_DIR/big.bin" --json >"$T_DIR/c1.out" 2>"$T_DIR/c1.err"
rc=$?
check "64 MiB send comes back intact (exit 0)" [ "$rc" -eq 0 ]
check "console reports the licence figures as JSON" \
    has "$T_DIR/c1.out" '^{"event":"license","count":25,"in_use":7,"granted":true}$'
check "console reports established with TLS 1.3" has "$T_DIR/c1.out" '"event":"established","mechanism":"psk","tls":"TLSv1.3"'
check "console reports that psk proved the client (\"mutual\":true)" has "$T_DIR/c1.out" '"event":"established",.*"mutual":true'
check "client reports the identity" has "$T_DIR/main.out" '"event":"established","session":1,"identity":"psk:alice"'

console --pin "$(cat "$C/client.sha256")" --auth psk --psk-file "$PSK" >/dev/null 2>&1
check "a pinned fingerprint is accepted" [ $? -eq 0 ]

pids=()
for i in 1 2 3 4 5; do
    head -c $((1 << 20)) /dev/urandom >"$T_DIR/p$i.bin"
    console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user "u$i" --send "$T_DIR/p$i.bin" >/dev/null 2>&1 &
    pids+=($!)
done
all=0
for p in "${pids[@]}"; do wait_pid "$p" 30; [ "$WAIT_RC" -eq 0 ] || all=1; done
check "five consoles at once are all served" [ "$all" -eq 0 ]

# --- which mechanism proves the client: psk does, nt proves only the console's user ---
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --require-mutual --json >"$T_DIR/m1.out" 2>&1
check "--require-mutual with psk: established, \"mutual\":true" \
    exited $? 0 "$T_DIR/m1.out" '"event":"established","mechanism":"psk",.*"mutual":true'
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" >"$T_DIR/m2.out" 2>&1
check "psk, human output: the client proved itself through the mechanism" \
    exited $? 0 "$T_DIR/m2.out" '^authenticated by psk as psk:console; the client proved itself through the mechanism too$'
console --ca "$C/ca.pem" "${NT_CONSOLE[@]}" --json >"$T_DIR/m3.out" 2>&1
check "nt without --require-mutual: established, \"mutual\":false" \
    exited $? 0 "$T_DIR/m3.out" '"event":"established","mechanism":"nt",.*"mutual":false'
console --ca "$C/ca.pem" "${NT_CONSOLE[@]}" >"$T_DIR/m4.out" 2>&1
check "nt, human output: the client proved itself only by its certificate" \
    exited $? 0 "$T_DIR/m4.out" '^authenticated by nt as WORKGROUP\\\\tech; the client proved itself only by its certificate$'
console --ca "$C/ca.pem" "${NT_CONSOLE[@]}" --require-mutual --json >"$T_DIR/m5.out" 2>&1
rc=$?
check "nt with --require-mutual: exit 2 before connecting, the library's CC_ERR_CONFIG reason" \
    exited "$rc" 2 "$T_DIR/m5.out" 'mutual authentication is required but no authenticator proves the client'
check "nt with --require-mutual: no connection was attempted" bash -c "! grep -q '\"state\"' '$T_DIR/m5.out'"
console --ca "$C/ca.pem" "${NT_CONSOLE[@]}" --auth psk --psk-file "$PSK" --require-mutual --json >"$T_DIR/m6.out" 2>&1
check "nt and psk with --require-mutual: only psk is offered (the client prefers nt), \"mutual\":true" \
    exited $? 0 "$T_DIR/m6.out" '"event":"established","mechanism":"psk",.*"mutual":true'

# --- certificate failures: exit 4 with the specific code ---
console --ca "$C/other-ca.pem" --auth psk --psk-file "$PSK" --json >"$T_DIR/u.out" 2>&1
rc=$?
check "untrusted certificate: exit 4" [ "$rc" -eq 4 ]
check "untrusted certificate: CC_ERR_CERT_UNTRUSTED" has "$T_DIR/u.out" '"code":"CC_ERR_CERT_UNTRUSTED"'
console --pin "0000000000000000000000000000000000000000000000000000000000000000" --auth psk --psk-file "$PSK" --json >"$T_DIR/p.out" 2>&1
rc=$?
check "pin mismatch: exit 4 with CC_ERR_CERT_MISMATCH" exited "$rc" 4 "$T_DIR/p.out" '"code":"CC_ERR_CERT_MISMATCH"'

# --- authentication failure: exit 6 ---
console --ca "$C/ca.pem" --auth psk --psk-file "$BAD" --json >"$T_DIR/a.out" 2>&1
rc=$?
check "wrong pre-shared key: exit 6" [ "$rc" -eq 6 ]
# version 2's psk: the console's proof goes first, the client refuses it and tells the uniform failure
check "wrong pre-shared key: the client refuses the console's proof (CC_ERR_AUTH_BAD_CREDENTIALS)" \
    has "$T_DIR/a.out" '"code":"CC_ERR_AUTH_BAD_CREDENTIALS","message":"client: the user name or password is incorrect'

# --- garbage and a peer that hangs up mid-handshake; the client keeps serving ---
# (each in a subshell: the client may hang up first, and SIGPIPE must not end this script)
(printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >/dev/tcp/127.0.0.1/$CLIENT_PORT) 2>/dev/null
(printf 'CCPY\002\002\000\001' >/dev/tcp/127.0.0.1/$CLIENT_PORT) 2>/dev/null
(printf 'CCPY\001\001\000\001' >/dev/tcp/127.0.0.1/$CLIENT_PORT) 2>/dev/null
sleep 0.3
check "client: garbage preamble gives CC_ERR_BAD_MAGIC naming what it got" \
    grep -q '"code":"CC_ERR_BAD_MAGIC","message":"expected the Carbon Copy preamble \\"CCPY\\", got \\"GET / HT' "$T_DIR/main.out"
check "client: a console closing after the preamble gives CC_ERR_CLOSED" has "$T_DIR/main.out" '"code":"CC_ERR_CLOSED"'
check "client: a version 1 (pre-release) console gives CC_ERR_BAD_VERSION" has "$T_DIR/main.out" '"code":"CC_ERR_BAD_VERSION","message":"the peer speaks protocol versions 1..1, this library 2..2'
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" >/dev/null 2>&1
check "client still serves a good console after bad ones" [ $? -eq 0 ]
kill "$CLIENT_PID"

# --- wrong name on the certificate ---
start_client other --cert "$C/other.pem" --key "$C/other.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" || exit 1
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --json >"$T_DIR/n.out" 2>&1
rc=$?
check "certificate for another name: exit 4 with CC_ERR_CERT_MISMATCH" exited "$rc" 4 "$T_DIR/n.out" '"code":"CC_ERR_CERT_MISMATCH"'
kill "$CLIENT_PID"

# --- licence denied: exit 5 on the console, the figures in the message ---
start_client full "${CLIENT_ARGS[@]}" --license-file "$FULL" --once || exit 1
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --json >"$T_DIR/l.out" 2>&1
rc=$?
check "licence denied: exit 5" [ "$rc" -eq 5 ]
check "licence denied: the console is told the figures" has "$T_DIR/l.out" '"event":"license","count":10,"in_use":10,"granted":false,"code":"CC_ERR_LICENSE_DENIED"'
check "licence denied: the message says 10 of 10" has "$T_DIR/l.out" '10 of 10 in use'
wait_pid "$CLIENT_PID" 5
check "client --once exits 5 after a denied licence" [ "$WAIT_RC" -eq 5 ]

# --- connecting: refused port, unknown name, a peer that never answers ---
CLIENT_PORT=1 console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --json >"$T_DIR/r.out" 2>&1
rc=$?
check "connection refused: exit 3 with CC_ERR_CONNECT" exited "$rc" 3 "$T_DIR/r.out" '"code":"CC_ERR_CONNECT"'
"$CC_BIN/cc-console" no-such-host.invalid --auth psk --psk-file "$PSK" --timeout 5000 --json >"$T_DIR/d.out" 2>&1
rc=$?
check "unknown name: exit 3 with CC_ERR_RESOLVE" exited "$rc" 3 "$T_DIR/d.out" '"code":"CC_ERR_RESOLVE"'
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(5)' >"$T_DIR/silent.port" &
T_PIDS+=($!)
for i in $(seq 50); do [ -s "$T_DIR/silent.port" ] && break; sleep 0.05; done
CLIENT_PORT=$(cat "$T_DIR/silent.port")
start=$(date +%s%N)
console --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --timeout 400 --json >"$T_DIR/s.out" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a peer that stalls: exit 7 with CC_ERR_TIMEOUT" exited "$rc" 7 "$T_DIR/s.out" '"code":"CC_ERR_TIMEOUT"'
check "the stall is cut at the deadline (400 ms, took $ms ms)" [ "$ms" -lt 3000 ]

# --- usage ---
for prog in cc-console cc-client; do
    v=$("$CC_BIN/$prog" --version)
    check "$prog --version: exit 0, prints the library's version" \
        sh -c "[ $? -eq 0 ] && [ '$v' = '$prog $(sed -n 's/^#define CC_VERSION_STRING "\(.*\)"$/\1/p' "$CC_SRC/include/carboncopy.h")' ]"
done
"$CC_BIN/cc-console" >/dev/null 2>&1
check "cc-console without a host: exit 2" [ $? -eq 2 ]
"$CC_BIN/cc-client" --listen 127.0.0.1:0 >/dev/null 2>&1
check "cc-client without a certificate: exit 2" [ $? -eq 2 ]
"$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$C/client.pem" --key "$C/client.key" >"$T_DIR/u1" 2>&1
check "cc-client without any authentication: exit 2, says which options" \
    sh -c "[ $? -eq 2 ] && grep -q 'give --accounts, --keytab or --auth psk' '$T_DIR/u1'"
"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" --realm EXAMPLE >"$T_DIR/u2" 2>&1
check "cc-client --realm without --keytab: exit 2" sh -c "[ $? -eq 2 ] && grep -q -- '--realm needs --keytab' '$T_DIR/u2'"

t_done
