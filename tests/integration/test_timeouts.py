"""Every SMTP phase timeout (configured to 1 s) answers 421 4.4.2 and closes the
connection, within a generous window; a DATA cut by the datablock timeout stores nothing.
A closing connection has a deadline too: a client that never reads its last replies is
cut off, its connection slot and unsent output freed."""

import re
import select
import socket
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

PHASES = ("initial", "helo", "mail", "rcpt", "datainit", "datablock", "datafinal", "rset",
          "misc")
EARLIEST, LATEST = 0.5, 10.0  # a 1 s timeout must fire inside this window
TIMEOUT_REPLY = rf"^421 4\.4\.2 {re.escape(HOSTNAME)} Timeout waiting for input; closing connection$"


class Timeouts(RingmailTestCase):

    @classmethod
    def one_second(cls, phases):
        t = {p: "1s" for p in phases}
        t.update({"quit": "1h", "command": "1h", "shutdown_grace": "5s"})
        for p in PHASES:
            t.setdefault(p, "1h")
        return t

    def setUp(self):
        super().setUp()
        self.d = self.daemon(timeouts=self.one_second(PHASES))

    def expect_timeout(self, c, what):
        """After the client's last input: 421 4.4.2 in the window, then the close."""
        start = time.monotonic()
        r = c.reply(timeout=LATEST + 5)
        elapsed = time.monotonic() - start
        self.assertReply(r, 421, "4.4.2", TIMEOUT_REPLY)
        self.assertGreaterEqual(elapsed, EARLIEST, f"{what}: timeout fired too early")
        self.assertLessEqual(elapsed, LATEST, f"{what}: timeout fired too late")
        self.assertEqual(c.wait_closed(timeout=10), b"", f"{what}: not closed after 421")

    def advance(self, upto):
        """A session advanced to the point just before the phase's wait begins."""
        c = self.connect(self.d)
        steps = {
            "helo": [("EHLO client.example", 250)],
            "mail": [("EHLO client.example", 250), ("MAIL FROM:<a@b.example>", 250)],
            "rcpt": [("EHLO client.example", 250), ("MAIL FROM:<a@b.example>", 250),
                     (f"RCPT TO:<user@{HOSTNAME}>", 250)],
            "datainit": [("EHLO client.example", 250), ("MAIL FROM:<a@b.example>", 250),
                         (f"RCPT TO:<user@{HOSTNAME}>", 250), ("DATA", 354)],
            "rset": [("EHLO client.example", 250), ("RSET", 250)],
            "misc": [("EHLO client.example", 250), ("NOOP", 250)],
        }
        for line, code in steps.get(upto, []):
            self.assertReply(c.cmd(line), code)
        return c

    def test_initial(self):
        self.expect_timeout(self.advance("initial"), "initial")

    def test_helo(self):
        self.expect_timeout(self.advance("helo"), "helo")

    def test_mail(self):
        self.expect_timeout(self.advance("mail"), "mail")

    def test_rcpt(self):
        self.expect_timeout(self.advance("rcpt"), "rcpt")

    def test_datainit(self):
        self.expect_timeout(self.advance("datainit"), "datainit")
        self.assertEqual(self.d.spool.qids(), set())

    def test_rset(self):
        self.expect_timeout(self.advance("rset"), "rset")

    def test_misc(self):
        self.expect_timeout(self.advance("misc"), "misc")

    def test_misc_after_error(self):
        c = self.advance("helo")
        self.assertReply(c.cmd("XYZZY"), 500)
        self.expect_timeout(c, "misc after an error")

    def test_datablock_stores_nothing(self):
        c = self.advance("datainit")
        c.send(b"Subject: cut\r\n\r\nhalf a message")
        self.expect_timeout(c, "datablock")
        time.sleep(0.3)
        self.assertEqual(self.d.spool.qids(), set())
        self.assertEqual(self.d.spool.partials(), [], "a timed-out DATA left files")
        self.assertIsNone(self.d.wait_log(r": from=<a@b\.example>, size=", timeout=0.5))

    def test_datafinal(self):
        c = self.advance("rcpt")
        qid = self.assertAccepted(c.data(make_message())[1])
        self.expect_timeout(c, "datafinal")
        self.assertEqual(self.d.spool.qids(), {qid}, "the message before the timeout stays")

    def test_timeout_is_logged(self):
        self.expect_timeout(self.advance("helo"), "helo")
        self.assertIsNotNone(self.d.wait_log(r"timeout"), "the timeout is not logged")


class CommandCap(RingmailTestCase):

    def test_command_caps_every_phase(self):
        t = {p: "1h" for p in PHASES}
        t.update({"command": "1s", "quit": "1h"})
        d = self.daemon(timeouts=t)
        c = self.connect(d)
        self.assertReply(c.cmd("EHLO client.example"), 250)
        start = time.monotonic()
        r = c.reply(timeout=LATEST + 5)
        self.assertReply(r, 421, "4.4.2")
        self.assertLessEqual(time.monotonic() - start, LATEST)
        self.assertEqual(c.wait_closed(), b"")


class ClosingDeadline(RingmailTestCase):

    TCP_CLOSE = 7  # tcpi_state, the first byte of struct tcp_info
    # The close's deadline is timeouts.quit (2 s here; the engine's own linger, 30 s, if
    # the session armed none): generous for a loaded machine, far below "never".
    CUT_OFF_WITHIN = 60.0

    def test_closing_connection_that_never_reads_is_cut_off(self):
        # Issue 8: 2.5 minutes after a 421, past timeouts.quit, the socket still held
        # 2.8 MB of unsent replies and its connection slot.
        t = {p: "1s" for p in PHASES}
        t.update({"quit": "2s", "command": "1h", "shutdown_grace": "5s"})
        d = self.daemon(timeouts=t)
        c = self.session(d)
        sock = c.sock
        sock.setblocking(False)
        flood, sent = b"HELP\r\n" * 10000, 0
        while sent < (4 << 20):  # until the daemon stops reading, or 4 MB
            _, writable, _ = select.select([], [sock], [], 1.0)
            if not writable:
                break
            try:
                sent += sock.send(flood)
            except BlockingIOError:
                pass
        # The client never reads again: the misc timeout's 421 waits behind megabytes of
        # replies, and the close that follows cannot finish on its own.
        start = time.monotonic()
        while True:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
            if state == self.TCP_CLOSE:
                break
            if time.monotonic() - start > self.CUT_OFF_WITHIN:
                self.fail(f"the daemon still holds a connection {self.CUT_OFF_WITHIN:.0f} s "
                          f"after it started closing it (tcpi_state {state})")
            time.sleep(0.2)
        self.assertIsNotNone(d.wait_log(r"Timeout waiting for input|timeout", timeout=5))


if __name__ == "__main__":
    unittest.main()
