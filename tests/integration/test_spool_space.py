"""Room in the queue is checked at MAIL (sendmail's MinFreeBlocks, RFC 1870's SIZE): a
client is told 452 4.3.1 before it sends a body the spool cannot hold, instead of a 451
after all of it was read."""

import os
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message


class SpoolSpace(RingmailTestCase):

    def test_size_beyond_free_space(self):
        d = self.daemon(limits={"message_size": 0})
        st = os.statvfs(d.config["spool"])
        free = st.f_bavail * st.f_frsize
        c = self.session(d)
        self.assertReply(c.cmd(f"MAIL FROM:<a@b.example> SIZE={free * 2}"), 452, "4.3.1",
                         r"Insufficient system storage")
        # the session goes on: a message that fits is accepted
        self.assertReply(c.cmd("MAIL FROM:<a@b.example> SIZE=1000"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<u@{HOSTNAME}>"), 250)
        self.assertAccepted(c.data(make_message())[1])

    def test_below_min_free_blocks(self):
        d = self.daemon(limits={"min_free_blocks": 1 << 40})
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 452, "4.3.1",
                         r"Insufficient system storage")
        self.assertIsNotNone(d.wait_log(r"fewer than min_free_blocks"))


if __name__ == "__main__":
    unittest.main()
