"""Abuse limits: too many errors slow the client down and then drop it (421 4.7.0); too
many recipients get 452 4.5.3; too many connections per client get 421 4.3.2; an
over-long command line is refused. Refused connections are logged as sendmail does, at most
once per 10 s and then with the count of those not logged."""

import re
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message


class Errors(RingmailTestCase):

    def test_too_many_errors(self):
        d = self.daemon(limits={"errors": 5, "error_throttle": 3})
        c = self.session(d)
        replies = []
        start = time.monotonic()
        for i in range(10):
            try:
                r = c.cmd(f"XYZZY{i}", timeout=30)
            except ConnectionError:
                break
            replies.append(r)
            if r.code == 421:
                break
        elapsed = time.monotonic() - start
        codes = [r.code for r in replies]
        self.assertEqual(codes[-1], 421, f"never dropped: {codes}")
        self.assertEqual(replies[-1].enh, "4.7.0", replies[-1].text)
        self.assertIn(HOSTNAME, replies[-1].last)
        self.assertLessEqual(len(replies), 6, f"dropped too late: {codes}")
        self.assertTrue(all(code == 500 for code in codes[:-1]), codes)
        self.assertGreaterEqual(elapsed, 1.0, "errors past error_throttle were not slowed")
        self.assertEqual(c.wait_closed(), b"")

    def test_too_many_recipients(self):
        d = self.daemon(limits={"recipients": 3})
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        for i in range(3):
            self.assertReply(c.cmd(f"RCPT TO:<u{i}@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<u3@{HOSTNAME}>"), 452, "4.5.3")
        self.assertReply(c.cmd(f"RCPT TO:<u4@{HOSTNAME}>"), 452, "4.5.3")
        qid = self.assertAccepted(c.data(make_message())[1])
        addrs = [r["addr"] for r in d.spool.envelope(qid)["rcpts"]]
        self.assertEqual(addrs, [f"u{i}@{HOSTNAME}" for i in range(3)])

    def test_connections_per_client(self):
        d = self.daemon(limits={"connections_per_client": 2})
        a, b = self.connect(d), self.connect(d)
        self.assertEqual((a.greeting.code, b.greeting.code), (220, 220))
        third = self.connect(d)
        # sendmail's FEATURE(conncontrol, nodelay, terminate): reply and check_relay line
        self.assertEqual(third.greeting.text, "421 4.3.2 Too many open connections.")
        self.assertEqual(third.wait_closed(), b"")
        self.assertIsNotNone(d.wait_log(r"\]: ruleset=check_relay, arg1=\[127\.0\.0\.1\], "
                                        r"arg2=127\.0\.0\.1, relay=\[127\.0\.0\.1\], "
                                        r"reject=421 4\.3\.2 Too many open connections\.$"))
        a.cmd("QUIT")
        a.wait_closed()
        deadline = time.monotonic() + 10
        while True:  # the slot frees once the daemon has seen the close
            again = self.connect(d)
            if again.greeting.code == 220 or time.monotonic() > deadline:
                break
            again.close()
            time.sleep(0.1)
        self.assertReply(again.greeting, 220)

    def refused(self, d, n: int) -> None:
        for _ in range(n):
            c = self.connect(d)
            self.assertReply(c.greeting, 421, "4.3.2")
            self.assertEqual(c.wait_closed(), b"")
            c.close()

    def test_refusals_are_logged_once_per_interval_with_a_count(self):
        """A client refused again and again gets one line per 10 s, then the count of the
        lines held back (at the latest when the daemon stops), not a line per refusal."""
        d = self.daemon(limits={"connections": 1})
        holder = self.session(d)
        self.refused(d, 5)
        self.assertEqual(d.stop(), 0)
        log = d.log()
        self.assertEqual(len(re.findall(r"\]: rejecting connections on daemon MTA: "
                                        r"\d+ children, max 1$", log, re.M)), 1, log)
        self.assertRegex(log, re.compile(r"\]: 4 more like this were not logged in \d+ s: "
                                         r"rejecting connections on daemon MTA: ", re.M))
        # the daemon being full is no fault of the client: nothing fail2ban would count
        self.assertNotIn("ruleset=check_relay", log)
        holder.close()

    def test_per_client_refusals_are_logged_once_per_interval(self):
        d = self.daemon(limits={"connections_per_client": 1})
        holder = self.session(d)
        self.refused(d, 4)
        self.assertEqual(d.stop(), 0)
        log = d.log()
        self.assertEqual(len(re.findall(r"\]: ruleset=check_relay, arg1=\[127\.0\.0\.1\]",
                                        log)), 1, log)
        self.assertRegex(log, r"\]: 3 more like this were not logged in \d+ s: "
                              r"ruleset=check_relay, arg1=\[127\.0\.0\.1\], ")
        holder.close()

    def test_too_many_errors_is_logged(self):
        d = self.daemon(limits={"errors": 2, "error_throttle": 100})
        c = self.session(d)
        c.cmd("XYZZY1")
        self.assertReply(c.cmd("XYZZY2"), 500)
        self.assertReply(c.reply(), 421, "4.7.0")
        # ringmail's own line, then sendmail's for a client that never sent MAIL
        qid = d.wait_log(r"\]: ([0-9A-Za-z]{16}): closing connection from \[127\.0\.0\.1\]: "
                         r"too many errors$")
        self.assertIsNotNone(qid)
        self.assertIsNotNone(d.wait_log(rf"\]: {qid[1]}: \[127\.0\.0\.1\] did not issue "
                                        rf"MAIL/EXPN/VRFY/ETRN during connection to MTA$"))

    def test_command_line_too_long(self):
        d = self.daemon(limits={"command_line": 512})
        c = self.session(d)
        r = c.cmd("MAIL FROM:<" + "a" * 600 + "@b.example>")
        self.assertEqual(r.code // 100, 5, r.text)
        self.assertEqual(r.code, 500, r.text)
        # the rest of the long line was not taken as a new command
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)

    def test_headers_too_large(self):
        d = self.daemon(limits={"header_size": 2048})
        c = self.session(d)
        msg = make_message(extra_headers="X-Big: " + "h" * 3000 + "\r\n")
        r = c.send_mail("a@b.example", [f"user@{HOSTNAME}"], msg)
        self.assertReply(r, 552, "5.6.0")
        self.assertEqual(d.spool.qids(), set())


if __name__ == "__main__":
    unittest.main()
