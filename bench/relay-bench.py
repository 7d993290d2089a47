#!/usr/bin/env python3
"""bench/relay-bench.py -- relay throughput: Postfix's smtp-source -> the relay -> Postfix's
smtp-sink, all on loopback; the relay is ringmaild (routing.smart_host) and/or a private
Postfix (bench/postfix.sh in relay mode: relayhost = the same sink).

Rows: 1 KiB messages (smtp-source -l 1024, one recipient), 1 and 20 messages per inbound
connection, 32 and 256 concurrent inbound sessions. A run sends a fixed number of messages
(--messages, rounded up to a whole number of connections per session) and ends when the sink
has received every one of them and the relay's queue is empty. Per run:

  delivered msg/s   messages / (first connection .. last message at the sink): the relay's
                    end-to-end rate, durable receive (fsync before the 250) + delivery + removal
  accepted msg/s    messages / (first connection .. smtp-source's exit)
  server CPU µs/msg the relay's CPU over the whole run / messages, from a cgroup v1 cpuacct
                    group (every thread, every process it forks, exited ones too), as
                    bench/run-bench.py measures it; and the user-space part of it (the rest is
                    the kernel's: fsync, file creation and removal, TCP)
  outbound sess     sessions the sink saw end during the run (the relay's connection reuse;
                    connections still cached at the end are not counted)

1 message per connection: one `smtp-source -s SESSIONS -m N`. 20 per connection: one
`bench/smtp_load -M msg -c SESSIONS -n N -m 20` (smtp-source -d keeps one connection for all
of a session's messages, so it had to run once per connection, and starting a process per 20
messages filled the client CPU: the relay waited for its load). Pinning (2 CPUs): the relay
on CPU 0, the load generator and smtp-sink on CPU 1. Both relays keep their defaults for the next hop: 20 connections per
destination at most (ringmail's delivery.destination_concurrency, Postfix's
default_destination_concurrency_limit), connection cache on. Postfix's smtpd process limit is
raised to 300 so that 256 inbound sessions are served at once (ringmaild has no such limit).

The spools and Postfix's queue live in the results directory's file system; with --fs-image
GIB, on a fresh ext4 with a journal loop-mounted from an image there (for a machine whose own
file system is not what a mail server would run on: see docs/benchmarks.md).

Servers alternate per repeat (ringmail, Postfix, ringmail, ...); median of --repeats runs.
Progress on stderr; Markdown on stdout and in <out>/summary.md, every run's JSON beside it
(default out: bench/results/relay-<UTC stamp>/).

  bench/relay-bench.py                        ringmaild and Postfix (builds build-bench/)
  bench/relay-bench.py --servers postfix      Postfix alone (no ringmaild needed)
  BUILD=0 bench/relay-bench.py --daemon build-x/ringmaild --servers ringmail --quick
  RINGMAILD_B=old/ringmaild bench/relay-bench.py   another build beside this one, run by run

Run as root (Postfix's instance, cgroups). Loopback only.
"""

import argparse
import datetime
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_bench", ROOT / "bench" / "run-bench.py")
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from smtp_sink import SmtpSink  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
ROWS = [(1, 32), (1, 256), (20, 32), (20, 256)]   # (messages per connection, sessions)
MSG_SIZE = 1024
SERVER_CPUS, CLIENT_CPUS = ("0", "1") if rb.ncpu() >= 2 else ("0", "0")
POSTFIX_PROCESS_LIMIT = 300
SENDER, RCPT, HELO = "bench@source.test", "user@relay.test", "source.test"


def log(msg):
    print(f"relay-bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the relays


class RelayRingmail(rb.Ringmail):
    """ringmaild (1 worker, CPU 0) relaying everything that is not local to the sink."""

    def __init__(self, bench, sink_port, label="ringmail", daemon=None):
        super().__init__(bench, "p256", 1, label=label, daemon=daemon)
        self.cpus = SERVER_CPUS
        self.sink_port = sink_port

    def routing(self):
        return {**super().routing(), "smart_host": f"[127.0.0.1]:{self.sink_port}"}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def why_dead(self):
        return self.log_path.read_text(errors="replace").strip().splitlines()[-1:]

    def pending(self):
        """Messages still in the spool (qf files, in any shard)."""
        spool = self.log_path.parent / "spool"
        return sum(1 for _ in spool.rglob("qf*"))


class RelayPostfix(rb.Postfix):
    """A private Postfix (CPU 0) in relay mode: relayhost = the sink."""

    def __init__(self, bench, sink_port):
        super().__init__(bench, "p256", 1, POSTFIX_PROCESS_LIMIT)
        self.cpus = SERVER_CPUS
        self.sink_port = sink_port

    def start(self):
        # postfix.sh reads it from the environment that rb.Postfix.start passes on
        os.environ["POSTFIX_RELAYHOST"] = f"[127.0.0.1]:{self.sink_port}"
        try:
            super().start()
        finally:
            del os.environ["POSTFIX_RELAYHOST"]

    def pending(self):
        return self.queued()

    def alive(self):
        return os.path.exists(f"/proc/{self.acct.root_pid}")   # the master

    def why_dead(self):
        return [f"Postfix's processes are gone (see {self.dir}/maillog)"]


# ------------------------------------------------------------------ one run


def source_cmd(port, sessions, count, per_conn):
    """1 message per connection: smtp-source. More: bench/smtp_load, which keeps each of its
    sessions for per_conn messages (smtp-source can only keep one for all of them, so it
    would have to run once per connection: its process starts then filled the client CPU)."""
    if per_conn == 1:
        cmd = [SMTP_SOURCE, "-s", sessions, "-m", count, "-l", MSG_SIZE, "-f", SENDER, "-t", RCPT,
               "-M", HELO, f"127.0.0.1:{port}"]
    else:
        cmd = [rb.LOAD, "-M", "msg", "-s", f"127.0.0.1:{port}", "-c", sessions, "-n", count,
               "-m", per_conn, "-S", MSG_SIZE, "-f", SENDER, "-r", RCPT, "--ehlo", HELO,
               "--max-time", 3600, "-q"]
    return ["taskset", "-c", CLIENT_CPUS] + [str(c) for c in cmd]


def run_sources(port, per_conn, sessions, n):
    """Sends n messages; (seconds, errors)."""
    errors = []
    t0 = time.monotonic()
    p = subprocess.run(source_cmd(port, sessions, n, per_conn), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode:
        errors.append(p.stderr.strip()[-300:])
    elif per_conn > 1:
        res = json.loads(p.stdout.splitlines()[0])
        if res.get("errors_total") or res.get("messages", 0) < n:
            errors.append(f"smtp_load: {p.stdout.splitlines()[0][:300]}")
    return time.monotonic() - t0, errors


def children_cpu_s():
    """CPU seconds of this process's reaped children (the smtp-source runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sink_cpu_s(sink):
    st = rb.proc_stat(sink.proc.pid)
    return sum(st[:2]) / rb.HZ if st else 0.0


def messages_for(per_conn, sessions, want):
    unit = per_conn * sessions if per_conn > 1 else 1
    return max(unit, -(-want // unit) * unit)


def measure(bench, server, per_conn, sessions, name):
    n = messages_for(per_conn, sessions, bench.messages)
    sink = bench.sink
    rb.wait_quiet(bench.quiet_wait)
    s0 = sink.counts()
    c0, u0 = server.acct.read()
    k0, q0 = children_cpu_s(), sink_cpu_s(sink)
    j0 = rb.journal_cpu_s(bench.fs)
    m0, t0 = rb.machine_busy_s(), time.monotonic()
    accept_s, errors = run_sources(server.port, per_conn, sessions, n)
    # before the drain polls, whose postfix.sh runs are children too
    source_cpu = children_cpu_s() - k0
    deadline = time.monotonic() + bench.drain_timeout
    while sink.counts()["mesg"] - s0["mesg"] < n and time.monotonic() < deadline:
        if not server.alive():
            errors += ["the relay died: " + " ".join(server.why_dead())]
            break
        time.sleep(0.02)
    t_sink = time.monotonic()
    got = sink.counts()["mesg"] - s0["mesg"]
    while server.alive() and server.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    c1, u1 = server.acct.read()
    client = source_cpu + sink_cpu_s(sink) - q0
    journal = rb.journal_cpu_s(bench.fs) - j0
    m1, t1 = rb.machine_busy_s(), time.monotonic()
    s1 = sink.counts()
    cpu = c1 - c0
    r = {
        "server": server.label, "per_conn": per_conn, "sessions": sessions, "messages": n,
        "delivered": got, "complete": got >= n and server.alive() and not server.pending(),
        "accept_s": accept_s, "deliver_s": t_sink - t0,
        "accept_rate": n / accept_s if accept_s else None,
        "rate": got / (t_sink - t0) if got else 0.0,
        "server_cpu_s": cpu, "server_user_s": u1 - u0,
        "server_cpu_us_per_msg": cpu * 1e6 / got if got else None,
        "server_user_us_per_msg": (u1 - u0) * 1e6 / got if got else None,
        "server_cpu_util": cpu / (t1 - t0),
        "source_cpu_s": source_cpu, "client_cpu_util": client / (t1 - t0),
        "journal_cpu_us_per_msg": journal * 1e6 / got if bench.fs and got else None,
        "other_cpu_util": max(0.0, (m1 - m0 - cpu - client - journal) / (t1 - t0)),
        "outbound_sessions": s1["sess"] - s0["sess"],
        "errors": errors[:5], "n_errors": len(errors),
        "server_cpus": server.cpus, "client_cpus": CLIENT_CPUS,
        "accounting": "cgroup cpuacct" if server.acct.cg else "/proc process tree",
    }
    (bench.results / f"{name}.json").write_text(json.dumps(r) + "\n")
    log(f"  {name}: delivered {r['rate']:.0f} msg/s ({got}/{n}), accepted "
        f"{r['accept_rate'] or 0:.0f} msg/s, server {r['server_cpu_us_per_msg'] or 0:.0f} µs/msg,"
        f" {r['outbound_sessions']} outbound sessions" + (f", ERRORS {errors[:1]}" if errors else ""))
    return r


def summarize(runs):
    ok = [r for r in runs if r["complete"] and not r["n_errors"]]
    use = ok or runs
    units = [r["server_cpu_us_per_msg"] for r in use if r["server_cpu_us_per_msg"]]
    return {
        "rate": statistics.median(r["rate"] for r in use),
        "runs": [r["rate"] for r in runs],
        "accept": statistics.median(r["accept_rate"] or 0 for r in use),
        "us": statistics.median(units) if units else None,
        "user_us": statistics.median(r["server_user_us_per_msg"] for r in use
                                     if r["server_user_us_per_msg"]) if units else None,
        "util": statistics.median(r["server_cpu_util"] for r in use),
        "other": statistics.median(r["other_cpu_util"] for r in use),
        "client": statistics.median(r["client_cpu_util"] for r in use),
        "journal_us": statistics.median(r["journal_cpu_us_per_msg"] or 0 for r in use),
        "out_sess": statistics.median(r["outbound_sessions"] for r in use),
        "messages": use[0]["messages"],
        "problems": "; ".join(sorted({f"{r['delivered']}/{r['messages']} delivered"
                                      for r in runs if not r["complete"]}
                                     | {e for r in runs for e in r["errors"][:1]})),
    }


# ------------------------------------------------------------------ the bench


class RelayBench:
    def __init__(self, args):
        self.args = args
        self.servers_wanted = args.servers.split(",")
        self.repeats = args.repeats or (1 if args.quick else 3)
        self.messages = args.messages or (2000 if args.quick else 20000)
        self.drain_timeout = args.drain_timeout
        self.quiet_wait = int(os.environ.get("QUIET_WAIT", "30"))
        self.rows = ROWS if not args.rows else [tuple(int(x) for x in r.split("x"))
                                                for r in args.rows.split(",")]
        self.user = subprocess.run(["id", "-un"], stdout=subprocess.PIPE, text=True).stdout.strip()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.results = Path(args.out) if args.out else ROOT / "bench" / "results" / f"relay-{stamp}"
        self.results.mkdir(parents=True, exist_ok=True)
        self.certs = self.results / "certs"
        # spools and Postfix's queue on the results' disk (not a tmpfs /tmp: fsync must cost
        # what it costs), reachable by Postfix's users
        self.fs, self.work = rb.scratch_dir(self.results, args.fs_image, "relay-run.")
        for d in self.work.parents:
            if d.stat().st_mode & 0o001 == 0:
                rb.die(f"{d} is not searchable by others: Postfix's users must reach {self.work}")
        self.summary = self.results / "summary.md"
        self.summary.write_text("")
        self.configs, self.running = [], []
        self.sink = None

    def out(self, text=""):
        print(text, flush=True)
        with open(self.summary, "a") as f:
            f.write(text + "\n")

    def note_config(self, what, yaml, cmd):
        if what not in [c[0] for c in self.configs]:
            self.configs.append((what, yaml, cmd))

    def start_servers(self):
        ss = []
        if "ringmail" in self.servers_wanted:
            ss.append(RelayRingmail(self, self.sink.port))
            if os.environ.get("RINGMAILD_B"):
                ss.append(RelayRingmail(self, self.sink.port, "build-b", os.environ["RINGMAILD_B"]))
        if "postfix" in self.servers_wanted:
            ss.append(RelayPostfix(self, self.sink.port))
        for s in ss:
            self.running.append(s)
            s.start()
        return ss

    def run(self):
        rb.make_certs(self.certs)
        self.sink = SmtpSink("127.0.0.1", backlog=4096, max_concurrency=4096).start()
        os.sched_setaffinity(self.sink.proc.pid, {int(c) for c in CLIENT_CPUS.split(",")})
        ss = self.start_servers()
        table = []
        for per_conn, sessions in self.rows:
            runs = {s.label: [] for s in ss}
            for i in range(self.repeats):
                for s in ss:
                    runs[s.label].append(measure(self, s, per_conn, sessions,
                                                 f"{s.label}-m{per_conn}-c{sessions}-r{i + 1}"))
            res = {k: summarize(v) for k, v in runs.items()}
            table.append(self.line(per_conn, sessions, res, [s.label for s in ss]))
        self.report(table, [s.label for s in ss])

    def line(self, per_conn, sessions, res, labels):
        row = [per_conn, sessions, next(iter(res.values()))["messages"]]
        for label in labels:
            r = res[label]
            row += [rb.fmt(r["rate"]), " / ".join(rb.fmt(x) for x in r["runs"]),
                    rb.fmt(r["accept"]), rb.fmt(r["us"]), rb.fmt(r["user_us"]), rb.pct(r["util"]),
                    rb.pct(r["client"])] + ([rb.fmt(r["journal_us"])] if self.fs else []) + [
                    rb.fmt(r["out_sess"]), r["problems"] or "ok"]
        for x, y in rb.ratio_pairs(labels):
            row += rb.ratio_cells(res[x], res[y])
        row.append(rb.pct(max(r["other"] for r in res.values())))
        return row

    def report(self, table, labels):
        self.out("## Relay: smtp-source → relay → smtp-sink (relay on CPU 0; source and sink on CPU 1)")
        self.out()
        self.out(f"{MSG_SIZE}-byte messages, one recipient, median of {self.repeats} run(s); a run sends"
                 " the messages column and ends when the sink has them all and the relay's queue"
                 " is empty. delivered msg/s = messages / (start .. last at the sink); server CPU"
                 " = the relay's cgroup CPU over the run / messages (user: its user-space part;"
                 " the rest is the kernel's: fsync, file creation and removal, TCP); outbound"
                 " sess = sessions the sink saw end (the relay's connection reuse).")
        if self.fs:
            self.out()
            self.out(self.fs.note())
        self.out()
        head = ["msgs/conn", "sessions", "messages"]
        for label in labels:
            head += [f"{label} delivered msg/s", "runs", "accepted msg/s", "server CPU µs/msg",
                     "of which user µs/msg", "server CPU", "source+sink CPU"] + (
                         ["journal CPU µs/msg"] if self.fs else []) + ["outbound sess", "check"]
        for x, y in rb.ratio_pairs(labels):
            head += [f"rate {x}/{y}", f"CPU {y}/{x}"]
        head.append("other CPU")
        self.out(rb.md_table(head, table))
        self.out()
        self.out("### Configurations and commands")
        self.out()
        for what, yaml, cmd in self.configs:
            self.out(f"- {what}: `{cmd}`")
            if yaml:
                self.out("\n```yaml\n" + yaml.rstrip() + "\n```")
        self.out(f"- Postfix: POSTFIX_RELAYHOST=[127.0.0.1]:$SINK POSTFIX_PROCESS_LIMIT="
                 f"{POSTFIX_PROCESS_LIMIT} bench/postfix.sh start ...")
        self.out(f"- sink: `taskset -c {CLIENT_CPUS} {' '.join(self.sink.argv()).replace(str(self.sink.port), '$SINK')}`")
        self.out(f"- source, 1/conn: `{' '.join(source_cmd('$PORT', '$SESSIONS', '$N', 1))}`")
        self.out(f"- source, 20/conn: `{' '.join(source_cmd('$PORT', '$SESSIONS', '$N', 20))}`")
        log(f"done: {self.summary}")

    def cleanup(self):
        for s in list(self.running):
            try:
                s.stop()
            except (OSError, subprocess.SubprocessError) as e:
                log(f"stopping {s.label}: {e}")
        if self.sink:
            self.sink.stop()
        shutil.rmtree(self.work, ignore_errors=True)
        if self.fs:
            self.fs.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="ringmail,postfix", help="ringmail, postfix or both")
    ap.add_argument("--daemon", help="the ringmaild to run (default build-bench/ringmaild, built)")
    ap.add_argument("--quick", action="store_true", help="2,000 messages, 1 repeat")
    ap.add_argument("--messages", type=int, help="messages per run (default 20000)")
    ap.add_argument("--repeats", type=int, help="runs per row and server (default 3)")
    ap.add_argument("--rows", help="PERCONNxSESSIONS,... (default 1x32,1x256,20x32,20x256)")
    ap.add_argument("--drain-timeout", type=float, default=rb.DRAIN_TIMEOUT,
                    help=f"seconds a run may take to deliver (default {rb.DRAIN_TIMEOUT})")
    rb.add_fs_image_arg(ap, "the spools and queues", "in the results directory")
    ap.add_argument("--out", help="results directory (default bench/results/relay-<UTC stamp>)")
    args = ap.parse_args()
    wanted = set(args.servers.split(","))
    if not wanted or wanted - {"ringmail", "postfix"}:
        rb.die(f"--servers: ringmail and/or postfix, not {args.servers}")
    if os.geteuid() != 0:
        rb.die("run as root (Postfix's private instance, cgroups)")
    subprocess.run(["bash", str(rb.POSTFIX_SH), "install"], check=True, stdout=sys.stderr)
    for tool in (SMTP_SOURCE, "/usr/sbin/smtp-sink"):
        if not os.access(tool, os.X_OK):
            rb.die(f"needs {tool} (scripts/deps.sh test installs postfix)")
    if "ringmail" in wanted:
        if args.daemon:
            rb.DAEMON = Path(args.daemon).resolve()
        elif os.environ.get("BUILD", "1") != "0":
            log("building Release into build-bench/")
            rb.build()
        if not rb.DAEMON.exists():
            rb.die(f"no {rb.DAEMON}")
    rb.run_to_end(RelayBench, args)


if __name__ == "__main__":
    main()
