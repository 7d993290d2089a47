"""dns_fixture.py: a real DNS server (Debian's dnsmasq) on a loopback address with the records a
test gives, for ringmaild's `dns.servers` and the util/dns tests (stdlib only).

    from dns_fixture import DnsFixture

    dns = DnsFixture("127.0.0.2")                   # zone "test": every name under .test
                                                    # that has no record is NXDOMAIN
    dns.mx("example.test", (10, "mx1.example.test"), (20, "mx2.example.test"))
    dns.a("mx1.example.test", "127.0.0.3", "127.0.0.4")
    dns.aaaa("mx2.example.test", "::1")
    dns.cname("alias.example.test", "mx1.example.test")
    dns.null_mx("nomail.test")                      # RFC 7505: MX 0 "."
    dns.nxdomain("gone.example")                    # NXDOMAIN for it and its subdomains
    dns.servfail("broken.test")                     # SERVFAIL (from a forwarder that says so)
    dns.blackhole("slow.test")                      # never answered: the resolver times out
    dns.start()                                     # waits until it answers (bounded)
    self.addCleanup(dns.stop)
    config = {"dns": {"servers": [dns.server]}}     # "127.0.0.2:PORT" ("[::1]:PORT" for ::1)
    dns.query("example.test", "MX")                 # -> (rcode, [answer data...]), for checks
    dns.queries()                                   # [("MX", "example.test"), ...] as asked

Records may be added while it runs: call restart() to apply them (same address and port).
DnsFixture(addr, zones=("test",), port=0, workdir=None): with workdir (e.g. the test's tmp
directory) the log is kept there; else a temporary directory that stop() removes.
Names outside the given zones (default ["test"]) and not declared get REFUSED, as a server
that is not authoritative for them would. A name with records but none of the asked type
gets an empty NOERROR answer (NODATA). A CNAME's target must be a name declared here.
dnsmasq runs in the foreground with no configuration file, no /etc/hosts, no resolv.conf
and no cache; its log (every query) is in `log_path`. Nothing listens beyond the given
loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import random
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

DNSMASQ = "/usr/sbin/dnsmasq"
START_TIMEOUT = 10.0
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _free_port(addr: str) -> int:
    """A port free for both UDP and TCP on addr (dnsmasq listens on both)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.bind((addr, 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(family, socket.SOCK_STREAM) as t:
                    t.bind((addr, port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free UDP+TCP port on {addr}")


class _Servfail(threading.Thread):
    """A UDP DNS 'server' that answers every query with SERVFAIL: dnsmasq forwards the
    servfail() zones to it, and passes its answer on."""

    def __init__(self):
        super().__init__(daemon=True, name="dns-servfail")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(4096)
            except OSError:
                return  # closed by stop()
            if len(q) >= 12:
                # same id and question, QR=1 RD RA, rcode 2, no records
                self.sock.sendto(q[:2] + struct.pack(">H", 0x8182) + q[4:6] + bytes(6)
                                 + q[12:], peer)

    def stop(self):
        self.sock.close()


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("idna")
    return out + b"\0"


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels, end, jumps = [], None, 0
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            jumps += 1
            if jumps > 32:
                raise ValueError("compression loop")
            continue
        if n == 0:
            return ".".join(labels) or ".", end if end is not None else pos + 1
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n


def dns_query(server: str, port: int, name: str, qtype: str = "A",
              timeout: float = 5.0) -> tuple[str, list]:
    """One UDP query; (rcode name, answers) with answers as strings: "10 mx.test" for MX,
    addresses for A/AAAA, "CNAME target" for a CNAME in the chain. Raises TimeoutError."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    tid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + _encode_name(name) \
        + struct.pack(">HH", QTYPES[qtype], 1)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, port))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = s.recv(65535)
            except socket.timeout:
                raise TimeoutError(f"no DNS answer from {server}:{port} for {name} {qtype}")
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == tid:
                break
    flags, qd, an = struct.unpack(">HHH", msg[2:8])
    pos = 12
    for _ in range(qd):
        pos = _read_name(msg, pos)[1] + 4
    answers = []
    for _ in range(an):
        pos = _read_name(msg, pos)[1]
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == 1:
            answers.append(str(ipaddress.IPv4Address(rdata)))
        elif rtype == 28:
            answers.append(str(ipaddress.IPv6Address(rdata)))
        elif rtype == 15:
            answers.append(f"{struct.unpack('>H', rdata[:2])[0]} {_read_name(msg, pos + 2)[0]}")
        elif rtype == 5:
            answers.append(f"CNAME {_read_name(msg, pos)[0]}")
        else:
            answers.append(f"TYPE{rtype} {rdata.hex()}")
        pos += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), answers


class DnsFixture:
    def __init__(self, addr: str = "127.0.0.2", zones: list[str] | tuple = ("test",),
                 port: int = 0, workdir=None):
        self.addr = addr
        self.port = port
        self.zones = list(zones)
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="ringmail-dns-"))
        self.log_path = self.dir / "dnsmasq.log"
        self.proc: subprocess.Popen | None = None
        self._options: list[str] = []
        self._servfail: _Servfail | None = None
        self._blackhole_port: int | None = None

    # records ----------------------------------------------------------------
    def mx(self, domain: str, *hosts: tuple[int, str]) -> "DnsFixture":
        """MX records: (preference, exchanger) pairs."""
        for pref, host in hosts:
            self._options.append(f"--mx-host={domain},{host},{pref}")
        return self

    def null_mx(self, domain: str) -> "DnsFixture":
        """RFC 7505 null MX: one MX with preference 0 and the root as exchanger."""
        return self.mx(domain, (0, "."))

    def a(self, name: str, *addrs: str) -> "DnsFixture":
        for a in addrs:
            ipaddress.IPv4Address(a)
            self._options.append(f"--host-record={name},{a}")
        return self

    def aaaa(self, name: str, *addrs: str) -> "DnsFixture":
        for a in addrs:
            ipaddress.IPv6Address(a)
            self._options.append(f"--host-record={name},{a}")
        return self

    def cname(self, alias: str, target: str) -> "DnsFixture":
        self._options.append(f"--cname={alias},{target}")
        return self

    def nxdomain(self, domain: str) -> "DnsFixture":
        """NXDOMAIN for domain and every name under it (any type)."""
        self._options.append(f"--address=/{domain}/")
        return self

    def servfail(self, domain: str) -> "DnsFixture":
        """SERVFAIL for domain and every name under it (any type)."""
        if self._servfail is None:
            self._servfail = _Servfail()
            self._servfail.start()
        self._options.append(f"--server=/{domain}/127.0.0.1#{self._servfail.port}")
        return self

    def blackhole(self, domain: str) -> "DnsFixture":
        """Queries for domain (and under it) are forwarded to a port where nothing answers:
        the client's resolver times out (dnsmasq never replies)."""
        if self._blackhole_port is None:
            self._blackhole_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._blackhole_sock.bind(("127.0.0.1", 0))   # bound, never read: no ICMP
            self._blackhole_port = self._blackhole_sock.getsockname()[1]
        self._options.append(f"--server=/{domain}/127.0.0.1#{self._blackhole_port}")
        return self

    # process ----------------------------------------------------------------
    @property
    def server(self) -> str:
        """The address for ringmaild's dns.servers."""
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"

    def _argv(self) -> list[str]:
        argv = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", f"--listen-address={self.addr}",
                f"--port={self.port}", "--pid-file=", "--log-facility=-", "--log-queries",
                "--cache-size=0", "--no-negcache"]
        if os.geteuid() == 0:
            # dnsmasq drops root to "nobody:dip" by default; dip may not exist
            user = "nobody" if _has_user("nobody") else "root"
            argv += [f"--user={user}", f"--group={'nogroup' if user == 'nobody' else 'root'}"]
        argv += [f"--local=/{z}/" for z in self.zones]
        return argv + self._options

    def start(self, timeout: float = START_TIMEOUT) -> "DnsFixture":
        if not os.access(DNSMASQ, os.X_OK):
            raise RuntimeError(f"{DNSMASQ} missing: apt-get install dnsmasq-base "
                               "(scripts/deps.sh test)")
        fixed = self.port != 0
        for attempt in range(3):
            if not fixed:
                self.port = _free_port(self.addr)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log)
            if self._wait_ready(timeout):
                return self
            self.stop()
            if fixed or "in use" not in self.log():
                break
        raise RuntimeError(f"dnsmasq did not answer on {self.server}:\n{self.log()[-3000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                dns_query(self.addr, self.port, "ready-probe.test", "A", timeout=0.2)
                return True
            except (TimeoutError, OSError):
                time.sleep(0.05)
        return False

    def restart(self) -> "DnsFixture":
        """Applies records added since start(), on the same address and port."""
        self._stop_process()
        return self.start()

    def _stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Stops dnsmasq and the helpers; idempotent. The directory (and the log) is removed
        unless it was given as workdir."""
        self._stop_process()
        if self._servfail is not None:
            self._servfail.stop()
            self._servfail = None
        if self._blackhole_port is not None:
            self._blackhole_sock.close()
            self._blackhole_port = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # checks -----------------------------------------------------------------
    def query(self, name: str, qtype: str = "A", timeout: float = 5.0) -> tuple[str, list]:
        return dns_query(self.addr, self.port, name, qtype, timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queries(self) -> list[tuple[str, str]]:
        """(type, name) of every query dnsmasq received, in order (the readiness probes
        left out)."""
        return [(m.group(1), m.group(2))
                for m in re.finditer(r"query\[(\w+)\] (\S+) from", self.log())
                if not m.group(2).startswith("ready-probe.")]


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
