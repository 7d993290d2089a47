"""A next hop that misbehaves, end to end (issue 9, "Bad input and faults"): ringmaild
delivers to scripted next hops (sink.py) that answer garbage, send an endless line, stall
in the middle of a reply, close during DATA, refuse at each phase, or lack what the
message needs. For each: the recipient is deferred or bounced with the right code in the
log line (`dsn=..., stat=...`), nothing is lost (a deferred message stays in the spool,
its recipient pending), nothing is sent twice (the sink's records), and the daemon's
memory stays bounded. Then temporary DNS failures (SERVFAIL, no answer, an MX host
without an address) and the destination-wide behaviour: host status (a next hop that
failed is held back) and the per-destination rate."""

import re
import time
import unittest

from delivery_support import FAST_QUEUE, DeliveryTestCase, rcpt_line
from dns_fixture import DnsFixture
from ringmail_harness import asan_build
from sink import Close, Endless, Garbage, Stall

SENDER = "alice@client.test"
# every phase of the client side gives up after this long (and the next attempt comes
# after FAST_QUEUE's backoff); the server side gets the same, which our client meets easily
SHORT = "2s"
TIMEOUTS = {k: SHORT for k in ("initial", "helo", "mail", "rcpt", "datainit", "datablock",
                               "datafinal", "rset", "quit", "misc", "connect", "iconnect")}
NO_CHUNKING = ["PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "DSN",
               "ENHANCEDSTATUSCODES"]
QUIET = 4.0  # more than a retry's backoff: what did not happen by then does not


class Case:
    """One misbehaving next hop: the sink's script, and what must become of a message to
    rcpt@<name>.test: ("deferred" | "failed" | "sent", dsn, stat regex)."""

    def __init__(self, name, outcome, dsn, stat, to=None, mail_params="", diag=None, **sink):
        self.name, self.outcome, self.dsn, self.stat, self.sink_kw = name, outcome, dsn, stat, sink
        # the next hop's reply, in the bounce's Diagnostic-Code (the log's stat= is
        # sendmail's text for the status when the reply is a common one)
        self.diag = diag
        self.rcpt = to or f"rcpt@{name}.test"
        self.mail_params = mail_params


CASES = [
    # garbage, stalls, drops
    Case("garbage-greeting", "deferred", r"4\.5\.0",
         r"Deferred: protocol error: malformed reply while waiting for greeting.*",
         greeting=Garbage()),
    Case("garbage-mail", "deferred", r"4\.5\.0",
         r"Deferred: protocol error: malformed reply while waiting for MAIL reply.*",
         mail=Garbage()),
    Case("stall-greeting", "deferred", r"4\.4\.2", r"Deferred: timeout waiting for greeting",
         greeting="220-sink.test a reply whose last line never comes"),
    Case("stall-rcpt", "deferred", r"4\.4\.2", r"Deferred: timeout waiting for RCPT reply",
         rcpt=Stall()),
    Case("stall-final", "deferred", r"4\.4\.2", r"Deferred: timeout waiting for BDAT reply",
         final=Stall()),
    Case("close-in-data", "deferred", r"4\.4\.2",
         r"Deferred: connection closed by the server while waiting for end of data reply",
         final=Close(after=40), extensions=NO_CHUNKING),
    Case("close-in-bdat", "deferred", r"4\.4\.2",
         r"Deferred: connection closed by the server while waiting for BDAT reply",
         final=Close()),
    # each phase's 4xx and 5xx
    Case("greeting-421", "deferred", r"4\.3\.2", r"Deferred: 421 4\.3\.2 closing down",
         greeting="421 4.3.2 closing down"),
    Case("greeting-554", "failed", r"5\.3\.2", r"554 5\.3\.2 no service here",
         greeting="554 5.3.2 no service here"),
    Case("ehlo-500", "sent", r"2\.0\.0", r"Sent \(.*\)", ehlo="500 5.5.1 what is EHLO"),
    Case("ehlo-helo-550", "failed", r"5\.7\.1", r"Service unavailable", diag="550 5.7.1 go away",
         ehlo="500 5.5.1 what is EHLO", helo="550 5.7.1 go away"),
    Case("mail-451", "deferred", r"4\.3\.0", r"Deferred: 451 4\.3\.0 sender later",
         mail="451 4.3.0 sender later"),
    Case("mail-553", "failed", r"5\.1\.8", r"553 5\.1\.8 bad sender domain",
         mail="553 5.1.8 bad sender domain"),
    Case("rcpt-452", "deferred", r"4\.5\.3", r"Deferred: 452 4\.5\.3 too many",
         rcpt="452 4.5.3 too many"),
    Case("rcpt-550", "failed", r"5\.1\.1", r"User unknown", diag="550 5.1.1 unknown user",
         rcpt="550 5.1.1 unknown user"),
    Case("data-451", "deferred", r"4\.3\.1", r"Deferred: 451 4\.3\.1 no room for data",
         data="451 4.3.1 no room for data", extensions=NO_CHUNKING),
    Case("data-554", "failed", r"5\.5\.0", r"554 5\.5\.0 no data today",
         data="554 5.5.0 no data today", extensions=NO_CHUNKING),
    Case("final-451", "deferred", r"4\.7\.0", r"Deferred: 451 4\.7\.0 greylisted",
         final="451 4.7.0 greylisted"),
    Case("final-554", "failed", r"5\.7\.1", r"Service unavailable",
         diag="554 5.7.1 looks like spam", final="554 5.7.1 looks like spam"),
    Case("final-451-data", "deferred", r"4\.7\.0", r"Deferred: 451 4\.7\.0 greylisted",
         final="451 4.7.0 greylisted", extensions=NO_CHUNKING),
    Case("final-554-data", "failed", r"5\.7\.1", r"Service unavailable",
         diag="554 5.7.1 looks like spam",
         final="554 5.7.1 looks like spam", extensions=NO_CHUNKING),
    # what the next hop lacks
    Case("size-small", "failed", r"5\.3\.4", r"Message is too large",
         extensions=["PIPELINING", "SIZE 100", "8BITMIME", "ENHANCEDSTATUSCODES"]),
    Case("no-smtputf8", "failed", r"5\.6\.7", r"The next hop does not support SMTPUTF8",
         to="jos\u00e9@no-smtputf8.test", mail_params="SMTPUTF8",
         extensions=NO_CHUNKING[:3] + NO_CHUNKING[4:]),
]


class NextHopFaults(DeliveryTestCase):

    def test_each_fault(self):
        """Every case at once: one daemon, one next hop per case by mailertable, a sink of
        its own for the sender's domain (the bounces)."""
        home = self.sink("127.0.0.3")
        lines = [f"client.test esmtp:{home.hostport}"]
        sinks = {}
        for c in CASES:
            sinks[c.name] = self.sink(**c.sink_kw)
            lines.append(f"{c.name}.test esmtp:{sinks[c.name].hostport}")
        mt = self.tmp / "mailertable"
        mt.write_text("\n".join(lines) + "\n")
        d = self.daemon(maps={"mailertable": str(mt)}, queue=FAST_QUEUE, timeouts=TIMEOUTS)
        qids = {}
        for c in CASES:
            qids[c.name] = self.send(d, SENDER, [c.rcpt], mail_params=c.mail_params,
                                     subject=f"case {c.name}.", body="x" * 200 + "\r\n")
        for c in CASES:
            with self.subTest(case=c.name):
                word = {"sent": "Sent", "deferred": "Deferred"}.get(c.outcome, "")
                self.wait_log(d, rcpt_line(qids[c.name], c.rcpt) +
                              rf".*dsn={c.dsn}, stat={c.stat}$", timeout=30,
                              what=f"({c.outcome}{', ' + word if word else ''})")
        # the failures' bounces, each with its status
        failed = [c for c in CASES if c.outcome == "failed"]
        home.wait_messages(len(failed), timeout=30)
        for c in failed:
            with self.subTest(bounce=c.name):
                got = [m for m in home.messages if f"case {c.name}.".encode() in m.data]
                self.assertEqual(len(got), 1, f"bounces for {c.name}: {len(got)}")
                self.assertEqual(got[0].mail_from, "")
                text = got[0].data.decode("utf-8", "replace")
                self.assertRegex(text, rf"Status: {c.dsn}\r\n")
                if c.diag:
                    self.assertIn(f"Diagnostic-Code: smtp; {c.diag}\r\n", text)
        # let retries happen: then count
        conns_then = {c.name: len(sinks[c.name].connections) for c in CASES}
        time.sleep(QUIET)
        queued = self.envelopes(d)
        by_qid = {q: n for n, q in qids.items()}
        for c in CASES:
            s = sinks[c.name]
            with self.subTest(after=c.name):
                if c.outcome == "deferred":
                    self.assertIn(qids[c.name], queued, "a deferred message left the spool")
                    self.assertEqual([r["state"] for r in queued[qids[c.name]]["rcpts"]], ["P"])
                    self.assertEqual(s.messages, [], "a deferred message was accepted")
                elif c.outcome == "failed":
                    self.assertNotIn(qids[c.name], queued)
                    self.assertEqual(s.messages, [])
                    self.assertEqual(len(s.connections), conns_then[c.name],
                                     "a failed recipient was tried again")
                else:
                    self.assertNotIn(qids[c.name], queued)
                    self.assertEqual(len(s.messages), 1, "sent more than once")
        self.assertEqual(set(by_qid) & set(queued),
                         {qids[c.name] for c in CASES if c.outcome == "deferred"})
        self.assertEqual(len(home.messages), len(failed), "a notice too many")

    def test_ehlo_refused_falls_back_to_helo(self):
        sink = self.sink(ehlo="502 5.5.2 Error: command not recognized")
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bob@remote.test"])
        m = sink.wait_messages(1)[0]
        self.assertFalse(m.esmtp)
        self.assertEqual(m.helo, "mx.test")
        self.assertEqual(m.mail_options, [], "ESMTP parameters after HELO")
        cmds = [x.split()[0].upper() for x in sink.connections[0].commands]
        self.assertEqual(cmds[:2], ["EHLO", "HELO"])
        self.assertNotIn("BDAT", cmds)
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*dsn=2\.0\.0, stat=Sent")
        self.wait_spool_empty(d)

    def test_size_refused_before_mail(self):
        """SIZE too small: 5.3.4 without a MAIL command (nothing to refuse later)."""
        sink = self.sink(extensions=["PIPELINING", "SIZE 100", "ENHANCEDSTATUSCODES"])
        home = self.sink("127.0.0.3")
        mt = self.tmp / "mailertable"
        mt.write_text(f"client.test esmtp:{home.hostport}\nremote.test esmtp:{sink.hostport}\n")
        d = self.daemon(maps={"mailertable": str(mt)})
        qid = self.send(d, SENDER, ["big@remote.test"], body="y" * 500 + "\r\n")
        self.wait_log(d, rcpt_line(qid, "big@remote.test") + r".*dsn=5\.3\.4, stat=")
        cmds = [x.split()[0].upper() for c in sink.connections for x in c.commands]
        self.assertNotIn("MAIL", cmds)
        b = home.wait_messages(1)[0]
        self.assertIn(b"Status: 5.3.4", b.data)
        self.wait_spool_empty(d)

    def test_garbage_reply_quoted_safely(self):
        """The log line quotes the next hop's garbage so a person can see it, but never
        writes its control characters raw (a terminal escape, a NUL that cuts the line)."""
        sink = self.sink(mail=Garbage(b"\x1b[2J\x1b[31mEVIL\xff\r\n"))
        d = self.relay(sink, queue={"minimal_backoff": "30s", "maximal_backoff": "30s"})
        qid = self.send(d, SENDER, ["bob@remote.test"])
        line = self.wait_log(d, rcpt_line(qid, "bob@remote.test") +
                             r".*dsn=4\.5\.0, stat=Deferred: protocol error: .*$").group(0)
        raw = d.log_path.read_bytes()
        self.assertNotIn(b"\x1b", raw, "a terminal escape from the next hop went into the log")
        self.assertIn("EVIL", line, "the garbage is not shown")

    def test_garbage_8bit_logged_as_valid_utf8(self):
        """Octets of a garbage reply that are not ASCII do not go into the log raw (nor
        into a bounce's Diagnostic-Code, nor outbound_send's JSON): they are shown as '?'."""
        sink = self.sink(mail=Garbage(b"\xff\xfe EVIL\r\n"))
        d = self.relay(sink, queue={"minimal_backoff": "30s", "maximal_backoff": "30s"})
        qid = self.send(d, SENDER, ["bob@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*dsn=4\.5\.0, stat=Deferred: ")
        d.log_path.read_bytes().decode("utf-8")   # raises on a raw 0xff

    def test_garbage_with_nul_shown(self):
        """A reply line that starts with a NUL byte: the log still shows what came (a NUL
        printed with %s would end the quote: `waiting for MAIL reply: ""`)."""
        sink = self.sink(mail=Garbage(b"\x00\x01EVIL\r\n"))
        d = self.relay(sink, queue={"minimal_backoff": "30s", "maximal_backoff": "30s"})
        qid = self.send(d, SENDER, ["bob@remote.test"])
        line = self.wait_log(d, rcpt_line(qid, "bob@remote.test") +
                             r".*dsn=4\.5\.0, stat=Deferred: protocol error: .*$").group(0)
        self.assertIn("EVIL", line, "the garbage is not shown")

    def test_endless_reply_line_memory_bounded(self):
        """A next hop that answers EHLO with an endless line (64 MiB without CRLF): the
        session is given up, the message deferred, the engine's memory stays bounded."""
        sink = self.sink(ehlo=Endless())
        d = self.relay(sink, queue={"minimal_backoff": "30s", "maximal_backoff": "30s"},
                       timeouts=TIMEOUTS)
        pid = d.engine_pid
        base = rss_kib(pid)
        qid = self.send(d, SENDER, ["bob@remote.test"])
        peak = base
        deadline = time.monotonic() + 30
        line = None
        while line is None and time.monotonic() < deadline:
            peak = max(peak, rss_kib(pid))
            line = re.search(rcpt_line(qid, "bob@remote.test") + r".*dsn=(4\.\d\.\d), stat=Deferred"
                             r": (.*)$", d.log(), re.M)
            time.sleep(0.02)
        self.assertIsNotNone(line, "not deferred")
        sink.wait_until(lambda: sink.connections[0].closed is not None, 10,
                        "the endless connection to be closed by ringmaild")
        for _ in range(20):
            peak = max(peak, rss_kib(pid))
            time.sleep(0.05)
        print(f"\nendless line: engine RSS {base} KiB before, peak {peak} KiB; "
              f"{line.group(0)[-120:]}")
        if not asan_build():
            self.assertLess(peak - base, 32 * 1024, "the engine buffered the endless line")
        self.assertIn(qid, d.spool.qids())
        self.assertEqual(sink.messages, [])


class DnsFaults(DeliveryTestCase):
    """The next hop's DNS fails temporarily: the recipient is deferred (4.4.3, as sendmail
    says for a lookup that may work later) and stays queued; no connection is tried."""

    def test_temporary_dns_failures_defer(self):
        dns = DnsFixture("127.0.0.1", workdir=self.tmp)
        dns.servfail("broken.test")
        dns.blackhole("slow.test")
        dns.mx("noaddr.test", (10, "mx.noaddr.test"))   # its MX host has no address
        dns.start()
        self.addCleanup(dns.stop)
        d = self.daemon(dns={"servers": [dns.server], "timeout": "500ms", "tries": 1},
                        queue={"minimal_backoff": "30s", "maximal_backoff": "30s"})
        why = {"a@broken.test": r"SERVFAIL", "b@slow.test": r"timeout",
               "c@noaddr.test": r"no address for MX host mx\.noaddr\.test"}
        qids = {r: self.send(d, SENDER, [r]) for r in why}
        for r, qid in qids.items():
            with self.subTest(rcpt=r):
                self.wait_log(d, rcpt_line(qid, r) + r".*dsn=4\.4\.3, stat=Deferred: Name server: "
                              rf".*host name lookup failure \(.*{why[r]}.*\)$")
        queued = self.envelopes(d)
        for r, qid in qids.items():
            self.assertEqual([x["state"] for x in queued[qid]["rcpts"]], ["P"], r)


class Destination(DeliveryTestCase):

    def test_host_status(self):
        """A next hop that refused its greeting is held back for timeouts.hoststatus:
        another message for it is deferred at once ("host status" in its log line) without
        a connection; after hoststatus it is tried again, and both are delivered."""
        hold = 4.0
        sink = self.sink(greeting=["421 4.3.2 not now", "220 sink.test ESMTP"])
        d = self.relay(sink, queue={"minimal_backoff": "1s", "maximal_backoff": "1s",
                                    "interval": "1s"},
                       timeouts=dict(TIMEOUTS, hoststatus=f"{int(hold)}s"))
        q1 = self.send(d, SENDER, ["one@remote.test"])
        self.wait_log(d, rcpt_line(q1, "one@remote.test") + r".*dsn=4\.3\.2, stat=Deferred: 421")
        failed_at = sink.connections[0].opened
        q2 = self.send(d, SENDER, ["two@remote.test"])
        self.wait_log(d, rcpt_line(q2, "two@remote.test") +
                      r".*dsn=4\.\d\.\d, stat=Deferred: .*host status")
        self.assertEqual(len(sink.connections), 1, "a second connection while held back")
        msgs = sink.wait_messages(2, timeout=30)
        self.assertEqual(sorted(r for m in msgs for r in m.rcpt_tos),
                         ["one@remote.test", "two@remote.test"])
        second = sink.connections[1].opened
        self.assertGreaterEqual(second - failed_at, hold - 0.5,
                                "tried again before timeouts.hoststatus")
        self.wait_spool_empty(d)

    def test_destination_rate(self):
        """delivery.destination_rate 6 a minute (a burst of 1): the 2nd and 3rd message
        wait for their token, about 10 s apart; none is lost or sent twice."""
        sink = self.sink()
        d = self.relay(sink, queue=FAST_QUEUE, delivery={"destination_rate": 6})
        qids = [self.send(d, SENDER, [f"r{i}@remote.test"]) for i in range(3)]
        msgs = sink.wait_messages(3, timeout=60)
        times = sorted(m.time for m in msgs)
        gaps = [b - a for a, b in zip(times, times[1:])]
        print(f"\ndestination_rate 6/min: gaps between deliveries {[round(g, 1) for g in gaps]} s")
        for g in gaps:
            self.assertGreaterEqual(g, 9.0, f"faster than 6 a minute: {gaps}")
        self.wait_spool_empty(d)
        time.sleep(1)
        self.assertEqual(len(sink.messages), 3)
        for q in qids:
            self.assertEqual(len(re.findall(rf"{q}: to=<.*stat=Sent", d.log())), 1)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


if __name__ == "__main__":
    unittest.main()
