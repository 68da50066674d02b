#!/usr/bin/env bash
# test-license-e2e.sh -- the licence stage end to end: cc-client fetches each
# page nginx serves, cc-console reports the verdict; exit codes and JSON checked. The
# console learns the verdict, the figures and the kind of failure, never the URL.
set -u
src=${CC_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${CC_BIN:-$src/build/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/cc-lic-e2e.XXXXXX")
client_pid=
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null
    bash "$src/test/fixtures/nginx.sh" stop "$work/nginx"
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failures=$((failures + 1)); }

if ! bash "$src/test/fixtures/nginx.sh" start "$work/nginx" $$ >"$work/nginx.log" 2>&1; then
    cat "$work/nginx.log"
    echo "not ok - nginx fixture started (needs nginx-light)"
    exit 1
fi
. "$work/nginx/ports"
certs=$work/nginx/certs
head -c 32 /dev/urandom | base64 >"$work/psk"

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run_case NAME WANT_CODE CONSOLE_JSON_SUBSTRING CLIENT_JSON_SUBSTRING CLIENT_OPTIONS...
# WANT_CODE is the exit code both programs must end with (0 or 5). The console's output must
# not name the licence source (--license-url, --ns) or the page file: that is the client's own.
run_case() {
    local name=$1 want=$2 cjson=$3 sjson=$4
    shift 4
    local port
    port=$(free_port)
    "$bin/cc-client" --listen "127.0.0.1:$port" --cert "$certs/client.pem" --key "$certs/client.key" \
        --auth psk --psk-file "$work/psk" --once --json "$@" >"$work/client.out" 2>"$work/client.err" &
    client_pid=$!
    # wait (deadline 5 s) until it listens
    local i
    for i in $(seq 1 50); do
        grep -q '"listening"' "$work/client.out" 2>/dev/null && break
        sleep 0.1
    done
    timeout 30 "$bin/cc-console" "127.0.0.1:$port" --ca "$certs/ca.pem" --auth psk --psk-file "$work/psk" \
        --user tester --json >"$work/console.out" 2>"$work/console.err"
    local crc=$?
    local waited=0
    while kill -0 "$client_pid" 2>/dev/null && [ $waited -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill "$client_pid" 2>/dev/null
    wait "$client_pid"
    local src_rc=$?
    client_pid=
    local why=""
    [ "$crc" -eq "$want" ] || why="$why console exited $crc, expected $want;"
    [ "$src_rc" -eq "$want" ] || why="$why client exited $src_rc, expected $want;"
    grep -qF -- "$cjson" "$work/console.out" || why="$why console output lacks $cjson;"
    grep -qF -- "$sjson" "$work/client.out" || why="$why client output lacks $sjson;"
    local a prev=
    for a in "$@"; do
        case $prev in
        --license-url | --ns | --license-file)
            ! grep -qF -- "${a#*://}" "$work/console.out" "$work/console.err" || why="$why the console was told $a;"
            ;;
        esac
        prev=$a
    done
    if [ -z "$why" ]; then
        ok "$name"
    else
        not_ok "$name"
        echo "#$why"
        sed 's/^/#   console: /' "$work/console.out" "$work/console.err" | grep -v '"state"' | head -20
        sed 's/^/#   client: /' "$work/client.out" "$work/client.err" | head -20
    fi
}

H=http://127.0.0.1:$HTTP
GRANTED='{"event":"license","count":25,"in_use":7,"granted":true}'
denied() { # code, message part
    printf '"granted":false,"code":"%s","message":"%s' "$1" "$2"
}
# The whole message of the console's licence line: its fields, then "errno" (the code's number) last.
denied_whole() { # code, message
    denied "$1" "$2\",\"errno\":$(sed -n "s/^ *$1 = \\(-[0-9]*\\),.*/\\1/p" "$src/include/carboncopy.h")}"
}
# What the console is told when the client could not check: the kind of failure only.
unchecked() { # code, cc_strerror(code)
    denied_whole "$1" "the client could not check its licence: $2"
}

run_case "granted" 0 "$GRANTED" '"granted":true' --license-url "$H/granted.xml"
run_case "denied: in use equals count" 5 \
    '{"event":"license","count":10,"in_use":10,"granted":false,"code":"CC_ERR_LICENSE_DENIED","message":"no licence free: 10 of 10 in use' \
    "$(denied CC_ERR_LICENSE_DENIED 'no licence free: 10 of 10 in use per '"$H"/denied-equal.xml)" \
    --license-url "$H/denied-equal.xml"
run_case "denied: in use exceeds count" 5 "$(denied CC_ERR_LICENSE_DENIED 'no licence free: 12 of 10 in use')" \
    '"granted":false' --license-url "$H/denied-greater.xml"
run_case "expired" 5 "$(denied_whole CC_ERR_LICENSE_EXPIRED 'the licence has expired')" \
    "$(denied CC_ERR_LICENSE_EXPIRED 'licence expired (expiry date 2001-01-01)')" --license-url "$H/expired.xml"
run_case "attribute form" 0 "$GRANTED" '"granted":true' --license-url "$H/attributes.xml"
run_case "namespaced and mixed case" 0 "$GRANTED" '"granted":true' --license-url "$H/namespaced.xml"
run_case "malformed XML" 5 "$(unchecked CC_ERR_LICENSE_PARSE 'the licence page could not be parsed')" \
    "$(denied CC_ERR_LICENSE_PARSE "licence page $H/malformed.xml: not well-formed")" --license-url "$H/malformed.xml"
run_case "missing figures" 5 "$(unchecked CC_ERR_LICENSE_MISSING 'the licence page lacks the licence figures')" \
    "$(denied CC_ERR_LICENSE_MISSING "licence page $H/missing.xml")" --license-url "$H/missing.xml"
run_case "non-numeric count" 5 '"code":"CC_ERR_LICENSE_PARSE"' CC_ERR_LICENSE_PARSE \
    --license-url "$H/non-numeric.xml"
run_case "negative count" 5 '"code":"CC_ERR_LICENSE_PARSE"' CC_ERR_LICENSE_PARSE --license-url "$H/negative.xml"
run_case "overflowing count" 5 '"code":"CC_ERR_LICENSE_PARSE"' CC_ERR_LICENSE_PARSE --license-url "$H/overflow.xml"
run_case "404" 5 "$(unchecked CC_ERR_LICENSE_HTTP 'the licence page returned an HTTP error')" \
    "$(denied CC_ERR_LICENSE_HTTP "licence page $H/nonexistent.xml answered HTTP status 404")" \
    --license-url "$H/nonexistent.xml"
run_case "500" 5 '"code":"CC_ERR_LICENSE_HTTP"' 'HTTP status 500' --license-url "$H/error500"
run_case "redirect loop" 5 \
    "$(unchecked CC_ERR_LICENSE_REDIRECT 'the licence page redirected too often or to a forbidden scheme')" \
    "$(denied CC_ERR_LICENSE_REDIRECT "licence fetch of $H/loop: more than 3 redirects")" --license-url "$H/loop"
run_case "redirect to file:" 5 '"code":"CC_ERR_LICENSE_REDIRECT"' 'redirected to file:///etc/passwd' \
    --license-url "$H/to-file"
run_case "page over the size limit" 5 '"code":"CC_ERR_LICENSE_TOO_LARGE"' CC_ERR_LICENSE_TOO_LARGE \
    --license-url "$H/big.xml"
run_case "billion laughs" 5 '"code":"CC_ERR_LICENSE_PARSE"' 'DOCTYPE' --license-url "$H/billion-laughs.xml"
run_case "gzip bomb not decoded" 5 '"code":"CC_ERR_LICENSE_PARSE"' CC_ERR_LICENSE_PARSE --license-url "$H/bomb.xml"
run_case "slow server trips the timeout" 5 '"code":"CC_ERR_LICENSE_TIMEOUT"' "timed out" \
    --license-url "$H/slow.xml" --license-timeout 700
run_case "closed port" 5 "$(unchecked CC_ERR_LICENSE_UNREACHABLE 'the management server could not be reached')" \
    "$(denied CC_ERR_LICENSE_UNREACHABLE "licence server of http://127.0.0.1:$CLOSED/granted.xml could not be reached")" \
    --license-url "http://127.0.0.1:$CLOSED/granted.xml"
run_case "https with --license-ca" 0 "$GRANTED" '"granted":true' \
    --license-url "https://localhost:$HTTPS/granted.xml" --license-ca "$certs/ca.pem"
run_case "https without the CA is never trusted" 5 '"code":"CC_ERR_LICENSE_TLS"' CC_ERR_LICENSE_TLS \
    --license-url "https://localhost:$HTTPS/granted.xml"
run_case "https with an untrusted certificate" 5 '"code":"CC_ERR_LICENSE_TLS"' CC_ERR_LICENSE_TLS \
    --license-url "https://localhost:$ROGUE/granted.xml" --license-ca "$certs/ca.pem"
run_case "--ns builds the default URL" 0 "$GRANTED" '"granted":true' --ns "127.0.0.1:$HTTP"
if grep -q '"GET /altiris/NS/Agent/GetLicenseDetails.aspx HTTP' "$work/nginx/logs/access.log"; then
    ok "--ns fetched /altiris/NS/Agent/GetLicenseDetails.aspx"
else
    not_ok "--ns fetched /altiris/NS/Agent/GetLicenseDetails.aspx"
fi
run_case "--license-file answered by the host" 0 "$GRANTED" '"granted":true' \
    --license-file "$src/test/data/license/granted.xml"
run_case "--license-file denied" 5 '"code":"CC_ERR_LICENSE_DENIED"' 'no licence free: 10 of 10 in use' \
    --license-file "$src/test/data/license/denied-equal.xml"

# a bad licence option is a usage error, before anything listens
port=$(free_port)
"$bin/cc-client" --listen "127.0.0.1:$port" --cert "$certs/client.pem" --key "$certs/client.key" \
    --auth psk --psk-file "$work/psk" --once --license-url "file:///etc/passwd" >"$work/u.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "only http:// and https://" "$work/u.out"; then
    ok "cc-client refuses a file: licence URL (exit 2)"
else
    not_ok "cc-client refuses a file: licence URL (exit 2)"
    echo "# exit $rc: $(head -3 "$work/u.out")"
fi

[ $failures -eq 0 ]
