"""smtp_sink.py: Postfix's smtp-sink(1) as a fast next hop that only counts (stdlib only).

For tests and benchmarks that need many messages delivered and only their number (the
scripted, recording next hop is sink.Sink):

    from smtp_sink import SmtpSink

    sink = SmtpSink("127.0.0.3").start()        # port 0: a free one
    self.addCleanup(sink.stop)
    ... ringmaild with routing.smart_host: f"[127.0.0.3]:{sink.port}" ...
    sink.wait_messages(100, timeout=60)         # AssertionError when fewer arrived in time
    sink.counts()                               # {"sess": ..., "quit": ..., "mesg": ...}

SmtpSink(addr="127.0.0.1", port=0, backlog=1024, max_concurrency=1024, options=(),
         dump_dir=None):
  options    extra smtp-sink flags, e.g. ["-p"] (no PIPELINING), ["-r", "RCPT"] (4xx every
             RCPT), ["-w", "1"] (1 s before the DATA reply); see `man smtp-sink`.
  dump_dir   when given, every transaction is dumped to a file there (`-d`; slow:
             only for functional tests); dumps() returns their contents. Under root its
             parents must be searchable by nobody (a 0700 mkdtemp is not).
Counters come from smtp-sink's `-c` output ("sess=N quit=N mesg=N", written when a session
ends, at QUIT and at each "."); the readiness probe's session is subtracted. stop()
terminates it (SIGTERM, then SIGKILL) and is idempotent. As root it runs as `nobody`
(smtp-sink requires -u then).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SMTP_SINK = "/usr/sbin/smtp-sink"
START_TIMEOUT = 10.0
_COUNTS_RE = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


def _free_port(addr: str) -> int:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class SmtpSink:
    def __init__(self, addr: str = "127.0.0.1", port: int = 0, backlog: int = 1024,
                 max_concurrency: int = 1024, options=(), dump_dir=None):
        self.addr = addr
        self.port = port
        self.backlog = backlog
        self.max_concurrency = max_concurrency
        self.options = list(options)
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.dir = Path(tempfile.mkdtemp(prefix="ringmail-smtp-sink-"))
        self.out_path = self.dir / "counts.out"
        self.err_path = self.dir / "stderr.out"
        self.proc: subprocess.Popen | None = None
        self._base = {"sess": 0, "quit": 0, "mesg": 0}

    @property
    def hostport(self) -> str:
        """"[addr]:port", as routing.smart_host takes it."""
        return f"[IPv6:{self.addr}]:{self.port}" if ":" in self.addr \
            else f"[{self.addr}]:{self.port}"

    def argv(self) -> list[str]:
        argv = [SMTP_SINK, "-c", "-m", str(self.max_concurrency)]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chmod(self.dump_dir, 0o1777)   # written by nobody
                for parent in self.dump_dir.resolve().parents:
                    if not parent.stat().st_mode & 0o001:
                        raise ValueError(f"dump_dir: {parent} is not searchable by nobody "
                                         "(smtp-sink runs as nobody under root)")
            argv += ["-d", str(self.dump_dir / "%Y%m%d%H%M%S.")]
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return argv + self.options + [f"inet:{host}:{self.port}", str(self.backlog)]

    def start(self, timeout: float = START_TIMEOUT) -> "SmtpSink":
        if not os.access(SMTP_SINK, os.X_OK):
            raise RuntimeError(f"{SMTP_SINK} missing: apt-get install postfix "
                               "(scripts/deps.sh test)")
        fixed = self.port != 0
        for _ in range(3):
            if not fixed:
                self.port = _free_port(self.addr)
            with open(self.out_path, "wb") as out, open(self.err_path, "ab") as err:
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err)
            if self._probe(timeout):
                self._base = self.counts(raw=True)
                return self
            self.stop(remove=False)
            if fixed or "in use" not in self.err_path.read_text(errors="replace"):
                break
        raise RuntimeError(f"smtp-sink did not start on {self.addr}:{self.port}: "
                           f"{self.err_path.read_text(errors='replace')[-2000:]}")

    def _probe(self, timeout: float) -> bool:
        """One session (greeting, QUIT) once it listens; its counters become the baseline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.addr, self.port), timeout=2) as s:
                    f = s.makefile("rwb")
                    if not f.readline().startswith(b"220"):
                        return False
                    f.write(b"QUIT\r\n")
                    f.flush()
                    f.readline()
                break
            except OSError:
                time.sleep(0.05)
        else:
            return False
        # the probe's session is counted once smtp-sink has seen it end
        while time.monotonic() < deadline:
            if self.counts(raw=True)["sess"] >= 1:
                return True
            time.sleep(0.02)
        return False

    def counts(self, raw: bool = False) -> dict:
        """{"sess", "quit", "mesg"}: sessions ended, QUITs, messages received (the
        readiness probe left out unless raw)."""
        try:
            data = self.out_path.read_bytes()[-256:]
        except FileNotFoundError:
            data = b""
        found = _COUNTS_RE.findall(data)
        now = dict(zip(("sess", "quit", "mesg"), map(int, found[-1]))) if found \
            else {"sess": 0, "quit": 0, "mesg": 0}
        if raw:
            return now
        return {k: now[k] - self._base[k] for k in now}

    @property
    def messages(self) -> int:
        return self.counts()["mesg"]

    def wait_messages(self, n: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages
            if got >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp-sink: {got} of {n} messages after {timeout}s")
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"smtp-sink exited ({self.proc.returncode}): "
                                     f"{self.err_path.read_text(errors='replace')[-1000:]}")
            time.sleep(0.05)

    def dumps(self) -> list[bytes]:
        """The dumped transactions (with dump_dir), oldest file first."""
        if self.dump_dir is None:
            return []
        files = sorted(self.dump_dir.iterdir(), key=lambda p: p.stat().st_mtime)
        return [p.read_bytes() for p in files if p.is_file()]

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
