#!/usr/bin/env bash
# test-abi.sh -- the promises around the ABI: the header compiles as C99, C11
# and C++ without warnings; only cc_* symbols are exported, each declared in
# the header and listed in the version script; an installed copy builds a
# program with nothing but pkg-config.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 1
B=${CC_BUILD:-$CC_SRC/build}
SO=$(ls "$B"/libcarboncopy.so.*.*.* | head -1)

printf '#include <carboncopy.h>\nint main(void) { return cc_version() == CC_VERSION_NUM ? 0 : 1; }\n' >"$T_DIR/h.c"
for std in c99 c11; do
    check "the header compiles as $std -pedantic without warnings" \
        cc -std=$std -pedantic -Wall -Wextra -Werror -Iinclude -c "$T_DIR/h.c" -o "$T_DIR/h-$std.o"
done
cp "$T_DIR/h.c" "$T_DIR/h.cpp"
check "the header compiles as C++ without warnings" c++ -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -c "$T_DIR/h.cpp" -o "$T_DIR/h-cpp.o"

nm -D --defined-only "$SO" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sed 's/@.*//' | sort -u >"$T_DIR/exported"
stray=$(grep -v '^cc_' "$T_DIR/exported" | tr '\n' ' ')
check "only cc_* symbols are exported${stray:+ (stray: $stray)}" [ -z "$stray" ]
lib/gen-map.sh >"$T_DIR/map"
check "lib/carboncopy.map is what lib/gen-map.sh makes of the header" cmp -s "$T_DIR/map" lib/carboncopy.map
grep -oE '^    cc_[a-z0-9_]+' lib/carboncopy.map | tr -d ' ' | sort -u >"$T_DIR/listed"
missing=$(comm -23 "$T_DIR/listed" "$T_DIR/exported" | tr '\n' ' ')
check "every function of the header is exported${missing:+ (missing: $missing)}" [ -z "$missing" ]
check "the soname is libcarboncopy.so.1" sh -c "readelf -d '$SO' | grep -q 'SONAME.*libcarboncopy.so.1\\]'"

# make abi-check passes on this tree, and its abidiff verdict catches a removed function:
# relink the same objects with cc_session_ping left out of the version script.
if [ "${SANITIZE:-}" != 1 ]; then
    check "make abi-check passes" sh -c "make -s abi-check >'$T_DIR/abi.log' 2>&1"
    grep -v 'cc_session_ping;' lib/carboncopy.map >"$T_DIR/broken.map"
    if cc -shared -Wl,-soname,libcarboncopy.so.1 -Wl,--version-script="$T_DIR/broken.map" -o "$T_DIR/broken.so" \
        $(find "$B/obj/lib" -name "*.o" | sort) $(pkg-config --libs openssl libcurl expat krb5-gssapi krb5) 2>"$T_DIR/link.log"; then
        abidiff --headers-dir2 include abi/libcarboncopy.abi "$T_DIR/broken.so" >"$T_DIR/abidiff.txt"
        rc=$?
        check "abidiff flags a removed function as incompatible (exit $rc has bit 8)" [ $((rc & 8)) -ne 0 ]
        check "and names it" grep -q cc_session_ping "$T_DIR/abidiff.txt"
    else
        not_ok "relink without cc_session_ping" "$(cat "$T_DIR/link.log")"
    fi
fi

# The recorded constants: the header still has every one, and a changed value is caught.
lib/gen-constants.sh >"$T_DIR/constants"
check "every constant of abi/constants.txt keeps its value" sh -c "[ -z \"\$(LC_ALL=C comm -23 abi/constants.txt '$T_DIR/constants')\" ]"
sed 's/^CC_ERR_TIMEOUT = -14$/CC_ERR_TIMEOUT = -99/' "$T_DIR/constants" | LC_ALL=C sort >"$T_DIR/changed"
check "a changed enumerator value would be reported" sh -c "LC_ALL=C comm -23 abi/constants.txt '$T_DIR/changed' | grep -qx 'CC_ERR_TIMEOUT = -14'"

# Install into a temporary DESTDIR and build against it with pkg-config only. The staged
# tree is found the way cross and package builds find theirs, with a sysroot: pkg-config
# puts $D in front of the paths the .pc names, so they must be the real ones of PREFIX.
D="$T_DIR/dest"
ma=$(${CC:-cc} -print-multiarch 2>/dev/null)
L=/opt/cc/lib${ma:+/$ma}
if make -s install DESTDIR="$D" PREFIX=/opt/cc SANITIZE="${SANITIZE:-}" >"$T_DIR/install.log" 2>&1; then
    ok "make install into a DESTDIR"
else
    not_ok "make install into a DESTDIR" "$(tail -5 "$T_DIR/install.log")"
fi
check "the header, both libraries and carboncopy.pc are installed" test -f "$D/opt/cc/include/carboncopy.h" \
    -a -f "$D$L/libcarboncopy.a" -a -L "$D$L/libcarboncopy.so" -a -f "$D$L/pkgconfig/carboncopy.pc"
check "carboncopy.pc names its private dependencies" grep -q '^Libs.private: .*-lssl .*-lcurl .*-lexpat .*-lgssapi_krb5' "$D$L/pkgconfig/carboncopy.pc"
check "carboncopy.pc says prefix=/opt/cc" grep -qx 'prefix=/opt/cc' "$D$L/pkgconfig/carboncopy.pc"
cat >"$T_DIR/app.c" <<'C'
#include <carboncopy.h>
#include <stdio.h>
int main(void)
{
    int err;
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    printf("%s %s\n", cc_version_string(), cc_strerror(CC_ERR_TIMEOUT));
    cc_context_free(ctx);
    return ctx ? 0 : 1;
}
C
flags=$(PKG_CONFIG_PATH="$D$L/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" pkg-config --cflags --libs carboncopy)
san=; [ "${SANITIZE:-}" = 1 ] && san="-fsanitize=address,undefined"
if cc $san "$T_DIR/app.c" -o "$T_DIR/app" $flags 2>"$T_DIR/cc.log"; then
    ok "a program builds against the installed library with pkg-config alone"
    out=$(LD_LIBRARY_PATH="$D$L" "$T_DIR/app")
    check "and runs: \"$out\"" [ "$out" = "1.0.0 the connection did not complete within the handshake deadline" ]
else
    not_ok "a program builds against the installed library with pkg-config alone" "$flags" "$(cat "$T_DIR/cc.log")"
fi
make -s uninstall DESTDIR="$D" PREFIX=/opt/cc >/dev/null 2>&1
check "make uninstall removes what install put there" test ! -e "$D/opt/cc/include/carboncopy.h" -a ! -e "$D$L/libcarboncopy.a"
t_done
