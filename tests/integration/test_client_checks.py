"""What ringmaild checks of a client before its greeting and of its sender at MAIL, against a
real dnsmasq on loopback: reverse DNS with forward confirmation (dns.peername_lookup),
FEATURE(dnsbl)/enhdnsbl (features.dnsbl), FEATURE(greet_pause) with GreetPause: access
entries, and the sender's domain (features.accept_unresolvable_domains off: 553 5.1.8 for
a domain that does not exist, 451 4.1.8 when its lookup fails, no lookup for <>, local
domains and address literals; with delay_checks those refusals come at RCPT, a Spam: friend
spared).

One daemon, one dnsmasq (dns_fixture.py, zones test and 0.0.127.in-addr.arpa, so every
other reverse name is NXDOMAIN), each kind of client from its own loopback address:

- a client whose PTR name leads back to it: `relay=good.test [ip]` in the log, in the EHLO
  reply and in Received: (`from helo (good.test [ip])`);
- one whose PTR name has another address: `forged.test [ip] (may be forged)`;
- one without PTR: `[ip]`;
- DNSBL: a client listed at bl.test gets sendmail's "550 5.7.1 Rejected: <ip> listed at
  bl.test" in place of the greeting and the check_relay line; enhdnsbl (ebl.test with
  results [127.0.0.2.]) refuses an answer 127.0.0.2 and lets 127.0.0.3 through; a zone
  with the temp-failure option whose lookup fails (SERVFAIL) gives 451 4.4.3;
- greet_pause: a client that talks first gets "554 <host> ESMTP not accepting messages"
  and sendmail's "rejecting commands ... due to pre-greeting traffic" line, which
  fail2ban's stock sendmail-reject filter finds; a patient one is greeted after the pause.

No query leaves loopback: dns.servers is the fixture's only server.
"""

import re
import shutil
import smtplib
import socket
import time
import unittest

import test_fail2ban as f2b
from dns_fixture import DnsFixture
from ringmail_harness import HOSTNAME, IO_TIMEOUT, RingmailTestCase, SMTPConn

GOOD = "127.0.0.31"     # PTR good.test, good.test A GOOD
FORGED = "127.0.0.32"   # PTR forged.test, forged.test A 127.0.0.99
NONAME = "127.0.0.33"   # no PTR
LISTED = "127.0.0.34"   # listed at bl.test
E_OTHER = "127.0.0.35"  # ebl.test answers 127.0.0.3: not a listed result
E_LISTED = "127.0.0.36"  # ebl.test answers 127.0.0.2
SLOW = "127.0.0.37"     # its PTR lookup is never answered (times out)
TEMPFAIL = "127.0.0.40"  # tf.test (tempfail) answers SERVFAIL
EARLY = "127.0.0.50"    # GreetPause 1500, talks first
PATIENT = "127.0.0.51"  # GreetPause 1500, waits
PAUSE_MS = 1500


def rev(addr: str, zone: str) -> str:
    return ".".join(reversed(addr.split("."))) + "." + zone


class ClientChecks(RingmailTestCase):

    def setUp(self):
        super().setUp()
        dns = DnsFixture("127.0.0.2", zones=("test", "0.0.127.in-addr.arpa"), workdir=self.tmp)
        dns._options += [f"--ptr-record={rev(GOOD, 'in-addr.arpa')},good.test",
                         f"--ptr-record={rev(FORGED, 'in-addr.arpa')},forged.test"]
        dns.a("good.test", GOOD).a("forged.test", "127.0.0.99")
        dns.a(rev(LISTED, "bl.test"), "127.0.0.2")
        dns.a(rev(E_OTHER, "ebl.test"), "127.0.0.3")
        dns.a(rev(E_LISTED, "ebl.test"), "127.0.0.2")
        dns.servfail(rev(TEMPFAIL, "tf.test"))
        dns.blackhole(rev(SLOW, "in-addr.arpa"))
        dns.start()
        self.addCleanup(dns.stop)
        self.dns = dns
        d = self.new_daemon(
            start=False, log={"ident": "sm-mta"}, maps={"access": "access"},
            dns={"servers": [dns.server], "peername_lookup": True, "timeout": "1s", "tries": 1},
            features={"dnsbl": [{"zone": "bl.test"},
                                {"zone": "ebl.test", "results": ["127.0.0.2."]},
                                {"zone": "tf.test", "tempfail": True}]})
        (d.workdir / "access").write_text(
            f"GreetPause:{EARLY} {PAUSE_MS}\nGreetPause:{PATIENT} {PAUSE_MS}\n")
        d.start()
        self.d = d

    def greeting(self, source: str) -> tuple[socket.socket, bytes]:
        s = f2b.raw_from(self.d.port, source)
        self.addCleanup(s.close)
        return s, f2b.read_reply(s)

    def smtp(self, source: str) -> smtplib.SMTP:
        c = smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example",
                         source_address=(source, 0), timeout=IO_TIMEOUT)
        self.addCleanup(c.close)
        return c

    def test_confirmed_name_in_log_ehlo_and_received(self):
        c = self.smtp(GOOD)
        code, text = c.ehlo()
        self.assertEqual(code, 250)
        self.assertIn(f"Hello client.example good.test [{GOOD}],", text.decode())
        c.mail("sender@mx.test")
        c.rcpt("someone@mx.test")
        code, text = c.data(b"Subject: t\r\n\r\nhello\r\n")
        self.assertEqual(code, 250, text)
        qid = re.search(r"(\w+) Message accepted", text.decode())[1]
        c.quit()
        received, _ = self.d.spool.split_df(qid)
        self.assertTrue(received.startswith(
            f"Received: from client.example (good.test [{GOOD}])".encode()), received)
        self.assertTrue(self.d.wait_log(
            rf"{qid}: from=<sender@mx\.test>, .*relay=good\.test \[{re.escape(GOOD)}\]$"),
            self.d.log())

    def test_forged_and_unnamed_clients(self):
        for source, shown in ((FORGED, f"forged.test [{FORGED}] (may be forged)"),
                              (NONAME, f"[{NONAME}]")):
            with self.subTest(source=source):
                c = self.smtp(source)
                code, text = c.ehlo()
                self.assertIn(f"Hello client.example {shown},", text.decode())
                c.quit()
                self.assertTrue(self.d.wait_log(
                    rf": {re.escape(shown)} did not issue MAIL/EXPN/VRFY/ETRN during "
                    r"connection to MTA$"), self.d.log())

    def test_dnsbl_listed_client_is_refused(self):
        for source, zone in ((LISTED, "bl.test"), (E_LISTED, "ebl.test")):
            with self.subTest(source=source):
                s, reply = self.greeting(source)
                text = f"Rejected: {source} listed at {zone}"
                self.assertEqual(reply.decode(), f"550 5.7.1 {HOSTNAME} {text}\r\n")
                self.assertEqual(f2b.wait_closed(s), b"")
                self.assertTrue(self.d.wait_log(
                    rf"ruleset=check_relay, arg1=\[{re.escape(source)}\], "
                    rf"arg2={re.escape(source)}, relay=\[{re.escape(source)}\], "
                    rf"reject=550 5\.7\.1 {re.escape(text)}$"), self.d.log())

    def test_dnsbl_unlisted_and_other_results_pass(self):
        for source in (NONAME, E_OTHER):
            with self.subTest(source=source):
                s, reply = self.greeting(source)
                self.assertTrue(reply.startswith(f"220 {HOSTNAME} ESMTP".encode()), reply)

    def test_dnsbl_temporary_failure_with_t(self):
        s, reply = self.greeting(TEMPFAIL)
        text = f"Temporary lookup failure of {TEMPFAIL} at tf.test"
        self.assertEqual(reply.decode(), f"451 4.4.3 {HOSTNAME} {text}\r\n")
        self.assertTrue(self.d.wait_log(rf"ruleset=check_relay, .*reject=451 4\.4\.3 {text}$"),
                        self.d.log())

    def test_input_before_the_greeting_is_read_after_it(self):
        """No pause, a slow lookup: what the client sends first is kept and answered after
        the greeting (as sendmail reads it after its lookups); a lookup that failed shows
        the bare address."""
        s = f2b.raw_from(self.d.port, SLOW)
        self.addCleanup(s.close)
        s.sendall(b"EHLO slow.example\r\nQUIT\r\n")
        got = f2b.wait_closed(s).decode()
        self.assertRegex(got, rf"^220 {HOSTNAME} ESMTP .*\r\n250-{HOSTNAME} Hello slow\.example "
                              rf"\[{re.escape(SLOW)}\], pleased to meet you\r\n(250-.*\r\n)*"
                              r"250 .*\r\n221 2\.0\.0 .*\r\n$")

    def test_greet_pause_patient_client(self):
        t0 = time.monotonic()
        s, reply = self.greeting(PATIENT)
        self.assertTrue(reply.startswith(f"220 {HOSTNAME} ESMTP".encode()), reply)
        self.assertGreaterEqual(time.monotonic() - t0, PAUSE_MS / 1000 - 0.1)

    @unittest.skipIf(f2b.FAIL2BAN_REGEX is None, "fail2ban-regex is not installed")
    def test_greet_pause_early_talker(self):
        s = f2b.raw_from(self.d.port, EARLY)
        self.addCleanup(s.close)
        s.sendall(b"EHLO early.example\r\n")
        self.assertEqual(f2b.wait_closed(s).decode(),
                         f"554 {HOSTNAME} ESMTP not accepting messages\r\n")
        line = self.d.wait_log(rf"rejecting commands from \[{re.escape(EARLY)}\] "
                               rf"\[{re.escape(EARLY)}\] due to pre-greeting traffic after "
                               r"0 seconds$")
        self.assertTrue(line, self.d.log())
        mail_log = self.tmp / "mail.log"
        f2b.syslog_file(self.d.log(), mail_log)
        found = f2b.StockFilters.fail2ban(self, mail_log,
                                          f"{f2b.FILTERS}/sendmail-reject.conf[mode=normal]")
        self.assertEqual(found, [EARLY])


class SenderDomain(RingmailTestCase):
    """accept_unresolvable_domains off (sendmail's default): MAIL FROM's domain must
    resolve; the answer comes from dnsmasq, and MAIL waits for it with what was pipelined
    after it."""

    def setUp(self):
        super().setUp()
        dns = DnsFixture("127.0.0.2", workdir=self.tmp)
        dns.mx("ok.test", (10, "mx.ok.test")).a("mx.ok.test", "127.0.0.3")
        dns.a("plain.test", "127.0.0.4")   # no MX: its address does
        dns.mx("mxonly.test", (10, "ghost.mxonly.test"))  # an MX host without an address
        dns.servfail("broken.test")
        dns.start()
        self.addCleanup(dns.stop)
        self.dns = dns
        self.d = self.new_daemon(dns={"servers": [dns.server], "timeout": "1s", "tries": 1},
                                 features={"accept_unresolvable_domains": False})

    def conn(self) -> SMTPConn:
        c = SMTPConn(self.d.port)
        self.addCleanup(c.close)
        self.assertEqual(c.ehlo().code, 250)
        return c

    def test_resolving_domains_pass(self):
        c = self.conn()
        # (an MX record is enough, as sendmail's host map: its exchanger is not looked up)
        for sender in ("a@ok.test", "a@plain.test", "a@mxonly.test"):
            with self.subTest(sender=sender):
                # pipelined: RCPT waits for MAIL's lookup and is answered after it
                c.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<u@{HOSTNAME}>\r\nRSET\r\n")
                got = [r.last for r in c.replies(3)]
                self.assertEqual(got, [f"250 2.1.0 <{sender}>... Sender ok",
                                       f"250 2.1.5 <u@{HOSTNAME}>... Recipient ok",
                                       "250 2.0.0 Reset state"])

    def test_unknown_domain_553(self):
        c = self.conn()
        r = c.cmd("MAIL FROM:<a@nowhere.test>")
        text = "<a@nowhere.test>... Domain of sender address a@nowhere.test does not exist"
        self.assertEqual(r.last, f"553 5.1.8 {text}")
        self.assertTrue(self.d.wait_log(
            r"ruleset=check_mail, arg1=<a@nowhere\.test>, relay=\[127\.0\.0\.1\], "
            rf"reject=553 5\.1\.8 {re.escape(text)}$"), self.d.log())
        self.assertEqual(c.cmd("MAIL FROM:<a@ok.test>").code, 250)

    def test_failing_lookup_451(self):
        c = self.conn()
        self.assertEqual(c.cmd("MAIL FROM:<a@broken.test>").last,
                         "451 4.1.8 Domain of sender address a@broken.test does not resolve")

    def test_not_looked_up(self):
        c = self.conn()
        for sender in ("", f"a@{HOSTNAME}", "a@[127.0.0.9]"):
            with self.subTest(sender=sender):
                self.assertEqual(c.cmd(f"MAIL FROM:<{sender}>").code, 250)
                self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(self.dns.queries(), [])

    def test_delay_checks_refuses_at_rcpt_and_spares_friends(self):
        """FEATURE(delay_checks, friend): proto.m4's check_rcpt runs check_mail, so the
        unresolvable sender is refused recipient by recipient, and a Spam: friend gets it."""
        d = self.new_daemon(start=False, maps={"access": "access"},
                            dns={"servers": [self.dns.server], "timeout": "1s", "tries": 1},
                            features={"accept_unresolvable_domains": False,
                                      "delay_checks": ["friend"]},
                            log={"ident": "sm-mta"})
        (d.workdir / "access").write_text(f"Spam:friend@{HOSTNAME} FRIEND\n")
        d.start()
        c = SMTPConn(d.port)
        self.addCleanup(c.close)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@nowhere.test>").last,
                         "250 2.1.0 <a@nowhere.test>... Sender ok")
        text = f"<u@{HOSTNAME}>... Domain of sender address a@nowhere.test does not exist"
        self.assertEqual(c.cmd(f"RCPT TO:<u@{HOSTNAME}>").last, f"553 5.1.8 {text}")
        self.assertTrue(d.wait_log(
            rf"ruleset=check_rcpt, arg1=<u@{re.escape(HOSTNAME)}>, relay=\[127\.0\.0\.1\], "
            rf"reject=553 5\.1\.8 {re.escape(text)}$"), d.log())
        self.assertEqual(c.cmd(f"RCPT TO:<friend@{HOSTNAME}>").code, 250)
        if f2b.FAIL2BAN_REGEX:  # the stock filter knows this refusal from check_rcpt
            mail_log = self.tmp / "mail.log"
            f2b.syslog_file(d.log(), mail_log)
            found = f2b.StockFilters.fail2ban(self, mail_log,
                                              f"{f2b.FILTERS}/sendmail-reject.conf[mode=normal]")
            self.assertEqual(found, ["127.0.0.1"])
        # the lookup failing: 451 at RCPT; the next transaction starts clean
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@broken.test>").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<u@{HOSTNAME}>").last,
                         f"451 4.1.8 <u@{HOSTNAME}>... Domain of sender address a@broken.test "
                         "does not resolve")
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@ok.test>").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<u@{HOSTNAME}>").code, 250)


if __name__ == "__main__":
    unittest.main()
