#!/usr/bin/env bash
# test-tls.sh -- probes cc-client's TLS with `openssl s_client`: protocol
# version 2 is TLS 1.3 only (TLS 1.2 and older are refused with an alert). A
# small relay speaks the cleartext preamble, then passes s_client's bytes on.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || exit 1
start_client tls --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$(t_psk k)" \
    --license-file "$(t_license_page 3 1)" || exit 1

# relay.py: accepts one connection per probe, exchanges the preamble with cc-client, then relays.
cat >"$T_DIR/relay.py" <<'PY'
import socket, sys, threading
target = int(sys.argv[1])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
print(ls.getsockname()[1], flush=True)
ls.settimeout(60)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
while True:
    try: c, _ = ls.accept()
    except OSError: break
    u = socket.create_connection(("127.0.0.1", target), timeout=10)
    u.sendall(b"CCPY\x02\x02\x00\x01")
    pre = b""
    while len(pre) < 8:
        d = u.recv(8 - len(pre))
        if not d: break
        pre += d
    u.settimeout(None)
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
/usr/bin/python3 "$T_DIR/relay.py" "$CLIENT_PORT" >"$T_DIR/relay.port" &
T_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T_DIR/relay.port" ] && break; sleep 0.05; done
RP=$(cat "$T_DIR/relay.port")

probe() { # s_client options... ; prints s_client's output
    timeout 10 openssl s_client -connect "127.0.0.1:$RP" -CAfile "$C/ca.pem" -verify_return_error \
        -servername localhost "$@" </dev/null 2>&1
}
out=$(probe)
check "default: TLS 1.3 is negotiated" grep -q 'New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384' <<<"$out"
check "the client presents the test certificate (verify ok)" grep -q 'Verify return code: 0 (ok)' <<<"$out"
# Version 2 requires TLS 1.3 (doc/PROTOCOL.md 2): every TLS 1.2 offer, with or without
# EMS, forward secrecy or AEAD, is refused with a protocol_version alert.
refused='no protocols available|alert protocol version|wrong version|unsupported protocol'
out=$(probe -tls1_2)
check "TLS 1.2 is refused, even with an ECDHE AEAD suite" grep -qE "$refused" <<<"$out"
check "TLS 1.2: no cipher is agreed" sh -c "! grep -qE 'Cipher is ECDHE' <<'X'
$out
X"
out=$(probe -tls1_1)
check "TLS 1.1 is refused" grep -qE "$refused" <<<"$out"
out=$(probe -tls1_2 -cipher 'AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384')
check "TLS 1.2 without forward secrecy (RSA key exchange) is refused" grep -qE "$refused|handshake failure|no shared cipher|alert" <<<"$out"
out=$(probe -tls1_2 -cipher 'ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA')
check "TLS 1.2 CBC suites are refused" grep -qE "$refused|handshake failure|no shared cipher|alert" <<<"$out"
out=$(probe -tls1_2 -no_ems 2>&1)
if grep -qi 'unknown option' <<<"$out"; then
    echo "ok - TLS 1.2 without extended master secret: # skip, this s_client has no -no_ems"
else
    check "TLS 1.2 without extended master secret is refused" grep -qE "$refused" <<<"$out"
fi
sleep 0.3
check "the client logged the refused probes as TLS failures" grep -q '"code":"CC_ERR_TLS"' "$T_DIR/tls.out"
t_done
