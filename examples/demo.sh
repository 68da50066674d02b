#!/usr/bin/env bash
# demo.sh -- the whole Carbon Copy connection process on loopback: nginx serves
# the licence page, cc-client checks it, authenticates the console by NT
# security, and echoes 4 MiB that cc-console sends and verifies.
# Usage: examples/demo.sh [BUILD_DIR]    (run by `make demo`)
set -eu
B=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
bin=$src/$B/bin
d=$(mktemp -d "${TMPDIR:-/tmp}/cc-demo.XXXXXX")
client_pid=
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    "$src/test/fixtures/nginx.sh" stop "$d/nginx" >/dev/null 2>&1 || true
    rm -rf "$d"
}
trap cleanup EXIT
for tool in /usr/sbin/nginx openssl iconv; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing; run .ci/install-deps first" >&2; exit 2; }
done

echo "== 1. a test CA and the client's certificate"
"$src/test/fixtures/certs.sh" "$d/certs" >/dev/null
echo "   client certificate SHA-256: $(cat "$d/certs/client.sha256")"

echo "== 2. the management server: nginx on loopback serving the licence-details page"
"$src/test/fixtures/nginx.sh" start "$d/nginx" >/dev/null
. "$d/nginx/ports"
url="http://127.0.0.1:$HTTP/altiris/NS/Agent/GetLicenseDetails.aspx"
echo "   $url"
echo "   $(curl -s "$url" 2>/dev/null || cat "$src/test/data/license/granted.xml")"

echo "== 3. the client's NT account store (smbpasswd format): technician / demo password"
printf 'correct horse battery staple\n' >"$d/password"
chmod 600 "$d/password"
hash=$(printf 'correct horse battery staple' | iconv -t UTF-16LE |
       openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}')
printf 'technician:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-00000000:\n' "$hash" >"$d/smbpasswd"

echo "== 4. cc-client listening on 127.0.0.1 (any free port)"
"$bin/cc-client" --listen 127.0.0.1:0 --cert "$d/certs/client.pem" --key "$d/certs/client.key" \
    --accounts "$d/smbpasswd" --license-url "$url" --echo --once --json >"$d/client.out" 2>&1 &
client_pid=$!
port=
for _ in $(seq 100); do
    port=$(grep -o '"address":"127.0.0.1:[0-9]*' "$d/client.out" 2>/dev/null | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$d/client.out"; exit 1; }
echo "   port $port"

echo "== 5. cc-console: resolve, connect, preamble, TLS, licence, NT authentication, 4 MiB echoed"
head -c $((4 << 20)) /dev/urandom >"$d/payload"
set +e
"$bin/cc-console" "localhost:$port" --ca "$d/certs/ca.pem" --auth nt --user technician --domain WORKGROUP \
    --password-file "$d/password" --send "$d/payload" --trace
rc=$?
set -e
wait "$client_pid" 2>/dev/null || true
client_pid=
echo "== 6. what the client reported"
sed 's/^/   /' "$d/client.out"
echo
if [ "$rc" -eq 0 ]; then echo "demo: OK — the console connected through the whole process"; else
    echo "demo: cc-console exited with $rc (see README: exit codes)"; fi
exit "$rc"
