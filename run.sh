#!/bin/sh
# Builds ringmail (Release) and runs ringmaild in the foreground. With no arguments it uses
# the built-in default (--builtin-config): loopback port 2525, spool in ./state/spool,
# localhost as local domain, even where ringmail is installed (/etc/ringmail/ringmail.yaml)
# or $RINGMAIL_CONFIG is set. Extra arguments go to ringmaild instead
# (e.g. --config etc/ringmail.yaml).
set -eu
cd "$(dirname "$0")"
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [ "$#" -eq 0 ]; then
    set -- --builtin-config
fi
exec build/ringmaild --foreground "$@"
