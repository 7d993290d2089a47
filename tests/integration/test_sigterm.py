"""SIGTERM: listeners close at once, idle sessions are told 421, a transaction in flight
may finish within timeouts.shutdown_grace (and is acknowledged), then exit 0."""

import signal
import socket
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, SMTPConn, dot_stuff, make_message


class Sigterm(RingmailTestCase):

    def refused(self, port, timeout=10.0) -> str:
        """Polls until a new connection is refused (or answered 421); returns how."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = SMTPConn(port, timeout=5)
            except ConnectionRefusedError:
                return "refused"
            except (ConnectionError, TimeoutError, OSError):
                return "closed"
            code = c.greeting.code
            c.close()
            if code == 421:
                return "421"
            time.sleep(0.1)
        return "still accepting"

    def in_transaction(self, d):
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        return c

    def test_transaction_finishes_within_grace(self):
        d = self.daemon(timeouts={"shutdown_grace": "20s"})
        c = self.in_transaction(d)
        msg = make_message(body="first half\r\nsecond half\r\n")
        stuffed = dot_stuff(msg)
        c.send(stuffed[:20])
        idle = self.session(d)
        d.signal(signal.SIGTERM)
        self.assertIn(self.refused(d.port), ("refused", "421", "closed"),
                      "new connections still accepted after SIGTERM")
        # an idle session is told and closed
        r = idle.reply(timeout=15)
        self.assertReply(r, 421, "4.3.2")
        self.assertEqual(idle.wait_closed(), b"")
        # the transaction in flight completes and is acknowledged
        c.send(stuffed[20:] + b".\r\n")
        qid = self.assertAccepted(c.reply(timeout=15))
        self.assertEqual(d.spool.split_df(qid)[1], msg)
        c.send(b"QUIT\r\n")
        try:
            c.reply(timeout=5)  # 221, or the close: both fine once the 250 was sent
        except (ConnectionError, TimeoutError):
            pass
        rc = d.wait(25)
        self.assertEqual(rc, 0, "ringmaild did not exit 0 after SIGTERM")
        self.assertEqual(d.spool.qids(), {qid})
        self.assertEqual(d.spool.partials(), [])

    def stop_idle(self, client_closes: bool):
        """SIGTERM with one idle session (after EHLO): 421 4.3.2, and the daemon exits 0
        long before its 30 s grace period."""
        d = self.daemon(timeouts={"shutdown_grace": "30s"})
        c = self.session(d)
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertReply(c.reply(timeout=10), 421, "4.3.2", r"Shutting down")
        self.assertEqual(c.wait_closed(), b"")
        if client_closes:
            c.close()
        rc = d.wait(15)
        self.assertEqual(rc, 0, "an idle daemon must not wait for the grace period")
        self.assertLess(time.monotonic() - start, 15)

    def test_idle_session_closes(self):
        self.stop_idle(client_closes=True)

    def test_idle_session_never_closes(self):
        """A client that keeps its socket open after the 421 must not hold up the stop:
        the daemon already said goodbye and closed its side."""
        self.stop_idle(client_closes=False)

    def test_grace_period_ends_a_stuck_transaction(self):
        d = self.daemon(timeouts={"shutdown_grace": "2s"})
        c = self.in_transaction(d)
        c.send(b"Subject: never finished\r\n\r\nbody")
        start = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(20)
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(time.monotonic() - start, 1.0, "did not wait for the grace")
        self.assertEqual(d.spool.qids(), set(), "an unfinished message was acknowledged")
        # what is left on disk is only partial files, which the next start removes
        d.start()
        self.assertEqual(d.spool.partials(), [])


if __name__ == "__main__":
    unittest.main()
