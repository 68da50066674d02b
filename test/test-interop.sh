#!/usr/bin/env bash
# test-interop.sh -- cc-client against a console whose authentication engines we did not write:
# test/interop/console.py on ccpeer.py's wire, with python3-ntlm-auth (nt, its OEM NEGOTIATE as it
# ships) and python3-gssapi (kerberos, against a throw-away MIT KDC), both bound to the TLS
# connection by a tls-exporter value the console derives itself. Established, echo, and the
# refusals: a wrong password (the uniform bad-credentials failure), another connection's binding,
# no binding.
. "$(dirname "$0")/lib.sh"
. "$CC_SRC/test/fixtures/kdc.sh"

PY=/usr/bin/python3 # Debian's python, where python3-ntlm-auth and python3-gssapi are (.ci/packages)
CONSOLE=$CC_SRC/test/interop/console.py
export PYTHONDONTWRITEBYTECODE=1
for mod in ntlm_auth gssapi; do
    if ! "$PY" -c "import $mod" 2>/dev/null; then
        not_ok "$PY can import $mod" "install the packages of .ci/packages: .ci/install-deps"
        t_done
    fi
done

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
GRANT=$(t_license_page 25 7)
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
H=$(nthash alice-pw)
[ ${#H} -eq 32 ] || { echo "not ok - NT hash of the test password (openssl md4)"; exit 1; }
printf 'alice:1000:%s:%s:[U          ]:LCT-5F5E1000:\n' XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX "$H" >"$T_DIR/smbpasswd"
printf 'alice-pw\n' >"$T_DIR/alice.pw"
printf 'not-the-password\n' >"$T_DIR/wrong.pw"

K=$T_DIR/kdc
if kdc_start "$K" CC.TEST && kdc_addprinc alice alice-pw && kdc_addprinc host/127.0.0.1 &&
    kdc_ktadd "$K/service.keytab" host/127.0.0.1 && kdc_kinit alice alice-pw -c "FILE:$K/alice.cc"; then
    ok "KDC started with alice and host/127.0.0.1; alice has a ticket"
else
    not_ok "KDC started"
    t_done
fi
T_PIDS+=("$KDC_PID")
export KRB5CCNAME=FILE:$K/alice.cc

start_client main --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --keytab "$K/service.keytab" --echo || exit 1

# run NAME ARGS...: the interop console's JSON lines in $T_DIR/NAME.out, its exit status in RC.
# Each refusal connects from its own loopback address, so the client's wait after failed
# proofs from one address (doc/AUTH-NT.md) never holds up the next case.
run() {
    local name=$1
    shift
    mkdir -p "$T_DIR/tmp"
    TMPDIR=$T_DIR/tmp timeout 60 "$PY" "$CONSOLE" 127.0.0.1 "$CLIENT_PORT" --ca "$C/ca.pem" "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err"
    RC=$?
}
has() { grep -qF -- "$2" "$T_DIR/$1.out"; }
# the client's last auth event for the console's address
client_auth() { grep -a '"event":"auth"' "$T_DIR/main.out" | grep -F "\"peer\":\"$1:" | tail -n 1; }
client_says() { [[ $(client_auth "$1") == *"$2"* ]]; } # ADDRESS TEXT
shows() { # NAME WHAT: show the console's output when a check fails
    echo "exit $RC" "$(cat "$T_DIR/$1.out" "$T_DIR/$1.err")"
}
expect() { # NAME EXIT TEXT-IN-OUTPUT...
    local name=$1 want=$2 s
    shift 2
    local good=1
    [ "$RC" -eq "$want" ] || good=0
    for s in "$@"; do has "$name" "$s" || good=0; done
    if [ $good = 1 ]; then ok "$name: exit $want; $*"; else not_ok "$name: exit $want; $*" "$(shows "$name")"; fi
}

# --- NTLM: python3-ntlm-auth as it ships ---
NT=(--mech nt --user alice --domain WORKGROUP)
run nt "${NT[@]}" --password-file "$T_DIR/alice.pw" --echo "hello from ntlm-auth"
expect nt 0 '"version": "TLSv1.3"' '"event": "established", "mechanism": "nt", "identity": "WORKGROUP\\alice"' \
    '"event": "echo", "ok": true'
check "nt: ntlm-auth's NEGOTIATE is OEM-only (0xe2889032); the CHALLENGE answers in OEM (0xa2898206)" \
    bash -c "grep -qF '\"NEGOTIATE\", \"flags\": \"0xe2889032\"' '$T_DIR/nt.out' &&
             grep -qF '\"CHALLENGE\", \"flags\": \"0xa2898206\"' '$T_DIR/nt.out'"
check "nt: the client reports WORKGROUP\\alice established" \
    bash -c "grep -qF '\"event\":\"established\"' '$T_DIR/main.out' && grep -qF 'WORKGROUP\\\\alice' '$T_DIR/main.out'"
check "nt: the licence was granted before the result" has nt '"event": "license", "code": 0, "granted": 1'

run nt-wrong "${NT[@]}" --password-file "$T_DIR/wrong.pw" --source 127.0.7.1
expect nt-wrong 6 '"code": "CC_ERR_AUTH_BAD_CREDENTIALS", "number": -62' \
    "the user name or password is incorrect (the client's own log has the cause)"
check "nt-wrong: the client's own output has the cause (NTProofStr)" \
    client_says 127.0.7.1 'NTProofStr does not match'

run nt-other "${NT[@]}" --password-file "$T_DIR/alice.pw" --binding other --source 127.0.7.2
expect nt-other 6 '"code": "CC_ERR_AUTH_CHANNEL_BINDING"' 'belong to another TLS connection'

run nt-none "${NT[@]}" --password-file "$T_DIR/alice.pw" --binding none --source 127.0.7.3
expect nt-none 6 '"code": "CC_ERR_AUTH_CHANNEL_BINDING"' 'carries no MsvAvChannelBindings'

# --- Kerberos: python3-gssapi, the ticket from the KDC ---
KRB=(--mech kerberos --service host/127.0.0.1@CC.TEST)
run krb "${KRB[@]}" --echo "hello from python-gssapi"
expect krb 0 '"gss_framed": true' '"event": "established", "mechanism": "kerberos", "identity": "alice@CC.TEST", "mutual": true' \
    '"event": "echo", "ok": true'

run krb-other "${KRB[@]}" --binding other --source 127.0.7.4
expect krb-other 6 '"code": "CC_ERR_AUTH_CHANNEL_BINDING"'
check "krb-other: the client's own output says why" \
    client_says 127.0.7.4 '"code":"CC_ERR_AUTH_CHANNEL_BINDING"'

run krb-none "${KRB[@]}" --binding none --source 127.0.7.5
expect krb-none 6 '"code": "CC_ERR_AUTH_CHANNEL_BINDING"'

# A wrong Kerberos password never reaches the client: the console's own KDC refuses it.
KRB5CCNAME=FILE:$K/wrong.cc kdc_kinit alice not-the-password -c "FILE:$K/wrong.cc" >/dev/null 2>&1
KRB5CCNAME=FILE:$K/wrong.cc run krb-wrong "${KRB[@]}" --source 127.0.7.6
expect krb-wrong 1 '"event": "error"'
check "krb-wrong: the client saw no authentication from that console" [ -z "$(client_auth 127.0.7.6)" ]

check "no password, hash or exporter secret in any output" \
    bash -c "! grep -qiE 'alice-pw|$H|EXPORTER_SECRET' '$T_DIR'/*.out '$T_DIR'/*.err"
check "the console's TLS key logs are gone" bash -c "[ -z \"\$(ls -A '$T_DIR/tmp')\" ]"
kill "$CLIENT_PID"
t_done
