#!/usr/bin/env python3
"""bench/local-bench.py -- local deliveries per second: Postfix's smtp-source -> the MTA ->
the users' Maildirs, ringmaild and a private Postfix side by side, on loopback.

Two modes (--modes):

  maildir  the MTA writes ~/Maildir/ itself, as each user: ringmaild with
           mailers.mailbox "Maildir/" (its privileged parent hands each delivery to an
           agent that has become the user, reused for that user's next ones, which writes
           tmp/, fsync, link into new/, fsync of new/);
           Postfix's local(8) with home_mailbox = Maildir/ (fsync of the file, no fsync of
           the directory).
  lmtp     the MTA hands every mailbox delivery to one private Dovecot LMTP server on a unix
           socket (started here: `dovecot -F -c` a config of its own, passwd-file userdb,
           maildir:~/Maildir, Dovecot's default mail_fsync = optimized): ringmaild with
           mailers.lmtp "unix:SOCK"; Postfix's local(8) with mailbox_transport =
           lmtp:unix:SOCK, which passes each delivery to lmtp(8). One Dovecot serves both
           MTAs (one at a time); its CPU is reported in its own column.

Load: --users test users (rmlb1.., made with useradd, homes under the run's directory,
removed at the end), one `smtp-source` per user sending --messages/--users messages of
1 KiB with one recipient (that user) over --sessions parallel sessions, one message per
connection. Both MTAs receive durably (fsync before the 250: ringmail's spool, Postfix's
cleanup) and deliver from their queue. A run lasts from the first connect until every
message is a file in the users' Maildir/new (or cur): rate = messages / that time. Server
CPU = the MTA's cgroup v1 cpuacct group over the run until its queue is empty (every
process: ringmaild's parent, engine and agents; Postfix's master, smtpd, cleanup, qmgr,
trivial-rewrite, local, lmtp, ...). Pinning: the MTA on CPU 0; smtp-source and Dovecot on
CPU 1. The Maildirs are removed between runs (outside the timing). Runs alternate
(ringmail, Postfix, ringmail, ...); medians of --repeats runs.

Each MTA keeps its defaults for local delivery unless told: ringmail mailers.max_agents 100
(agents at once, at most 2 busy per user; the deliveries beyond wait in the parent;
--max-agents N sets it), delivery.destination_concurrency 20 for the LMTP server
(--ringmail-yaml adds any other setting); Postfix
local_destination_concurrency_limit 2 per user, default_process_limit 100, lmtp's
default_destination_concurrency_limit 20. Every run counts the deferrals in each MTA's log.

  bench/local-bench.py                                   both MTAs, both modes
  bench/local-bench.py --daemon build-x/ringmaild --modes maildir --messages 2000 --repeats 3
  RINGMAILD_B=old/ringmaild bench/local-bench.py         another build beside this one, run by run

The spools, queues, homes and Dovecot live in a temporary directory under $WORK_DIR
(default /var/tmp: it must be on a disk, not a tmpfs), removed at the end; with --fs-image
GIB, on a fresh ext4 with a journal loop-mounted from an image there (for a machine whose own
file system is not what a mail server would run on: see docs/benchmarks.md).

Run as root (useradd, Postfix's instance, Dovecot, cgroups). Loopback only. Markdown on
stdout and in <out>/summary.md, every run's JSON beside it (default out:
bench/results/local-<UTC stamp>/).
"""

import argparse
import datetime
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_bench", ROOT / "bench" / "run-bench.py")
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

SMTP_SOURCE = "/usr/sbin/smtp-source"
DOVECOT = "/usr/sbin/dovecot"
MSG_SIZE = 1024
SERVER_CPUS, CLIENT_CPUS = ("0", "1") if rb.ncpu() >= 2 else ("0", "0")
SENDER, HELO, DOMAIN = "bench@source.test", "source.test", "bench.test"
USER_PREFIX = "rmlb"
MODES = ["maildir", "lmtp"]


def log(msg):
    print(f"local-bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ users and Maildirs


class Users:
    """Test users made with useradd (homes under `base`), removed with userdel."""

    def __init__(self, base: Path, n: int):
        self.base = base
        self.names = []
        base.mkdir(mode=0o755)
        for i in range(1, n + 1):
            name = f"{USER_PREFIX}{i}"
            if self._exists(name):
                rb.die(f"user {name} exists already (a previous run's? userdel {name})")
            home = base / name
            subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell",
                            "/usr/sbin/nologin", "--user-group", name], check=True,
                           capture_output=True)
            self.names.append(name)
            pw = pwd.getpwnam(name)
            home.mkdir(mode=0o755)
            os.chown(home, pw.pw_uid, pw.pw_gid)

    @staticmethod
    def _exists(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def remove(self):
        for name in self.names:
            p = subprocess.run(["userdel", name], capture_output=True, text=True)
            if p.returncode:
                log(f"userdel {name}: {p.stderr.strip()}")
        self.names = []


def maildir_count(maildirs):
    n = 0
    for m in maildirs:
        for sub in ("new", "cur"):
            try:
                n += sum(1 for _ in os.scandir(m / sub))
            except FileNotFoundError:
                pass
    return n


def clear_maildirs(maildirs):
    for m in maildirs:
        shutil.rmtree(m, ignore_errors=True)


# ------------------------------------------------------------------ Dovecot


class Dovecot:
    """A private Dovecot with only an LMTP unix listener; users rmlb* deliver as nobody into
    base/mail/USER/Maildir."""

    def __init__(self, base: Path, users, results: Path, cpus: str):
        self.base, self.users, self.results, self.cpus = base, users, results, cpus
        self.mail = base / "mail"
        self.sock = base / "run" / "lmtp"
        self.proc = None
        self.acct = rb.Accounting("dovecot")

    def maildirs(self):
        return [self.mail / u / "Maildir" for u in self.users]

    def config(self):
        return f"""\
base_dir = {self.base / 'run'}
state_dir = {self.base / 'state'}
log_path = {self.base / 'dovecot.log'}
protocols = lmtp
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
auth_username_format = %Ln
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {self.base / 'passwd'}
}}
userdb {{
  driver = passwd-file
  args = {self.base / 'passwd'}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""

    def start(self):
        for p in (self.base / "run", self.base / "state", self.mail):
            p.mkdir(parents=True)
        self.base.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        for u in self.users:
            (self.mail / u).mkdir()
            os.chown(self.mail / u, nobody.pw_uid, nobody.pw_gid)
        (self.base / "passwd").write_text("".join(
            f"{u}::{nobody.pw_uid}:{nobody.pw_gid}::{self.mail / u}::\n" for u in self.users))
        conf = self.base / "dovecot.conf"
        conf.write_text(self.config())
        with open(self.base / "dovecot.stderr", "wb") as err:
            self.proc = subprocess.Popen(["taskset", "-c", self.cpus, DOVECOT, "-F", "-c",
                                          str(conf)], stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=self.acct.join)
        self.acct.root_pid = self.proc.pid
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(str(self.sock))
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        rb.die(f"dovecot did not start: {self.log_text()[-2000:]}")

    def log_text(self):
        return "".join(p.read_text(errors="replace") for p in
                       (self.base / "dovecot.stderr", self.base / "dovecot.log") if p.exists())

    def stop(self):
        if self.proc:
            (self.results / "dovecot.log").write_text(self.log_text())
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.acct.remove()


# ------------------------------------------------------------------ the MTAs


class LocalRingmail(rb.Ringmail):
    """ringmaild (1 worker, CPU 0) delivering bench.test's users into Maildir/ or to LMTP."""

    def __init__(self, bench, mode, label="ringmail", daemon=None):
        super().__init__(bench, "p256", 1, label=label, daemon=daemon)
        self.cpus = SERVER_CPUS
        self.mode = mode

    def config(self, port, spool):
        mailer = [f'  lmtp: "unix:{self.bench.dovecot.sock}"' if self.mode == "lmtp"
                  else '  mailbox: "Maildir/"']
        if self.bench.args.max_agents:
            mailer.append(f"  max_agents: {self.bench.args.max_agents}")
        extra = [x.replace("\\n", "\n") for x in self.bench.args.ringmail_yaml or []]
        return super().config(port, spool) + "\n".join(["mailers:", *mailer, *extra, ""])

    def deferrals(self):
        """Deliveries deferred so far (sendmail's stat=Deferred lines)."""
        return sum(1 for line in self.log_path.read_text(errors="replace").splitlines()
                   if "stat=Deferred" in line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pending(self):
        spool = self.log_path.parent / "spool"
        return sum(1 for _ in spool.rglob("qf*"))

    def stop(self):
        if self.proc:
            shutil.copy(self.log_path, self.bench.results / f"{self.label}-{self.mode}.log")
        super().stop()


class LocalPostfix(rb.Postfix):
    """A private Postfix (CPU 0) whose bench.test is mydestination: local(8) delivers."""

    def __init__(self, bench, mode):
        super().__init__(bench, "p256", 1)
        self.cpus = SERVER_CPUS
        self.mode = mode

    def settings(self):
        s = ["mydestination = " + DOMAIN, "relay_domains =",
             "local_recipient_maps = proxy:unix:passwd.byname",
             "local_transport = local"]
        if self.mode == "lmtp":
            s.append(f"mailbox_transport = lmtp:unix:{self.bench.dovecot.sock}")
        else:
            s.append("home_mailbox = Maildir/")
        return s

    SERVICES = ["local/unix=local unix - n n - - local",
                "lmtp/unix=lmtp unix - - n - - lmtp"]

    def start(self):
        super().start()
        etc = self.dir / "etc"
        rb.run(["postconf", "-c", etc, "-e", *self.settings()])
        for svc in self.SERVICES:
            rb.run(["postconf", "-c", etc, "-M", svc])
        rb.run(["postfix", "-c", etc, "reload"], stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
        # the master re-reads master.cf and restarts qmgr; give it a moment
        time.sleep(2)
        cmd = ("postconf -e " + " ".join(f"'{x}'" for x in self.settings())
               + "; postconf -M " + " ".join(f"'{x}'" for x in self.SERVICES) + "; postfix reload")
        if self.bench.dovecot:
            cmd = cmd.replace(str(self.bench.dovecot.sock), "$SOCK")
        self.bench.note_config(f"Postfix ({self.mode}), on top of bench/postfix.sh's instance",
                               None, cmd)

    def alive(self):
        return os.path.exists(f"/proc/{self.acct.root_pid}")

    def pending(self):
        return self.queued()

    def deferrals(self):
        p = self.dir / "maillog"
        return sum(1 for line in p.read_text(errors="replace").splitlines()
                   if "status=deferred" in line) if p.exists() else 0

    def stop(self):
        if self.dir and (self.dir / "maillog").exists():
            shutil.copy(self.dir / "maillog", self.bench.results / f"postfix-{self.mode}.log")
        super().stop()


# ------------------------------------------------------------------ one run


def source_cmd(port, sessions, count, rcpt):
    return ["taskset", "-c", CLIENT_CPUS, SMTP_SOURCE, "-s", str(sessions), "-m", str(count),
            "-l", str(MSG_SIZE), "-f", SENDER, "-t", rcpt, "-M", HELO, f"127.0.0.1:{port}"]


def measure(bench, server, name):
    per_user = bench.messages // len(bench.users.names)
    n = per_user * len(bench.users.names)
    maildirs = bench.maildirs(server.mode)
    clear_maildirs(maildirs)
    rb.wait_quiet(bench.quiet_wait)
    dove = bench.dovecot if server.mode == "lmtp" else None
    f0 = server.deferrals()
    c0, u0 = server.acct.read()
    d0 = dove.acct.read()[0] if dove else 0.0
    j0 = rb.journal_cpu_s(bench.fs)
    m0, t0 = rb.machine_busy_s(), time.monotonic()
    procs = [subprocess.Popen(source_cmd(server.port, bench.sessions, per_user,
                                         f"{u}@{DOMAIN}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for u in bench.users.names]
    errors = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode or err.strip():
            errors.append(err.strip()[-300:])
    accept_s = time.monotonic() - t0
    deadline = t0 + bench.drain_timeout
    got = 0
    while time.monotonic() < deadline:
        got = maildir_count(maildirs)
        if got >= n:
            break
        if not server.alive():
            errors.append("the MTA died")
            break
        time.sleep(0.02)
    t_done = time.monotonic()
    while server.alive() and server.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    c1, u1 = server.acct.read()
    d1 = dove.acct.read()[0] if dove else 0.0
    j1 = rb.journal_cpu_s(bench.fs)
    m1, t1 = rb.machine_busy_s(), time.monotonic()
    cpu = c1 - c0
    r = {
        "server": server.label, "mode": server.mode, "messages": n, "delivered": got,
        "complete": got >= n, "deliver_s": t_done - t0, "accept_s": accept_s,
        "rate": got / (t_done - t0) if got else 0.0, "accept_rate": n / accept_s,
        "server_cpu_s": cpu, "server_user_s": u1 - u0,
        "server_cpu_us_per_msg": cpu * 1e6 / got if got else None,
        "server_user_us_per_msg": (u1 - u0) * 1e6 / got if got else None,
        "dovecot_cpu_us_per_msg": (d1 - d0) * 1e6 / got if dove and got else None,
        "journal_cpu_us_per_msg": (j1 - j0) * 1e6 / got if bench.fs and got else None,
        "other_cpu_util": max(0.0, (m1 - m0 - cpu - (d1 - d0) - (j1 - j0)) / (t1 - t0)),
        "deferred": server.deferrals() - f0, "errors": errors[:3], "n_errors": len(errors),
    }
    (bench.results / f"{name}.json").write_text(json.dumps(r) + "\n")
    log(f"  {name}: {r['rate']:.0f} deliveries/s ({got}/{n} in {r['deliver_s']:.2f} s), "
        f"accepted {r['accept_rate']:.0f}/s, MTA {r['server_cpu_us_per_msg'] or 0:.0f} µs/msg"
        + (f", dovecot {r['dovecot_cpu_us_per_msg']:.0f} µs/msg" if dove and got else "")
        + (f", journal {r['journal_cpu_us_per_msg']:.0f} µs/msg" if bench.fs and got else "")
        + (f", {r['deferred']} deferred" if r["deferred"] else "")
        + (f", ERRORS {errors[:1]}" if errors else ""))
    return r


def summarize(runs):
    use = [r for r in runs if r["complete"] and not r["n_errors"]] or runs

    def med(key):
        v = [r[key] for r in use if r[key] is not None]
        return statistics.median(v) if v else None

    return {
        "rate": med("rate"), "runs": [r["rate"] for r in runs], "accept": med("accept_rate"),
        "us": med("server_cpu_us_per_msg"), "user_us": med("server_user_us_per_msg"),
        "dovecot_us": med("dovecot_cpu_us_per_msg"),
        "journal_us": med("journal_cpu_us_per_msg"),
        "other": med("other_cpu_util"),
        "problems": "; ".join(sorted({f"{r['delivered']}/{r['messages']} delivered"
                                      for r in runs if not r["complete"]}
                                     | {f"{r['deferred']} deferred" for r in runs if r["deferred"]}
                                     | {e for r in runs for e in r["errors"][:1]})),
    }


# ------------------------------------------------------------------ the bench


class LocalBench:
    def __init__(self, args):
        self.args = args
        self.servers_wanted = args.servers.split(",")
        self.modes = args.modes.split(",")
        self.repeats = args.repeats
        self.messages = args.messages
        self.sessions = args.sessions
        self.drain_timeout = args.drain_timeout
        self.quiet_wait = int(os.environ.get("QUIET_WAIT", "10"))
        self.user = "root"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.results = Path(args.out) if args.out else ROOT / "bench" / "results" / f"local-{stamp}"
        self.results.mkdir(parents=True, exist_ok=True)
        self.certs = self.results / "certs"
        # spools, queues and Maildirs on a disk (not a tmpfs: fsync must cost what it costs),
        # under a short path: unix sockets (ringmaild's, Postfix's, Dovecot's) live there
        self.fs, self.work = rb.scratch_dir(os.environ.get("WORK_DIR", "/var/tmp"),
                                            args.fs_image, "lb.")
        for d in self.work.parents:
            if d.stat().st_mode & 0o001 == 0:
                rb.die(f"{d} is not searchable by others: the users and Postfix must reach {self.work}")
        self.summary = self.results / "summary.md"
        self.summary.write_text("")
        self.configs, self.running = [], []
        self.users = None
        self.dovecot = None

    def out(self, text=""):
        print(text, flush=True)
        with open(self.summary, "a") as f:
            f.write(text + "\n")

    def note_config(self, what, yaml, cmd):
        if what not in [c[0] for c in self.configs]:
            self.configs.append((what, yaml, cmd))

    def maildirs(self, mode):
        if mode == "lmtp":
            return self.dovecot.maildirs()
        return [Path(pwd.getpwnam(u).pw_dir) / "Maildir" for u in self.users.names]

    def run(self):
        rb.make_certs(self.certs)
        self.users = Users(self.work / "home", self.args.users)
        table = []
        for mode in self.modes:
            if mode == "lmtp":
                self.dovecot = Dovecot(self.work / "dovecot", self.users.names, self.results,
                                       self.args.dovecot_cpus)
                self.running.append(self.dovecot)
                self.dovecot.start()
            ss = []
            if "ringmail" in self.servers_wanted:
                ss.append(LocalRingmail(self, mode))
                if os.environ.get("RINGMAILD_B"):
                    ss.append(LocalRingmail(self, mode, "build-b", os.environ["RINGMAILD_B"]))
            if "postfix" in self.servers_wanted:
                ss.append(LocalPostfix(self, mode))
            for s in ss:
                self.running.append(s)
                s.start()
            runs = {s.label: [] for s in ss}
            for i in range(self.repeats):
                for s in ss:
                    runs[s.label].append(measure(self, s, f"{mode}-{s.label}-r{i + 1}"))
            for s in ss:
                s.stop()
                self.running.remove(s)
            table.append(self.line(mode, {k: summarize(v) for k, v in runs.items()},
                                   [s.label for s in ss]))
        self.report(table, [s.label for s in ss])

    def line(self, mode, res, labels):
        row = [mode, len(next(iter(res.values()))["runs"])]
        for label in labels:
            r = res[label]
            row += [rb.fmt(r["rate"]), " / ".join(rb.fmt(x) for x in r["runs"]),
                    rb.fmt(r["accept"]), f"{rb.fmt(r['us'])} ({rb.fmt(r['user_us'])})",
                    rb.fmt(r["dovecot_us"]) if r["dovecot_us"] else "—"]
            if self.fs:
                row.append(rb.fmt(r["journal_us"]))
            row.append(r["problems"] or "ok")
        for x, y in rb.ratio_pairs(labels):
            row += rb.ratio_cells(res[x], res[y])
        row.append(rb.pct(max(r["other"] or 0 for r in res.values())))
        return row

    def report(self, table, labels):
        n = self.messages // self.args.users * self.args.users
        self.out(f"## Local delivery: smtp-source → MTA → Maildir ({n} messages of {MSG_SIZE} B,"
                 f" 1 recipient each, {self.args.users} users, {self.sessions} sessions per user,"
                 f" 1 message per connection; MTA on CPU {SERVER_CPUS}, smtp-source on CPU"
                 f" {CLIENT_CPUS}, Dovecot on CPU {self.args.dovecot_cpus})")
        self.out()
        self.out("deliveries/s = messages / (first connect .. last file in the Maildirs);"
                 " accepted/s = messages / (first connect .. smtp-source's exit); MTA CPU ="
                 " its cgroup's CPU until its queue is empty / messages (user: the user-space"
                 " part; the rest is the kernel's); Dovecot's CPU likewise (lmtp mode); median"
                 " of the runs.")
        if self.fs:
            self.out()
            self.out(self.fs.note())
        self.out()
        head = ["mode", "runs"]
        for label in labels:
            head += [f"{label} deliveries/s", "runs", "accepted/s", "MTA CPU µs/msg (user)",
                     "Dovecot CPU µs/msg"] + (["journal CPU µs/msg"] if self.fs else []) + ["check"]
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
        self.out(f"- source, one per user: `{' '.join(source_cmd('$PORT', self.sessions, '$N', '$USER@' + DOMAIN))}`")
        log(f"done: {self.summary}")

    def cleanup(self):
        for s in reversed(self.running):
            try:
                s.stop()
            except (OSError, subprocess.SubprocessError) as e:
                log(f"stopping {s}: {e}")
        self.running = []
        if self.users:
            self.users.remove()
        shutil.rmtree(self.work, ignore_errors=True)
        if self.fs:
            self.fs.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="ringmail,postfix", help="ringmail, postfix or both")
    ap.add_argument("--modes", default=",".join(MODES), help="maildir, lmtp or both")
    ap.add_argument("--daemon", help="the ringmaild to run (default build-bench/ringmaild, built)")
    ap.add_argument("--messages", type=int, default=2000, help="messages per run (default 2000)")
    ap.add_argument("--users", type=int, default=4, help="test users, one smtp-source each (4)")
    ap.add_argument("--sessions", type=int, default=4, help="smtp-source sessions per user (4)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode and MTA (default 3)")
    ap.add_argument("--max-agents", type=int,
                    help="ringmail's mailers.max_agents (default: not set, ringmail's 100)")
    ap.add_argument("--ringmail-yaml", action="append", metavar="TEXT",
                    help="YAML appended to ringmaild's configuration (top-level keys other than"
                    " mailers; \\n for new lines), e.g. 'delivery:\\n  destination_concurrency:"
                    " 100'; repeatable")
    ap.add_argument("--drain-timeout", type=float, default=rb.DRAIN_TIMEOUT,
                    help=f"seconds a run may take (default {rb.DRAIN_TIMEOUT})")
    ap.add_argument("--dovecot-cpus", default=CLIENT_CPUS,
                    help=f"the CPUs Dovecot may run on (default {CLIENT_CPUS}, beside smtp-source;"
                    " 0,1: anywhere, sharing the MTA's CPU with it as on a real mail server)")
    rb.add_fs_image_arg(ap, "the spools, queues, homes and Dovecot", "under $WORK_DIR")
    ap.add_argument("--out", help="results directory (default bench/results/local-<UTC stamp>)")
    args = ap.parse_args()
    wanted = set(args.servers.split(","))
    if not wanted or wanted - {"ringmail", "postfix"}:
        rb.die(f"--servers: ringmail and/or postfix, not {args.servers}")
    if set(args.modes.split(",")) - set(MODES):
        rb.die(f"--modes: maildir and/or lmtp, not {args.modes}")
    if os.geteuid() != 0:
        rb.die("run as root (useradd, Postfix's private instance, Dovecot, cgroups)")
    if "postfix" in wanted:
        subprocess.run(["bash", str(rb.POSTFIX_SH), "install"], check=True, stdout=sys.stderr)
    tools = [SMTP_SOURCE] + ([DOVECOT] if "lmtp" in args.modes else [])
    for tool in tools:
        if not os.access(tool, os.X_OK):
            rb.die(f"needs {tool}")
    if "ringmail" in wanted:
        if args.daemon:
            rb.DAEMON = Path(args.daemon).resolve()
        elif os.environ.get("BUILD", "1") != "0":
            log("building Release into build-bench/")
            rb.build()
        if not rb.DAEMON.exists():
            rb.die(f"no {rb.DAEMON}")
    # this process polls the Maildirs: keep it off the MTA's CPU
    os.sched_setaffinity(0, {int(c) for c in CLIENT_CPUS.split(",")})
    rb.run_to_end(LocalBench, args)


if __name__ == "__main__":
    main()
