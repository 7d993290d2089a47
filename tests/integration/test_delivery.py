"""The relay end to end: a client gives ringmaild a message, ringmaild delivers it to a real
next hop (tests/integration/sink.py, aiosmtpd-style asyncio server) found by smart host,
mailertable or MX (a real dnsmasq on loopback), retries temporary failures on the backoff
schedule, bounces permanent ones as RFC 3464 reports, and removes what it delivered."""

import os
import random
import re
import time
import unittest

from delivery_support import FAST_QUEUE, DeliveryTestCase
from dns_fixture import DnsFixture
from ringmail_harness import HOSTNAME, make_message
from sink import Delay, first_n


class Delivery(DeliveryTestCase):

    def test_smart_host(self):
        """Accepted, delivered at once, logged as sendmail does, and removed."""
        sink = self.sink()
        d = self.relay(sink)
        qid = self.send(d, "alice@client.test", ["bob@remote.test", "carol@remote.test"],
                        subject="via smart host")
        m = sink.wait_messages(1, timeout=30)[0]
        self.assertEqual(m.mail_from, "alice@client.test")
        self.assertEqual(sorted(m.rcpt_tos), ["bob@remote.test", "carol@remote.test"])
        self.assertIn(b"Subject: via smart host", m.data)
        self.assertIn(b"Received: from", m.data)  # our own Received: header went along
        for rcpt in ("bob@remote.test", "carol@remote.test"):
            line = d.wait_log(
                rf"{qid}: to=<{re.escape(rcpt)}>, delay=\d\d:\d\d:\d\d, xdelay=\d\d:\d\d:\d\d, "
                rf"mailer=relay, pri=\d+, relay=127\.0\.0\.2\. \[127\.0\.0\.2\], dsn=2\.0\.0, "
                rf"stat=Sent \(.*\)$", timeout=10)
            self.assertIsNotNone(line, f"no Sent line for {rcpt}")
        self.wait_spool_empty(d)
        self.assertEqual(len(sink.connections), 1, "both recipients went in one transaction")

    def test_mailertable(self):
        sink = self.sink()
        mt = self.tmp / "mailertable"
        mt.write_text(f"table.test esmtp:{sink.hostport}\n"
                      f".sub.test error:5.7.1:550 mail for sub.test is refused here\n")
        d = self.daemon(maps={"mailertable": str(mt)})
        self.send(d, "alice@client.test", ["bob@table.test"])
        m = sink.wait_messages(1, timeout=30)[0]
        self.assertEqual(m.rcpt_tos, ["bob@table.test"])
        self.assertIsNotNone(d.wait_log(r"to=<bob@table\.test>, .*mailer=esmtp, .*stat=Sent"))
        # an error: entry fails the recipient at once (its bounce to alice@client.test has
        # nowhere to go here: no route for client.test, it stays queued)
        self.send(d, "alice@client.test", ["x@a.sub.test"])
        self.assertIsNotNone(d.wait_log(
            r"to=<x@a\.sub\.test>, .*mailer=error, .*dsn=5\.7\.1, stat=", timeout=10))

    def test_retry_after_temporary_failure(self):
        """A 4xx to RCPT defers; the retry after the (short) backoff delivers."""
        sink = self.sink(rcpt=first_n(1, "451 4.3.0 try again later", "250 2.1.5 Ok"))
        d = self.relay(sink, queue=FAST_QUEUE)
        qid = self.send(d, "alice@client.test", ["bob@remote.test"])
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<bob@remote\.test>, .*dsn=4\.3\.0, stat=Deferred: 451 4\.3\.0 try "
            rf"again later$", timeout=20))
        env = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and env is None:
            try:
                env = d.spool.envelope(qid)
            except (FileNotFoundError, KeyError):
                time.sleep(0.05)
        sink.wait_messages(1, timeout=30)
        self.assertIsNotNone(d.wait_log(rf"{qid}: to=<bob@remote\.test>, .*stat=Sent",
                                        timeout=10))
        self.wait_spool_empty(d)

    def assert_dsn(self, msg, action, status, rcpt):
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        groups = [g for g in parts[1].iter_parts()]
        self.assertIn("Reporting-MTA", groups[0])
        rcpt_group = groups[1]
        self.assertEqual(rcpt_group["Final-Recipient"], f"rfc822; {rcpt}")
        self.assertEqual(rcpt_group["Action"], action)
        self.assertEqual(rcpt_group["Status"], status)
        return parts

    def test_permanent_failure_bounces(self):
        """A 550 to one recipient: the other is delivered, the sender gets an RFC 3464
        report (itself delivered through the same smart host, from <>), nothing stays."""
        sink = self.sink(rcpt={"bad@remote.test": "550 5.1.1 <bad@remote.test>... User unknown",
                               "*": "250 2.1.5 Ok"})
        d = self.relay(sink)
        qid = self.send(d, "alice@client.test", ["good@remote.test", "bad@remote.test"],
                        subject="will partly bounce")
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<bad@remote\.test>, .*dsn=5\.1\.1, stat=User unknown$", timeout=20))
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, ["alice@client.test"])
        self.assertEqual(msg["To"], "alice@client.test")
        self.assertIn("MAILER-DAEMON@", msg["From"])
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        parts = self.assert_dsn(msg, "failed", "5.1.1", "bad@remote.test")
        self.assertIn("User unknown", str(parts[1]))
        # the original comes back (no RET: the whole message)
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        self.assertIn("will partly bounce", str(parts[2]))
        self.wait_spool_empty(d)

    def send_to_slow_rcpt(self, **timeouts):
        """A relay (with `timeouts`) whose next hop defers slow@remote.test, and a message
        to it: (sink, daemon, qid)."""
        sink = self.sink(rcpt={"slow@remote.test": "451 4.2.1 mailbox busy", "*": "250 Ok"})
        d = self.relay(sink, queue=FAST_QUEUE, timeouts=timeouts)
        return sink, d, self.send(d, "alice@client.test", ["slow@remote.test"])

    def test_expiry_bounces(self):
        """Deferred until timeouts.queuereturn: then the recipient fails with 4.4.7."""
        sink, d, qid = self.send_to_slow_rcpt(queuereturn="3s")
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<slow@remote\.test>, .*dsn=4\.4\.7, stat=Cannot send message for "
            rf"3 seconds: 451 4\.2\.1 mailbox busy$", timeout=30))
        _, msg = self.notice_of(sink)
        self.assert_dsn(msg, "failed", "4.4.7", "slow@remote.test")
        self.wait_spool_empty(d)

    def test_delay_warning_once(self):
        """Past timeouts.queuewarn the sender gets one delay warning (Action: delayed), the
        recipient is marked W in the qf, and later attempts send no second one."""
        sink, d, qid = self.send_to_slow_rcpt(queuewarn="2s")
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: [0-9A-Za-z]{{16}}: DSN: Warning: could not send message for past "
            rf"2 seconds$", timeout=30))
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, ["alice@client.test"])
        self.assertIn("Warning", msg["Subject"])
        self.assert_dsn(msg, "delayed", "4.2.1", "slow@remote.test")
        deadline = time.monotonic() + 10
        while d.spool.envelope(qid)["rcpts"][0]["state"] != "W" and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(d.spool.envelope(qid)["rcpts"][0]["state"], "W")
        # more attempts, no second warning
        def attempts():
            return int(d.spool.envelope(qid)["attempts"])
        first = attempts()
        while attempts() < first + 2 and time.monotonic() < deadline + 20:
            time.sleep(0.2)
        self.assertGreaterEqual(attempts(), first + 2)
        self.assertEqual(len(self.notices(sink)), 1)

    def test_connection_reuse(self):
        """Messages to the same next hop one after another share one connection."""
        sink = self.sink()
        d = self.relay(sink, workers=1)  # the cache is per worker thread
        for i in range(3):
            qid = self.send(d, "alice@client.test", [f"r{i}@remote.test"])
            # the Sent line comes once the connection is back in the cache (the sink's
            # record comes as it replies, a moment earlier)
            self.assertIsNotNone(d.wait_log(rf"{qid}: to=<r{i}@remote\.test>, .*stat=Sent",
                                            timeout=30))
        # the sink counts a transaction just after its reply went out
        sink.wait_until(lambda: sum(c.transactions for c in sink.connections) == 3, timeout=10)
        self.assertEqual(len(sink.connections), 1,
                         [c.transactions for c in sink.connections])
        self.assertEqual(sink.connections[0].transactions, 3)

    def test_destination_concurrency(self):
        """Never more sessions at once to one destination than destination_concurrency
        (without the cache, whose idle connections hold no slot, a session is a
        connection the sink sees)."""
        sink = self.sink(final=Delay(0.5, "250 2.0.0 Ok"))
        d = self.relay(sink, delivery={"destination_concurrency": 2,
                                       "connection_cache_size": 0})
        for i in range(8):
            self.send(d, "alice@client.test", [f"r{i}@remote.test"])
        sink.wait_messages(8, timeout=60)
        self.assertLessEqual(sink.max_concurrent, 2)
        self.assertGreaterEqual(sink.max_concurrent, 1)

    def test_throttled_message_waits_without_writing(self):
        """A message whose destination is at destination_concurrency (1, held by a slow
        first transaction) waits in memory: its qf is not rewritten while it waits (same
        inode, mtime and ctime), and it goes as soon as the slot is free."""
        sink = self.sink(final=[Delay(4, "250 2.0.0 Ok slow"), "250 2.0.0 Ok"])
        d = self.relay(sink, delivery={"destination_concurrency": 1,
                                       "connection_cache_size": 0})
        first = self.send(d, "alice@client.test", ["slow@remote.test"])
        deadline = time.monotonic() + 10  # until its data is in: the slot is taken
        while not any(x.startswith(("DATA", "BDAT")) for c in list(sink.connections)
                      for x in list(c.commands)):
            self.assertLess(time.monotonic(), deadline, "the first session sent no data")
            time.sleep(0.05)
        qid = self.send(d, "alice@client.test", ["waits@remote.test"])
        path = d.spool.file("qf" + qid)
        before = os.stat(path)
        time.sleep(2.5)  # the slot is still taken: the message was throttled a few times
        after = os.stat(path)
        self.assertEqual((after.st_ino, after.st_mtime_ns, after.st_ctime_ns),
                         (before.st_ino, before.st_mtime_ns, before.st_ctime_ns),
                         "the waiting message's qf was rewritten")
        self.assertEqual(len(sink.messages), 0)
        self.wait_log(d, rf"{first}: to=<slow@remote\.test>, .*stat=Sent", timeout=10)
        self.wait_log(d, rf"{qid}: to=<waits@remote\.test>, .*stat=Sent", timeout=5)
        self.assertIsNone(d.wait_log(rf"{qid}: to=<waits@remote\.test>, .*stat=Deferred",
                                     timeout=0))
        self.assertEqual(sink.max_concurrent, 1)

    def test_throttled_messages_follow_the_slot(self):
        """Messages waiting for a destination at its limit go as its session ends, not at
        their next timer: 20 messages through one slot take well under their 20 one-second
        waits."""
        sink = self.sink(final=Delay(0.1, "250 2.0.0 Ok"))
        d = self.relay(sink, workers=1, delivery={"destination_concurrency": 1,
                                                  "connection_cache_size": 0})
        c = self.session(d)
        for i in range(20):
            self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
            self.assertReply(c.cmd(f"RCPT TO:<r{i}@remote.test>"), 250)
            self.assertAccepted(c.data(make_message(subject=f"m{i}"))[1])
        c.cmd("QUIT")
        sink.wait_messages(20, timeout=8)
        self.assertEqual(sink.max_concurrent, 1)
        self.wait_spool_empty(d)

    def test_max_active(self):
        """queue.max_active bounds the messages in delivery at once on a worker; the rest
        wait their turn and all get through."""
        sink = self.sink(final=Delay(0.3, "250 2.0.0 Ok"))
        d = self.relay(sink, workers=1, queue={"max_active": 1},
                       delivery={"connection_cache_size": 0})
        for i in range(4):
            self.send(d, "alice@client.test", [f"r{i}@remote.test"])
        sink.wait_messages(4, timeout=60)
        self.assertEqual(sink.max_concurrent, 1)
        self.wait_spool_empty(d)

    def test_starttls_may_and_encrypt(self):
        sink = self.sink(tls_cert=True)
        d = self.relay(sink)
        self.send(d, "alice@client.test", ["tls@remote.test"])
        m = sink.wait_messages(1, timeout=30)[0]
        self.assertIsNotNone(m.tls, "STARTTLS was offered and not used")
        self.assertIsNotNone(d.wait_log(
            r"STARTTLS=client, relay=127\.0\.0\.2, version=TLSv1\.3, verify=\w+, cipher=\S+, "
            r"bits=\d+/\d+, group=\S+, peer_cert=(RSA-\d+|ECDSA-P\d+)"))
        # encrypt to a next hop without STARTTLS: deferred, never sent in plain text
        plain = self.sink("127.0.0.3")
        d2 = self.relay(plain, delivery={"tls_policy": [{"destination": plain.hostport,
                                                         "level": "encrypt"}]})
        qid = self.send(d2, "alice@client.test", ["must@remote.test"])
        self.assertIsNotNone(d2.wait_log(rf"{qid}: to=<must@remote\.test>, .*stat=Deferred",
                                         timeout=20))
        self.assertEqual(plain.messages, [])


@unittest.skipUnless(os.geteuid() == 0, "MX delivery needs port 25 on loopback addresses (root)")
class DeliveryByMX(DeliveryTestCase):
    """Next hops found in DNS: a real dnsmasq serves the test zone, the sinks listen on
    port 25 of loopback addresses of their own (random, so that parallel runs of this
    test do not meet)."""

    def setUp(self):
        super().setUp()
        net = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.mx1, self.mx2, self.home = (f"{net}.{i}" for i in (61, 62, 63))
        self.dns = DnsFixture(f"{net}.53", workdir=self.tmp)
        self.dns.mx("dest.test", (10, "mx1.dest.test"), (20, "mx2.dest.test"))
        self.dns.a("mx1.dest.test", self.mx1)
        self.dns.a("mx2.dest.test", self.mx2)
        self.dns.null_mx("nomail.test")
        self.dns.nxdomain("nowhere.test")
        self.dns.a("client.test", self.home)
        # domains whose MX list names this host (HOSTNAME, mx.test)
        self.dns.a(HOSTNAME, "127.0.0.1")
        self.dns.mx("loop.test", (10, HOSTNAME))
        self.dns.a("loop.test", self.mx1)  # used only with routing.try_null_mx_list
        self.dns.mx("backup.test", (10, "mx2.dest.test"), (20, HOSTNAME))
        self.dns.start()
        self.addCleanup(self.dns.stop)

    def sink(self, addr, **kw):
        return super().sink(addr, port=25, **kw)

    def test_mx_preference_and_fallback(self):
        """The first MX is down (nothing listens on its address): the second gets it."""
        second = self.sink(self.mx2)
        d = self.daemon(dns={"servers": [self.dns.server]})
        qid = self.send(d, "alice@client.test", ["bob@dest.test"])
        self.assertEqual(second.wait_messages(1, timeout=30)[0].rcpt_tos, ["bob@dest.test"])
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<bob@dest\.test>, .*mailer=esmtp, .*relay=mx2\.dest\.test\. "
            rf"\[{re.escape(self.mx2)}\], dsn=2\.0\.0, stat=Sent"))
        self.assertIn(("MX", "dest.test"), self.dns.queries())

    def test_null_mx_and_nxdomain_bounce(self):
        bounce_sink = self.sink(self.home)
        d = self.daemon(dns={"servers": [self.dns.server]})
        qid = self.send(d, "alice@client.test", ["x@nomail.test"])
        self.assertIsNotNone(d.wait_log(rf"{qid}: to=<x@nomail\.test>, .*dsn=5\.1\.10, stat=",
                                        timeout=20))
        qid2 = self.send(d, "alice@client.test", ["y@nowhere.test"])
        self.assertIsNotNone(d.wait_log(rf"{qid2}: to=<y@nowhere\.test>, .*dsn=5\.1\.2, stat=",
                                        timeout=20))
        msgs = bounce_sink.wait_messages(2, timeout=30)
        self.assertTrue(all(m.mail_from == "" for m in msgs))

    def test_mx_points_back(self):
        """We are the best MX: the mail would loop, so it bounces (5.3.5, as sendmail); as a
        backup MX only the more preferred hosts are tried."""
        second = self.sink(self.mx2)
        d = self.daemon(dns={"servers": [self.dns.server]})
        qid = self.send(d, "alice@client.test", ["x@loop.test"])
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<x@loop\.test>, .*dsn=5\.3\.5, stat=Local configuration error$",
            timeout=20))
        qid2 = self.send(d, "alice@client.test", ["y@backup.test"])
        self.assertEqual(second.wait_messages(1, timeout=30)[0].rcpt_tos, ["y@backup.test"])
        self.assertIsNotNone(d.wait_log(rf"{qid2}: to=<y@backup\.test>, .*stat=Sent"))

    def test_try_null_mx_list(self):
        """confTRY_NULL_MX_LIST: as the best MX we deliver to the domain's own address
        instead of bouncing; as a backup MX nothing changes."""
        own, second = self.sink(self.mx1), self.sink(self.mx2)
        d = self.daemon(dns={"servers": [self.dns.server]},
                        routing={"try_null_mx_list": True})
        qid = self.send(d, "alice@client.test", ["x@loop.test"])
        self.assertEqual(own.wait_messages(1, timeout=30)[0].rcpt_tos, ["x@loop.test"])
        self.assertIsNotNone(d.wait_log(
            rf"{qid}: to=<x@loop\.test>, .*relay=loop\.test\. \[{re.escape(self.mx1)}\], "
            rf"dsn=2\.0\.0, stat=Sent"))
        self.assertIn(("A", "loop.test"), self.dns.queries())
        qid2 = self.send(d, "alice@client.test", ["y@backup.test"])
        self.assertEqual(second.wait_messages(1, timeout=30)[0].rcpt_tos, ["y@backup.test"])
        self.assertIsNotNone(d.wait_log(rf"{qid2}: to=<y@backup\.test>, .*stat=Sent"))
        self.assertEqual(len(own.messages), 1)


if __name__ == "__main__":
    unittest.main()
