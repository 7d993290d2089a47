"""The Message-ID a client sends reaches the msgid= log line and the queue file only
sanitized: no control octets (an escape sequence or a line end in a log line forges or
garbles what an operator and log tools read), folding undone, bounded length."""

import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase


class MessageId(RingmailTestCase):

    def test_control_octets_never_reach_the_log(self):
        d = self.daemon()
        c = self.session(d)
        message = (b"From: a@b.example\r\nSubject: s\r\n"
                   b"Message-Id: <evil\x1b[2J\x01\x7fid@b.example>\r\n\t(folded\tcomment)\r\n"
                   b"\r\nbody\r\n")
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], message))
        m = d.wait_log(rf"{qid}: from=<a@b\.example>, .*msgid=(.*?), proto=")
        self.assertIsNotNone(m, d.log_tail())
        self.assertEqual(m.group(1), "<evil?[2J??id@b.example> (folded comment)")
        self.assertNotIn("\x1b", d.log())
        self.assertEqual(d.spool.envelope(qid)["msgid"], "<evil?[2J??id@b.example> (folded comment)")
        # the message itself is stored as sent
        self.assertEqual(d.spool.split_df(qid)[1], message)

    def test_bounded(self):
        d = self.daemon()
        c = self.session(d)
        long_id = "<" + "x" * 600 + "@b.example>"
        message = f"Subject: s\r\nMessage-Id: {long_id}\r\n\r\nbody\r\n".encode()
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], message))
        m = d.wait_log(rf"{qid}: from=.*msgid=(\S*), proto=")
        self.assertIsNotNone(m)
        self.assertEqual(m.group(1), long_id[:250])


if __name__ == "__main__":
    unittest.main()
