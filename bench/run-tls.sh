#!/usr/bin/env bash
# bench/run-tls.sh — STARTTLS handshakes per second, server CPU per handshake, and the memory
# of idle TLS sessions of ringmaild (issue 3; issue 5 grows it into the full comparison).
#
# Makes self-signed ECDSA P-256, ECDSA P-384 and RSA-2048 certificates with the openssl CLI
# and runs ringmaild with two certificates at once: ECDSA P-256 + RSA, or ECDSA P-384 + RSA.
# For workers 1 and 2, each group in TLS_GROUPS and each certificate (chosen by the signature
# algorithms the client allows), it runs bench/smtp_load in handshake mode (TLS 1.3, full
# handshakes: connect, EHLO, STARTTLS, handshake, QUIT) against a fresh daemon for DURATION
# seconds, REPEATS times, and quotes the median rate and the median server CPU time per
# handshake (utime+stime of the daemon from /proc/PID/stat over the run / handshakes): the
# client side of a handshake costs more CPU than the server side, so the rate may be the
# client's; the CPU per handshake is the server's own. Then it holds IDLE_TLS sessions that
# did STARTTLS, the handshake and EHLO over TLS, and reads the daemon's VmRSS before and after.
# Loopback only; every step is bounded in time. Pinning as in bench/lib.sh: with 2 workers
# the client (2 threads) shares both CPUs with the server.
#
# Environment (defaults in brackets):
#   DURATION [8]  REPEATS [3]  CONC [16] handshakes in flight per client thread
#   WORKERS ["1 2"]  TLS_GROUPS ["X25519 P-384"]  CERTS ["ECDSA-P256 ECDSA-P384 RSA-2048"]
#   IDLE_TLS ["200 2000"]  one idle row each, and the marginal cost between them
#   BUILD, RINGMAILD, SPOOL_BASE, QUIET_WAIT: see bench/lib.sh
# Prints Markdown tables; raw JSON and the tables go to bench/results/<date>-tls/.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-8}
REPEATS=${REPEATS:-3}
CONC=${CONC:-16}
WORKERS=${WORKERS:-"1 2"}
TLS_GROUPS=${TLS_GROUPS:-"X25519 P-384"}
CERTS=${CERTS:-"ECDSA-P256 ECDSA-P384 RSA-2048"}
IDLE_TLS=${IDLE_TLS:-"200 2000"}
command -v openssl >/dev/null || die "needs the openssl command"
bench_setup run-tls

CERTDIR=$WORK/certs
mkdir -p "$CERTDIR"
for k in p256:ec:ec_paramgen_curve:P-256 p384:ec:ec_paramgen_curve:P-384 rsa:rsa:rsa_keygen_bits:2048; do
    IFS=: read -r name alg popt pval <<<"$k"
    openssl req -x509 -newkey "$alg" -pkeyopt "$popt:$pval" -nodes -days 30 \
        -subj /CN=bench.test -keyout "$CERTDIR/$name.key" -out "$CERTDIR/$name.pem" 2>/dev/null
done

# tls_yaml ECDSA_NAME: the daemon's tls section, that ECDSA certificate and the RSA one.
tls_yaml() {
    printf 'tls:\n  certificates:\n'
    printf '    - {cert: %s, key: %s}\n' "$CERTDIR/$1.pem" "$CERTDIR/$1.key" \
        "$CERTDIR/rsa.pem" "$CERTDIR/rsa.key"
}

# cert_setup CERT: which daemon holds it (DUAL) and the signature algorithms that make a
# TLS 1.3 server choose it (SIGALGS).
cert_setup() {
    case $1 in
    ECDSA-P256) DUAL=p256 SIGALGS=ecdsa_secp256r1_sha256 ;;
    ECDSA-P384) DUAL=p384 SIGALGS=ecdsa_secp384r1_sha384 ;;
    RSA-2048) DUAL=p256 SIGALGS=rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512 ;;
    *) die "unknown certificate $1" ;;
    esac
}

echo "# ringmaild STARTTLS benchmark, $STAMP"
echo
echo "machine: $NCPU CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
    "kernel $(uname -r), $(openssl version)"
echo "load: $LOAD, TLS 1.3 full handshakes, $CONC in flight per client thread," \
    "${DURATION}s per run, median of $REPEATS"
echo

# ------------------------------------------------------------------ handshakes
ROWS=()
for w in $WORKERS; do
    pin_for "$w"
    threads=$(($(tr ',' '\n' <<<"$CCPUS" | wc -l)))
    for cert in $CERTS; do
        cert_setup "$cert"
        for g in $TLS_GROUPS; do
            runs=()
            for r in $(seq "$REPEATS"); do
                wait_quiet
                start_daemon "$w" "$SCPUS" "$(tls_yaml "$DUAL")"
                out=$RESULTS/hs-w$w-$cert-$g-r$r.json
                read -r u0 s0 < <(cpu_ticks "$DPID")
                m0=$(machine_ticks)
                taskset -c "$CCPUS" "$LOAD" -M handshake -s "127.0.0.1:$PORT" -t "$threads" \
                    -c $((CONC * threads)) -d "$DURATION" --drain 2 --max-time $((DURATION + 30)) \
                    --timeout 10 --tls 1.3 --groups "$g" --sigalgs "$SIGALGS" \
                    --label "w$w $cert $g r$r" -q >"$WORK/load.out" || true
                read -r u1 s1 < <(cpu_ticks "$DPID")
                m1=$(machine_ticks)
                stop_daemon
                head -1 "$WORK/load.out" |
                    jq -c --argjson ticks $((u1 + s1 - u0 - s0)) --argjson hz "$CLK_TCK" \
                        --argjson mticks $((m1 - m0)) --arg scpus "$SCPUS" --arg ccpus "$CCPUS" --argjson workers "$w" \
                        --arg cert "$cert" --arg group "$g" \
                        '. + {workers: $workers, server_cpus: $scpus, client_cpus: $ccpus,
                          want_cert: $cert, want_group: $group,
                          server_cpu_s: ($ticks / $hz),
                          server_cpu_util: ($ticks / $hz / .elapsed_s),
                          other_cpu_util: ((($mticks - $ticks) / $hz
                              - .client_cpu_s.user - .client_cpu_s.sys) / .elapsed_s),
                          server_cpu_us_per_hs: (if .tls.handshakes > 0
                              then ($ticks / $hz * 1e6 / .tls.handshakes) else null end)}' >"$out"
                runs+=("$out")
                printf '  w%s %s %s run %s: %7.1f handshakes/s, server %6.1f us/handshake, errors %s\n' \
                    "$w" "$cert" "$g" "$r" "$(jq .tls.handshakes_per_s "$out")" \
                    "$(jq '.server_cpu_us_per_hs // 0' "$out")" "$(jq .errors_total "$out")" >&2
            done
            rate=$(jq -r .tls.handshakes_per_s "${runs[@]}" | median)
            mid=$(median_file .tls.handshakes_per_s "${runs[@]}")
            cpu_us=$(jq -r '.server_cpu_us_per_hs // 0' "${runs[@]}" | median)
            cpu_util=$(jq -r .server_cpu_util "${runs[@]}" | median)
            all=$(jq -r .tls.handshakes_per_s "${runs[@]}" | sort -g |
                awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1}')
            ROWS+=("$(jq -r --arg rate "$rate" --arg cpu "$cpu_us" --arg all "$all" --arg util "$cpu_util" \
                '"| \(.workers) | \(.server_cpus) | \(.client_cpus) | \(.want_group) | \(.want_cert) | \([.tls.negotiated[] | "\(.group) \(.cert) \(.cipher)"] | join("; ")) | \($rate | tonumber | round) | \($all) | \($cpu | tonumber | round) | \($util | tonumber * 100 | round)% | \(.latency_us.p50 / 1000 * 100 | round / 100) | \(.latency_us.p99 / 1000 * 100 | round / 100) | \(.latency_us.p999 / 1000 * 100 | round / 100) | \(.errors_total) | \(.client_cpu_util * 100 | round)%\(if .client_bound then " (bound)" else "" end) | \(.other_cpu_util * 100 | round)% |"' \
                "$mid")")
        done
    done
done

echo "## STARTTLS handshakes (TLS 1.3, full)"
echo
echo "| workers | server CPUs | client CPUs | group | certificate | negotiated | handshakes/s (median) | runs | server CPU us/handshake (median) | server CPU | p50 ms | p99 ms | p99.9 ms | errors | client CPU | other CPU |"
echo "|---:|---|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo

# ------------------------------------------------------------------ idle TLS memory
IROWS=()
for w in $WORKERS; do
    pin_for "$w"
    for n in $IDLE_TLS; do
        wait_quiet
        start_daemon "$w" "$SCPUS" "$(tls_yaml p256)"
        idle_hold "$WORK/idle.json" "$n" --starttls --timeout 30 --label "idle-tls w$w n$n"
        stop_daemon
        jq -c --argjson w "$w" '. + {workers: $w}' "$WORK/idle.json" >"$RESULTS/idle-tls-w$w-n$n.json"
        IROWS+=("$(jq -r '"| \(.workers) | \(.idle_requested) | \(.ready_established) | \([.tls.negotiated[] | "\(.group) \(.cert)"] | join("; ")) | \(.vmrss_before_kib) | \(.vmrss_after_kib) | \(.bytes_per_conn // 0 | round) | \(.rssanon_after_kib - .rssanon_before_kib) | \(.errors_total) |"' \
            "$RESULTS/idle-tls-w$w-n$n.json")")
    done
done

echo "## Memory of idle TLS sessions (STARTTLS, handshake, EHLO over TLS, then nothing)"
echo
echo "| workers | opened | established | negotiated | VmRSS before KiB | VmRSS after KiB | bytes/session (VmRSS) | RssAnon delta KiB | client errors |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${IROWS[@]}"
echo
idle_marginals "$RESULTS/idle-tls" "$IDLE_TLS"
echo "raw JSON: $RESULTS"
