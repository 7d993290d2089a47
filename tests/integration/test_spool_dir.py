"""The spool directory deleted, recreated or renamed under a running daemon: the daemon
follows its configured path (recreating the directory, mode 0700, with its lock) instead
of answering 451 until a restart or acknowledging mail into a directory renamed away."""

import os
import shutil
import stat
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, Spool, make_message

CHECK_INTERVAL = 1.0  # a worker looks at the path at most this often (queue/spool.c)


def remove_spool(path):
    """rm -rf while the daemon works in it: the message sent before may be delivered (its
    files removed) or its queue file rewritten meanwhile, which rmtree alone took for an
    error."""
    def vanished(func, name, exc):
        if not issubclass(exc[0], FileNotFoundError):
            raise exc[1]
    for _ in range(20):
        try:
            shutil.rmtree(path, onerror=vanished)
            return
        except OSError as e:  # a file made meanwhile: the directory was not empty
            last = e
            time.sleep(0.05)
    raise last


class SpoolDirectory(RingmailTestCase):

    def send(self, d, subject):
        c = self.session(d)
        return c.send_mail("a@b.example", [f"user@{HOSTNAME}"], make_message(subject=subject))

    def assertStoredIn(self, path, qid):
        """The message is in that spool with its data: small, it is one file, its qf holding
        the data (and no df)."""
        spool = Spool(path)
        self.assertIn("qf" + qid, spool.names())
        self.assertEqual(spool.data_location(qid), "qf")
        self.assertIn(b"\r\nSubject: ", spool.df(qid))

    def assertSpoolSound(self, d):
        st = os.stat(d.spool.path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertIn("ringmail.lock", d.spool.names())
        # its subdirectories were made again too (queue.hash_depth 1: 0 .. f), 0700
        self.assertEqual(d.spool.subdirs(), list("0123456789abcdef"))
        for sub in d.spool.subdirs():
            self.assertEqual(stat.S_IMODE(os.stat(d.spool.path / sub).st_mode), 0o700)

    def test_deleted_and_recreated(self):
        d = self.daemon()
        first = self.assertAccepted(self.send(d, "before"))
        remove_spool(d.spool.path)
        os.mkdir(d.spool.path, 0o755)
        qid = self.assertAccepted(self.send(d, "after"))
        self.assertStoredIn(d.spool.path, qid)
        self.assertNotIn("qf" + first, d.spool.names())  # went with the old directory
        self.assertSpoolSound(d)
        self.assertRegex(d.log(), r"spool .*: the directory was replaced")

    def test_deleted(self):
        d = self.daemon()
        self.assertAccepted(self.send(d, "before"))
        remove_spool(d.spool.path)
        qid = self.assertAccepted(self.send(d, "after"))
        self.assertStoredIn(d.spool.path, qid)
        self.assertSpoolSound(d)
        self.assertRegex(d.log(), r"spool .*: the directory was deleted or renamed, recreated it")
        # every later message too, on every worker
        for i in range(6):
            self.assertStoredIn(d.spool.path, self.assertAccepted(self.send(d, f"more {i}")))

    def test_renamed(self):
        d = self.daemon()
        first = self.assertAccepted(self.send(d, "before"))
        moved = d.spool.path.with_name("spool.moved")
        os.rename(d.spool.path, moved)
        time.sleep(CHECK_INTERVAL + 0.2)
        for i in range(4):  # both workers
            qid = self.assertAccepted(self.send(d, f"after {i}"))
            self.assertStoredIn(d.spool.path, qid)
            self.assertNotIn("qf" + qid, Spool(moved).names())
        self.assertStoredIn(moved, first)  # the message from before stays where it was
        self.assertSpoolSound(d)


if __name__ == "__main__":
    unittest.main()
