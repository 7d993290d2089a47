#!/bin/sh
# Builds ringmail (Release) and runs ringmaild in the foreground. With no arguments it uses
# the built-in default: loopback port 2525, spool in ./state/spool, localhost as local
# domain. Extra arguments go to ringmaild (e.g. --config etc/ringmail.yaml).
set -eu
cd "$(dirname "$0")"
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec build/ringmaild --foreground "$@"
