"""Start-up recovery reads the queue while the daemon serves (docs/queue.md, "Recovery"):
`ready` comes after the spool's listing, the envelopes are read afterwards on a thread of
their own and each message is handed to its worker at its real next attempt.

A spool of a few thousand messages made with bench/queue_bench fill (the queue's own
envelope writer) while the daemon is down: due ones, deferred ones, a held one, and the
newest naming a maildrop file still there (the crash window between a pickup's commit and
the file's removal). After the start: `ready` is logged before the recovery's summary,
every due message reaches the smart host exactly once, the deferred and held ones are not
tried, and the maildrop file is removed by the recovery, never submitted by the pickup
(which starts only once the queue is read)."""

import re
import socket
import subprocess
import time
import unittest
from pathlib import Path

from ringmail_harness import ringmaild_path
import test_maildrop
from sink import Sink

DUE = 300         # due at once: each must reach the sink exactly once
DEFERRED = 5000   # a day ahead: never tried here, but the pass must read them all
HOUR = 3600


def queue_bench() -> Path:
    return Path(ringmaild_path()).parent / "bench" / "queue_bench"


class BackgroundRecovery(test_maildrop.Maildrop):
    """The maildrop tests' set-up (a submitter, a setgid ringmail-postdrop), not their
    tests: load_tests below runs this class's own."""

    def setUp(self):
        super().setUp()
        if not queue_bench().exists():
            self.skipTest("bench/queue_bench is not built")

    def fill(self, d, n: int, *args: str) -> set[str]:
        """n messages written into the stopped daemon's spool: their queue ids."""
        before = d.spool.qids()
        subprocess.run([str(queue_bench()), "fill", d.config["spool"], str(n), "--threads", "1",
                        *args], check=True, capture_output=True, timeout=120)
        made = d.spool.qids() - before
        self.assertEqual(len(made), n)
        return made

    @staticmethod
    def control(d, line: str) -> str:
        """One control socket request (docs/queue.md, "The control socket"): the answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(Path(d.config["spool"]).parent / "ringmail.ctl"))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        return out.decode()

    @staticmethod
    def qid_of(message) -> str:
        """queue_bench puts the queue id into the Message-Id: <bench.N.QID@client.example>."""
        m = re.search(rb"^Message-Id: <bench\.\d+\.(\w+)@", message.data, re.M | re.I)
        return m.group(1).decode() if m else ""

    def test_ready_before_the_queue_is_read(self):
        sink = Sink("127.0.0.2").start()
        self.addCleanup(sink.stop)
        d = self.new(routing={"smart_host": sink.hostport},
                     queue={"interval": "1s", "minimal_backoff": "1s", "maximal_backoff": "2s"})
        name = self.drop_one(d)
        due = self.fill(d, DUE, "--next", "0")
        deferred = self.fill(d, DEFERRED)
        later = self.fill(d, 1, "--next", str(HOUR))
        held = self.fill(d, 1, "--held")
        probe = next(iter(self.fill(d, 1, "--next", str(HOUR))))  # held through the socket
        # the newest id, so the last one read: due now, and its maildrop file still there
        dropped = self.fill(d, 1, "--next", "0", "--maildrop", name)
        due |= dropped
        # a damaged envelope found by the reading: set aside as today, never delivered
        damaged = deferred.pop()
        d.spool.file(f"qf{damaged}").write_bytes(b"V1\nnot an envelope\n")
        total = len(due) + len(deferred) + len(later) + len(held) + 2

        d.start(read_queue=False)
        # right after ready: the answer counts what was read, and says if that is not all
        answer = self.control(d, f"HOLD {probe}")
        if answer != f"+ {probe} held\nOK 1\n":
            self.assertRegex(answer, r"^OK 0; the queue is still being read since the start "
                                     rf"\(\d+ of {total} messages so far\): the count is still "
                                     r"growing\n$")
        summary = d.wait_log(rf"spool .*: {total - 1} message\(s\) queued, 0 partial file\(s\) "
                             r"removed, 1 damaged, 0 moved", timeout=60, since_start=True)
        self.assertTrue(summary, d.log_tail())
        self.assertRegex(self.control(d, f"HOLD {probe}"), r"^(\+ .*\n)?OK [01]\n$",
                         "once the queue is read the answer has no note")
        self.assertTrue(d.wait_log(rf"{damaged}: damaged queue file moved to ./Qf{damaged}: ",
                                   since_start=True))
        self.assertTrue(d.spool.file(f"Qf{damaged}").exists())
        log = d.log(since_start=True)
        found = log.index(f": {total} message(s) found")
        ready = re.search(r"\]: ready$", log, re.M).start()
        self.assertLess(found, ready, "the listing comes before ready")
        self.assertLess(ready, log.index(f": {total - 1} message(s) queued"),
                        "ready comes before the queue is read")

        sink.wait_until(lambda: len(sink.messages) >= len(due), 120, f"{len(due)} deliveries")
        self.wait_for("the spool to keep only the messages not due",
                      lambda: d.spool.qids() == deferred | later | held | {probe}, timeout=60)
        time.sleep(2)  # queue runs every second: nothing more may come
        got = [self.qid_of(m) for m in sink.messages]
        self.assertEqual(len(got), len(due), "every due message exactly once")
        self.assertEqual(set(got), due)

        log = d.log(since_start=True)
        for qid in later | held | {probe, damaged} | set(list(deferred)[:50]):
            self.assertNotIn(f"{qid}: to=", log, "tried before its next attempt")
        for qid in held | {probe}:
            self.assertEqual(int(d.spool.envelope(qid)["next_attempt"]), 99999999999999999,
                             "still held (ENVELOPE_NEXT_HELD)")

        # the maildrop file went with the recovery; the pickup never submitted it
        self.assertEqual(self.entries(), [])
        self.assertNotIn("picked up", log)
        self.assertFalse([m for m in sink.messages if b"Subject: while down" in m.data])
        d.stop()


def load_tests(loader, tests, pattern):
    return loader.loadTestsFromNames(
        [n for n in vars(BackgroundRecovery) if n.startswith("test_")], BackgroundRecovery)


if __name__ == "__main__":
    unittest.main()
