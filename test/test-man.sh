#!/usr/bin/env bash
# test-man.sh -- the man pages in doc/man: they format without warnings (man, groff, mandoc), cover
# every function and option, the example compiles, and `make install` installs them with their links.
. "$(dirname "$0")/lib.sh"
cd "$CC_SRC" || exit 2
M=doc/man
CC=${CC:-cc}

if ! command -v man >/dev/null || ! command -v groff >/dev/null; then
    echo "# skip: man-db and groff-base are not installed"
    exit 77
fi

pages=("$M"/*.[13])
[ -e "${pages[0]}" ] || { not_ok "doc/man has pages"; t_done; }
have_mandoc=1
command -v mandoc >/dev/null || { have_mandoc=; not_ok "mandoc is installed (.ci/packages lists it)"; }
# lint FILE: mandoc's warnings about FILE (none: clean), run where the file is.
lint() { (cd "$(dirname "$1")" && mandoc -Tlint -W warning "$(basename "$1")" 2>&1); }

# 1. Every page formats without a warning (man-db's pipeline, groff's own, mandoc's lint)
#    and is a page, not a `.so` include: those fail with `man -l` and wherever the
#    page is read outside its man tree.
for p in "${pages[@]}"; do
    out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' man --warnings -E UTF-8 -l "$p" 2>&1 >/dev/null)
    out2=$(groff -man -ww -z "$p" 2>&1)
    out3=; [ -n "$have_mandoc" ] && out3=$(lint "$p")
    grep -q '^\.so' "$p" && out3="$out3 (a .so request)"
    if [ -z "$out$out2$out3" ]; then ok "formats without warnings: $p"; else not_ok "formats without warnings: $p" "$out" "$out2" "$out3"; fi
done

# 2. The links `make install` makes (doc/man/links.sh, from the NAME sections) point at
#    pages of this directory, and none hides a page.
links=$(doc/man/links.sh)
nlinks=$(printf '%s\n' "$links" | grep -c .)
bad=$(printf '%s\n' "$links" | while read -r alias page; do
    [ -f "$M/$page" ] && [ ! -e "$M/$alias" ] || echo "$alias->$page"
done | tr '\n' ' ')
if [ "$nlinks" -gt 50 ] && [ -z "$bad" ]; then
    ok "doc/man/links.sh: $nlinks links, each to a page of doc/man"
else
    not_ok "doc/man/links.sh: each link to a page of doc/man ($nlinks links)" "bad: $bad"
fi

# 3. libcarboncopy.3 mentions every function of the header.
funcs=$(grep -E '^[a-z][^(]*\bcc_[a-z0-9_]+\(' include/carboncopy.h | grep -v '^typedef' |
        grep -oE 'cc_[a-z0-9_]+\(' | tr -d '(' | sort -u)
nfuncs=$(printf '%s\n' "$funcs" | grep -c .)
# The extraction must find what the version script exports, or it is broken.
exported=$(grep -oE '\bcc_[a-z0-9_]+;' lib/carboncopy.map | tr -d ';' | sort -u)
missing=()
[ "$funcs" = "$exported" ] || missing+=("(header and lib/carboncopy.map differ)")
for f in $funcs; do grep -q "\\b$f\\b" "$M/libcarboncopy.3" || missing+=("$f"); done
if [ "$nfuncs" -gt 50 ] && [ ${#missing[@]} -eq 0 ]; then
    ok "libcarboncopy.3 names all $nfuncs functions of carboncopy.h"
else
    not_ok "libcarboncopy.3 names all functions of carboncopy.h ($nfuncs found)" "missing: ${missing[*]}"
fi

# 3b. Every function has a page of its own or a link to the page that describes it,
#     and cc_strerror.3 lists every error code.
missing=()
for f in $funcs; do
    [ -f "$M/$f.3" ] || printf '%s\n' "$links" | grep -q "^$f\.3 " || missing+=("$f")
done
if [ ${#missing[@]} -eq 0 ]; then ok "all $nfuncs functions have a page or a link"; else not_ok "every function has a page or a link" "missing: ${missing[*]}"; fi
missing=()
for e in $(sed -n '/^typedef enum cc_error/,/^} cc_error;/p' include/carboncopy.h | grep -oE '\bCC_(OK|ERR_[A-Z0-9_]+)\b' | sort -u); do
    grep -q "^\.BR $e " "$M/cc_strerror.3" || missing+=("$e")
done
if [ ${#missing[@]} -eq 0 ]; then ok "cc_strerror.3 lists every error code of carboncopy.h"; else not_ok "cc_strerror.3 lists every error code" "missing: ${missing[*]}"; fi

# 4. Each program's page documents every long option of its getopt table.
for prog in cc-console cc-client; do
    opts=$(grep -oE '\{"[a-z0-9-]+", (no|required|optional)_argument' "examples/$prog.c" | sed 's/{"//; s/".*//')
    missing=()
    for o in $opts; do
        sed 's/\\-/-/g' "$M/$prog.1" | grep -qE -- "--$o([^a-z0-9-]|$)" || missing+=("--$o")
    done
    if [ -n "$opts" ] && [ ${#missing[@]} -eq 0 ]; then
        ok "$prog.1 documents all $(echo $opts | wc -w) long options"
    else
        not_ok "$prog.1 documents every long option" "missing: ${missing[*]}"
    fi
done

# 5. The example program in libcarboncopy.3 compiles (and links, when the
#    library is built) with warnings as errors.
sed -n '/^\.\\" example-begin/,/^\.\\" example-end/p' "$M/libcarboncopy.3" | sed '1d;$d' |
    sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\(aq/'"'"'/g' -e 's/\\&//g' >"$T_DIR/example.c"
if [ "$(wc -l <"$T_DIR/example.c")" -gt 40 ] &&
    $CC -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Iinclude \
        -c "$T_DIR/example.c" -o "$T_DIR/example.o" 2>"$T_DIR/example.err"; then
    ok "the example in libcarboncopy.3 compiles with -Wall -Wextra -Werror"
else
    not_ok "the example in libcarboncopy.3 compiles with -Wall -Wextra -Werror" "$(cat "$T_DIR/example.err")"
fi
lib=${CC_BUILD:-$CC_SRC/build}
if [ -f "$T_DIR/example.o" ] && [ -e "$lib/libcarboncopy.so" ]; then
    san=
    [ "${SANITIZE:-}" = 1 ] && san="-fsanitize=address,undefined"
    check "the example links against libcarboncopy.so" \
        $CC $san -o "$T_DIR/example" "$T_DIR/example.o" -L"$lib" -lcarboncopy
fi

# 5b. ... and does what the page says against cc-client (NT security, the
#     account store made as in doc/AUTH-NT.md), when the tools for the NT hash exist.
pw='man-page example pw'
hash=$(printf %s "$pw" | iconv -t UTF-16LE 2>/dev/null |
       openssl dgst -md4 -provider legacy -provider default 2>/dev/null | awk '{print toupper($2)}')
if [ -x "$T_DIR/example" ] && [ -x "$CC_BIN/cc-client" ] && [ ${#hash} -eq 32 ] && certs=$(t_certs); then
    printf 'tech:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:%s:[U          ]:LCT-00000000:\n' "$hash" >"$T_DIR/smbpasswd"
    if start_client example --cert "$certs/client.pem" --key "$certs/client.key" --accounts "$T_DIR/smbpasswd" \
        --license-file "$(t_license_page 10 3)" --echo; then
        run_example() { # password -> output in $T_DIR/ex.out, status in EX_RC
            printf '%s\n' "$1" | LD_LIBRARY_PATH=$lib timeout 30 "$T_DIR/example" localhost "$CLIENT_PORT" \
                "$certs/ca.pem" tech WORKGROUP >"$T_DIR/ex.out" 2>&1
            EX_RC=$?
        }
        run_example "$pw"
        if [ "$EX_RC" -eq 0 ] && grep -qF 'authenticated as: WORKGROUP\tech' "$T_DIR/ex.out" &&
            grep -q '^licence granted: 3 of 10 in use' "$T_DIR/ex.out" && grep -q '^closed: done' "$T_DIR/ex.out"; then
            ok "the example connects, authenticates, sends and closes against cc-client"
        else
            not_ok "the example connects, authenticates, sends and closes against cc-client" "status $EX_RC" \
                "$(cat "$T_DIR/ex.out")"
        fi
        run_example "not the password"
        if [ "$EX_RC" -eq 1 ] && grep -q '^CC_ERR_AUTH_BAD_CREDENTIALS: ' "$T_DIR/ex.out"; then
            ok "the example reports a wrong password as CC_ERR_AUTH_BAD_CREDENTIALS"
        else
            not_ok "the example reports a wrong password as CC_ERR_AUTH_BAD_CREDENTIALS" "status $EX_RC" \
                "$(cat "$T_DIR/ex.out")"
        fi
    else
        not_ok "cc-client starts for the example"
    fi
else
    echo "# the example is not run: no built example, cc-client, iconv or openssl MD4"
fi

# 6. `make install` puts the pages and links under MANDIR, with the paths of that
#    install in place of @DOCDIR@ and the like (PREFIX=/opt/ccman: no /usr/local anywhere),
#    and the documents they point at under DOCDIR. Every exported function has a page
#    there that `man -l` renders and mandoc finds clean.
inst=$T_DIR/inst
if timeout 300 env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$CC_SRC" install DESTDIR="$inst" PREFIX=/opt/ccman \
    SANITIZE="${SANITIZE:-}" >"$T_DIR/install.log" 2>&1; then
    mandir=$inst/opt/ccman/share/man
    n1=$(ls "$mandir"/man1 2>/dev/null | wc -l) n3=$(ls "$mandir"/man3 2>/dev/null | wc -l)
    want1=$(($(ls "$M"/*.1 | wc -l) + $(printf '%s\n' "$links" | grep -c '\.1 ')))
    want3=$(($(ls "$M"/*.3 | wc -l) + $(printf '%s\n' "$links" | grep -c '\.3 ')))
    if [ "$n1" -eq "$want1" ] && [ "$n3" -eq "$want3" ]; then
        ok "make install installs $n1 section-1 and $n3 section-3 pages and links"
    else
        not_ok "make install installs the pages and links" "man1: $n1 of $want1, man3: $n3 of $want3"
    fi
    left=$(grep -lE '@[A-Z]+DIR@' "$mandir"/man*/* 2>/dev/null | tr '\n' ' ')
    check "no @...DIR@ is left in the installed pages${left:+ ($left)}" [ -z "$left" ]
    left=$(grep -l '/usr/local' "$mandir"/man*/* 2>/dev/null | tr '\n' ' ')
    check "no installed page names /usr/local when PREFIX is /opt/ccman${left:+ ($left)}" [ -z "$left" ]
    # Every document path the pages name is installed.
    named=$(sed 's/\\-/-/g' "$mandir"/man*/* | grep -oE '/opt/ccman/share/doc/carboncopy[^ ]*' | sed 's/[),.:;]*$//' | sort -u)
    absent=()
    for f in $named; do [ -e "$inst$f" ] || absent+=("$f"); done
    if [ -n "$named" ] && [ ${#absent[@]} -eq 0 ]; then
        ok "the $(echo $named | wc -w) documents the pages name are installed under DOCDIR"
    else
        not_ok "the documents the pages name are installed under DOCDIR" "absent: ${absent[*]}"
    fi
    failed=()
    for f in $funcs; do
        page=$mandir/man3/$f.3
        out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>"$T_DIR/man.err" | sed 's/.\x08//g')
        err=$(cat "$T_DIR/man.err")
        [ -n "$have_mandoc" ] && err="$err$(lint "$page")"
        { [ -e "$page" ] && [ -z "$err" ] && printf '%s\n' "$out" | grep -q "\b$f\b"; } || failed+=("$f${err:+: $err}")
    done
    if [ ${#failed[@]} -eq 0 ]; then
        ok "each of the $nfuncs functions has an installed page that man -l renders and mandoc finds clean"
    else
        not_ok "each function has an installed page that man -l renders and mandoc finds clean" "${failed[@]}"
    fi
    if [ -n "$have_mandoc" ]; then
        out=$(for p in "$mandir"/man*/*; do lint "$p"; done)
        if [ -z "$out" ]; then ok "mandoc -Tlint -W warning is clean on every installed page"; else not_ok "mandoc -Tlint -W warning on the installed pages" "$out"; fi
    fi
    for name in cc_job_run cc_session_pending cc_auth_submit_job cc_context_set_timeout cc_session_new cc_strerror cc-console; do
        where=$(man -M "$mandir" -w "$name" 2>&1)
        text=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -M "$mandir" "$name" 2>&1 | sed 's/.\x08//g')
        if [ -f "$where" ] && printf '%s\n' "$text" | grep -q "$name"; then
            ok "man -M MANDIR $name resolves"
        else
            not_ok "man -M MANDIR $name resolves" "$where" "$(printf '%s\n' "$text" | head -5)"
        fi
    done
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$CC_SRC" uninstall DESTDIR="$inst" PREFIX=/opt/ccman \
        >>"$T_DIR/install.log" 2>&1
    left=$(find "$mandir" "$inst/opt/ccman/share/doc" ! -type d 2>/dev/null | wc -l)
    if [ "$left" -eq 0 ]; then ok "make uninstall removes the pages, the links and the documents"; else not_ok "make uninstall removes the pages, the links and the documents" "$left left"; fi
else
    not_ok "make install DESTDIR=..." "$(tail -20 "$T_DIR/install.log")"
fi

t_done
