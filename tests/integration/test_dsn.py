"""DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT are validated and stored in the qf."""

import unittest

from ringmail_harness import HOSTNAME, NOTIFY, RingmailTestCase, make_message


class Dsn(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.assertIn("DSN", self.start_session().keywords())

    def test_parameters_stored(self):
        c = self.c
        self.assertReply(c.cmd("MAIL FROM:<a@b.example> RET=HDRS ENVID=abc+2Bdef"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<u1@{HOSTNAME}> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;x+40y.example"), 250, "2.1.5")
        self.assertReply(c.cmd(f"RCPT TO:<u2@{HOSTNAME}> NOTIFY=NEVER"), 250, "2.1.5")
        self.assertReply(c.cmd(f"RCPT TO:<u3@{HOSTNAME}>"), 250, "2.1.5")
        qid = self.assertAccepted(c.data(make_message())[1])
        env = self.d.spool.envelope(qid)
        self.assertEqual(env["dsn_ret"], "2", f"RET=HDRS: {env}")
        self.assertEqual(env["envid"], "abc+2Bdef", "ENVID is stored as the xtext received")
        rcpts = {r["addr"]: r for r in env["rcpts"]}
        self.assertEqual(set(rcpts), {f"u{i}@{HOSTNAME}" for i in (1, 2, 3)})
        self.assertEqual(rcpts[f"u1@{HOSTNAME}"]["notify"], NOTIFY["SUCCESS"] | NOTIFY["FAILURE"])
        self.assertEqual(rcpts[f"u1@{HOSTNAME}"]["orcpt"], "rfc822;x+40y.example")
        self.assertEqual(rcpts[f"u2@{HOSTNAME}"]["notify"], NOTIFY["NEVER"])
        self.assertIsNone(rcpts[f"u2@{HOSTNAME}"]["orcpt"])
        self.assertEqual(rcpts[f"u3@{HOSTNAME}"]["notify"], 0)
        for r in rcpts.values():
            self.assertEqual(r["state"], "P")

    def test_ret_full(self):
        c = self.c
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"u@{HOSTNAME}"], make_message(),
                                              mail_params=" RET=FULL"))
        env = self.d.spool.envelope(qid)
        self.assertEqual(env["dsn_ret"], "1")
        self.assertNotIn("envid", env)

    def test_bad_parameters_refused(self):
        c = self.c
        for line in ("MAIL FROM:<a@b.example> RET=BOGUS",
                     "MAIL FROM:<a@b.example> RET=HDRS RET=FULL",
                     "MAIL FROM:<a@b.example> ENVID=bad=xtext",
                     "MAIL FROM:<a@b.example> ENVID=" + "x" * 101,
                     "MAIL FROM:<a@b.example> FROBNICATE=1"):
            with self.subTest(line=line):
                r = c.cmd(line)
                self.assertIn(r.code, (501, 555), r.text)
                self.assertEqual(r.enh, "5.5.4", r.text)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        for line in (f"RCPT TO:<u@{HOSTNAME}> NOTIFY=NEVER,SUCCESS",
                     f"RCPT TO:<u@{HOSTNAME}> NOTIFY=SOMETIMES",
                     f"RCPT TO:<u@{HOSTNAME}> ORCPT=rfc822;bad xtext",
                     f"RCPT TO:<u@{HOSTNAME}> ORCPT=nosemicolon"):
            with self.subTest(line=line):
                r = c.cmd(line)
                self.assertTrue(500 <= r.code < 600, r.text)
        self.assertReply(c.cmd("DATA"), 503)  # no recipient was accepted


if __name__ == "__main__":
    unittest.main()
