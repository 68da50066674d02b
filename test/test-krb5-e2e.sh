#!/usr/bin/env bash
# test-krb5-e2e.sh -- Kerberos authentication end to end through cc-console and cc-client
# against a throw-away MIT KDC: ticket, password, mutual authentication, and each refusal
# with its exit code.
. "$(dirname "$0")/lib.sh"
. "$CC_SRC/test/fixtures/kdc.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
GRANT=$(t_license_page 25 7)
K=$T_DIR/kdc
if kdc_start "$K" CC.TEST && kdc_addprinc alice alice-pw && kdc_addprinc host/localhost &&
    kdc_addprinc host/127.0.0.1 && kdc_ktadd "$K/service.keytab" host/localhost &&
    kdc_ktadd "$K/service.keytab" host/127.0.0.1 && kdc_addprinc cc/other &&
    kdc_ktadd "$K/other.keytab" cc/other; then
    ok "KDC started with alice, host/localhost, host/127.0.0.1 and keytabs"
else
    not_ok "KDC started"
    t_done
fi
T_PIDS+=("$KDC_PID")
printf 'alice-pw\n' >"$T_DIR/alice.pw"
printf 'wrong\n' >"$T_DIR/wrong.pw"
has() { grep -q -- "$2" "$1"; }

console() { # NAME CCACHE ARGS...
    local name=$1 cc=$2
    shift 2
    KRB5CCNAME=$cc "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth kerberos --json "$@" \
        >"$T_DIR/$name.out" 2>"$T_DIR/$name.err"
}
# expect NAME EXIT CODE CCACHE ARGS...: the console's exit status and error code
expect() {
    local name=$1 want=$2 code=$3 rc
    shift 3
    console "$name" "$@"
    rc=$?
    if [ "$rc" -eq "$want" ] && { [ -z "$code" ] || has "$T_DIR/$name.out" "\"code\":\"$code\""; }; then
        ok "$name: exit $want${code:+ with $code}"
    else
        not_ok "$name: exit $want${code:+ with $code}" "exit $rc" "$(cat "$T_DIR/$name.out" "$T_DIR/$name.err")"
    fi
}

kdc_kinit alice alice-pw -c "FILE:$K/alice.cc" || not_ok "kinit alice"

start_client main --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --keytab "$K/service.keytab" || exit 1
expect ticket 0 "" "FILE:$K/alice.cc"
check "ticket: console established with mechanism kerberos" has "$T_DIR/ticket.out" '"mechanism":"kerberos"'
check "ticket: client reports the identity alice@CC.TEST" has "$T_DIR/main.out" '"identity":"alice@CC.TEST"'
check "ticket: the client proved itself with its AP-REP (\"mutual\":true)" \
    has "$T_DIR/ticket.out" '"event":"established","mechanism":"kerberos",.*"mutual":true'
expect require-mutual 0 "" "FILE:$K/alice.cc" --require-mutual
check "--require-mutual: kerberos is offered and established, \"mutual\":true" \
    has "$T_DIR/require-mutual.out" '"event":"established","mechanism":"kerberos",.*"mutual":true'
expect password 0 "" "FILE:$K/none.cc" --user alice --password-file "$T_DIR/alice.pw"
check "password: the password never reaches the logs" \
    bash -c "! grep -q alice-pw '$T_DIR/password.out' '$T_DIR/password.err' '$T_DIR/main.out' '$T_DIR/main.err'"
expect service 0 "" "FILE:$K/alice.cc" --service host/localhost@CC.TEST
expect no-ticket 6 CC_ERR_AUTH_NO_CREDENTIALS "FILE:$K/none.cc"
# The console's own KDC refuses these two (the client never hears of them), so the console
# knows the precise cause; what a client tells a refused console is checked in test-nt-e2e.sh.
expect wrong-password 6 CC_ERR_AUTH_BAD_CREDENTIALS "FILE:$K/none.cc" --user alice --password-file "$T_DIR/wrong.pw"
expect unknown-user 6 CC_ERR_AUTH_UNKNOWN_USER "FILE:$K/none.cc" --user mallory --password-file "$T_DIR/alice.pw"
kill "$CLIENT_PID"

start_client wrongkt --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --keytab "$K/other.keytab" || exit 1
expect keytab 6 CC_ERR_AUTH_KEYTAB "FILE:$K/alice.cc"
check "keytab: the client says what to do" has "$T_DIR/wrongkt.out" 'export the current key'
kill "$CLIENT_PID"

start_client realm --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --keytab "$K/service.keytab" --realm EXAMPLE.COM || exit 1
expect realm 6 CC_ERR_AUTH_POLICY "FILE:$K/alice.cc"
kill "$CLIENT_PID"

start_client svc --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --keytab "$K/service.keytab" --service host/localhost@CC.TEST --realm CC.TEST || exit 1
expect svc-ok 0 "" "FILE:$K/alice.cc" --service host/localhost@CC.TEST
expect svc-other 6 CC_ERR_AUTH_KEYTAB "FILE:$K/alice.cc"
kill "$CLIENT_PID"

# The KDC stopped: a password cannot be turned into a ticket.
start_client nokdc --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --keytab "$K/service.keytab" || exit 1
kdc_stop
expect kdc-stopped 6 CC_ERR_AUTH_KDC_UNREACHABLE "FILE:$K/none.cc" --user alice --password-file "$T_DIR/alice.pw"
kill "$CLIENT_PID"
t_done
