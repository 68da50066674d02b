#!/usr/bin/env bash
# test-nt-e2e.sh -- NT authentication end to end through cc-console and cc-client:
# right and wrong passwords, unknown and disabled accounts, and the KDC account check; a
# refused console learns one failure for every cause unless the client discloses it.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
GRANT=$(t_license_page 25 7)
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
H=$(nthash alice-pw)
[ ${#H} -eq 32 ] || { echo "not ok - NT hash of the test password (openssl md4)"; exit 1; }
X=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX
cat >"$T_DIR/smbpasswd" <<EOT
# smbpasswd of the end-to-end test
alice:1000:$X:$H:[U          ]:LCT-5F5E1000:
bob:1001:$X:$H:[U          ]:LCT-5F5E1000:
carol:1002:$X:$H:[DU         ]:LCT-5F5E1000:
nohash:1003:$X:$X:[U          ]:LCT-5F5E1000:
EOT
printf 'alice-pw\n' >"$T_DIR/alice.pw"
printf 'not-the-password\n' >"$T_DIR/wrong.pw"
has() { grep -q -- "$2" "$1"; }
console() { # NAME USER DOMAIN PWFILE
    "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth nt --user "$2" --domain "$3" \
        --password-file "$4" --json >"$T_DIR/$1.out" 2>"$T_DIR/$1.err"
}
# expect NAME USER DOMAIN PWFILE EXIT CODE: the console's exit status and error code
expect() {
    local name=$1 code=$6 rc
    console "$@"
    rc=$?
    if [ "$rc" -eq "$5" ] && { [ -z "$code" ] || has "$T_DIR/$name.out" "\"code\":\"$code\""; }; then
        ok "$name: exit $5${code:+ with $code}"
    else
        not_ok "$name: exit $5${code:+ with $code}" "exit $rc" "$(cat "$T_DIR/$name.out" "$T_DIR/$name.err")"
    fi
}

# What a refused console is told, whatever the cause, unless the client discloses it
# (cc_context_set_auth_disclosure): a stranger cannot tell which accounts exist.
UNIFORM="the user name or password is incorrect (the client's own log has the cause)"
# refused NAME USER DOMAIN PWFILE CAUSE: the console exits 6 with CC_ERR_AUTH_BAD_CREDENTIALS and
# the uniform text, no word of the cause; the client's own output (its last auth event, in
# $CLIENT_OUT) has the cause's code. The client prints that event before it answers the console.
BAD_CRED=$(t_errnum CC_ERR_AUTH_BAD_CREDENTIALS)
refused() {
    local name=$1 cause=$5 rc line
    console "$@"
    rc=$?
    line=$(grep -a '"event":"auth"' "$CLIENT_OUT" | tail -n 1)
    if [ "$rc" -eq 6 ] &&
        grep -qF "{\"event\":\"error\",\"code\":\"CC_ERR_AUTH_BAD_CREDENTIALS\",\"message\":\"client: $UNIFORM\",\"errno\":$BAD_CRED}" \
            "$T_DIR/$name.out" &&
        grep -qF "\"ok\":false,\"message\":\"$UNIFORM\",\"code\":\"CC_ERR_AUTH_BAD_CREDENTIALS\",\"errno\":$BAD_CRED}" "$T_DIR/$name.out" &&
        ! grep -qE '"message":"(client: )?nt: |CC_ERR_AUTH_(UNKNOWN_USER|DISABLED|EXPIRED)' "$T_DIR/$name.out" &&
        [[ $line == *"\"code\":\"$cause\""* ]]; then
        ok "$name: exit 6; the console is told only CC_ERR_AUTH_BAD_CREDENTIALS, the client's output has $cause"
    else
        not_ok "$name: exit 6; the console is told only CC_ERR_AUTH_BAD_CREDENTIALS, the client's output has $cause" \
            "exit $rc" "$(cat "$T_DIR/$name.out" "$T_DIR/$name.err")" "client: $line"
    fi
}

# --- local account store only ---
start_client local --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" || exit 1
CLIENT_OUT=$T_DIR/local.out
expect right alice WORKGROUP "$T_DIR/alice.pw" 0 ""
check "right password: console established with mechanism nt" has "$T_DIR/right.out" '"event":"established","mechanism":"nt"'
check "right password: client reports the identity WORKGROUP\\alice" \
    has "$T_DIR/local.out" '"identity":"WORKGROUP\\\\alice"'
refused wrong alice WORKGROUP "$T_DIR/wrong.pw" CC_ERR_AUTH_BAD_CREDENTIALS
refused unknown mallory WORKGROUP "$T_DIR/alice.pw" CC_ERR_AUTH_UNKNOWN_USER
refused disabled carol WORKGROUP "$T_DIR/alice.pw" CC_ERR_AUTH_DISABLED
refused nohash nohash WORKGROUP "$T_DIR/alice.pw" CC_ERR_AUTH_DISABLED
refused otherdomain alice ELSEWHERE "$T_DIR/alice.pw" CC_ERR_AUTH_UNKNOWN_USER
check "client: the refusal is logged with its code" has "$T_DIR/local.out" '"ok":false,"message":"nt: NTProofStr does not match'
check "client: each cause is in its own output" bash -c "grep -q 'account \\\\\"mallory\\\\\" is not in the local account store' '$T_DIR/local.out' &&
    grep -q 'account \\\\\"carol\\\\\" is disabled' '$T_DIR/local.out' && grep -q 'domain \\\\\"ELSEWHERE\\\\\" is not served here' '$T_DIR/local.out'"
check "client: no password or hash in its output" \
    bash -c "! grep -qiE 'alice-pw|$H' '$T_DIR/local.out' '$T_DIR/local.err'"
expect again alice "" "$T_DIR/alice.pw" 0 ""
# Five failed proofs from 127.0.0.1 in a row: the next console waited 250 ms doubling to
# CC_TIMEOUT_AUTH_BACKOFF (4 s) before the client read its preamble, and was still served.
ms=$(grep -o '"state":"tls","ms":[0-9]*' "$T_DIR/again.out" | grep -o '[0-9]*$')
check "after five failed proofs the next console from the address waited (${ms:-?} ms to TLS, at least 3500)" \
    [ "${ms:-0}" -ge 3500 ]
kill "$CLIENT_PID"

# --- the client discloses the cause (cc-client --auth-disclosure): the console learns it ---
start_client disc --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --auth-disclosure || exit 1
expect disc-right alice WORKGROUP "$T_DIR/alice.pw" 0 ""
expect disc-wrong alice WORKGROUP "$T_DIR/wrong.pw" 6 CC_ERR_AUTH_BAD_CREDENTIALS
check "disclosed: the console is told the wrong password's cause" has "$T_DIR/disc-wrong.out" '"message":"client: nt: NTProofStr does not match'
expect disc-unknown mallory WORKGROUP "$T_DIR/alice.pw" 6 CC_ERR_AUTH_UNKNOWN_USER
check "disclosed: the console is told the account is not in the store" \
    has "$T_DIR/disc-unknown.out" 'account \\"mallory\\" is not in the local account store'
expect disc-disabled carol WORKGROUP "$T_DIR/alice.pw" 6 CC_ERR_AUTH_DISABLED
expect disc-nohash nohash WORKGROUP "$T_DIR/alice.pw" 6 CC_ERR_AUTH_DISABLED
expect disc-otherdomain alice ELSEWHERE "$T_DIR/alice.pw" 6 CC_ERR_AUTH_UNKNOWN_USER
check "disclosed: no console was told the uniform text" \
    bash -c "! grep -qF \"$UNIFORM\" '$T_DIR'/disc-*.out"
kill "$CLIENT_PID"

# --- with the domain controller's account check (a real MIT KDC) ---
. "$CC_SRC/test/fixtures/kdc.sh"
if kdc_start "$T_DIR/kdc" CC.TEST && kdc_addprinc alice alice-kdc-pw && kdc_addprinc dave dave-kdc-pw &&
    kdc_addprinc carol carol-kdc-pw; then
    ok "KDC started"
else
    not_ok "KDC started"
    t_done
fi
# the library must find the KDC through --krb5-conf alone
KRB5CONF=$KRB5_CONFIG
unset KRB5_CONFIG KRB5_KDC_PROFILE KRB5CCNAME KRB5_KTNAME KRB5_CLIENT_KTNAME
start_client dc --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --dc-realm CC.TEST --krb5-conf "$KRB5CONF" || exit 1
CLIENT_OUT=$T_DIR/dc.out
expect dc-right alice CC "$T_DIR/alice.pw" 0 ""
check "dc: client reports CC\\alice" has "$T_DIR/dc.out" '"identity":"CC\\\\alice"'
refused dc-kdc-unknown bob CC "$T_DIR/alice.pw" CC_ERR_AUTH_UNKNOWN_USER
check "dc: bob is refused because the KDC does not know him" has "$T_DIR/dc.out" 'KDC of CC.TEST does not know the account bob'
refused dc-store-missing dave CC "$T_DIR/alice.pw" CC_ERR_AUTH_UNKNOWN_USER
check "dc: dave (in the KDC, not in the store) is refused by the store" \
    has "$T_DIR/dc.out" 'account \\"dave\\" is not in the local account store'
refused dc-wrong alice CC "$T_DIR/wrong.pw" CC_ERR_AUTH_BAD_CREDENTIALS
check "dc: the KDC log shows the probes and no failed pre-authentication" \
    bash -c "grep -q 'NEEDED_PREAUTH: alice@CC.TEST' '$(kdc_log)' && ! grep -qE 'PREAUTH_FAILED|Preauthentication failed' '$(kdc_log)'"
kdc_stop
expect dc-stopped alice CC "$T_DIR/alice.pw" 6 CC_ERR_AUTH_KDC_UNREACHABLE
kill "$CLIENT_PID"

# --- best effort: an unreachable KDC is tolerated, nothing else ---
start_client be --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --dc-realm CC.TEST --krb5-conf "$KRB5CONF" --dc-check best-effort || exit 1
CLIENT_OUT=$T_DIR/be.out
expect be-right alice CC "$T_DIR/alice.pw" 0 ""
refused be-wrong alice CC "$T_DIR/wrong.pw" CC_ERR_AUTH_BAD_CREDENTIALS
kill "$CLIENT_PID"
"$CC_BIN/cc-client" --listen 127.0.0.1:0 --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --dc-check sometimes >/dev/null 2>"$T_DIR/dcc.err"
rc=$?
check "cc-client --dc-check sometimes: usage error (exit 2) naming the option" \
    bash -c "[ $rc -eq 2 ] && grep -q 'dc-check is' '$T_DIR/dcc.err'"
t_done
