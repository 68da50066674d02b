#!/usr/bin/env bash
# test-dist.sh -- `make dist` makes carboncopy-VERSION.tar.gz with everything a build needs:
# unpacked into an empty directory, away from the checkout, `make lib` builds both libraries there.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 2
if [ "${SANITIZE:-}" = 1 ]; then
    echo "# skip: the tarball is the same with or without sanitizers; the plain run tests it"
    exit 77
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "# skip: not a git checkout (make dist packs what git tracks)"
    exit 77
fi
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make "$@"; }
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
tarball=build/carboncopy-$version.tar.gz
rm -f "$tarball"
if ! mk -s dist >"$T_DIR/dist.log" 2>&1; then
    not_ok "make dist" "$(tail -5 "$T_DIR/dist.log")"
    t_done
fi
check "make dist makes $tarball" test -s "$tarball"
tar -tzf "$tarball" >"$T_DIR/list"
outside=$(grep -v "^carboncopy-$version/" "$T_DIR/list" | head -3 | tr '\n' ' ')
check "every file is under carboncopy-$version/${outside:+ (not: $outside)}" [ -z "$outside" ]
missing=
for f in Makefile include/carboncopy.h lib/carboncopy.map pkgconfig/carboncopy.pc.in LICENSE README.md CHANGELOG.md \
    .ci/packages doc/man/libcarboncopy.3; do
    grep -qx "carboncopy-$version/$f" "$T_DIR/list" || missing="$missing $f"
done
check "it holds the build's files${missing:+ (missing:$missing)}" [ -z "$missing" ]
ntracked=$(git ls-files | while read -r f; do [ -e "$f" ] && echo; done | wc -l)
check "and every file git tracks ($(wc -l <"$T_DIR/list") of $ntracked)" [ "$(wc -l <"$T_DIR/list")" -eq "$ntracked" ]
check "no build output" sh -c "! grep -qE '^carboncopy-$version/build/|\\.o\$' '$T_DIR/list'"

mkdir -p "$T_DIR/unpack"
tar -xzf "$tarball" -C "$T_DIR/unpack"
src=$T_DIR/unpack/carboncopy-$version
if (cd "$src" && mk -j2 lib) >"$T_DIR/build.log" 2>&1; then
    ok "make lib builds in the unpacked tarball"
    check "both libraries are there" test -f "$src/build/libcarboncopy.so.$version" -a -f "$src/build/libcarboncopy.a"
else
    not_ok "make lib builds in the unpacked tarball" "$(tail -20 "$T_DIR/build.log")"
fi
t_done
