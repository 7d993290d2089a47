"""Abuse limits: too many errors slow the client down and then drop it (421 4.7.0); too
many recipients get 452 4.5.3; too many connections per client get 421 4.3.2; an
over-long command line is refused."""

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
        self.assertReply(third.greeting, 421, "4.3.2")
        self.assertEqual(third.wait_closed(), b"")
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
