#!/usr/bin/env bash
# test-uv-console.sh -- examples/uv-console (the libuv host: uv_poll per socket, uv_timer, jobs on
# uv_queue_work) against the real cc-client --echo: established, the echo back, an orderly close
# and exit 0, with psk and with the built-in nt; the errors (nobody listening, a wrong pin, a wrong
# CA, a client that never answers, no echo) print the reason and exit non-zero; and a name with two
# addresses, where connect attempts are removed and a new socket gets a closed one's number; and
# kerberos against a real KDC, whose job runs on libuv's thread pool.
. "$(dirname "$0")/lib.sh"

if [ ! -x "$CC_BIN/uv-console" ]; then
    if pkg-config --exists libuv; then
        echo "not ok - libuv is installed but make did not build $CC_BIN/uv-console"
        exit 1
    fi
    echo "# skip: libuv not found by pkg-config (Debian: libuv1-dev), uv-console not built"
    exit 77
fi

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
GRANT=$(t_license_page 25 7)
PIN=$(cat "$C/client.sha256")
H=$(printf '%s' tech-pw | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}')
[ ${#H} -eq 32 ] || { echo "not ok - NT hash of the test password (openssl md4)"; exit 1; }
printf 'tech:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n' "$H" >"$T_DIR/smbpasswd"
printf 'tech-pw\n' >"$T_DIR/tech.pw"
has() { grep -qF -- "$2" "$1"; }
hasnt() { ! grep -qF -- "$2" "$1"; }
# uv NAME ARGS...: runs uv-console ARGS (bounded), stdout and stderr in $T_DIR/NAME.out, status in RC
uv() {
    local name=$1; shift
    timeout 60 "$CC_BIN/uv-console" "$@" >"$T_DIR/$name.out" 2>&1
    RC=$?
}
MSG="hello through libuv, $$"

start_client main --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" --auth psk \
    --psk-file "$PSK" --accounts "$T_DIR/smbpasswd" --echo || exit 1
PORT=$CLIENT_PORT # start_client sets CLIENT_PORT again below

# --- the whole process, then a message echoed ---
uv psk --ca "$C/ca.pem" --psk-file "$PSK" --user alice --message "$MSG" 127.0.0.1 "$CLIENT_PORT"
check "psk, --ca: exit 0" [ "$RC" -eq 0 ]
check "psk, --ca: established by psk" has "$T_DIR/psk.out" 'established: psk as psk:alice, TLSv1.3'
check "psk, --ca: the message is sent" has "$T_DIR/psk.out" "sent ${#MSG} bytes on channel 1"
check "psk, --ca: the echo comes back whole" has "$T_DIR/psk.out" "echo received: ${#MSG} bytes, as sent"
check "psk, --ca: orderly close after the echo" \
    awk '/^echo received/ { e = 1 } e && /^state: closed$/ { c = 1 } e && c && /^closed: done$/ { ok = 1 } END { exit !ok }' \
    "$T_DIR/psk.out"
check "psk, --ca: nothing on stderr's error path" hasnt "$T_DIR/psk.out" 'uv-console:'
check "client: the session was established for psk:alice" has "$T_DIR/main.out" '"identity":"psk:alice"'

uv pin --pin "$PIN" --psk-file "$PSK" 127.0.0.1 "$CLIENT_PORT"
check "psk, --pin: exit 0 with the echo" bash -c "[ $RC -eq 0 ] && grep -q '^echo received: ' '$T_DIR/pin.out'"

uv nt --ca "$C/ca.pem" --auth nt --user tech --domain WORKGROUP --password-file "$T_DIR/tech.pw" 127.0.0.1 "$CLIENT_PORT"
check "built-in nt: exit 0, established as WORKGROUP\\tech (escaped on output), the echo back" \
    bash -c "[ $RC -eq 0 ] && grep -qF 'established: nt as WORKGROUP\\\\tech' '$T_DIR/nt.out' &&
             grep -q '^echo received: ' '$T_DIR/nt.out'"

# --- failures: cc_strerror, the constant and cc_session_errmsg's detail; non-zero exit ---
FREE=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uv refused --ca "$C/ca.pem" --psk-file "$PSK" 127.0.0.1 "$FREE"
check "nobody listening: exit 1" [ "$RC" -eq 1 ]
check "nobody listening: the error and the detail" \
    has "$T_DIR/refused.out" "uv-console: could not connect to the client on any of its addresses (CC_ERR_CONNECT): cannot connect to 127.0.0.1:$FREE: Connection refused"
check "nobody listening: never established" hasnt "$T_DIR/refused.out" 'established'

uv badpin --pin "$(printf '%064d' 0)" --psk-file "$PSK" 127.0.0.1 "$CLIENT_PORT"
check "wrong pin: exit 1" [ "$RC" -eq 1 ]
check "wrong pin: CC_ERR_CERT_MISMATCH with the certificate's fingerprint" \
    has "$T_DIR/badpin.out" "(CC_ERR_CERT_MISMATCH): the client's certificate has SHA-256 fingerprint $PIN, not the pinned one"
check "wrong pin: never established" hasnt "$T_DIR/badpin.out" 'established'

uv badca --ca "$C/other-ca.pem" --psk-file "$PSK" 127.0.0.1 "$CLIENT_PORT"
check "wrong CA: exit 1 with CC_ERR_CERT_UNTRUSTED" \
    bash -c "[ $RC -eq 1 ] && grep -qF '(CC_ERR_CERT_UNTRUSTED): ' '$T_DIR/badca.out'"

# A peer that takes the connection and never says a word: only the session's timer (uv_timer,
# armed from the timer callback) can end it, at the handshake deadline.
python3 -c '
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
print(l.getsockname()[1], flush=True)
time.sleep(120)' >"$T_DIR/silent.port" &
T_PIDS+=($!)
for i in $(seq 1 100); do [ -s "$T_DIR/silent.port" ] && break; sleep 0.05; done
uv silent --timeout 500 --ca "$C/ca.pem" --psk-file "$PSK" 127.0.0.1 "$(cat "$T_DIR/silent.port")"
check "silent peer: the handshake deadline ends it, exit 1 with CC_ERR_TIMEOUT" \
    bash -c "[ $RC -eq 1 ] && grep -qF '(CC_ERR_TIMEOUT): ' '$T_DIR/silent.out'"
check "silent peer: it got as far as the preamble" has "$T_DIR/silent.out" 'state: preamble'

start_client noecho-client --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" --auth psk \
    --psk-file "$PSK" || exit 1
uv noecho --ca "$C/ca.pem" --psk-file "$PSK" --timeout 1000 127.0.0.1 "$CLIENT_PORT"
CLIENT_PORT=$PORT
check "a client without --echo: established, then the idle deadline: exit 1 with CC_ERR_IDLE_TIMEOUT" \
    bash -c "[ $RC -eq 1 ] && grep -q '^state: established' '$T_DIR/noecho.out' &&
             grep -qF '(CC_ERR_IDLE_TIMEOUT): ' '$T_DIR/noecho.out' && ! grep -q '^echo received' '$T_DIR/noecho.out'"

"$CC_BIN/uv-console" >/dev/null 2>&1 </dev/null
check "without arguments: usage, exit 2" [ $? -eq 2 ]
# Setup errors, before any connection: each names what is wrong, exit 1.
uv noca --ca "$T_DIR/absent-ca.pem" --psk-file "$PSK" 127.0.0.1 "$CLIENT_PORT"
check "a CA file that is not there: exit 1, CC_ERR_TLS_CONFIG naming the file" \
    bash -c "[ $RC -eq 1 ] && grep -qF 'uv-console: --ca: ' '$T_DIR/noca.out' &&
             grep -qF '(CC_ERR_TLS_CONFIG): ' '$T_DIR/noca.out' && grep -qF '$T_DIR/absent-ca.pem' '$T_DIR/noca.out'"
uv badpinarg --pin not-hex --psk-file "$PSK" 127.0.0.1 "$CLIENT_PORT"
check "a pin that is not 64 hex digits: exit 1, CC_ERR_INVALID with the reason" \
    bash -c "[ $RC -eq 1 ] && grep -qF 'uv-console: --pin: invalid argument (CC_ERR_INVALID): the pin must be 64 hex digits' '$T_DIR/badpinarg.out'"
uv nokey --ca "$C/ca.pem" --auth psk 127.0.0.1 "$CLIENT_PORT"
check "--auth psk without --psk-file: exit 1, says so" \
    bash -c "[ $RC -eq 1 ] && grep -qF 'uv-console: --auth psk needs --psk-file' '$T_DIR/nokey.out'"
uv nomech --ca "$C/ca.pem" --auth bogus 127.0.0.1 "$CLIENT_PORT"
check "an unknown mechanism: exit 1, CC_ERR_AUTH_UNAVAILABLE" \
    bash -c "[ $RC -eq 1 ] && grep -qF '(CC_ERR_AUTH_UNAVAILABLE): ' '$T_DIR/nomech.out'"
uv nopw --ca "$C/ca.pem" --auth nt --user tech --password-file "$T_DIR/absent.pw" 127.0.0.1 "$CLIENT_PORT"
check "a password file that is not there: exit 1, names it" \
    bash -c "[ $RC -eq 1 ] && grep -qF 'cannot open $T_DIR/absent.pw' '$T_DIR/nopw.out'"
check "setup errors: no connection is attempted" \
    bash -c "! grep -l '^state: ' '$T_DIR'/{noca,badpinarg,nokey,nomech,nopw}.out"

# --- a name with two addresses, ::1 first (RFC 8305), where nothing answers: ::1:PORT is a
# listener whose backlog is full, so its SYNs go unanswered; 127.0.0.1:PORT is the client. The
# name comes from a hosts file of our own, bound over /etc/hosts in a private mount namespace.
printf '::1 uv-two\n127.0.0.1 uv-two\n' >"$T_DIR/hosts"
if unshare -rm sh -c 'mount --bind "$0" /etc/hosts' "$T_DIR/hosts" 2>/dev/null &&
    python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    python3 -c '
import socket, sys, time
l = socket.socket(socket.AF_INET6); l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
l.bind(("::1", int(sys.argv[1]))); l.listen(0)
fill = []
for i in range(3):
    s = socket.socket(socket.AF_INET6); s.setblocking(False)
    try: s.connect(("::1", int(sys.argv[1])))
    except BlockingIOError: pass
    fill.append(s)
print("ready", flush=True)
time.sleep(120)' "$CLIENT_PORT" >"$T_DIR/full.out" 2>&1 &
    T_PIDS+=($!)
    for i in $(seq 1 100); do [ -s "$T_DIR/full.out" ] && break; sleep 0.05; done
    two() { # NAME ARGS...
        local name=$1; shift
        timeout 60 unshare -rm sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$T_DIR/hosts" \
            "$CC_BIN/uv-console" --verbose --pin "$PIN" --psk-file "$PSK" "$@" uv-two "$CLIENT_PORT" \
            >"$T_DIR/$name.out" 2>&1
        RC=$?
    }
    check "two addresses: ready (a full backlog on [::1]:$CLIENT_PORT)" grep -q '^ready$' "$T_DIR/full.out"
    # Default timeouts: ::1 still connecting when 127.0.0.1 starts 250 ms later and wins; the
    # loser's socket is removed.
    two race
    check "two addresses, raced: exit 0 with the echo" \
        bash -c "[ $RC -eq 0 ] && grep -q '^echo received: ' '$T_DIR/race.out'"
    check "two addresses, raced: the ::1 attempt was watched for writing, then removed" \
        awk '/^socket [0-9]+: out \(new handle\)$/ && !fd { fd = $2 } fd && $0 == "socket " fd " remove" { ok = 1 }
             END { exit !ok }' "$T_DIR/race.out"
    # --connect-timeout 100 (less than the 250 ms stagger): the ::1 attempt times out alone, its
    # socket is removed and closed, and the next attempt's socket usually gets the same number: a
    # new uv_poll handle while the old one is still closing.
    two reuse --connect-timeout 100
    check "two addresses, one at a time: exit 0 with the echo" \
        bash -c "[ $RC -eq 0 ] && grep -q '^echo received: ' '$T_DIR/reuse.out'"
    check "two addresses, one at a time: the first socket is removed before the next is added" \
        awk '/\(new handle\)$/ { n++ } / remove$/ && n == 1 { r = 1 } /\(new handle\)$/ && n == 2 && r { ok = 1 }
             END { exit !ok }' "$T_DIR/reuse.out"
    if awk '/\(new handle\)$/ && !fd { fd = $2; next } fd && $0 == "socket " fd " remove" { gone = 1 }
            gone && /\(new handle\)$/ && $2 == fd { ok = 1 } END { exit !ok }' "$T_DIR/reuse.out"; then
        ok "two addresses, one at a time: the second socket reused the first one's number, on a new handle"
    else
        ok "two addresses, one at a time # skip: the system gave the second socket another number"
    fi
else
    ok "two addresses # skip: no unprivileged mount namespace (unshare -rm, mount --bind) or no ::1 here"
fi

# --- kerberos against a throw-away MIT KDC: the password is turned into tickets by an auth job,
# which runs on libuv's thread pool (uv_queue_work) and comes back in the after-work callback ---
. "$CC_SRC/test/fixtures/kdc.sh"
K=$T_DIR/kdc
if kdc_start "$K" CC.TEST && kdc_addprinc alice alice-pw && kdc_addprinc host/127.0.0.1 &&
    kdc_ktadd "$K/service.keytab" host/127.0.0.1; then
    T_PIDS+=("$KDC_PID")
    printf 'alice-pw\n' >"$T_DIR/alice.pw"
    printf 'wrong\n' >"$T_DIR/wrong.pw"
    start_client krb-client --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
        --keytab "$K/service.keytab" --echo || exit 1
    KRB5CCNAME=FILE:$K/none.cc uv krb --ca "$C/ca.pem" --auth kerberos --user alice --password-file "$T_DIR/alice.pw" \
        127.0.0.1 "$CLIENT_PORT"
    check "kerberos (a job on the pool): exit 0, established as alice@CC.TEST, the echo back" \
        bash -c "[ $RC -eq 0 ] && grep -qF 'established: kerberos as alice@CC.TEST' '$T_DIR/krb.out' &&
                 grep -q '^echo received: ' '$T_DIR/krb.out'"
    check "kerberos: the client reports the identity alice@CC.TEST" has "$T_DIR/krb-client.out" '"identity":"alice@CC.TEST"'
    KRB5CCNAME=FILE:$K/none.cc uv krbbad --ca "$C/ca.pem" --auth kerberos --user alice --password-file "$T_DIR/wrong.pw" \
        127.0.0.1 "$CLIENT_PORT"
    check "kerberos, wrong password: exit 1 with CC_ERR_AUTH_BAD_CREDENTIALS" \
        bash -c "[ $RC -eq 1 ] && grep -qF '(CC_ERR_AUTH_BAD_CREDENTIALS): ' '$T_DIR/krbbad.out'"
    check "kerberos: the password never reaches the output" \
        bash -c "! grep -q alice-pw '$T_DIR/krb.out' '$T_DIR/krbbad.out'"
    # A KDC that never answers (UDP and TCP bound, nothing read): the auth job blocks on a pool
    # thread up to its own timeout, but the handshake deadline ends the session first; the job,
    # when it comes back, is freed (the session is gone), and only then does the loop end.
    python3 -c '
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", u.getsockname()[1])); t.listen(8)
print(u.getsockname()[1], flush=True)
time.sleep(120)' >"$T_DIR/mute.port" &
    T_PIDS+=($!)
    for i in $(seq 1 100); do [ -s "$T_DIR/mute.port" ] && break; sleep 0.05; done
    sed "s/kdc = 127.0.0.1:[0-9]*/kdc = 127.0.0.1:$(cat "$T_DIR/mute.port")/" "$KRB5_CONFIG" >"$T_DIR/mute.conf"
    KRB5_CONFIG=$T_DIR/mute.conf KRB5CCNAME=FILE:$K/none.cc uv krbmute --timeout 1000 --ca "$C/ca.pem" --auth kerberos \
        --user alice --password-file "$T_DIR/alice.pw" 127.0.0.1 "$CLIENT_PORT"
    check "kerberos, a KDC that never answers: the handshake deadline ends it, exit 1 with CC_ERR_TIMEOUT" \
        bash -c "[ $RC -eq 1 ] && grep -qF '(CC_ERR_TIMEOUT): ' '$T_DIR/krbmute.out'"
    check "kerberos, a KDC that never answers: the job was still out on the pool at the deadline" \
        has "$T_DIR/krbmute.out" 'a job handed to the host has not come back'
else
    not_ok "KDC started with alice and host/127.0.0.1"
fi
t_done
