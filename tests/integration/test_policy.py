"""The access map, all of it (issue 12, policy/): sendmail's check_relay, check_mail and
check_rcpt against the real daemon. Every action (OK, RELAY, REJECT, DISCARD, ERROR:, SKIP,
QUARANTINE:), sendmail's lookup order (full address with and without +detail, user@, the
domain and its parents, bare keys after tagged ones, the client address and its prefixes,
IPv6), FEATURE(delay_checks) with Spam: FRIEND and HATER, FEATURE(blocklist_recipients), a
DISCARDed message that is answered 250 and never queued, a QUARANTINEd one held in the
queue with its reason in mailq, and fail2ban's stock sendmail-reject filter on the log.

Clients come from their own loopback addresses (127.0.0.x) so that Connect: keys tell them
apart; 127.0.0.1 is not in relay_from (TEST_NET), so only the map lets anyone relay.
"""

import os
import re
import socket
import subprocess
import time
import unittest
from pathlib import Path

from ringmail_harness import (HOSTNAME, IO_TIMEOUT, TEST_NET, RingmailTestCase, SMTPConn,
                              free_port, ipv6_loopback_available, make_message)
from test_fail2ban import FAIL2BAN_REGEX, FILTERS, syslog_file

QID = r"[0-9A-Za-z]{16}"


class SourceConn(SMTPConn):
    """SMTPConn from a chosen loopback address."""

    def __init__(self, port: int, source: str, timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply()


class PolicyCase(RingmailTestCase):

    def policy_daemon(self, access: str, **overrides):
        d = self.new_daemon(start=False, relay_from=[TEST_NET], maps={"access": "access"},
                            **overrides)
        (d.workdir / "access").write_text(access)
        return d.start()

    def client(self, d, source: str = "127.0.0.1") -> SourceConn:
        c = SourceConn(d.port, source)
        self._conns.append(c)
        return c

    def ehlo_from(self, d, source: str = "127.0.0.1") -> SourceConn:
        c = self.client(d, source)
        self.assertReply(c.greeting, 220)
        self.assertReply(c.ehlo(), 250)
        return c

    def mail(self, d, sender: str, source: str = "127.0.0.1"):
        c = self.ehlo_from(d, source)
        return c.cmd(f"MAIL FROM:<{sender}>")

    def rcpt(self, d, rcpt: str, sender: str = "a@client.example", source: str = "127.0.0.1"):
        c = self.ehlo_from(d, source)
        self.assertReply(c.cmd(f"MAIL FROM:<{sender}>"), 250)
        return c.cmd(f"RCPT TO:<{rcpt}>")


FROM_MAP = """From:spammer.test          REJECT
From:good.spammer.test     OK
From:skip.spammer.test     SKIP
bad.test                   ERROR:"553 5.7.1 go away"
From:joe@                  REJECT
From:joe@friendly.test     OK
From:ann@                  OK
From:mixed.test            REJECT
From:plus@detail.test      ERROR:5.7.0:550 no detail either
From:drop@client.test      DISCARD
From:hold@client.test      QUARANTINE:held for review
"""


class FromChecks(PolicyCase):
    """check_mail: From: and bare keys at MAIL, sendmail's replies and log lines."""

    def setUp(self):
        super().setUp()
        self.d = self.policy_daemon(FROM_MAP)

    def test_reject_domain_and_its_parents(self):
        for sender in ["x@spammer.test", "x@mx.spammer.test"]:
            with self.subTest(sender=sender):
                r = self.mail(self.d, sender)
                self.assertEqual(r.text, f"550 5.7.1 <{sender}>... Access denied")
        self.assertIsNotNone(self.d.wait_log(
            rf"\]: {QID}: ruleset=check_mail, arg1=<x@spammer\.test>, relay=\[127\.0\.0\.1\], "
            rf"reject=550 5\.7\.1 <x@spammer\.test>\.\.\. Access denied$"))

    def test_ok_and_skip_end_the_domain_walk(self):
        self.assertReply(self.mail(self.d, "x@good.spammer.test"), 250)
        self.assertReply(self.mail(self.d, "x@a.good.spammer.test"), 250)
        # SKIP: the walk up the domain stops there, nothing found: accepted
        self.assertReply(self.mail(self.d, "x@skip.spammer.test"), 250)

    def test_bare_key_is_a_from_check_with_its_error(self):
        r = self.mail(self.d, "x@sub.bad.test")
        self.assertEqual(r.text, "553 5.7.1 <x@sub.bad.test>... go away")

    def test_order_full_address_then_user_then_domain(self):
        # From:joe@ refuses joe anywhere, but the full address comes first
        self.assertReply(self.mail(self.d, "joe@elsewhere.test"), 550, "5.7.1")
        self.assertReply(self.mail(self.d, "joe@friendly.test"), 250)
        # user@ (OK) before the domain (REJECT), as proto.m4's <F:> <U:> <D:> list
        self.assertReply(self.mail(self.d, "ann@mixed.test"), 250)
        self.assertReply(self.mail(self.d, "bob@mixed.test"), 550, "5.7.1")

    def test_plus_detail_falls_back_to_the_address(self):
        r = self.mail(self.d, "plus+tag@detail.test")
        self.assertEqual(r.text, "550 5.7.0 <plus+tag@detail.test>... no detail either")

    def test_null_sender_is_never_looked_up(self):
        self.assertReply(self.mail(self.d, ""), 250)

    def send_held(self, sender: str, line: str) -> str:
        """A message from `sender`, accepted; its check_mail line ends with `line`. Its qid."""
        c = self.ehlo_from(self.d)
        qid = self.assertAccepted(c.send_mail(sender, [f"u@{HOSTNAME}"], make_message()))
        self.assertIsNotNone(self.d.wait_log(
            rf"\]: {QID}: ruleset=check_mail, arg1=<{re.escape(sender)}>, "
            rf"relay=\[127\.0\.0\.1\], {line}$"))
        return qid

    def test_discard_answers_250_and_queues_nothing(self):
        qid = self.send_held("drop@client.test", "discard")
        self.assertIsNotNone(self.d.wait_log(rf"\]: {qid}: from=<drop@client\.test>, "))
        time.sleep(0.5)
        self.assertEqual(self.d.spool.qids(), set())
        self.assertNotRegex(self.d.log(), rf"{qid}: to=")

    def test_quarantine_holds_the_message_with_its_reason(self):
        qid = self.send_held("hold@client.test", "quarantine=held for review")
        self.assertIn(qid, self.d.spool.qids())
        # a fixed-width field (a release blanks it in place)
        self.assertRegex(self.d.spool.qf_envelope(qid), rb"\nqheld for review {145}\n")
        exe = Path(os.environ.get("RINGMAIL_BIN", "")) / "ringmail-queue"
        if not exe.exists():
            self.skipTest(f"{exe} is not built")
        out = subprocess.run([str(exe), "-C", str(self.d.config_path), "list"],
                             capture_output=True, text=True, timeout=60).stdout
        # sendmail's printqueue(): the held mark, then the reason under the sender
        self.assertRegex(out, rf"{qid}X +\d+ .{{16}} <hold@client\.test>\n"
                              r"     QUARANTINE: held for review\n")
        time.sleep(1.0)  # never delivered: no attempt is made
        self.assertNotRegex(self.d.log(), rf"{qid}: to=")
        self.assertIn(qid, self.d.spool.qids())
        # still held after a restart (the qf says so), until an operator releases it
        self.d.stop()
        self.d.start()
        time.sleep(1.0)
        self.assertNotRegex(self.d.log(since_start=True), rf"{qid}: to=")
        r = subprocess.run([str(exe), "-C", str(self.d.config_path), "release", qid],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # tried at once: LUSER_RELAY's host does not answer, so it is deferred
        self.assertIsNotNone(self.d.wait_log(rf"{qid}: to=<u@{re.escape(HOSTNAME)}>, .*stat="))


TO_MAP = f"""To:partner.test            RELAY
To:victim@{HOSTNAME}        REJECT
To:ghost@                   REJECT
To:err@{HOSTNAME}           ERROR:"550 5.7.1 custom text"
To:sink@{HOSTNAME}          DISCARD
"""


class ToChecks(PolicyCase):

    def test_blocklist_recipients(self):
        d = self.policy_daemon(TO_MAP, features={"blocklist_recipients": True})
        r = self.rcpt(d, f"victim@{HOSTNAME}")
        self.assertEqual(r.text,
                         f"550 5.2.1 <victim@{HOSTNAME}>... Mailbox disabled for this recipient")
        r = self.rcpt(d, f"err@{HOSTNAME}")
        self.assertEqual(r.text, f"550 5.7.1 <err@{HOSTNAME}>... custom text")
        # user@ keys: local recipients only, as sendmail's blocklist_recipients
        self.assertReply(self.rcpt(d, f"ghost@{HOSTNAME}"), 550, "5.2.1")
        self.assertReply(self.rcpt(d, "ghost@partner.test"), 250)
        self.assertReply(self.rcpt(d, "u@partner.test"), 250)
        self.assertIsNotNone(d.wait_log(
            rf"ruleset=check_rcpt, arg1=<victim@{re.escape(HOSTNAME)}>, relay=\[127\.0\.0\.1\], "
            rf"reject=550 5\.2\.1 <victim@{re.escape(HOSTNAME)}>\.\.\. Mailbox disabled for "
            rf"this recipient$"))
        # To: DISCARD drops the whole message
        c = self.ehlo_from(d)
        qid = self.assertAccepted(c.send_mail("a@client.test", [f"sink@{HOSTNAME}"],
                                              make_message()))
        self.assertIsNotNone(d.wait_log(rf"{qid}: ruleset=check_rcpt, arg1=<sink@"))
        time.sleep(0.5)
        self.assertEqual(d.spool.qids(), set())

    def test_without_blocklist_recipients_to_refusals_wait(self):
        d = self.policy_daemon(TO_MAP)
        self.assertReply(self.rcpt(d, f"victim@{HOSTNAME}"), 250)
        self.assertRegex(d.log(since_start=True),
                         r"access:2: To: refusals without "
                         r"features\.blocklist_recipients")


CONNECT_MAP = """Connect:127.0.0.30          REJECT
127.0.1                     ERROR:"550 5.7.1 your network is blocked"
Connect:127.0.0.31          RELAY
Connect:127.0.0.32          DISCARD
Connect:127.0.0.33          QUARANTINE:client under review
Connect:127.0.2             REJECT
Connect:127.0.2.9           SKIP
Connect:IPv6:::1            REJECT
"""


class ConnectChecks(PolicyCase):

    def setUp(self):
        super().setUp()
        self.d = self.policy_daemon(CONNECT_MAP)

    def test_address_and_prefixes(self):
        c = self.client(self.d, "127.0.0.30")
        self.assertEqual(c.greeting.text, f"550 5.7.1 {HOSTNAME} Access denied")
        c = self.client(self.d, "127.0.1.5")  # a bare prefix key
        self.assertEqual(c.greeting.text, "550 5.7.1 your network is blocked")
        c = self.client(self.d, "127.0.2.8")
        self.assertReply(c.greeting, 550, "5.7.1")
        # SKIP on the longer key: the shorter prefix is not consulted
        self.assertReply(self.client(self.d, "127.0.2.9").greeting, 220)

    def test_connect_relay(self):
        self.assertReply(self.rcpt(self.d, "u@remote.example", source="127.0.0.31"), 250)
        self.assertReply(self.rcpt(self.d, "u@remote.example"), 550, "5.7.1",
                         r"Relaying denied$")

    def test_connect_discard_and_quarantine(self):
        c = self.ehlo_from(self.d, "127.0.0.32")
        qid = self.assertAccepted(c.send_mail("a@client.test", [f"u@{HOSTNAME}"],
                                              make_message()))
        self.assertRegex(self.d.log(), r"ruleset=check_relay, arg1=\[127\.0\.0\.32\], "
                                       r"relay=\[127\.0\.0\.32\], discard")
        time.sleep(0.5)
        self.assertNotIn(qid, self.d.spool.qids())
        c = self.ehlo_from(self.d, "127.0.0.33")
        qid = self.assertAccepted(c.send_mail("a@client.test", [f"u@{HOSTNAME}"],
                                              make_message()))
        self.assertRegex(self.d.spool.qf_envelope(qid), rb"\nqclient under review +\n")

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6(self):
        d = self.new_daemon(start=False, maps={"access": "access"},
                            listen=[{"name": "MTA", "address": "::1", "port": free_port(
                                socket.AF_INET6, "::1")}])
        (d.workdir / "access").write_text(CONNECT_MAP)
        d.start()
        c = self.connect(d, host="::1")
        self.assertEqual(c.greeting.text, f"550 5.7.1 {HOSTNAME} Access denied")


DELAY_MAP = f"""Connect:127.0.0.40          REJECT
From:spammer.test           REJECT
Spam:friend@{HOSTNAME}      FRIEND
Spam:hater@{HOSTNAME}       HATER
"""


class DelayChecks(PolicyCase):

    def test_refusals_move_to_rcpt(self):
        d = self.policy_daemon(DELAY_MAP, features={"delay_checks": True})
        c = self.ehlo_from(d, "127.0.0.40")  # greeted: its refusal waits for RCPT
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        r = c.cmd(f"RCPT TO:<u@{HOSTNAME}>")
        self.assertEqual(r.text, f"550 5.7.1 <u@{HOSTNAME}>... Access denied")
        c = self.ehlo_from(d)
        self.assertReply(c.cmd("MAIL FROM:<x@spammer.test>"), 250)
        r = c.cmd(f"RCPT TO:<friend@{HOSTNAME}>")  # no friend without the argument
        self.assertEqual(r.text, f"550 5.7.1 <friend@{HOSTNAME}>... Access denied")
        self.assertIsNotNone(d.wait_log(
            rf"ruleset=check_rcpt, arg1=<friend@{re.escape(HOSTNAME)}>, "
            rf"relay=\[127\.0\.0\.1\], reject=550 5\.7\.1"))

    def test_friend(self):
        d = self.policy_daemon(DELAY_MAP, features={"delay_checks": ["friend"]})
        self.assertReply(self.rcpt(d, f"friend@{HOSTNAME}", sender="x@spammer.test"), 250)
        self.assertReply(self.rcpt(d, f"u@{HOSTNAME}", sender="x@spammer.test"), 550)
        self.assertReply(self.rcpt(d, f"friend@{HOSTNAME}", source="127.0.0.40"), 250)

    def test_hater(self):
        d = self.policy_daemon(DELAY_MAP, features={"delay_checks": ["hater"]})
        self.assertReply(self.rcpt(d, f"hater@{HOSTNAME}", sender="x@spammer.test"), 550)
        self.assertReply(self.rcpt(d, f"u@{HOSTNAME}", sender="x@spammer.test"), 250)
        self.assertReply(self.rcpt(d, f"hater@{HOSTNAME}", source="127.0.0.40"), 550)


@unittest.skipIf(FAIL2BAN_REGEX is None, "fail2ban-regex is not installed (Debian: fail2ban)")
class Fail2banReject(PolicyCase):
    """sendmail-reject's failregex knows the access map's refusals that say "Rejected: ...",
    as DNSBL and access entries are usually written; with delay_checks they are check_rcpt
    lines, which the stock filter reads."""

    def test_sendmail_reject_finds_access_refusals(self):
        access = ('Connect:127.0.0.50 ERROR:"550 5.7.1 Rejected: listed here"\n'
                  'From:spammer.test ERROR:"550 5.7.1 Rejected: sender listed"\n')
        d = self.policy_daemon(access, log={"ident": "sm-mta"},
                               features={"delay_checks": True})
        self.assertReply(self.rcpt(d, f"u@{HOSTNAME}", source="127.0.0.50"), 550, "5.7.1")
        self.assertReply(self.rcpt(d, f"u@{HOSTNAME}", sender="x@spammer.test",
                                   source="127.0.0.51"), 550, "5.7.1")
        self.assertReply(self.rcpt(d, f"u@{HOSTNAME}", source="127.0.0.52"), 250)
        d.wait_log(r"127\.0\.0\.51\], reject=")
        logfile = self.tmp / "mail.log"
        syslog_file(d.log(since_start=True), logfile)
        p = subprocess.run([FAIL2BAN_REGEX, "--raw", "-o", "ip", str(logfile),
                            str(FILTERS / "sendmail-reject.conf")],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertEqual(p.stdout.split(), ["127.0.0.50", "127.0.0.51"])


if __name__ == "__main__":
    unittest.main()
