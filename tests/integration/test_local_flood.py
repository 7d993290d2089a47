"""The privileged parent's queue of waiting local deliveries under a flood
(docs/local-delivery.md, "Agents"): more requests than the parent holds (10,000) for one user
whose mailbox is locked, so that every one waits. The parent stops reading at its cap and the
engine keeps the rest; the parent's descriptors and memory stay bounded, the daemon keeps
accepting mail meanwhile, and once the lock goes every recipient is delivered at its first
attempt, none deferred or bounced.

The parent holds two descriptors per waiting request, so its cap is also what half its
open-files limit holds: the daemon runs here with a limit of 10,240 (5,087 waiting), which
keeps the flood short; the log line the parent writes when it is full gives the number.
Needs root."""

import fcntl
import os
import re
import resource
import time

from delivery_support import FAST_QUEUE
from local_support import LocalCase, unique_users
from ringmail_harness import HOSTNAME, asan_build

SENDER = "someone@remote.test"
ALICE, BOB, _ = unique_users("rmf")
NOFILE = 10240
WAITING_MAX = (NOFILE - 64) // 2 - 1  # core/local_agent.c: less half an fd per agent (2)
# 6,000 requests: 913 past the parent's cap, which wait in the engine without descriptors
# (when they held three each, the engine's own 10,240 ran out and they were deferred).
MESSAGES, RCPTS = 6, 1000


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


class LocalFlood(LocalCase):
    USERS = (ALICE, BOB)

    def setUp(self):
        super().setUp()
        # the daemon inherits it: the hard limit too, as the parent raises its soft limit
        # to the hard one (not restored: a hard limit cannot be raised again without
        # CAP_SYS_RESOURCE, and this file runs in a process of its own)
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    def send_pipelined(self, d, rcpts: list[str], subject: str) -> str:
        """One message to `rcpts`, the RCPTs pipelined (a round trip each would be slow)."""
        c = self.session(d)
        c.send(f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts))
        for _ in range(len(rcpts) + 1):
            self.assertReply(c.reply(), 250)
        qid = self.assertAccepted(c.data(f"Subject: {subject}\r\n\r\nflood\r\n".encode())[1])
        c.cmd("QUIT")
        c.close()
        return qid

    def test_flood_past_the_parents_cap(self):
        d = self.local_daemon(queue=FAST_QUEUE)
        parent, engine = d.pid, self.engine_pid(d)
        fds0, rss0 = proc_fds(parent), rss_kb(parent)

        # alice's mbox, locked as mail.local would lock it: her agents wait for the lock
        pw = self.pw[ALICE]
        box = self.mbox_path(d, ALICE)
        box.touch(mode=0o600)
        os.chown(box, pw.pw_uid, pw.pw_gid)
        lock = open(box, "r+b")
        self.addCleanup(lock.close)
        fcntl.lockf(lock, fcntl.LOCK_EX)

        started = time.monotonic()
        for m in range(MESSAGES):
            self.send_pipelined(d, [f"{ALICE}+{m}.{i}@{HOSTNAME}" for i in range(RCPTS)],
                                f"m{m}")

        # the parent fills up to its cap (two descriptors a request), says so, and stops
        full = re.compile(rf"local delivery: {WAITING_MAX} requests wait for an agent, all the "
                          r"parent holds: the engine keeps the others until there is room")
        # (a loaded machine hands the requests over slowly: CI once needed more than 30 s)
        deadline = time.monotonic() + 90
        while (not full.search(d.log()) and proc_fds(parent) <= fds0 + 2 * WAITING_MAX + 8
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(1)  # would it read more?
        held = proc_fds(parent) - fds0
        self.assertLessEqual(held, 2 * WAITING_MAX + 8, d.log_tail())
        # (near it: agents starting and ending move the count by a few descriptors)
        self.assertGreaterEqual(held, 2 * WAITING_MAX - 64, d.log_tail())
        self.assertRegex(d.log(), full)
        # what the parent does not take waits in the engine (delivery/local.c) holding no
        # descriptor until it goes: the engine's count stays near one per request sent (its
        # reply socket) however many wait behind them
        engine_max = max(proc_fds(engine) for _ in range(20) if time.sleep(0.05) is None)
        self.assertLess(engine_max, WAITING_MAX + 200, d.log_tail())
        # the parent's memory: a few kilobytes a waiting request, not a plan of 15 kB
        peak = rss_kb(parent) - rss0
        # (ASan's redzones and quarantine multiply it; a 15 kB plan each was 88 MB here)
        self.assertLess(peak, (80 if asan_build() else 32) * 1024, f"the parent grew by {peak} kB")

        # the daemon keeps accepting mail meanwhile
        qid = self.send(d, SENDER, [f"{BOB}@{HOSTNAME}"], subject="meanwhile")
        self.assertTrue(qid)

        fcntl.lockf(lock, fcntl.LOCK_UN)
        # (ctest runs another local test beside this one: its useradd and userdel change
        # /etc/passwd, the daemon reloads every few seconds and retires its agents; under
        # ASan that once slowed the 6,000 deliveries to 40 a second)
        self.wait_spool_empty(d, timeout=300)
        elapsed = time.monotonic() - started
        msgs = self.mbox(d, ALICE)
        self.assertEqual(len(msgs), MESSAGES * RCPTS)
        self.assertEqual(len(self.mbox(d, BOB)), 1)
        log = d.log(since_start=True)
        self.assertNotRegex(log, r"dsn=5\.|DSN: |malformed local delivery request")
        # none waited for a retry: no request ran out of descriptors on either side
        self.assertNotRegex(log, r"stat=Deferred")
        self.assertTrue(d.alive())
        print(f"flood of {MESSAGES * RCPTS} delivered in {elapsed:.1f}s, parent peak "
              f"+{peak} kB, engine at most {engine_max} descriptors")


if __name__ == "__main__":
    import unittest
    unittest.main()
