#!/usr/bin/env bash
# test-install.sh -- what `make install` gives a consumer, into real prefixes (no --define-variable):
# carboncopy.pc right for each prefix, the static recipe, the tools, the CMake package, uninstall.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 2
CC=${CC:-cc}
if [ "${SANITIZE:-}" = 1 ]; then
    # The files installed are the same with or without sanitizers; the plain run tests them.
    echo "# skip: packaging is tested by the run without SANITIZE"
    exit 77
fi
# A make of our own, not a part of the caller's (make check) job server or variables.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s "$@"; }
ma=$($CC -print-multiarch 2>/dev/null)
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

cat >"$T_DIR/app.c" <<'C'
#include <carboncopy.h>
#include <stdio.h>
int main(void)
{
    int err;
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    printf("%s %s\n", cc_version_string(), cc_err_name(CC_ERR_TIMEOUT));
    cc_context_free(ctx);
    return ctx ? 0 : 1;
}
C
want="1.0.0 CC_ERR_TIMEOUT"

# 1. Two installs, one after the other from the same build, into two prefixes.
for name in a b; do
    P=$T_DIR/$name
    L=$P/lib${ma:+/$ma}
    if ! mk install PREFIX="$P" >"$T_DIR/install-$name.log" 2>&1; then
        not_ok "make install PREFIX=$P" "$(tail -5 "$T_DIR/install-$name.log")"
        continue
    fi
    ok "make install PREFIX=.../$name"
    pc=$L/pkgconfig/carboncopy.pc
    check "LIBDIR defaults to PREFIX/lib${ma:+/$ma} (the compiler's multiarch directory)" \
        test -f "$L/libcarboncopy.so.1.0.0" -a -f "$pc"
    check "carboncopy.pc of .../$name says prefix=$P" grep -qx "prefix=$P" "$pc"
    export PKG_CONFIG_PATH=$L/pkgconfig
    cflags=$(pkg-config --cflags carboncopy | sed 's/ *$//')
    check "pkg-config --cflags is exactly -I$P/include (the header needs nothing else): \"$cflags\"" \
        [ "$cflags" = "-I$P/include" ]
    check "no Requires.private: its Cflags (krb5's include directory) would reach every consumer" \
        sh -c "! grep -q '^Requires' '$pc'"
    libs_private=$(sed -n 's/^Libs.private: //p' "$pc")
    missing=
    for l in -lssl -lcrypto -lcurl -lexpat -lgssapi_krb5 -lkrb5; do
        case " $libs_private " in *" $l "*) ;; *) missing="$missing $l" ;; esac
    done
    check "Libs.private lists the dependencies${missing:+ (missing:$missing)}" [ -z "$missing" ]
    if $CC "$T_DIR/app.c" -o "$T_DIR/app-$name" $(pkg-config --cflags --libs carboncopy) 2>"$T_DIR/cc-$name.log"; then
        out=$(LD_LIBRARY_PATH=$L "$T_DIR/app-$name" 2>&1)
        check "a program built with pkg-config --cflags --libs against .../$name runs: \"$out\"" [ "$out" = "$want" ]
    else
        not_ok "a program builds with pkg-config --cflags --libs against .../$name" "$(cat "$T_DIR/cc-$name.log")"
    fi
    unset PKG_CONFIG_PATH
done
P=$T_DIR/b
L=$P/lib${ma:+/$ma}
export PKG_CONFIG_PATH=$L/pkgconfig

# 2. The README's static recipe: our archive static, its dependencies shared (Debian has no
#    static libkrb5, and libcurl's static dependencies are not installed).
libs=$(pkg-config --static --libs carboncopy | sed 's/-lcarboncopy/-Wl,-Bstatic & -Wl,-Bdynamic/')
if $CC "$T_DIR/app.c" -o "$T_DIR/app-static" $(pkg-config --cflags carboncopy) $libs 2>"$T_DIR/cc-static.log"; then
    ok "the static recipe links with pkg-config --static --libs"
    check "the program does not need libcarboncopy.so" sh -c "! readelf -d '$T_DIR/app-static' | grep -q 'NEEDED.*libcarboncopy'"
    out=$(env -u LD_LIBRARY_PATH "$T_DIR/app-static" 2>&1)
    check "and runs without the shared library: \"$out\"" [ "$out" = "$want" ]
else
    not_ok "the static recipe links with pkg-config --static --libs" "$libs" "$(cat "$T_DIR/cc-static.log")"
fi

# 3. The installed archive exposes the API only: every defined global symbol is a cc_* function
#    of the version script; the internal cc__* ones are all local.
a=$L/libcarboncopy.a
nm "$a" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[A-TV-Z]$/ {print $3}' | sort -u >"$T_DIR/a-globals"
grep -oE '^ +cc_[a-z0-9_]+;' lib/carboncopy.map | tr -d ' ;' | sort -u >"$T_DIR/exported"
stray=$(comm -23 "$T_DIR/a-globals" "$T_DIR/exported" | head -5 | tr '\n' ' ')
check "libcarboncopy.a defines no global symbol but the exported cc_* ones${stray:+ (stray: $stray)}" [ -z "$stray" ]
check "and all $(wc -l <"$T_DIR/exported") of them" cmp -s "$T_DIR/a-globals" "$T_DIR/exported"
nlocal=$(nm "$a" | awk '$2 ~ /^[a-z]$/ && $3 ~ /^cc__/' | wc -l)
check "its internal cc__* symbols are local ($nlocal)" [ "$nlocal" -gt 100 ]
check "the internal archive is not installed" sh -c "! ls '$L' | grep -q internal"

# 4. The tools, in BINDIR, run from there without LD_LIBRARY_PATH.
for t in cc-console cc-client; do
    if [ -x "$P/bin/$t" ]; then
        env -u LD_LIBRARY_PATH "$P/bin/$t" --help >"$T_DIR/$t.help" 2>&1
        check "$t is installed in BINDIR and runs from there" grep -q "^usage: $t" "$T_DIR/$t.help"
    else
        not_ok "$t is installed in BINDIR"
    fi
done

# 5. The CMake package, from a staged (DESTDIR) tree: find_package(carboncopy CONFIG REQUIRED)
#    and the imported targets, shared and static; a wrong major version is not taken.
D=$T_DIR/stage
DL=$D/opt/cc/lib${ma:+/$ma}
if ! command -v cmake >/dev/null; then
    not_ok "cmake is installed (.ci/packages lists it)"
elif ! mk install DESTDIR="$D" PREFIX=/opt/cc >"$T_DIR/install-stage.log" 2>&1; then
    not_ok "make install DESTDIR=... PREFIX=/opt/cc" "$(tail -5 "$T_DIR/install-stage.log")"
else
    check "carboncopyConfig.cmake and carboncopyConfigVersion.cmake are in LIBDIR/cmake/carboncopy" \
        test -f "$DL/cmake/carboncopy/carboncopyConfig.cmake" -a -f "$DL/cmake/carboncopy/carboncopyConfigVersion.cmake"
    mkdir -p "$T_DIR/cm"
    cp "$T_DIR/app.c" "$T_DIR/cm/app.c"
    cat >"$T_DIR/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(carboncopy 2 CONFIG QUIET)
message(STATUS "major-2-found=${carboncopy_FOUND}")
find_package(carboncopy 1.0 CONFIG REQUIRED)
message(STATUS "found=${carboncopy_FOUND} version=${carboncopy_VERSION}")
add_executable(app app.c)
target_link_libraries(app PRIVATE carboncopy::carboncopy)
add_executable(app-static app.c)
target_link_libraries(app-static PRIVATE carboncopy::carboncopy_static)
CM
    if cmake -S "$T_DIR/cm" -B "$T_DIR/cm/build" -DCMAKE_PREFIX_PATH="$D/opt/cc" >"$T_DIR/cmake.log" 2>&1 &&
        cmake --build "$T_DIR/cm/build" >>"$T_DIR/cmake.log" 2>&1; then
        ok "a CMake project builds with find_package(carboncopy CONFIG REQUIRED) from a DESTDIR install"
        check "find_package reports version 1.0.0" grep -q 'found=1 version=1.0.0' "$T_DIR/cmake.log"
        check "find_package(carboncopy 2) does not take it" grep -q 'major-2-found=0' "$T_DIR/cmake.log"
        out=$(env -u LD_LIBRARY_PATH "$T_DIR/cm/build/app" 2>&1)
        check "carboncopy::carboncopy links the shared library and runs: \"$out\"" [ "$out" = "$want" ]
        check "carboncopy::carboncopy_static does not need libcarboncopy.so" \
            sh -c "! readelf -d '$T_DIR/cm/build/app-static' | grep -q 'NEEDED.*libcarboncopy'"
        out=$(env -u LD_LIBRARY_PATH "$T_DIR/cm/build/app-static" 2>&1)
        check "and runs: \"$out\"" [ "$out" = "$want" ]
    else
        not_ok "a CMake project builds with find_package(carboncopy CONFIG REQUIRED)" "$(tail -30 "$T_DIR/cmake.log")"
    fi
fi

# 6. make uninstall leaves nothing but directories behind.
for name in a b; do
    mk uninstall PREFIX="$T_DIR/$name" >>"$T_DIR/uninstall.log" 2>&1
    left=$(find "$T_DIR/$name" ! -type d | head -5 | tr '\n' ' ')
    check "make uninstall PREFIX=.../$name removes every file${left:+ (left: $left)}" [ -z "$left" ]
done
if [ -d "$D" ]; then
    mk uninstall DESTDIR="$D" PREFIX=/opt/cc >>"$T_DIR/uninstall.log" 2>&1
    left=$(find "$D" ! -type d | head -5 | tr '\n' ' ')
    check "make uninstall DESTDIR=... removes every file${left:+ (left: $left)}" [ -z "$left" ]
fi
t_done
