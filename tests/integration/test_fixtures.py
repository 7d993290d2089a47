"""The delivery tests' counterparts behave as documented: sink.Sink (scripted next hop),
dns_fixture.DnsFixture (dnsmasq) and smtp_sink.SmtpSink (Postfix's smtp-sink). Real
clients only: smtplib and raw sockets, over loopback."""

import json
import os
import smtplib
import socket
import ssl
import tempfile
import time
import unittest
from pathlib import Path

from dns_fixture import DnsFixture
from ringmail_harness import SMTPConn, dot_stuff, ipv6_loopback_available
from sink import Close, Delay, Endless, Garbage, Sink, Stall, first_n
from smtp_sink import SmtpSink

MSG = b"From: a@b.example\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n"


def unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SinkTest(unittest.TestCase):

    def sink(self, addr="127.0.0.2", **kw) -> Sink:
        s = Sink(addr, **kw).start()
        self.addCleanup(s.stop)
        return s

    def conn(self, s: Sink) -> SMTPConn:
        c = SMTPConn(s.port, host=s.addr, timeout=10)
        self.addCleanup(c.close)
        return c

    def test_records_a_delivery(self):
        s = self.sink()
        with smtplib.SMTP(s.addr, s.port, local_hostname="client.test", timeout=10) as c:
            refused = c.sendmail("a@b.example", ["x@c.example", "y@c.example"], MSG)
            self.assertEqual(refused, {})
            c.sendmail("", ["z@c.example"], MSG)
        m = s.wait_messages(2, 10)
        self.assertEqual(m[0].mail_from, "a@b.example")
        self.assertEqual(m[0].rcpt_tos, ["x@c.example", "y@c.example"])
        self.assertEqual(m[0].data, MSG)                   # dot-unstuffed
        self.assertEqual(m[0].raw, dot_stuff(MSG))         # as sent
        self.assertEqual((m[0].via, m[0].helo, m[0].esmtp, m[0].tls), ("DATA", "client.test",
                                                                       True, None))
        self.assertEqual(m[1].mail_from, "")
        self.assertEqual(m[0].conn, m[1].conn)
        s.wait_until(lambda: s.connections[0].closed is not None, 10, "close")
        conn = s.connections[0]
        self.assertEqual((conn.transactions, conn.closed_by, conn.violations), (2, "quit", []))
        self.assertEqual(s.max_concurrent, 1)

    def test_starttls(self):
        s = self.sink(tls_cert=True)
        with smtplib.SMTP(s.addr, s.port, timeout=10) as c:
            c.ehlo()
            self.assertTrue(c.has_extn("starttls"))
            c.starttls(context=unverified())
            c.ehlo()
            self.assertFalse(c.has_extn("starttls"))
            c.sendmail("a@b.example", ["x@c.example"], MSG)
        m = s.wait_messages(1, 10)[0]
        self.assertEqual(m.tls["version"], "TLSv1.3")
        self.assertTrue(m.tls["cipher"])

    def test_plaintext_after_starttls_is_a_violation(self):
        s = self.sink(tls_cert=True)
        c = self.conn(s)
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
        self.assertEqual(c.reply().code, 220)
        c.sock = unverified().wrap_socket(c.sock, server_hostname="sink.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@b>").code, 503)   # EHLO needed again
        s.wait_until(lambda: s.connections[0].violations, 10, "violation")
        self.assertIn("plaintext pipelined after STARTTLS", s.connections[0].violations)

    def test_per_recipient_replies_and_retries(self):
        s = self.sink(rcpt={"bad@c.example": "550 5.1.1 <bad@c.example>: unknown",
                            "busy@c.example": first_n(2, "451 4.3.0 busy", "250 2.1.5 ok")})
        for attempt in range(3):
            with smtplib.SMTP(s.addr, s.port, timeout=10) as c:
                try:
                    refused = c.sendmail("a@b.example", ["ok@c.example", "bad@c.example",
                                                         "busy@c.example"], MSG)
                except smtplib.SMTPRecipientsRefused as e:
                    refused = e.recipients
            self.assertEqual(refused["bad@c.example"][0], 550)
            if attempt < 2:
                self.assertEqual(refused["busy@c.example"][0], 451)
            else:
                self.assertNotIn("busy@c.example", refused)
        self.assertEqual(s.wait_messages(3, 10)[2].rcpt_tos, ["ok@c.example", "busy@c.example"])
        self.assertEqual(len(s.connections), 3)

    def test_greeting_refused(self):
        s = self.sink(greeting="421 4.3.2 sink.test busy")
        with self.assertRaises(smtplib.SMTPConnectError):
            smtplib.SMTP(s.addr, s.port, timeout=10)
        s2 = self.sink(greeting="554 5.3.2 no SMTP service here")
        c = self.conn(s2)
        self.assertEqual(c.greeting.code, 554)
        self.assertEqual(c.ehlo().code, 503)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_ehlo_refused_falls_back_to_helo(self):
        s = self.sink(ehlo="502 5.5.2 Error: command not recognized")
        with smtplib.SMTP(s.addr, s.port, timeout=10) as c:
            c.sendmail("a@b.example", ["x@c.example"], MSG)
            # no extension after HELO: BODY= is refused like a real server does
            self.assertEqual(c.docmd("MAIL FROM:<a@b.example> BODY=8BITMIME")[0], 555)
        m = s.wait_messages(1, 10)[0]
        self.assertFalse(m.esmtp)
        self.assertEqual(s.connections[0].commands[:2][1].split()[0].upper(), "HELO")

    def test_dsn_and_extension_checks(self):
        s = self.sink()
        c = self.conn(s)
        kw = c.ehlo().keywords()
        for e in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "CHUNKING"):
            self.assertIn(e, kw)
        self.assertNotIn("STARTTLS", kw)
        self.assertEqual(c.cmd("MAIL FROM:<a@b> RET=HDRS ENVID=QQ123 BODY=8BITMIME").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<x@c> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x@c").code, 250)
        r354, final = c.data(MSG)
        self.assertEqual(final.code, 250)
        m = s.wait_messages(1, 10)[0]
        self.assertEqual(m.mail_options, ["RET=HDRS", "ENVID=QQ123", "BODY=8BITMIME"])
        self.assertEqual(m.rcpt_options, [["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;x@c"]])
        # without DSN offered, a NOTIFY is refused; SIZE above the limit too
        s2 = self.sink(extensions=["PIPELINING", "SIZE 100"])
        c2 = self.conn(s2)
        c2.ehlo()
        self.assertEqual(c2.cmd("MAIL FROM:<a@b> SIZE=101").code, 552)
        self.assertEqual(c2.cmd("MAIL FROM:<a@b> SMTPUTF8").code, 555)
        self.assertEqual(c2.cmd("MAIL FROM:<ü@b>").code, 553)
        self.assertEqual(c2.cmd("MAIL FROM:<a@b> SIZE=99").code, 250)
        self.assertEqual(c2.cmd("RCPT TO:<x@c> NOTIFY=NEVER").code, 555)
        self.assertEqual(c2.cmd("RCPT TO:<x@c>").code, 250)
        self.assertEqual(c2.data(b"x" * 200 + b"\r\n")[1].code, 552)   # counted on the data
        self.assertEqual(len(s2.rejected), 1)

    def test_bdat(self):
        s = self.sink()
        c = self.conn(s)
        c.ehlo()
        c.send(b"MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@c>\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [250, 250])
        a, b = b"Subject: t\r\n\r\n.no stuffing\r\n", "gr\u00fc\u00dfe\r\n".encode()
        c.send(f"BDAT {len(a)}\r\n".encode() + a + f"BDAT {len(b)} LAST\r\n".encode() + b)
        r1, r2 = c.replies(2)
        self.assertEqual((r1.code, r2.code), (250, 250))
        self.assertIn(f"{len(a)} octets", r1.text)
        m = s.wait_messages(1, 10)[0]
        self.assertEqual((m.via, m.data, m.body_8bit), ("BDAT", a + b, True))
        self.assertEqual(s.connections[0].violations, [])
        # not offered: the chunk is still consumed, then refused
        s2 = self.sink(extensions=["PIPELINING"])
        c2 = self.conn(s2)
        c2.ehlo()
        c2.send(b"BDAT 4 LAST\r\nabcd")
        self.assertEqual(c2.reply().code, 502)
        self.assertEqual(c2.cmd("NOOP").code, 250)

    def test_pipelining_violations(self):
        s = self.sink(extensions=["8BITMIME"])
        c = self.conn(s)
        c.ehlo()
        c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<x@c>\r\n")
        c.replies(2)
        c.send(b"DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [354, 250])
        m = s.wait_messages(1, 10)[0]
        self.assertEqual(m.data, b"Subject: early\r\n\r\nx\r\n")
        v = s.connections[0].violations
        self.assertIn("pipelined after MAIL without PIPELINING", v)
        self.assertIn("message content sent before the 354", v)

    def test_faults(self):
        # stall at MAIL: no reply ever
        s = self.sink(mail=Stall())
        c = self.conn(s)
        c.ehlo()
        c.send(b"MAIL FROM:<a@b>\r\n")
        with self.assertRaises(TimeoutError):
            c.reply(timeout=0.5)
        # close mid-DATA after 10 bytes of content: the connection drops, nothing accepted
        s = self.sink(final=Close(after=10))
        c = self.conn(s)
        c.ehlo()
        c.send(b"MAIL FROM:<a@b>\r\n")
        c.reply()
        c.send(b"RCPT TO:<x@c>\r\n")
        c.reply()
        self.assertEqual(c.cmd("DATA").code, 354)
        try:
            c.send(b"0123456789abcdef\r\n" * 2 + b".\r\n")
        except OSError:
            pass
        c.wait_closed(10)
        s.wait_until(lambda: s.rejected, 10, "the rejected record")
        self.assertEqual((s.messages, s.rejected[0].data[:10]), ([], b"0123456789"))
        self.assertEqual(s.connections[0].closed_by, "fault")
        # garbage instead of a greeting, endless line instead of the EHLO reply
        s = self.sink(greeting=Garbage(b"hello there\r\n"), ehlo=Endless())
        with socket.create_connection((s.addr, s.port), timeout=10) as raw:
            self.assertEqual(raw.recv(100), b"hello there\r\n")
            raw.sendall(b"EHLO x\r\n")
            got = b""
            while len(got) < 1 << 20:
                got += raw.recv(65536)
            self.assertNotIn(b"\r\n", got)
        # a slow reply, and two connections at once
        s = self.sink(final=Delay(0.5, "250 2.0.0 slowly"))
        c1, c2 = self.conn(s), self.conn(s)
        for c in (c1, c2):
            c.ehlo()
            c.cmd("MAIL FROM:<a@b>")
            c.cmd("RCPT TO:<x@c>")
        t = time.monotonic()
        self.assertEqual(c1.data(MSG)[1].last, "250 2.0.0 slowly")
        self.assertGreaterEqual(time.monotonic() - t, 0.4)
        c2.data(MSG)
        self.assertEqual(s.max_concurrent, 2)
        # a delayed 2xx is an accepted message (and says which reply it got)
        msgs = s.wait_messages(2, 10)
        self.assertEqual([m.reply for m in msgs], ["250 2.0.0 slowly"] * 2)
        self.assertEqual(s.rejected, [])

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6_and_jsonl(self):
        s = self.sink("::1")
        self.assertEqual(s.hostport, f"[IPv6:::1]:{s.port}")
        with smtplib.SMTP("::1", s.port, timeout=10) as c:
            c.sendmail("a@b", ["x@c"], MSG)
        s.wait_messages(1, 10)
        with tempfile.TemporaryDirectory() as d:
            s.save_jsonl(Path(d) / "m.jsonl")
            rec = json.loads((Path(d) / "m.jsonl").read_text().splitlines()[0])
        self.assertEqual((rec["peer"][0], rec["accepted"]), ("::1", True))


class DnsFixtureTest(unittest.TestCase):

    def test_records(self):
        d = DnsFixture("127.0.0.2")
        d.mx("example.test", (10, "mx1.example.test"), (20, "mx2.example.test"))
        d.a("mx1.example.test", "127.0.0.3", "127.0.0.4").aaaa("mx1.example.test", "::1")
        d.a("mx2.example.test", "127.0.0.5")
        d.cname("alias.example.test", "mx1.example.test")
        d.null_mx("nomail.test").nxdomain("gone.example").servfail("broken.test")
        d.blackhole("slow.test")
        d.start()
        self.addCleanup(d.stop)
        self.assertRegex(d.server, r"^127\.0\.0\.2:\d+$")
        rcode, mx = d.query("example.test", "MX")
        self.assertEqual((rcode, sorted(mx)), ("NOERROR", ["10 mx1.example.test",
                                                           "20 mx2.example.test"]))
        self.assertEqual(sorted(d.query("mx1.example.test", "A")[1]), ["127.0.0.3", "127.0.0.4"])
        self.assertEqual(d.query("mx1.example.test", "AAAA"), ("NOERROR", ["::1"]))
        self.assertEqual(d.query("mx1.example.test", "MX"), ("NOERROR", []))   # NODATA
        rcode, ans = d.query("alias.example.test", "A")
        self.assertEqual(ans[0], "CNAME mx1.example.test")
        self.assertEqual(sorted(ans[1:]), ["127.0.0.3", "127.0.0.4"])
        self.assertEqual(d.query("nomail.test", "MX"), ("NOERROR", ["0 ."]))
        self.assertEqual(d.query("gone.example", "MX")[0], "NXDOMAIN")
        self.assertEqual(d.query("a.gone.example", "A")[0], "NXDOMAIN")
        self.assertEqual(d.query("undeclared.test", "A")[0], "NXDOMAIN")
        self.assertEqual(d.query("broken.test", "MX")[0], "SERVFAIL")
        self.assertEqual(d.query("outside.example", "A")[0], "REFUSED")
        with self.assertRaises(TimeoutError):
            d.query("slow.test", "MX", timeout=0.5)
        self.assertIn(("MX", "example.test"), d.queries())
        # records added later apply after restart(), same address and port
        server = d.server
        d.a("late.test", "127.0.0.9").restart()
        self.assertEqual((d.server, d.query("late.test", "A")), (server, ("NOERROR",
                                                                          ["127.0.0.9"])))

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6_listener(self):
        with DnsFixture("::1").a("h.test", "127.0.0.1") as d:
            self.assertRegex(d.server, r"^\[::1\]:\d+$")
            self.assertEqual(d.query("h.test"), ("NOERROR", ["127.0.0.1"]))


class SmtpSinkTest(unittest.TestCase):

    def test_counts(self):
        s = SmtpSink("127.0.0.3").start()
        self.addCleanup(s.stop)
        self.assertEqual(s.counts(), {"sess": 0, "quit": 0, "mesg": 0})
        with smtplib.SMTP(s.addr, s.port, timeout=10) as c:
            for _ in range(3):
                c.sendmail("a@b", ["x@c"], MSG)
        self.assertEqual(s.wait_messages(3, 10), 3)
        self.assertEqual(s.counts()["mesg"], 3)

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6(self):
        with SmtpSink("::1") as s:
            with smtplib.SMTP("::1", s.port, timeout=10) as c:
                c.sendmail("a@b", ["x@c"], MSG)
            self.assertEqual(s.wait_messages(1, 10), 1)

    def test_dump(self):
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)    # smtp-sink writes as nobody when the test runs as root
            with SmtpSink("127.0.0.3", dump_dir=Path(d) / "dump") as s:
                with smtplib.SMTP(s.addr, s.port, timeout=10) as c:
                    c.sendmail("a@b", ["x@c"], MSG)
                s.wait_messages(1, 10)
                deadline = time.monotonic() + 10
                while not s.dumps() and time.monotonic() < deadline:
                    time.sleep(0.05)
                dump = s.dumps()[0]
        self.assertIn(b"leading dot", dump)
        self.assertIn(b"x@c", dump)


if __name__ == "__main__":
    unittest.main()
