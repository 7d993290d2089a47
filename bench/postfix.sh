#!/usr/bin/env bash
# bench/postfix.sh — a private Debian Postfix instance that the benchmarks measure ringmail
# against: its own config, queue, data directories and log file under one DIR, started with
# `postfix -c DIR/etc`, listening on 127.0.0.1:PORT only, with the same certificates as
# ringmail (smtpd_tls_chain_files), no DNS at all, Postfix's durable queue (cleanup fsyncs
# the queue file before the 250) and every message handed to its `discard` transport, or, in
# relay mode (POSTFIX_RELAYHOST), relayed by its smtp client to one next hop.
#
#   postfix.sh install                      apt-get install postfix if missing (preseeded to
#                                           "No configuration"); make sure the system's
#                                           default instance is not running. Idempotent.
#   postfix.sh start DIR PORT CHAIN...      (re)create the instance under DIR and start it;
#                                           waits for the 220 on 127.0.0.1:PORT; prints the
#                                           master's PID (the only thing on stdout).
#   postfix.sh stop DIR                     stop it and wait until all its processes are
#                                           gone. Idempotent.
#   postfix.sh pids DIR                     PIDs of its live processes (master + descendants).
#   postfix.sh mem DIR                      "<pss_kib> <rss_kib> <nproc>" over those processes.
#   postfix.sh delivered DIR                messages delivered so far: handed to discard, or
#                                           relayed with status=sent (from DIR/maillog).
#   postfix.sh queued DIR                   messages still in the queue.
#
# Each CHAIN file holds one private key followed by its certificate chain (the
# smtpd_tls_chain_files format); give two (ECDSA and RSA) for dual certificates. They are
# copied into DIR/etc, so the caller may remove its own copies after start.
#
# Environment (start):
#   POSTFIX_PROCESS_LIMIT  the smtpd process limit, i.e. at most that many SMTP sessions at
#                          once (default 100, Postfix's default_process_limit). Idle-session
#                          and high-concurrency rows must raise it: every session is a process.
#   POSTFIX_BACKLOG        the listen backlog of the smtpd socket (default 1024), so that
#                          connections beyond the process limit wait in the kernel instead of
#                          being dropped. Postfix has no backlog setting: the master listens
#                          with max(service process limit, default_process_limit), so this
#                          sets default_process_limit = max(PROCESS_LIMIT, BACKLOG) while the
#                          smtpd service keeps an explicit PROCESS_LIMIT in master.cf. The
#                          other services that default to it are bounded by demand (rewrite,
#                          proxymap: one per client process; discard: qmgr's destination
#                          concurrency, 20). The kernel caps it at net.core.somaxconn.
#   POSTFIX_START_TIMEOUT  seconds to wait for the 220 (default 30).
#   POSTFIX_RELAYHOST      relay mode: "[127.0.0.1]:PORT" (a literal loopback address, no DNS);
#                          every message is relayed there by Postfix's smtp client (service
#                          smtp, plain SMTP as smtp_tls_security_level's default is none,
#                          connection cache on demand, default_destination_concurrency_limit
#                          20: Postfix's defaults) instead of being discarded. The relay bench
#                          (bench/relay-bench.py) points it at Postfix's smtp-sink.
#   POSTFIX_MILTER         a mail filter every message goes through: "unix:/path" or
#                          "inet:host:port" (smtpd_milters; milter_default_action tempfail,
#                          as ringmail's on_fail tempfail). run-bench.py's milter section.
#
# Run it as root. Every parent directory of DIR must be searchable by the postfix user (the
# master opens DIR/data/master.lock as postfix: under a 0700 `mktemp -d` it dies at start).
# Pin the instance by pinning `start` (taskset -c 0 postfix.sh start ...): the master and
# every process it forks inherit the affinity (a cgroup joined by `start` is inherited too).
# CPU accounting: all processes of the instance are children of the master, which reaps them;
# smtpd exits after max_use=100 sessions (or 100 s idle), so during a 1-message-per-connection
# load smtpds come and go. The instance's CPU = the master's utime+stime+cutime+cstime (the
# reaped children's time lands in cutime/cstime) + utime+stime of the live children (`pids`);
# or use a cgroup. Start takes about 2 s (postfix-script's checks, then the 220 probe); a burst
# of N new sessions is served at the master's process-creation rate (measured here: about 65
# new smtpd/s, so 1024 idle sessions take some 15 s to all get their 220).

set -euo pipefail

PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

die() {
    echo "postfix.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '/^#   postfix.sh install/,/^#   postfix.sh queued/p' "$0" | sed 's/^#   //' >&2
    exit 2
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (postfix start/stop, queue ownership)"
}

need_postfix() {
    if ! command -v postfix >/dev/null || ! command -v postconf >/dev/null; then
        die "postfix is not installed: run 'postfix.sh install' first"
    fi
}

# absdir DIR [create]: DIR as an absolute physical path; refuses "/".
absdir() {
    local dir=$1
    [ -n "$dir" ] || die "empty DIR"
    if [ "${2:-}" = create ]; then
        mkdir -p -- "$dir" || die "cannot create $dir"
    fi
    if [ -d "$dir" ]; then
        dir=$(cd -- "$dir" && pwd -P)
    else
        case $dir in
        /*) ;;
        *) dir=$PWD/$dir ;;
        esac
    fi
    [ "$dir" != / ] || die "DIR must not be /"
    case $dir in
    *[[:space:],=]*) die "DIR must not contain white space, ',' or '=' (main.cf lists): $dir" ;;
    esac
    printf '%s\n' "$dir"
}

# master_pid DIR: the live master's PID, or nothing.
master_pid() {
    local file=$1/queue/pid/master.pid pid
    [ -r "$file" ] || return 0
    pid=$(tr -dc '0-9' <"$file" 2>/dev/null | head -c 10) || true
    [ -n "$pid" ] || return 0
    # the PID must still be a Postfix master (not a recycled PID)
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = master ]; then
        printf '%s\n' "$pid"
    fi
}

# instance_pids DIR: the master and all its descendants, plus any process left over from the
# instance after its master died (children are re-parented then, but keep MAIL_CONFIG=DIR/etc
# in their environment: postfix(1) exports it and the master passes it on).
instance_pids() {
    local dir=$1 master
    master=$(master_pid "$dir")
    {
        if [ -n "$master" ]; then
            ps -e -o pid=,ppid= | awk -v root="$master" '
                { parent[$1] = $2; pids[NR] = $1 }
                END {
                    keep[root] = 1; print root
                    do {
                        added = 0
                        for (i = 1; i <= NR; i++) {
                            p = pids[i]
                            if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; print p; added = 1 }
                        }
                    } while (added)
                }'
        fi
        # one grep over all environ files (NUL-separated; unreadable or vanished ones skipped)
        grep -lszx -- "MAIL_CONFIG=$dir/etc" /proc/[0-9]*/environ |
            sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p' || true
    } | sort -n -u
}

# alive PID...: prints the ones that still exist and are not zombies (no forks: the stop
# loop calls it with every PID of the instance, up to a thousand and more).
alive() {
    local pid stat state
    for pid in "$@"; do
        IFS= read -r stat <"/proc/$pid/stat" 2>/dev/null || continue
        state=${stat##*) }
        state=${state%% *}
        [ "$state" != Z ] && printf '%s\n' "$pid"
    done
    return 0
}

# probe PORT: true when 127.0.0.1:PORT accepts and greets with 220 (then says QUIT).
probe() {
    local port=$1 line=
    # a subshell so that the descriptor and a refused connect stay local
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        IFS= read -r -t 5 line <&3 || exit 1
        # a multi-line greeting ("220-...") ends with "220 ..."
        while [ "${line:3:1}" = - ]; do
            IFS= read -r -t 5 line <&3 || exit 1
        done
        printf 'QUIT\r\n' >&3 || true
        IFS= read -r -t 2 _ <&3 || true
        exec 3>&- 3<&-
        [ "${line:0:4}" = "220 " ]
    ) 2>/dev/null
}

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cmd_install() {
    need_root
    if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
        # "No configuration": the package writes no /etc/postfix/main.cf and configures no
        # system instance; ours is entirely under DIR. policy-rc.d (if any) may refuse to
        # start the system instance, which is what we want anyway.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2 ||
            die "apt-get install postfix failed (run apt-get update first?)"
    fi
    need_postfix
    # The system's default instance must not run (it would listen on port 25 and compete
    # for the CPU). It has no main.cf with "No configuration": then it cannot be running.
    if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
        echo "postfix.sh: stopping the system's default Postfix instance" >&2
        postfix stop >&2 || die "cannot stop the system's default Postfix instance"
    fi
    # a system instance started under systemd/sysvinit by other means
    if command -v systemctl >/dev/null && systemctl is-active --quiet postfix 2>/dev/null; then
        systemctl stop postfix >&2 || true
    fi
    return 0
}

cmd_start() {
    need_root
    need_postfix
    [ $# -ge 3 ] || usage
    local dir port chain limit backlog timeout dpl
    dir=$(absdir "$1" create)
    port=$2
    shift 2
    if ! [[ $port =~ ^[1-9][0-9]{0,4}$ ]] || [ "$port" -gt 65535 ]; then
        die "bad PORT: $port"
    fi
    for chain in "$@"; do
        [ -r "$chain" ] || die "cannot read chain file $chain"
        grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$chain" ||
            die "$chain: no private key (want the key, then its certificate chain)"
        grep -q -- '-----BEGIN CERTIFICATE-----' "$chain" || die "$chain: no certificate"
    done
    limit=${POSTFIX_PROCESS_LIMIT:-100}
    backlog=${POSTFIX_BACKLOG:-1024}
    timeout=${POSTFIX_START_TIMEOUT:-30}
    [[ $limit =~ ^[1-9][0-9]*$ ]] || die "bad POSTFIX_PROCESS_LIMIT: $limit"
    [[ $backlog =~ ^[1-9][0-9]*$ ]] || die "bad POSTFIX_BACKLOG: $backlog"
    [[ $timeout =~ ^[1-9][0-9]*$ ]] || die "bad POSTFIX_START_TIMEOUT: $timeout"
    dpl=$((limit > backlog ? limit : backlog))
    local relayhost=${POSTFIX_RELAYHOST:-} transport=discard:bench
    if [ -n "$relayhost" ]; then
        [[ $relayhost =~ ^\[127\.[0-9]+\.[0-9]+\.[0-9]+\]:[1-9][0-9]{0,4}$ ]] ||
            die "bad POSTFIX_RELAYHOST: $relayhost (want [127.x.y.z]:PORT)"
        transport=smtp:$relayhost
    fi

    # re-create: stop a previous instance in DIR, wipe its state
    cmd_stop "$dir"
    port_busy "$port" && die "127.0.0.1:$port is already in use"
    rm -rf -- "${dir:?}/etc" "$dir/queue" "$dir/data" "$dir/maillog"
    install -d -m 0755 -o root -g root "$dir/etc" "$dir/queue"
    # data_directory: tlsmgr's PRNG exchange file and caches; owned by mail_owner
    install -d -m 0700 -o postfix -g postfix "$dir/data"

    # The daemons reach the queue by relative paths from queue_directory (the master chdirs
    # there as root), but tlsmgr opens data_directory/prng_exch by its absolute path as the
    # postfix user: every ancestor of DIR must be searchable by it (mktemp -d makes 0700).
    if ! runuser -u postfix -- test -w "$dir/data" 2>/dev/null; then
        die "user postfix cannot reach $dir/data: make every parent directory of $dir searchable (chmod o+x; mktemp -d makes 0700)"
    fi

    local i=0 files=()
    for chain in "$@"; do
        i=$((i + 1))
        install -m 0600 -o root -g root -- "$chain" "$dir/etc/chain$i.pem"
        files+=("$dir/etc/chain$i.pem")
    done
    local chains
    chains=$(printf '%s, ' "${files[@]}")
    chains=${chains%, }

    cat >"$dir/etc/main.cf" <<EOF
# Private Postfix instance for ringmail's benchmarks, written by bench/postfix.sh.
# Anything not set here is Postfix $(postconf -d -h mail_version 2>/dev/null || echo 3.x)'s default.

# --- Where the instance lives: everything under $dir.
queue_directory = $dir/queue
data_directory = $dir/data
# Postfix >= 3.4 logs through postlogd to this file: no syslog daemon needed.
maillog_file = $dir/maillog
# maillog_file must start with one of these (Postfix's default allows only /var, /dev/stdout).
maillog_file_prefixes = $dir
syslog_name = postfix-bench
mail_owner = postfix
setgid_group = postdrop
# Current defaults, without the backwards-compatibility warnings.
compatibility_level = 3.6

# --- Names set explicitly: Postfix never looks up its own name (no DNS, no /etc/hosts).
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname

# --- Network: IPv4 loopback only; the one listener is 127.0.0.1:$port in master.cf.
inet_interfaces = loopback-only
inet_protocols = ipv4
# The benchmark's clients come from 127.0.0.1 and 127.0.0.2..255 (idle rows).
mynetworks = 127.0.0.0/8

# --- Routing: nothing is local; bench.test is a relay domain and every transport is
# discard(8), which logs "status=sent" and drops the message (after the queue file was
# written and fsynced by cleanup, i.e. the same durable receive as ringmail); in relay mode
# every transport is smtp(8) to the one next hop ${relayhost:-(none: discard)}.
mydestination =
local_recipient_maps =
relay_domains = bench.test
relay_transport = $transport
default_transport = $transport
local_transport = $transport
virtual_transport = $transport
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
append_dot_mydomain = no
biff = no

# --- No DNS at all: no reverse/forward lookup of the client (smtpd_peername_lookup, 3.7
# has it: the client is logged as unknown[127.0.0.1]), no reject_unknown_* or RBL checks
# anywhere (none configured), and the SMTP client (not used anyway) never queries DNS.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled

# --- Limits a benchmark must not trip. anvil's per-client limits (loopback is exempt via
# smtpd_client_event_limit_exceptions = \$mynetworks anyway); with all of them 0 smtpd does
# not even talk to anvil. Sizes, timeouts, error handling: Postfix's defaults.
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_new_tls_session_rate_limit = 0
smtpd_client_auth_rate_limit = 0
# Listen backlog = max(service process limit, this); smtpd's own limit is in master.cf.
default_process_limit = $dpl

# --- TLS: STARTTLS offered, not required; the same certificates as ringmail (several chain
# files = dual ECDSA + RSA). Protocols, ciphers, groups (tls_eecdh_auto_curves), session
# tickets (tlsmgr rotates the keys; no session cache database): Postfix's defaults.
smtpd_tls_security_level = may
smtpd_tls_chain_files = $chains
# one line per handshake ("Anonymous TLS connection established ..."), as ringmail logs it
smtpd_tls_loglevel = 1

# --- Durability: Postfix's defaults are kept (cleanup fsyncs the queue file before smtpd
# answers 250); nothing here turns that off.
EOF
    if [ -n "${POSTFIX_MILTER:-}" ]; then
        cat >>"$dir/etc/main.cf" <<EOF

# --- A mail filter (POSTFIX_MILTER): every message, as ringmail's milters key.
smtpd_milters = $POSTFIX_MILTER
milter_default_action = tempfail
EOF
    fi

    # Not chrooted (column 5 = n): Debian's default chroots most daemons into the queue and
    # its init script copies /etc/services, resolv.conf, hosts, localtime, nsswitch.conf and
    # libraries into queue/etc for that; a private instance would have to redo it on every
    # start. The chroot costs nothing per message (it happens once per process start) and
    # ringmail does not chroot either. Only the services the queue needs are here: no port 25
    # (no "smtp inet"), no pickup (nothing uses sendmail/postdrop), no smtp/lmtp/local client.
    cat >"$dir/etc/master.cf" <<EOF
# Private Postfix instance for ringmail's benchmarks, written by bench/postfix.sh.
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$port inet n       -       n       -       $limit     smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

    # postfix-script's start runs "check-fatal" first, which creates the queue's
    # subdirectories with Postfix's owners and modes (post-install create-missing, from
    # postfix-files) and checks the configuration; as root, postfix(1) does not require DIR/etc
    # to be listed in alternate_config_directories of /etc/postfix/main.cf (which the
    # "No configuration" install does not even create), so the system's files stay untouched.
    postfix -c "$dir/etc" start >&2 || die "postfix -c $dir/etc start failed (see $dir/maillog)"

    local deadline=$((SECONDS + timeout)) pid
    until probe "$port"; do
        if [ -z "$(master_pid "$dir")" ] && [ -z "$(instance_pids "$dir")" ]; then
            die "the master exited during start (see $dir/maillog)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || {
            cmd_stop "$dir"
            die "no 220 on 127.0.0.1:$port within ${timeout}s (see $dir/maillog)"
        }
        sleep 0.1
    done
    pid=$(master_pid "$dir")
    [ -n "$pid" ] || die "no master PID in $dir/queue/pid/master.pid"
    printf '%s\n' "$pid"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    need_root
    local dir pids left i master
    dir=$(absdir "$1")
    mapfile -t pids < <(instance_pids "$dir")
    [ ${#pids[@]} -gt 0 ] || return 0
    master=$(master_pid "$dir")
    if [ -n "$master" ]; then
        # What `postfix -c DIR/etc stop` does (postfix-script: kill `sed 1q pid/master.pid`),
        # without its 1-second polling: SIGTERM to the master, which SIGTERMs its children.
        kill -TERM "$master" 2>/dev/null || true
    fi
    for i in $(seq 100); do
        mapfile -t left < <(alive "${pids[@]}")
        [ ${#left[@]} -gt 0 ] || return 0
        if [ "$i" = 50 ] && [ -n "$(master_pid "$dir")" ]; then
            # still there after 5 s: SIGKILL the master's process group
            postfix -c "$dir/etc" abort >&2 || true
        fi
        sleep 0.1
    done
    # the rest (a child stuck after its master was gone)
    mapfile -t left < <(alive "${pids[@]}")
    [ ${#left[@]} -eq 0 ] || kill -KILL "${left[@]}" 2>/dev/null || true
    for i in $(seq 50); do
        mapfile -t left < <(alive "${pids[@]}")
        [ ${#left[@]} -gt 0 ] || return 0
        sleep 0.1
    done
    die "processes of $dir still alive: ${left[*]}"
}

cmd_pids() {
    [ $# -eq 1 ] || usage
    local dir pids
    dir=$(absdir "$1")
    mapfile -t pids < <(instance_pids "$dir")
    [ ${#pids[@]} -eq 0 ] || alive "${pids[@]}"
}

cmd_mem() {
    [ $# -eq 1 ] || usage
    local dir files=() pid
    dir=$(absdir "$1")
    for pid in $(cmd_pids "$dir"); do
        files+=("/proc/$pid/smaps_rollup")
    done
    if [ ${#files[@]} -eq 0 ]; then
        echo "0 0 0"
        return 0
    fi
    # one pass over all of them; a process that exited in between is skipped and not counted
    # (cat goes on past a vanished file, mawk would stop); one Rss: line per process
    { cat -- "${files[@]}" 2>/dev/null || true; } |
        awk '/^Rss:/ { rss += $2; n++ } /^Pss:/ { pss += $2 }
             END { printf "%d %d %d\n", pss, rss, n }'
}

cmd_delivered() {
    [ $# -eq 1 ] || usage
    local dir
    dir=$(absdir "$1")
    # discard(8) logs "postfix-bench/discard[PID]: QUEUEID: to=<...>, relay=none, delay=...,
    # dsn=2.0.0, status=sent (bench)", smtp(8) "postfix-bench/smtp[PID]: QUEUEID: to=<...>,
    # relay=127.0.0.1[127.0.0.1]:PORT, ..., status=sent (250 ...)": one line per recipient.
    if [ -f "$dir/maillog" ]; then
        grep -c -E '/(discard|smtp)\[[0-9]+\]: [0-9A-F]+: to=<[^>]*>, relay=[^,]*, .* status=sent ' \
            "$dir/maillog" || true
    else
        echo 0
    fi
}

cmd_queued() {
    [ $# -eq 1 ] || usage
    local dir q
    dir=$(absdir "$1")
    q=$dir/queue
    # queue files being received (incoming), scheduled (active), retried (deferred), or
    # submitted locally (maildrop); hold is counted too (nothing here puts mail on hold)
    find "$q/incoming" "$q/active" "$q/deferred" "$q/maildrop" "$q/hold" -type f 2>/dev/null |
        wc -l | tr -d ' '
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
install) [ $# -eq 0 ] || usage; cmd_install ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
pids) cmd_pids "$@" ;;
mem) cmd_mem "$@" ;;
delivered) cmd_delivered "$@" ;;
queued) cmd_queued "$@" ;;
-h | --help | help) usage ;;
*) die "unknown command '$cmd' (install, start, stop, pids, mem, delivered, queued)" ;;
esac
