"""The spool's subdirectories (queue.hash_depth, Postfix's hash_queue_depth): a message's
files go into the subdirectory a hash of its queue id names ("7/qf<qid>" at depth 1, the
default; "7/c/qf<qid>" at 2; the top at 0), the subdirectories are made at start-up with
mode 0700, and after a change of depth recovery moves every message to where the new
depth keeps it."""

import os
import re
import stat
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message

HEX = "0123456789abcdef"
# more than the spool's 64 KiB write chunk: the message is a qf and a df, not one file
BIG_BODY = ("b" * 78 + "\r\n") * 900


def qf_text(qid: str, size: int, rcpt: str, inline: bytes | None = None) -> bytes:
    """A committed envelope in format V1 (docs/queue.md), as the spool writes it, not due
    for an hour: the test looks at the spool while the daemon runs, so no attempt (and no
    bounce being written) may change it meanwhile. It ends in `.` (the data is in a df), or
    with `inline` in `=` and the data (a one-file message)."""
    now = int(time.time())
    lines = ["V1", f"I{qid}", f"T{now:020d}", f"N{0:010d}", f"W{now + 3600:020d}",
             f"L{size:020d}", "B0", "U0", "X0", "Smoved@example.com", f"RP 00 - {rcpt}",
             "." if inline is None else "="]
    return ("\n".join(lines) + "\n").encode() + (inline or b"")


class SpoolLayout(RingmailTestCase):

    def send(self, d, body: str = "hello\r\n") -> str:
        c = self.session(d)
        return self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                               make_message(subject="layout", body=body)))

    def assertSubdirs(self, d, depth: int):
        want = [] if depth == 0 else list(HEX) if depth == 1 else \
            list(HEX) + [f"{a}/{b}" for a in HEX for b in HEX]
        self.assertEqual(d.spool.subdirs(), sorted(want))
        for sub in d.spool.subdirs():
            self.assertEqual(stat.S_IMODE(os.stat(d.spool.path / sub).st_mode), 0o700, sub)

    def test_depths(self):
        for depth in (0, 1, 2):
            with self.subTest(depth=depth):
                d = self.daemon(queue={"hash_depth": depth})
                self.assertSubdirs(d, depth)
                # a small message is its qf alone; one larger than the 64 KiB write chunk
                # has a df too, in the same subdirectory
                small, big = self.send(d), self.send(d, body=BIG_BODY)
                for qid in (small, big):
                    qf = d.spool.file("qf" + qid).relative_to(d.spool.path)
                    self.assertEqual(len(qf.parts), depth + 1, qf)
                    self.assertTrue(all(len(p) == 1 and p in HEX for p in qf.parts[:-1]), qf)
                self.assertEqual(d.spool.data_location(small), "qf")
                self.assertEqual(d.spool.data_location(big), "df")
                self.assertEqual(d.spool.file("df" + big).parent, d.spool.file("qf" + big).parent)
                self.assertEqual(d.stop(), 0)

    def test_default_is_one_level(self):
        d = self.daemon()
        self.assertSubdirs(d, 1)

    def test_depth_change_moves_messages(self):
        """Messages left at the top (as hash_depth 0 keeps them) and two levels down are
        moved to one level by a daemon started with the default depth: messages of two
        files (qf and df) and one-file messages (the data in the qf)."""
        d = self.new_daemon(start=False)
        spool = d.spool.path
        qids = ["0000000000000001", "0000000000000002", "0000000000000003",
                "0000000000000004", "0000000000000005"]
        places = [spool, spool / "4" / "2", spool, spool, spool / "4" / "2"]
        one_file = {"0000000000000004", "0000000000000005"}
        bodies = {}
        for qid, where in zip(qids, places):
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            body = b"Subject: moved\r\n\r\nmoved " + qid.encode() + b"\r\n"
            bodies[qid] = body
            if qid in one_file:
                (where / f"qf{qid}").write_bytes(
                    qf_text(qid, len(body), f"user@{HOSTNAME}", inline=body))
            else:
                (where / f"df{qid}").write_bytes(body)
                (where / f"qf{qid}").write_bytes(qf_text(qid, len(body), f"user@{HOSTNAME}"))
        d.start()
        log = d.log()
        self.assertRegex(log, r"5 message\(s\) moved to where hash_depth 1 keeps them")
        for qid in qids:
            self.assertRegex(log, rf"{qid}: recovered, from=<moved@example\.com>, nrcpts=1")
        self.assertNotRegex(log, r"damaged queue file")
        for qid in qids:
            self.assertEqual(d.spool.data_location(qid), "qf" if qid in one_file else "df")
            self.assertEqual(d.spool.df(qid), bodies[qid], qid)
        # nothing is left where it was; what is still queued is one level down
        top = [n for n in os.listdir(spool) if re.match(r"[dq]f", n)]
        self.assertEqual(top, [])
        self.assertEqual(os.listdir(spool / "4" / "2"), [])
        for name, path in d.spool.files().items():
            if name[:2] in ("qf", "df"):
                self.assertEqual(len(path.relative_to(spool).parts), 2, path)
        self.assertEqual(d.spool.partials(), [])
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
