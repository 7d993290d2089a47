#!/bin/sh
# Static checks: clang-format conformance and cppcheck. Exits non-zero on any finding.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h')
status=0
clang-format --dry-run --Werror $files || status=1
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --std=c11 \
    --library=scripts/ringmail.cfg -I. -D_GNU_SOURCE --suppress=missingIncludeSystem \
    --inline-suppr util smtp tls queue compat policy delivery core cli tests bench || status=1
exit $status
