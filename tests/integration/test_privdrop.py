"""Started as root, ringmaild is two processes: the privileged parent stays root (it binds,
reads keys and maps, at start-up and at every reload) and the engine, which serves every
connection, runs as run_as (default "ringmail"); the spool belongs to that user with mode
0700."""

import os
import pwd
import stat
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message


def proc_ids(pid: int) -> dict[str, list[int]]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in val.split()]
    return out


class PrivDrop(RingmailTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root")
        try:
            self.user = pwd.getpwnam("ringmail")
        except KeyError:
            self.skipTest("user 'ringmail' does not exist")

    def test_runs_as_ringmail(self):
        os.chmod(self.tmp, 0o755)  # the dropped daemon must reach its spool
        work = self.tmp / "work"
        work.mkdir(mode=0o755)
        os.chmod(work, 0o755)
        d = self.daemon(workdir=work, run_as=None)  # the default: ringmail
        self.assertEqual(proc_ids(d.pid)["Uid"], [0] * 4, "the parent stays root")
        engine = d.engine_pid
        ids = proc_ids(engine)
        u = self.user
        self.assertEqual(ids["Uid"], [u.pw_uid] * 4, f"real/effective/saved/fs uid: {ids}")
        self.assertEqual(ids["Gid"], [u.pw_gid] * 4, f"gids: {ids}")
        self.assertNotIn(0, ids.get("Groups", []), "supplementary group root kept")
        st = os.stat(d.config["spool"])
        self.assertEqual(st.st_uid, u.pw_uid, "spool not owned by ringmail")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, oct(st.st_mode))
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                              make_message()))
        # and one larger than the spool's 64 KiB write chunk, which has a df
        big = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                              make_message(body=("b" * 78 + "\r\n") * 900)))
        self.assertEqual(d.spool.data_location(qid), "qf")  # one file: its data in the qf
        self.assertEqual(d.spool.data_location(big), "df")
        for name in ("qf" + qid, "qf" + big, "df" + big):
            path = d.spool.file(name)
            self.assertEqual(path.stat().st_uid, u.pw_uid, path)
            # the hashed subdirectory the file is in belongs to ringmail too, mode 0700
            self.assertEqual(path.parent.stat().st_uid, u.pw_uid, path.parent)
        # every thread dropped privileges, not just the main one
        for tid in os.listdir(f"/proc/{engine}/task"):
            with open(f"/proc/{engine}/task/{tid}/status") as f:
                uid_line = next(l for l in f if l.startswith("Uid:"))
            self.assertEqual([int(x) for x in uid_line.split()[1:]], [u.pw_uid] * 4, tid)


class RunAsMissing(RingmailTestCase):

    def test_missing_run_as_user_fails_clearly(self):
        if os.geteuid() != 0:
            self.skipTest("run_as only applies when started as root")
        d = self.daemon(start=False, run_as="no-such-user-ringmail")
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=10)
        self.assertIn("no-such-user-ringmail", str(cm.exception))
        self.assertEqual(d.returncode, 71, "EX_OSERR expected (docs/operations.md)")


if __name__ == "__main__":
    unittest.main()
