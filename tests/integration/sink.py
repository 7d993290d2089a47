"""sink.py: a scriptable next-hop SMTP server for the delivery tests (stdlib asyncio only).

ringmaild delivers to it; it records what arrived and answers what the test scripted,
including the faults a real next hop shows (stalls, dropped connections, garbage).

    from sink import Sink, first_n, Stall, Close, Garbage, Endless, Delay

    sink = Sink("127.0.0.2").start()            # port 0: a free one; "::1" works too
    self.addCleanup(sink.stop)
    ... ringmaild with routing.smart_host: f"[127.0.0.2]:{sink.port}" ...
    msgs = sink.wait_messages(1, timeout=30)    # raises AssertionError when fewer arrived
    m = msgs[0]
    m.mail_from, m.rcpt_tos, m.data             # envelope and the message (dot-unstuffed)
    m.mail_options, m.rcpt_options               # ["BODY=8BITMIME", "RET=HDRS"], [["NOTIFY=..."]]
    m.tls                                        # None or {"version": "TLSv1.3", "cipher": ...}
    m.via, m.raw, m.conn, m.peer, m.helo, m.time # "DATA"/"BDAT", bytes as sent, connection no.
    sink.connections[0].transactions             # per connection: messages accepted on it
    sink.max_concurrent                          # most connections open at once

Constructor (every argument but addr is a keyword):
    Sink(addr="127.0.0.1", port=0, hostname="sink.test", extensions=None, tls_cert=None,
         script=None, **phase_replies)
  extensions  (or ehlo_extensions) EHLO keywords advertised, in order; default DEFAULT_EXTENSIONS, plus STARTTLS
              when there is a certificate. A given list is used as is ("SIZE 1000" sets the
              limit: MAIL SIZE= above it gets 552 5.3.4, as does a longer message).
  tls_cert    (cert_path, key_path), or True for a self-signed one made with openssl.
  script / phase_replies: what to answer per phase (keyword arguments merge into script):
      greeting  "220 ..." (a 421 greeting closes; any other 4xx/5xx greeting answers 503
                to everything but QUIT, as RFC 5321 3.1 asks)
      ehlo helo starttls mail data bdat final rset noop quit vrfy
      rcpt      one reply for every address, or {"addr@x": reply, "*": default}
                (address matched case-insensitively)
  Default replies are Postfix-like 250s, "354 End data with <CR><LF>.<CR><LF>" and
  "250 2.0.0 Ok: queued as N". "bdat" answers a chunk that is not LAST; "final" answers
  the end of DATA or BDAT LAST.
  A reply is one of:
      "451 4.3.0 try later"            a reply; "\\n" separates the lines of a multi-line
                                       one, written as given ("250-a\\n250 b")
      [r1, r2, ...]                    r1 the first time this phase (this address) is
                                       reached on this Sink, r2 the second...; the last one
                                       repeats. first_n(2, "451 4.3.0 busy", "250 ok") is
                                       [451, 451, 250].
      callable(conn, arg) -> reply     conn is the Connection record, arg the command's
                                       argument (the address for rcpt)
      Stall(after=None)                never answer (keep reading, discard); in "final",
                                       after=N stalls once N bytes of content are in
      Close(after=None)                close the connection instead of answering; in
                                       "final", after=N closes mid-DATA after N bytes
      Garbage(b"...")                  write these bytes instead of a reply, then go on
                                       (in the same state: after STARTTLS, still plain text)
      Endless()                        write an endless line (no CRLF), until the peer closes
                                       (capped at 64 MiB, then stalls)
      Delay(seconds, reply)            answer `reply` after a pause (slow servers,
                                       overlapping connections)
  Ordering and extensions are checked like a real server: MAIL parameters need their
  extension (SIZE, BODY/8BITMIME, SMTPUTF8, RET/ENVID/NOTIFY/ORCPT need DSN, else 555 5.5.4),
  a non-ASCII address needs SMTPUTF8 (553 5.6.7), BDAT needs CHUNKING. What a client does
  wrong without being refused (pipelining not offered, content before the 354, plaintext
  after STARTTLS, 8-bit data without BODY=8BITMIME) goes to conn.violations.

Records: .messages (accepted: final reply 2xx), .rejected (reached the end of data but got
4xx/5xx or a fault), .connections (Connection: number, peer, helo, esmtp, tls, transactions,
commands, violations, closed), .max_concurrent, .open_connections, .save_jsonl(path).
Waits: wait_messages(n, timeout), wait_connections(n, timeout), wait_until(pred, timeout).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "DSN",
                      "ENHANCEDSTATUSCODES", "CHUNKING"]
MAX_COMMAND_LINE = 4096      # longer command lines get 500 5.5.2 (RFC 5321: 512 at least)
STREAM_LIMIT = 1 << 20       # longest DATA line the reader buffers
ENDLESS_CAP = 64 << 20
START_TIMEOUT = 10.0
OPENSSL_TIMEOUT = 30.0


# --------------------------------------------------------------------------- scripting

@dataclass(frozen=True)
class Stall:
    after: int | None = None


@dataclass(frozen=True)
class Close:
    after: int | None = None


@dataclass(frozen=True)
class Garbage:
    data: bytes = b"\x00\xff garbage \x1b[0m no code\r\n"


@dataclass(frozen=True)
class Endless:
    chunk: bytes = b"x" * 65536


@dataclass(frozen=True)
class Delay:
    seconds: float
    reply: object


def first_n(n: int, reply, then) -> list:
    """`reply` the first n times, `then` from the n+1th on."""
    return [reply] * n + [then]


# --------------------------------------------------------------------------- records

@dataclass
class Message:
    conn: int                    # Connection.number
    peer: tuple
    helo: str | None
    esmtp: bool
    tls: dict | None
    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]          # accepted recipients, in order
    rcpt_options: list[list[str]]
    data: bytes                  # the message as stored (DATA: dot-unstuffed; BDAT: as is)
    raw: bytes                   # as it came over the wire (DATA: with dot-stuffing, the
                                 # terminating ".\r\n" excluded; BDAT: the chunks joined)
    via: str                     # "DATA" or "BDAT"
    body_8bit: bool              # any octet above 127 in data
    reply: str                   # the final reply sent ("" for a fault)
    time: float                  # time.time() at the end of data


@dataclass
class Connection:
    number: int                  # 1, 2, ... in accept order
    peer: tuple
    opened: float
    helo: str | None = None
    esmtp: bool = False
    tls: dict | None = None
    transactions: int = 0        # messages accepted on this connection
    commands: list[str] = field(default_factory=list)   # command lines, in order
    violations: list[str] = field(default_factory=list)
    closed: float | None = None
    closed_by: str | None = None  # "quit", "peer", "server", "fault", "stop"


class _Fault(Exception):
    """A scripted fault ended the connection."""


# --------------------------------------------------------------------------- certificates

_cert_lock = threading.Lock()
_self_signed: tuple[str, str] | None = None


def self_signed_cert(cn: str = "sink.test") -> tuple[str, str]:
    """(cert, key) of a self-signed ECDSA P-256 certificate for `cn`, made once per process
    with the openssl command in a temporary directory."""
    global _self_signed
    with _cert_lock:
        if _self_signed is None:
            d = Path(tempfile.mkdtemp(prefix="ringmail-sink-cert-"))
            atexit.register(shutil.rmtree, d, True)
            cert, key = d / "sink.pem", d / "sink.key"
            run = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "30", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}"],
                capture_output=True, timeout=OPENSSL_TIMEOUT)
            if run.returncode != 0:
                raise RuntimeError(f"openssl req failed: {run.stderr.decode(errors='replace')}")
            _self_signed = (str(cert), str(key))
        return _self_signed


# --------------------------------------------------------------------------- the server

_PARAM_EXT = {"SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8", "RET": "DSN",
              "ENVID": "DSN", "NOTIFY": "DSN", "ORCPT": "DSN"}
_PATH_RE = re.compile(r"^\s*<([^<>]*)>(.*)$")


class Sink:
    def __init__(self, addr: str = "127.0.0.1", port: int = 0, *, hostname: str = "sink.test",
                 extensions: list[str] | None = None, tls_cert=None, script: dict | None = None,
                 ehlo_extensions: list[str] | None = None, **phase_replies):
        self.addr = addr
        self.port = port
        self.hostname = hostname
        if ehlo_extensions is not None:
            extensions = ehlo_extensions
        if tls_cert is True:
            tls_cert = self_signed_cert(hostname)
        self.tls_context = None
        if tls_cert:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))
        if extensions is None:
            extensions = list(DEFAULT_EXTENSIONS) + (["STARTTLS"] if tls_cert else [])
        elif any(e.upper() == "STARTTLS" for e in extensions) and not tls_cert:
            raise ValueError("STARTTLS advertised without tls_cert")
        self.extensions = list(extensions)
        self.script = dict(script or {}, **phase_replies)
        unknown = set(self.script) - {"greeting", "ehlo", "helo", "starttls", "mail", "rcpt",
                                      "data", "bdat", "final", "rset", "noop", "quit", "vrfy"}
        if unknown:
            raise ValueError(f"unknown script phases: {sorted(unknown)}")

        self.messages: list[Message] = []
        self.rejected: list[Message] = []
        self.connections: list[Connection] = []
        self.open_connections = 0
        self.max_concurrent = 0
        self._uses: dict[tuple, int] = {}
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._tasks: set[asyncio.Task] = set()
        self._error: BaseException | None = None

    # lifecycle --------------------------------------------------------------
    def start(self) -> "Sink":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name=f"sink-{self.addr}")
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError("sink did not start")
        if self._error:
            raise RuntimeError(f"sink could not listen on {self.addr}:{self.port}: "
                               f"{self._error}")
        return self

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._client, self.addr, self.port, family=family, limit=STREAM_LIMIT,
                reuse_address=True, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as e:  # reported by start()
            self._error = e
            ready.set()
            self._loop.close()
            return
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        """Closes the listener and every connection; idempotent."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return

        async def shutdown():
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(START_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def hostport(self) -> str:
        """"[addr]:port", as routing.smart_host takes it."""
        return f"[{self.addr}]:{self.port}" if ":" not in self.addr else \
            f"[IPv6:{self.addr}]:{self.port}"

    # waiting ----------------------------------------------------------------
    def wait_until(self, pred, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink: timed out after {timeout}s waiting for "
                                         f"{what}; {self.summary()}")
                self._cond.wait(left)

    def wait_messages(self, n: int, timeout: float = 30.0) -> list[Message]:
        self.wait_until(lambda: len(self.messages) >= n, timeout, f"{n} message(s)")
        return list(self.messages)

    def wait_connections(self, n: int, timeout: float = 30.0) -> list[Connection]:
        self.wait_until(lambda: len(self.connections) >= n, timeout, f"{n} connection(s)")
        return list(self.connections)

    def summary(self) -> str:
        return (f"{len(self.messages)} accepted, {len(self.rejected)} rejected, "
                f"{len(self.connections)} connections "
                f"({[c.commands[-3:] for c in self.connections[-3:]]} last commands)")

    def save_jsonl(self, path) -> None:
        """Every accepted and rejected message as one JSON object a line (bytes as base64)."""
        with open(path, "w") as f:
            for m in self.messages + self.rejected:
                d = asdict(m)
                d["data"] = base64.b64encode(m.data).decode()
                d["raw"] = base64.b64encode(m.raw).decode()
                d["accepted"] = m in self.messages
                f.write(json.dumps(d) + "\n")

    async def _client(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await _serve(self, reader, writer)
        finally:
            self._tasks.discard(task)

    # script -----------------------------------------------------------------
    def _pick(self, phase: str, default, conn: Connection, arg: str = "", key: str = ""):
        spec = self.script.get(phase, default)
        if isinstance(spec, dict):
            spec = spec.get(key, spec.get("*", default))
            uses_key = (phase, key if key in self.script[phase] else "*")
        else:
            uses_key = (phase, "")
        if callable(spec) and not isinstance(spec, (Stall, Close, Garbage, Endless, Delay)):
            spec = spec(conn, arg)
        if isinstance(spec, list):
            i = self._uses.get(uses_key, 0)
            self._uses[uses_key] = i + 1
            spec = spec[min(i, len(spec) - 1)]
        return spec


class _Session:
    """One connection: the SMTP server side, line by line."""

    def __init__(self, sink: Sink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: Connection):
        self.sink, self.reader, self.writer, self.conn = sink, reader, writer, conn
        self.ext = {e.split()[0].upper(): e for e in sink.extensions}
        self.size_limit = None
        if "SIZE" in self.ext and len(self.ext["SIZE"].split()) > 1:
            self.size_limit = int(self.ext["SIZE"].split()[1])
        self.greeted = False       # EHLO/HELO seen (since STARTTLS)
        self.refused_greeting = False
        self.reset()

    def reset(self) -> None:
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpts: list[str] = []
        self.rcpt_options: list[list[str]] = []
        self.chunks: list[bytes] = []
        self.bdat_failed: str | None = None

    def offered(self, keyword: str) -> bool:
        if keyword == "STARTTLS":
            return "STARTTLS" in self.ext and self.conn.tls is None
        return keyword in self.ext

    # output -----------------------------------------------------------------
    async def answer(self, spec) -> None:
        """Acts on a reply spec; raises _Fault when the connection must end."""
        if isinstance(spec, Delay):
            await asyncio.sleep(spec.seconds)
            spec = spec.reply
        if isinstance(spec, Stall):
            await self.stall()
        if isinstance(spec, Close):
            raise _Fault("close")
        if isinstance(spec, Garbage):
            self.writer.write(spec.data)
            await self.writer.drain()
            return
        if isinstance(spec, Endless):
            sent = 0
            while sent < ENDLESS_CAP:
                self.writer.write(spec.chunk)
                await self.writer.drain()
                sent += len(spec.chunk)
            await self.stall()
        self.writer.write(b"".join(line.encode() + b"\r\n"
                                   for line in str(spec).split("\n")))
        await self.writer.drain()

    async def stall(self) -> None:
        while await self.reader.read(65536):
            pass
        raise _Fault("stall ended by the peer")

    def pick(self, phase, default, arg="", key=""):
        return self.sink._pick(phase, default, self.conn, arg, key)

    def buffered(self) -> int:
        """Bytes the peer sent that we have not read yet (pipelining checks)."""
        return len(getattr(self.reader, "_buffer", b""))

    # the dialogue -----------------------------------------------------------
    async def run(self) -> None:
        greeting = self.pick("greeting", f"220 {self.sink.hostname} ESMTP sink")
        await self.answer(greeting)
        if isinstance(greeting, str) and greeting[:1] in "45":
            if greeting.startswith("421"):
                raise _Fault("421 greeting")
            self.refused_greeting = True
        while True:
            try:
                line = await self.reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as e:
                if e.partial:
                    self.conn.violations.append(f"unterminated line at close: {e.partial!r}")
                self.conn.closed_by = "peer"
                return
            except asyncio.LimitOverrunError:
                await self.answer("500 5.5.2 Line too long")
                raise _Fault("overlong line")
            text = line[:-2].decode("utf-8", "surrogateescape")
            self.conn.commands.append(text)
            if len(line) > MAX_COMMAND_LINE:
                await self.answer("500 5.5.2 Line too long")
                continue
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if (self.buffered() and not self.offered("PIPELINING")
                    and verb not in ("BDAT",)):
                self.conn.violations.append(f"pipelined after {verb} without PIPELINING")
            if self.refused_greeting and verb != "QUIT":
                await self.answer("503 5.5.1 No service")
                continue
            handler = getattr(self, "cmd_" + verb, None)
            if handler is None:
                await self.answer("502 5.5.2 Error: command not recognized")
                continue
            if await handler(arg.strip()) == "quit":
                self.conn.closed_by = "quit"
                return

    async def cmd_EHLO(self, arg):
        if not arg:
            return await self.answer("501 5.5.4 Syntax: EHLO hostname")
        lines = [self.sink.hostname] + [e for e in self.sink.extensions
                                        if e.upper() != "STARTTLS" or self.offered("STARTTLS")]
        default = "\n".join([f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"])
        reply = self.pick("ehlo", default, arg)
        if isinstance(reply, str) and reply.startswith("250"):
            self.conn.helo, self.conn.esmtp, self.greeted = arg, True, True
            self.reset()
        await self.answer(reply)

    async def cmd_HELO(self, arg):
        if not arg:
            return await self.answer("501 5.5.4 Syntax: HELO hostname")
        reply = self.pick("helo", f"250 {self.sink.hostname}", arg)
        if isinstance(reply, str) and reply.startswith("250"):
            self.conn.helo, self.conn.esmtp, self.greeted = arg, False, True
            self.ext = {}   # no extension after HELO
            self.reset()
        await self.answer(reply)

    async def cmd_STARTTLS(self, arg):
        if not self.conn.esmtp or not self.offered("STARTTLS"):
            return await self.answer("502 5.5.1 Error: command not implemented")
        if arg:
            return await self.answer("501 5.5.4 Syntax: STARTTLS")
        reply = self.pick("starttls", "220 2.0.0 Ready to start TLS")
        if self.buffered():
            # RFC 3207 5: the client must wait for the 220; what it pipelined is dropped
            self.conn.violations.append("plaintext pipelined after STARTTLS")
            self.reader._buffer.clear()
        await self.answer(reply)
        if not str(reply).startswith("220"):
            return
        await self.writer.start_tls(self.sink.tls_context)
        obj = self.writer.get_extra_info("ssl_object")
        self.conn.tls = {"version": obj.version(), "cipher": obj.cipher()[0],
                         "bits": obj.cipher()[2]}
        self.greeted = False
        self.conn.helo = None
        self.ext = {e.split()[0].upper(): e for e in self.sink.extensions}
        self.reset()

    def params(self, text: str, allowed: set[str]):
        """(params list, error reply or None)."""
        out = []
        for p in text.split():
            key = p.split("=", 1)[0].upper()
            if key not in allowed or not self.offered(_PARAM_EXT[key]):
                return out, f"555 5.5.4 Unsupported option: {p}"
            out.append(p)
        return out, None

    async def cmd_MAIL(self, arg):
        if not self.greeted:
            return await self.answer("503 5.5.1 Error: send HELO/EHLO first")
        if self.mail_from is not None:
            return await self.answer("503 5.5.1 Error: nested MAIL command")
        m = _PATH_RE.match(arg[5:]) if arg[:5].upper() == "FROM:" else None
        if not m:
            return await self.answer("501 5.5.4 Syntax: MAIL FROM:<address>")
        addr, rest = m.group(1), m.group(2)
        params, err = self.params(rest, {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID"})
        if err:
            return await self.answer(err)
        upper = [p.upper() for p in params]
        if not addr.isascii() and "SMTPUTF8" not in upper:
            return await self.answer("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
        for p in upper:
            if p.startswith("SIZE=") and self.size_limit and int(p[5:]) > self.size_limit:
                return await self.answer("552 5.3.4 Message size exceeds fixed limit")
            if p.startswith("BODY=") and p not in ("BODY=7BIT", "BODY=8BITMIME"):
                return await self.answer(f"501 5.5.4 Bad BODY parameter: {p}")
        reply = self.pick("mail", "250 2.1.0 Ok", addr)
        if isinstance(reply, str) and reply.startswith("250"):
            self.mail_from, self.mail_options = addr, params
        await self.answer(reply)

    async def cmd_RCPT(self, arg):
        if self.mail_from is None:
            return await self.answer("503 5.5.1 Error: need MAIL command")
        m = _PATH_RE.match(arg[3:]) if arg[:3].upper() == "TO:" else None
        if not m or not m.group(1):
            return await self.answer("501 5.5.4 Syntax: RCPT TO:<address>")
        addr, rest = m.group(1), m.group(2)
        params, err = self.params(rest, {"NOTIFY", "ORCPT"})
        if err:
            return await self.answer(err)
        if not addr.isascii() and not any(p.upper() == "SMTPUTF8" for p in self.mail_options):
            return await self.answer("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
        reply = self.pick("rcpt", "250 2.1.5 Ok", addr, addr.lower())
        if isinstance(reply, str) and reply.startswith("25"):
            self.rcpts.append(addr)
            self.rcpt_options.append(params)
        await self.answer(reply)

    async def cmd_DATA(self, arg):
        if self.chunks:
            return await self.answer("503 5.5.1 Error: DATA after BDAT")
        if self.mail_from is None:
            return await self.answer("503 5.5.1 Error: need MAIL command")
        if not self.rcpts:
            return await self.answer("554 5.5.1 Error: no valid recipients")
        if self.buffered():
            self.conn.violations.append("message content sent before the 354")
        reply = self.pick("data", "354 End data with <CR><LF>.<CR><LF>")
        await self.answer(reply)
        if not str(reply).startswith("354"):
            return
        final = self.pick("final", None)
        limit = getattr(final, "after", None) if isinstance(final, (Stall, Close)) else None
        raw = bytearray()
        lines = []
        while True:
            try:
                line = await self.reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError:
                self.conn.violations.append("connection closed inside DATA")
                raise _Fault("peer closed mid-DATA")
            if line == b".\r\n":
                break
            raw += line
            lines.append(line[1:] if line.startswith(b".") else line)
            if limit is not None and len(raw) >= limit:
                break
        await self.finish(bytes(raw), b"".join(lines), "DATA", final)

    async def cmd_BDAT(self, arg):
        parts = arg.split()
        if not (1 <= len(parts) <= 2 and parts[0].isdigit()
                and (len(parts) == 1 or parts[1].upper() == "LAST")):
            return await self.answer("501 5.5.4 Syntax: BDAT size [LAST]")
        size, last = int(parts[0]), len(parts) == 2
        try:
            chunk = await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            self.conn.violations.append("connection closed inside BDAT")
            raise _Fault("peer closed mid-BDAT")
        if not self.offered("CHUNKING"):
            self.conn.violations.append("BDAT without CHUNKING")
            return await self.answer("502 5.5.1 Error: command not implemented")
        if self.mail_from is None:
            return await self.answer("503 5.5.1 Error: need MAIL command")
        if not self.rcpts:
            return await self.answer("554 5.5.1 Error: no valid recipients")
        self.chunks.append(chunk)
        if not last:
            return await self.answer(self.pick("bdat", f"250 2.0.0 {size} octets received"))
        data = b"".join(self.chunks)
        final = self.pick("final", None)
        if isinstance(final, (Stall, Close)) and final.after is not None:
            data = data[:final.after]
        await self.finish(data, data, "BDAT", final)

    async def finish(self, raw: bytes, data: bytes, via: str, final) -> None:
        if final is None:
            final = f"250 2.0.0 Ok: queued as {len(self.sink.messages) + 1}"
        if self.size_limit and len(data) > self.size_limit and isinstance(final, str):
            final = "552 5.3.4 Message size exceeds fixed limit"
        said = final.reply if isinstance(final, Delay) else final   # what the peer gets
        c = self.conn
        rec = Message(conn=c.number, peer=c.peer, helo=c.helo, esmtp=c.esmtp, tls=c.tls,
                      mail_from=self.mail_from, mail_options=self.mail_options,
                      rcpt_tos=self.rcpts, rcpt_options=self.rcpt_options, data=data, raw=raw,
                      via=via, body_8bit=any(b > 127 for b in data),
                      reply=said if isinstance(said, str) else "", time=time.time())
        if rec.body_8bit and not any(p.upper() == "BODY=8BITMIME" for p in self.mail_options):
            c.violations.append("8-bit data without BODY=8BITMIME")
        self.reset()
        ok = isinstance(said, str) and said.startswith("2")
        if not ok:
            with self.sink._cond:
                self.sink.rejected.append(rec)
                self.sink._cond.notify_all()
        await self.answer(final)
        if ok:
            with self.sink._cond:
                c.transactions += 1
                self.sink.messages.append(rec)
                self.sink._cond.notify_all()

    async def cmd_RSET(self, arg):
        self.reset()
        await self.answer(self.pick("rset", "250 2.0.0 Ok"))

    async def cmd_NOOP(self, arg):
        await self.answer(self.pick("noop", "250 2.0.0 Ok"))

    async def cmd_VRFY(self, arg):
        await self.answer(self.pick("vrfy", "252 2.0.0 Cannot VRFY user", arg))

    async def cmd_QUIT(self, arg):
        await self.answer(self.pick("quit", "221 2.0.0 Bye"))
        return "quit"


async def _serve(sink: Sink, reader, writer) -> None:
    peer = writer.get_extra_info("peername")[:2]
    with sink._cond:
        conn = Connection(number=len(sink.connections) + 1, peer=peer, opened=time.time())
        sink.connections.append(conn)
        sink.open_connections += 1
        sink.max_concurrent = max(sink.max_concurrent, sink.open_connections)
        sink._cond.notify_all()
    try:
        await _Session(sink, reader, writer, conn).run()
    except _Fault:
        conn.closed_by = "fault"
    except asyncio.CancelledError:
        conn.closed_by = "stop"
    except (ConnectionError, ssl.SSLError, OSError) as e:
        conn.closed_by = "peer"
        conn.violations.append(f"connection error: {e!r}")
    finally:
        if conn.closed_by in ("fault", "stop"):
            writer.transport.abort()   # no FIN handshake, no pending reply: a crash
        else:
            writer.close()
        with sink._cond:
            conn.closed = time.time()
            if conn.closed_by is None:
                conn.closed_by = "server"
            sink.open_connections -= 1
            sink._cond.notify_all()
