"""SMTP smuggling: only <CRLF>.<CRLF> ends DATA. A bare CR or LF never ends or splits a
message; the message is read to the real end and refused with 550 5.6.0, and the
"smuggled" commands inside it are never executed. A NUL in a message is refused the same
way (554 5.6.1, sendmail's RejectNUL reply): a server behind us that drops NULs would read
"\r\n\0.\r\n" as the end. Bare CR/LF or NUL in a command: 500 5.5.2."""

import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase

VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
}
SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@" + HOSTNAME.encode() + b">\r\n"
            b"DATA\r\nsmuggled\r\n")
REFUSAL = "550 5.6.0 Message contains bare CR or LF; refused"
NUL_REFUSAL = "554 5.6.1 NUL byte not allowed"


class Smuggling(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.daemon()

    def attempt(self, seq: bytes, split: bool):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<good@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        head = b"From: good@b.example\r\nSubject: s\r\n\r\nhello"
        tail = SMUGGLED + b"\r\n.\r\n"
        if split:  # the sequence arrives on its own, byte by byte
            c.send(head)
            for i in range(len(seq)):
                time.sleep(0.02)
                c.send(seq[i:i + 1])
            time.sleep(0.02)
            c.send(tail)
        else:
            c.send(head + seq + tail)
        r = c.reply()
        self.assertEqual(r.last, REFUSAL, f"{seq!r}: {r.text!r}")
        # nothing else was answered: the next reply belongs to our NOOP
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertEqual(c.wait_closed(), b"", f"{seq!r}: replies after QUIT")

    def assert_nothing_smuggled(self):
        time.sleep(0.3)
        self.assertEqual(self.d.spool.qids(), set(), "a message was stored")
        self.assertEqual(self.d.spool.partials(), [])
        for name in self.d.spool.names():
            self.assertNotIn(b"evil@x", (self.d.spool.path / name).read_bytes())
        self.assertIsNone(self.d.wait_log(r"from=<evil@x>", timeout=0.2))
        self.assertIsNone(self.d.wait_log(r"from=<good@b\.example>", timeout=0.2))

    def test_variants_one_packet(self):
        for name, seq in VARIANTS.items():
            with self.subTest(variant=name):
                self.attempt(seq, split=False)
        self.assert_nothing_smuggled()

    def test_variants_split(self):
        for name, seq in VARIANTS.items():
            with self.subTest(variant=name):
                self.attempt(seq, split=True)
        self.assert_nothing_smuggled()

    def test_clean_message_after_refusal(self):
        """The session stays in sync: a proper message right after a refused one."""
        c = self.session(self.d)
        c.send(b"MAIL FROM:<good@b.example>\r\nRCPT TO:<user@mx.test>\r\nDATA\r\n"
               b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n"
               b"MAIL FROM:<good@b.example>\r\nRCPT TO:<user@mx.test>\r\nDATA\r\n"
               b"Subject: b\r\n\r\nclean\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 354)
        self.assertEqual(c.reply().last, REFUSAL)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 354)
        qid = self.assertAccepted(c.reply())
        self.assertEqual(self.d.spool.qids(), {qid})
        self.assertEqual(self.d.spool.split_df(qid)[1], b"Subject: b\r\n\r\nclean\r\n")

    def test_nul_in_data(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<good@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"From: good@b.example\r\nSubject: s\r\n\r\nhello\r\n\x00.\r\n"
               + SMUGGLED + b"\r\n.\r\n")
        self.assertEqual(c.reply().last, NUL_REFUSAL)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertIsNotNone(self.d.wait_log(r": message refused: 554 5\.6\.1 NUL byte not "
                                             r"allowed"))
        self.assert_nothing_smuggled()

    def test_nul_in_bdat(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<good@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        body = b"Subject: s\r\n\r\nhello\r\n\x00.\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertEqual(c.reply().last, NUL_REFUSAL)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assert_nothing_smuggled()

    def test_nul_in_commands(self):
        c = self.session(self.d)
        c.send(b"MAIL FROM:<a@b.example>\x00\r\n")
        self.assertReply(c.reply(), 500, "5.5.2", "NUL character in command line")
        c.send(b"NOOP \x00\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 503)  # MAIL did not run

    def test_bare_lf_and_cr_in_commands(self):
        c = self.session(self.d)
        # a bare LF inside a line: the whole line is refused, nothing executed
        c.send(b"MAIL FROM:<a@b.example>\nRCPT TO:<user@mx.test>\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        c.send(b"NOOP\rQUIT\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        # neither MAIL nor QUIT ran: no transaction, session still open
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 503)
        self.assertReply(c.cmd("NOOP"), 250)


if __name__ == "__main__":
    unittest.main()
