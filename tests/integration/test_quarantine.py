"""Quarantined messages (the access map's QUARANTINE:reason) administered as sendmail's are:
`mailq -qQ` (and `sendmail -bp -qQ[substr]`) lists only them, plain mailq all; a release by
ringmail-queue, with the daemon running (the control socket) or stopped (the files under the
spool lock), removes the q record with the hold, so mailq no longer calls the message
quarantined, and the message is delivered."""

import os
import re
import subprocess

from delivery_support import FAST_QUEUE, rcpt_line
from test_queue_tools import Switch
from test_mailq import HELD, QueueToolCase, qf_fields, ringmail_bin

ACCESS = "From:hold@client.test      QUARANTINE:held for review\n"


class Quarantine(QueueToolCase):

    def mailq(self, d, *args, prog="mailq"):
        """ringmail-sendmail called `prog` ("mailq": through a link of that name)."""
        exe = ringmail_bin("ringmail-sendmail")
        if not exe.exists():
            self.skipTest(f"{exe} is not built")
        if prog == "mailq":
            link = self.tmp / "mailq"
            if not link.exists():
                link.symlink_to(exe)
            exe = link
        return subprocess.run([str(exe), "-C", str(d.config_path), *args], capture_output=True,
                              text=True, env=dict(os.environ, TZ="UTC"), timeout=60)

    def quarantine_daemon(self, rcpt="250 2.1.5 Ok"):
        """A daemon relaying to a sink answering RCPT with `rcpt`, and a message quarantined
        in it: (sink, daemon, its qid)."""
        sink = self.sink(rcpt=rcpt)
        d = self.daemon(start=False, routing={"smart_host": sink.hostport},
                        maps={"access": "access"}, queue=FAST_QUEUE)
        (d.workdir / "access").write_text(ACCESS)
        d.start()
        held = self.send(d, "hold@client.test", ["bob@remote.test"])
        free = self.send(d, "alice@client.test", ["carol@remote.test"])
        self.wait_log(d, rcpt_line(free, "carol@remote.test") + r".*stat=")
        self.assertEqual(qf_fields(d.spool.qf(held))["next"], HELD)
        return sink, d, held

    def assert_quarantined(self, d, qid, prog="mailq", *args):
        out = self.mailq(d, *args, prog=prog).stdout
        self.assertRegex(out, rf"{qid}X +\d+ .{{16}} <hold@client\.test>\n"
                              r"     QUARANTINE: held for review\n")

    def test_mailq_qQ_lists_only_quarantined(self):
        sink = self.sink(rcpt="451 4.3.0 try again later")
        d = self.daemon(start=False, routing={"smart_host": sink.hostport},
                        maps={"access": "access"})
        (d.workdir / "access").write_text(ACCESS)
        d.start()
        held = self.send(d, "hold@client.test", ["bob@remote.test"])
        deferred = self.send(d, "alice@client.test", ["carol@remote.test"])
        self.wait_deferred(d, [deferred])
        every = self.mailq(d).stdout
        self.assertIn(held, every)
        self.assertIn(deferred, every)
        self.assertIn("Total requests: 2", every)
        for prog, args in (("mailq", ["-qQ"]), ("ringmail-sendmail", ["-bp", "-qQ"]),
                           ("ringmail-sendmail", ["-qQreview", "-bp"])):
            with self.subTest(prog=prog, args=args):
                r = self.mailq(d, *args, prog=prog)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("(1 request)", r.stdout)
                self.assertNotIn(deferred, r.stdout)
                self.assert_quarantined(d, held, prog, *args)
        # a reason that does not contain the substring: nothing
        r = self.mailq(d, "-qQspam")
        self.assertNotIn(held, r.stdout)
        self.assertIn("Total requests: 0", r.stdout)

    def test_release_online_clears_quarantine(self):
        switch = Switch()
        sink, d, held = self.quarantine_daemon(switch)
        self.assert_quarantined(d, held)
        r = self.tool(d, "release", held)
        self.assertEqual((r.returncode, r.stdout), (0, f"{held} released\n"), r.stderr)
        # tried at once and deferred: still queued, no longer quarantined
        self.wait_log(d, rcpt_line(held, "bob@remote.test") + r".*stat=Deferred")
        self.assertNotIn(b"held for review", d.spool.qf_envelope(held))
        out = self.mailq(d).stdout
        self.assertRegex(out, rf"{held} +\d+ ")
        self.assertNotIn("QUARANTINE", out)
        self.assertNotIn(held, self.mailq(d, "-qQ").stdout)
        switch.accept = True
        self.wait_log(d, rcpt_line(held, "bob@remote.test") + r".*stat=Sent", timeout=30)
        self.assertIn("bob@remote.test", {r for m in sink.messages for r in m.rcpt_tos})

    def test_release_offline_clears_quarantine(self):
        sink, d, held = self.quarantine_daemon()
        d.stop()
        r = self.tool(d, "release", held)
        self.assertEqual((r.returncode, r.stdout), (0, f"{held} released\n"), r.stderr)
        self.assertEqual(qf_fields(d.spool.qf(held))["next"], 0)
        self.assertIsNone(re.search(rb"\nq[^\n]*\S", d.spool.qf_envelope(held)))
        out = self.mailq(d).stdout
        self.assertIn(held, out)
        self.assertNotIn("QUARANTINE", out)
        self.assertNotIn(held, self.mailq(d, "-qQ").stdout)
        d.start()
        self.wait_log(d, rcpt_line(held, "bob@remote.test") + r".*stat=Sent")

    def test_sendmail_unquarantine(self):
        """sendmail -Q -qI<qid> (no reason) releases, as ringmail-queue release does."""
        switch = Switch()
        sink, d, held = self.quarantine_daemon(switch)
        other = self.send(d, "hold@client.test", ["dave@remote.test"])
        r = self.mailq(d, "-Q", f"-qI{held}", prog="ringmail-sendmail")
        self.assertEqual((r.returncode, r.stdout), (0, f"{held} released\n"), r.stderr)
        self.wait_log(d, rcpt_line(held, "bob@remote.test") + r".*stat=Deferred")
        out = self.mailq(d, "-qQ").stdout
        self.assertNotIn(held, out)
        self.assert_quarantined(d, other)
        # offline too: the files under the spool lock
        d.stop()
        r = self.mailq(d, "-Q", "-qRdave@", prog="ringmail-sendmail")
        self.assertEqual((r.returncode, r.stdout), (0, f"{other} released\n"), r.stderr)
        self.assertNotIn("QUARANTINE", self.mailq(d).stdout)
        switch.accept = True
        d.start()
        for qid, rcpt in ((held, "bob@remote.test"), (other, "dave@remote.test")):
            self.wait_log(d, rcpt_line(qid, rcpt) + r".*stat=Sent", timeout=30)


if __name__ == "__main__":
    import unittest
    unittest.main()
