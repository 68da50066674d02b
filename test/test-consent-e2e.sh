#!/usr/bin/env bash
# test-consent-e2e.sh -- the consent stage end to end: cc-client --consent-command asks a script
# (who asks in its environment; exit 0 accepts, 3 says nobody is logged on, others refuse; killed
# at --consent-timeout), cc-console prints the wait and the verdict and exits 9 when refused.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
GRANT=$(t_license_page 25 7)
CLIENT_ARGS=(--cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT")
console() { "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" "$@"; }
has() { grep -q -- "$2" "$1"; }
# exited RC WANT FILE PATTERN: the exit status is WANT and FILE has PATTERN (both asserted)
exited() { [ "$1" -eq "$2" ] && has "$3" "$4"; }

cat >"$T_DIR/yes.sh" <<EOF
#!/bin/sh
env | grep '^CC_CONSENT_' >>"$T_DIR/yes.env"
exit 0
EOF
cat >"$T_DIR/no.sh" <<'EOF'
#!/bin/sh
exit 1
EOF
cat >"$T_DIR/nobody.sh" <<'EOF'
#!/bin/sh
exit 3
EOF
cat >"$T_DIR/slow.sh" <<EOF
#!/bin/sh
sleep 30 &
echo \$! >"$T_DIR/slow.pid"
wait
exit 0
EOF
chmod +x "$T_DIR"/yes.sh "$T_DIR"/no.sh "$T_DIR"/nobody.sh "$T_DIR"/slow.sh

# --- accepted: the console is told it waits, then established; the script saw who asks ---
start_client yes "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/yes.sh" || exit 1
console --user alice --json >"$T_DIR/y.out" 2>"$T_DIR/y.err"
rc=$?
check "accepted: exit 0" [ "$rc" -eq 0 ]
check "the console reports the wait with the client's deadline" \
    has "$T_DIR/y.out" '^{"event":"consent","waiting":true,"client_timeout_ms":60000,'
check "the console reports the verdict, then established" \
    sh -c "grep -n '\"verdict\":\"given\"' '$T_DIR/y.out' | cut -d: -f1 | head -1 >'$T_DIR/y.n1' &&
           grep -n '\"event\":\"established\"' '$T_DIR/y.out' | cut -d: -f1 >'$T_DIR/y.n2' &&
           [ \$(cat '$T_DIR/y.n1') -lt \$(cat '$T_DIR/y.n2') ]"
check "the command's environment names the identity" has "$T_DIR/yes.env" '^CC_CONSENT_IDENTITY=psk:alice$'
check "... the mechanism" has "$T_DIR/yes.env" '^CC_CONSENT_MECHANISM=psk$'
check "... and the address" has "$T_DIR/yes.env" '^CC_CONSENT_ADDRESS=127.0.0.1$'
check "the client's audit line: granted, who, why" \
    has "$T_DIR/yes.out" '"event":"consent","session":1,"granted":true,"identity":"psk:alice","mechanism":"psk","unattended":false,"detail":"the consent command accepted",'
check "the client's audit line carries the time" has "$T_DIR/yes.out" '"event":"consent",.*"ts":"'
console --user bob >"$T_DIR/y2.out" 2>&1
check "human output: the wait and the verdict" \
    sh -c "[ $? -eq 0 ] && grep -q '^waiting for the consent of the person at the client (it waits up to 60000 ms)$' '$T_DIR/y2.out' && grep -q '^consent given$' '$T_DIR/y2.out'"

# --- reconnected: the resumed sessions ask nobody (doc/RECONNECT.md), so one wait, one verdict ---
count() { grep -c -- "$2" "$1"; }
: >"$T_DIR/yes.env"
console --user alice --json --reconnect 2 >"$T_DIR/r.out" 2>"$T_DIR/r.err"
rc=$?
check "reconnected twice after consent: exit 0" [ "$rc" -eq 0 ]
check "... three established lines, two resumed" \
    sh -c "[ \$(grep -c '\"event\":\"established\"' '$T_DIR/r.out') -eq 3 ] &&
           [ \$(grep -c '\"event\":\"established\",.*\"resumed\":true' '$T_DIR/r.out') -eq 2 ]"
check "... one consent wait and one verdict on the console" \
    sh -c "[ \$(grep -c '\"waiting\":true' '$T_DIR/r.out') -eq 1 ] && [ \$(grep -c '\"verdict\":\"given\"' '$T_DIR/r.out') -eq 1 ]"
check "... the consent command ran once" [ "$(count "$T_DIR/yes.env" '^CC_CONSENT_IDENTITY=')" -eq 1 ]

# --- refused: exit 9 on the console, the code on both sides ---
start_client no "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/no.sh" --once || exit 1
console --json >"$T_DIR/n.out" 2>&1
check "refused: exit 9, CC_ERR_CONSENT_REFUSED with the command's status" \
    exited $? 9 "$T_DIR/n.out" '"event":"error","code":"CC_ERR_CONSENT_REFUSED","message":"client: the consent command refused (exit status 1)"'
check "refused: the console's verdict line" has "$T_DIR/n.out" '"event":"consent","waiting":false,"verdict":"refused"'
wait_pid "$CLIENT_PID" 10
check "refused: cc-client --once exits 9" [ "$WAIT_RC" -eq 9 ]
check "refused: the client's audit line" \
    has "$T_DIR/no.out" '"event":"consent","session":1,"granted":false,.*"code":"CC_ERR_CONSENT_REFUSED","errno":-80'

# --- nobody logged on: refused by default, let in with --consent-unattended-ok ---
start_client nobody "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/nobody.sh" || exit 1
console >"$T_DIR/b.out" 2>&1
check "nobody logged on, default policy: exit 9, says why" exited $? 9 "$T_DIR/b.out" 'nobody is logged on'
start_client nobody-ok "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/nobody.sh" --consent-unattended-ok || exit 1
console >"$T_DIR/b2.out" 2>&1
check "nobody logged on, --consent-unattended-ok: exit 0" [ $? -eq 0 ]
check "... and the audit line says nobody was there" has "$T_DIR/nobody-ok.out" '"event":"consent",.*"granted":true,.*"unattended":true'

# --- no answer in time: the command is killed, exit 9 with CC_ERR_CONSENT_TIMEOUT ---
start_client slow "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/slow.sh" --consent-timeout 1500 --timeout 1000 || exit 1
console --json >"$T_DIR/s.out" 2>&1
check "no answer: exit 9 with CC_ERR_CONSENT_TIMEOUT (not the 1000 ms handshake deadline)" \
    exited $? 9 "$T_DIR/s.out" '"event":"error","code":"CC_ERR_CONSENT_TIMEOUT"'
gone=1
for i in $(seq 1 100); do
    [ -s "$T_DIR/slow.pid" ] && ! kill -0 "$(cat "$T_DIR/slow.pid")" 2>/dev/null && { gone=0; break; }
    sleep 0.05
done
check "the command (and its child) was killed at the consent deadline" [ "$gone" -eq 0 ]

# --- the console's own cap on the wait ---
: >"$T_DIR/slow.pid"
start_client slow2 "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/slow.sh" --consent-timeout 20000 || exit 1
console --consent-timeout 200 >"$T_DIR/s2.out" 2>&1
check "cc-console --consent-timeout caps the wait: exit 9" exited $? 9 "$T_DIR/s2.out" 'this console at most 200 ms'

# --- a command that cannot run, or dies of a signal, refuses (fail closed) ---
start_client missing "${CLIENT_ARGS[@]}" --consent-command "$T_DIR/no-such-command" || exit 1
console --json >"$T_DIR/m.out" 2>&1
check "a command that does not exist refuses: exit 9 (sh's status 127)" \
    exited $? 9 "$T_DIR/m.out" 'CC_ERR_CONSENT_REFUSED","message":"client: the consent command refused (exit status 127)"'
start_client killed "${CLIENT_ARGS[@]}" --consent-command 'kill -TERM $$' || exit 1
console --json >"$T_DIR/k.out" 2>&1
check "a command killed by a signal refuses: exit 9, says which signal" \
    exited $? 9 "$T_DIR/k.out" 'the consent command refused (signal 15)'

# --- usage ---
"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" --consent-timeout 100 >"$T_DIR/u.out" 2>&1
check "--consent-timeout without --consent-command: exit 2, says so" \
    exited $? 2 "$T_DIR/u.out" '--consent-timeout needs --consent-command'


# --- a lying or impatient client, from the independent Python peer (test/hostile/ccpeer.py) ---
PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
if [ -x "$PY" ]; then
    mc() { # NAME SCRIPT [CONSOLE ARGS]: a real psk console against the scripted client
        local name=$1 script=$2; shift 2
        "$PY" "$CC_SRC/test/hostile/attack.py" malicious-client --cert "$C/client.pem" --key "$C/client.key" \
            --script "$script" --run "'$CC_BIN/cc-console' 127.0.0.1:{port} --ca '$C/ca.pem' --auth psk \
            --psk-file '$PSK' --json $* >'$T_DIR/$name.out' 2>'$T_DIR/$name.err'" >"$T_DIR/$name.res" 2>&1
    }
    mc h-refused consent-refused
    check "peer: CONSENT_WAIT is reported with the peer's timeout" \
        has "$T_DIR/h-refused.out" '^{"event":"consent","waiting":true,"client_timeout_ms":2000,'
    check "peer: CLOSE -80 ends the console with CC_ERR_CONSENT_REFUSED and the reason" \
        has "$T_DIR/h-refused.out" '"event":"error","code":"CC_ERR_CONSENT_REFUSED","message":"client: not now"'
    check "peer: ... and cc-console exits 9" has "$T_DIR/h-refused.res" '^during_rc 9$'
    mc h-early consent-before-license
    check "peer: CONSENT_WAIT before the licence verdict is a protocol error, told to the peer" \
        sh -c "grep -q 'CC_ERR_PROTOCOL.*before its licence verdict' '$T_DIR/h-early.out' && grep -q '^after.*CLOSE CC_ERR_PROTOCOL' '$T_DIR/h-early.res'"
    mc h-twice consent-twice
    check "peer: a second CONSENT_WAIT is a protocol error" has "$T_DIR/h-twice.out" 'unexpected CONSENT_WAIT frame'
    mc h-zero consent-zero
    check "peer: CONSENT_WAIT with a timeout of 0 is malformed" \
        has "$T_DIR/h-zero.out" '"code":"CC_ERR_BAD_FRAME","message":"malformed CONSENT_WAIT frame: the timeout is outside'
    mc h-token consent-then-token
    check "peer: an AUTH_TOKEN after CONSENT_WAIT is a protocol error" has "$T_DIR/h-token.out" 'unexpected AUTH_TOKEN frame'
    mc h-silent consent-silent --timeout 2000
    check "peer: the wait outlasts the console's 2000 ms handshake deadline, then CC_ERR_CONSENT_TIMEOUT (exit 9)" \
        sh -c "grep -q '\"code\":\"CC_ERR_CONSENT_TIMEOUT\"' '$T_DIR/h-silent.out' && grep -q '^during_rc 9$' '$T_DIR/h-silent.res'"
    check "peer: ... and the console tells the client CLOSE -81" has "$T_DIR/h-silent.res" '^after.*CLOSE CC_ERR_CONSENT_TIMEOUT'
else
    echo "# the Python peer's cases are skipped: $PY is missing"
fi

t_done
