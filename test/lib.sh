# lib.sh -- helpers for the shell tests: result lines, a temp dir cleaned on
# exit, test certificates, and starting cc-client on a free loopback port.
# Source it: . "$(dirname "$0")/lib.sh"

set -u
CC_SRC=${CC_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
CC_BIN=${CC_BIN:-$CC_SRC/build/bin}
T_FAILS=0
T_PIDS=()
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cctest-sh.XXXXXX")

t_cleanup() {
    [ -n "${T_KEEP:-}" ] && { echo "# kept $T_DIR"; return; }
    for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T_DIR"
}
trap t_cleanup EXIT

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; T_FAILS=$((T_FAILS + 1)); }
# check NAME COMMAND...: ok when the command succeeds.
check() { local n=$1; shift; if "$@"; then ok "$n"; else not_ok "$n" "failed: $*"; fi; }
t_done() { [ "$T_FAILS" -eq 0 ]; exit $?; }

# Test PKI in $T_DIR/certs (see test/fixtures/certs.sh).
t_certs() { "$CC_SRC/test/fixtures/certs.sh" "$T_DIR/certs" >/dev/null && echo "$T_DIR/certs"; }

# start_client NAME ARGS...: starts cc-client --listen 127.0.0.1:0 --json ARGS
# in the background; sets CLIENT_PORT and CLIENT_PID; output in $T_DIR/NAME.out.
start_client() {
    local name=$1; shift
    "$CC_BIN/cc-client" --listen 127.0.0.1:0 --json "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" &
    CLIENT_PID=$!
    T_PIDS+=("$CLIENT_PID")
    local i
    for i in $(seq 1 100); do
        CLIENT_PORT=$(grep -o '"listening","address":"127.0.0.1:[0-9]*' "$T_DIR/$name.out" 2>/dev/null | grep -o '[0-9]*$')
        [ -n "$CLIENT_PORT" ] && return 0
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "# cc-client did not start:"; sed 's/^/#   /' "$T_DIR/$name.err"
    return 1
}

# wait_pid PID SECONDS: waits for a background process with a deadline; its status in WAIT_RC.
wait_pid() {
    local pid=$1 t=$2 i
    for i in $(seq 1 $((t * 20))); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid"; WAIT_RC=$?; return 0; }
        sleep 0.05
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; WAIT_RC=124
    return 1
}

# A page and a key most tests share.
t_license_page() { # count in_use -> path
    local f="$T_DIR/license-$1-$2.xml"
    printf '<LicenseDetails><LicenseCount>%s</LicenseCount><LicensesInUse>%s</LicensesInUse></LicenseDetails>\n' "$1" "$2" >"$f"
    echo "$f"
}
# t_errnum CC_ERR_NAME: the number the header gives that cc_error (e.g. -40).
t_errnum() { sed -n "s/^ *$1 = \\(-[0-9]*\\),\\{0,1\\} .*/\\1/p" "$CC_SRC/include/carboncopy.h"; }
t_psk() { local f="$T_DIR/psk-$1.key"; [ -f "$f" ] || printf '%s\n' "$1-0123456789abcdef-secret" >"$f"; echo "$f"; }
