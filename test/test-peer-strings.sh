#!/usr/bin/env bash
# test-peer-strings.sh -- what a hostile peer writes into the example programs' output:
# CLOSE reasons, mechanism names and licence details with ESC, BEL, CR, LF, forged lines
# and bytes that are not UTF-8 come out escaped in human lines and as valid JSON.
#
# The peers are test/hostile/ccpeer.py (its own codec); the checks hold whether the
# library passes such strings on or refuses them as malformed frames.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
[ -x "$PY" ] || { echo "# skip: $PY is missing"; exit 77; }
ATTACK=("$PY" "$CC_SRC/test/hostile/attack.py")
C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
GRANT=$(t_license_page 25 7)
CLIENT_ARGS=(--cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT")
# shellcheck disable=SC2059 # the escapes in $1 are the point
hex() { printf "$1" | od -An -tx1 | tr -d ' \n'; }
FORGED='x\033[2J\033]0;owned\007\rdone\nsession 99: psk authenticated: psk:admin\ncc-console: forged\n'
NOT_UTF8='bad \377\376 \303\050 C1 \302\233 RLO \342\200\256 end'
# wait_lines FILE PATTERN N: until FILE has at least N lines matching
wait_lines() {
    for _ in $(seq 1 100); do [ "$(grep -ac -- "$2" "$1" 2>/dev/null)" -ge "$3" ] 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# A human log is clean when it has no control byte but the newline ending each line, is
# UTF-8 throughout, and each line starts with one of the program's own prefixes.
cat >"$T_DIR/clean.py" <<'EOF'
import re, sys
data = open(sys.argv[1], "rb").read()
prefix = re.compile(sys.argv[2].encode())
bad = [b for b in set(data) if (b < 0x20 and b != 0x0A) or b == 0x7F]
if bad:
    sys.exit("control bytes %s" % sorted(bad))
try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    sys.exit("not UTF-8: %s" % e)
for c in "\u0085\u009b\u2028\u2029\u202e":
    if c in text:
        sys.exit("U+%04X unescaped" % ord(c))
for n, line in enumerate(data.split(b"\n")[:-1], 1):
    if not prefix.match(line):
        sys.exit("line %d is not the program's own: %r" % (n, line))
EOF
clean() { # FILE PREFIX-REGEX
    "$PY" "$T_DIR/clean.py" "$1" "$2" 2>"$T_DIR/clean.why" || { cat "$T_DIR/clean.why"; return 1; }
}
# escaped FILE: where the log quotes the peer's string, it shows it escaped
escaped() {
    ! grep -aq 'owned' "$1" || grep -aqF 'x\x1b[2J\x1b]0;owned\x07\x0ddone\x0asession 99' "$1"
}

# --- cc-client, human log ---
"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" >"$T_DIR/human.out" 2>"$T_DIR/human.err" &
CLIENT_PID=$!
T_PIDS+=("$CLIENT_PID")
wait_lines "$T_DIR/human.err" 'listening on' 1
CLIENT_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$T_DIR/human.err" | grep -o '[0-9]*$')
"${ATTACK[@]}" close --port "$CLIENT_PORT" --code -999 --reason-hex "$(hex "$FORGED")" >/dev/null 2>&1
"${ATTACK[@]}" close --port "$CLIENT_PORT" --code -999 --reason-hex "$(hex "$NOT_UTF8")" >/dev/null 2>&1
"${ATTACK[@]}" close --port "$CLIENT_PORT" --hello --code -999 --reason-hex "$(hex "$FORGED")" >/dev/null 2>&1
"${ATTACK[@]}" hello --port "$CLIENT_PORT" --mech-hex "$(hex 'ps\033]0;k\rsession 98: x\n\377')" >/dev/null 2>&1
wait_lines "$T_DIR/human.err" '^session 4' 1
check "cc-client's human log: no control bytes, all UTF-8, only its own lines" \
    clean "$T_DIR/human.err" '^(cc-client: |session [1-4]: )'
check "cc-client's human log: no forged line" [ "$(grep -ac -e '^session 9[89]' -e '^cc-console' "$T_DIR/human.err")" -eq 0 ]
check "cc-client's human log: a quoted CLOSE reason is shown escaped" escaped "$T_DIR/human.err"
kill "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null

# --- cc-client --json ---
start_client json "${CLIENT_ARGS[@]}" || exit 1
"${ATTACK[@]}" close --port "$CLIENT_PORT" --code -999 --reason-hex "$(hex "$FORGED")" >/dev/null 2>&1
"${ATTACK[@]}" close --port "$CLIENT_PORT" --code -999 --reason-hex "$(hex "$NOT_UTF8")" >/dev/null 2>&1
"${ATTACK[@]}" close --port "$CLIENT_PORT" --hello --code 0 --reason-hex "$(hex "$NOT_UTF8")" >/dev/null 2>&1
"${ATTACK[@]}" hello --port "$CLIENT_PORT" --mech-hex "$(hex 'psk\377\033[1m')" >/dev/null 2>&1
wait_lines "$T_DIR/json.out" '"session":4' 1
"${ATTACK[@]}" json-lines "$T_DIR/json.out" >"$T_DIR/json.res" 2>&1
check "cc-client --json: every line is one valid JSON object ($(wc -l <"$T_DIR/json.out") lines)" \
    grep -q '^invalid_lines 0$' "$T_DIR/json.res"
check "cc-client --json: no control byte and no byte that is not UTF-8 on any line" \
    clean "$T_DIR/json.out" '^\{"event":'
kill "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null

# --- cc-console against a client that lies: a LICENSE denial's detail, a CLOSE reason ---
cat >"$T_DIR/liar.py" <<'EOF'
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ["CC_SRC"], "test", "hostile"))
import ccpeer as cp
evil = bytes.fromhex(sys.argv[3])
mc = cp.MaliciousClient(sys.argv[1], sys.argv[2])
print(mc.port, flush=True)
for mode in sys.argv[4:]:  # one console each
    try:
        p = mc.accept(timeout=20)
        p.frames_until({cp.HELLO}, timeout=10)
        if mode == "deny":
            p.send_frame(cp.LICENSE, cp.license_payload(code=-40, count=1, in_use=1, granted=0, detail=evil))
        else:
            p.send_frame(cp.LICENSE, cp.license_payload())
            p.send_frame(cp.HELLO, cp.hello_payload([b"psk"]))
            p.send_frame(cp.CLOSE, cp.close_payload(-999, evil))
        p.frames_until(set(), timeout=3)
        p.close()
    except (OSError, cp.Closed):
        pass
mc.close()
EOF
export CC_SRC
"$PY" "$T_DIR/liar.py" "$C/client.pem" "$C/client.key" "$(hex "$FORGED $NOT_UTF8")" deny close deny close \
    >"$T_DIR/liar.port" 2>"$T_DIR/liar.err" &
T_PIDS+=($!)
wait_lines "$T_DIR/liar.port" '[0-9]' 1
LIAR=127.0.0.1:$(head -n 1 "$T_DIR/liar.port")
liar_console() { # NAME [--json]
    "$CC_BIN/cc-console" "$LIAR" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --timeout 10000 "${@:2}" \
        >"$T_DIR/$1.out" 2>"$T_DIR/$1.err"
}
for k in deny close; do
    liar_console "console-$k"
    check "cc-console ($k): the session ends with an error (exit $?)" [ $? -ne 0 ]
    check "cc-console ($k): human output has no control bytes, is all UTF-8, only its own lines" \
        clean "$T_DIR/console-$k.err" '^(cc-console: |licence granted: |authenticated by )'
    check "cc-console ($k): no forged line" \
        [ "$(grep -ac -e '^session 9' -e '^cc-console: forged' "$T_DIR/console-$k.err")" -eq 0 ]
    check "cc-console ($k): a quoted peer string is shown escaped" escaped "$T_DIR/console-$k.err"
done
for k in deny close; do
    liar_console "console-json-$k" --json
    "${ATTACK[@]}" json-lines "$T_DIR/console-json-$k.out" >"$T_DIR/console-json-$k.res" 2>&1
    check "cc-console --json ($k): every line is one valid JSON object ($(wc -l <"$T_DIR/console-json-$k.out") lines)" \
        grep -q '^invalid_lines 0$' "$T_DIR/console-json-$k.res"
    check "cc-console --json ($k): no control byte and no byte that is not UTF-8 on any line" \
        clean "$T_DIR/console-json-$k.out" '^\{"event":'
    check "cc-console --json ($k): it ends with the error" grep -aq '"event":"error"' "$T_DIR/console-json-$k.out"
done

t_done
