"""SMTPUTF8 (RFC 6531): UTF-8 addresses only in a transaction that asked for it."""

import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

UTF8_RCPT = f"\u7528\u6237@{HOSTNAME}"       # 用户@mx.test
UTF8_SENDER = "j\u00f6rg@b.example"


class SmtpUtf8(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.assertIn("SMTPUTF8", self.start_session().keywords())

    def test_utf8_with_smtputf8(self):
        c = self.c
        self.assertReply(c.cmd(f"MAIL FROM:<{UTF8_SENDER}> SMTPUTF8"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{UTF8_RCPT}>"), 250, "2.1.5")
        msg = f"From: {UTF8_SENDER}\r\nSubject: \u00fcber\r\n\r\nbody\r\n".encode()
        qid = self.assertAccepted(c.data(msg)[1])
        env = self.d.spool.envelope(qid)
        self.assertEqual(env["smtputf8"], "1")
        self.assertEqual(env["sender"], UTF8_SENDER)
        self.assertEqual([r["addr"] for r in env["rcpts"]], [UTF8_RCPT])
        self.assertEqual(self.d.spool.split_df(qid)[1], msg)

    def test_utf8_recipient_without_smtputf8(self):
        c = self.c
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{UTF8_RCPT}>"), 553, "5.6.7")
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        qid = self.assertAccepted(c.data(make_message())[1])
        self.assertEqual(self.d.spool.envelope(qid)["smtputf8"], "0")

    def test_utf8_sender_without_smtputf8(self):
        self.assertReply(self.c.cmd(f"MAIL FROM:<{UTF8_SENDER}>"), 553, "5.6.7")

    def test_invalid_utf8_refused(self):
        r = self.c.cmd(b"MAIL FROM:<j\xc3@b.example> SMTPUTF8")
        self.assertTrue(500 <= r.code < 600, r.text)


if __name__ == "__main__":
    unittest.main()
