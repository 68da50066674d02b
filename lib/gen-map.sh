#!/usr/bin/env bash
# gen-map.sh -- prints the version script: every function declared in
# include/carboncopy.h, under one version node. Run after adding API:
#   lib/gen-map.sh > lib/carboncopy.map
set -eu
cd "$(dirname "$0")/.."
echo "/* carboncopy.map -- the exported ABI: exactly the cc_* functions of include/carboncopy.h. */"
echo "CARBONCOPY_1.0 {"
echo "  global:"
grep -oE '\bcc_[a-z0-9_]+\(' include/carboncopy.h | tr -d '(' | sort -u | sed 's/^/    /; s/$/;/'
echo "  local:"
echo "    *;"
echo "};"
