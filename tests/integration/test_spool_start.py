"""Start-up and the spool: one daemon per spool (a second one refuses to start, and its
recovery never touches the first one's messages in flight), and a spool holding a FIFO or
a symbolic link named like a queue file neither hangs the start-up nor is followed."""

import os
import time
import unittest

from ringmail_harness import (HOSTNAME, RingmailTestCase, StartError, dot_stuff, make_message,
                              parse_qf)

QID = "0000000000000001"


class SpoolLock(RingmailTestCase):

    def test_second_daemon_refused(self):
        d1 = self.daemon()
        # d1 has a message in flight whose data is already in the spool
        c = self.session(d1)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<user@{HOSTNAME}>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        msg = make_message(body=("y" * 78 + "\r\n") * 2000)  # more than one 64 KiB chunk
        c.send(dot_stuff(msg))
        for _ in range(200):
            if any(n.startswith("df") for n in d1.spool.names()):
                break
            time.sleep(0.05)
        partial = [n for n in d1.spool.names() if n.startswith("df")]
        self.assertEqual(len(partial), 1, d1.spool.names())

        d2 = self.new_daemon(start=False, spool=d1.config["spool"])
        with self.assertRaises(StartError):
            d2.start()
        self.assertNotEqual(d2.returncode, 0)
        self.assertIn(f"spool {d1.config['spool']} is in use by another ringmaild "
                      f"(pid {d1.pid})", d2.log())
        self.assertNotIn("removed", d2.log())  # no recovery ran
        self.assertIn(partial[0], d1.spool.names())

        c.send(b".\r\n")
        qid = self.assertAccepted(c.reply())
        self.assertEqual(d1.spool.data_location(qid), "df")  # too large to be one file
        self.assertEqual(d1.spool.df(qid), d1.spool.split_df(qid)[0] + msg)
        self.assertTrue(d1.alive())

        d1.stop()  # the lock goes with the process
        d2.start()


class SpoolHygiene(RingmailTestCase):

    def test_fifo_and_symlink_at_start(self):
        d = self.new_daemon(start=False)
        spool = d.spool.path
        os.makedirs(spool, mode=0o700)
        os.mkfifo(spool / f"qf{QID}")             # used to hang start-up, SIGTERM ignored
        (spool / f"df{QID}").write_bytes(b"x")
        outside = self.tmp / "elsewhere"
        outside.write_bytes(b"not a queue file\n")
        qid2 = "0000000000000002"
        os.symlink(outside, spool / f"qf{qid2}")  # never followed
        qid3 = "0000000000000003"
        os.mkfifo(spool / f"qf{qid3}")            # with no df: a one-file message's name
        d.start()
        log = d.log()
        # left at the top (as by hash_depth 0), moved into their subdirectory, set aside there
        self.assertRegex(log, rf"{QID}: damaged queue file moved to [0-9a-f]/Qf{QID}: qf{QID} is "
                              rf"not a regular file")
        self.assertRegex(log, rf"{qid2}: damaged queue file moved to [0-9a-f]/Qf{qid2}: qf{qid2} "
                              rf"is a symbolic link")
        self.assertRegex(log, rf"{qid3}: damaged queue file moved to [0-9a-f]/Qf{qid3}: "
                              rf"qf{qid3} is not a regular file")
        self.assertTrue(d.spool.file(f"Qf{QID}").exists())
        self.assertTrue(d.spool.file(f"Qf{qid3}").exists())
        self.assertTrue(os.path.islink(d.spool.file(f"Qf{qid2}")))
        self.assertEqual(outside.read_bytes(), b"not a queue file\n")
        # and the daemon works
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                              make_message()))
        env = parse_qf(d.spool.qf(qid))
        self.assertEqual(env["qid"], qid)
        self.assertIsNotNone(env["inline_data"], "a small message is one file")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
