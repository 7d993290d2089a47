"""Sessions that stop in the middle of DATA cost the daemon their socket and nothing more:
no spool file is created (so no descriptor is held) until a message has a full 64 KiB
chunk to write or is committed. They used to hold three descriptors each (socket, df, tf),
so a few thousand of them used up every descriptor."""

import os
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

SESSIONS = 40


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class SpoolDescriptors(RingmailTestCase):

    def test_sessions_stalled_in_data_hold_no_spool_file(self):
        d = self.daemon()
        idle = open_fds(d.pid)
        conns = []
        for _ in range(SESSIONS):
            c = self.session(d)
            self.assertEqual(c.cmd("MAIL FROM:<a@b.example>").code, 250)
            self.assertEqual(c.cmd(f"RCPT TO:<user@{HOSTNAME}>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(make_message(body="a line of the body\r\n" * 50))  # ~1 KiB, no final dot
            conns.append(c)
        time.sleep(0.5)  # creates, had they been issued, would have completed
        self.assertEqual(d.spool.names(), ["ringmail.lock"])
        held = open_fds(d.pid) - idle
        self.assertLessEqual(held, SESSIONS + 4,
                             f"{SESSIONS} sessions in DATA hold {held} descriptors")
        # and each of them still commits durably
        for c in conns:
            c.send(b".\r\n")
            qid = self.assertAccepted(c.reply())
            self.assertEqual(d.spool.envelope(qid)["qid"], qid)


if __name__ == "__main__":
    unittest.main()
