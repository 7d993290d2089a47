"""Output is bounded (issue 8): a client that pipelines commands and never reads the
replies must not grow the daemon. 39 MB of HELP took it to 1.36 GB: every HELP costs a
200-byte reply, and the engine queued them all. Now the engine stops reading from a
client whose queued output passes its high-water mark, so the flood waits in the kernel's
socket buffers, and the daemon's memory stays flat. Once the client reads, every reply
arrives, in order, and the session goes on.
"""

import os
import re
import select
import time
import unittest
from pathlib import Path

from ringmail_harness import IO_TIMEOUT, RingmailTestCase

FLOOD_MAX = 6 << 20          # bytes of HELP pipelined at most (~200 MB of replies)
STALL = 2.0                  # s the socket stays unwritable before the client gives up
GROWTH_MAX = 64 << 20        # what the daemon may grow by meanwhile
END_OF_HELP = b"214 2.0.0 End of HELP info\r\n"


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and every process under it (a privileged parent and its
    workers count as one daemon)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(m.group(1)) * 1024 if m else 0
    return total


class EngineOutput(RingmailTestCase):

    def setUp(self):
        # Under AddressSanitizer freed memory waits in a quarantine (256 MB by default)
        # before reuse: that would be counted as growth.
        self._asan = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = ":".join(
            x for x in (self._asan, "quarantine_size_mb=1") if x)
        super().setUp()

    def tearDown(self):
        if self._asan is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = self._asan
        super().tearDown()

    def test_help_flood_without_reading(self):
        d = self.daemon()
        c = self.session(d)
        sock = c.sock
        before = tree_rss(d.pid)
        peak = before
        flood = b"HELP\r\n" * 10000
        sent = 0
        sock.setblocking(False)
        while sent < FLOOD_MAX:
            _, writable, _ = select.select([], [sock], [], STALL)
            peak = max(peak, tree_rss(d.pid))
            if not writable:
                break  # the daemon stopped reading from us
            try:
                sent += sock.send(flood[: min(len(flood), FLOOD_MAX - sent)])
            except BlockingIOError:
                pass
        # whatever the daemon still takes in after the client stops
        deadline = time.monotonic() + STALL
        while time.monotonic() < deadline:
            peak = max(peak, tree_rss(d.pid))
            time.sleep(0.1)
        # a send may have cut a command: its rest goes out while the client reads
        tail = b"HELP\r\n"[sent % 6:] if sent % 6 else b""
        commands = (sent + len(tail)) // 6
        self.assertLess(peak - before, GROWTH_MAX,
                        f"the daemon grew from {before >> 20} MB to {peak >> 20} MB while a "
                        f"client that reads nothing pipelined {commands} HELP commands")

        # Now the client reads: every reply comes, and the session still works.
        data, got = c.buf, 0
        c.buf = b""
        deadline = time.monotonic() + 120
        while got < commands:
            readable, writable, _ = select.select([sock], [sock] if tail else [], [], IO_TIMEOUT)
            if not readable and not writable or time.monotonic() > deadline:
                self.fail(f"{got} of {commands} HELP replies, then nothing")
            if writable:
                try:
                    tail = tail[sock.send(tail):]
                except BlockingIOError:
                    pass
            if not readable:
                continue
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                self.fail(f"the server closed after {got} of {commands} HELP replies")
            data += chunk
            end = data.rfind(END_OF_HELP)
            if end >= 0:
                got += data.count(END_OF_HELP)
                data = data[end + len(END_OF_HELP):]
        self.assertEqual(got, commands)
        self.assertEqual(data, b"", "more than one reply per HELP")
        sock.setblocking(True)
        sock.settimeout(IO_TIMEOUT)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("QUIT"), 221)


if __name__ == "__main__":
    unittest.main()
