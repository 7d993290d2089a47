"""CHUNKING (RFC 3030): BDAT chunks are stored byte for byte (no dot handling)."""

import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase


class Bdat(RingmailTestCase):

    def setUp(self):
        super().setUp()
        kw = self.start_session().keywords()
        self.assertIn("CHUNKING", kw)
        self.assertIn("8BITMIME", kw)

    def begin(self, params=""):
        self.assertReply(self.c.cmd(f"MAIL FROM:<a@b.example>{params}"), 250)
        self.assertReply(self.c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)

    def test_chunks_8bit(self):
        self.begin(" BODY=8BITMIME")
        chunks = [
            b"From: a@b.example\r\nTo: user@mx.test\r\nSubject: bdat\r\n",
            "\r\nGr\u00fc\u00dfe aus K\u00f6ln \u2603\r\n".encode(),
            b".a line with a leading dot stays as is\r\n..two\r\n.\r\nafter a lone dot\r\n",
            bytes(range(0x80, 0x100)) + b"\r\n",
        ]
        for chunk in chunks[:-1]:
            self.c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
            self.assertReply(self.c.reply(), 250, "2.0.0", rf"^250 2\.0\.0 {len(chunk)} octets received")
        last = chunks[-1]
        self.c.send(f"BDAT {len(last)} LAST\r\n".encode() + last)
        qid = self.assertAccepted(self.c.reply())
        self.assertEqual(self.d.spool.split_df(qid)[1], b"".join(chunks))
        self.assertEqual(self.d.spool.envelope(qid)["body"], "8")

    def test_pipelined_chunks_and_empty_last(self):
        self.begin()
        a, b = b"Subject: p\r\n\r\nfirst ", b"second\r\n"
        self.c.send(f"BDAT {len(a)}\r\n".encode() + a + f"BDAT {len(b)}\r\n".encode() + b
                    + b"BDAT 0 LAST\r\nNOOP\r\n")
        self.assertReply(self.c.reply(), 250, "2.0.0", rf"{len(a)} octets received")
        self.assertReply(self.c.reply(), 250, "2.0.0", rf"{len(b)} octets received")
        qid = self.assertAccepted(self.c.reply())
        self.assertReply(self.c.reply(), 250)  # the NOOP after the message is a command
        self.assertEqual(self.d.spool.split_df(qid)[1], a + b)

    def test_data_after_bdat_refused(self):
        self.begin()
        self.c.send(b"BDAT 5\r\nabcde")
        self.assertReply(self.c.reply(), 250)
        self.assertReply(self.c.cmd("DATA"), 503)
        self.assertReply(self.c.cmd("RSET"), 250)
        self.assertEqual(self.d.spool.qids(), set())

    def test_bdat_without_transaction_refused(self):
        self.c.send(b"BDAT 4 LAST\r\nabcd")
        r = self.c.reply()
        self.assertEqual(r.code, 503, r.text)
        # the 4 octets were consumed as data, not read as a command
        self.assertReply(self.c.cmd("NOOP"), 250)

    def test_bad_bdat_size(self):
        self.begin()
        self.assertReply(self.c.cmd("BDAT xyz"), 501)


if __name__ == "__main__":
    unittest.main()
