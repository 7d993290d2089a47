"""Local delivery when things go wrong, end to end (the daemon runs as root with users made
for the test): a program that fails temporarily (EX_TEMPFAIL) once, an LMTP server
(mailers.lmtp) that answers 452 for one recipient of three, a mailbox on a full file
system, and the engine killed while a slow program runs. Each time the recipient is
deferred, then delivered by a retry exactly once (the one in flight at the crash at most
twice), and what was in the mailbox before stays intact (read back with Python's mailbox
module)."""

import os
import re
import signal
import subprocess
import time
import unittest

from aiosmtpd.controller import UnixSocketController
from aiosmtpd.lmtp import LMTP

from delivery_support import FAST_QUEUE
from local_support import LocalCase, read_mbox, unique_users, write_script
from ringmail_harness import HOSTNAME

SENDER = "someone@remote.test"
ALICE, BOB, CAROL = unique_users("rmq")
# users of this file only: tests in other files run at the same time
ALICE, BOB, CAROL = "rmqalice", "rmqbob", "rmqcarol"


class LmtpHandler:
    """Records the recipients of each message; 452 the first time for those in
    `full_once`, one reply per recipient (RFC 2033 4.2)."""

    def __init__(self, full_once=()):
        self.full_once = set(full_once)
        self.delivered: list[str] = []
        self.refused: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        replies = []
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.full_once:
                self.full_once.discard(rcpt)
                self.refused.append(rcpt)
                replies.append(f"452 4.2.2 <{rcpt}> Mailbox full")
            else:
                self.delivered.append(rcpt)
                replies.append(f"250 2.0.0 <{rcpt}> Saved")
        return "\r\n".join(replies)


class LmtpController(UnixSocketController):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class LocalFaults(LocalCase):
    USERS = (ALICE, BOB, CAROL)
    USERS = (ALICE, BOB, CAROL)

    def test_program_tempfail_then_delivered_once(self):
        """An alias program exits 75 (EX_TEMPFAIL) the first time: deferred with a 4.x.x
        status, delivered by the retry, and run with the message twice but delivered once.
        The same for a program in a user's .forward, run as that user."""
        script = write_script(self.files / "flaky.sh",
                              'tag=$1\n'
                              f'dir="{self.files}"\n'
                              'echo "$(id -u)" >> "$dir/$tag.runs"\n'
                              'if [ -e "$dir/$tag.state" ]; then cat >> "$dir/$tag.out"; exit 0; fi\n'
                              ': > "$dir/$tag.state"\ncat > /dev/null\nexit 75\n')
        self.user_file(BOB, ".forward", f'"|{script} fwd"\n')
        d = self.local_daemon(aliases=f'flaky: "|{script} alias"\n', queue=FAST_QUEUE)
        qid = self.send(d, SENDER, [f"flaky@{HOSTNAME}", f"{BOB}@{HOSTNAME}"],
                        subject="flaky")
        prog = (rf'{qid}: to="\|{re.escape(str(script))} alias", '
                rf"ctladdr=<flaky@{re.escape(HOSTNAME)}> \(\d+/\d+\), .*mailer=prog, ")
        self.wait_log(d, prog + r".*dsn=4\.\d+\.\d+, stat=Deferred")
        self.wait_log(d, rf"{qid}: to=<{BOB}@{re.escape(HOSTNAME)}>, .*dsn=4\.\d+\.\d+, "
                         rf"stat=Deferred")
        self.wait_log(d, prog + r".*stat=Sent", timeout=30)
        # the .forward's program has lines of its own (sendmail's ctladdr=); bob's line
        # says Deferred while a target is, and none is written once all were delivered
        fwd = (rf'{qid}: to="\|{re.escape(str(script))} fwd", ctladdr=<{BOB}@{re.escape(HOSTNAME)}> '
               rf"\({self.pw[BOB].pw_uid}/{self.pw[BOB].pw_gid}\), .*mailer=prog, ")
        self.wait_log(d, fwd + r".*stat=Deferred")
        self.wait_log(d, fwd + r".*dsn=2\.0\.0, stat=Sent", timeout=30)
        self.wait_spool_empty(d)
        for tag in ("alias", "fwd"):
            out = (self.files / f"{tag}.out").read_bytes()
            self.assertEqual(out.count(b"Subject: flaky\n"), 1, tag)
            runs = (self.files / f"{tag}.runs").read_text().split()
            self.assertEqual(len(runs), 2, tag)
        self.assertEqual(set((self.files / "fwd.runs").read_text().split()),
                         {str(self.pw[BOB].pw_uid)})
        self.assertNotIn("0", (self.files / "alias.runs").read_text().split())
        self.assertEqual(self.mbox(d, BOB), [])
        self.assertNotRegex(d.log(), rf"{qid}: to=<{BOB}@.*stat=Sent")

    def test_lmtp_one_recipient_of_three_full(self):
        """mailers.lmtp on a unix socket: one reply per recipient; the 452 one is deferred
        and delivered by the retry, the other two are delivered once."""
        handler = LmtpHandler(full_once={BOB})
        path = str(self.tmp / "lmtp.sock")
        ctl = LmtpController(handler, unix_socket=path)
        ctl.start()
        self.addCleanup(ctl.stop)
        d = self.local_daemon(mailers={"lmtp": f"unix:{path}"}, queue=FAST_QUEUE)
        rcpts = [f"{u}@{HOSTNAME}" for u in self.USERS]
        qid = self.send(d, SENDER, rcpts, subject="lmtp")
        self.wait_log(d, rf"{qid}: to=<{BOB}@{re.escape(HOSTNAME)}>, .*dsn=4\.2\.2, "
                         rf"stat=Deferred: 452 4\.2\.2 <{BOB}> Mailbox full")
        for r in rcpts:
            self.sent_line(d, qid, r, timeout=30)
        self.wait_spool_empty(d)
        self.assertEqual(sorted(handler.delivered), list(self.USERS))
        self.assertEqual(handler.refused, [BOB])
        for u in self.USERS:  # the built-in mailer was not used
            self.assertFalse(self.mbox_path(d, u).exists(), u)

    def test_mailbox_full(self):
        """The mail directory is a 64 KiB tmpfs: a message bigger than what is left is
        deferred (4.x.x, the file system's error), the mbox keeps exactly what it held,
        and a small message after it still lands cleanly."""
        d = self.local_daemon(start=False)
        mail = d.workdir / "mail"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "tmpfs",
                            str(mail)], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs: {r.stderr.strip()}")

        def unmount():
            d.stop()
            if subprocess.run(["umount", str(mail)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mail)], capture_output=True)
        self.addCleanup(unmount)
        d.start()
        q1 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="first",
                       body="small\r\n")
        self.sent_line(d, q1, f"{ALICE}@{HOSTNAME}")
        mbox = self.mbox_path(d, ALICE)
        before = mbox.read_bytes()
        big = "x" * 998 + "\r\n"
        q2 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="big", body=big * 100)
        m = self.wait_log(d, rf"{q2}: to=<{ALICE}@{re.escape(HOSTNAME)}>, .*mailer=local, "
                             rf".*dsn=(4\.\d+\.\d+), stat=Deferred: (.*)$")
        self.assertIn(m.group(1), ("4.2.2", "4.3.1", "4.3.0"), m.group(0))
        self.assertEqual(mbox.read_bytes(), before, "the failed write was not undone")
        self.assertEqual([x["Subject"] for x in read_mbox(mbox)], ["first"])
        q3 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="third", body="small\r\n")
        self.sent_line(d, q3, f"{ALICE}@{HOSTNAME}")
        msgs = read_mbox(mbox)
        self.assertEqual([x["Subject"] for x in msgs], ["first", "third"])
        self.assertEqual([x.get_payload() for x in msgs], ["small\n", "small\n"])
        self.assertIn(q2, d.spool.qids())

    def wait_rcpt_state(self, d, qid: str, rcpt: str, state: str, timeout: float = 10.0):
        """Waits until the qf says `state` for the recipient `rcpt`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = [x["state"] for x in d.spool.envelope(qid)["rcpts"]
                         if x["addr"] == rcpt]
            except FileNotFoundError:
                self.fail(f"qf{qid} removed before it said {state} for <{rcpt}>")
            if found == [state]:
                return
            if time.monotonic() > deadline:
                self.fail(f"qf{qid}: <{rcpt}> is {found}, not {state}")
            time.sleep(0.05)

    def slow_then_kill(self, rcpts):
        """Sends a message to an alias program that sleeps 3s (and to `rcpts`), kills the
        engine with SIGKILL while it sleeps, restarts the daemon and waits until the message
        is delivered and the program's runs all ended. (daemon, qid, the program's runs that
        saw the whole message)."""
        runs, done = self.files / "slow.runs", self.files / "slow.done"
        script = write_script(self.files / "slow.sh",
                              f'echo start >> "{runs}"\n'
                              'msg=$(cat)\n'
                              'sleep 3\n'
                              f'printf "%s\\n" "$msg" | grep -c "^Subject: slow" >> "{done}"\n')
        d = self.local_daemon(aliases=f'slow: "|{script}"\n', queue=FAST_QUEUE)
        qid = self.send(d, SENDER, [f"slow@{HOSTNAME}"] + rcpts, subject="slow")
        self.wait_file(runs, d=d)
        for r in rcpts:  # written by the agent, then marked delivered in the qf at once
            self.wait_mbox(d, r.split("@")[0])
            self.wait_rcpt_state(d, qid, r, "D")
        self.assertFalse(done.exists(), "the program ended before the kill")
        os.kill(self.engine_pid(d), signal.SIGKILL)
        self.assertIsNotNone(d.wait(20), "the parent runs on without its engine")
        self.wait_log(d, r"the engine \(pid \d+\) was killed by signal 9")
        self.crash(d)  # the port free again (and nothing of the daemon's group left)
        self.assertIn(qid, d.spool.qids())
        d.start()
        self.wait_log(d, rf'{qid}: to="\|{re.escape(str(script))}", .*stat=Sent', timeout=30)
        self.wait_spool_empty(d)
        # the first attempt's agent is the parent's child, not the engine's: it runs to its
        # end too
        deadline = time.monotonic() + 10
        while len(runs.read_text().split()) != len(done.read_text().split()
                                                   if done.exists() else []):
            if time.monotonic() > deadline:
                self.fail(f"runs {runs.read_text()!r}, done {done.read_text()!r}")
            time.sleep(0.05)
        return d, qid, done.read_text().split()

    def test_engine_killed_during_a_slow_program(self):
        """kill -9 of the engine while an alias program sleeps: the daemon stops (the
        parent does not run on without its engine); after a restart the program's
        recipient is delivered: at least once, at most twice (it was in flight)."""
        _, _, completed = self.slow_then_kill([])
        self.assertIn(len(completed), (1, 2), completed)
        self.assertEqual(set(completed), {"1"})

    def test_engine_killed_done_recipient_not_repeated(self):
        """The same with a mailbox recipient of the message that the agent delivered before
        the kill: its state is in the qf while the program still runs (each delivery's
        outcome is recorded as it completes, as Postfix does), so only the recipient in
        flight may be delivered twice and the mailbox gets the message once."""
        d, _, completed = self.slow_then_kill([f"{ALICE}@{HOSTNAME}"])
        self.assertIn(len(completed), (1, 2), completed)
        self.assertEqual([x["Subject"] for x in self.mbox(d, ALICE)], ["slow"])

if __name__ == "__main__":
    unittest.main()
