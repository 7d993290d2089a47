"""sendmail's statistics (StatusFile, mailstats) end to end: ringmaild counts into the
statistics file only once it exists (touched, then SIGHUP), and ringmail-stats prints what
the client did: messages and kilobytes from each sender's mailer, to each delivery mailer
(a loopback sink as smart host: mailer relay), relaying denied, DISCARD and QUARANTINE from
the access map, and the C line (accepted, made, refused connections). -p prints and resets;
the human form has mailstats' columns. One daemon for the whole story (CI time)."""

import math
import os
import re
import signal
import socket
import subprocess
import time
import unittest
from pathlib import Path

from delivery_support import DeliveryTestCase
from ringmail_harness import IO_TIMEOUT, TEST_NET, make_message
from test_milter import HERE, PY, have_pymilter, wait_socket

ACCESS = """Connect:127.0.0.3          REJECT
From:drop@client.test      DISCARD
From:hold@client.test      QUARANTINE:held for review
"""
EX_NOINPUT, EX_OSERR = 66, 71
# sendmail's mailer numbers (queue/mailstats.h): the M column
LOCAL, ESMTP, RELAY = 3, 5, 8


def stats_bin() -> Path:
    from ringmail_harness import ringmaild_path
    return Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent) / \
        "ringmail-stats"


def kbytes(size: int) -> int:
    """sendmail's KBYTES(): kilobytes of 1000, rounded up, per message."""
    return math.ceil(size / 1000)


class StatsCase(DeliveryTestCase):

    def stats(self, *args: str, rc: int = 0) -> subprocess.CompletedProcess:
        p = subprocess.run([str(stats_bin()), *args], capture_output=True, text=True,
                           timeout=IO_TIMEOUT)
        self.assertEqual(p.returncode, rc, p.stderr)
        return p

    def program(self, *args: str) -> tuple[list[int], dict[int, list], list[int], list[int]]:
        """-P (or -p): the times, the rows by mailer number, the T and C lines."""
        lines = self.stats(*args).stdout.splitlines()
        times = [int(x) for x in lines[0].split()]
        rows = {}
        for line in lines[1:-2]:
            f = line.split()
            rows[int(f[0])] = [int(x) for x in f[1:8]] + f[8:]
        self.assertTrue(lines[-2].startswith(" T "), lines)
        self.assertTrue(lines[-1].startswith(" C "), lines)
        return (times, rows, [int(x) for x in lines[-2].split()[1:]],
                [int(x) for x in lines[-1].split()[1:]])

    def transaction(self, d, sender: str, rcpts: list[str], message: bytes,
                    refused: list[str] = ()) -> str:
        c = self.session(d)
        self.assertReply(c.cmd(f"MAIL FROM:<{sender}>"), 250)
        for r in rcpts:
            self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 250)
        for r in refused:
            self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 550, "5.7.1")
        reply = c.data(message)[1]
        self.assertReply(reply, 250)
        c.cmd("QUIT")
        return reply.last


class Stats(StatsCase):

    def test_counts_what_the_client_did(self):
        sink = self.sink()
        d = self.new_daemon(start=False, relay_from=[TEST_NET], relay_domains=["remote.test"],
                            maps={"access": "access"}, routing={"smart_host": sink.hostport})
        (d.workdir / "access").write_text(ACCESS)
        d.start()
        cfg = str(d.config_path)
        statfile = Path(d.config["spool"]) / "statistics"

        # no file: nothing counted, and mailstats' words for it
        self.assertIsNotNone(d.wait_log(r"statistics: .*/statistics does not exist: not "
                                        r"counting", since_start=True))
        p = self.stats("-C", cfg, rc=EX_NOINPUT)
        self.assertEqual(p.stderr, f"ringmail-stats: {statfile}: No such file or directory\n")
        self.transaction(d, "early@client.test", ["bob@remote.test"], make_message())
        sink.wait_messages(1)

        # sendmail's way to start counting: create the file; the reload picks it up
        statfile.touch()
        before = time.time()
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(rf"statistics: counting in {re.escape(str(statfile))}"))

        made_before = len(sink.connections)
        big = make_message(subject="big", body=("y" * 78 + "\r\n") * 30)
        self.transaction(d, "alice@client.test", ["bob@remote.test"], big,
                         refused=["x@evil.test", "y@evil.test"])
        self.transaction(d, "postmaster@mx.test", ["carol@remote.test"], make_message())
        self.transaction(d, "drop@client.test", ["bob@remote.test"], make_message())
        self.transaction(d, "hold@client.test", ["bob@remote.test"], make_message())
        with socket.create_connection(("127.0.0.1", d.port), timeout=IO_TIMEOUT,
                                      source_address=("127.0.0.3", 0)) as refused:
            self.assertTrue(refused.recv(512).startswith(b"550 "))
        sink.wait_messages(3)
        made = len(sink.connections) - made_before
        for rcpt in ("bob", "carol"):
            self.assertIsNotNone(d.wait_log(rf"to=<{rcpt}@remote\.test>, .*mailer=relay, "
                                            rf".*stat=Sent", since_start=True))

        # what the log says, since counting began: the sizes of the from= lines
        log = d.log(since_start=True)
        log = log[log.index("statistics: counting in"):]
        sizes = {m[0]: int(m[1]) for m in re.findall(r"from=<([^>]*)>, size=(\d+)", log)}
        # the discarded message too: accepted (250, a from= line), then dropped
        self.assertEqual(sorted(sizes), ["alice@client.test", "drop@client.test",
                                         "hold@client.test", "postmaster@mx.test"])
        esmtp_k = sum(kbytes(sizes[s]) for s in sizes if s.endswith("@client.test"))
        self.assertEqual(esmtp_k, 5)  # 2616 bytes are 3K, rounded up per message
        local_k = kbytes(sizes["postmaster@mx.test"])
        relay_k = kbytes(sizes["alice@client.test"]) + local_k

        times, rows, total, conns = self.program("-P", "-C", cfg)
        self.assertLessEqual(times[0], before + 1)
        self.assertGreaterEqual(times[1], times[0])
        # M: msgsfr, bytes_from, msgsto, bytes_to, msgsrej, msgsdis, msgsqur, Mailer
        self.assertEqual(rows, {
            LOCAL: [1, local_k, 0, 0, 0, 0, 0, "local"],
            ESMTP: [3, esmtp_k, 0, 0, 2, 1, 1, "esmtp"],
            RELAY: [0, 0, 2, relay_k, 0, 0, 0, "relay"],
        })
        self.assertEqual(total, [4, esmtp_k + local_k, 2, relay_k, 2, 1, 1])
        # every connection the daemon accepted (the refused one too), every one it made
        self.assertEqual(conns, [5, made, 1])

        # the human form: mailstats' columns, the rule, T and C
        out = self.stats("-C", cfg).stdout.splitlines()
        self.assertRegex(out[0], r"^Statistics from \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
        self.assertEqual(out[1], " M   msgsfr  bytes_from   msgsto    bytes_to  msgsrej "
                                 "msgsdis msgsqur  Mailer")
        self.assertEqual(out[3], f" 5        3 {esmtp_k:10d}K        0          0K        2"
                                 f"       1       1  esmtp")
        self.assertEqual(out[5], "=" * 69)
        self.assertEqual(out[6], f" T        4 {esmtp_k + local_k:10d}K        2 "
                                 f"{relay_k:10d}K        2       1       1")
        self.assertEqual(out[7], " C %8d %10s  %8d %10s    %6d" % (5, "", made, "", 1))
        self.assertFalse(self.stats("-o", "-C", cfg).stdout.splitlines()[1].endswith("Mailer"))
        self.assertEqual(self.stats("-P", "-o", "-f", str(statfile)).stdout.splitlines()[1],
                         f" 3        1 {local_k:10d}        0          0        0       0       0")

        # -p: the same numbers, then zero, counted since the reset
        times2, rows2, total2, conns2 = self.program("-p", "-C", cfg)
        self.assertEqual((times2[0], rows2, total2, conns2), (times[0], rows, total, conns))
        times3, rows3, total3, conns3 = self.program("-P", "-C", cfg)
        self.assertEqual((rows3, total3, conns3), ({}, [0] * 7, [0, 0, 0]))
        self.assertGreaterEqual(times3[0], times2[1] - 1)
        # and counting goes on into the same file
        self.transaction(d, "alice@client.test", ["bob@remote.test"], make_message())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, rows4, _, _ = self.program("-P", "-C", cfg)
            if rows4.get(RELAY, [0] * 3)[2] == 1:
                break
            time.sleep(0.1)
        self.assertEqual(rows4[ESMTP][0], 1)
        self.assertEqual(rows4[RELAY][2], 1)

        # a file that is not a statistics file: mailstats' words, EX_OSERR
        foreign = self.tmp / "foreign"
        foreign.write_bytes(b"\x00" * 64)
        p = self.stats("-f", str(foreign), rc=EX_OSERR)
        self.assertEqual(p.stderr, f"ringmail-stats: incorrect magic number in {foreign}\n")
        self.assertTrue(self.stats("-x", rc=64).stderr.endswith(
            "usage: ringmail-stats [-C cffile] [-c] [-P] [-f stfile] [-o] [-p]\n"))


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class FilterStats(StatsCase):
    """A mail filter's verdicts (milter_filter.py) are counted as the access map's are, into a
    file that exists when the daemon starts."""

    def test_counts_the_filters_verdicts(self):
        sock = self.tmp / "filter.sock"
        proc = subprocess.Popen([PY, str(HERE / "milter_filter.py"), f"unix:{sock}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        wait_socket(sock, proc)
        statfile = self.tmp / "statistics"
        statfile.touch()
        sink = self.sink()
        d = self.relay(sink, statistics_file=str(statfile),
                       milters=[{"name": "test", "socket": f"unix:{sock}"}])
        self.assertIsNotNone(d.wait_log(rf"statistics: counting in {re.escape(str(statfile))}",
                                        since_start=True))
        c = self.session(d, helo=None)
        self.assertReply(c.cmd("EHLO reject.helo"), 550)
        self.assertReply(c.cmd("EHLO client.example"), 250)
        self.assertReply(c.cmd("MAIL FROM:<reject@client.test>"), 550)
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<reject-rcpt@remote.test>"), 550)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        self.assertReply(c.data(make_message(subject="discard"))[1], 250)
        for subject in ("quarantine", "plain"):
            self.assertReply(c.cmd("MAIL FROM:<postmaster@mx.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
            self.assertReply(c.data(make_message(subject=subject))[1], 250)
        c.cmd("QUIT")
        sink.wait_messages(1)
        self.assertIsNotNone(d.wait_log(r"stat=Sent"))
        log = d.log(since_start=True)
        self.assertIn("milter=test, discard", log)
        self.assertIn("milter=test, quarantine=", log)
        froms = re.findall(r"from=<([^>]*)>, size=\d+", log)
        _, rows, _, conns = self.program("-P", "-f", str(statfile))
        # the refused MAIL and RCPT under the sender's mailer; the discarded message under
        # alice's (esmtp), the quarantined one under postmaster's (local)
        self.assertEqual(rows[ESMTP][0], froms.count("alice@client.test"))
        self.assertEqual(rows[ESMTP][4:7], [2, 1, 0])
        self.assertEqual(rows[LOCAL][0], 2)
        self.assertEqual(rows[LOCAL][4:7], [0, 0, 1])
        self.assertEqual(rows[RELAY][2], 1)
        # the HELO refusal: the client refused
        self.assertEqual((conns[0], conns[2]), (1, 1))


if __name__ == "__main__":
    unittest.main()
