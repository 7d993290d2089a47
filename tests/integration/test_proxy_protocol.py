"""HAProxy's PROXY protocol (issue 12): Debian's haproxy in front of ringmaild with
send-proxy-v2 and send-proxy (v1). The session behind it is the real client's: its
address is in the log's relay=, in the Received: header, in the access map's Connect:
check and in the per-client connection limit. Only listen[].trusted_proxies may connect to
such a listener; a header that is not one is refused without harm; a health check (LOCAL)
leaves no trace."""

import shutil
import socket
import struct
import subprocess
import time
import unittest

from ringmail_harness import (HOSTNAME, RingmailTestCase, SMTPConn, free_port, make_message)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

HAPROXY_CFG = """global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind 127.0.0.1:{front}
    default_backend mta
backend mta
    server ringmail 127.0.0.1:{back} {send} check inter 200
"""


def v2_header(cmd: int, fam: int, body: bytes) -> bytes:
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


class ProxyCase(RingmailTestCase):

    def proxy_daemon(self, access: str = "", **overrides):
        """A daemon whose only listener takes PROXY headers from 127.0.0.1 (haproxy's
        source address towards it) and nobody else."""
        d = self.new_daemon(start=False, **overrides)
        d.config["listen"][0].update(proxy_protocol=True, trusted_proxies=["127.0.0.1/32"])
        if access:
            (d.workdir / "access").write_text(access)
            d.config.setdefault("maps", {})["access"] = "access"
        d.write_config()
        return d.start()

    def haproxy(self, d, send: str) -> int:
        """Starts haproxy (foreground, its own config) in front of `d`; returns its port."""
        if not shutil.which(HAPROXY):
            self.skipTest("haproxy is not installed (scripts/deps.sh)")
        front = free_port()
        cfg = d.workdir / f"haproxy-{front}.cfg"
        cfg.write_text(HAPROXY_CFG.format(front=front, back=d.port, send=send))
        proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self.addCleanup(stop)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail(f"haproxy did not start: {proc.stdout.read()!r}")
                time.sleep(0.05)
        # the probe above went through to the daemon: let its session end first
        time.sleep(0.2)
        return front

    def client(self, port: int, source: str, **kw) -> SMTPConn:
        c = SMTPConn(port, source=source, **kw)
        self._conns.append(c)
        return c

    def raw(self, d, source: str = "127.0.0.1") -> socket.socket:
        s = socket.socket()
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", d.port))
        self.addCleanup(s.close)
        return s

    def read_all(self, s: socket.socket) -> bytes:
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


class ThroughHAProxy(ProxyCase):

    def check_real_client(self, send: str):
        d = self.proxy_daemon(access="Connect:127.0.0.9 REJECT\nClientConn:127.0.0.3 1\n")
        front = self.haproxy(d, send)

        # the session is 127.0.0.2's: relay= in the log, and our Received: header
        c = self.client(front, "127.0.0.2")
        self.assertEqual(c.greeting.code, 220, c.greeting.text)
        self.assertReply(c.ehlo("client.example"), 250)
        msg = make_message(subject="through the proxy")
        qid = self.assertAccepted(c.send_mail("a@client.example", [f"u@{HOSTNAME}"], msg))
        c.cmd("QUIT")
        received, _ = d.spool.split_df(qid)
        self.assertIn(b"[127.0.0.2]", received)
        self.assertNotIn(b"127.0.0.1", received)
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<a@client\.example>, .*"
                                        r"relay=\[127\.0\.0\.2\]$"), d.log_tail())

        # Connect: REJECT by the real client's address, through the proxy
        c = self.client(front, "127.0.0.9")
        self.assertEqual(c.greeting.text, f"550 5.7.1 {HOSTNAME} Access denied")
        self.assertIsNotNone(d.wait_log(r"ruleset=check_relay, arg1=\[127\.0\.0\.9\], "
                                        r"arg2=127\.0\.0\.9, relay=\[127\.0\.0\.9\], "
                                        r"reject=550 5\.7\.1 Access denied$"))

        # ClientConn: counts the real clients, not the one proxy they all come through
        held = self.client(front, "127.0.0.3")
        self.assertEqual(held.greeting.code, 220)
        second = self.client(front, "127.0.0.3")
        self.assertEqual(second.greeting.text, "421 4.3.2 Too many open connections.")
        other = self.client(front, "127.0.0.4")
        self.assertEqual(other.greeting.code, 220)
        self.assertIsNotNone(d.wait_log(r"arg1=\[127\.0\.0\.3\], .*"
                                        r"reject=421 4\.3\.2 Too many open connections\.$"))
        # haproxy's own address is never taken for a client's
        self.assertNotRegex(d.log(), r"relay=\[127\.0\.0\.1\]")

    def test_send_proxy_v2(self):
        self.check_real_client("send-proxy-v2")

    def test_v2_health_checks_are_silent(self):
        # haproxy's checks (every 200 ms) send a v2 LOCAL header: no session, no line
        d = self.proxy_daemon()
        self.haproxy(d, "send-proxy-v2")
        before = d.log().count("did not issue")
        time.sleep(1.5)
        self.assertEqual(d.log().count("did not issue"), before, d.log_tail())

    def test_send_proxy_v1(self):
        self.check_real_client("send-proxy")


class Refusals(ProxyCase):

    def test_untrusted_address_is_refused(self):
        d = self.proxy_daemon()
        c = self.client(d.port, "127.0.0.5")
        self.assertEqual(c.greeting.text, f"421 4.3.2 {HOSTNAME} Not a trusted proxy")
        self.assertEqual(c.wait_closed(), b"")
        self.assertIsNotNone(d.wait_log(r"connection from \[127\.0\.0\.5\] on daemon MTA "
                                        r"refused: not a trusted proxy"))
        # even with a header that would name an allowed client
        s = self.raw(d, "127.0.0.5")
        s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 25\r\n")
        self.assertTrue(self.read_all(s).startswith(b"421 4.3.2 "))
        self.assertNotIn("192.0.2.7", d.log())

    def test_malformed_headers_are_refused_without_harm(self):
        d = self.proxy_daemon()
        bad = [b"EHLO client.example\r\n",  # a client that skipped the proxy
               b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 25\r\n",
               b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
               v2_header(1, 0x12, b"\0" * 12),  # UDP
               V2_SIG + b"\x21\x11\xff\xff"]  # longer than we take
        for data in bad:
            with self.subTest(data=data[:30]):
                s = self.raw(d)
                s.sendall(data)
                self.assertEqual(self.read_all(s),
                                 f"421 4.3.2 {HOSTNAME} Bad PROXY protocol header\r\n".encode())
        self.assertIsNotNone(d.wait_log(r"PROXY header from \[127\.0\.0\.1\] on daemon MTA "
                                        r"refused: "))
        # a good header still works afterwards, byte by byte, with the client's first
        # command in the same packet as the header's end
        s = self.raw(d)
        hdr = b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 25\r\n"
        for b in hdr[:-1]:
            s.sendall(bytes([b]))
            time.sleep(0.005)
        s.sendall(hdr[-1:] + b"QUIT\r\n")
        data = self.read_all(s)
        self.assertRegex(data, rb"^220 .*\r\n221 ")
        self.assertIsNotNone(d.wait_log(r"192\.0\.2\.7"))

    def test_silent_proxy_times_out(self):
        d = self.proxy_daemon()
        s = self.raw(d)
        s.settimeout(30)
        start = time.monotonic()
        self.assertEqual(self.read_all(s),
                         f"421 4.3.2 {HOSTNAME} Bad PROXY protocol header\r\n".encode())
        self.assertLess(time.monotonic() - start, 15)
        self.assertIsNotNone(d.wait_log(r"refused: no header within 10 s"))

    def test_health_check_leaves_no_trace(self):
        d = self.proxy_daemon()
        before = d.log()
        for hdr in (v2_header(0, 0x00, b""), b"PROXY UNKNOWN\r\n"):
            s = self.raw(d)
            s.sendall(hdr)
            self.assertEqual(self.read_all(s), b"")
        # the daemon still serves, and logged nothing for the checks
        c = self.raw(d)
        c.sendall(b"PROXY TCP6 2001:db8::7 ::1 4000 25\r\nQUIT\r\n")
        self.assertRegex(self.read_all(c), rb"^220 ")
        self.assertIsNotNone(d.wait_log(r"2001:db8::7"))
        new = d.log()[len(before):]
        self.assertNotIn("127.0.0.1", new)
        self.assertNotIn("UNKNOWN", new)

    def test_trusted_proxies_is_required(self):
        d = self.new_daemon(start=False)
        d.config["listen"][0]["proxy_protocol"] = True
        d.write_config()
        with self.assertRaises(Exception):
            d.start()
        self.assertRegex(d.log(), r"listen\[0\]\.proxy_protocol.*trusted_proxies")


if __name__ == "__main__":
    unittest.main()
