"""Shared harness for ringmail's integration tests (Python 3.11 stdlib only).

One place that knows how to
  - write a YAML config for a test (a dict merged over BASE_CONFIG, emitted by to_yaml),
  - start `ringmaild --config FILE --foreground` on a free loopback port, wait until it
    listens (bounded), capture its stderr to a file, stop it with SIGTERM (kill -9 if it
    hangs), and print the log tail when the test failed,
  - speak raw SMTP over a socket (SMTPConn), where smtplib would hide what we test,
  - look into the spool (Spool) and the log (Daemon.log / wait_log).

Tests subclass RingmailTestCase and call self.daemon(**overrides).  Every wait here is
bounded; nothing ever connects anywhere but 127.0.0.1 / ::1.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HOSTNAME = "mx.test"
LOCAL_DOMAINS = [HOSTNAME, "localhost"]
TEST_NET = "192.0.2.0/24"  # RFC 5737, never a real client: "nobody may relay"

START_TIMEOUT = 10.0       # until the daemon's port accepts
STOP_TIMEOUT = 20.0        # SIGTERM until exit, before kill -9
IO_TIMEOUT = 30.0          # one socket read on a loaded machine (ASan is ~3x slower)

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")

QID_RE = re.compile(r"^250[ -]2\.0\.0 <?([0-9A-Za-z]+)>? Message accepted for delivery")


# --------------------------------------------------------------------------- binary

def ringmaild_path() -> str:
    """The daemon under test: $RINGMAILD (set by ctest), else a build dir of this repo."""
    env = os.environ.get("RINGMAILD")
    if env:
        return env
    root = Path(__file__).resolve().parents[2]
    found = [c for c in root.glob("build*/ringmaild") if os.access(c, os.X_OK)]
    if not found:
        raise RuntimeError("RINGMAILD is not set and no build*/ringmaild found")
    newest = max(found, key=lambda c: c.stat().st_mtime)
    sys.stderr.write(f"RINGMAILD not set: using the newest build, {newest}\n")
    return str(newest)


# --------------------------------------------------------------------------- config

@functools.lru_cache(maxsize=None)
def asan_build() -> bool:
    """Whether ringmaild runs under AddressSanitizer, whose shadow memory and quarantine make
    its resident size say nothing about what the daemon itself keeps (ASan reports leaks
    itself)."""
    return b"__asan_init" in Path(ringmaild_path()).read_bytes()


def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if s == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`]|^[-?\s]|\s$", s) or not s.isascii():
        return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar
    return s


def to_yaml(obj: dict, indent: int = 0) -> list[str]:
    """Block-style YAML for dicts of scalars, dicts, lists of scalars, lists of dicts."""
    pad = "  " * indent
    lines = []
    for key, val in obj.items():
        if isinstance(val, dict):
            lines.append(f"{pad}{key}:")
            lines += to_yaml(val, indent + 1)
        elif isinstance(val, list) and val and all(isinstance(x, dict) for x in val):
            lines.append(f"{pad}{key}:")
            for item in val:
                sub = to_yaml(item, indent + 2)
                sub[0] = f"{pad}  - {sub[0].lstrip()}"
                lines += sub
        elif isinstance(val, list):
            lines.append(f"{pad}{key}: [{', '.join(_yaml_scalar(x) for x in val)}]")
        else:
            lines.append(f"{pad}{key}: {_yaml_scalar(val)}")
    return lines


def merge(base: dict, over: dict) -> dict:
    """Deep merge; a value of None in `over` removes the key."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def free_port(family=socket.AF_INET, addr="127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def base_config(workdir: Path, port: int) -> dict:
    return {
        "hostname": HOSTNAME,
        "listen": [{"name": "MTA", "address": "127.0.0.1", "port": port}],
        "workers": 2,
        "run_as": getpass.getuser(),
        "spool": str(workdir / "spool"),
        "local_domains": list(LOCAL_DOMAINS),
        "timeouts": {"shutdown_grace": "5s"},
        # every test client comes from loopback: the per-client limit (default 50) is
        # tested on its own (test_errors)
        "limits": {"connections_per_client": 0},
        # never the outside network: a domain a test's message is addressed to is looked up
        # here, where nothing listens (the lookup fails at once and the message waits in
        # the queue); delivery tests start their own dnsmasq (dns_fixture.py)
        # and no client name lookups (dns.peername_lookup; every test client is 127.0.0.1,
        # which /etc/hosts would name "localhost"): test_client_checks turns them on with
        # its own dnsmasq
        "dns": {"servers": ["127.0.0.1:9"], "peername_lookup": False},
        # local delivery stays inside the test's directory; names that are no alias nor
        # user of this machine are accepted and wait in the queue (LUSER_RELAY to a port
        # where nothing listens), as every local recipient did before local delivery:
        # the local delivery tests set their own
        "mailers": {"mailbox": str(workdir / "mail" / "$u")},
        "routing": {"luser_relay": "[127.0.0.1]:9"},
        # senders' domains are not looked up (sendmail's default does): the tests' senders
        # are in domains no server here knows; test_sender_domain turns the check on
        "features": {"accept_unresolvable_domains": True},
    }


# --------------------------------------------------------------------------- SMTP client

class Reply:
    """One (possibly multi-line) SMTP reply."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.code = int(lines[-1][:3])
        m = re.match(r"\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b", lines[0])
        self.enh = m.group(1) if m else None
        self.text = "\n".join(lines)

    @property
    def last(self) -> str:
        return self.lines[-1]

    def qid(self) -> str | None:
        m = QID_RE.match(self.lines[0])
        return m.group(1) if m else None

    def keywords(self) -> dict[str, str]:
        """EHLO extension keywords (upper case) -> parameters."""
        out = {}
        for line in self.lines[1:]:
            parts = line[4:].split(None, 1)
            if parts:
                out[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
        return out

    def __repr__(self):
        return f"Reply({self.text!r})"


class SMTPConn:
    """A raw SMTP client on one socket; replies are parsed, never interpreted."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = IO_TIMEOUT,
                 greet: bool = True, source: str | None = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:  # another loopback address (127.0.0.N): another client for the daemon
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, data) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete reply line; have {self.buf!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"server closed the connection; have {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout: float | None = None) -> Reply:
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            line = self._line(deadline).decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def replies(self, n: int, timeout: float | None = None) -> list[Reply]:
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line: str | bytes, timeout: float | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def ehlo(self, name: str = "client.example") -> Reply:
        return self.cmd(f"EHLO {name}")

    def data(self, message: bytes, timeout: float | None = None) -> tuple[Reply, Reply]:
        """DATA, then the dot-stuffed message and the final dot. (354 reply, final reply)."""
        r354 = self.cmd("DATA")
        if r354.code != 354:
            return r354, r354
        self.send(dot_stuff(message) + b".\r\n")
        return r354, self.reply(timeout)

    def send_mail(self, sender: str, rcpts: list[str], message: bytes,
                  mail_params: str = "") -> Reply:
        """MAIL, RCPT..., DATA; the final reply (or the first refusal)."""
        r = self.cmd(f"MAIL FROM:<{sender}>{mail_params}")
        if r.code != 250:
            return r
        for rcpt in rcpts:
            r = self.cmd(f"RCPT TO:<{rcpt}>")
            if r.code != 250:
                return r
        return self.data(message)[1]

    def wait_closed(self, timeout: float = 10.0) -> bytes:
        """Waits for the server to close; returns whatever unread bytes came first."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server did not close; got {data!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency; `message` must use CRLF and end with CRLF."""
    out = []
    for line in message.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def make_message(subject: str = "test", body: str = "hello\r\n", msgid: str | None = None,
                 extra_headers: str = "") -> bytes:
    """A small RFC 5322 message with CRLF line ends, ending in CRLF."""
    hdrs = f"From: a@b.example\r\nTo: user@{HOSTNAME}\r\nSubject: {subject}\r\n"
    if msgid:
        hdrs += f"Message-Id: <{msgid}>\r\n"
    return (hdrs + extra_headers + "\r\n" + body).encode()


# --------------------------------------------------------------------------- spool

QF_TAGS = {"I": "qid", "T": "created", "N": "attempts", "W": "next_attempt", "L": "size",
           "B": "body", "U": "smtputf8", "X": "dsn_ret", "S": "sender", "H": "helo",
           "A": "client_addr", "C": "client_name", "P": "proto", "D": "daemon", "M": "msgid",
           "Z": "envid"}
NOTIFY = {"NEVER": 1, "SUCCESS": 2, "FAILURE": 4, "DELAY": 8}


def qf_decode(v: str) -> str:
    """qf values escape '+', space, controls and a leading '-' as +XX (queue/envelope.c)."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), v)


WRITE_CHUNK = 65536  # the spool's write chunk: smaller data is kept inside the qf itself


def split_qf(data: bytes) -> tuple[bytes, bytes | None]:
    """A qf file cut at its end marker, the first line that is exactly `.` or `=`:
    (the envelope up to and including that line, the message data after a `=`; None after
    a `.`, after which nothing may follow). A message whose data is smaller than the write
    chunk is one file, its qf ending in `=` and the data (docs/queue.md); a larger one ends
    in `.` and has a df. Raises AssertionError when there is no end marker."""
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise AssertionError(f"qf is not terminated by '.' or '=': {data[-200:]!r}")
        line = data[pos:nl]
        if line in (b".", b"="):
            head, rest = data[:nl + 1], data[nl + 1:]
            if line == b".":
                if rest:
                    raise AssertionError(f"qf has {len(rest)} octets after its '.': "
                                         f"{rest[:200]!r}")
                return head, None
            return head, rest
        pos = nl + 1


def parse_qf(data: bytes) -> dict:
    """The qf envelope (format V1, docs/queue.md) as a dict; recipients as a list of dicts
    {state, notify (bits), orcpt (None if absent), addr}; "inline_data": the message data
    a one-file qf holds after its `=` line (its length checked against the L record), None
    for a qf ending in `.` (the data is in the df). Raises on a malformed file."""
    head, inline = split_qf(data)
    text = head.decode("utf-8")  # only the envelope is text: the data may be any octets
    lines = text.split("\n")[:-2]  # without the end marker and the empty string after it
    if not lines or lines[0] != "V1":
        raise AssertionError(f"qf does not start with V1: {text[:200]!r}")
    env = {"rcpts": []}
    for line in lines[1:]:
        tag, val = line[:1], line[1:]
        if tag == "R":
            state, notify, orcpt, addr = line[1:2], *line[3:].split(" ")
            env["rcpts"].append({"state": state, "notify": int(notify, 16),
                                 "orcpt": None if orcpt == "-" else qf_decode(orcpt),
                                 "addr": qf_decode(addr)})
        elif tag in QF_TAGS:
            env[QF_TAGS[tag]] = qf_decode(val)
        else:
            env.setdefault("unknown", []).append(line)
    env["inline_data"] = inline
    if inline is not None:
        if "size" not in env:
            raise AssertionError("a qf with inline data ('=') has no L record")
        if len(inline) != int(env["size"]):
            raise AssertionError(f"qf holds {len(inline)} octets of data after its '=', "
                                 f"its L record says {int(env['size'])}")
    return env


def partial_names(names) -> list[str]:
    """tf files, and df files whose qf is missing (never acknowledged)."""
    names = set(names)
    return sorted(n for n in names
                  if n.startswith("tf") or (n.startswith("df") and "qf" + n[2:] not in names))


class Spool:
    """Read-only view of a spool directory (docs/queue.md). A message's files are in a
    subdirectory named by a hash of its queue id (one hex digit per level of
    queue.hash_depth: "7/qf<qid>", "7/c/qf<qid>") or at the top when the depth is 0; the
    listing looks at every level, whatever the depth, as recovery does, and names files
    without their subdirectory."""

    HEX_DIGITS = frozenset("0123456789abcdef")
    MAX_DEPTH = 2

    def __init__(self, path: Path):
        self.path = Path(path)

    def files(self) -> dict[str, Path]:
        """Every file (and link, FIFO, ...) by name: the top level, then the subdirectories
        (never followed through a symbolic link)."""
        found: dict[str, Path] = {}

        def walk(d: Path, level: int) -> None:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except FileNotFoundError:
                return
            subdirs = []
            for e in entries:
                if (level < self.MAX_DEPTH and e.name in self.HEX_DIGITS
                        and e.is_dir(follow_symlinks=False)):
                    subdirs.append(Path(e.path))
                else:
                    found.setdefault(e.name, Path(e.path))
            for sub in subdirs:
                walk(sub, level + 1)

        walk(self.path, 0)
        return found

    def names(self) -> list[str]:
        return sorted(self.files())

    def file(self, name: str) -> Path:
        """Where the file called `name` is (FileNotFoundError if nowhere)."""
        try:
            return self.files()[name]
        except KeyError:
            raise FileNotFoundError(f"{name} is not in the spool {self.path}") from None

    def subdirs(self) -> list[str]:
        """The subdirectories as paths relative to the spool ("0", ..., "f/f")."""
        out = []
        for root, dirs, _ in os.walk(self.path):
            rel = Path(root).relative_to(self.path)
            if len(rel.parts) >= self.MAX_DEPTH:
                dirs.clear()
            for d in dirs:
                out.append(str(rel / d))
        return sorted(out)

    def qids(self) -> set[str]:
        """Committed messages: a qf file exists."""
        return {n[2:] for n in self.names() if n.startswith("qf")}

    def partials(self) -> list[str]:
        return partial_names(self.names())

    def qf(self, qid: str) -> bytes:
        """The qf file as it is: the envelope, and for a one-file message its data too."""
        return self.file("qf" + qid).read_bytes()

    def qf_envelope(self, qid: str) -> bytes:
        """The qf up to and including its end marker line (`.` or `=`), never the data: what
        to search for envelope records."""
        return split_qf(self.qf(qid))[0]

    def envelope(self, qid: str) -> dict:
        env = parse_qf(self.qf(qid))
        if env.get("qid") != qid:
            raise AssertionError(f"qf{qid} names queue id {env.get('qid')!r}")
        return env

    def df(self, qid: str) -> bytes:
        """The message's data (our Received: + the message), wherever it is: after the `=`
        of a one-file qf, else in the df file (also when there is no qf, as for a partial
        df)."""
        files = self.files()  # one walk of the spool for both names
        if "qf" + qid in files:
            inline = split_qf(files["qf" + qid].read_bytes())[1]
            if inline is not None:
                return inline
        if "df" + qid not in files:
            raise FileNotFoundError(f"df{qid} is not in the spool {self.path}, nor is the "
                                    f"data in a qf{qid}")
        return files["df" + qid].read_bytes()

    def data_location(self, qid: str) -> str:
        """Where a committed message's data is: "qf" (inline after the qf's `=`, and no df)
        or "df" (the qf ends in `.`, and the df exists). AssertionError for anything else
        (a one-file qf with a df next to it, a two-file qf without its df)."""
        env = parse_qf(self.qf(qid))
        names = self.files()
        if env["inline_data"] is not None:
            if "df" + qid in names:
                raise AssertionError(f"qf{qid} holds its data, yet df{qid} exists")
            return "qf"
        if "df" + qid not in names:
            raise AssertionError(f"qf{qid} ends in '.' but there is no df{qid}")
        return "df"

    def split_df(self, qid: str) -> tuple[bytes, bytes]:
        """(our Received: header field incl. its CRLF, the message as the client sent it)."""
        data = self.df(qid)
        if not data.startswith(b"Received:"):
            raise AssertionError(f"the data of {qid} does not start with Received:: "
                                 f"{data[:200]!r}")
        pos = data.index(b"\r\n") + 2
        while data[pos:pos + 1] in (b" ", b"\t"):
            pos = data.index(b"\r\n", pos) + 2
        return data[:pos], data[pos:]


# --------------------------------------------------------------------------- daemon

class StartError(AssertionError):
    pass


class Daemon:
    """One ringmaild process with its own config, spool and log in `workdir`."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = Path(workdir)
        self.config = config
        self.config_path = self.workdir / "ringmail.yaml"
        self.log_path = self.workdir / "ringmaild.log"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.write_config(config)

    # config ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.config["listen"][0]["port"]

    @property
    def spool(self) -> Spool:
        return Spool(Path(self.config["spool"]))

    def write_config(self, config: dict | None = None, text: str | None = None) -> None:
        if config is not None:
            self.config = config
        if text is None:
            text = "\n".join(to_yaml(self.config)) + "\n"
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)  # a HUP never sees half a file

    # process --------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT, read_queue: bool = True) -> "Daemon":
        """Starts ringmaild and waits for "ready" and, with `read_queue`, for the end of
        recovery's reading of the queue after it (the "N message(s) queued" summary), so that
        a test finds every queued message known to its worker, as before the reading moved
        after "ready"."""
        self.returncode = None
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            # a session of its own: kill() reaches the engine too, with one killpg
            self.proc = subprocess.Popen(
                [ringmaild_path(), "--config", str(self.config_path), "--foreground"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        # "ready" is logged once listeners are bound and the spool is recovered
        while not re.search(r"\bready\b", self.log(since_start=True)):
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise StartError(f"ringmaild exited with {self.proc.returncode} at "
                                 f"start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise StartError(f"ringmaild did not log 'ready' within {timeout}s:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.05)
        if read_queue and not self.wait_log(r"spool .*: \d+ message\(s\) queued",
                                            timeout=max(deadline - time.monotonic(), 1.0),
                                            since_start=True):
            self.kill()
            raise StartError(f"ringmaild did not finish reading its queue within {timeout}s:\n"
                             f"{self.log_tail()}")
        # listeners are bound and listening before "ready": no probe connection,
        # which would hold a connection slot the tests count
        return self

    @property
    def pid(self) -> int:
        """The privileged parent: the process operators signal (the pid file's)."""
        return self.proc.pid

    @property
    def engine_pid(self) -> int:
        """The engine: the parent's one multi-threaded child (its workers), which serves
        the connections. The parent's other children are single-threaded: the local
        delivery agents, and right after "ready" the maildrop pickup's intermediate child
        (core/pickup.c), which exits at once."""
        def threads(pid: str) -> int:
            try:
                return len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                return 0

        deadline = time.monotonic() + 5
        while True:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                children = f.read().split()
            engines = [c for c in children if threads(c) > 1]
            if len(engines) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if len(engines) != 1:
            raise AssertionError(f"ringmaild (pid {self.proc.pid}) has children {children}")
        return int(engines[0])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None if still running after `timeout`."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait, kill -9 if it hangs. Returns the exit status (-9 if killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
                with open(self.log_path, "a") as log:
                    log.write(f"[harness] ringmaild ignored SIGTERM for {timeout}s: killed\n")
        self.returncode = self.proc.wait()
        self._reap_group()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL to the parent and the engine at once (a crash, a power cut)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.returncode = self.proc.wait()
        self._reap_group()

    def _reap_group(self) -> None:
        """Nothing of this daemon may outlive the test: an engine whose parent died is
        killed too, and waited for (until it is gone its threads still hold the listening
        port and the spool lock, and a restart would find them taken)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    # log ------------------------------------------------------------------
    def log(self, since_start: bool = False) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        if since_start:
            data = data[self._log_offset:]
        return data.decode("utf-8", "replace")

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern: str, timeout: float = 10.0, since_start: bool = False):
        """Waits for a regex to appear in the log; returns the match or None."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(since_start))
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def sanitizer_report(self) -> str | None:
        text = self.log()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    # SMTP -----------------------------------------------------------------
    def connect(self, **kw) -> SMTPConn:
        return SMTPConn(self.port, **kw)


class RingmailTestCase(unittest.TestCase):
    """Base class: self.daemon(**overrides) starts a daemon that is stopped at the end of
    the test; its log tail is printed when the test failed, and a sanitizer report or an
    unexpected exit fails the test."""

    maxDiff = 4000

    def setUp(self):
        self._daemons: list[Daemon] = []
        self._conns: list[SMTPConn] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="ringmail-it-"))
        self.addCleanup(self._cleanup)

    def new_daemon(self, start: bool = True, workdir: Path | None = None, **overrides) -> Daemon:
        workdir = Path(workdir or tempfile.mkdtemp(dir=self.tmp))
        port = free_port()
        cfg = merge(base_config(workdir, port), overrides)
        d = Daemon(workdir, cfg)
        self._daemons.append(d)
        if start:
            for attempt in range(3):
                try:
                    d.start()
                    break
                except StartError:
                    # another test process may have taken the port between our probe
                    # and the daemon's bind(): try once more on a new one
                    if attempt == 2 or "in use" not in d.log(since_start=True):
                        raise
                    d.config["listen"][0]["port"] = free_port()
                    d.write_config()
        return d

    daemon = new_daemon

    def connect(self, d: Daemon, **kw) -> SMTPConn:
        c = d.connect(**kw)
        self._conns.append(c)
        return c

    def session(self, d: Daemon, helo: str | None = "client.example", **kw) -> SMTPConn:
        """A connection to `d` (closed at the end of the test), after EHLO unless helo=None;
        the EHLO reply is kept as conn.ehlo_reply."""
        c = self.connect(d, **kw)
        if helo:
            c.ehlo_reply = c.ehlo(helo)
            self.assertReply(c.ehlo_reply, 250)
        return c

    def start_session(self, **overrides) -> Reply:
        """A daemon (self.d) with `overrides` and one session after EHLO (self.c)."""
        self.d = self.daemon(**overrides)
        self.c = self.session(self.d)
        return self.c.ehlo_reply

    def assertReply(self, reply: Reply, code: int, enh: str | None = None,
                    pattern: str | None = None):
        self.assertEqual(reply.code, code, f"expected {code}, got {reply.text!r}")
        if enh is not None:
            self.assertEqual(reply.enh, enh, f"expected enhanced code {enh}: {reply.text!r}")
        if pattern is not None:
            self.assertRegex(reply.last, pattern)

    def assertAccepted(self, reply: Reply) -> str:
        qid = reply.qid()
        self.assertIsNotNone(qid, f"expected '250 2.0.0 <qid> Message accepted for delivery', "
                                  f"got {reply.text!r}")
        return qid

    def _failed(self) -> bool:
        """Has this test (or one of its subtests) failed so far? Read from the result, as
        the outcome's own flag is reset for each cleanup."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(getattr(t, "test_case", t) is self
                   for t, _ in getattr(result, "failures", []) + getattr(result, "errors", []))

    def _cleanup(self):
        for c in self._conns:
            c.close()
        problems = []
        for d in self._daemons:
            if d.proc is None:
                continue
            if d.proc.poll() is not None and d.returncode is None:
                problems.append(f"ringmaild (pid {d.pid}) exited unexpectedly with "
                                f"{d.proc.returncode}")
            d.stop()
            report = d.sanitizer_report()
            if report:
                problems.append(f"sanitizer report in ringmaild log:\n{report}")
        if problems or self._failed():
            for d in self._daemons:
                sys.stderr.write(f"\n----- ringmaild log tail ({d.log_path}) -----\n"
                                 f"{d.log_tail()}\n----- end of log -----\n")
        if problems:
            self.fail("\n".join(problems))
        if not self._failed():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            sys.stderr.write(f"(test files kept in {self.tmp})\n")


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies do not count: an orphaned
    engine is reaped by whoever adopted it, which may take its time)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def raise_nofile(want: int) -> int:
    """Raises RLIMIT_NOFILE (soft, and hard when root) to at least `want`; returns soft."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
