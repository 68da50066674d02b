#!/usr/bin/env bash
# test-reconnect-e2e.sh -- cc-console --reconnect against cc-client on loopback: three
# reconnections with the rotated ticket, each resumed (no licence line), the same session id.
. "$(dirname "$0")/lib.sh"

C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
GRANT=$(t_license_page 25 7)
has() { grep -q -- "$2" "$1"; }
count() { grep -c -- "$2" "$1"; }

start_client rc --cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" \
    --license-file "$GRANT" --echo || exit 1
"$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user alice \
    --reconnect 3 --json --trace >"$T_DIR/con.out" 2>"$T_DIR/con.err"
rc=$?
check "cc-console --reconnect 3 exits 0" [ "$rc" -eq 0 ]
check "four established events on the console" [ "$(count "$T_DIR/con.out" '"event":"established"')" -eq 4 ]
check "the first is a full handshake" has "$T_DIR/con.out" '"event":"established",.*"resumed":false'
check "three resumed established events on the console" \
    [ "$(count "$T_DIR/con.out" '"event":"established",.*"resumed":true')" -eq 3 ]
check "one licence verdict only (the full handshake's)" [ "$(count "$T_DIR/con.out" '"event":"license"')" -eq 1 ]
ids=$(grep -o '"session_id":"[0-9a-f]*"' "$T_DIR/con.out" | sort -u | wc -l)
check "one session id across the reconnections" [ "$ids" -eq 1 ]
check "--trace times each reconnection" [ "$(grep -c 'established' "$T_DIR/con.err")" -eq 4 ]
check "--trace names the reconnections" has "$T_DIR/con.err" 'reconnect 3 of 3'
# the client saw them as resumed sessions too
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(count "$T_DIR/rc.out" '"event":"established"')" -ge 4 ] && break
    sleep 0.2
done
check "cc-client reports three resumed sessions" \
    [ "$(count "$T_DIR/rc.out" '"event":"established",.*"resumed":true')" -eq 3 ]
check "cc-client reports the identity on the resumed ones" \
    has "$T_DIR/rc.out" '"identity":"psk:alice","resumed":true'
cid=$(grep -o '"session_id":"[0-9a-f]*"' "$T_DIR/rc.out" | sort -u)
check "cc-client's session id is the console's" has "$T_DIR/con.out" "$cid"
check "cc-client took one licence verdict" [ "$(count "$T_DIR/rc.out" '"event":"license"')" -eq 1 ]
t_done
