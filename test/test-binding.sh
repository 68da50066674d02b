#!/usr/bin/env bash
# test-binding.sh -- the Python binding generated from the header (examples/python):
# the generated cdef is current, calls reach the library, and console.py runs the whole process.
. "$(dirname "$0")/lib.sh"

CC_BUILD=${CC_BUILD:-$CC_SRC/build}
PY=/usr/bin/python3 # Debian's python, where python3-cffi is installed (.ci/packages)
PYDIR=$CC_SRC/examples/python
export CARBONCOPY_LIB=$CC_BUILD/libcarboncopy.so.1 PYTHONDONTWRITEBYTECODE=1

# An ASan-instrumented library cannot be dlopen'ed into an uninstrumented python.
if [ "${SANITIZE:-}" = 1 ] || readelf -d "$CARBONCOPY_LIB" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
    echo "# skip - the Python binding under SANITIZE (ASan library cannot be loaded into python)"
    exit 77
fi
if ! "$PY" -c 'import cffi' 2>/dev/null; then
    not_ok "python3-cffi is installed" "$PY cannot import cffi: apt-get install python3-cffi"
    t_done
fi
[ -f "$CARBONCOPY_LIB" ] || { not_ok "library built" "$CARBONCOPY_LIB is missing: run make"; t_done; }
py() { (cd "$PYDIR" && "$PY" "$@"); }
has() { grep -q -- "$2" "$1"; }

# --- (a) the cdef is generated from the header and current ---
check "carboncopy/carboncopy_cdef.h is up to date with include/carboncopy.h (gen_binding.py --check)" \
    py gen_binding.py --check
py gen_binding.py -o "$T_DIR/fresh.h" && check "regenerating gives the committed file byte for byte" \
    cmp "$T_DIR/fresh.h" "$PYDIR/carboncopy/carboncopy_cdef.h"
sed 's|^int cc_session_ping(cc_session \*s);|&\nint cc_session_frobnicate(cc_session *s, uint32_t level);\n#define CC_FROB_MAX (3 << 4)|' \
    "$CC_SRC/include/carboncopy.h" >"$T_DIR/changed.h"
check "a function added to the header is in the generated cdef, with its constant evaluated" \
    bash -c "cd '$PYDIR' && '$PY' gen_binding.py --header '$T_DIR/changed.h' -o - |
             grep -qx 'int cc_session_frobnicate(cc_session \*s, uint32_t level);' &&
             '$PY' gen_binding.py --header '$T_DIR/changed.h' -o - | grep -qx '#define CC_FROB_MAX 48'"
check "--check flags a cdef that no longer matches the header" \
    bash -c "! (cd '$PYDIR' && '$PY' gen_binding.py --check --header '$T_DIR/changed.h' 2>/dev/null)"
check "every cc_ function of the header resolves in the library through the binding" py - "$CC_SRC/include/carboncopy.h" <<'EOF'
import re, sys
import carboncopy as cc
src = re.sub(r"/\*.*?\*/", "", open(sys.argv[1]).read(), flags=re.S)
names = set(re.findall(r"(?<!\w)(cc_[a-z0-9_]+)\s*\(", src))
assert len(names) > 60, names
missing = [n for n in sorted(names) if not hasattr(cc.lib, n)]
assert not missing, "not in the binding or not exported: %s" % missing
print("# %d functions" % len(names))
EOF

# --- (b) plain calls through the binding ---
check "cc_version()/cc_version_string() match the header's CC_VERSION_NUM/STRING" py - <<'EOF'
import carboncopy as cc
assert cc.version() == cc.CC_VERSION_NUM == (cc.CC_VERSION_MAJOR << 16 | cc.CC_VERSION_MINOR << 8 | cc.CC_VERSION_PATCH)
assert cc.version_string() == cc.CC_VERSION_STRING, (cc.version_string(), cc.CC_VERSION_STRING)
EOF
check "cc_strerror/cc_err_name: every CC_ERR_* of the header has its own name and a sentence" py - <<'EOF'
import carboncopy as cc
errs = {n: getattr(cc, n) for n in dir(cc) if n.startswith("CC_ERR_")}
assert len(errs) > 50, len(errs)
for n, v in errs.items():
    assert cc.err_name(v) == n, (n, cc.err_name(v))
    assert cc.strerror(v) and cc.strerror(v) != cc.strerror(-9999), n
assert cc.strerror(cc.CC_ERR_AUTH_BAD_CREDENTIALS) == "wrong user name or password", cc.strerror(-62)
assert cc.err_name(-9999) == "CC_ERR_UNKNOWN"
EOF
check "a failing call raises CCError with code, name and the context's detail" py - "$T_DIR/no-such-ca.pem" <<'EOF'
import sys
import carboncopy as cc
with cc.Context(cc.CC_ROLE_CONSOLE) as ctx:
    try:
        ctx.set_ca_file(sys.argv[1])
    except cc.CCError as e:
        assert e.code == cc.CC_ERR_TLS_CONFIG and e.name == "CC_ERR_TLS_CONFIG", (e.code, e.name)
        assert sys.argv[1] in e.detail, e.detail
    else:
        raise AssertionError("no CCError")
    try:
        cc.Session(ctx)  # no authenticator yet
    except cc.CCError as e:
        assert e.code == cc.CC_ERR_CONFIG and "authenticator" in e.detail, (e.code, e.detail)
    else:
        raise AssertionError("no CCError")
    ctx.add_builtin_authenticator("nt")
    s = cc.Session(ctx)
    try:
        s.send(1, b"x")  # not established
    except cc.CCError as e:
        assert e.code == cc.CC_ERR_STATE, e.code
    else:
        raise AssertionError("no CCError")
    assert s.state() == cc.CC_STATE_NEW and s.fd() == -1 and s.license() is None
EOF

# --- (c)-(e) console.py against a real cc-client ---
C=$(t_certs) || { not_ok "certificates"; t_done; }
GRANT=$(t_license_page 25 7)
DENY=$(t_license_page 5 5)
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
H=$(nthash alice-pw)
[ ${#H} -eq 32 ] || { not_ok "NT hash of the test password (openssl md4)"; t_done; }
printf 'alice:1000:%s:%s:[U          ]:LCT-5F5E1000:\n' XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX "$H" >"$T_DIR/smbpasswd"
printf 'alice-pw\n' >"$T_DIR/alice.pw"
printf 'not-the-password\n' >"$T_DIR/wrong.pw"

# run NAME PAGE PWFILE: a --once echo client, console.py against it; exit status in RC.
run() {
    local name=$1
    start_client "$name-client" --cert "$C/client.pem" --key "$C/client.key" --license-file "$2" \
        --accounts "$T_DIR/smbpasswd" --echo --once || { RC=-1; return; }
    (cd "$PYDIR" && timeout 60 "$PY" console.py "127.0.0.1:$CLIENT_PORT" --ca "$C/ca.pem" --user alice \
        --domain WORKGROUP --password-file "$3" --size 5000 >"$T_DIR/$name.out" 2>"$T_DIR/$name.err")
    RC=$?
    wait_pid "$CLIENT_PID" 10
}
expect() { # NAME RC: the console's exit status
    if [ "$RC" -eq "$2" ]; then ok "$1: console.py exits $2"; else
        not_ok "$1: console.py exits $2" "exit $RC" "$(cat "$T_DIR/$1.out" "$T_DIR/$1.err")"; fi
}

run right "$GRANT" "$T_DIR/alice.pw"
expect right 0
check "right: prints the licence verdict" has "$T_DIR/right.out" '^licence granted: 7 of 25 in use$'
check "right: prints the identity WORKGROUP\\alice" has "$T_DIR/right.out" '^authenticated by nt as WORKGROUP\\alice$'
check "right: established with that identity" has "$T_DIR/right.out" '^established: identity WORKGROUP\\alice, mechanism nt, TLS'
check "right: 5000 bytes echoed and verified" has "$T_DIR/right.out" '^sent 5000 bytes, echo verified$'
check "right: the client authenticated WORKGROUP\\alice and closed with \"done\"" \
    bash -c "grep -q '\"identity\":\"WORKGROUP\\\\\\\\alice\"' '$T_DIR/right-client.out' &&
             grep -q '\"closed\",\"session\":1,\"reason\":\"done\"' '$T_DIR/right-client.out'"
check "right: the client (--once) exited 0" test "$WAIT_RC" -eq 0

run wrong "$GRANT" "$T_DIR/wrong.pw"
expect wrong 6
# The console learns the one uniform failure (cc_context_set_auth_disclosure is off); the
# cause goes to the client's own log.
check "wrong password: CCError name CC_ERR_AUTH_BAD_CREDENTIALS with the session's detail (the uniform text)" \
    has "$T_DIR/wrong.err" '^console.py: CC_ERR_AUTH_BAD_CREDENTIALS: client: the user name or password is incorrect'
check "wrong password: the console is not told the cause" bash -c "! grep -q 'NTProofStr\|wrong password' '$T_DIR/wrong.err'"
check "wrong password: the client's log has the cause, wrong password for WORKGROUP\\alice" \
    has "$T_DIR/wrong-client.out" '"code":"CC_ERR_AUTH_BAD_CREDENTIALS".*wrong password for WORKGROUP\\\\alice'
check "wrong password: not established" bash -c "! grep -q established '$T_DIR/wrong.out'"

run denied "$DENY" "$T_DIR/alice.pw"
expect denied 5
check "licence denied: prints the verdict" has "$T_DIR/denied.out" '^licence denied: 5 of 5 in use'
check "licence denied: CCError name CC_ERR_LICENSE_DENIED" has "$T_DIR/denied.err" '^console.py: CC_ERR_LICENSE_DENIED: '

check "no password in any output" bash -c "! grep -rq alice-pw '$T_DIR'/*.out '$T_DIR'/*.err"
t_done
