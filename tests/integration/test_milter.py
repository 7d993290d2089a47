"""Mail filters (sendmail's INPUT_MAIL_FILTER, docs/milter.md) with real libmilter filters:
one written with Debian's python3-milter (milter_filter.py) that takes every step and makes
every change, and opendkim signing. The daemon relays to a sink, so what reached the next
hop (header, body, sender, recipients) is what the filters made of the message."""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

from delivery_support import DeliveryTestCase
from ringmail_harness import make_message, qf_decode

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"


def have_pymilter() -> bool:
    return subprocess.run([PY, "-c", "import Milter"], capture_output=True).returncode == 0


def wait_socket(path: Path, proc, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the filter exited ({proc.returncode}) before listening")
        if time.monotonic() > deadline:
            raise AssertionError(f"the filter did not make {path}")
        time.sleep(0.05)


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class Milter(DeliveryTestCase):

    def start_filter(self) -> Path:
        """milter_filter.py on a unix socket: the socket's path."""
        sock = self.tmp / "filter.sock"
        self.filter_log = self.tmp / "filter.log"
        proc = subprocess.Popen([PY, str(HERE / "milter_filter.py"), f"unix:{sock}",
                                 "--log", str(self.filter_log)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        wait_socket(sock, proc)
        return sock

    def filter_notes(self) -> list[str]:
        return self.filter_log.read_text().splitlines() if self.filter_log.exists() else []

    def filtered_relay(self, sock, on_fail="continue", timeouts=None, **kw):
        sink = self.sink()
        milter = {"name": "test", "socket": f"unix:{sock}", "on_fail": on_fail}
        if timeouts:
            milter["timeouts"] = timeouts
        d = self.relay(sink, milters=[milter], **kw)
        return sink, d

    def test_envelope_steps_refused_with_the_filters_words(self):
        sink, d = self.filtered_relay(self.start_filter())
        c = self.session(d, helo=None)
        self.assertReply(c.cmd("EHLO reject.helo"), 550, "5.7.1", r"HELO refused by the filter")
        self.assertReply(c.cmd("EHLO client.example"), 250)
        self.assertReply(c.cmd("MAIL FROM:<reject@client.test>"), 550, "5.7.1",
                         r"Sender refused by the filter")
        self.assertReply(c.cmd("MAIL FROM:<tempfail@client.test>"), 451, "4.7.1")
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<reject-rcpt@remote.test>"), 550, "5.1.1",
                         r"No such user here \(filter\)")
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        qid = self.assertAccepted(c.data(make_message(subject="plain"))[1])
        c.cmd("QUIT")
        msg = sink.wait_messages(1)[0]
        self.assertEqual(msg.rcpt_tos, ["bob@remote.test"])
        self.wait_log(d, r"Milter: from=<reject@client\.test>, reject=550 5\.7\.1 Sender refused")
        notes = self.filter_notes()
        # the connect step carries the client and sendmail's macros
        self.assertTrue(any(n.startswith("connect [127.0.0.1] 127.0.0.1 mx.test") for n in notes),
                        notes)
        # MAIL's i macro is the message's queue id
        self.assertTrue(any(n.startswith(f"mail <alice@client.test> {qid}") for n in notes), notes)
        # our own Received: field is part of the header the filter sees
        self.assertTrue(any(n.startswith("header Received from client.example") for n in notes),
                        notes)

    def test_end_of_message_changes_reach_the_next_hop(self):
        sink, d = self.filtered_relay(self.start_filter())
        message = (b"From: alice@client.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: addrcpt delrcpt chgfrom\r\nX-Remove: me\r\n"
                   b"Message-ID: <m1@client.test>\r\n\r\nbody line\r\n")
        qid = self.send(d, "alice@client.test", ["bob@remote.test", "removed@remote.test"],
                        message=message)
        msg = sink.wait_messages(1)[0]
        self.assertEqual(msg.mail_from, "changed@client.test")
        self.assertEqual(sorted(msg.rcpt_tos), ["added@remote.test", "bob@remote.test"])
        head, body = msg.data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"X-Top: inserted at the top")
        self.assertIn(b"X-Milter: seen by the test filter", lines)
        self.assertIn(b"Subject: [filtered] addrcpt delrcpt chgfrom", lines)
        self.assertFalse(any(l.startswith(b"X-Remove") for l in lines), head)
        self.assertEqual(body, b"body line\r\n")
        self.assertTrue(any(l.startswith(b"Received: from client.example") for l in lines))
        self.wait_log(d, rf"{qid}: Milter add: header: X-Milter: seen by the test filter")
        self.wait_log(d, rf"{qid}: Milter add: rcpt: <added@remote\.test>")
        self.wait_log(d, rf"{qid}: Milter delete: rcpt <removed@remote\.test>")

    def test_body_replaced_and_big_body_read_back(self):
        sink, d = self.filtered_relay(self.start_filter())
        big = "".join(f"line {i:06d} of a body longer than one spool chunk\r\n"
                      for i in range(3000))  # ~160 KiB: read back in several chunks
        self.send(d, "alice@client.test", ["bob@remote.test"], subject="keep", body=big)
        self.send(d, "alice@client.test", ["carol@remote.test"], subject="replace", body="old\r\n")
        msgs = {m.rcpt_tos[0]: m for m in sink.wait_messages(2)}
        self.assertTrue(msgs["bob@remote.test"].data.endswith(big.encode()))
        self.assertTrue(msgs["carol@remote.test"].data.endswith(
            b"\r\n\r\nThe filter replaced this body.\r\n"))
        # the filter saw the whole big body
        eoms = [n for n in self.filter_notes() if n.startswith("eom ")]
        self.assertTrue(any(n.startswith("eom %d " % len(big)) for n in eoms), eoms[:2])

    def test_reject_and_discard_at_end_of_message(self):
        sink, d = self.filtered_relay(self.start_filter())
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        c.cmd("DATA")
        c.send(make_message(subject="eomreject") + b".\r\n")
        r = c.reply()
        self.assertEqual(r.lines, ["554-5.7.1 First line of the filter",
                                   "554 5.7.1 Second line of the filter"])
        # the session goes on: a discarded message gets a 250 and goes nowhere
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        self.assertAccepted(c.data(make_message(subject="discard"))[1])
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        self.assertAccepted(c.data(make_message(subject="third"))[1])
        c.cmd("QUIT")
        msgs = sink.wait_messages(1)
        time.sleep(1)
        self.assertEqual(len(sink.messages), 1)
        self.assertIn(b"Subject: [filtered] third", msgs[0].data)
        self.wait_log(d, r"milter=test, discard")

    def test_quarantine(self):
        sink, d = self.filtered_relay(self.start_filter())
        qid = self.send(d, "alice@client.test", ["bob@remote.test"], subject="quarantine")
        self.wait_log(d, rf"{qid}: milter=test, quarantine=held by the test filter")
        time.sleep(1)
        self.assertEqual(sink.messages, [])
        # the qf's q record holds the reason, and the message waits for a person
        reasons = [qf_decode(line[1:]).rstrip(" ") for line in d.spool.qf(qid).decode().split("\n")
                   if line.startswith("q")]
        self.assertEqual(reasons, ["held by the test filter"])

    def test_on_fail_when_the_filter_is_not_there(self):
        missing = self.tmp / "nobody.sock"
        for on_fail, code in (("continue", 250), ("tempfail", 451), ("reject", 550)):
            with self.subTest(on_fail=on_fail):
                sink, d = self.filtered_relay(missing, on_fail=on_fail)
                c = self.connect(d)
                greeting = c.greeting
                if on_fail == "continue":
                    self.assertEqual(greeting.code, 220)
                    self.assertReply(c.ehlo("client.example"), 250)
                    self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
                else:
                    # sendmail's F=T / F=R: nothing is accepted from this connection
                    self.assertEqual(greeting.code, 421 if code == 451 else 554, greeting.text)
                self.wait_log(d, r"Milter \(test\): error connecting to filter: .*(No such file|refused)")
                d.stop()

    def test_timeout_applies_on_fail(self):
        sock = self.start_filter()
        for on_fail, code in (("tempfail", 451), ("continue", 250)):
            with self.subTest(on_fail=on_fail):
                sink, d = self.filtered_relay(sock, on_fail=on_fail,
                                              timeouts={"eom": "1s"})
                c = self.session(d)
                self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
                self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
                r = c.data(make_message(subject="sleep"))[1]
                self.assertEqual(r.code, code, r.text)
                self.wait_log(d, r"Milter \(test\): timeout before data read in eom")
                if code == 250:
                    msg = sink.wait_messages(1)[0]
                    self.assertNotIn(b"X-Milter", msg.data)  # the filter's changes never came
                d.stop()


def opendkim() -> str | None:
    return shutil.which("opendkim", path="/usr/sbin:/usr/bin")


@unittest.skipUnless(opendkim() and shutil.which("opendkim-genkey", path="/usr/sbin:/usr/bin"),
                     "opendkim is not installed")
class OpenDKIM(DeliveryTestCase):

    def test_signed_message_verifies(self):
        try:
            import dkim  # Debian's python3-dkim
        except ImportError:
            self.skipTest("python3-dkim is not installed")
        keys = self.tmp / "keys"
        keys.mkdir()
        subprocess.run(["opendkim-genkey", "-D", str(keys), "-d", "example.test", "-s", "sel"],
                       check=True)
        sock = self.tmp / "opendkim.sock"
        conf = self.tmp / "opendkim.conf"
        conf.write_text(f"Socket local:{sock}\nMode s\nDomain example.test\nSelector sel\n"
                        f"KeyFile {keys / 'sel.private'}\nSyslog no\n"
                        f"PidFile {self.tmp / 'opendkim.pid'}\n"
                        "Canonicalization relaxed/simple\nRequireSafeKeys no\n")
        proc = subprocess.Popen([opendkim(), "-f", "-x", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        wait_socket(sock, proc)
        sink = self.sink()
        d = self.relay(sink, milters=[{"name": "opendkim", "socket": f"local:{sock}",
                                       "on_fail": "tempfail"}])
        message = (b"From: alice@example.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: signed\r\nMessage-ID: <dkim1@example.test>\r\n"
                   b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nA signed body.\r\n")
        self.send(d, "alice@example.test", ["bob@remote.test"], message=message)
        msg = sink.wait_messages(1)[0]
        self.assertIn(b"DKIM-Signature:", msg.data)
        self.assertRegex(msg.data, rb"d=example\.test")
        txt = (keys / "sel.txt").read_text()
        record = "".join(re.findall(r'"([^"]*)"', txt)).encode()

        def dnsfunc(name, timeout=5):
            return record if name == b"sel._domainkey.example.test." else None

        self.assertTrue(dkim.verify(msg.data, dnsfunc=dnsfunc), msg.data[:600])
        # and a changed body no longer verifies: the signature covers it
        self.assertFalse(dkim.verify(msg.data.replace(b"A signed body", b"A forged body"),
                                     dnsfunc=dnsfunc))


if __name__ == "__main__":
    unittest.main()
