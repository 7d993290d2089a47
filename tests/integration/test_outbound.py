"""delivery/outbound against real next hops: tests/tools/outbound_send (engine + c-ares +
outbound) delivers to scripted sinks (sink.py) found through a real dnsmasq (dns_fixture.py).

MX preference and fallback, [host]:port, STARTTLS policies (may, encrypt, verify against a
test CA, a wrong name), 4xx/5xx per phase and per recipient, a greeting 421, stalls, a close
mid-DATA, garbage and endless lines, connection reuse, the destination concurrency limit
across workers, host status, and DNS failures (NXDOMAIN, null MX, SERVFAIL).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path

from dns_fixture import DnsFixture
from sink import Close, Endless, Garbage, Sink, Stall
from tls_support import Certs

TOOLS = os.environ.get("RINGMAIL_TOOLS", "")
SEND = os.path.join(TOOLS, "outbound_send")
RUN_TIMEOUT = 60

MESSAGE = b"From: a@client.test\nTo: b@example.test\nSubject: outbound\n\nhello\n.leading dot\n"

CERTS: Certs | None = None
CERT_DIR = ""


def setUpModule():
    global CERTS, CERT_DIR
    if not os.access(SEND, os.X_OK):
        raise unittest.SkipTest("outbound_send not built (RINGMAIL_TOOLS)")
    if not shutil.which("openssl") or not os.path.exists("/usr/sbin/dnsmasq"):
        raise unittest.SkipTest("openssl or dnsmasq missing")
    CERT_DIR = tempfile.mkdtemp(prefix="outbound-certs-")
    CERTS = Certs(Path(CERT_DIR))


def tearDownModule():
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


def mx_cert(name: str) -> tuple[str, str]:
    """(cert, key) for `name`, signed by the test CA."""
    key, cert = CERTS.issue(f"mx-{name}", "ECDSA-P256", name, f"subjectAltName=DNS:{name}")
    return str(cert), str(key)


class OutboundTest(unittest.TestCase):
    def setUp(self):
        self.dns = DnsFixture("127.0.0.2").start()
        self.addCleanup(self.dns.stop)

    def sink(self, addr: str, **kw) -> Sink:
        s = Sink(addr, **kw).start()
        self.addCleanup(s.stop)
        return s

    def send(self, *args: str, rcpts=("b@example.test",), message: bytes = MESSAGE,
             timeout: float = RUN_TIMEOUT):
        """Runs outbound_send; returns (results by recipient of the last job, all results,
        stderr)."""
        argv = [SEND, "--dns", self.dns.server, *args, *rcpts]
        p = subprocess.run(argv, input=message, capture_output=True, timeout=timeout)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, err)
        rows = [json.loads(line) for line in p.stdout.decode(errors="replace").splitlines()
                if line.strip()]
        last = {}
        for r in rows:
            last[r["rcpt"]] = r
        return last, rows, err

    # ------------------------------------------------------------------ routing

    def test_host_port_without_mx(self):
        s = self.sink("127.0.0.3")
        res, _, _ = self.send("--route", f"[127.0.0.3]:{s.port}", rcpts=("a@x.test", "b@y.test"))
        for r in res.values():
            self.assertEqual(r["outcome"], "delivered", r)
            self.assertEqual(r["relay_addr"], "127.0.0.3")
            self.assertTrue(r["stat"].startswith("Sent ("), r)
        m = s.wait_messages(1, timeout=10)[0]
        self.assertEqual(m.rcpt_tos, ["a@x.test", "b@y.test"])
        self.assertIn(b"\r\n.leading dot\r\n", m.data)
        self.assertEqual(self.dns.queries(), [], "[host] must not query DNS for an address")

    def test_mx_preference_and_fallback(self):
        s2 = self.sink("127.0.0.4")
        port = s2.port
        self.dns.mx("example.test", (20, "mx2.example.test"), (10, "mx1.example.test"))
        self.dns.a("mx1.example.test", "127.0.0.3")  # nothing listens there: refused
        self.dns.a("mx2.example.test", "127.0.0.4")
        self.dns.restart()
        res, _, _ = self.send("--route", f"esmtp:example.test:{port}")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "delivered", r)
        self.assertEqual(r["relay_host"], "mx2.example.test")
        self.assertEqual(len(s2.wait_messages(1, timeout=10)), 1)
        # with both up the preferred one gets it
        s1 = self.sink("127.0.0.3", port=port)
        res, _, _ = self.send("--route", f"esmtp:example.test:{port}")
        self.assertEqual(res["b@example.test"]["relay_host"], "mx1.example.test")
        self.assertEqual(len(s1.wait_messages(1, timeout=10)), 1)

    def test_greeting_421_next_mx(self):
        s1 = self.sink("127.0.0.3", greeting="421 4.3.2 busy, go away")
        s2 = self.sink("127.0.0.4", port=s1.port)
        self.dns.mx("example.test", (10, "mx1.example.test"), (20, "mx2.example.test"))
        self.dns.a("mx1.example.test", "127.0.0.3").a("mx2.example.test", "127.0.0.4")
        self.dns.restart()
        res, _, _ = self.send("--route", f"esmtp:example.test:{s1.port}")
        self.assertEqual(res["b@example.test"]["relay_host"], "mx2.example.test")
        self.assertEqual(len(s2.wait_messages(1, timeout=10)), 1)
        self.assertEqual(len(s1.messages), 0)

    def test_4xx_helo_and_mail_next_mx(self):
        for phase in ("ehlo", "mail"):
            with self.subTest(phase=phase):
                s1 = self.sink("127.0.0.3", **{phase: "451 4.3.0 not now"},
                               helo="451 4.3.0 not now")
                s2 = self.sink("127.0.0.4", port=s1.port)
                self.dns.mx("example.test", (10, "mx1.example.test"), (20, "mx2.example.test"))
                self.dns.a("mx1.example.test", "127.0.0.3").a("mx2.example.test", "127.0.0.4")
                self.dns.restart()
                res, _, _ = self.send("--route", f"esmtp:example.test:{s1.port}")
                self.assertEqual(res["b@example.test"]["outcome"], "delivered")
                self.assertEqual(res["b@example.test"]["relay_host"], "mx2.example.test")
                s1.stop()
                s2.stop()

    def test_all_mx_down_then_host_status(self):
        self.dns.mx("example.test", (10, "mx1.example.test"))
        self.dns.a("mx1.example.test", "127.0.0.3")
        self.dns.restart()
        _, rows, _ = self.send("--route", "esmtp:example.test:9", "--jobs", "2",
                               "--host-status", "60000")
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[0]["outcome"], "deferred")
        self.assertEqual(rows[0]["stat"], "Deferred: Connection refused by mx1.example.test.")
        self.assertEqual(rows[1]["outcome"], "deferred")
        self.assertEqual(rows[1]["text"],
                         "Connection refused by mx1.example.test. (host status cached)")
        self.assertFalse(rows[1]["connected"])

    def test_local_descriptor_shortage_is_no_host_status(self):
        # with RLIMIT_NOFILE within the engine's fd_reserve every connect fails with EMFILE:
        # our trouble, not the destination's, so it is not held back for the next message
        s = self.sink("127.0.0.3")

        def few_descriptors():
            resource.setrlimit(resource.RLIMIT_NOFILE, (65, 65))

        argv = [SEND, "--route", f"[127.0.0.3]:{s.port}", "--jobs", "2", "--host-status",
                "60000", "b@example.test"]
        p = subprocess.run(argv, input=MESSAGE, capture_output=True, timeout=RUN_TIMEOUT,
                           preexec_fn=few_descriptors)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [json.loads(line) for line in p.stdout.decode().splitlines()]
        self.assertEqual([r["outcome"] for r in rows], ["deferred"] * 2)
        for r in rows:
            self.assertEqual(r["text"], "Too many open files with 127.0.0.3.")

    def test_dns_failures(self):
        self.dns.null_mx("nomail.test")
        self.dns.servfail("broken.test")
        self.dns.restart()
        cases = {
            "u@gone.test": ("failed", "5.1.2", "Host unknown"),
            "u@nomail.test": ("failed", "5.1.10", "null MX"),
            "u@broken.test": ("deferred", "4.4.3", "host name lookup failure"),
        }
        for rcpt, (outcome, enh, text) in cases.items():
            with self.subTest(rcpt=rcpt):
                res, _, _ = self.send(rcpts=(rcpt,))
                self.assertEqual(res[rcpt]["outcome"], outcome, res[rcpt])
                self.assertEqual(res[rcpt]["enh"], enh)
                self.assertIn(text, res[rcpt]["text"])

    # ------------------------------------------------------------------ replies

    def test_per_recipient_and_per_phase_replies(self):
        s = self.sink("127.0.0.3", rcpt={"bad@x.test": "550 5.1.1 <bad@x.test>: no such user",
                                         "later@x.test": "452 4.2.2 mailbox full",
                                         "*": "250 2.1.5 Ok"})
        res, _, _ = self.send("--route", f"[127.0.0.3]:{s.port}",
                              rcpts=("ok@x.test", "bad@x.test", "later@x.test"))
        self.assertEqual(res["ok@x.test"]["outcome"], "delivered")
        self.assertEqual(res["bad@x.test"]["outcome"], "failed")
        self.assertEqual(res["bad@x.test"]["enh"], "5.1.1")
        self.assertEqual(res["bad@x.test"]["stat"], "550 5.1.1 <bad@x.test>: no such user")
        self.assertEqual(res["later@x.test"]["outcome"], "deferred")
        self.assertEqual(res["later@x.test"]["stat"], "Deferred: 452 4.2.2 mailbox full")
        self.assertEqual(s.wait_messages(1, timeout=10)[0].rcpt_tos, ["ok@x.test"])

        phases = [
            ({"mail": "550 5.7.1 sender refused"}, "failed", "5.7.1"),
            ({"mail": "451 4.7.1 greylisted"}, "deferred", "4.7.1"),
            ({"data": "451 4.3.0 no data now", "extensions": ["PIPELINING"]}, "deferred",
             "4.3.0"),
            ({"data": "554 5.3.0 no data ever", "extensions": ["PIPELINING"]}, "failed",
             "5.3.0"),
            ({"final": "452 4.3.1 out of space"}, "deferred", "4.3.1"),
            ({"final": "554 5.6.0 content rejected"}, "failed", "5.6.0"),
            # every address refused us for good: sendmail's "Service unavailable" bounce
            ({"ehlo": "500 5.5.1 what", "helo": "550 5.7.1 not you"}, "failed", "5.7.1"),
            ({"ehlo": "451 4.3.2 later"}, "deferred", "4.3.2"),
        ]
        for script, outcome, enh in phases:
            with self.subTest(script=script):
                sk = self.sink("127.0.0.4", **script)
                res, _, _ = self.send("--route", f"[127.0.0.4]:{sk.port}")
                r = res["b@example.test"]
                self.assertEqual(r["outcome"], outcome, r)
                self.assertEqual(r["enh"], enh, r)
                sk.stop()

    def test_faults_are_bounded(self):
        faults = [
            ({"greeting": Stall()}, "timeout waiting for greeting"),
            ({"final": Stall()}, "timeout"),
            ({"final": Close(after=10)}, ""),
            ({"greeting": Garbage(b"\x00\xffnot smtp at all\r\n")}, ""),
            ({"ehlo": Endless()}, ""),
            ({"rcpt": Stall()}, "timeout"),
        ]
        for script, text in faults:
            with self.subTest(script=list(script)):
                sk = self.sink("127.0.0.3", **script)
                res, _, _ = self.send("--route", f"[127.0.0.3]:{sk.port}", "--timeout", "1500")
                r = res["b@example.test"]
                self.assertEqual(r["outcome"], "deferred", r)
                self.assertIn(text, r["text"])
                self.assertEqual(len(sk.messages), 0)
                sk.stop()

    def test_connect_timeout(self):
        # a listener whose backlog is full drops our SYN: the connect hangs until
        # timeouts.connect (here 500 ms) cuts it, long before the kernel's own SYN retries
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.3", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.3", port))
            except BlockingIOError:
                pass
        res, _, _ = self.send("--route", f"[127.0.0.3]:{port}", "--connect-timeout", "500")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "deferred")
        self.assertEqual(r["text"], "Connection timed out with 127.0.0.3.")
        self.assertFalse(r["connected"])
        # a message's first attempt gets timeouts.iconnect (500 ms), not connect (10 min)
        res, _, _ = self.send("--route", f"[127.0.0.3]:{port}", "--connect-timeout", "600000",
                              "--iconnect", "500", timeout=20)
        self.assertEqual(res["b@example.test"]["text"], "Connection timed out with 127.0.0.3.")

    # ------------------------------------------------------------------ STARTTLS

    def test_starttls_may(self):
        s = self.sink("127.0.0.3", tls_cert=True)
        res, _, err = self.send("--route", f"[127.0.0.3]:{s.port}", "--tls", "may", "--jobs", "2")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "delivered")
        self.assertIn("version=TLSv1.3", r["tls"])
        self.assertIsNotNone(s.wait_messages(2, timeout=10)[0].tls)
        lines = [line for line in err.splitlines() if "STARTTLS=client" in line]
        self.assertEqual(len(lines), 2, err)
        self.assertIn("STARTTLS=client, relay=127.0.0.3, version=TLSv1.3, verify=FAIL", lines[0])
        # the second connection resumes the first one's session (its ticket)
        self.assertNotIn("resumed", lines[0])
        self.assertTrue(lines[1].endswith(", resumed"), lines[1])

    def test_starttls_may_falls_back_to_plain(self):
        # a 220 to STARTTLS and then no TLS: the handshake fails, the same host in plain text
        s = self.sink("127.0.0.3", tls_cert=True,
                      starttls=[Garbage(b"220 2.0.0 go ahead\r\n"), "220 2.0.0 Ready"])
        res, _, err = self.send("--route", f"[127.0.0.3]:{s.port}", "--tls", "may",
                                "--timeout", "2000")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "delivered", r)
        self.assertEqual(r["tls"], "")
        self.assertIn("trying again without STARTTLS", err)
        self.assertIsNone(s.wait_messages(1, timeout=10)[0].tls)
        # refused STARTTLS: on in plain text on the same connection
        s2 = self.sink("127.0.0.4", tls_cert=True, starttls="454 4.7.0 TLS not available")
        res, _, err = self.send("--route", f"[127.0.0.4]:{s2.port}", "--tls", "may")
        self.assertEqual(res["b@example.test"]["outcome"], "delivered")
        self.assertIn("STARTTLS refused: 454", err)
        self.assertEqual(len(s2.connections), 1)

    def test_starttls_may_remembers_the_failure(self):
        # with a host status time, the next message to that destination goes in plain text
        # at once instead of failing the handshake again
        s = self.sink("127.0.0.3", tls_cert=True, starttls=Garbage(b"220 2.0.0 go ahead\r\n"))
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--tls", "may", "--jobs", "2",
                               "--host-status", "60000", "--timeout", "2000")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 2)
        s.wait_messages(2, timeout=10)
        tried = ["STARTTLS" in c.commands for c in s.connections]
        self.assertEqual(tried, [True, False, False])

    def test_tls_requirement_not_checkable(self):
        # a TLS_Srv: requirement ringmail cannot check defers, and is our configuration's
        # doing: no host status for the destination
        s = self.sink("127.0.0.3", tls_cert=True)
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--tls", "may", "--jobs", "2",
                               "--host-status", "60000", "--access",
                               "TLS_Srv:127.0.0.3=VERIFY+CS:Some Subject")
        for r in rows:
            self.assertEqual(r["outcome"], "deferred")
            self.assertEqual(r["text"], "TLS requirement that ringmail cannot check: "
                             "TLS_Srv:127.0.0.3 VERIFY+CS:Some Subject")
        self.assertEqual(len(s.connections), 0)

    def test_starttls_encrypt(self):
        plain = self.sink("127.0.0.3")
        res, _, _ = self.send("--route", f"[127.0.0.3]:{plain.port}", "--tls", "encrypt")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "deferred")
        self.assertIn("offers no STARTTLS", r["text"])
        self.assertEqual(len(plain.messages), 0)
        refused = self.sink("127.0.0.4", tls_cert=True, starttls="454 4.7.0 TLS not available")
        res, _, _ = self.send("--route", f"[127.0.0.4]:{refused.port}", "--tls", "encrypt")
        self.assertIn("STARTTLS refused by", res["b@example.test"]["text"])
        self.assertEqual(len(refused.messages), 0)
        ok = self.sink("127.0.0.5", tls_cert=True)
        res, _, _ = self.send("--route", f"[127.0.0.5]:{ok.port}", "--tls", "encrypt")
        self.assertEqual(res["b@example.test"]["outcome"], "delivered")

    def test_starttls_verify(self):
        s = self.sink("127.0.0.3", tls_cert=mx_cert("mx1.example.test"))
        bad = self.sink("127.0.0.4", port=s.port, tls_cert=mx_cert("other.example.test"))
        self.dns.mx("good.test", (10, "mx1.example.test"))
        self.dns.mx("bad.test", (10, "mx2.example.test"))
        self.dns.a("mx1.example.test", "127.0.0.3").a("mx2.example.test", "127.0.0.4")
        self.dns.restart()
        ca = str(CERTS.ca)
        res, _, err = self.send("--route", f"esmtp:good.test:{s.port}", "--tls", "verify",
                                "--ca", ca, rcpts=("u@good.test",))
        r = res["u@good.test"]
        self.assertEqual(r["outcome"], "delivered", r)
        self.assertIn("verify=OK", r["tls"])
        self.assertIn("STARTTLS=client, relay=mx1.example.test, version=", err)
        # the name on the certificate is not the MX host's: deferred, nothing sent
        res, _, err = self.send("--route", f"esmtp:bad.test:{s.port}", "--tls", "verify",
                                "--ca", ca, rcpts=("u@bad.test",))
        r = res["u@bad.test"]
        self.assertEqual(r["outcome"], "deferred", r)
        self.assertEqual(r["enh"], "4.7.5")
        self.assertIn("TLS verification of mx2.example.test failed", r["text"])
        self.assertEqual(len(bad.messages), 0)
        # an expected name from the policy table
        res, _, _ = self.send("--route", f"esmtp:bad.test:{s.port}", "--ca", ca,
                              "--policy", "bad.test=verify", "--match", "other.example.test",
                              rcpts=("u@bad.test",))
        self.assertEqual(res["u@bad.test"]["outcome"], "delivered")
        # TLS_Srv from the access map, PERM+: a failed requirement fails
        res, _, _ = self.send("--route", f"esmtp:bad.test:{s.port}", "--ca", ca, "--tls", "may",
                              "--access", "TLS_Srv:mx2.example.test=PERM+VERIFY",
                              rcpts=("u@bad.test",))
        self.assertEqual(res["u@bad.test"]["outcome"], "failed")
        self.assertEqual(res["u@bad.test"]["enh"], "5.7.10")
        # Try_TLS: NO: no STARTTLS at all
        res, _, _ = self.send("--route", f"esmtp:good.test:{s.port}", "--ca", ca, "--tls", "may",
                              "--access", "Try_TLS:127.0.0.3=NO", rcpts=("u@good.test",))
        self.assertEqual(res["u@good.test"]["tls"], "")

    # ------------------------------------------------------------------ reuse and limits

    def test_connection_reuse(self):
        s = self.sink("127.0.0.3")
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--jobs", "3", "--cache", "2")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 3)
        s.wait_messages(3, timeout=10)
        self.assertEqual(len(s.connections), 1)
        self.assertEqual(s.connections[0].transactions, 3)
        # without a cache: one connection per message
        s2 = self.sink("127.0.0.4")
        self.send("--route", f"[127.0.0.4]:{s2.port}", "--jobs", "2")
        s2.wait_messages(2, timeout=10)
        self.assertEqual(len(s2.connections), 2)

    def test_cache_timeout_quits(self):
        # the idle connection outlives no confMCI_CACHE_TIMEOUT: QUIT, and the next job
        # connects again
        s = self.sink("127.0.0.3")
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--jobs", "2", "--cache", "1",
                               "--cache-timeout", "200", "--interval", "800")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 2)
        s.wait_messages(2, timeout=10)
        self.assertEqual(len(s.connections), 2)
        self.assertEqual(s.connections[0].commands[-1], "QUIT")
        self.assertEqual(s.connections[0].transactions, 1)

    def test_cache_evicts_least_recently_used(self):
        # one idle connection per worker: B's connection pushes A's out (QUIT), so the third
        # job, to A again, connects anew
        a = self.sink("127.0.0.3")
        b = self.sink("127.0.0.4")
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{a.port}", "--route",
                               f"[127.0.0.4]:{b.port}", "--jobs", "4", "--cache", "1")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 4)
        a.wait_messages(2, timeout=10)
        b.wait_messages(2, timeout=10)
        self.assertEqual(len(a.connections), 2)
        self.assertEqual(a.connections[0].commands[-1], "QUIT")
        self.assertEqual([c.transactions for c in b.connections], [1, 1])

    def test_ipv6_literal(self):
        s = self.sink("::1")
        res, _, _ = self.send("--route", f"[IPv6:::1]:{s.port}")
        r = res["b@example.test"]
        self.assertEqual(r["outcome"], "delivered", r)
        self.assertEqual(r["relay_addr"], "::1")
        self.assertEqual(len(s.wait_messages(1, timeout=10)), 1)

    def test_cached_connection_closed_by_peer(self):
        # the sink drops the connection after the first message: the next job finds the
        # cached connection dead and connects again, nothing lost
        s = self.sink("127.0.0.3", rset=Close(), noop=Close(),
                      mail=["250 2.1.0 Ok", Close(), "250 2.1.0 Ok"])
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--jobs", "2", "--cache", "1")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 2, rows)
        self.assertEqual(len(s.wait_messages(2, timeout=10)), 2)

    def test_concurrency_limit_across_workers(self):
        # transactions in progress at the sink, from MAIL to the final reply
        lock, active, most = threading.Lock(), [0], [0]

        def on_mail(conn, arg):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            return "250 2.1.0 Ok"

        def on_final(conn, arg):
            with lock:
                active[0] -= 1
            return "250 2.0.0 Ok"

        # eight jobs want to start at once (four on each worker): two get a slot, the others
        # are throttled and come back when told
        s = self.sink("127.0.0.3", mail=on_mail, final=on_final)
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--jobs", "8", "--parallel",
                               "4", "--workers", "2", "--concurrency", "2")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 8)
        self.assertEqual(len(s.wait_messages(8, timeout=10)), 8)
        self.assertLessEqual(most[0], 2)
        self.assertGreater(sum(r["throttled"] for r in rows), 0)

    def test_rate_limit(self):
        s = self.sink("127.0.0.3")
        _, rows, _ = self.send("--route", f"[127.0.0.3]:{s.port}", "--jobs", "3", "--rate",
                               "120", "--cache", "1")
        self.assertEqual([r["outcome"] for r in rows], ["delivered"] * 3)
        # a burst of two, then the third waits for its token
        self.assertEqual(sum(r["throttled"] for r in rows), 1)


if __name__ == "__main__":
    unittest.main()
