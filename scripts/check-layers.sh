#!/bin/sh
# Fails when a lower layer includes a header of a higher one (DESIGN.md, "Layout").
root=${1:-.}
status=0
check() { # folder, forbidden folders...
    dir=$1; shift
    for up in "$@"; do
        if grep -nE "#include \"$up/" "$root/$dir"/*.[ch] 2>/dev/null; then
            echo "layering: $dir/ must not include $up/" >&2
            status=1
        fi
    done
}
check util smtp tls queue delivery compat policy core cli
check smtp tls queue delivery compat policy core cli
check tls smtp queue delivery compat policy core cli
check queue smtp tls delivery compat policy core cli
check delivery compat policy core cli
check compat policy core cli
check policy tls queue delivery core cli
check core cli
exit $status
