"""Local submission's connection slots (docs/config.md, `submission.connections` and
`submission.connections_per_user`; docs/operations.md, "Connection limits"): one local user
flooding submission.socket is held at its per-uid limit, another user and the TCP clients
are still served during the flood, and the slots come back when it ends; the engine's
descriptors and memory stay bounded meanwhile.

The flood runs as unprivileged uids without a passwd entry (setpriv, as test_submission.py
does): the daemon names such a caller by its uid. Needs root."""

import json
import os
import re
import shutil
import subprocess
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase

PYTHON = "/usr/bin/python3"
FLOODER, OTHER, THIRD = 64001, 64002, 64003
PER_USER, TOTAL = 5, 8

# Run as the flooding user: opens argv[2] connections to argv[1], one after the other (a
# refused one is closed by the daemon, a served one is held), prints each greeting's first
# line as a JSON list, then holds the served ones until its stdin closes.
FLOOD = r"""
import json, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held, greetings = [], []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    line = s.makefile("rb").readline().decode().rstrip("\r\n")
    greetings.append(line)
    if line.startswith("220"):
        held.append(s)
    else:
        s.close()
print(json.dumps(greetings), flush=True)
sys.stdin.read()
"""

# One whole submission as the calling user: the final reply to the message.
SUBMIT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode().rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line
def cmd(line):
    s.sendall(line.encode() + b"\r\n")
    return reply()
out = reply()
if out.startswith("220"):
    for line in ("EHLO localhost", "MAIL FROM:<>", "RCPT TO:<x@remote.example>", "DATA"):
        out = cmd(line)
    s.sendall(b"Subject: t\r\n\r\nduring the flood\r\n.\r\n")
    out = reply()
    cmd("QUIT")
print(out)
"""


def as_uid(uid: int) -> list[str]:
    return ["setpriv", "--reuid", str(uid), "--regid", "65534", "--clear-groups"]


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                     "needs root and setpriv (clients run as other users)")
class LocalConnectionLimits(RingmailTestCase):

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)  # the unprivileged clients reach the socket through it
        work = self.tmp / "d"
        work.mkdir()
        os.chmod(work, 0o755)
        # limits.connections far below the local slots: local callers never use it up
        self.d = self.daemon(workdir=work, limits={"connections": 2},
                             submission={"connections": TOTAL,
                                         "connections_per_user": PER_USER})
        self.sock = str(work / "ringmail.sock")
        self.floods: list[subprocess.Popen] = []
        self.addCleanup(self.end_floods)

    def flood(self, uid: int, n: int) -> list[str]:
        p = subprocess.Popen(as_uid(uid) + [PYTHON, "-c", FLOOD, self.sock, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.floods.append(p)
        line = p.stdout.readline()
        self.assertTrue(line, "the flood client died")
        return json.loads(line)

    def end_floods(self):
        for p in self.floods:
            if p.poll() is None:
                p.stdin.close()
                p.wait(20)
            p.stdout.close()
        self.floods.clear()

    def submit(self, uid: int) -> str:
        p = subprocess.run(as_uid(uid) + [PYTHON, "-c", SUBMIT, self.sock],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def served(self, greetings: list[str]) -> int:
        return sum(g.startswith("220 ") for g in greetings)

    def test_one_user_flood_is_bounded_others_served(self):
        engine = self.d.engine_pid
        fds0, rss0 = fds(engine), rss_kb(engine)

        greetings = self.flood(FLOODER, 300)
        self.assertEqual(self.served(greetings), PER_USER, greetings[:PER_USER + 1])
        refused = [g for g in greetings if not g.startswith("220 ")]
        self.assertEqual(set(refused), {"421 4.3.2 Too many open connections."})
        # one line per user and interval however many were refused (log_limited)
        self.d.wait_log(rf"rejecting connections on daemon submission: user {FLOODER} "
                        rf"\(uid {FLOODER}\) has {PER_USER}, {PER_USER} in all, max "
                        rf"{PER_USER} per user, {TOTAL} in all")
        self.assertEqual(len(re.findall(r"rejecting connections on daemon submission",
                                        self.d.log())), 1)

        # during the flood: another local user, and a TCP client (limits.connections 2 is
        # not used by the local sessions)
        self.assertRegex(self.submit(OTHER), r"^250 2\.0\.0 .*Message accepted")
        tcp = [self.session(self.d) for _ in range(2)]
        for c in tcp:
            self.assertReply(c.cmd("NOOP"), 250)
            c.close()

        # bounded: the held sessions' descriptors and a little memory, not one per attempt
        self.assertLessEqual(fds(engine), fds0 + PER_USER + 8)
        self.assertLess(rss_kb(engine), rss0 + 16 * 1024)

        # the local total: a second user gets what is left of it, with MaxDaemonChildren's
        # reply (the daemon's own name in it)
        second = self.flood(THIRD, 5)
        self.assertEqual(self.served(second), TOTAL - PER_USER, second)
        self.assertEqual(second[-1], f"421 4.3.2 {HOSTNAME} Too many open connections")
        # and still the TCP clients
        c = self.session(self.d)
        self.assertReply(c.cmd("QUIT"), 221)

        # the flood ends: its slots come back
        self.end_floods()
        deadline = time.monotonic() + 10
        while True:
            again = self.flood(FLOODER, PER_USER + 1)
            if self.served(again) == PER_USER or time.monotonic() > deadline:
                break
            self.end_floods()
            time.sleep(0.1)
        self.assertEqual(self.served(again), PER_USER, again)
        self.end_floods()
        self.assertTrue(self.d.alive())
        deadline = time.monotonic() + 10
        while fds(engine) > fds0 + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertLessEqual(fds(engine), fds0 + 2)


if __name__ == "__main__":
    unittest.main()
