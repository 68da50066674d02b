#!/bin/sh
# links.sh -- the man page links `make install` makes: one line "ALIAS PAGE" (e.g. "cc_job_run.3
# cc_session_take_job.3") for each name in a page's NAME section that is not the page's own name.
# Usage: doc/man/links.sh [DIR]   (default: the directory of this script)
dir=${1:-$(dirname "$0")}
for page in "$dir"/*.[1-8]; do
    [ -f "$page" ] || continue
    file=${page##*/}
    sec=${file##*.}
    # The line after ".SH NAME": "name1, name2 \- what they do", with roff escapes.
    sed -n '/^\.SH NAME/{n;p;q;}' "$page" | sed 's/ \\-.*//; s/\\//g; s/,/ /g' | tr ' ' '\n' |
        while read -r name; do
            [ -n "$name" ] && [ "$name.$sec" != "$file" ] && echo "$name.$sec $file"
        done
done
