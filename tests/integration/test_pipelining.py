"""PIPELINING: a whole session in one packet gets every reply, in order, one message."""

import unittest

from ringmail_harness import HOSTNAME, TEST_NET, RingmailTestCase, dot_stuff, make_message


class Pipelining(RingmailTestCase):

    def test_whole_session_in_one_packet(self):
        d = self.daemon()
        c = self.connect(d)
        rcpts = [f"r{i}@{HOSTNAME}" for i in range(3)]
        message = make_message(msgid="pipe@client.example", body="one\r\n.dot\r\ntwo\r\n")
        packet = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
                  + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
                  + b"DATA\r\n" + dot_stuff(message) + b".\r\nQUIT\r\n")
        c.send(packet)
        ehlo = c.reply()
        self.assertReply(ehlo, 250)
        self.assertIn("PIPELINING", ehlo.keywords())
        self.assertReply(c.reply(), 250, "2.1.0", r"<a@b\.example>\.\.\. Sender ok")
        for r in rcpts:
            self.assertReply(c.reply(), 250, "2.1.5", rf"<{r}>\.\.\. Recipient ok")
        self.assertReply(c.reply(), 354)
        qid = self.assertAccepted(c.reply())
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertEqual(c.wait_closed(), b"", "nothing may follow the 221")
        self.assertEqual(d.spool.qids(), {qid})
        self.assertEqual(d.spool.split_df(qid)[1], message)
        qf = d.spool.qf_envelope(qid)
        for r in rcpts:
            self.assertIn(r.encode(), qf)
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<a@b\.example>, size=\d+, class=0, "
                                        rf"nrcpts=3, msgid=<pipe@client\.example>"))

    def test_refused_recipient_in_the_middle(self):
        """A refusal inside a pipelined batch keeps the order and the other recipients."""
        d = self.daemon(relay_from=[TEST_NET])
        c = self.connect(d)
        message = make_message()
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
               b"RCPT TO:<one@mx.test>\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<two@mx.test>\r\n"
               b"DATA\r\n" + dot_stuff(message) + b".\r\n"
               b"MAIL FROM:<c@d.example>\r\nRCPT TO:<three@mx.test>\r\nDATA\r\n"
               + dot_stuff(message) + b".\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5", r"<one@mx\.test>")
        self.assertReply(c.reply(), 550, "5.7.1", r"<x@remote\.example>\.\.\. Relaying denied")
        self.assertReply(c.reply(), 250, "2.1.5", r"<two@mx\.test>")
        self.assertReply(c.reply(), 354)
        q1 = self.assertAccepted(c.reply())
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        q2 = self.assertAccepted(c.reply())
        self.assertReply(c.reply(), 221)
        self.assertEqual(d.spool.qids(), {q1, q2})
        qf1 = d.spool.qf_envelope(q1)
        self.assertIn(b"one@mx.test", qf1)
        self.assertIn(b"two@mx.test", qf1)
        self.assertNotIn(b"remote.example", qf1)
        self.assertNotIn(b"three@", qf1)
        self.assertIn(b"three@mx.test", d.spool.qf_envelope(q2))
        self.assertNotIn(b"one@", d.spool.qf_envelope(q2))

    def test_more_recipients_than_the_limit(self):
        """RFC 5321 4.5.3.1.10: past limits.recipients each RCPT gets 452 4.5.3 and the
        client sends those in a later transaction. Those 452s are no errors: a pipelining
        sender is neither slowed down nor dropped, and the first batch is delivered."""
        d = self.daemon(limits={"recipients": 3, "errors": 5, "error_throttle": 2})
        c = self.connect(d)
        rcpts = [f"r{i}@{HOSTNAME}" for i in range(12)]
        message = make_message()
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
               + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
               + b"DATA\r\n" + dot_stuff(message) + b".\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 250, "2.1.0")
        for r in rcpts[:3]:
            self.assertReply(c.reply(), 250, "2.1.5", rf"<{r}>")
        for r in rcpts[3:]:
            self.assertReply(c.reply(timeout=5), 452, "4.5.3", r"Too many recipients$")
        self.assertReply(c.reply(), 354)
        qid = self.assertAccepted(c.reply())
        self.assertReply(c.reply(), 221)
        env = d.spool.envelope(qid)
        self.assertEqual([r["addr"] for r in env["rcpts"]], rcpts[:3])
        self.assertIsNone(d.wait_log(r"too many errors", timeout=0.2))


if __name__ == "__main__":
    unittest.main()
