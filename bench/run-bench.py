#!/usr/bin/env python3
"""bench/run-bench.py -- ringmail's benchmark runner (issue 5), optionally side by side with Postfix.

Builds Release into build-bench/ (unless BUILD=0), makes a CA and server certificates (RSA-2048,
ECDSA P-256, P-384, P-521) in the results directory, and runs ringmaild with two certificates at
once (each ECDSA one beside the RSA one: an SSL_CTX holds one certificate per key type), started
with --foreground and its log in a file, as in production. Sections:

  handshake  STARTTLS handshakes, TLS 1.3, full: groups {X25519, P-256, P-384, P-521, ffdhe2048}
             x certificates {ECDSA P-256, P-384, P-521, RSA-2048}
  tls12      TLS 1.2, full, the RSA-2048 certificate with every group
  resume     resumed handshakes: TLS 1.3 with every group (ECDSA P-256), TLS 1.2 RSA X25519
  messages   1 KiB messages, plain and STARTTLS, 1 and 20 per connection, 32 sessions
  access     the messages rows with a 100,000-entry access map against none
  milter     the plain messages rows with opendkim signing every message (ringmail's milters,
             Postfix's smtpd_milters), opendkim's own CPU counted apart
  breakdown  where a cheap handshake's fixed cost goes (X25519, ECDSA P-256 and RSA-2048): user
             and system CPU, system calls, io_uring operations, context switches and page
             faults per handshake at 1, 16 and 128 in flight, and the daemon without the
             certificate request, without tickets, with one certificate, with jemalloc or
             mimalloc (LD_PRELOAD), each beside the ceiling with the same TLS settings
  scaling    workers 1 and 2, concurrency 1, 16, 256, 1024: plain messages (1 per connection)
             and handshakes (X25519, ECDSA P-256)
  idle       memory of 10,000 idle plain sessions, then 2,000 idle TLS sessions on top

Every row: the rate (median of the repeats) and the server CPU per handshake or message, read
from the server's own accounting: a cgroup v1 cpuacct group per server, which counts every
thread (io_uring workers included) and every process it forks (Postfix's smtpd, cleanup, qmgr,
discard, tlsmgr), exited ones too; /proc/PID/stat of the process tree if cgroups are missing.
Beside each handshake row, bench/tls_ceiling's OpenSSL ceiling for that pair (OpenSSL's defaults,
and with the daemon's TLS settings: a certificate request and 1 ticket) and ringmail's share of
it. With --vs postfix a private Postfix (bench/postfix.sh) gets the same certificates and every
row runs against both, alternating A B A B; the ratios ringmail/Postfix are printed per row.

Pinning: with 1 worker the server runs on CPU 0 and the client on CPU 1; with 2 workers the
server gets CPUs 0,1 and the client shares them. Before each run the runner waits (QUIET_WAIT
seconds at most) for the rest of the machine to be quiet, and records "other CPU" during the run.
Progress goes to stderr; Markdown tables to stdout and results/<UTC stamp>/summary.md, with the
exact commands; every raw JSON and handshake-cpu.png go to bench/results/<UTC stamp>/.

Sections: breakdown is the handshakes' breakdown and the durable messages' ("hs-breakdown"
alone runs the first, "durable" alone the second: the spool's cost, without the handshakes).
Environment: BUILD=0 skips the build, QUIET_WAIT [30] seconds, RINGMAILD_B=PATH another
ringmaild for the breakdown and durable sections (a build of an earlier commit: before and
after in one run). Loopback only.
"""

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build-bench"
DAEMON = BUILD_DIR / "ringmaild"
LOAD = BUILD_DIR / "bench" / "smtp_load"
CEILING = BUILD_DIR / "bench" / "tls_ceiling"
POSTFIX_SH = ROOT / "bench" / "postfix.sh"
PLOT_GP = ROOT / "bench" / "plot.gp"
CGROUP_ROOT = Path("/sys/fs/cgroup/cpuacct")
HZ = os.sysconf("SC_CLK_TCK")
SECTIONS = ["handshake", "resume", "tls12", "breakdown", "hs-breakdown", "durable", "messages", "access", "milter",
            "scaling", "idle"]

GROUPS = ["X25519", "P-256", "P-384", "P-521", "ffdhe2048"]
CERTS = ["ECDSA-P256", "ECDSA-P384", "ECDSA-P521", "RSA-2048"]
# the name OpenSSL reports for a group the client asked for (SSL_group_to_name)
GROUP_NAMES = {
    "X25519": {"x25519"},
    "P-256": {"secp256r1", "prime256v1", "p-256"},
    "P-384": {"secp384r1", "p-384"},
    "P-521": {"secp521r1", "p-521"},
    "ffdhe2048": {"ffdhe2048"},
}
RSA_PSS = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512"
SIGALGS = {
    "ECDSA-P256": "ecdsa_secp256r1_sha256",
    "ECDSA-P384": "ecdsa_secp384r1_sha384",
    "ECDSA-P521": "ecdsa_secp521r1_sha512",
    "RSA-2048": RSA_PSS,
}
SIGALGS_TLS12_RSA = RSA_PSS + ":rsa_pkcs1_sha256"
# the daemon (certificate pair) that serves each certificate: the ECDSA one beside RSA-2048
PAIR_OF = {"ECDSA-P256": "p256", "ECDSA-P384": "p384", "ECDSA-P521": "p521", "RSA-2048": "p256"}
KEYS = {"p256": ["EC", "ec_paramgen_curve:P-256"], "p384": ["EC", "ec_paramgen_curve:P-384"],
        "p521": ["EC", "ec_paramgen_curve:P-521"], "rsa": ["RSA", "rsa_keygen_bits:2048"]}

HS_CONC = 16      # handshakes in flight per client thread
MSG_CONC = 32     # message sessions in flight
MSG_SIZE = 1024
ACCESS_ENTRIES = 100000  # the access section's map
IDLE_SOURCES = 50  # 127.0.0.2 .. 127.0.0.51
DRAIN_TIMEOUT = 300
DAEMON_TICKETS = 1  # TLS 1.3 tickets ringmaild sends per handshake (tls/tls_tickets.c)


def log(msg):
    print(f"run-bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


# ------------------------------------------------------------------ the machine


def machine_busy_s():
    """Non-idle CPU seconds of the whole machine so far (user nice system irq softirq steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ


def wait_quiet(max_wait):
    """Wait (at most max_wait s) until the machine uses under 10% of one CPU over a second."""
    for waited in range(max(1, max_wait)):
        b0 = machine_busy_s()
        time.sleep(1)
        busy = machine_busy_s() - b0
        if busy <= 0.1:
            return
    log(f"machine still busy ({busy * 100:.0f}% of a CPU) after {max_wait}s, measuring anyway;"
        " see the other CPU column")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def ncpu():
    return len(os.sched_getaffinity(0))


def pinning(workers):
    """(server CPUs, client CPUs, client threads) for a worker count."""
    if ncpu() < 2:
        return "0", "0", 1
    return ("0", "1", 1) if workers == 1 else ("0,1", "0,1", 2)


# ------------------------------------------------------------------ CPU accounting


def proc_stat(pid):
    """(utime, stime, cutime, cstime, ppid) in ticks, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14]), int(rest[1])


def proc_tree(root):
    """root and its live descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(d)
            if st:
                children.setdefault(st[4], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class FsImage:
    """A fresh ext4 file system with a journal (mkfs.ext4's defaults: ordered data) in an
    image file under `base`, loop-mounted for a benchmark's spools, queues and mailboxes.

    Why: a machine's own file system may not be what a mail server runs on (this one's root
    is ext4 *without* a journal, where every file creation scans the inode bitmap past the
    inodes deleted in the last minutes: the cost grows with the churn of earlier runs). The
    journal's commits run in the kernel thread jbd2/<loop>-8, outside every server's
    cgroup: journal_cpu_s() reads its CPU so a report can show it beside the servers'."""

    def __init__(self, base: Path, size_gib: int):
        self.dir = Path(tempfile.mkdtemp(prefix="fs.", dir=base))
        self.dir.chmod(0o755)
        self.image = self.dir / "ext4.img"
        self.mnt = self.dir / "mnt"
        self.mnt.mkdir()
        try:
            with open(self.image, "wb") as f:
                f.truncate(size_gib << 30)
            run(["mkfs.ext4", "-q", "-F", self.image], stdout=subprocess.DEVNULL)
            run(["mount", "-o", "loop", self.image, self.mnt])
            self.mnt.chmod(0o755)
            dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.mnt)], check=True,
                                 capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as e:
            self.remove()
            die(f"--fs-image: cannot make and mount {self.image}: {e}")
        self.device = Path(dev).name
        self.journal_pid = next((int(d) for d in os.listdir("/proc") if d.isdigit()
                                 and _comm(d) == f"jbd2/{self.device}-8"), None)
        if self.journal_pid is None:
            self.remove()
            die(f"--fs-image: {self.mnt} ({dev}) has no journal thread jbd2/{self.device}-8")

    def note(self):
        """The paragraph a report prints about where its files were."""
        return (f"File system: a fresh ext4 with a journal (`mkfs.ext4` defaults, data=ordered),"
                f" loop-mounted from a {self.image.stat().st_size >> 30} GiB image on the"
                " machine's disk, holding every spool, queue and mailbox. Journal CPU = its jbd2"
                " thread's CPU during the run / messages: the journal's commits for whichever"
                " server ran, outside that server's own figure; the loop device's I/O workers"
                " are counted nowhere, for either server.")

    def journal_cpu_s(self):
        st = proc_stat(self.journal_pid)
        return (st[0] + st[1]) / HZ if st else 0.0

    def remove(self):
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", str(self.mnt)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def journal_cpu_s(fs):
    """The journal thread's CPU so far (seconds); 0 without --fs-image."""
    return fs.journal_cpu_s() if fs else 0.0


def scratch_dir(base, fs_image_gib, prefix):
    """(the FsImage, or None without --fs-image; a new 0755 directory named prefix* on it, or
    under base without one)."""
    fs = FsImage(Path(base), fs_image_gib) if fs_image_gib else None
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=fs.mnt if fs else base))
    work.chmod(0o755)
    return fs, work


def add_fs_image_arg(ap, what, where):
    ap.add_argument("--fs-image", type=int, metavar="GIB",
                    help=f"put {what} on a fresh ext4 with a journal, loop-mounted from an image of"
                    f" GIB GiB {where} (its journal thread's CPU in a column of its own)")


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class Accounting:
    """The CPU time of one server: every thread and every process it forked, exited ones too.

    cgroup v1 cpuacct when the machine has it; else /proc: utime+stime of the live process tree
    plus cutime+cstime (children already reaped) of each of its processes."""

    def __init__(self, name):
        self.root_pid = None
        self.cg = CGROUP_ROOT / f"ringmail-bench-{os.getpid()}-{name}"
        try:
            self.cg.mkdir()
        except OSError:
            self.cg = None

    def join(self):
        """preexec_fn: the child enters the group before it execs the server."""
        if self.cg:
            (self.cg / "cgroup.procs").write_text(str(os.getpid()))

    def read(self):
        """(total, user) CPU seconds so far."""
        if self.cg:
            total = int((self.cg / "cpuacct.usage").read_text()) / 1e9
            user = int((self.cg / "cpuacct.usage_user").read_text()) / 1e9
            return total, user
        total = user = 0
        for p in proc_tree(self.root_pid):
            st = proc_stat(p)
            if st:
                total += sum(st[:4])
                user += st[0] + st[2]
        return total / HZ, user / HZ

    def remove(self):
        if not self.cg:
            return
        for _ in range(50):
            pids = (self.cg / "cgroup.procs").read_text().split()
            for p in pids:
                try:
                    (CGROUP_ROOT / "cgroup.procs").write_text(p)
                except OSError:
                    pass
            try:
                self.cg.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        log(f"could not remove {self.cg}")


# ------------------------------------------------------------------ certificates


def make_certs(d):
    """A CA and the four server certificates. Per key K: K.key, K.chain.pem (leaf then CA: what
    ringmaild and tls_ceiling load) and K.pf.pem (key, leaf, CA: a Postfix chain file)."""
    d.mkdir(parents=True, exist_ok=True)
    q = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "30", "-subj", "/CN=ringmail bench CA", "-keyout", d / "ca.key", "-out", d / "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], **q)
    ext = d / "server.ext"
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:bench.test\n"
                   "extendedKeyUsage=serverAuth\n")
    for name, (alg, opt) in KEYS.items():
        run(["openssl", "genpkey", "-algorithm", alg, "-pkeyopt", opt, "-out", d / f"{name}.key"], **q)
        run(["openssl", "req", "-new", "-key", d / f"{name}.key", "-subj", "/CN=bench.test",
             "-out", d / f"{name}.csr"], **q)
        run(["openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30", "-extfile", ext,
             "-out", d / f"{name}.crt"], **q)
        leaf, ca = (d / f"{name}.crt").read_text(), (d / "ca.pem").read_text()
        (d / f"{name}.chain.pem").write_text(leaf + ca)
        (d / f"{name}.pf.pem").write_text((d / f"{name}.key").read_text() + leaf + ca)
        (d / f"{name}.csr").unlink()


# ------------------------------------------------------------------ servers


class Ringmail:
    def __init__(self, bench, pair, workers, access=None, extra=(), milter=None, tls=(), one_cert=False,
                 env=None, label="ringmail", daemon=None, spool_base=None):
        self.bench, self.pair, self.workers = bench, pair, workers
        self.cpus = pinning(workers)[0]
        self.proc = None
        self.label = label
        # the breakdown section's variants: more tls: keys, the ECDSA certificate alone, an
        # environment (LD_PRELOAD of another allocator)
        self.tls, self.one_cert, self.env = list(tls), one_cert, env or {}
        self.daemon = Path(daemon) if daemon else DAEMON
        # the breakdown's messages: the spool on another file system (tmpfs: no disk)
        self.spool_base, self.spool_dir = spool_base, None
        # the milter section: every message through this filter (an OpenDKIM)
        self.filter = milter
        self.filter_acct = milter.acct if milter else None
        # the access section: an access map (and recipient checks) on this daemon
        self.access = access
        self.extra = list(extra)
        if access:
            self.label = "ringmail+access"
            self.extra += [f"maps: {{access: {access}}}"]
        if milter:
            self.extra += [f'milters: [{{name: opendkim, socket: "local:{milter.sock}", '
                           'on_fail: tempfail}]']

    def config(self, port, spool):
        certs = self.bench.certs
        return "\n".join(self.extra + [
            "hostname: bench.test",
            "listen:",
            "  - name: bench",
            "    address: 127.0.0.1",
            f"    port: {port}",
            f"workers: {self.workers}",
            f"run_as: {self.bench.user}",
            f"spool: {spool}",
            "local_domains: [bench.test]",
            # user@bench.test is no user of this machine (it would be refused at RCPT):
            # LUSER_RELAY takes it, as the integration tests do, to a port where nothing
            # listens, tried once an hour, so every message is accepted and none delivered
            # during the runs (each costs one refused connection and its queue file update)
            "routing: {" + ", ".join(f'{k}: "{v}"' for k, v in self.routing().items()) + "}",
            "queue: {minimal_backoff: 1h, maximal_backoff: 2h, interval: 1h}",
            "limits:",
            "  connections: 20000",
            "  connections_per_client: 0",
            # no DNS at all, as bench/postfix.sh's instance (smtpd_peername_lookup = no):
            # no client name lookups, no sender domain check
            "dns:",
            "  peername_lookup: false",
            "features:",
            "  accept_unresolvable_domains: true",
            # the access section's recipients walk the To: checks too
            f"  blocklist_recipients: {'true' if self.access else 'false'}",
            "tls:"] + [f"  {t}" for t in self.tls] + [
            "  certificates:",
            f"    - {{cert: {certs / (self.pair + '.chain.pem')}, key: {certs / (self.pair + '.key')}}}"]
            + ([] if self.one_cert else [f"    - {{cert: {certs / 'rsa.chain.pem'}, key: {certs / 'rsa.key'}}}"])
            + [""])

    @staticmethod
    def routing():
        """The routing: map (a subclass adds to it)."""
        return {"luser_relay": "[127.0.0.1]:9"}

    def start(self):
        b = self.bench
        name = (f"{self.label}-{self.pair}-w{self.workers}" + ("-access" if self.access else "")
                + ("-milter" if self.filter else ""))
        self.acct = Accounting(name)
        self.port = free_port()
        d = Path(tempfile.mkdtemp(prefix=name + ".", dir=b.work))
        if self.spool_base:
            self.spool_dir = Path(tempfile.mkdtemp(prefix=name + ".", dir=self.spool_base))
        cfg = d / "ringmail.yaml"
        self.spool = (self.spool_dir or d) / "spool"
        cfg.write_text(self.config(self.port, self.spool))
        b.note_config(f"ringmaild ({self.label}), ECDSA {self.pair}"
                      + ("" if self.one_cert else " + RSA-2048") + f", workers {self.workers}"
                      + (f", access map {self.access.name}" if self.access else "")
                      + (", opendkim" if self.filter else ""),
                      self.config("$PORT", "$SPOOL"),
                      "".join(f"{k}={v} " for k, v in self.env.items())
                      + f"taskset -c {self.cpus} {os.path.relpath(self.daemon, ROOT)} --config ringmail.yaml "
                      "--foreground 2>>daemon.log")
        self.log_path = d / "daemon.log"
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cpus, str(self.daemon), "--config", str(cfg), "--foreground"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, preexec_fn=self.acct.join,
                env={**os.environ, **self.env})
        self.acct.root_pid = self.proc.pid
        for _ in range(100):
            if port_answers(self.port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        die(f"ringmaild did not listen on 127.0.0.1:{self.port}:\n"
            + self.log_path.read_text()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.acct.remove()
        if self.spool_dir:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def restart_empty(self):
        """Stopped, its spool removed with every message in it, started again: Postfix's
        queue is empty when a run starts (it delivered the last run's mail to discard), and
        ringmaild's, whose messages here wait an hour for their next attempt, is too."""
        self.stop()
        shutil.rmtree(self.spool, ignore_errors=True)
        self.start()

    def drain(self):
        """Nothing to wait for: every message here was tried once at once and waits an
        hour for the next attempt (routing above)."""
        return 0.0

    def memory(self):
        """(VmRSS KiB, RssAnon KiB, processes), summed over the privileged parent and the
        engine."""
        rss = anon = n = 0
        for pid in proc_tree(self.proc.pid):
            st = {}
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        st[k] = v.split()[0] if v.split() else "0"
            except FileNotFoundError:
                continue
            rss += int(st["VmRSS"])
            anon += int(st["RssAnon"])
            n += 1
        return rss, anon, n


class Postfix:
    label = "Postfix"

    def __init__(self, bench, pair, workers, process_limit=None, milter=None):
        self.bench, self.pair, self.workers = bench, pair, workers
        self.cpus = pinning(workers)[0]
        self.process_limit = process_limit
        self.dir = None
        self.filter = milter
        self.filter_acct = milter.acct if milter else None

    def sh(self, *args, **kw):
        return subprocess.run(["bash", str(POSTFIX_SH), *[str(a) for a in args]], check=True,
                              stdout=subprocess.PIPE, text=True, **kw).stdout.strip()

    def start(self):
        b = self.bench
        name = (f"postfix-{self.pair}-w{self.workers}"
                + (f"-pl{self.process_limit}" if self.process_limit else "")
                + ("-milter" if self.filter else ""))
        self.acct = Accounting(name)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=name + ".", dir=b.work))
        self.dir.chmod(0o755)  # Postfix's own users reach its directories through this one
        chains = [b.certs / f"{self.pair}.pf.pem", b.certs / "rsa.pf.pem"]
        env = dict(os.environ)
        if self.process_limit:
            env["POSTFIX_PROCESS_LIMIT"] = str(self.process_limit)
        if self.filter:
            env["POSTFIX_MILTER"] = f"unix:{self.filter.sock}"
        cmd = ["taskset", "-c", self.cpus, "bash", str(POSTFIX_SH), "start", str(self.dir), str(self.port),
               *[str(c) for c in chains]]
        b.note_config(f"Postfix, ECDSA {self.pair} + RSA-2048, CPUs {self.cpus}"
                      + (f", POSTFIX_PROCESS_LIMIT={self.process_limit}" if self.process_limit else "")
                      + (f", POSTFIX_MILTER=unix:{self.filter.sock}" if self.filter else ""),
                      None, " ".join(cmd).replace(str(ROOT) + "/", "").replace(str(self.dir), "$DIR")
                      .replace(str(self.port), "$PORT"))
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True,
                             preexec_fn=self.acct.join).stdout.split()
        self.acct.root_pid = int(out[-1])
        for _ in range(300):
            if port_answers(self.port):
                return
            time.sleep(0.1)
        die(f"Postfix did not listen on 127.0.0.1:{self.port}")

    def stop(self):
        if self.dir:
            self.sh("stop", self.dir)
            self.dir = None
        self.acct.remove()

    def queued(self):
        return int(self.sh("queued", self.dir) or 0)

    def delivered(self):
        return int(self.sh("delivered", self.dir) or 0)

    def drain(self):
        """Wait until Postfix has delivered (to discard) what it accepted; seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < DRAIN_TIMEOUT:
            if self.queued() == 0:
                return time.monotonic() - t0
            time.sleep(0.2)
        log(f"Postfix queue not empty after {DRAIN_TIMEOUT}s")
        return time.monotonic() - t0

    def memory(self):
        """(PSS KiB, RSS KiB, processes) of the whole instance."""
        pss, rss, n = self.sh("mem", self.dir).split()
        return int(pss), int(rss), int(n)


class OpenDKIM:
    """Debian's opendkim signing every message (From: bench@client.test, RSA-2048, relaxed/
    simple) on a unix socket both servers reach, pinned to the client's CPU, its CPU in a group
    of its own so the rows count it apart from the server's."""

    label = "opendkim"

    def __init__(self, bench):
        self.bench = bench
        self.dir = Path(tempfile.mkdtemp(prefix="opendkim.", dir=bench.work))
        self.dir.chmod(0o755)  # Postfix's smtpd (user postfix) connects to the socket
        self.sock = self.dir / "opendkim.sock"
        self.acct = Accounting("opendkim")
        self.proc = None

    def start(self):
        exe = shutil.which("opendkim", path="/usr/sbin:/usr/bin")
        genkey = shutil.which("opendkim-genkey", path="/usr/sbin:/usr/bin")
        if not exe or not genkey:
            die("the milter section needs opendkim and opendkim-tools (apt-get install)")
        subprocess.run([genkey, "-D", str(self.dir), "-d", "client.test", "-s", "bench", "-b", "2048"],
                       check=True)
        conf = self.dir / "opendkim.conf"
        conf.write_text(f"Socket local:{self.sock}\nUMask 000\nMode s\nDomain client.test\n"
                        f"Selector bench\nKeyFile {self.dir / 'bench.private'}\n"
                        "Canonicalization relaxed/simple\nSyslog no\nRequireSafeKeys no\n"
                        f"PidFile {self.dir / 'opendkim.pid'}\n")
        ccpus = pinning(1)[1]
        self.bench.note_config("opendkim (the milter section's filter)", conf.read_text(),
                               f"taskset -c {ccpus} opendkim -f -x opendkim.conf")
        self.proc = subprocess.Popen(["taskset", "-c", ccpus, exe, "-f", "-x", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=self.acct.join)
        self.acct.root_pid = self.proc.pid
        for _ in range(100):
            if self.sock.exists():
                return
            time.sleep(0.1)
        die("opendkim did not make its socket")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc = None
        self.acct.remove()


# ------------------------------------------------------------------ one load run


def load_cmd(server, kind, spec, duration, conc, threads, label):
    """smtp_load's command line for a handshake or message run."""
    cmd = [LOAD, "-s", f"127.0.0.1:{server.port}", "-t", threads, "-c", conc, "-d", duration,
           "--timeout", 30, "--label", label, "-q"]
    if conc >= 256:
        cmd += ["--sources", IDLE_SOURCES]
    if kind == "hs":
        cmd += ["-M", "handshake", "--drain", 2, "--max-time", duration + 60, "--tls", spec["tls"],
                "--groups", spec["group"], "--sigalgs", spec["sigalgs"]]
        if spec.get("resume"):
            cmd.append("--resume")
    else:
        cmd += ["-M", "msg", "-m", spec["per_conn"], "-S", MSG_SIZE, "--drain", 5,
                "--max-time", duration + 120, "-r", "user@bench.test"]
        if spec.get("starttls"):
            cmd.append("--starttls")
    return [str(c) for c in cmd]


# what the breakdown section counts per handshake with perf stat: system calls, io_uring
# operations, context switches, page faults (tracepoints and software events: a virtual
# machine without a PMU counts these, not cycles or cache misses)
PERF_EVENTS = ["raw_syscalls:sys_enter", "io_uring:io_uring_submit_req", "context-switches", "page-faults"]


class PerfCount:
    """perf stat attached to a server's processes (the threads they have when it starts) for
    the length of one run."""

    def __init__(self, server, out):
        self.out = out
        pids = ",".join(str(p) for p in proc_tree(server.acct.root_pid))
        self.proc = subprocess.Popen(["perf", "stat", "-x", ",", "-o", str(out), "-e", ",".join(PERF_EVENTS),
                                      "-p", pids], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached before the load starts

    def stop(self):
        """{event: count}."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        counts = {}
        for line in self.out.read_text().splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].strip().isdigit():
                counts[f[2]] = int(f[0])
        return counts


def measure(bench, server, kind, spec, duration, conc, workers, name, events=False):
    """One run against a running server: the client's JSON plus the server's CPU over the window
    and (Postfix) the drain of its queue; with events, PERF_EVENTS per unit. Written to
    results/<name>.json."""
    _, ccpus, threads = pinning(workers)
    cmd = load_cmd(server, kind, spec, duration, conc * (threads if kind == "hs" else 1), threads, name)
    bench.note_cmd(server.label, ["taskset", "-c", ccpus] + cmd, server.port)
    wait_quiet(bench.quiet_wait)
    delivered0 = server.delivered() if isinstance(server, Postfix) and kind == "msg" else None
    c0, u0 = server.acct.read()
    f0 = server.filter_acct.read()[0] if getattr(server, "filter_acct", None) else 0.0
    j0 = journal_cpu_s(bench.fs)
    perf = PerfCount(server, bench.results / f"{name}.perf") if events and shutil.which("perf") else None
    m0, t0 = machine_busy_s(), time.monotonic()
    p = subprocess.run(["taskset", "-c", ccpus] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    counts = perf.stop() if perf else {}
    drain_s = server.drain() if kind == "msg" else 0.0
    c1, u1 = server.acct.read()
    f1 = server.filter_acct.read()[0] if getattr(server, "filter_acct", None) else 0.0
    j1 = journal_cpu_s(bench.fs)
    m1, t1 = machine_busy_s(), time.monotonic()
    try:
        r = json.loads(p.stdout.splitlines()[0])
    except (IndexError, json.JSONDecodeError):
        die(f"smtp_load gave no result ({' '.join(cmd)}): {p.stderr[-500:]}")
    cpu = c1 - c0
    client = r["client_cpu_s"]["user"] + r["client_cpu_s"]["sys"]
    count = r["tls"]["handshakes"] if kind == "hs" else r["messages"]
    r.update({
        "server": server.label, "workers": workers, "server_cpus": server.cpus, "client_cpus": ccpus,
        "server_cpu_s": cpu, "server_user_s": u1 - u0, "drain_s": drain_s,
        "server_cpu_util": cpu / (t1 - t0),
        "other_cpu_util": max(0.0, (m1 - m0 - cpu - client - (f1 - f0) - (j1 - j0)) / (t1 - t0)),
        "journal_cpu_us_per_unit": (j1 - j0) * 1e6 / count if count and bench.fs else None,
        "filter_cpu_us_per_unit": (f1 - f0) * 1e6 / count if count and f1 > f0 else None,
        "server_cpu_us_per_unit": cpu * 1e6 / count if count else None,
        "server_user_us_per_unit": (u1 - u0) * 1e6 / count if count else None,
        "events_per_unit": {k: v / count for k, v in counts.items()} if count else {},
        "rate": r["tls"]["handshakes_per_s"] if kind == "hs" else r["msgs_per_s"],
        "want": spec, "accounting": "cgroup cpuacct" if server.acct.cg else "/proc process tree",
    })
    if delivered0 is not None:
        r["postfix_delivered"] = server.delivered() - delivered0
    (bench.results / f"{name}.json").write_text(json.dumps(r) + "\n")
    us = r["server_cpu_us_per_unit"]
    log(f"  {name}: {r['rate']:.0f}/s, server {us or 0:.0f} us/{'hs' if kind == 'hs' else 'msg'},"
        f" errors {r['errors_total']}" + (f", drain {drain_s:.1f}s" if drain_s else ""))
    return r


def check_run(r, spec):
    """'' when every handshake negotiated what the row asks, else what went wrong."""
    problems = []
    if r["errors_total"]:
        problems.append("errors: " + ", ".join(f"{k} {v}" for k, v in r["errors"].items() if v))
    if "group" in spec and r.get("tls"):
        want_v = "TLSv" + spec["tls"]
        groups = set(GROUP_NAMES[spec["group"]])
        if spec["tls"] == "1.2" and spec.get("resume"):
            groups.add("none")  # an abbreviated TLS 1.2 handshake exchanges no key
        for n in r["tls"]["negotiated"]:
            if (n["group"].lower() not in groups or n["cert"] != spec["cert"]
                    or n["version"] != want_v):
                problems.append(f"negotiated {n['group']} {n['cert']} {n['version']} x{n['n']}")
    return "; ".join(problems)


def summarize(runs, spec):
    """The median figures of a row's repeats."""
    rates = [r["rate"] for r in runs]
    units = [r["server_cpu_us_per_unit"] for r in runs if r["server_cpu_us_per_unit"] is not None]
    mid = sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]
    hs = sum(r["tls"]["handshakes"] for r in runs if r.get("tls"))
    resumed = sum(r["tls"]["resumed"] for r in runs if r.get("tls"))
    problems = sorted({p for r in runs for p in [check_run(r, spec)] if p})
    return {
        "rate": statistics.median(rates), "runs": rates,
        "us": statistics.median(units) if units else None,
        "user_us": statistics.median([r["server_user_us_per_unit"] for r in runs
                                      if r.get("server_user_us_per_unit") is not None] or [0]) or None,
        "events": {k: statistics.median(r["events_per_unit"].get(k, 0) for r in runs)
                   for k in sorted({k for r in runs for k in r.get("events_per_unit", {})})},
        "filter_us": statistics.median([r["filter_cpu_us_per_unit"] for r in runs
                                        if r.get("filter_cpu_us_per_unit")] or [0]) or None,
        "journal_us": statistics.median([r["journal_cpu_us_per_unit"] for r in runs
                                         if r.get("journal_cpu_us_per_unit") is not None] or [0]),
        "util": statistics.median(r["server_cpu_util"] for r in runs),
        "client": mid["client_cpu_util"], "bound": any(r["client_bound"] for r in runs),
        "other": statistics.median(r["other_cpu_util"] for r in runs),
        "p50": mid["latency_us"]["p50"] / 1000, "p99": mid["latency_us"]["p99"] / 1000,
        "hs": hs, "resumed": resumed, "count": sum(r["messages"] for r in runs),
        "drain": statistics.median(r["drain_s"] for r in runs),
        "delivered": sum(r.get("postfix_delivered", 0) for r in runs),
        "problems": "; ".join(problems),
        "works": any(r["rate"] > 0 for r in runs),
    }


# ------------------------------------------------------------------ the OpenSSL ceiling


# the daemon's TLS settings (tls_ceiling's arguments for them): a certificate request to every
# client, DAEMON_TICKETS ticket(s), the ECDSA certificate beside the RSA one
DAEMON_TLS = {"request": True, "tickets": DAEMON_TICKETS, "one_cert": False}


def ceiling(bench, spec, daemon_settings, tag=""):
    """bench/tls_ceiling for the row's pair, pinned to the server's CPU: (us per handshake, note).
    daemon_settings: False for OpenSSL's defaults, True for DAEMON_TLS, or a dict like it."""
    if not CEILING.exists():
        return None, "no tls_ceiling"
    settings = DAEMON_TLS if daemon_settings is True else daemon_settings
    c = bench.certs
    pair = PAIR_OF[spec["cert"]]
    # the daemon's pair; a TLS 1.2 row is the RSA certificate alone (tls_ceiling refuses an
    # ECDSA certificate whose curve the client does not offer, RFC 8422)
    pairs = [] if spec["tls"] == "1.2" else ["--cert", c / f"{pair}.chain.pem", "--key", c / f"{pair}.key"]
    if not (settings and settings["one_cert"]) or not pairs:
        pairs += ["--cert", c / "rsa.chain.pem", "--key", c / "rsa.key"]
    cmd = ["taskset", "-c", "0", str(CEILING), *[str(x) for x in pairs],
           "--groups", spec["group"], "--sigalgs", spec["sigalgs"], "--tls", spec["tls"],
           "-d", str(bench.ceiling_duration), "-q"]
    if spec.get("resume"):
        cmd.append("--resume")
    if settings:
        cmd += (["--request-client-cert"] if settings["request"] else []) + ["--tickets", str(settings["tickets"])]
    bench.note_cmd("tls_ceiling", cmd, None)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = f"ceiling-{row_id(spec)}" + ("-settings" if daemon_settings else "") + tag
    (bench.results / f"{name}.json").write_text(p.stdout)
    try:
        r = json.loads(p.stdout.strip().splitlines()[0])
    except (IndexError, json.JSONDecodeError):
        r = None
    if p.returncode != 0 or not r:
        why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        return (r or {}).get("server_cpu_us_per_hs"), f"fails: {why[:120]}"
    return r["server_cpu_us_per_hs"], ""


# ------------------------------------------------------------------ rows


def row_id(spec):
    if "group" in spec:
        return (f"hs-tls{spec['tls']}-{spec['group']}-{spec['cert']}"
                + ("-resumed" if spec.get("resume") else ""))
    return f"msg-{'tls' if spec.get('starttls') else 'plain'}-m{spec['per_conn']}"


def hs_spec(group, cert, tls="1.3", resume=False):
    sig = SIGALGS_TLS12_RSA if (tls == "1.2" and cert == "RSA-2048") else SIGALGS[cert]
    return {"group": group, "cert": cert, "tls": tls, "resume": resume, "sigalgs": sig}


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def ratio_pairs(labels):
    """Which servers' rates and CPU to compare: each ringmaild against Postfix when it ran,
    else the first server against the second (relay-bench, local-bench)."""
    if "Postfix" in labels:
        return [(x, "Postfix") for x in labels if x != "Postfix"]
    return [(labels[0], labels[1])] if len(labels) == 2 else []


def ratio_cells(a, b):
    """a's rate over b's, and b's CPU per unit over a's, from two summaries."""
    return [f"{a['rate'] / b['rate']:.2f}" if a["rate"] and b["rate"] else "—",
            f"{b['us'] / a['us']:.2f}" if a["us"] and b["us"] else "—"]


def pct(v):
    return f"{v * 100:.0f}%"


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.vs_postfix = args.vs == "postfix"
        self.duration = args.duration or (1 if args.quick else 5)
        self.repeats = args.repeats or (1 if args.quick else 3)
        self.scale_repeats = 1
        self.ceiling_duration = 1 if args.quick else 3
        self.quiet_wait = int(os.environ.get("QUIET_WAIT", "30"))
        self.sections = args.sections.split(",")
        self.workers = [int(w) for w in args.workers.split(",")]
        self.user = subprocess.run(["id", "-un"], stdout=subprocess.PIPE, text=True).stdout.strip()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.results = Path(args.out) if args.out else ROOT / "bench" / "results" / stamp
        self.results.mkdir(parents=True, exist_ok=True)
        self.certs = self.results / "certs"
        self.fs, self.work = scratch_dir(BUILD_DIR, args.fs_image, "bench-run.")
        self.summary = self.results / "summary.md"
        self.summary.write_text("")
        self.configs, self.cmds, self.running = [], [], []
        self.plot_rows = {}
        # the breakdown's "build-b": another ringmaild beside this one, run by run
        self.other_build = os.environ.get("RINGMAILD_B")

    # -------------------------------------------------------------- output

    def out(self, text=""):
        print(text, flush=True)
        with open(self.summary, "a") as f:
            f.write(text + "\n")

    def section(self, title, intro, head, rows):
        for text in (title, intro, md_table(head, rows)):
            self.out(text)
            self.out()

    def note_config(self, what, yaml, cmd):
        if what not in [c[0] for c in self.configs]:
            self.configs.append((what, yaml, cmd))

    def note_cmd(self, who, cmd, port):
        text = " ".join(str(c) for c in cmd).replace(str(ROOT) + "/", "").replace(str(self.results), "$RESULTS")
        if port:
            text = text.replace(f"127.0.0.1:{port}", "127.0.0.1:$PORT")
        text = f"{who}: {text}"
        if text not in self.cmds:
            self.cmds.append(text)

    # -------------------------------------------------------------- servers

    def servers(self, pair, workers, process_limit=None):
        """Start ringmaild (and Postfix) for a block of rows."""
        ss = [Ringmail(self, pair, workers)]
        if self.vs_postfix:
            ss.append(Postfix(self, pair, workers, process_limit))
        for s in ss:
            self.running.append(s)
            s.start()
        return ss

    def stop(self, ss):
        for s in ss:
            s.stop()
            self.running.remove(s)

    def alternate(self, ss, kind, spec, conc, workers, repeats, name, events=False, between=None,
                  empty_queue=False):
        """Repeat i: ringmail, then Postfix (A B A B); events: perf counts for ringmaild;
        between(i) after each repeat; empty_queue: every ringmaild run starts on an empty
        spool (Ringmail.restart_empty). {label: [runs]}."""
        runs = {s.label: [] for s in ss}
        for i in range(repeats):
            for s in ss:
                if empty_queue and isinstance(s, Ringmail):
                    s.restart_empty()
                runs[s.label].append(measure(self, s, kind, spec, self.duration, conc, workers,
                                             f"{s.label}-{name}-r{i + 1}",
                                             events and isinstance(s, Ringmail)))
            if between:
                between(i)
        return runs

    # -------------------------------------------------------------- handshakes

    def handshake_rows(self):
        """(pair, [specs]) blocks: both servers stay up for the rows of one certificate pair."""
        q = self.quick
        blocks = {"p256": [], "p384": [], "p521": []}
        if "handshake" in self.sections:
            groups = ["X25519", "P-256", "ffdhe2048"] if q else GROUPS
            for cert in CERTS:
                for g in (["X25519"] if q and cert != "ECDSA-P256" else groups):
                    blocks[PAIR_OF[cert]].append(hs_spec(g, cert))
        if "tls12" in self.sections:
            for g in (["X25519", "ffdhe2048"] if q else GROUPS):
                blocks["p256"].append(hs_spec(g, "RSA-2048", "1.2"))
        if "resume" in self.sections:
            for g in (["X25519"] if q else GROUPS):
                blocks["p256"].append(hs_spec(g, "ECDSA-P256", "1.3", True))
            blocks["p256"].append(hs_spec("X25519", "RSA-2048", "1.2", True))
        return [(pair, specs) for pair, specs in blocks.items() if specs]

    def handshakes(self):
        rows = []
        for pair, specs in self.handshake_rows():
            log(f"handshakes: ECDSA {pair} + RSA-2048 daemon(s), {len(specs)} rows")
            ss = self.servers(pair, 1)
            try:
                for spec in specs:
                    runs = self.alternate(ss, "hs", spec, HS_CONC, 1, self.repeats, row_id(spec))
                    rows.append((spec, {k: summarize(v, spec) for k, v in runs.items()}))
            finally:
                self.stop(ss)
        log("handshakes: the OpenSSL ceiling")
        table = []
        for spec, res in rows:
            wait_quiet(self.quiet_wait)
            ceil, ceil_note = ceiling(self, spec, False)
            ceil2, ceil2_note = ceiling(self, spec, True)
            table.append(self.hs_line(spec, res, (ceil, ceil_note), (ceil2, ceil2_note)))
            if spec["tls"] == "1.3" and not spec["resume"]:
                pf = res.get("Postfix")
                self.plot_rows[f"{spec['group']}/{spec['cert']}"] = [
                    res["ringmail"]["us"], pf["us"] if pf and pf["works"] else None, ceil]
        head = ["TLS", "group", "certificate", "resumption", "ringmail hs/s (median)", "runs",
                "server CPU µs/hs (median)", "server CPU", "client CPU", "p50 ms", "p99 ms",
                "resumed", "check", "ceiling µs (OpenSSL defaults)", "vs ceiling",
                "ceiling µs (daemon's TLS settings)", "vs that ceiling"]
        if self.vs_postfix:
            head += ["Postfix hs/s", "Postfix µs/hs", "Postfix check", "rate ringmail/Postfix",
                     "CPU Postfix/ringmail"]
        head.append("other CPU")
        self.section("## STARTTLS handshakes (1 worker: server CPU 0, client CPU 1)",
                     f"{HS_CONC} handshakes in flight, {self.duration} s per run, median of {self.repeats}"
                     " runs (server CPU µs per handshake: median of the runs' server CPU / handshakes)."
                     " 'vs ceiling': ringmail's µs / the ceiling's (and the ceiling's share of"
                     " ringmail's, 100% = as cheap as OpenSSL alone). The daemon's TLS settings: a"
                     f" certificate request to every client and {DAEMON_TICKETS} session ticket(s).",
                     head, table)

    def hs_line(self, spec, res, ceil, ceil2):
        rm = res["ringmail"]

        def vs(c):
            us, note = c
            if note:
                return note
            if not rm["us"] or not us:
                return "-"
            return f"{rm['us'] / us:.2f}x ({us / rm['us'] * 100:.0f}% of ceiling)"

        line = [spec["tls"], spec["group"], spec["cert"], "resumed" if spec["resume"] else "full",
                fmt(rm["rate"]), ", ".join(fmt(x) for x in rm["runs"]), fmt(rm["us"]), pct(rm["util"]),
                pct(rm["client"]) + (" (bound)" if rm["bound"] else ""), fmt(rm["p50"], 2), fmt(rm["p99"], 2),
                f"{rm['resumed']} of {rm['hs']}", rm["problems"] or "ok",
                fmt(ceil[0]) if not ceil[1] else "-", vs(ceil), fmt(ceil2[0]) if not ceil2[1] else "-", vs(ceil2)]
        if self.vs_postfix:
            pf = res["Postfix"]
            if not pf["works"]:
                line += ["fails: " + (pf["problems"] or "no handshake"), "-", pf["problems"] or "-", "-", "-"]
            else:
                line += [fmt(pf["rate"]), fmt(pf["us"]), pf["problems"] or "ok",
                         f"{rm['rate'] / pf['rate']:.2f}" if pf["rate"] else "-",
                         f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"]
        line.append(pct(rm["other"]))
        return line

    # -------------------------------------------------------------- breakdown

    def breakdown_variants(self):
        """(label, what it changes, Ringmail keyword arguments, the ceiling's TLS settings)."""
        out = [
            ("default", "the daemon as run in production", {}, DAEMON_TLS),
            ("no-request", "tls.request_client_cert: false", {"tls": ["request_client_cert: false"]},
             {**DAEMON_TLS, "request": False}),
            ("no-tickets", "tls.session_tickets: false", {"tls": ["session_tickets: false"]},
             {**DAEMON_TLS, "tickets": 0}),
            ("one-cert", "the ECDSA certificate alone (no RSA beside it)", {"one_cert": True},
             {**DAEMON_TLS, "one_cert": True}),
        ]
        if self.other_build:
            out.insert(1, ("build-b", f"another build ({self.other_build}) as run in production,"
                           " alternating with default run by run", {"daemon": self.other_build}, DAEMON_TLS))
        for name, lib in (("jemalloc", "libjemalloc.so.2"), ("mimalloc", "libmimalloc.so.2")):
            path = Path("/usr/lib/x86_64-linux-gnu") / lib
            if path.exists():
                out.append((name, f"LD_PRELOAD={path}", {"env": {"LD_PRELOAD": str(path)}}, DAEMON_TLS))
        return out

    def breakdown(self):
        ecdsa, rsa = hs_spec("X25519", "ECDSA-P256"), hs_spec("X25519", "RSA-2048")
        concs = [1, 16] if self.quick else [1, 16, 128]
        variants = self.breakdown_variants()
        # the default daemon, another build and Postfix alternate run by run in one block;
        # every other variant has a block of its own
        blocks = [[v for v in variants if v[0] in ("default", "build-b")]]
        blocks += [[v] for v in variants if v[0] not in ("default", "build-b")]
        rows = []  # (variant, spec, conc, summary by server, (ceiling µs, note))
        for block in blocks:
            log("breakdown: " + ", ".join(f"{label} ({what})" for label, what, _, _ in block))
            settings = block[0][3]
            ss = [Ringmail(self, "p256", 1, label=label, **kw) for label, _, kw, _ in block]
            if self.vs_postfix and block[0][0] == "default":
                ss.append(Postfix(self, "p256", 1))
            for s in ss:
                self.running.append(s)
                s.start()
            try:
                full = block[0][0] == "default"
                cases = [(ecdsa, c) for c in (concs if full else [HS_CONC])]
                if full:
                    cases.append((rsa, HS_CONC))
                for spec, conc in cases:
                    # the ceiling runs between the daemon's runs, not after all of them: on
                    # a shared machine only figures measured side by side compare
                    ceils = []
                    runs = self.alternate(
                        ss, "hs", spec, conc, 1, self.repeats, f"breakdown-{row_id(spec)}-c{conc}", events=True,
                        between=lambda i: ceils.append(
                            ceiling(self, spec, settings, f"-{block[0][0]}-c{conc}-r{i + 1}")))
                    good = [us for us, note in ceils if us and not note]
                    ceil = (statistics.median(good), "") if good else ceils[-1]
                    res = {k: summarize(v, spec) for k, v in runs.items()}
                    rows += [(label, spec, conc, res, ceil) for label, _, _, _ in block]
            finally:
                self.stop(ss)
        table = [self.breakdown_line(*row) for row in rows]
        self.breakdown_section(table, variants)

    def breakdown_section(self, table, variants):
        head = ["variant", "certificate", "in flight", "ringmail hs/s", "server µs/hs", "user µs",
                "system µs", "ceiling µs (same TLS settings)", "vs ceiling", "user vs ceiling",
                "syscalls/hs", "io_uring ops/hs", "context switches/hs", "page faults/hs", "check"]
        if self.vs_postfix:
            head += ["Postfix µs/hs", "CPU Postfix/ringmail"]
        head.append("other CPU")
        self.section("## Where a handshake's fixed cost goes (1 worker: server CPU 0, client CPU 1)",
                     f"TLS 1.3, X25519, full handshakes, {self.duration} s per run, median of {self.repeats}."
                     " 'server µs/hs' is the daemon's cgroup CPU per handshake, split into user and system"
                     " time; the counts per handshake come from perf stat attached to the daemon's"
                     " processes (tracepoints and software events; no PMU is needed). The ceiling runs"
                     " tls_ceiling with the variant's TLS settings (certificate request, tickets,"
                     f" certificates) for {self.ceiling_duration} s after each of the daemon's runs"
                     " (the median of those); it has no kernel time, so 'user vs ceiling' is what the daemon's"
                     " user-space code adds. Variants: "
                     + "; ".join(f"{label}: {what}" for label, what, _, _ in variants) + ".",
                     head, table)

    def breakdown_messages(self):
        """What a durable 1 KiB message costs, with the spool on this disk and on tmpfs (the
        difference is the file system's and the disk's share), side by side in one block."""
        specs = [({"per_conn": 1, "starttls": False}, 32), ({"per_conn": 1, "starttls": False}, 256),
                 ({"per_conn": 20, "starttls": False}, 32), ({"per_conn": 20, "starttls": True}, 32),
                 ({"per_conn": 20, "starttls": False}, 256), ({"per_conn": 20, "starttls": True}, 256)]
        if self.quick:
            specs = specs[:1]
        ss = [Ringmail(self, "p256", 1, label="default")]
        if self.other_build:
            ss.append(Ringmail(self, "p256", 1, label="build-b", daemon=self.other_build))
        ss.append(Ringmail(self, "p256", 1, label="tmpfs-spool", spool_base="/dev/shm"))
        if self.vs_postfix:
            ss.append(Postfix(self, "p256", 1))
        log("breakdown: messages, " + ", ".join(s.label for s in ss))
        for s in ss:
            self.running.append(s)
            s.start()
        table = []
        try:
            for spec, conc in specs:
                runs = self.alternate(ss, "msg", spec, conc, 1, self.repeats, f"breakdown-{row_id(spec)}-c{conc}",
                                      events=True, empty_queue=True)
                res = {k: summarize(v, spec) for k, v in runs.items()}
                for s in ss:
                    if isinstance(s, Ringmail):
                        table.append(self.breakdown_msg_line(s.label, spec, conc, res))
        finally:
            self.stop(ss)
        journal = ["journal µs/msg"] if self.fs else []
        head = ["variant", "session", "msgs/conn", "sessions", "msgs/s", "server µs/msg", "user µs",
                "system µs"] + journal + ["syscalls/msg", "io_uring ops/msg", "context switches/msg", "check"]
        if self.vs_postfix:
            head += ["Postfix msgs/s", "Postfix µs/msg (incl. delivery to discard)"] + [
                "Postfix " + h for h in journal] + ["rate ringmail/Postfix", "CPU Postfix/ringmail"]
        head.append("other CPU")
        self.section("## Where a durable message's cost goes (1 worker: server CPU 0, client CPU 1)",
                     f"{MSG_SIZE}-byte messages, {self.duration} s per run, median of {self.repeats}, the"
                     " daemons alternating run by run. Every ringmaild run starts on an empty spool (the"
                     " daemon restarted, the last run's deferred messages removed), as Postfix's queue is"
                     " empty once it delivered the last run's mail to discard. default: the spool on the build directory's file"
                     " system, as in the messages section; tmpfs-spool: the same daemon with its spool"
                     " on /dev/shm, where an fsync writes nothing, so the difference is the file"
                     " system's and the disk's share. Counts per message from perf stat as above."
                     + (" " + self.fs.note() if self.fs else ""),
                     head, table)

    @staticmethod
    def cpu_cells(rm):
        """server, user and system µs per unit."""
        system = rm["us"] - rm["user_us"] if rm["us"] and rm["user_us"] else None
        return [fmt(rm["us"]), fmt(rm["user_us"]), fmt(system)]

    @staticmethod
    def event_cells(rm, events):
        return [fmt(rm["events"].get(e), 1) for e in events]

    def breakdown_msg_line(self, label, spec, conc, res):
        rm = res[label]
        line = [label, "STARTTLS" if spec["starttls"] else "plain", spec["per_conn"], conc, fmt(rm["rate"])]
        line += self.cpu_cells(rm) + ([fmt(rm["journal_us"])] if self.fs else [])
        line += self.event_cells(rm, PERF_EVENTS[:3])
        line.append(rm["problems"] or "ok")
        if self.vs_postfix:
            pf = res.get("Postfix")
            line += [fmt(pf["rate"]), fmt(pf["us"])] + ([fmt(pf["journal_us"])] if self.fs else []) + [
                     f"{rm['rate'] / pf['rate']:.2f}" if pf["rate"] else "-",
                     f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"]
        line.append(pct(rm["other"]))
        return line

    def breakdown_line(self, label, spec, conc, res, ceil):
        rm = res[label]
        us, note = ceil
        line = [label, spec["cert"], conc, fmt(rm["rate"])] + self.cpu_cells(rm) + [
                note or fmt(us),
                f"{rm['us'] / us:.2f}x" if us and rm["us"] and not note else "-",
                f"{rm['user_us'] / us:.2f}x" if us and rm["user_us"] and not note else "-"]
        line += self.event_cells(rm, PERF_EVENTS)
        line.append(rm["problems"] or "ok")
        if self.vs_postfix:
            pf = res.get("Postfix")
            line += [fmt(pf["us"]), f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"] if pf else ["", ""]
        line.append(pct(rm["other"]))
        return line

    # -------------------------------------------------------------- messages

    def messages(self):
        specs = [{"per_conn": m, "starttls": t} for t in (False, True) for m in (1, 20)]
        log("messages")
        ss = self.servers("p256", 1)
        table = []
        try:
            for spec in specs:
                runs = self.alternate(ss, "msg", spec, MSG_CONC, 1, self.repeats, row_id(spec))
                res = {k: summarize(v, spec) for k, v in runs.items()}
                table.append(self.msg_line(spec, res))
        finally:
            self.stop(ss)
        head = ["session", "msgs/conn", "ringmail msgs/s (median)", "runs", "server CPU µs/msg (median)",
                "server CPU", "p50 ms", "p99 ms", "check", "TLS handshakes"]
        if self.vs_postfix:
            head += ["Postfix msgs/s", "Postfix µs/msg (incl. delivery to discard)", "Postfix accepted",
                     "Postfix delivered", "Postfix drain s", "Postfix check", "rate ringmail/Postfix",
                     "CPU Postfix/ringmail"]
        head += ["client CPU", "other CPU"]
        self.section("## Durable accepted messages (1 worker: server CPU 0, client CPU 1)",
                     f"{MSG_SIZE}-byte messages, {MSG_CONC} sessions, {self.duration} s per run, median of"
                     f" {self.repeats}; STARTTLS sessions use the client's default groups and signature"
                     " algorithms (the negotiated group and certificate are in the JSON). ringmaild has no"
                     " delivery yet: its figures are receiving and spooling only. Postfix's server CPU is"
                     " measured over the run plus the drain of its queue (delivery to its discard"
                     " transport), and counts the messages the client got a 250 for.",
                     head, table)

    def msg_line(self, spec, res):
        rm = res["ringmail"]
        line = ["STARTTLS" if spec["starttls"] else "plain", spec["per_conn"], fmt(rm["rate"]),
                ", ".join(fmt(x) for x in rm["runs"]), fmt(rm["us"]), pct(rm["util"]), fmt(rm["p50"], 2),
                fmt(rm["p99"], 2), rm["problems"] or "ok", rm["hs"]]
        if self.vs_postfix:
            pf = res["Postfix"]
            line += [fmt(pf["rate"]), fmt(pf["us"]), pf["count"], pf["delivered"], fmt(pf["drain"], 1),
                     pf["problems"] or "ok",
                     f"{rm['rate'] / pf['rate']:.2f}" if pf["rate"] else "-",
                     f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"]
        line += [pct(rm["client"]) + (" (bound)" if rm["bound"] else ""), pct(rm["other"])]
        return line

    # -------------------------------------------------------------- the access map

    def access_map(self, n=ACCESS_ENTRIES):
        """n entries of every kind the checks probe, none matching the bench's traffic, so each
        message walks every step: Connect: (127.0.0.1 and its prefixes), From: (the sender,
        user@ and the domain's parents) and To: (blocklist_recipients)."""
        path = self.work / f"access-{n}"
        kinds = [lambda i: f"Connect:10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256} REJECT",
                 lambda i: f"From:spammer{i}.example REJECT",
                 lambda i: f"From:user{i}@ REJECT",
                 lambda i: f"To:victim{i}@bench.test REJECT",
                 lambda i: f"bulk{i}.example ERROR:\"550 5.7.1 no bulk mail\""]
        path.write_text("".join(kinds[i % len(kinds)](i) + "\n" for i in range(n)))
        return path

    def access(self):
        """Server CPU per message without an access map and with a 100,000-entry one, the two
        daemons alternated A B A B on the plain rows (policy/: the map is indexed)."""
        specs = [{"per_conn": m, "starttls": False} for m in (1, 20)]
        log(f"access: no map vs {ACCESS_ENTRIES} entries")
        ss = [Ringmail(self, "p256", 1), Ringmail(self, "p256", 1, access=self.access_map())]
        for s in ss:
            self.running.append(s)
            s.start()
        table = []
        try:
            for spec in specs:
                runs = self.alternate(ss, "msg", spec, MSG_CONC, 1, self.repeats,
                                      "access-" + row_id(spec))
                res = {k: summarize(v, spec) for k, v in runs.items()}
                a, b = res["ringmail"], res["ringmail+access"]
                table.append(["plain", spec["per_conn"], fmt(a["rate"]), fmt(a["us"]), fmt(b["rate"]),
                              fmt(b["us"]),
                              f"{(b['us'] / a['us'] - 1) * 100:+.1f} %" if a["us"] and b["us"] else "-",
                              a["problems"] or b["problems"] or "ok"])
        finally:
            self.stop(ss)
        self.section("## The access map's cost (1 worker: server CPU 0, client CPU 1)",
                     f"{MSG_SIZE}-byte messages, {MSG_CONC} sessions, {self.duration} s per run, median of"
                     f" {self.repeats}, the two daemons alternated. With the map: {ACCESS_ENTRIES} entries"
                     " (Connect:, From:, From:user@, To:, bare), none matching, and"
                     " features.blocklist_recipients, so every message probes each step of the"
                     " connect, MAIL and RCPT lookups.",
                     ["session", "msgs/conn", "no map msgs/s", "no map µs/msg", "100k map msgs/s",
                      "100k map µs/msg", "CPU per message", "check"], table)

    # -------------------------------------------------------------- mail filters

    def milter(self):
        """The plain message rows with opendkim signing every message: ringmaild (milters) and,
        with --vs postfix, Postfix (smtpd_milters), alternated A B A B, one opendkim for both."""
        specs = [{"per_conn": m, "starttls": False} for m in (1, 20)]
        log("milter: opendkim signing every message")
        dkim = OpenDKIM(self)
        dkim.start()
        self.running.append(dkim)
        ss = [Ringmail(self, "p256", 1, milter=dkim)]
        if self.vs_postfix:
            ss.append(Postfix(self, "p256", 1, milter=dkim))
        for s in ss:
            self.running.append(s)
            s.start()
        table = []
        try:
            for spec in specs:
                runs = self.alternate(ss, "msg", spec, MSG_CONC, 1, self.repeats,
                                      "milter-" + row_id(spec))
                res = {k: summarize(v, spec) for k, v in runs.items()}
                rm = res["ringmail"]
                line = [spec["per_conn"], fmt(rm["rate"]), fmt(rm["us"]), fmt(rm["filter_us"])]
                if self.vs_postfix:
                    pf = res["Postfix"]
                    line += [fmt(pf["rate"]), fmt(pf["us"]), fmt(pf["filter_us"]),
                             f"{rm['rate'] / pf['rate']:.2f}" if pf["rate"] else "-",
                             f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"]
                line += [rm["problems"] or "ok"]
                table.append(line)
        finally:
            self.stop(ss)
            dkim.stop()
            self.running.remove(dkim)
        head = ["msgs/conn", "ringmail msgs/s", "ringmail µs/msg", "opendkim µs/msg"]
        if self.vs_postfix:
            head += ["Postfix msgs/s", "Postfix µs/msg", "opendkim µs/msg (Postfix)",
                     "rate ringmail/Postfix", "CPU Postfix/ringmail"]
        head += ["check"]
        self.section("## Mail filters: opendkim signing every message (1 worker: server CPU 0, "
                     "client and opendkim CPU 1)",
                     f"{MSG_SIZE}-byte plain messages, {MSG_CONC} sessions, {self.duration} s per run,"
                     f" median of {self.repeats}, alternated. Server CPU excludes opendkim's, which is"
                     " counted in its own group. Postfix delivers each message to discard, ringmail"
                     " only queues it (as in the messages rows).", head, table)

    # -------------------------------------------------------------- scaling

    def scaling(self):
        concs = [16, 1024] if self.quick else [1, 16, 256, 1024]
        kinds = [("msg", {"per_conn": 1, "starttls": False}), ("hs", hs_spec("X25519", "ECDSA-P256"))]
        table = []
        for w in self.workers:
            log(f"scaling: workers {w}")
            ss = self.servers("p256", w)
            try:
                for kind, spec in kinds:
                    for conc in concs:
                        name = f"scale-w{w}-{row_id(spec)}-c{conc}"
                        # handshakes: conc in flight in all, spread over the client threads
                        per = max(1, conc // pinning(w)[2]) if kind == "hs" else conc
                        runs = self.alternate(ss, kind, spec, per, w, self.scale_repeats, name)
                        res = {k: summarize(v, spec) for k, v in runs.items()}
                        table.append(self.scale_line(w, kind, conc, res))
            finally:
                self.stop(ss)
        head = ["workers", "server CPUs", "client CPUs", "load", "concurrency", "ringmail rate/s",
                "server CPU µs/unit", "server CPU", "p99 ms", "check"]
        if self.vs_postfix:
            head += ["Postfix rate/s", "Postfix µs/unit", "Postfix check", "rate ringmail/Postfix",
                     "CPU Postfix/ringmail"]
        head += ["client CPU", "other CPU"]
        self.section("## Scaling: workers and concurrency",
                     f"{self.duration} s per run, {self.scale_repeats} run(s) each. Load 'msg': plain"
                     " sessions of 1 message (1 KiB); 'handshake': TLS 1.3, X25519, ECDSA P-256, full."
                     " With 2 workers the server gets CPUs 0,1 and the client (2 threads) shares them;"
                     " Postfix then gets CPUs 0,1 too. 256 sessions and more come from 127.0.0.2.."
                     f"127.0.0.{IDLE_SOURCES + 1}. Postfix keeps its default process limit (100"
                     " smtpd): connections beyond it wait in the listen backlog, which shows as latency"
                     " and timeouts.",
                     head, table)

    def scale_line(self, w, kind, conc, res):
        rm = res["ringmail"]
        scpus, ccpus, _ = pinning(w)
        line = [w, scpus, ccpus, "handshake" if kind == "hs" else "msg", conc, fmt(rm["rate"]), fmt(rm["us"]),
                pct(rm["util"]), fmt(rm["p99"], 2), rm["problems"] or "ok"]
        if self.vs_postfix:
            pf = res["Postfix"]
            line += [fmt(pf["rate"]), fmt(pf["us"]), pf["problems"] or "ok",
                     f"{rm['rate'] / pf['rate']:.2f}" if pf["rate"] else "-",
                     f"{pf['us'] / rm['us']:.2f}" if rm["us"] and pf["us"] else "-"]
        line += [pct(rm["client"]) + (" (bound)" if rm["bound"] else ""), pct(rm["other"])]
        return line

    # -------------------------------------------------------------- idle memory

    def hold(self, server, n, starttls, name):
        """Open n idle sessions against server and wait until all are settled: (process, count)."""
        ready = self.work / f"{name}.ready"
        cmd = [str(LOAD), "-M", "idle", "-s", f"127.0.0.1:{server.port}", "-N", str(n), "--sources",
               str(IDLE_SOURCES), "--ready-file", str(ready), "--max-time", "600", "--timeout", "60",
               "--label", name, "-q"] + (["--starttls"] if starttls else [])
        self.note_cmd(server.label, ["taskset", "-c", pinning(1)[1]] + cmd, server.port)
        p = subprocess.Popen(["taskset", "-c", pinning(1)[1]] + cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        for _ in range(3000):
            if ready.exists() and ready.read_text().strip():
                break
            if p.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1)
        return p, int(ready.read_text().strip() or 0) if ready.exists() else 0

    def idle_one(self, server, n_plain, n_tls):
        wait_quiet(self.quiet_wait)
        time.sleep(0.5)
        m0 = server.memory()
        p1, up1 = self.hold(server, n_plain, False, f"{server.label}-idle-plain")
        m1 = server.memory()
        p2, up2 = self.hold(server, n_tls, True, f"{server.label}-idle-tls")
        m2 = server.memory()
        res = []
        for p, name in ((p2, "tls"), (p1, "plain")):
            p.send_signal(signal.SIGTERM)
            stdout, _ = p.communicate(timeout=120)
            (self.results / f"{server.label}-idle-{name}.json").write_text(stdout.splitlines()[0] + "\n"
                                                                          if stdout else "{}\n")
            res.append(json.loads(stdout.splitlines()[0]) if stdout else {})
        r = {"server": server.label, "plain_requested": n_plain, "plain_up": up1, "tls_requested": n_tls,
             "tls_up": up2, "mem_before": m0, "mem_plain": m1, "mem_tls": m2,
             "errors_tls": res[0].get("errors_total"), "errors_plain": res[1].get("errors_total")}
        (self.results / f"{server.label}-idle.json").write_text(json.dumps(r) + "\n")
        return r

    def idle(self):
        n_plain, n_tls = (1000, 200) if self.quick else (10000, 2000)
        pf_plain, pf_tls = (50, 20) if self.quick else (400, 200)
        log(f"idle: ringmail {n_plain} plain + {n_tls} TLS")
        rows = []
        ss = [Ringmail(self, "p256", 1)]
        if self.vs_postfix:
            ss.append(Postfix(self, "p256", 1, pf_plain + pf_tls + 50))
        for s in ss:
            self.running.append(s)
            s.start()
            try:
                if isinstance(s, Postfix):
                    log(f"idle: Postfix {pf_plain} plain + {pf_tls} TLS")
                    rows.append(self.idle_one(s, pf_plain, pf_tls))
                else:
                    rows.append(self.idle_one(s, n_plain, n_tls))
            finally:
                self.stop([s])
        table = []
        for r in rows:
            b, p, t = r["mem_before"], r["mem_plain"], r["mem_tls"]
            per_plain = (p[0] - b[0]) * 1024 / r["plain_up"] if r["plain_up"] else None
            per_tls = (t[0] - p[0]) * 1024 / r["tls_up"] if r["tls_up"] else None
            measure_name = ("VmRSS of the daemon (RssAnon delta: "
                            f"{p[1] - b[1]} KiB plain, {t[1] - p[1]} KiB TLS)"
                            if r["server"] == "ringmail" else
                            f"PSS of the instance, all processes ({b[2]} -> {p[2]} -> {t[2]} processes)")
            table.append([r["server"], f"{r['plain_up']} of {r['plain_requested']}",
                          f"{r['tls_up']} of {r['tls_requested']}", b[0], p[0], t[0],
                          fmt(per_plain), fmt(per_tls), measure_name])
        self.section("## Memory of idle sessions",
                     "Plain sessions: banner and EHLO, then nothing; TLS sessions (opened while the plain"
                     " ones are held): STARTTLS, handshake, EHLO over TLS, then nothing. ringmaild: 1"
                     " worker. Postfix: a private instance with POSTFIX_PROCESS_LIMIT ="
                     f" {pf_plain + pf_tls + 50}, {pf_plain} plain and {pf_tls} TLS sessions (one smtpd"
                     " process each). Bytes per session: the memory delta / sessions established.",
                     ["server", "plain sessions", "TLS sessions", "KiB before", "KiB with plain",
                      "KiB with plain + TLS", "bytes/plain session", "bytes/TLS session", "measure"],
                     table)

    # -------------------------------------------------------------- the picture

    def plot(self):
        if not self.plot_rows:
            return
        if not shutil.which("gnuplot"):
            log("no gnuplot (apt-get install gnuplot-nox): no picture")
            return
        series = ["ringmail"] + (["Postfix"] if self.vs_postfix else []) + ["OpenSSL ceiling"]
        dat = self.results / "handshake-cpu.dat"
        lines = ["pair " + " ".join(f'"{s}"' for s in series)]
        for label, (rm, pf, ceil) in self.plot_rows.items():
            vals = [rm] + ([pf] if self.vs_postfix else []) + [ceil]
            lines.append(f'"{label}" ' + " ".join("-" if v is None else f"{v:.1f}" for v in vals))
        dat.write_text("\n".join(lines) + "\n")
        terms = subprocess.run(["gnuplot", "-e", "set terminal"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True).stdout
        term = "pngcairo" if "pngcairo" in terms else "png"
        png = self.results / "handshake-cpu.png"
        run(["gnuplot", "-e", f"datafile='{dat}'; outfile='{png}'; term='{term}'; nseries={len(series)}",
             PLOT_GP])
        self.out(f"Picture: `handshake-cpu.png` (server CPU µs per TLS 1.3 full handshake; {', '.join(series)}).")
        self.out()

    # -------------------------------------------------------------- the whole run

    def header(self):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), "?")
        ossl = subprocess.run(["openssl", "version"], stdout=subprocess.PIPE, text=True).stdout.strip()
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                stdout=subprocess.PIPE, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
        acct = "cgroup v1 cpuacct" if CGROUP_ROOT.is_dir() else "/proc/PID/stat of the process tree (no cgroup)"
        self.out(f"# ringmail benchmark{' vs Postfix' if self.vs_postfix else ''},"
                 f" {self.results.name}")
        self.out()
        self.out(f"- machine: {ncpu()} CPUs, {cpu}, kernel {os.uname().release}, {ossl}")
        self.out(f"- ringmaild and smtp_load: commit {commit}{' (tree has local changes)' if dirty else ''},"
                 " Release build in build-bench/")
        self.out(f"- command: {' '.join(sys.argv)}" + (" (--quick: a smoke run, not figures)" if self.quick else ""))
        self.out(f"- server CPU accounting: {acct}; each run waits up to {self.quiet_wait} s for the"
                 " machine to be quiet; 'other CPU' is what the rest of the machine used during it")
        where = self.work.relative_to(ROOT) if self.work.is_relative_to(ROOT) else self.work
        self.out(f"- spool and scratch: {where} (removed at the end)")
        self.out()

    def commands(self):
        self.out("## Commands")
        self.out()
        for what, yaml, cmd in self.configs:
            self.out(f"{what}:")
            self.out()
            self.out("```")
            self.out(cmd)
            if yaml:
                self.out("# ringmail.yaml")
                self.out(yaml.rstrip())
            self.out("```")
            self.out()
        self.out("Client and ceiling command lines (each run of a row is the same command):")
        self.out()
        self.out("```")
        for c in self.cmds:
            self.out(c)
        self.out("```")

    def run(self):
        self.header()
        log(f"results in {self.results}")
        make_certs(self.certs)
        if any(s in self.sections for s in ("handshake", "tls12", "resume")):
            self.handshakes()
            self.plot()
        if "breakdown" in self.sections or "hs-breakdown" in self.sections:
            self.breakdown()
        if "breakdown" in self.sections or "durable" in self.sections:
            self.breakdown_messages()
        if "messages" in self.sections:
            self.messages()
        if "access" in self.sections:
            self.access()
        if "milter" in self.sections:
            self.milter()
        if "scaling" in self.sections:
            self.scaling()
        if "idle" in self.sections:
            self.idle()
        self.commands()
        log(f"done: {self.summary}")

    def cleanup(self):
        for s in list(self.running):
            try:
                s.stop()
            except (OSError, subprocess.SubprocessError) as e:
                log(f"stopping {s.label}: {e}")
        shutil.rmtree(self.work, ignore_errors=True)
        if self.fs:
            self.fs.remove()


def build():
    run(["cmake", "-S", ROOT, "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release"], stdout=subprocess.DEVNULL)
    targets = ["ringmaild", "smtp_load"] + (["tls_ceiling"] if (ROOT / "bench" / "tls_ceiling.c").exists() else [])
    run(["cmake", "--build", BUILD_DIR, "-j", ncpu(), "--target", *targets], stdout=subprocess.DEVNULL)


def run_to_end(bench_class, args) -> None:
    """Runs a benchmark (run(), then cleanup() whatever happened) with the descriptors idle
    sessions need (the daemon and the client raise their soft limit to this) and the
    signals that must stop it."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = bench_class(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    # a shell starts a background job with SIGINT ignored; Ctrl-C or kill -INT must still stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        bench.run()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        bench.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vs", choices=["postfix"], help="run every row against a private Postfix too")
    ap.add_argument("--quick", action="store_true", help="1 s runs, 1 repeat, a subset: a smoke run")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {','.join(SECTIONS)}")
    ap.add_argument("--workers", default="1,2", help="scaling rows: worker counts (default 1,2)")
    ap.add_argument("--duration", type=float, help="seconds per run (default 5, --quick 1)")
    ap.add_argument("--repeats", type=int, help="runs per handshake and message row (default 3, --quick 1)")
    add_fs_image_arg(ap, "the spools and Postfix's queue", "in the results directory")
    ap.add_argument("--out", help="results directory (default bench/results/<UTC stamp>)")
    args = ap.parse_args()
    bad = set(args.sections.split(",")) - set(SECTIONS)
    if bad:
        die(f"unknown sections {', '.join(sorted(bad))}")
    for tool in ("taskset", "openssl", "cmake"):
        if not shutil.which(tool):
            die(f"needs {tool}")
    if args.vs == "postfix":
        if not POSTFIX_SH.exists():
            die(f"--vs postfix needs {POSTFIX_SH.relative_to(ROOT)}, which is not there")
        subprocess.run(["bash", str(POSTFIX_SH), "install"], check=True, stdout=sys.stderr)
    if os.environ.get("BUILD", "1") != "0":
        log("building Release into build-bench/")
        build()
    for exe in (DAEMON, LOAD):
        if not exe.exists():
            die(f"no {exe}")
    if not CEILING.exists():
        log(f"no {CEILING.relative_to(ROOT)}: the ceiling columns stay empty")
    if {"breakdown", "hs-breakdown", "durable"} & set(args.sections.split(",")) and not shutil.which("perf"):
        log("no perf (Debian's linux-perf): the breakdown's counts per handshake and message stay empty")
    run_to_end(Bench, args)


if __name__ == "__main__":
    main()
