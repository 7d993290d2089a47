#!/usr/bin/env bash
# bench/run-receive.sh — durable receive throughput and idle-connection memory of ringmaild.
#
# Builds Release into build-bench/, then for workers 1 and 2 and 1 and 20 messages per
# connection runs bench/smtp_load (1 KiB messages, 32 concurrent sessions) against a fresh
# daemon and spool for DURATION seconds, REPEATS times, and quotes the median. Server CPU per
# message comes from /proc/PID/stat (utime+stime of every thread, io_uring workers included).
# Then it opens IDLE_CONNS idle sessions (banner + EHLO) and reads the daemon's VmRSS before
# and after. Loopback only; every step is bounded in time.
#
# Pinning (2-CPU machine in mind): workers 1 runs the server on CPU 0 and the client on CPU 1;
# workers 2 gives the server both CPUs and the client shares them (so the client's own CPU is
# taken from the server's; its figure is in every row).
#
# Environment (defaults in brackets):
#   DURATION [10]  REPEATS [3]  CONC [32]  SIZE [1024]  WORKERS ["1 2"]  PER_CONN ["1 20"]
#   IDLE_CONNS ["1000 10000"]  one idle row each, and the marginal cost between them
#   PIPELINING [0]  1 sends MAIL, RCPT and DATA in one write
#   BUILD [1]       0 skips the build
#   RINGMAILD       another daemon binary with the same face
#   SPOOL_BASE      where the spool goes [build-bench/, the checkout's file system]
#   QUIET_WAIT [60] seconds to wait before each run for the rest of the machine to go idle;
#                   "other CPU" is what the rest of the machine (kernel threads included) used
# Prints Markdown tables; raw JSON and the tables go to bench/results/<date>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
CONC=${CONC:-32}
SIZE=${SIZE:-1024}
WORKERS=${WORKERS:-"1 2"}
PER_CONN=${PER_CONN:-"1 20"}
IDLE_CONNS=${IDLE_CONNS:-"1000 10000"}
PIPELINING=${PIPELINING:-0}
BUILD_DIR=$ROOT/build-bench
NCPU=$(nproc)

die() {
    echo "run-receive: $*" >&2
    exit 1
}
for tool in jq taskset python3 cmake; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install jq util-linux python3 cmake)"
done

if [ "${BUILD:-1}" = 1 ]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD_DIR" -j"$NCPU" --target ringmaild smtp_load >/dev/null
fi
DAEMON=${RINGMAILD:-$BUILD_DIR/ringmaild}
LOAD=$BUILD_DIR/bench/smtp_load
[ -x "$DAEMON" ] || die "no $DAEMON"
[ -x "$LOAD" ] || die "no $LOAD"

# 10,000 idle sessions need that many descriptors in the client (the daemon raises its own
# soft limit to the hard one, and inherits this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for n in $IDLE_CONNS; do
    [ "$(ulimit -n)" -ge $((n + 100)) ] || die "ulimit -n $(ulimit -n) is too low for $n"
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$ROOT/bench/results/$STAMP
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/summary.md")
# The spool lives under the build tree: the same file system as the checkout (SPOOL_BASE
# elsewhere, e.g. /dev/shm, shows what the rest costs when fsync is free).
WORK=$(mktemp -d "${SPOOL_BASE:-$BUILD_DIR}/bench-run.XXXXXX")
DPID=
cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$NCPU" -ge 2 ]; then
    CLIENT_CPU=1
    SERVER_CPUS_1=0
    SERVER_CPUS_2=0,1
    CLIENT_CPUS_2=0,1
else
    CLIENT_CPU=0
    SERVER_CPUS_1=0
    SERVER_CPUS_2=0
    CLIENT_CPUS_2=0
fi
CLK_TCK=$(getconf CLK_TCK)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_daemon WORKERS CPUS: a new spool and config, wait (bounded) until the port answers.
# Old spools stay until the end, so that no mass deletion competes with a measurement.
SPOOLS=0
start_daemon() {
    local workers=$1 cpus=$2
    SPOOLS=$((SPOOLS + 1))
    SPOOL=$WORK/spool.$SPOOLS
    PORT=$(free_port)
    cat >"$WORK/ringmail.yaml" <<EOF
hostname: bench.test
listen:
  - name: bench
    address: 127.0.0.1
    port: $PORT
workers: $workers
run_as: $(id -un)
spool: $SPOOL
local_domains: [bench.test]
limits:
  connections: 20000
EOF
    taskset -c "$cpus" "$DAEMON" --config "$WORK/ringmail.yaml" --foreground \
        2>>"$WORK/daemon.log" &
    DPID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$WORK/daemon.log" >&2
    die "ringmaild did not start listening on 127.0.0.1:$PORT"
}

stop_daemon() {
    kill -TERM "$DPID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=
}

# "utime stime" of the whole process (all threads), in clock ticks.
cpu_ticks() {
    # the command name may contain spaces: cut after the last ')'
    local rest
    rest=$(sed 's/.*) //' "/proc/$1/stat")
    awk '{print $12, $13}' <<<"$rest"
}

rss_kib() {
    awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"
}

# Non-idle jiffies of the whole machine (user nice system irq softirq steal), all CPUs.
machine_ticks() {
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# Wait (at most QUIET_WAIT seconds) until the rest of the machine is quiet: under 10% of one
# CPU busy over a second. A benchmark on a machine that runs other work measures that work.
wait_quiet() {
    local t0 t1 waited=0
    while :; do
        t0=$(machine_ticks)
        sleep 1
        t1=$(machine_ticks)
        [ $((t1 - t0)) -le $((CLK_TCK / 10)) ] && return 0
        waited=$((waited + 1))
        if [ "$waited" -ge "${QUIET_WAIT:-60}" ]; then
            echo "run-receive: machine still busy ($((100 * (t1 - t0) / CLK_TCK))% of a CPU)," \
                "measuring anyway; see the other CPU column" >&2
            return 0
        fi
    done
}

median() {
    sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'
}

echo "# ringmaild receive benchmark, $STAMP"
echo
echo "machine: $NCPU CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
    "kernel $(uname -r), spool on $(df -T "$WORK" | awk 'NR == 2 {print $2}') ($WORK)"
echo "load: $LOAD, ${SIZE}-byte messages, $CONC concurrent sessions, ${DURATION}s per run," \
    "median of $REPEATS"
echo

# ------------------------------------------------------------------ throughput
ROWS=()
for w in $WORKERS; do
    if [ "$w" = 1 ]; then
        scpus=$SERVER_CPUS_1
        ccpus=$CLIENT_CPU
    else
        scpus=$SERVER_CPUS_2
        ccpus=$CLIENT_CPUS_2
    fi
    for m in $PER_CONN; do
        runs=()
        for r in $(seq "$REPEATS"); do
            wait_quiet
            start_daemon "$w" "$scpus"
            out=$RESULTS/msg-w$w-m$m-r$r.json
            read -r u0 s0 < <(cpu_ticks "$DPID")
            m0=$(machine_ticks)
            flags=(-s "127.0.0.1:$PORT" -c "$CONC" -m "$m" -S "$SIZE" -d "$DURATION"
                --drain 5 --max-time $((DURATION + 60)) -r "user@bench.test"
                --label "w$w m$m r$r" -q)
            [ "$PIPELINING" = 1 ] && flags+=(-P)
            taskset -c "$ccpus" "$LOAD" "${flags[@]}" >"$WORK/load.out" || true
            read -r u1 s1 < <(cpu_ticks "$DPID")
            m1=$(machine_ticks)
            stop_daemon
            head -1 "$WORK/load.out" |
                jq -c --argjson ticks $((u1 + s1 - u0 - s0)) --argjson uticks $((u1 - u0)) \
                    --argjson hz "$CLK_TCK" \
                    --argjson mticks $((m1 - m0)) \
                    --arg scpus "$scpus" --arg ccpus "$ccpus" --argjson workers "$w" \
                    '. + {workers: $workers, server_cpus: $scpus, client_cpus: $ccpus,
                      server_cpu_s: ($ticks / $hz),
                      server_user_s: ($uticks / $hz),
                      server_user_us_per_msg: (if .messages > 0
                          then ($uticks / $hz * 1e6 / .messages) else null end),
                      server_cpu_util: ($ticks / $hz / .elapsed_s),
                      other_cpu_util: ((($mticks - $ticks) / $hz
                          - .client_cpu_s.user - .client_cpu_s.sys) / .elapsed_s),
                      server_cpu_us_per_msg: (if .messages > 0
                          then ($ticks / $hz * 1e6 / .messages) else null end)}' >"$out"
            runs+=("$out")
            printf '  w%s m%-2s run %s: %8.1f msgs/s, server %6.1f us/msg, errors %s\n' \
                "$w" "$m" "$r" "$(jq .msgs_per_s "$out")" \
                "$(jq '.server_cpu_us_per_msg // 0' "$out")" "$(jq .errors_total "$out")" >&2
        done
        rate=$(jq -r .msgs_per_s "${runs[@]}" | median)
        # the run whose rate is the median supplies latency and error columns
        mid=$(for f in "${runs[@]}"; do echo "$(jq .msgs_per_s "$f") $f"; done |
            sort -g | awk -v n=${#runs[@]} 'NR == int((n + 1) / 2) {print $2}')
        cpu_us=$(jq -r '.server_cpu_us_per_msg // 0' "${runs[@]}" | median)
        cpu_util=$(jq -r '.server_cpu_util' "${runs[@]}" | median)
        user_us=$(jq -r '.server_user_us_per_msg // 0' "${runs[@]}" | median)
        all=$(jq -r .msgs_per_s "${runs[@]}" | sort -g | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1}')
        ROWS+=("$(jq -r --arg rate "$rate" --arg cpu "$cpu_us" --arg all "$all" --arg util "$cpu_util" --arg user "$user_us" \
            '"| \(.workers) | \(.server_cpus) | \(.client_cpus) | \(.per_conn) | \($rate | tonumber | round) | \($all) | \($cpu | tonumber | round) | \($user | tonumber | round) | \($util | tonumber * 100 | round)% | \(.latency_us.p50 / 1000 * 100 | round / 100) | \(.latency_us.p99 / 1000 * 100 | round / 100) | \(.latency_us.p999 / 1000 * 100 | round / 100) | \(.errors_total) | \(.client_cpu_util * 100 | round)%\(if .client_bound then " (bound)" else "" end) | \(.other_cpu_util * 100 | round)% |"' \
            "$mid")")
    done
done

echo "## Durable accepted messages per second"
echo
echo "| workers | server CPUs | client CPUs | msgs/conn | msgs/s (median) | runs | server CPU us/msg (median) | of it user | server CPU (median) | p50 ms | p99 ms | p99.9 ms | errors | client CPU | other CPU |"
echo "|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo

# ------------------------------------------------------------------ idle memory
IROWS=()
for w in $WORKERS; do
    for n in $IDLE_CONNS; do
        [ "$w" = 1 ] && scpus=$SERVER_CPUS_1 || scpus=$SERVER_CPUS_2
        [ "$w" = 1 ] && ccpus=$CLIENT_CPU || ccpus=$CLIENT_CPUS_2
        wait_quiet
        start_daemon "$w" "$scpus"
        sleep 0.5
        rss0=$(rss_kib "$DPID" VmRSS)
        anon0=$(rss_kib "$DPID" RssAnon)
        rm -f "$WORK/ready"
        # spread over 50 source addresses (127.0.0.2..51) so no source runs short of ports
        taskset -c "$ccpus" "$LOAD" -M idle -s "127.0.0.1:$PORT" -N "$n" --sources 50 \
            --ready-file "$WORK/ready" --max-time 120 --label "idle w$w n$n" -q >"$WORK/idle.out" &
        LPID=$!
        for _ in $(seq 600); do
            [ -s "$WORK/ready" ] && break
            kill -0 "$LPID" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        up=$(cat "$WORK/ready" 2>/dev/null || echo 0)
        rss1=$(rss_kib "$DPID" VmRSS)
        anon1=$(rss_kib "$DPID" RssAnon)
        fds=$(find "/proc/$DPID/fd" -mindepth 1 2>/dev/null | wc -l)
        kill -TERM "$LPID" 2>/dev/null || true
        wait "$LPID" || true
        stop_daemon
        head -1 "$WORK/idle.out" |
            jq -c --argjson w "$w" --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
                --argjson anon0 "$anon0" --argjson anon1 "$anon1" --argjson up "$up" \
                --argjson fds "$fds" \
                '. + {workers: $w, vmrss_before_kib: $rss0, vmrss_after_kib: $rss1,
                  rssanon_before_kib: $anon0, rssanon_after_kib: $anon1, ready_established: $up,
                  daemon_fds: $fds,
                  bytes_per_conn: (if $up > 0 then (($rss1 - $rss0) * 1024 / $up) else null end)}' \
                >"$RESULTS/idle-w$w-n$n.json"
        IROWS+=("$(jq -r '"| \(.workers) | \(.idle_requested) | \(.ready_established) | \(.vmrss_before_kib) | \(.vmrss_after_kib) | \(.bytes_per_conn // 0 | round) | \(.rssanon_after_kib - .rssanon_before_kib) | \(.errors_total) |"' \
            "$RESULTS/idle-w$w-n$n.json")")
    done
done

echo "## Memory of idle connections (banner + EHLO, then nothing)"
echo
echo "| workers | opened | established | VmRSS before KiB | VmRSS after KiB | bytes/conn (VmRSS) | RssAnon delta KiB | client errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${IROWS[@]}"
echo
# With two or more counts: the marginal cost, which leaves out what the daemon touches once
# whatever the count (buffer rings, first pages of its arenas).
set -- $IDLE_CONNS
if [ $# -ge 2 ]; then
    lo=$(printf '%s\n' "$@" | sort -n | head -1)
    hi=$(printf '%s\n' "$@" | sort -n | tail -1)
    for w in $WORKERS; do
        jq -rs --arg w "$w" \
            '"workers \($w): marginal VmRSS per idle connection between \(.[0].ready_established) and \(.[1].ready_established): \(((.[1].vmrss_after_kib - .[1].vmrss_before_kib) - (.[0].vmrss_after_kib - .[0].vmrss_before_kib)) * 1024 / (.[1].ready_established - .[0].ready_established) | round) bytes"' \
            "$RESULTS/idle-w$w-n$lo.json" "$RESULTS/idle-w$w-n$hi.json"
    done
    echo
fi
echo "raw JSON: $RESULTS"
