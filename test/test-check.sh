#!/usr/bin/env bash
# test-check.sh -- cc-console --check (one line or JSON object per step, the failing step's exit
# code) and the certificate diagnostics (cause and remedy, no phrase twice), against cc-client.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
BAD=$(t_psk bad)
GRANT=$(t_license_page 25 7)
FULL=$(t_license_page 10 10)
has() { grep -q -- "$2" "$1"; }
hasnt() { ! grep -q -- "$2" "$1"; }
# line_of FILE REGEX: the number of the first line matching (empty if none)
line_of() { grep -nE -- "$2" "$1" | head -1 | cut -d: -f1; }
before() { local a b; a=$(line_of "$1" "$2"); b=$(line_of "$1" "$3"); [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]; }
# No four words in a row said twice on any line ("not trusted: ... not trusted").
no_repeats() {
    /usr/bin/python3 - "$1" <<'PY'
import sys
bad = 0
for line in open(sys.argv[1], errors="replace"):
    w = [x.strip(".,;:()\"").lower() for x in line.split()]
    seen = set()
    for i in range(len(w) - 3):
        g = tuple(w[i:i + 4])
        if g in seen:
            print("# said twice:", " ".join(g), "in:", line.strip())
            bad = 1
            break
        seen.add(g)
sys.exit(bad)
PY
}
# Every line is a JSON object with "event":"check" and a "step".
all_check_json() {
    /usr/bin/python3 - "$1" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
ok = bool(lines)
for l in lines:
    o = json.loads(l)
    ok = ok and o.get("event") == "check" and isinstance(o.get("step"), str) and isinstance(o.get("ok"), bool)
sys.exit(0 if ok else 1)
PY
}
# step_json FILE STEP KEY VALUE: the STEP object has KEY equal to VALUE (JSON text, e.g. true, "x", 3)
step_json() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
f, step, key, val = sys.argv[1:5]
want = json.loads(val)
objs = [json.loads(l) for l in open(f) if l.strip()]
sys.exit(0 if any(o.get("step") == step and o.get(key) == want for o in objs) else 1)
PY
}
CONSOLE=("$CC_BIN/cc-console" --auth psk --psk-file "$PSK")

# --- 1. a good check: every step, in the order the connection takes them ---
start_client main --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" --echo || exit 1
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --user alice --check >"$T_DIR/ok.out" 2>"$T_DIR/ok.err"
check "good: exit 0" [ $? -eq 0 ]
check "good: resolve lists the address" grep -qE '^resolve +ok: 127\.0\.0\.1 has 1 address: 127\.0\.0\.1$' "$T_DIR/ok.out"
check "good: connect names the address and says ok" grep -qE "^connect +127\\.0\\.0\\.1:$CLIENT_PORT: ok\$" "$T_DIR/ok.out"
check "good: preamble ok" grep -qE '^preamble +ok' "$T_DIR/ok.out"
check "good: the TLS version and cipher" grep -qE '^tls +ok: TLSv1\.[23], [A-Z0-9_-]+$' "$T_DIR/ok.out"
exp=$(openssl x509 -in "$C/client.pem" -noout -enddate | cut -d= -f2)
exp=$(date -u -d "$exp" '+%Y-%m-%d %H:%M:%S UTC')
check "good: the certificate's subject, issuer and expiry ($exp), trusted by the CA file" \
    grep -qF "certificate  ok: subject CN=localhost, issuer CN=libcarboncopy test CA, expires $exp; trusted by $C/ca.pem" "$T_DIR/ok.out"
check "good: the licence verdict and figures" grep -qE '^licence +ok: granted, 7 of 25 in use$' "$T_DIR/ok.out"
check "good: the mechanism" grep -qE '^mechanism +ok: psk$' "$T_DIR/ok.out"
check "good: the identity, and that the client proved itself" grep -qE '^identity +ok: psk:alice; the client proved itself through the mechanism too$' "$T_DIR/ok.out"
check "good: closed without a data session, then \"check passed\"" \
    bash -c "tail -2 '$T_DIR/ok.out' | head -1 | grep -qE '^close +ok: closed without a data session\$' && tail -1 '$T_DIR/ok.out' | grep -qx 'check passed'"
check "good: resolve, connect, preamble, tls, certificate come in that order" \
    bash -c "$(declare -f line_of before); before '$T_DIR/ok.out' ^resolve ^connect && before '$T_DIR/ok.out' ^connect ^preamble && before '$T_DIR/ok.out' ^preamble ^tls && before '$T_DIR/ok.out' ^tls ^certificate"
check "good: licence and identity before close" \
    bash -c "$(declare -f line_of before); before '$T_DIR/ok.out' ^licence ^close && before '$T_DIR/ok.out' ^identity ^close"
check "good: nothing on stderr" [ ! -s "$T_DIR/ok.err" ]
sleep 0.3
check "good: the client saw the session closed with reason \"check\" and no data" grep -q '"event":"closed","session":[0-9]*,"reason":"check"' "$T_DIR/main.out"

"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --trace >"$T_DIR/trace.out" 2>"$T_DIR/trace.err"
check "--check --trace: exit 0, the steps on stdout, the state timings on stderr" \
    bash -c "[ $? -eq 0 ] && grep -qx 'check passed' '$T_DIR/trace.out' && grep -qE '^\\[ *[0-9.]+ ms\\] established ' '$T_DIR/trace.err'"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --trace >"$T_DIR/trace2.out" 2>"$T_DIR/trace2.err"
check "--trace: the address connected to under \"preamble\"" \
    bash -c "[ $? -eq 0 ] && grep -A1 '\\] preamble ' '$T_DIR/trace2.err' | grep -qE '^ +connected to 127\\.0\\.0\\.1:$CLIENT_PORT\$'"
check "--trace: the TLS version, cipher and certificate once TLS is done" \
    grep -qE "^ +TLSv1\\.[23] [A-Z0-9_-]+; certificate CN=localhost, issued by CN=libcarboncopy test CA, expires $exp\$" "$T_DIR/trace2.err"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --json >"$T_DIR/ok.json" 2>"$T_DIR/ok.jerr"
check "good --json: exit 0" [ $? -eq 0 ]
check "good --json: every line a JSON object with event check, step and ok" all_check_json "$T_DIR/ok.json"
for s in resolve connect preamble tls certificate licence mechanism identity close; do
    check "good --json: step $s ok" step_json "$T_DIR/ok.json" "$s" ok true
done
check "good --json: resolve has the addresses" step_json "$T_DIR/ok.json" resolve addresses '["127.0.0.1"]'
check "good --json: connect has the address" step_json "$T_DIR/ok.json" connect address "\"127.0.0.1:$CLIENT_PORT\""
check "good --json: the certificate's subject" step_json "$T_DIR/ok.json" certificate subject '"CN=localhost"'
check "good --json: the certificate's issuer" step_json "$T_DIR/ok.json" certificate issuer '"CN=libcarboncopy test CA"'
check "good --json: the certificate's not-after" step_json "$T_DIR/ok.json" certificate not_after "\"$exp\""
check "good --json: the certificate's fingerprint" step_json "$T_DIR/ok.json" certificate sha256 "\"$(cat "$C/client.sha256")\""
check "good --json: the licence figures" step_json "$T_DIR/ok.json" licence in_use 7
check "good --json: the mechanism" step_json "$T_DIR/ok.json" mechanism mechanism '"psk"'
check "good --json: the result, exit 0" step_json "$T_DIR/ok.json" result exit 0

# --- 2. the failing step and its exit code ---
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --send "$GRANT" >"$T_DIR/send.out" 2>&1
check "--check with --send: usage (exit 2)" [ $? -eq 2 ]
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$BAD" --check >"$T_DIR/bad.out" 2>&1
check "wrong key: exit 6" [ $? -eq 6 ]
check "wrong key: mechanism ok, identity FAILED" bash -c "grep -qE '^mechanism +ok: psk\$' '$T_DIR/bad.out' && grep -qE '^identity +FAILED: ' '$T_DIR/bad.out'"
check "wrong key: one FAILED line, then the exit code" bash -c "[ \$(grep -c FAILED '$T_DIR/bad.out') -eq 2 ] && tail -1 '$T_DIR/bad.out' | grep -qx 'check FAILED (exit 6)'"
# a port nothing listens on: the client's own port once it is gone
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check >"$T_DIR/refused.out" 2>&1
check "refused: exit 3" [ $? -eq 3 ]
check "refused: the address and \"refused\"" grep -qE "^connect +127\\.0\\.0\\.1:$CLIENT_PORT: refused\$" "$T_DIR/refused.out"
check "refused: no step after connect" hasnt "$T_DIR/refused.out" '^preamble'
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" >"$T_DIR/refused-h.out" 2>"$T_DIR/refused-h.err"
check "refused, without --check: exit 3, the address said once" \
    bash -c "[ $? -eq 3 ] && [ \$(grep -o '127\\.0\\.0\\.1:$CLIENT_PORT' '$T_DIR/refused-h.err' | wc -l) -eq 1 ] && grep -q 'Connection refused' '$T_DIR/refused-h.err'"
check "refused, without --check: no phrase twice" no_repeats "$T_DIR/refused-h.err"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --json >"$T_DIR/refused.json" 2>&1
check "refused --json: connect result refused" step_json "$T_DIR/refused.json" connect result '"refused"'
check "refused --json: result exit 3" step_json "$T_DIR/refused.json" result exit 3
if /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    "${CONSOLE[@]}" "[::1]:$CLIENT_PORT" --check >"$T_DIR/refused6.out" 2>&1
    check "refused on IPv6: exit 3, the address in brackets" \
        bash -c "[ $? -eq 3 ] && grep -qE '^connect +\\[::1\\]:$CLIENT_PORT: refused\$' '$T_DIR/refused6.out'"
    "${CONSOLE[@]}" "[::1]:$CLIENT_PORT" >"$T_DIR/refused6-h.out" 2>"$T_DIR/refused6-h.err"
    check "refused on IPv6, without --check: [::1]:PORT once, never ::1:PORT" \
        bash -c "[ $? -eq 3 ] && [ \$(grep -o '\\[::1\\]:$CLIENT_PORT' '$T_DIR/refused6-h.err' | wc -l) -eq 1 ] && ! grep -q ' ::1:' '$T_DIR/refused6-h.err'"
else
    echo "# skip: no IPv6 loopback: the bracketed connect line is not checked"
fi
"${CONSOLE[@]}" "name.invalid:1680" --check >"$T_DIR/resolve.out" 2>&1
check "unresolvable: exit 3, resolve FAILED naming the host" \
    bash -c "[ $? -eq 3 ] && grep -qE '^resolve +FAILED: name\\.invalid: ' '$T_DIR/resolve.out'"
# a listener whose backlog is full answers no SYN: the connect times out
/usr/bin/python3 - "$T_DIR/backlog.port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
cs = []
for i in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    cs.append(c)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(60)
PY
BL_PID=$!
T_PIDS+=("$BL_PID")
for i in $(seq 1 100); do [ -s "$T_DIR/backlog.port" ] && break; sleep 0.05; done
"${CONSOLE[@]}" "127.0.0.1:$(cat "$T_DIR/backlog.port")" --check --timeout 500 >"$T_DIR/slow.out" 2>&1
rc=$?
if grep -q 'timeout' "$T_DIR/slow.out"; then
    check "no answer: exit 3, the address and \"timeout\"" \
        bash -c "[ $rc -eq 3 ] && grep -qE '^connect +127\\.0\\.0\\.1:[0-9]+: timeout \\(no answer within 500 ms\\)\$' '$T_DIR/slow.out'"
else
    echo "# skip: this kernel answered the full backlog ($(head -2 "$T_DIR/slow.out" | tail -1))"
fi
kill "$BL_PID" 2>/dev/null

start_client full --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$FULL" || exit 1
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check >"$T_DIR/denied.out" 2>&1
check "licence denied: exit 5" [ $? -eq 5 ]
check "licence denied: the licence line FAILED with its figures, once" \
    bash -c "grep -qE '^licence +FAILED: .*10 of 10 in use' '$T_DIR/denied.out' && [ \$(grep -o '10 of 10' '$T_DIR/denied.out' | wc -l) -eq 1 ]"
check "licence denied: no phrase twice" no_repeats "$T_DIR/denied.out"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --json >"$T_DIR/full.json" 2>&1
check "licence denied --json: granted false, code and errno" \
    bash -c "$(declare -f step_json); step_json '$T_DIR/full.json' licence granted false && step_json '$T_DIR/full.json' licence errno $(t_errnum CC_ERR_LICENSE_DENIED)"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

# --- 3. certificate diagnostics: the cause and the remedy ---
start_client cert --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" || exit 1
P=$CLIENT_PORT
"${CONSOLE[@]}" "127.0.0.1:$P" --ca "$C/other-ca.pem" >"$T_DIR/wrongca.out" 2>"$T_DIR/wrongca.err"
check "wrong CA: exit 4" [ $? -eq 4 ]
check "wrong CA: names the issuer and the CA file, and says to give the issuing CA" \
    grep -qF "cc-console: the client's certificate (CN=localhost) was issued by CN=libcarboncopy test CA, which is not among the CAs in $C/other-ca.pem (--ca): give the file of the CA that issued it" "$T_DIR/wrongca.err"
check "wrong CA: no phrase twice" no_repeats "$T_DIR/wrongca.err"
check "wrong CA: \"not trusted\" not repeated" bash -c "[ \$(grep -o 'not trusted' '$T_DIR/wrongca.err' | wc -l) -le 1 ]"
"${CONSOLE[@]}" "127.0.0.1:$P" --ca "$C/other-ca.pem" --json >"$T_DIR/wrongca.json" 2>&1
check "wrong CA --json: the error keeps its code, the message is the explanation, errno last" \
    grep -qE "^\\{\"event\":\"error\",\"code\":\"CC_ERR_CERT_UNTRUSTED\",\"message\":\"the client's certificate \\(CN=localhost\\) was issued by [^\"]*\",\"errno\":$(t_errnum CC_ERR_CERT_UNTRUSTED)\\}\$" "$T_DIR/wrongca.json"
"${CONSOLE[@]}" "127.0.0.1:$P" >"$T_DIR/noca.out" 2>"$T_DIR/noca.err"
check "no --ca or --pin: exit 4" [ $? -eq 4 ]
check "no --ca or --pin: the advice names --ca FILE and --pin SHA256, with the fingerprint" \
    bash -c "grep -qF 'no --ca or --pin was given, so the system store was used): give the client'\"'\"'s CA with --ca FILE, or pin this certificate with --pin SHA256 (its SHA-256 is $(cat "$C/client.sha256"))' '$T_DIR/noca.err'"
check "no --ca or --pin: no phrase twice" no_repeats "$T_DIR/noca.err"
"${CONSOLE[@]}" "127.0.0.1:$P" --pin "$(cat "$C/client.sha256")" >"$T_DIR/pin.out" 2>&1
check "no --ca or --pin: the pin it names works (exit 0)" [ $? -eq 0 ]
"${CONSOLE[@]}" "127.0.0.1:$P" --ca "$C/other-ca.pem" --check >"$T_DIR/wrongca-check.out" 2>&1
check "wrong CA, --check: exit 4, the certificate step FAILED with the explanation" \
    bash -c "[ $? -eq 4 ] && grep -qE '^certificate +FAILED: the client.s certificate \\(CN=localhost\\) was issued by' '$T_DIR/wrongca-check.out'"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

start_client other --cert "$C/other.pem" --key "$C/other.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" || exit 1
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" >"$T_DIR/name.out" 2>"$T_DIR/name.err"
check "name mismatch: exit 4" [ $? -eq 4 ]
check "name mismatch: the names the certificate carries against the name connected to" \
    grep -qF "cc-console: the client's certificate (CN=other.example) is for DNS:other.example, not for 127.0.0.1, the name connected to" "$T_DIR/name.err"
check "name mismatch: no phrase twice" no_repeats "$T_DIR/name.err"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --json >"$T_DIR/name.json" 2>&1
check "name mismatch --json: CC_ERR_CERT_MISMATCH with the names" \
    grep -qE '"code":"CC_ERR_CERT_MISMATCH","message":"[^"]*is for DNS:other\.example, not for 127\.0\.0\.1' "$T_DIR/name.json"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

# an expired certificate issued by the test CA (openssl 3.0's req/x509 cannot back-date)
/usr/bin/python3 - "$C" "$T_DIR/expired" <<'PY'
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
certs, out = sys.argv[1], sys.argv[2]
ca_key = serialization.load_pem_private_key(open(certs + "/ca.key", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(certs + "/ca.pem", "rb").read())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256()))
open(out + ".pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(out + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
check "python3-cryptography made an expired certificate" [ -s "$T_DIR/expired.pem" ]
xexp=$(date -u -d "$(openssl x509 -in "$T_DIR/expired.pem" -noout -enddate | cut -d= -f2)" '+%Y-%m-%d %H:%M:%S UTC')
start_client expired --cert "$T_DIR/expired.pem" --key "$T_DIR/expired.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" || exit 1
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" >"$T_DIR/exp.out" 2>"$T_DIR/exp.err"
check "expired: exit 4" [ $? -eq 4 ]
check "expired: \"the client's certificate (CN=localhost) expired on $xexp\"" \
    grep -qF "cc-console: the client's certificate (CN=localhost) expired on $xexp: the client needs a new one" "$T_DIR/exp.err"
check "expired: not \"check the CA file\"" hasnt "$T_DIR/exp.err" 'check the CA file'
check "expired: no phrase twice" no_repeats "$T_DIR/exp.err"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --json >"$T_DIR/exp.json" 2>&1
check "expired, --check --json: the certificate step fails with the date" \
    bash -c "$(declare -f step_json); step_json '$T_DIR/exp.json' certificate code '\"CC_ERR_CERT_UNTRUSTED\"' && grep -q 'expired on $xexp' '$T_DIR/exp.json' && step_json '$T_DIR/exp.json' result exit 4"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

# a certificate whose names carry an escape sequence: quoted, never sent to the terminal raw
/usr/bin/python3 - "$C" "$T_DIR/evil" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
certs, out = sys.argv[1], sys.argv[2]
ca_key = serialization.load_pem_private_key(open(certs + "/ca.key", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(certs + "/ca.pem", "rb").read())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil\x1b[2Jname")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil\x1b[2J.example")]), False)
        .sign(ca_key, hashes.SHA256()))
open(out + ".pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(out + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
start_client evil --cert "$T_DIR/evil.pem" --key "$T_DIR/evil.key" --auth psk --psk-file "$PSK" --license-file "$GRANT" || exit 1
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" >"$T_DIR/evil-h.out" 2>"$T_DIR/evil-h.err"
check "ESC in the certificate's names: exit 4, the names quoted (\\x1b), no raw ESC" \
    bash -c "[ $? -eq 4 ] && grep -qF 'is for DNS:evil\\x1b[2J.example, not for 127.0.0.1' '$T_DIR/evil-h.err' && ! grep -q \$'\\x1b' '$T_DIR/evil-h.err'"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check >"$T_DIR/evil-c.out" 2>&1
check "ESC in the certificate's names, --check: no raw ESC" bash -c "grep -q '^certificate  FAILED' '$T_DIR/evil-c.out' && ! grep -q \$'\\x1b' '$T_DIR/evil-c.out'"
"${CONSOLE[@]}" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --check --json >"$T_DIR/evil-c.json" 2>&1
check "ESC in the certificate's names, --check --json: valid JSON, the ESC as \\u001b" \
    bash -c "$(declare -f all_check_json); all_check_json '$T_DIR/evil-c.json' && grep -qF 'DNS:evil\\u001b[2J.example' '$T_DIR/evil-c.json'"
kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null

# --- 4. files that cannot be used: exit 2, naming the file ---
"${CONSOLE[@]}" 127.0.0.1:1 --ca "$T_DIR/no-such-ca.pem" >"$T_DIR/f1.out" 2>&1
check "--ca missing: exit 2" [ $? -eq 2 ]
check "--ca missing: names the file and why" grep -qF "cc-console: cannot read the CA file $T_DIR/no-such-ca.pem (--ca): No such file or directory" "$T_DIR/f1.out"
"${CONSOLE[@]}" 127.0.0.1:1 --ca "$PSK" >"$T_DIR/f2.out" 2>&1
check "--ca not PEM: exit 2, naming the file" bash -c "[ $? -eq 2 ] && grep -qF '$PSK (--ca) holds no certificate in PEM form' '$T_DIR/f2.out'"
check "--ca: no raw OpenSSL text" bash -c "! grep -q 'error:[0-9A-F]*:' '$T_DIR/f1.out' '$T_DIR/f2.out'"
if [ "$(id -u)" -ne 0 ]; then
    cp "$C/ca.pem" "$T_DIR/locked.pem" && chmod 000 "$T_DIR/locked.pem"
    "${CONSOLE[@]}" 127.0.0.1:1 --ca "$T_DIR/locked.pem" >"$T_DIR/f3.out" 2>&1
    check "--ca unreadable: exit 2, Permission denied" bash -c "[ $? -eq 2 ] && grep -q 'locked.pem (--ca): Permission denied' '$T_DIR/f3.out'"
else
    echo "# skip: root reads a mode 000 file: the unreadable case is not run"
fi
"$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$T_DIR/no-such.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" \
    --license-file "$GRANT" >"$T_DIR/f4.out" 2>&1
check "cc-client --cert missing: exit 2" [ $? -eq 2 ]
check "cc-client --cert missing: names the file" grep -qF "cc-client: cannot read the certificate file $T_DIR/no-such.pem (--cert): No such file or directory" "$T_DIR/f4.out"
"$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$C/client.pem" --key "$T_DIR/no-such.key" --auth psk --psk-file "$PSK" \
    --license-file "$GRANT" >"$T_DIR/f5.out" 2>&1
check "cc-client --key missing: exit 2, naming the file" bash -c "[ $? -eq 2 ] && grep -qF 'cannot read the key file $T_DIR/no-such.key (--key)' '$T_DIR/f5.out'"
"$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$PSK" --key "$C/client.key" --auth psk --psk-file "$PSK" \
    --license-file "$GRANT" >"$T_DIR/f6.out" 2>&1
check "cc-client --cert not PEM: exit 2, naming the file" bash -c "[ $? -eq 2 ] && grep -qF '$PSK (--cert) holds no certificate in PEM form' '$T_DIR/f6.out'"

t_done
