"""HELO/EHLO arguments as sendmail takes them: ASCII letters, digits and "[].-_#:", at most
255 octets, or "501 5.0.0 Invalid domain name". The name goes into the Received: header,
where parentheses, semicolons or white space would forge the structure of its from-clause
("EHLO a (b) ) by evil; for <x>")."""

import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

FORGED = "a (b) ) by evil; for <x>"


class Helo(RingmailTestCase):

    def test_forged_structure_refused(self):
        d = self.daemon()
        c = self.connect(d)
        for name in (FORGED, "a b", "user@host", "x" * 256):
            with self.subTest(name=name[:40]):
                self.assertReply(c.cmd(f"EHLO {name}"), 501, "5.0.0", r"Invalid domain name$")
                self.assertReply(c.cmd(f"HELO {name}"), 501, "5.0.0", r"Invalid domain name$")
        # the session goes on: nothing accepted, MAIL still needs a HELO
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 503)
        self.assertReply(c.cmd("EHLO [IPv6:::1]"), 250)
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                              make_message()))
        received, _ = d.spool.split_df(qid)
        self.assertTrue(received.startswith(b"Received: from [IPv6:::1] ([127.0.0.1])"),
                        received)
        self.assertNotIn(b"evil", d.spool.df(qid))

    def test_valid_names_accepted(self):
        d = self.daemon()
        c = self.connect(d)
        for name in ("mx.example.com", "MX1.Example.COM.", "[192.0.2.1]", "host_name",
                     "x" * 255):
            with self.subTest(name=name[:40]):
                self.assertReply(c.cmd(f"EHLO {name}"), 250)


if __name__ == "__main__":
    unittest.main()
