#!/usr/bin/env bash
# test-limits.sh -- cc-client's admission limits on loopback: --max-sessions and
# --max-per-source evict the oldest unauthenticated session, never an authenticated one.
#
# Silent connections come from chosen addresses of 127.0.0.0/8 (a small Python
# holder binds each socket before connect; bash's /dev/tcp cannot). cc-console
# cannot choose its source, so a good console always comes from 127.0.0.1.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
[ -x "$PY" ] || { echo "# skip: $PY is missing"; exit 77; }
C=$(t_certs) || { echo "not ok - certificates"; exit 1; }
PSK=$(t_psk good)
GRANT=$(t_license_page 25 7)
CLIENT_ARGS=(--cert "$C/client.pem" --key "$C/client.key" --auth psk --psk-file "$PSK" --license-file "$GRANT")
head -c 4096 /dev/urandom >"$T_DIR/data.bin"

# The holder: one line in, one line out. "open SRC" connects from SRC and says "ok N";
# "status" says, for each connection in order, 1 while it is open and 0 once the client
# has closed it.
cat >"$T_DIR/holder.py" <<'EOF'
import os, socket, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ["CC_SRC"], "test", "hostile"))
import ccpeer as cp

def is_open(s):  # what the client sent (its preamble) is read away first
    s.setblocking(False)
    for _ in range(64):
        try:
            if s.recv(4096) == b"":
                return 0
        except BlockingIOError:
            return 1
        except OSError:
            return 0
    return 1

port, conns = int(sys.argv[1]), []
while True:
    cmd = sys.stdin.readline().split()
    if not cmd or cmd[0] == "quit":
        break
    if cmd[0] == "open":
        try:
            conns.append(cp.Peer.connect("127.0.0.1", port, source=cmd[1], timeout=5).raw)
            print("ok", len(conns) - 1)
        except OSError as e:
            print("error", e)
    elif cmd[0] == "status":
        print("status", " ".join(str(is_open(s)) for s in conns))
    sys.stdout.flush()
EOF
export CC_SRC
hold_start() { coproc HOLD { exec "$PY" "$T_DIR/holder.py" "$CLIENT_PORT"; }; T_PIDS+=("$HOLD_PID"); }
hold() { # COMMAND...: sends it, the answer in $H
    H=
    echo "$*" >&"${HOLD[1]}" && IFS= read -r -t 10 H <&"${HOLD[0]}"
}
hold_stop() { echo quit >&"${HOLD[1]}"; wait "$HOLD_PID" 2>/dev/null; }
open_from() { # N SRC...: opens one connection from each SRC
    local s
    for s in "$@"; do hold open "$s"; [ "${H%% *}" = ok ] || echo "# open from $s: $H"; done
}
# wait_lines FILE PATTERN N: until FILE has at least N lines matching
wait_lines() {
    for _ in $(seq 1 100); do [ "$(grep -ac -- "$2" "$1" 2>/dev/null)" -ge "$3" ] 2>/dev/null && return 0; sleep 0.05; done
    return 1
}
good() { # OUT: a good console now, JSON in OUT
    "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user tech \
        --timeout 10000 --json >"$1" 2>&1
}
# held NAME: a console that authenticates, sends and then waits for an echo that never
# comes (the client runs without --echo): an authenticated session that stays
held() {
    "$CC_BIN/cc-console" "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --auth psk --psk-file "$PSK" --user "$1" \
        --send "$T_DIR/data.bin" --json >"$T_DIR/$1.out" 2>&1 &
    HELD_PIDS+=($!)
    T_PIDS+=($!)
}
HELD_PIDS=()
drop_held() { for p in "${HELD_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; HELD_PIDS=(); }
stop_client() { kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null; }
ev() { grep -a "\"event\":\"$1\"" "$2"; } # EVENT FILE: its lines

# --- --max-sessions 8: ten silent connections, then a good console ---
start_client ms "${CLIENT_ARGS[@]}" --max-sessions 8 --max-per-source 0 || exit 1
hold_start
open_from 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 127.0.1.5 127.0.1.6 127.0.1.7 127.0.1.8 127.0.1.9 127.0.1.10
wait_lines "$T_DIR/ms.out" '"event":"evicted"' 2
check "max-sessions: the 9th and 10th silent connections evict sessions 1 and 2" \
    [ "$(ev evicted "$T_DIR/ms.out" | grep -o '"session":[0-9]*,"address":"[0-9.]*"' | tr '\n' ' ')" = \
    '"session":1,"address":"127.0.1.1" "session":2,"address":"127.0.1.2" ' ]
check "max-sessions: the eviction names the limit, the state and the newcomer" \
    grep -aq '^{"event":"evicted","session":1,"address":"127.0.1.1","state":"preamble","limit":"max-sessions","for":"127.0.1.9"}$' "$T_DIR/ms.out"
good "$T_DIR/ms-good.out"
check "max-sessions: a good console is served with all 8 slots held by silent connections" [ $? -eq 0 ]
check "max-sessions: it took the place of the oldest silent one (session 3)" \
    grep -aq '"event":"evicted","session":3,"address":"127.0.1.3",.*"for":"127.0.0.1"' "$T_DIR/ms.out"
hold status
check "max-sessions: the three oldest silent connections were closed, the seven others are open" \
    [ "$H" = "status 0 0 0 1 1 1 1 1 1 1" ]
hold_stop
stop_client

# --- --max-per-source 2: a source at its limit loses its own oldest unauthenticated session ---
start_client ps "${CLIENT_ARGS[@]}" --max-per-source 2 || exit 1
hold_start
open_from 127.0.0.2 127.0.0.2 127.0.0.2
wait_lines "$T_DIR/ps.out" '"event":"evicted"' 1
check "max-per-source: the third connection from 127.0.0.2 evicts its first (session 1)" \
    grep -aq '^{"event":"evicted","session":1,"address":"127.0.0.2","state":"preamble","limit":"max-per-source","for":"127.0.0.2"}$' "$T_DIR/ps.out"
good "$T_DIR/ps-good.out"
check "max-per-source: a good console from another address (127.0.0.1) is served" [ $? -eq 0 ]
open_from 127.0.0.3
open_from 127.0.0.2
wait_lines "$T_DIR/ps.out" '"event":"evicted"' 2
sleep 0.2 # a wrong eviction would show by now
check "max-per-source: the fourth from 127.0.0.2 evicts 127.0.0.2's oldest (session 2), nothing else" \
    [ "$(ev evicted "$T_DIR/ps.out" | grep -o '"session":[0-9]*,"address":"[0-9.]*"' | tr '\n' ' ')" = \
    '"session":1,"address":"127.0.0.2" "session":2,"address":"127.0.0.2" ' ]
hold status
check "max-per-source: 127.0.0.2's first two are closed, its last two and 127.0.0.3's are open" \
    [ "$H" = "status 0 0 1 1 1" ]
hold_stop
stop_client

# --- authenticated sessions are never evicted: the new console is refused ---
start_client auth "${CLIENT_ARGS[@]}" --max-sessions 2 --max-per-source 0 || exit 1
held held1
wait_lines "$T_DIR/auth.out" '"event":"established"' 1
hold_start
open_from 127.0.0.6
open_from 127.0.0.7
wait_lines "$T_DIR/auth.out" '"event":"evicted"' 1
check "max-sessions: a full table evicts the silent session, not the authenticated one" \
    [ "$(ev evicted "$T_DIR/auth.out" | grep -o '"session":[0-9]*,"address":"[0-9.]*"' | tr '\n' ' ')" = \
    '"session":2,"address":"127.0.0.6" ' ]
hold_stop
held held2
wait_lines "$T_DIR/auth.out" '"event":"established"' 2
good "$T_DIR/auth-refused.out"
rc=$?
check "max-sessions: with every session authenticated, a new console is refused (exit $rc)" [ "$rc" -ne 0 ]
check "max-sessions: the refusal is logged and says why" \
    grep -aq '^{"event":"refused","address":"127.0.0.1","message":"all 2 sessions are authenticated (--max-sessions 2)"}$' "$T_DIR/auth.out"
check "max-sessions: the authenticated sessions were not touched" \
    [ "$(ev evicted "$T_DIR/auth.out" | grep -c '"session":[14],')" -eq 0 ]
drop_held
wait_lines "$T_DIR/auth.out" '"event":"error","session":[14],' 2
good "$T_DIR/auth-after.out"
check "max-sessions: once they end, a console is served again" [ $? -eq 0 ]
stop_client

# --- the same per source, in the human log ---
"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" --max-per-source 1 >"$T_DIR/human.out" 2>"$T_DIR/human.err" &
CLIENT_PID=$!
T_PIDS+=("$CLIENT_PID")
wait_lines "$T_DIR/human.err" 'listening on' 1
CLIENT_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$T_DIR/human.err" | grep -o '[0-9]*$')
held held3
wait_lines "$T_DIR/human.err" '^session 1: psk authenticated' 1
good "$T_DIR/human-refused.out"
check "max-per-source: a second console from an address whose one session is authenticated is refused" [ $? -ne 0 ]
check "max-per-source: the human log says so" \
    grep -aq '^cc-client: refusing a console from 127.0.0.1: its 1 sessions are all authenticated (--max-per-source 1)$' "$T_DIR/human.err"
hold_start
open_from 127.0.0.8 127.0.0.8
wait_lines "$T_DIR/human.err" 'evicted' 1
check "max-per-source: the human log names each eviction" \
    grep -aq '^session 2: evicted (from 127.0.0.8, still in preamble): --max-per-source reached, a console from 127.0.0.8 takes its place$' "$T_DIR/human.err"
hold_stop
drop_held
stop_client

# --- open files: the soft limit is raised to the hard one, or the sessions fit what there is ---
(
    ulimit -Sn 256
    exec "$CC_BIN/cc-client" --listen 127.0.0.1:0 --json "${CLIENT_ARGS[@]}"
) >"$T_DIR/nofile.out" 2>"$T_DIR/nofile.err" &
CLIENT_PID=$!
T_PIDS+=("$CLIENT_PID")
wait_lines "$T_DIR/nofile.out" '"listening"' 1
lim=$(grep '^Max open files' "/proc/$CLIENT_PID/limits" | awk '{print $4, $5}')
check "open files: the soft limit is raised to the hard limit ($lim)" [ "${lim% *}" = "${lim#* }" ]
stop_client
(
    ulimit -n 200
    exec "$CC_BIN/cc-client" --listen 127.0.0.1:0 --json "${CLIENT_ARGS[@]}"
) >"$T_DIR/nofile2.out" 2>"$T_DIR/nofile2.err" &
CLIENT_PID=$!
T_PIDS+=("$CLIENT_PID")
wait_lines "$T_DIR/nofile2.out" '"listening"' 1
check "open files: a hard limit of 200 serves 136 sessions, and says so" \
    grep -q 'only 200 open files allowed (RLIMIT_NOFILE): serving at most 136 sessions, not 1024' "$T_DIR/nofile2.err"
stop_client

"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" --max-sessions 0 >/dev/null 2>"$T_DIR/u1"
check "--max-sessions 0: exit 2" sh -c "[ $? -eq 2 ] && grep -q -- '--max-sessions takes 1 to 65536' '$T_DIR/u1'"
"$CC_BIN/cc-client" --listen 127.0.0.1:0 "${CLIENT_ARGS[@]}" --workers 65 >/dev/null 2>"$T_DIR/u2"
check "--workers 65: exit 2" sh -c "[ $? -eq 2 ] && grep -q -- '--workers takes 1 to 64' '$T_DIR/u2'"

t_done
