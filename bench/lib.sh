# shellcheck shell=bash disable=SC2034  # sets variables for the runners that source it
# bench/lib.sh — what the bench runners share; sourced, never run.
#
# bench_setup NAME builds Release into build-bench/ (unless BUILD=0), opens
# bench/results/<date>/ (stdout is teed to summary.md there), a scratch directory WORK (under
# SPOOL_BASE, default build-bench/: the checkout's file system) removed on exit, and sets the
# CPU pinning: with workers 1 the server runs on CPU 0 and the client on CPU 1; with more
# workers the server gets both CPUs and the client shares them. Then start_daemon /
# stop_daemon run one ringmaild (DPID, PORT), cpu_ticks and rss_kib read its accounting,
# wait_quiet waits for the rest of the machine to go idle, and idle_hold measures the memory
# of held sessions.
#
# Environment: BUILD [1], RINGMAILD (another daemon binary), SPOOL_BASE, QUIET_WAIT [60].

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$ROOT/build-bench
NCPU=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

bench_setup() {
    BENCH_NAME=$1
    cd "$ROOT" || exit 1
    local tool
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
    # idle sessions need descriptors in the client (the daemon raises its own soft limit to
    # the hard one, and inherits this)
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    RESULTS=$ROOT/bench/results/$STAMP-$BENCH_NAME
    mkdir -p "$RESULTS"
    exec > >(tee "$RESULTS/summary.md")
    WORK=$(mktemp -d "${SPOOL_BASE:-$BUILD_DIR}/bench-run.XXXXXX")
    DPID=
    trap bench_cleanup EXIT
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
}

bench_cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

# pin_for WORKERS: sets SCPUS and CCPUS, the server's and the client's CPUs.
pin_for() {
    if [ "$1" = 1 ]; then
        SCPUS=$SERVER_CPUS_1
        CCPUS=$CLIENT_CPU
    else
        SCPUS=$SERVER_CPUS_2
        CCPUS=$CLIENT_CPUS_2
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_daemon WORKERS CPUS [EXTRA_YAML]: a new spool and config, wait (bounded) until the
# port answers. Old spools stay until the end, so that no mass deletion competes with a
# measurement.
SPOOLS=0
start_daemon() {
    local workers=$1 cpus=$2 extra=${3:-}
    SPOOLS=$((SPOOLS + 1))
    SPOOL=$WORK/spool.$SPOOLS
    PORT=$(free_port)
    cat >"$WORK/ringmail.yaml" <<YAML
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
$extra
YAML
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
            echo "$BENCH_NAME: machine still busy ($((100 * (t1 - t0) / CLK_TCK))% of a CPU)," \
                "measuring anyway; see the other CPU column" >&2
            return 0
        fi
    done
}

median() {
    sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'
}

# The result file whose FIELD (a jq path) is the median of the files given: it supplies the
# latency and error columns of a row.
median_file() {
    local field=$1 f
    shift
    for f in "$@"; do echo "$(jq "$field" "$f") $f"; done |
        sort -g | awk -v n=$# 'NR == int((n + 1) / 2) {print $2}'
}

# idle_hold OUT N LOAD_FLAGS...: against the running daemon, open N idle sessions (spread
# over 50 source addresses, 127.0.0.2..51, so no source runs short of ports), read VmRSS and
# RssAnon before and once all are up, and write smtp_load's JSON with them to OUT.
idle_hold() {
    local out=$1 n=$2 rss0 anon0 rss1 anon1 up fds lpid
    shift 2
    sleep 0.5
    rss0=$(rss_kib "$DPID" VmRSS)
    anon0=$(rss_kib "$DPID" RssAnon)
    rm -f "$WORK/ready"
    taskset -c "$CCPUS" "$LOAD" -M idle -s "127.0.0.1:$PORT" -N "$n" --sources 50 \
        --ready-file "$WORK/ready" --max-time 120 -q "$@" >"$WORK/idle.out" &
    lpid=$!
    for _ in $(seq 600); do
        [ -s "$WORK/ready" ] && break
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    up=$(cat "$WORK/ready" 2>/dev/null || echo 0)
    rss1=$(rss_kib "$DPID" VmRSS)
    anon1=$(rss_kib "$DPID" RssAnon)
    fds=$(find "/proc/$DPID/fd" -mindepth 1 2>/dev/null | wc -l)
    kill -TERM "$lpid" 2>/dev/null || true
    wait "$lpid" || true
    head -1 "$WORK/idle.out" |
        jq -c --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
            --argjson anon0 "$anon0" --argjson anon1 "$anon1" --argjson up "$up" \
            --argjson fds "$fds" \
            '. + {vmrss_before_kib: $rss0, vmrss_after_kib: $rss1,
              rssanon_before_kib: $anon0, rssanon_after_kib: $anon1, ready_established: $up,
              daemon_fds: $fds,
              bytes_per_conn: (if $up > 0 then (($rss1 - $rss0) * 1024 / $up) else null end)}' \
            >"$out"
}

# idle_marginals PREFIX "COUNTS": with two or more counts, for each of WORKERS the VmRSS per
# session between the smallest and the largest (from PREFIX-w<W>-n<N>.json), which leaves out
# what the daemon touches once whatever the count (buffer rings, first pages of its arenas).
idle_marginals() {
    local prefix=$1 lo hi w
    set -- $2
    [ $# -ge 2 ] || return 0
    lo=$(printf '%s\n' "$@" | sort -n | head -1)
    hi=$(printf '%s\n' "$@" | sort -n | tail -1)
    for w in $WORKERS; do
        jq -rs --arg w "$w" \
            '"workers \($w): marginal VmRSS per idle connection between \(.[0].ready_established) and \(.[1].ready_established): \(((.[1].vmrss_after_kib - .[1].vmrss_before_kib) - (.[0].vmrss_after_kib - .[0].vmrss_before_kib)) * 1024 / (.[1].ready_established - .[0].ready_established) | round) bytes"' \
            "$prefix-w$w-n$lo.json" "$prefix-w$w-n$hi.json"
    done
    echo
}
