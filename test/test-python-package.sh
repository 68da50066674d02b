#!/usr/bin/env bash
# test-python-package.sh -- the Python package as a user gets it: pip installs examples/python offline
# into a venv, the library lookup order, make install's copy, and a console and a client written with
# the package through the whole process, against each other and against cc-client and cc-console.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 2

CC_BUILD=${CC_BUILD:-$CC_SRC/build}
PY=/usr/bin/python3 # Debian's python: python3-cffi, -venv, -pip, -setuptools, -wheel (.ci/packages)
LIB=$CC_BUILD/libcarboncopy.so.1
# An ASan-instrumented library cannot be dlopen'ed into an uninstrumented python.
if [ "${SANITIZE:-}" = 1 ] || readelf -d "$LIB" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
    echo "# skip - the Python package under SANITIZE (ASan library cannot be loaded into python)"
    exit 77
fi
[ -f "$LIB" ] || { not_ok "library built" "$LIB is missing: run make"; t_done; }
for m in cffi venv pip setuptools wheel; do
    "$PY" -c "import $m" 2>/dev/null ||
        { not_ok "$PY has $m" "apt-get install python3-$m (.ci/packages)"; t_done; }
done
unset PYTHONPATH CARBONCOPY_LIB PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
export PYTHONDONTWRITEBYTECODE=1
# pip as on a clean machine: no configuration file, no find-links or index of the caller's.
pipenv() { env $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/-u \1/p') PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"; }
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "$@"; }
has() { grep -q -- "$2" "$1"; }
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
ma=$(${CC:-cc} -print-multiarch 2>/dev/null)

# --- 1. pip install, offline, into a venv that sees Debian's cffi ---
# From a copy: pip builds in the source directory (build/, *.egg-info), and the copy shows the
# directory needs nothing outside itself (no ../../include).
mkdir -p "$T_DIR/src" "$T_DIR/apps" "$T_DIR/empty"
(cd examples/python && tar --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - .) |
    tar -xf - -C "$T_DIR/src"
V=$T_DIR/venv
VPY=$V/bin/python
if ! timeout 120 "$PY" -m venv --system-site-packages "$V" >"$T_DIR/venv.log" 2>&1; then
    not_ok "$PY -m venv --system-site-packages" "$(tail -5 "$T_DIR/venv.log")"
    t_done
fi
if pipenv timeout 180 "$VPY" -m pip install --no-build-isolation --no-index "$T_DIR/src" >"$T_DIR/pip.log" 2>&1; then
    ok "pip install --no-build-isolation --no-index examples/python into a venv"
else
    not_ok "pip install --no-build-isolation --no-index examples/python into a venv" "$(tail -15 "$T_DIR/pip.log")"
    t_done
fi
check "it built a pure wheel, carboncopy-$version-py3-none-any" has "$T_DIR/pip.log" "carboncopy-$version-py3-none-any.whl"
check "the venv's package: the layer, the generated cdef and py.typed; version $version = the header's; needs cffi (Debian's)" \
    env CARBONCOPY_LIB="$LIB" "$VPY" - "$V" "$version" "$CC_SRC/examples/python/carboncopy" <<'EOF'
import importlib.metadata as md, os, sys, filecmp
import cffi, carboncopy as cc
venv, version, src = sys.argv[1:]
pkg = os.path.dirname(cc.__file__)
assert pkg.startswith(venv + "/lib/"), pkg
for f in ("__init__.py", "carboncopy_cdef.h", "py.typed"):
    assert filecmp.cmp(os.path.join(pkg, f), os.path.join(src, f), shallow=False), f
assert md.version("carboncopy") == version == cc.__version__ == cc.CC_VERSION_STRING, (md.version("carboncopy"), version, cc.__version__)
assert [r.replace(" ", "").replace("(", "").replace(")", "") for r in md.requires("carboncopy")] == ["cffi>=1.12"], md.requires("carboncopy")
assert cffi.__file__.startswith("/usr/lib/python3/dist-packages/"), cffi.__file__
files = {str(f) for f in md.files("carboncopy")}
assert not [f for f in files if f.endswith(".py") and not f.startswith("carboncopy")], files  # no example scripts
assert cc.SONAME == "libcarboncopy.so.%d" % cc.CC_VERSION_MAJOR, cc.SONAME
EOF

# --- 2. where it finds the library: CARBONCOPY_LIB, then pkg-config's libdir, then the system loader ---
# probe ENV...: LIBRARY_PATH as the venv's package finds it with these variables (nothing else set),
# or the ImportError's text.
probe() {
    (cd "$T_DIR/apps" && env -u LD_LIBRARY_PATH "$@" "$VPY" -c '
import sys
try:
    import carboncopy
except ImportError as e:
    print("ImportError: %s" % e)
    sys.exit(0)
print(carboncopy.LIBRARY_PATH)' 2>&1)
}
P=$T_DIR/prefix
PL=$P/lib${ma:+/$ma}
if mk install PREFIX="$P" >"$T_DIR/install.log" 2>&1; then ok "make install PREFIX=.../prefix"; else
    not_ok "make install PREFIX=.../prefix" "$(tail -5 "$T_DIR/install.log")"; fi
# A carboncopy.pc whose libdir has no library: pkg-config answers, the load fails, the loader is next.
mkdir -p "$T_DIR/fakepc"
printf 'libdir=%s\nName: carboncopy\nDescription: x\nVersion: 1.0.0\nLibs: -L${libdir} -lcarboncopy\n' \
    "$T_DIR/empty" >"$T_DIR/fakepc/carboncopy.pc"
NOPC=PKG_CONFIG_LIBDIR=$T_DIR/empty # pkg-config searches only this (empty) directory: no module

out=$(probe CARBONCOPY_LIB="$LIB" PKG_CONFIG_PATH="$PL/pkgconfig")
check "1. CARBONCOPY_LIB=FILE is taken first (before pkg-config's): $out" [ "$out" = "$LIB" ]
out=$(probe CARBONCOPY_LIB="$CC_BUILD" "$NOPC")
check "1. CARBONCOPY_LIB=DIR takes DIR/libcarboncopy.so.1: $out" [ "$out" = "$CC_BUILD/libcarboncopy.so.1" ]
out=$(probe CARBONCOPY_LIB="$T_DIR/nope.so.1" PKG_CONFIG_PATH="$PL/pkgconfig" LD_LIBRARY_PATH="$CC_BUILD")
check "1. a CARBONCOPY_LIB that does not load fails, naming it; nothing else stands in: ${out:0:160}" \
    bash -c 'case "$1" in "ImportError: cannot load libcarboncopy: 1. CARBONCOPY_LIB=$2: "*"not tried while CARBONCOPY_LIB is set"*) ;; *) exit 1 ;; esac' \
    _ "$out" "$T_DIR/nope.so.1"
out=$(probe PKG_CONFIG_PATH="$PL/pkgconfig" "$NOPC")
check "2. unset: pkg-config --variable=libdir carboncopy names the installed one: $out" [ "$out" = "$PL/libcarboncopy.so.1" ]
out=$(probe "$NOPC" LD_LIBRARY_PATH="$CC_BUILD")
check "3. no pkg-config module: the system loader's search (LD_LIBRARY_PATH here): $out" [ "$out" = libcarboncopy.so.1 ]
out=$(probe PKG_CONFIG_PATH="$T_DIR/fakepc" "$NOPC" LD_LIBRARY_PATH="$CC_BUILD")
check "3. pkg-config's libdir without the library: on to the system loader: $out" [ "$out" = libcarboncopy.so.1 ]
out=$(probe PKG_CONFIG="$T_DIR/no-such-pkg-config" LD_LIBRARY_PATH="$CC_BUILD")
check "3. no pkg-config program: on to the system loader: $out" [ "$out" = libcarboncopy.so.1 ]
if "$PY" -c 'import ctypes; ctypes.CDLL("libcarboncopy.so.1")' 2>/dev/null; then
    echo "# this machine's loader finds a libcarboncopy.so.1 by itself: the none-found error is not tested"
else
    out=$(probe PKG_CONFIG_PATH="$T_DIR/fakepc" "$NOPC")
    check "none works: the ImportError names all three ways and what each said" \
        bash -c 'for w in "cannot find libcarboncopy.so.1" "1. CARBONCOPY_LIB is not set" \
                   "2. pkg-config names libdir $2: " "3. the system loader: " "Set CARBONCOPY_LIB"; do
                     case "$1" in *"$w"*) ;; *) echo "# missing: $w"; exit 1 ;; esac; done' _ "$out" "$T_DIR/empty"
    echo "$out" | sed 's/^/#   /'
fi

# --- 3. make install's copy: the same files, where Debian's python3 looks for the prefix ---
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PD=$P/lib/python$pyver/dist-packages/carboncopy
check "make install PREFIX=P: the package in P/lib/python$pyver/dist-packages/carboncopy, the three files as committed" \
    bash -c "for f in __init__.py carboncopy_cdef.h py.typed; do cmp -s '$CC_SRC/examples/python/carboncopy/'\$f '$PD/'\$f || exit 1; done"
check "and Debian's python3 imports it from there (PYTHONPATH), finding the library by pkg-config alone" \
    bash -c "cd '$T_DIR/apps' && out=\$(env -u LD_LIBRARY_PATH PYTHONPATH='$P/lib/python$pyver/dist-packages' \
             PKG_CONFIG_PATH='$PL/pkgconfig' '$NOPC' '$PY' -c 'import carboncopy as c; print(c.__file__, c.LIBRARY_PATH, c.version_string())') &&
             [ \"\$out\" = '$PD/__init__.py $PL/libcarboncopy.so.1 $version' ]"
D=$T_DIR/stage
if mk install-python DESTDIR="$D" PREFIX=/usr >"$T_DIR/install-usr.log" 2>&1; then
    check "make install-python DESTDIR=D PREFIX=/usr: D/usr/lib/python3/dist-packages/carboncopy (Debian's place)" \
        test -f "$D/usr/lib/python3/dist-packages/carboncopy/__init__.py" -a -f "$D/usr/lib/python3/dist-packages/carboncopy/py.typed"
    check "and nothing else" [ "$(find "$D" -type f | wc -l)" -eq 3 ]
    mk uninstall-python DESTDIR="$D" PREFIX=/usr >>"$T_DIR/install-usr.log" 2>&1
    check "make uninstall-python removes it" [ "$(find "$D" ! -type d | wc -l)" -eq 0 ]
else
    not_ok "make install-python DESTDIR=D PREFIX=/usr" "$(tail -5 "$T_DIR/install-usr.log")"
fi
mk install-python DESTDIR="$T_DIR/none" PYTHONDIR= >"$T_DIR/install-none.log" 2>&1
check "PYTHONDIR= installs no Python package" [ ! -e "$T_DIR/none" ]
mk uninstall PREFIX="$P" >"$T_DIR/uninstall.log" 2>&1
check "make uninstall removes the Python package" [ ! -e "$PD" ]

# --- 4. console.py and client.py on the venv's package, through the whole process ---
# Copied away from examples/python, so `import carboncopy` can only be the installed package.
cp examples/python/console.py examples/python/client.py "$T_DIR/apps/"
export CARBONCOPY_LIB=$LIB
C=$(t_certs) || { not_ok "certificates"; t_done; }
nthash() { printf '%s' "$1" | iconv -t UTF-16LE | openssl dgst -md4 -provider legacy -provider default | awk '{print toupper($2)}'; }
H=$(nthash alice-pw)
[ ${#H} -eq 32 ] || { not_ok "NT hash of the test password (openssl md4)"; t_done; }
printf 'alice:1000:%s:%s:[U          ]:LCT-5F5E1000:\n' XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX "$H" >"$T_DIR/smbpasswd"
printf 'alice-pw\n' >"$T_DIR/alice.pw"
printf 'not-the-password\n' >"$T_DIR/wrong.pw"
head -c 300000 /dev/urandom >"$T_DIR/payload"

# py_client NAME ARGS...: client.py in the background on 127.0.0.1:0; sets PYC_PORT and PYC_PID.
py_client() {
    local name=$1 i
    shift
    (cd "$T_DIR/apps" && exec timeout 60 "$VPY" client.py --cert "$C/client.pem" --key "$C/client.key" \
        --accounts "$T_DIR/smbpasswd" --accept-timeout 30 --timeout 20000 "$@") \
        >"$T_DIR/$name-client.out" 2>"$T_DIR/$name-client.err" &
    PYC_PID=$!
    T_PIDS+=("$PYC_PID")
    for i in $(seq 1 200); do
        PYC_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T_DIR/$name-client.out")
        [ -n "$PYC_PORT" ] && return 0
        kill -0 "$PYC_PID" 2>/dev/null || break
        sleep 0.05
    done
    not_ok "$name: client.py listens" "$(cat "$T_DIR/$name-client.err")"
    return 1
}
# py_console NAME PORT PWFILE: console.py from the apps directory; its status in RC.
py_console() {
    (cd "$T_DIR/apps" && timeout 60 "$VPY" console.py "127.0.0.1:$2" --ca "$C/ca.pem" --user alice \
        --domain WORKGROUP --password-file "$3" --size 200000) >"$T_DIR/$1.out" 2>"$T_DIR/$1.err"
    RC=$?
}
# cc_console NAME PORT PWFILE: the C tool, sending the payload; its status in RC.
cc_console() {
    timeout 60 "$CC_BIN/cc-console" "127.0.0.1:$2" --ca "$C/ca.pem" --auth nt --user alice --domain WORKGROUP \
        --password-file "$3" --send "$T_DIR/payload" --timeout 20000 >"$T_DIR/$1.out" 2>"$T_DIR/$1.err"
    RC=$?
}
rc_is() { # NAME WHAT WANT GOT
    if [ "$4" -eq "$3" ]; then ok "$1: $2 exits $3"; else
        not_ok "$1: $2 exits $3" "exit $4" "$(cat "$T_DIR/$1"*out "$T_DIR/$1"*err 2>/dev/null | tail -20)"; fi
}
id_line='^authenticated by nt as WORKGROUP\\alice$'
est_line='^established: identity WORKGROUP\\alice, mechanism nt, TLSv1\.[23] '

# a. console.py <-> client.py
if py_client py-py --license 25:7 --echo; then
    py_console py-py "$PYC_PORT" "$T_DIR/alice.pw"
    rc_is py-py console.py 0 "$RC"
    wait_pid "$PYC_PID" 20
    rc_is py-py client.py 0 "$WAIT_RC"
    check "py-py: the console is told the figures the client answered the licence job with" \
        has "$T_DIR/py-py.out" '^licence granted: 7 of 25 in use$'
    check "py-py: the console is established as WORKGROUP\\alice" has "$T_DIR/py-py.out" "$est_line"
    check "py-py: 200000 bytes echoed and verified" has "$T_DIR/py-py.out" '^sent 200000 bytes, echo verified$'
    check "py-py: the client granted the licence in process, authenticated WORKGROUP\\alice, established" \
        bash -c "grep -q '^licence granted: 7 of 25 in use$' '$T_DIR/py-py-client.out' &&
                 grep -q '$id_line' '$T_DIR/py-py-client.out' && grep -q '$est_line' '$T_DIR/py-py-client.out'"
    check "py-py: the client echoed 200000 bytes and saw the orderly close \"done\"" \
        has "$T_DIR/py-py-client.out" '^closed: orderly, reason "done", 200000 bytes received and echoed$'
fi

# b. console.py <-> cc-client
if start_client py-cc-client --cert "$C/client.pem" --key "$C/client.key" --license-file "$(t_license_page 25 7)" \
    --accounts "$T_DIR/smbpasswd" --echo --once; then
    py_console py-cc "$CLIENT_PORT" "$T_DIR/alice.pw"
    rc_is py-cc console.py 0 "$RC"
    wait_pid "$CLIENT_PID" 20
    rc_is py-cc cc-client 0 "$WAIT_RC"
    check "py-cc: established, 200000 bytes echoed and verified" \
        bash -c "grep -q '$est_line' '$T_DIR/py-cc.out' && grep -q '^sent 200000 bytes, echo verified$' '$T_DIR/py-cc.out'"
    check "py-cc: cc-client authenticated WORKGROUP\\alice and closed with \"done\"" \
        bash -c "grep -q '\"identity\":\"WORKGROUP\\\\\\\\alice\"' '$T_DIR/py-cc-client.out' &&
                 grep -q '\"closed\",\"session\":1,\"reason\":\"done\"' '$T_DIR/py-cc-client.out'"
fi

# c. cc-console <-> client.py
if py_client cc-py --license 25:7 --echo; then
    cc_console cc-py "$PYC_PORT" "$T_DIR/alice.pw"
    rc_is cc-py cc-console 0 "$RC"
    wait_pid "$PYC_PID" 20
    rc_is cc-py client.py 0 "$WAIT_RC"
    check "cc-py: cc-console sent 300000 bytes and verified the echo" has "$T_DIR/cc-py.err" '^sent 300000 bytes, echo verified$'
    check "cc-py: the client authenticated WORKGROUP\\alice, established, echoed 300000 bytes" \
        bash -c "grep -q '$id_line' '$T_DIR/cc-py-client.out' && grep -q '$est_line' '$T_DIR/cc-py-client.out' &&
                 grep -q '^closed: orderly, reason \"done\", 300000 bytes received and echoed$' '$T_DIR/cc-py-client.out'"
fi

# d. the figures decide: 5 of 5 in use is denied, on both sides
if py_client denied --license 5:5 --echo; then
    py_console denied "$PYC_PORT" "$T_DIR/alice.pw"
    rc_is denied console.py 5 "$RC"
    wait_pid "$PYC_PID" 20
    rc_is denied client.py 5 "$WAIT_RC"
    check "denied: the console prints the verdict, CC_ERR_LICENSE_DENIED" \
        bash -c "grep -q '^licence denied: 5 of 5 in use' '$T_DIR/denied.out' &&
                 grep -q '^console.py: CC_ERR_LICENSE_DENIED: ' '$T_DIR/denied.err'"
    check "denied: not established" bash -c "! grep -q established '$T_DIR/denied.out' '$T_DIR/denied-client.out'"
fi

# e. a wrong password from cc-console: the console gets the uniform failure, client.py the cause
if py_client wrong --license 25:7 --echo; then
    cc_console wrong "$PYC_PORT" "$T_DIR/wrong.pw"
    rc_is wrong cc-console 6 "$RC"
    wait_pid "$PYC_PID" 20
    rc_is wrong client.py 6 "$WAIT_RC"
    check "wrong: client.py prints the cause, a wrong password for WORKGROUP\\alice" \
        has "$T_DIR/wrong-client.out" '^refused by nt: CC_ERR_AUTH_BAD_CREDENTIALS: .*wrong password for WORKGROUP\\alice'
    check "wrong: cc-console is not told it" bash -c "! grep -q 'wrong password' '$T_DIR/wrong.out' '$T_DIR/wrong.err'"
fi

# f. --license-url: the licence job runs (cc_job_run on a worker thread); a closed port fails closed
if py_client unreachable --license-url "http://127.0.0.1:1/altiris/NS/Agent/GetLicenseDetails.aspx" --echo; then
    py_console unreachable "$PYC_PORT" "$T_DIR/alice.pw"
    rc_is unreachable console.py 5 "$RC"
    wait_pid "$PYC_PID" 20
    rc_is unreachable client.py 5 "$WAIT_RC"
    check "unreachable: the client says CC_ERR_LICENSE_UNREACHABLE" \
        has "$T_DIR/unreachable-client.err" '^client.py: CC_ERR_LICENSE_UNREACHABLE: '
fi

check "no password in any output" bash -c "! grep -rqs alice-pw '$T_DIR'/*.out '$T_DIR'/*.err"
t_done
