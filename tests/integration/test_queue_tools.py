"""ringmail-queue's hold, release, delete, requeue and flush on a real queue (messages deferred
by a sink that answers 4xx): offline, with ringmaild stopped, on the files themselves
under the spool lock (then the daemon starts and a held message stays held while a
requeued one goes); refused while the daemon holds the lock but its control socket is
gone; and online, through the control socket (hold, flush, release, delete, hoststat and
purgestat)."""

import os
import time
import unittest
from pathlib import Path

from test_mailq import HELD, QueueToolCase, qf_fields


class Switch:
    """The sink's RCPT answer: 451 until `accept` is set."""

    def __init__(self):
        self.accept = False

    def __call__(self, conn, arg):
        return "250 2.1.5 Ok" if self.accept else "451 4.3.0 try again later"


class QueueTools(QueueToolCase):

    def control_socket(self, d) -> Path:
        return Path(d.config.get("submission", {}).get("control_socket",
                                                        d.workdir / "ringmail.ctl"))

    def delivered_to(self, sink) -> set[str]:
        return {r for m in sink.messages for r in m.rcpt_tos}

    def test_offline_then_start(self):
        switch = Switch()
        sink, d, envs = self.deferred_queue(sink_rcpt=switch)
        q1, q2, q3 = envs
        # and one larger than the spool's 64 KiB write chunk: its qf and its df
        q4 = self.send(d, "alice@client.test", ["frank@remote.test"],
                       body=("f" * 78 + "\r\n") * 900)
        self.wait_deferred(d, [q4])
        self.assertEqual(d.spool.data_location(q2), "qf")  # one file, its data inside
        self.assertEqual(d.spool.data_location(q4), "df")
        d.stop()

        r = self.tool(d, "hold", q1)
        self.assertEqual((r.returncode, r.stdout), (0, f"{q1} held\n"), r.stderr)
        self.assertEqual(r.stderr, "ringmail-queue: Placed on hold: 1 message\n")
        self.assertEqual(qf_fields(d.spool.qf(q1))["next"], HELD)
        # already held: nothing to do
        r = self.tool(d, "hold", q1)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))

        # postsuper's "-": targets from standard input
        r = self.tool(d, "delete", "-", stdin=f"\n  {q2}  \n")
        self.assertEqual((r.returncode, r.stdout), (0, f"{q2} deleted\n"), r.stderr)
        self.assertNotIn(q2, d.spool.qids())
        self.assertEqual([n for n in d.spool.names() if q2 in n], [])
        r = self.tool(d, "delete", q4)
        self.assertEqual((r.returncode, r.stdout), (0, f"{q4} deleted\n"), r.stderr)
        self.assertEqual([n for n in d.spool.names() if q4 in n], [], "qf and df both gone")

        before = qf_fields(d.spool.qf(q3))
        r = self.tool(d, "requeue", "Rerin@")
        self.assertEqual((r.returncode, r.stdout), (0, f"{q3} requeued\n"), r.stderr)
        after = qf_fields(d.spool.qf(q3))
        self.assertEqual(after["next"], 0)
        self.assertIsNone(after["reason"])
        self.assertEqual(after["attempts"], before["attempts"])

        r = self.tool(d, "release", "0Zzzzzzzzzzzzzzz")
        self.assertEqual(r.returncode, 0)
        self.assertIn("0Zzzzzzzzzzzzzzz: no such message in the queue", r.stderr)

        r = self.tool(d, "list")
        self.assertIn(f"{q1}X", r.stdout)

        # flush needs the daemon
        r = self.tool(d, "flush")
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("ringmaild is not running", r.stderr)

        # the next hop accepts now: the requeued message goes at start, the held one never
        switch.accept = True
        d.start()
        sink.wait_until(lambda: "erin@remote.test" in self.delivered_to(sink), 30,
                        "the requeued message delivered")
        self.wait_spool(d, lambda q: q3 not in q, what="the delivered message removed")
        time.sleep(1.5)
        self.assertIn(q1, d.spool.qids())
        self.assertEqual(qf_fields(d.spool.qf(q1))["next"], HELD)
        self.assertFalse({"bob@remote.test", "carol@remote.test", "frank@remote.test"}
                         & self.delivered_to(sink))

    def test_running_daemon_without_its_socket(self):
        """The lock is held, the socket gone: the daemon runs but cannot be asked, so
        nothing is changed behind its back."""
        _, d, envs = self.deferred_queue()
        ctl = self.control_socket(d)
        self.assertTrue(ctl.is_socket(), f"no control socket at {ctl}")
        ctl.unlink()
        q1 = next(iter(envs))
        r = self.tool(d, "delete", q1)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("holds the spool", r.stderr)
        self.assertIn(q1, d.spool.qids())

    def test_usage(self):
        d = self.daemon()
        for args in ([], ["hold"], ["frobnicate"], ["list", "--xml"], ["shape", "-x"],
                     ["shape", "bogus"], ["hold", "not a target"]):
            r = self.tool(d, *args)
            self.assertEqual(r.returncode, 64, f"{args}: {r.stderr}")

    # online ----------------------------------------------------------------
    def test_online_hold_flush_release(self):
        switch = Switch()
        sink, d, envs = self.deferred_queue(sink_rcpt=switch)
        q1, q2, q3 = envs
        r = self.tool(d, "hold", q1)
        self.assertEqual((r.returncode, r.stdout), (0, f"{q1} held\n"), r.stderr)
        self.assertEqual(r.stderr, "ringmail-queue: Placed on hold: 1 message\n")
        self.assertEqual(qf_fields(d.spool.qf(q1))["next"], HELD)

        switch.accept = True
        r = self.tool(d, "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^\d+ messages? scheduled\n$")
        self.wait_spool(d, lambda q: q == {q1}, what="all but the held message delivered")
        self.assertFalse({"bob@remote.test", "carol@remote.test"} & self.delivered_to(sink))

        r = self.tool(d, "release", q1)
        self.assertEqual((r.returncode, r.stdout), (0, f"{q1} released\n"), r.stderr)
        r = self.tool(d, "flush", f"I{q1[-6:]}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_spool_empty(d)
        self.assertTrue({"bob@remote.test", "carol@remote.test"} <= self.delivered_to(sink))

    def test_online_delete_and_hoststat(self):
        sink, d, envs = self.deferred_queue()
        q1, q2, q3 = envs
        r = self.tool(d, "delete", "Sclient.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.split("\n")[:-1]),
                         sorted([f"{q1} deleted", f"{q3} deleted"]))
        self.wait_spool(d, lambda q: q == {q2}, what="the deleted messages gone")
        # the next hop goes away: its status is recorded, and shown as sendmail's hoststat
        sink.stop()
        self.assertEqual(self.tool(d, "flush").returncode, 0)
        deadline = time.monotonic() + 20
        while True:
            r = self.tool(d, "hoststat")
            self.assertEqual(r.returncode, 0, r.stderr)
            if "Connection refused" in r.stdout:
                break
            if time.monotonic() > deadline:
                self.fail(f"no host status: {r.stdout!r}")
            time.sleep(0.1)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], " -------------- Hostname --------------- How long ago "
                                   "---------Results---------")
        self.assertRegex(lines[1], r"^ \S.{38} [ 0-9+:]{12} Connection refused by 127$")
        r = self.tool(d, "purgestat")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        self.assertEqual(self.tool(d, "hoststat").stdout, "")


if __name__ == "__main__":
    unittest.main()
