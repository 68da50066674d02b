#!/usr/bin/env bash
# gen-constants.sh -- prints every enumerator and numeric #define of
# include/carboncopy.h as "NAME = VALUE", sorted: abi/constants.txt records
# them at a release, and make abi-check fails if one changes or disappears.
set -eu
cd "$(dirname "$0")/.."
{
    grep -oE '\bCC_[A-Z0-9_]+ = -?[0-9]+' include/carboncopy.h
    grep -E '^#define CC_[A-Z0-9_]+ +\(?-?(0x)?[0-9A-Fa-f]+\)?( |$)' include/carboncopy.h |
        grep -v VERSION | awk '{print $2" = "$3}'
} | LC_ALL=C sort -u
