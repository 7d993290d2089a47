#!/bin/sh
# Builds ringmail and runs every test (unit, integration against the real daemon).
#   ./test.sh              Debug build in build-debug/
#   ./test.sh --asan       AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#   ./test.sh --fuzz SECS  libFuzzer harnesses (clang) in build-fuzz/, SECS seconds each
set -eu
cd "$(dirname "$0")"
scripts/deps.sh test
jobs=$(nproc)

case "${1:-}" in
--fuzz)
    secs=${2:-60}
    cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
        -DRINGMAIL_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j"$jobs"
    for f in build-fuzz/tests/fuzz_*; do
        name=$(basename "$f")
        corpus=build-fuzz/corpus/$name
        mkdir -p "$corpus"
        seeds=tests/fuzz/corpus/$name
        [ -d "$seeds" ] || seeds=
        echo "== $name: ${secs}s"
        "$f" -max_total_time="$secs" -print_final_stats=1 "$corpus" $seeds
    done
    exit 0
    ;;
--asan)
    dir=build-asan
    type=Asan
    # The sanitizer runtime reports leaks too; stop at the first error of any kind.
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ;;
"")
    dir=build-debug
    type=Debug
    ;;
*)
    echo "usage: $0 [--asan | --fuzz SECS]" >&2
    exit 64
    ;;
esac

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
cmake --build "$dir" -j"$jobs"
cd "$dir"
ctest --output-on-failure -j"$jobs"
