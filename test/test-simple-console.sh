#!/usr/bin/env bash
# test-simple-console.sh -- examples/simple-console (the loop an embedder copies) against the real
# cc-client with NT security: a right password reaches established and exits 0, a wrong one fails.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
GRANT=$(t_license_page 25 7)
H=$(printf '%s' alice-pw | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}')
[ ${#H} -eq 32 ] || { echo "not ok - NT hash of the test password (openssl md4)"; exit 1; }
printf 'alice:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-5F5E1000:\n' "$H" >"$T_DIR/smbpasswd"
has() { grep -qF -- "$2" "$1"; }
simple() { # NAME PASSWORD: output in $T_DIR/NAME.out, status in RC
    printf '%s\n' "$2" | timeout 30 "$CC_BIN/simple-console" 127.0.0.1 "$CLIENT_PORT" "$C/ca.pem" alice WORKGROUP \
        >"$T_DIR/$1.out" 2>&1
    RC=$?
}

start_client nt --cert "$C/client.pem" --key "$C/client.key" --license-file "$GRANT" \
    --accounts "$T_DIR/smbpasswd" --echo || exit 1

simple right alice-pw
check "right password: exit 0" [ "$RC" -eq 0 ]
check "right password: reaches established" has "$T_DIR/right.out" 'state: established'
check "right password: licence figures and identity printed" \
    sh -c "grep -qF 'licence granted: 7 of 25 in use' '$T_DIR/right.out' &&
           grep -qF 'authenticated as WORKGROUP\\alice' '$T_DIR/right.out'"
check "right password: closes in order" has "$T_DIR/right.out" 'closed: done'
check "client: the session was established" has "$T_DIR/nt.out" '"identity":"WORKGROUP\\alice"'

simple wrong not-the-password
check "wrong password: exits non-zero" [ "$RC" -ne 0 ]
check "wrong password: reports CC_ERR_AUTH_BAD_CREDENTIALS" has "$T_DIR/wrong.out" 'CC_ERR_AUTH_BAD_CREDENTIALS: '
check "wrong password: never established" bash -c "! grep -q 'state: established' '$T_DIR/wrong.out'"

"$CC_BIN/simple-console" >/dev/null 2>&1 </dev/null
check "without arguments: usage, exit 2" [ $? -eq 2 ]
t_done
