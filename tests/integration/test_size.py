"""SIZE: advertised limit, MAIL SIZE= above it, and data above it (nothing stored)."""

import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

LIMIT = 20000


class Size(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.ehlo = self.start_session(limits={"message_size": LIMIT})

    def test_ehlo_advertises_the_limit(self):
        self.assertEqual(self.ehlo.keywords().get("SIZE"), str(LIMIT), self.ehlo.text)

    def test_mail_size_parameter(self):
        c = self.c
        self.assertReply(c.cmd(f"MAIL FROM:<a@b.example> SIZE={LIMIT + 1}"), 552, "5.3.4")
        self.assertReply(c.cmd(f"MAIL FROM:<a@b.example> SIZE=99999999999999"), 552, "5.3.4")
        self.assertReply(c.cmd(f"MAIL FROM:<a@b.example> SIZE={LIMIT}"), 250, "2.1.0")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example> SIZE=abc"), 501)

    def test_data_over_the_limit(self):
        c = self.c
        before = set(self.d.spool.names())
        big = make_message(body=("x" * 998 + "\r\n") * 30)  # ~30 KB, every line legal
        self.assertGreater(len(big), LIMIT)
        final = c.send_mail("a@b.example", [f"user@{HOSTNAME}"], big)
        self.assertReply(final, 552, "5.3.4")
        time.sleep(0.3)  # let any stray file write land before looking
        self.assertEqual(set(self.d.spool.names()), before, "a refused message left files")
        self.assertEqual(self.d.spool.qids(), set())
        # the session goes on: a message under the limit is accepted
        small = make_message(body="small\r\n")
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], small))
        self.assertEqual(self.d.spool.qids(), {qid})

    def test_bdat_over_the_limit(self):
        c = self.c
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        chunk = b"y" * 15000
        c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        self.assertReply(c.reply(), 250, "2.0.0", rf"{len(chunk)} octets received")
        c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertEqual(self.d.spool.qids(), set())


if __name__ == "__main__":
    unittest.main()
