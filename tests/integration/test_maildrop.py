"""Submission while the daemon is down (docs/command-line.md, "Submission while the daemon is
down"): ringmail-sendmail hands the message to the setgid ringmail-postdrop, which leaves
exactly one file in submission.maildrop; once ringmaild runs, its pickup submits the file as
the user who wrote it, and the file goes when the message is queued. A file whose message
recovery finds already queued is removed, never submitted twice.

Run as root, the submitting user is `nobody` and ringmail-postdrop a copy installed setgid to
a group this test creates (chgrp GROUP; chmod 2755), as an operator installs it. Run as
another user, the daemon takes only that user's own files (no setgid, maildrop 0700)."""

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, RingmailTestCase, ringmaild_path

NAME_RE = re.compile(r"^\d+\.\d+\.[0-9a-f]{16}$")
WAIT = 30.0


def bin_dir() -> Path:
    return Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent)


class Maildrop(RingmailTestCase):

    def setUp(self):
        super().setUp()
        for prog in ("ringmail-sendmail", "ringmail-postdrop"):
            if not (bin_dir() / prog).exists():
                self.skipTest(f"{prog} is not built")
        self.root = os.geteuid() == 0
        os.chmod(self.tmp, 0o755)  # nobody runs programs and reads the config in here
        self.work = self.tmp / "work"
        self.work.mkdir(mode=0o755)
        self.bin = self.tmp / "bin"
        self.bin.mkdir(mode=0o755)
        for prog in ("ringmail-sendmail", "ringmail-postdrop"):
            shutil.copy2(bin_dir() / prog, self.bin / prog)
        if self.root:
            self.group = f"rmdrop{os.getpid()}"
            subprocess.run(["groupadd", self.group], check=True)
            self.addCleanup(subprocess.run, ["groupdel", self.group], check=False)
            self.gid = grp.getgrnam(self.group).gr_gid
            postdrop = self.bin / "ringmail-postdrop"
            os.chown(postdrop, 0, self.gid)
            os.chmod(postdrop, 0o2755)
            self.user = pwd.getpwnam("nobody")
        else:
            self.group, self.gid = "ringmaildrop", None
            self.user = pwd.getpwuid(os.getuid())

    # helpers ----------------------------------------------------------------
    def new(self, **overrides):
        """A daemon started once (it makes the maildrop) and stopped: the daemon is down."""
        cfg = {"submission": {"maildrop_group": self.group}, "queue": {"interval": "1s"}}
        cfg.update(overrides)
        d = self.daemon(workdir=self.work, **cfg)
        d.stop()
        self.maildrop = self.work / "maildrop"
        return d

    def as_user(self, cmd: list[str], data: bytes) -> subprocess.CompletedProcess:
        if self.root:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups", *cmd]
        env = {"PATH": "/usr/bin:/bin"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        return subprocess.run(cmd, input=data, capture_output=True, timeout=60, env=env, cwd="/")

    def sendmail(self, d, args: list[str], data: bytes) -> subprocess.CompletedProcess:
        return self.as_user([str(self.bin / "ringmail-sendmail"), "-C", str(d.config_path), *args],
                            data)

    def entries(self) -> list[str]:
        return sorted(os.listdir(self.maildrop))

    def wait_for(self, what, cond, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.05)

    def drop_one(self, d, rcpt="user@remote.example", subject="while down") -> str:
        r = self.sendmail(d, ["-oi", rcpt], f"Subject: {subject}\n\nhello\n".encode())
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        names = self.entries()
        self.assertEqual(len(names), 1, f"one file per submission: {names}")
        self.assertRegex(names[0], NAME_RE)
        return names[0]

    # tests ------------------------------------------------------------------
    def test_down_then_picked_up_once(self):
        d = self.new()
        name = self.drop_one(d)
        st = os.lstat(self.maildrop / name)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_uid, self.user.pw_uid, "the file is the submitter's")
        if self.root:
            self.assertEqual(st.st_gid, self.gid, "written through the setgid group")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        data = (self.maildrop / name).read_bytes()
        self.assertEqual(data, b"RINGMAIL-MAILDROP 1\nS\nRuser@remote.example\n\n"
                               b"Subject: while down\r\n\r\nhello\r\n")

        d.start()
        self.wait_for("the pickup", lambda: not self.entries() and len(d.spool.qids()) == 1)
        qid = next(iter(d.spool.qids()))
        env = d.spool.envelope(qid)
        self.assertEqual(env["sender"], f"{self.user.pw_name}@{HOSTNAME}")
        self.assertEqual([r["addr"] for r in env["rcpts"]], ["user@remote.example"])
        self.assertIn(b"\nSubject: while down\r\n", d.spool.df(qid))
        self.assertIn(f"O{name}\n".encode(), d.spool.qf_envelope(qid),
                      "the qf names the maildrop file")
        self.assertTrue(d.wait_log(rf"maildrop {re.escape(name)}: picked up, "
                                   rf"uid={self.user.pw_uid}", since_start=True))
        # queue.interval is 1s: later scans find nothing more to submit
        time.sleep(3)
        self.assertEqual(d.spool.qids(), {qid})
        self.assertEqual(self.entries(), [])

    def test_recovered_file_never_submitted_twice(self):
        """The crash window between the commit and the file's removal, made by hand: the
        file is put back beside the queued message that names it, as if the daemon had
        died right after the commit. Recovery removes it; the pickup never submits it."""
        d = self.new()
        name = self.drop_one(d)
        path = self.maildrop / name
        saved, st = path.read_bytes(), os.lstat(path)
        d.start()
        self.wait_for("the pickup", lambda: not self.entries() and len(d.spool.qids()) == 1)
        qids = d.spool.qids()
        d.stop()

        path.write_bytes(saved)
        os.chmod(path, 0o600)
        if self.root:
            os.chown(path, st.st_uid, st.st_gid)
        d.start()
        self.wait_for("recovery to remove the file", lambda: not self.entries())
        time.sleep(3)  # several pickup scans (queue.interval 1s)
        self.assertEqual(d.spool.qids(), qids, "submitted twice")
        self.assertNotIn("picked up", d.log(since_start=True))

    def test_bad_files_left_alone(self):
        d = self.new()
        bad = self.maildrop / "1.1.00000000000000aa"
        bad.write_bytes(b"not a maildrop file\n")
        os.chmod(bad, 0o600)
        if self.root:
            os.chown(bad, self.user.pw_uid, self.user.pw_gid)
            # a link to a file nobody may submit: never followed
            os.symlink("/etc/passwd", self.maildrop / "1.1.00000000000000bb")
        d.start()
        self.assertTrue(d.wait_log(r"maildrop \S+/1\.1\.00000000000000aa: uid=\d+: "
                                   r"ringmail-sendmail --pickup exited with status 65 ",
                                   timeout=WAIT, since_start=True), d.log_tail())
        if self.root:
            self.assertTrue(d.wait_log(r"maildrop \S+/1\.1\.00000000000000bb: Too many levels "
                                       r"of symbolic links: left alone", since_start=True))
            self.assertTrue(os.path.islink(self.maildrop / "1.1.00000000000000bb"))
        self.assertTrue(bad.exists(), "a file that fails is left where it is")
        self.assertEqual(d.spool.qids(), set())

    def test_arrival_while_running(self):
        """A file that arrives while the daemon runs (written by ringmail-postdrop directly)
        is picked up at once (inotify), not at the next queue.interval (30m here)."""
        d = self.new(queue={"interval": "30m"})
        d.start()
        image = (b"RINGMAIL-MAILDROP 1\nSsomeone@elsewhere.example\nFSome One\n"
                 b"Ruser@remote.example\n\nSubject: arrived\r\n\r\nbody\r\n")
        r = self.as_user([str(self.bin / "ringmail-postdrop"), "-C", str(d.config_path)], image)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.wait_for("the pickup", lambda: not self.entries() and len(d.spool.qids()) == 1,
                      timeout=15)
        qid = next(iter(d.spool.qids()))
        self.assertEqual(d.spool.envelope(qid)["sender"], "someone@elsewhere.example")
        df = d.spool.df(qid)
        if self.root:  # nobody is not trusted: sendmail's warning for a sender it set
            self.assertIn(b"X-Authentication-Warning: ", df)
        self.assertIn(b"\r\nSubject: arrived\r\n", df)

    def test_null_sender_kept(self):
        d = self.new()
        r = self.sendmail(d, ["-oi", "-f", "<>", "user@remote.example"], b"Subject: n\n\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertTrue(self.entries())
        self.assertIn(b"\nS<>\n", (self.maildrop / self.entries()[0]).read_bytes())
        d.start()
        self.wait_for("the pickup", lambda: not self.entries() and len(d.spool.qids()) == 1)
        self.assertEqual(d.spool.envelope(next(iter(d.spool.qids())))["sender"], "")

    def test_stale_temporary_removed(self):
        d = self.new()
        stale = self.maildrop / ".tmp-1.1.00000000000000cc"
        fresh = self.maildrop / ".tmp-1.1.00000000000000dd"
        for f in (stale, fresh):
            f.write_bytes(b"RINGMAIL-MAILDROP 1\n")  # a ringmail-postdrop killed mid-way
        day = 24 * 3600
        os.utime(stale, (time.time() - day - 60, time.time() - day - 60))
        d.start()
        self.assertTrue(d.wait_log(r"maildrop \S+/\.tmp-1\.1\.00000000000000cc: unfinished for "
                                   r"a day \(uid=\d+\): removed", since_start=True))
        self.assertEqual(self.entries(), [fresh.name], "a file being written is left alone")

    def test_postdrop_killed_leaves_nothing(self):
        """The user may signal its own ringmail-postdrop while it writes: the unfinished
        file is removed before it ends."""
        d = self.new()
        cmd = [str(self.bin / "ringmail-postdrop"), "-C", str(d.config_path)]
        if self.root:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups", *cmd]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        p.stdin.write(b"RINGMAIL-MAILDROP 1\nS\nRa@b.example\n\nSubject: slow\r\n")
        p.stdin.flush()
        self.wait_for("the unfinished file", lambda: any(n.startswith(".tmp-")
                                                          for n in self.entries()))
        p.send_signal(15)
        self.assertEqual(p.wait(timeout=30), 128 + 15, p.stderr.read())
        p.stdin.close()
        p.stderr.close()
        self.assertEqual(self.entries(), [])

    def test_postdrop_refuses(self):
        d = self.new(limits={"message_size": "1K", "recipients": 2})
        postdrop = str(self.bin / "ringmail-postdrop")
        r = self.as_user([postdrop, "-C", str(d.config_path)], b"garbage\n")
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"line 1: not a maildrop file", r.stderr)
        big = b"RINGMAIL-MAILDROP 1\nS\nRa@b.example\n\n" + b"x" * 78 + b"\r\n"
        r = self.as_user([postdrop, "-C", str(d.config_path)], big * 20)
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"message too large", r.stderr)
        r = self.as_user([postdrop, "-C", str(d.config_path)],
                         b"RINGMAIL-MAILDROP 1\nS\nRa@b.example\nRc@b.example\nRd@b.example\n\n")
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"too many recipients (3; limits.recipients is 2)", r.stderr)
        # through sendmail: its exit status and nothing half-written
        r = self.sendmail(d, ["-oi", "a@b.example"], b"Subject: big\n\n" + b"y" * 3000 + b"\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.entries(), [] if self.root else [], "nothing left behind")
        if not self.root:
            return
        # a configuration the user owns keeps no group privilege: it could point the
        # maildrop anywhere the group may write
        own = self.tmp / "own"
        own.mkdir(mode=0o755)
        shutil.copy(d.config_path, own / "ringmail.yaml")
        os.chown(own / "ringmail.yaml", self.user.pw_uid, self.user.pw_gid)
        ok = b"RINGMAIL-MAILDROP 1\nS\nRa@b.example\n\nSubject: x\r\n\r\nbody\r\n"
        r = self.as_user([postdrop, "-C", str(own / "ringmail.yaml")], ok)
        self.assertEqual(r.returncode, 73, r.stderr)
        self.assertIn(b"Permission denied", r.stderr)
        # the daemon's own (root's) configuration: written
        r = self.as_user([postdrop, "-C", str(d.config_path)], ok)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.entries()), 1)


if __name__ == "__main__":
    unittest.main()
