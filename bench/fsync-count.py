#!/usr/bin/env python3
"""bench/fsync-count.py -- fsyncs per relayed message, file and directory ones apart.

A ringmaild of the integration tests' harness (tests/integration) relays N one-recipient
messages, sent over C SMTP sessions at once, to the tests' python sink; `perf record -a -e
ext4:ext4_sync_file_enter` counts the fsyncs the engine's threads enter (io_uring's
included: the tracepoint fires in the thread that runs them), from before the first
message until the spool is empty. A directory fsync is one whose inode is another event's
parent. Needs root (perf -a) and an ext4 spool.

    cd tests/integration && RINGMAILD=$PWD/../../build/ringmaild RINGMAIL_BIN=$PWD/../../build \\
        RINGMAIL_TOOLS=$PWD/../../build/tests/tools N=400 C=8 ../../bench/fsync-count.py
    # a throttled destination: CONC=2 DELAY=0.01 (destination_concurrency, sink's delay)

Environment: N (400), C (8), W (workers, 1), CONC (delivery.destination_concurrency, 0 =
the default), DELAY (seconds the sink waits before its final reply, 0).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.getcwd())
from delivery_support import DeliveryTestCase  # noqa: E402
from ringmail_harness import make_message  # noqa: E402
from sink import Delay  # noqa: E402

N = int(os.environ.get("N", "400"))
C = int(os.environ.get("C", "8"))


class FsyncCount(DeliveryTestCase):
    def test_fsyncs(self):
        conc = int(os.environ.get("CONC", "0"))
        delay = float(os.environ.get("DELAY", "0"))
        sink = self.sink(final=Delay(delay, "250 2.0.0 Ok")) if delay else self.sink()
        d = self.relay(sink, workers=int(os.environ.get("W", "1")),
                       delivery={"destination_concurrency": conc} if conc else {})
        eng = d.engine_pid
        out = tempfile.mktemp(suffix=".perf")
        perf = subprocess.Popen(["perf", "record", "-q", "-a", "-e",
                                 "ext4:ext4_sync_file_enter", "-o", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)

        def client(k):
            c = self.session(d)
            for i in range(N // C):
                self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
                self.assertReply(c.cmd(f"RCPT TO:<r{k}-{i}@remote.test>"), 250)
                self.assertAccepted(c.data(make_message(subject="x"))[1])
            c.cmd("QUIT")
        clients = [threading.Thread(target=client, args=(k,)) for k in range(C)]
        t0 = time.monotonic()
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        sink.wait_messages(N // C * C, timeout=300)
        self.wait_spool_empty(d, timeout=120)
        elapsed = time.monotonic() - t0
        time.sleep(0.5)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        trace = subprocess.run(["perf", "script", "-i", out, "-F", "pid,tid,trace"],
                               capture_output=True, text=True).stdout
        os.unlink(out)
        ev = [m.groups() for line in trace.splitlines() if line.strip().startswith(f"{eng}/")
              for m in [re.search(r"ino (\d+) parent (\d+)", line)] if m]
        parents = {p for _, p in ev}
        dirs = sum(1 for i, _ in ev if i in parents)
        n = N // C * C
        print(f"\nmessages={n} sessions={C} fsyncs={len(ev)} per_message={len(ev) / n:.2f} "
              f"(files {(len(ev) - dirs) / n:.2f}, directories {dirs / n:.2f}) "
              f"seconds={elapsed:.1f}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
