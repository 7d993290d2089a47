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
# Prints Markdown tables; raw JSON and the tables go to bench/results/<date>-receive/.
# What it shares with run-tls.sh (build, daemon, accounting, pinning) is in bench/lib.sh.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
CONC=${CONC:-32}
SIZE=${SIZE:-1024}
WORKERS=${WORKERS:-"1 2"}
PER_CONN=${PER_CONN:-"1 20"}
IDLE_CONNS=${IDLE_CONNS:-"1000 10000"}
PIPELINING=${PIPELINING:-0}
bench_setup run-receive
for n in $IDLE_CONNS; do
    [ "$(ulimit -n)" -ge $((n + 100)) ] || die "ulimit -n $(ulimit -n) is too low for $n"
done

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
    pin_for "$w"
    for m in $PER_CONN; do
        runs=()
        for r in $(seq "$REPEATS"); do
            wait_quiet
            start_daemon "$w" "$SCPUS"
            out=$RESULTS/msg-w$w-m$m-r$r.json
            read -r u0 s0 < <(cpu_ticks "$DPID")
            m0=$(machine_ticks)
            flags=(-s "127.0.0.1:$PORT" -c "$CONC" -m "$m" -S "$SIZE" -d "$DURATION"
                --drain 5 --max-time $((DURATION + 60)) -r "user@bench.test"
                --label "w$w m$m r$r" -q)
            [ "$PIPELINING" = 1 ] && flags+=(-P)
            taskset -c "$CCPUS" "$LOAD" "${flags[@]}" >"$WORK/load.out" || true
            read -r u1 s1 < <(cpu_ticks "$DPID")
            m1=$(machine_ticks)
            stop_daemon
            head -1 "$WORK/load.out" |
                jq -c --argjson ticks $((u1 + s1 - u0 - s0)) --argjson uticks $((u1 - u0)) \
                    --argjson hz "$CLK_TCK" \
                    --argjson mticks $((m1 - m0)) \
                    --arg scpus "$SCPUS" --arg ccpus "$CCPUS" --argjson workers "$w" \
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
        mid=$(median_file .msgs_per_s "${runs[@]}")
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
        pin_for "$w"
        wait_quiet
        start_daemon "$w" "$SCPUS"
        idle_hold "$WORK/idle.json" "$n" --label "idle w$w n$n"
        stop_daemon
        jq -c --argjson w "$w" '. + {workers: $w}' "$WORK/idle.json" >"$RESULTS/idle-w$w-n$n.json"
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
idle_marginals "$RESULTS/idle" "$IDLE_CONNS"
echo "raw JSON: $RESULTS"
