"""Delivery status notifications end to end (RFC 3461 parameters, RFC 3464 reports):
ringmaild relays to a real next hop (sink.py) and the notices it makes come back through
the same next hop, where Python's email package parses them. What arrives, the spool and
the log are checked; test_delivery.py covers the plain failure and expiry bounces."""

import re
import time
import unittest

from delivery_support import FAST_QUEUE, DeliveryTestCase, rcpt_line
from ringmail_harness import HOSTNAME

SENDER = "alice@client.test"
ENVID = "env+2Bid-42"           # xtext: "env+id-42"
ORCPT = "rfc822;orig+2Bbox@client.test"
USER_UNKNOWN = "550 5.1.1 <bad@remote.test>... User unknown"
# long enough for a notice to be made and delivered, were one (wrongly) due
QUIET = 3.0


class Notices(DeliveryTestCase):

    def failing_sink(self, **kw):
        return self.sink(rcpt={"bad@remote.test": USER_UNKNOWN, "*": "250 2.1.5 Ok"}, **kw)

    def test_ret_hdrs_envid_orcpt(self):
        """RET=HDRS: only the header comes back (text/rfc822-headers); ENVID comes back as
        Original-Envelope-Id and ORCPT as Original-Recipient, both xtext-decoded."""
        sink = self.failing_sink()
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bad@remote.test"], mail_params=f"RET=HDRS ENVID={ENVID}",
                        rcpt_params={"bad@remote.test": f"NOTIFY=FAILURE ORCPT={ORCPT}"},
                        subject="headers only please", body="SECRET-BODY-LINE\r\n")
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, stat=User unknown$")
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [SENDER])
        _, groups, returned = self.report_parts(msg)
        self.assertEqual(groups[0]["Original-Envelope-Id"], "env+id-42")
        g = self.rcpt_group(groups, "bad@remote.test")
        self.assertRegex(g["Original-Recipient"], r"^rfc822; ?orig\+box@client\.test$")
        self.assertEqual(g["Action"], "failed")
        self.assertEqual(g["Status"], "5.1.1")
        self.assertIn("User unknown", g["Diagnostic-Code"])
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: headers only please", str(returned))
        self.assertNotIn("SECRET-BODY-LINE", raw.data.decode("utf-8", "replace"),
                         "RET=HDRS returned the body")
        self.wait_spool_empty(d)

    def test_ret_full(self):
        """RET=FULL: the whole original comes back as message/rfc822."""
        sink = self.failing_sink()
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bad@remote.test"], mail_params="RET=FULL",
                        subject="all of it", body="THE-BODY-LINE\r\n")
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        raw, msg = self.notice_of(sink)
        _, groups, returned = self.report_parts(msg)
        self.assertNotIn("Original-Envelope-Id", groups[0], "no ENVID was given")
        self.assertNotIn("Original-Recipient", self.rcpt_group(groups, "bad@remote.test"))
        self.assertEqual(returned.get_content_type(), "message/rfc822")
        original = returned.get_payload()[0]
        self.assertEqual(original["Subject"], "all of it")
        self.assertIn("THE-BODY-LINE", original.get_content())
        self.wait_spool_empty(d)

    def test_notify_never(self):
        """NOTIFY=NEVER: the failure is logged, and the notice about the message leaves
        that recipient out; its other recipient (no NOTIFY: failures are reported) is in
        it, alone. Nothing stays queued, no second notice."""
        sink = self.sink(rcpt={"bad@remote.test": USER_UNKNOWN,
                               "worse@remote.test": "550 5.1.1 <worse@remote.test>... User "
                                                    "unknown", "*": "250 2.1.5 Ok"})
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bad@remote.test", "worse@remote.test"],
                        rcpt_params={"bad@remote.test": "NOTIFY=NEVER"})
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, stat=User unknown$")
        self.wait_log(d, rcpt_line(qid, "worse@remote.test") + r".*dsn=5\.1\.1, ")
        raw, msg = self.notice_of(sink)
        human, groups, _ = self.report_parts(msg)
        self.assertEqual([g["Final-Recipient"] for g in groups[1:]],
                         ["rfc822; worse@remote.test"])
        self.assertNotIn("bad@remote.test", human.get_content())
        self.wait_spool_empty(d)
        time.sleep(QUIET)
        self.assertEqual(len(self.notices(sink)), 1)
        self.assertEqual(sink.messages, [raw])

    def test_notify_never_logged(self):
        """An operator can tell from the log why no bounce went: a line for the message
        says no notice was made because of NOTIFY=NEVER."""
        sink = self.failing_sink()
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bad@remote.test"],
                        rcpt_params={"bad@remote.test": "NOTIFY=NEVER"})
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        self.wait_spool_empty(d)
        self.wait_log(d, rf"{qid}: <bad@remote\.test>: DSN not sent: .*NOTIFY", timeout=5)
        self.assertEqual(self.notices(sink), [])

    def test_success_relayed_without_dsn(self):
        """NOTIFY=SUCCESS to a next hop that does not offer DSN: the request cannot be
        passed on, so we tell the sender the message was relayed (Action: relayed)."""
        sink = self.sink(extensions=["PIPELINING", "SIZE 10240000", "8BITMIME",
                                     "ENHANCEDSTATUSCODES"])
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bob@remote.test"], mail_params=f"RET=HDRS ENVID={ENVID}",
                        rcpt_params={"bob@remote.test": f"NOTIFY=SUCCESS ORCPT={ORCPT}"},
                        subject="tell me")
        m = sink.wait_messages(1)[0]
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        dsn_params = ("RET=", "ENVID=", "NOTIFY=", "ORCPT=")
        self.assertFalse([o for o in m.mail_options + m.rcpt_options[0]
                          if o.upper().startswith(dsn_params)],
                         "DSN parameters to a next hop without DSN")
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*dsn=2\.0\.0, stat=Sent")
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [SENDER])
        self.assertEqual(msg["To"], SENDER)
        _, groups, returned = self.report_parts(msg)
        g = self.rcpt_group(groups, "bob@remote.test")
        self.assertEqual(g["Action"], "relayed")
        self.assertEqual(g["Status"][:2], "2.")
        self.assertEqual(groups[0]["Original-Envelope-Id"], "env+id-42")
        self.assertRegex(g["Original-Recipient"], r"^rfc822; ?orig\+box@client\.test$")
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
        self.wait_spool_empty(d)
        self.assertEqual(len(self.notices(sink)), 1)

    def dsn_hop_delivery(self):
        """A message with every DSN parameter delivered to a next hop that offers DSN:
        (daemon, sink, qid, the sink's record)."""
        sink = self.sink()   # DEFAULT_EXTENSIONS include DSN
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bob@remote.test", "carol@remote.test"],
                        mail_params=f"RET=HDRS ENVID={ENVID}",
                        rcpt_params={"bob@remote.test": f"NOTIFY=SUCCESS,FAILURE ORCPT={ORCPT}",
                                     "carol@remote.test": "NOTIFY=NEVER"})
        m = sink.wait_messages(1)[0]
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*stat=Sent")
        return d, sink, qid, m

    def test_success_passed_on_with_dsn(self):
        """NOTIFY=SUCCESS to a next hop that offers DSN: NOTIFY, ORCPT, RET and ENVID go
        along as received."""
        d, sink, qid, m = self.dsn_hop_delivery()
        opts = dict(o.split("=", 1) for o in m.mail_options)
        self.assertEqual(opts.get("RET", "").upper(), "HDRS", m.mail_options)
        self.assertEqual(opts.get("ENVID"), ENVID, m.mail_options)
        by_rcpt = dict(zip(m.rcpt_tos, m.rcpt_options))
        bob = dict(o.split("=", 1) for o in by_rcpt["bob@remote.test"])
        self.assertEqual(set(bob.get("NOTIFY", "").upper().split(",")), {"SUCCESS", "FAILURE"})
        self.assertEqual(bob.get("ORCPT", "").lower(), ORCPT.lower())
        self.assertIn("NOTIFY=NEVER", [o.upper() for o in by_rcpt["carol@remote.test"]])
        self.wait_spool_empty(d)

    def test_success_with_dsn_hop_no_notice_from_us(self):
        """...and the success notice is then the next hop's to make (RFC 3461 6.2), not
        ours (no "Return receipt" with Action: delivered from us)."""
        d, sink, qid, m = self.dsn_hop_delivery()
        self.wait_spool_empty(d)
        time.sleep(QUIET)
        self.assertEqual([n.rcpt_tos for n in self.notices(sink)], [],
                         "we made a notice the next hop owes")
        self.assertEqual(len(sink.messages), 1)

    def test_ret_hdrs_without_dsn_next_hop_still_returns_headers(self):
        """The failure happens here (a 550 from a next hop without DSN): our own bounce
        still honours RET=HDRS and ENVID, which we keep in the queue file."""
        sink = self.failing_sink(extensions=["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"])
        d = self.relay(sink)
        qid = self.send(d, SENDER, ["bad@remote.test"], mail_params=f"RET=HDRS ENVID={ENVID}",
                        body="SECRET-BODY-LINE\r\n")
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        raw, msg = self.notice_of(sink)
        _, groups, returned = self.report_parts(msg)
        self.assertEqual(groups[0]["Original-Envelope-Id"], "env+id-42")
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"SECRET-BODY-LINE", raw.data)


class DelayWarnings(DeliveryTestCase):
    """Delay warnings follow each recipient's NOTIFY (test_delivery.py checks the warning
    itself and that it comes once)."""

    BUSY = "451 4.2.1 mailbox busy"

    def test_delay_warning_per_notify(self):
        """Three recipients, all deferred past queuewarn: the one without NOTIFY and the
        one with NOTIFY=DELAY are in the warning, the one with NOTIFY=FAILURE is not."""
        sink = self.sink(rcpt={"*": self.BUSY, SENDER: "250 2.1.5 Ok"})
        d = self.relay(sink, queue=FAST_QUEUE, timeouts={"queuewarn": "2s"})
        rcpts = ["plain@remote.test", "fail-only@remote.test", "delay@remote.test"]
        qid = self.send(d, SENDER, rcpts,
                        rcpt_params={"fail-only@remote.test": "NOTIFY=FAILURE",
                                     "delay@remote.test": "NOTIFY=DELAY"})
        self.wait_log(d, rf"{qid}: \w+: DSN: Warning: could not send message", timeout=30)
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [SENDER])
        _, groups, returned = self.report_parts(msg)
        self.assertEqual(sorted(g["Final-Recipient"] for g in groups[1:]),
                         ["rfc822; delay@remote.test", "rfc822; plain@remote.test"])
        for g in groups[1:]:
            self.assertEqual((g["Action"], g["Status"]), ("delayed", "4.2.1"))
            self.assertIn("Will-Retry-Until", g)
        self.assertEqual(returned.get_content_type(), "text/rfc822-headers")
        states = {r["addr"]: r["state"] for r in d.spool.envelope(qid)["rcpts"]}
        self.assertEqual(states, {"plain@remote.test": "W", "fail-only@remote.test": "P",
                                  "delay@remote.test": "W"})

    def test_no_delay_warning_to_null_sender(self):
        """A message from <> that waits past queuewarn: no warning to anyone (never a
        notice to <>, and a delay is no reason to tell the postmaster); the log says so."""
        sink = self.sink(rcpt={"*": self.BUSY})
        d = self.relay(sink, queue=FAST_QUEUE, timeouts={"queuewarn": "2s"})
        qid = self.send(d, "", ["slow@remote.test"])
        self.wait_log(d, rf"{qid}: DSN not sent: .+", timeout=30)
        time.sleep(QUIET)
        self.assertEqual(sink.messages, [])
        self.assertEqual(d.spool.qids(), {qid}, "a notice was queued")
        self.assertNotIn("DSN: Warning", d.log())

    def test_no_delay_warning_to_null_sender_logged_once(self):
        """...and says so once, not at every later attempt (with the defaults that would
        be about 116 lines over the 5 days a message from <> may wait)."""
        sink = self.sink(rcpt={"*": self.BUSY})
        d = self.relay(sink, queue=FAST_QUEUE, timeouts={"queuewarn": "2s"})
        qid = self.send(d, "", ["slow@remote.test"])
        self.wait_log(d, rf"{qid}: DSN not sent: .+", timeout=30)
        attempts = int(d.spool.envelope(qid)["attempts"])
        deadline = time.monotonic() + 20
        while int(d.spool.envelope(qid)["attempts"]) < attempts + 2:
            self.assertLess(time.monotonic(), deadline, "no further attempts")
            time.sleep(0.2)
        self.assertEqual(len(re.findall(rf"{qid}: DSN not sent", d.log())), 1)


class NullSender(DeliveryTestCase):
    """Never a notice to <>: a failed message from <> goes once to the postmaster (a
    double bounce); a failed double bounce is dropped with a log line."""

    def test_double_bounce_queued_for_local_postmaster(self):
        """With the default config our hostname is a local domain: the double bounce to
        postmaster@<hostname> waits in the queue for local delivery (a later issue). What
        is checkable: it is a committed message in the spool, from <>, to the postmaster,
        envelope daemon "double-bounce", and its content is a report about the failure."""
        sink = self.sink(rcpt={"*": "550 5.1.1 no such user here"})
        d = self.relay(sink)
        qid = self.send(d, "", ["bad@remote.test"], subject="a bounce that bounces")
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        qids = self.wait_spool(d, lambda q: qid not in q and len(q) == 1, 20,
                               "the failed message is not replaced by one double bounce")
        (dbl,) = qids
        self.wait_log(d, rf"{qid}: {dbl}: DSN: ", what="(the double bounce is the failed "
                                                     "message's own notice)")
        env = d.spool.envelope(dbl)
        self.assertEqual(env["sender"], "")
        self.assertEqual(env["daemon"], "double-bounce")
        self.assertEqual([r["addr"] for r in env["rcpts"]], [f"postmaster@{HOSTNAME}"])
        self.assertEqual(env["rcpts"][0]["state"], "P")
        # postmaster is no user here: the harness's luser_relay (where nothing listens)
        self.wait_log(d, rf"{dbl}: to=<postmaster@{re.escape(HOSTNAME)}>, .*stat=Deferred")
        data = d.spool.df(dbl).decode("utf-8", "replace")
        self.assertIn("Postmaster notify", data)
        self.assertIn("Final-Recipient: rfc822; bad@remote.test", data)
        self.assertEqual(sink.messages, [], "something was delivered to the failing next hop")
        # once: a restart (recovery, a new attempt) does not make another one
        d.stop()
        d.start()
        time.sleep(QUIET)
        self.assertEqual(d.spool.qids(), {dbl})

    def postmaster_routed(self, sink):
        """Our hostname is not a local domain here, so postmaster@<hostname> goes to the
        smart host like any address: the double bounce can be read at the sink."""
        return self.relay(sink, local_domains=["localhost"], queue=FAST_QUEUE)

    def test_double_bounce_delivered_to_postmaster(self):
        sink = self.sink(rcpt={"bad@remote.test": USER_UNKNOWN, "*": "250 2.1.5 Ok"})
        d = self.postmaster_routed(sink)
        qid = self.send(d, "", ["bad@remote.test"], subject="from the null sender")
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [f"postmaster@{HOSTNAME}"])
        self.assertIn("Postmaster notify", msg["Subject"])
        _, groups, returned = self.report_parts(msg)
        self.assertEqual(self.rcpt_group(groups, "bad@remote.test")["Action"], "failed")
        self.assertIn("from the null sender", str(returned))
        self.wait_spool_empty(d)
        time.sleep(QUIET)
        self.assertEqual(len(sink.messages), 1, "more than one double bounce")

    def test_failed_double_bounce_dropped(self):
        """Everything fails, the postmaster too: the double bounce fails and is dropped
        with a log line; no third notice, nothing left in the queue."""
        sink = self.sink(rcpt={"*": "550 5.1.1 nobody here"})
        d = self.postmaster_routed(sink)
        qid = self.send(d, "", ["bad@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bad@remote.test") + r".*dsn=5\.1\.1, ")
        m = self.wait_log(d, rf"(\w+): to=<postmaster@{re.escape(HOSTNAME)}>, .*dsn=5\.1\.1, ")
        dbl = m.group(1)
        self.wait_log(d, rf"{dbl}: DSN not sent: .+")
        self.wait_spool_empty(d)
        time.sleep(QUIET)
        self.assertEqual(sink.messages, [])
        self.assertEqual(len(re.findall(r"to=<postmaster@", d.log())), 1,
                         "the postmaster was tried for more than one notice")

    def test_bounce_to_failing_sender_goes_to_postmaster(self):
        """A bounce (from <>) that fails is reported once to the postmaster."""
        sink = self.sink(rcpt={"bad@remote.test": USER_UNKNOWN,
                               SENDER: "550 5.1.1 sender gone", "*": "250 2.1.5 Ok"})
        d = self.postmaster_routed(sink)
        self.send(d, SENDER, ["bad@remote.test"])
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [f"postmaster@{HOSTNAME}"])
        _, groups, _ = self.report_parts(msg)
        self.assertEqual(self.rcpt_group(groups, SENDER)["Status"], "5.1.1")
        self.wait_spool_empty(d)


class DurableNotice(DeliveryTestCase):

    def test_bounce_survives_kill_9(self):
        """A bounce is a queued message like any other: it waits in the spool while its
        next hop defers it, and after kill -9 and a restart it is delivered, once; the
        original, whose failure was recorded, is not tried again."""
        hold = [True]

        def rcpt(conn, addr):
            if addr == "bad@remote.test":
                return USER_UNKNOWN
            if addr == SENDER and hold[0]:
                return "451 4.3.0 mailbox busy"
            return "250 2.1.5 Ok"

        sink = self.sink(rcpt=rcpt)
        d = self.relay(sink, queue=FAST_QUEUE)
        qid = self.send(d, SENDER, ["bad@remote.test"], subject="durable bounce")
        line = self.wait_log(d, rf"{qid}: (\w+): DSN: User unknown")
        notice = line.group(1)
        self.wait_log(d, rcpt_line(notice, SENDER) + r".*dsn=4\.3\.0, stat=Deferred")
        self.wait_spool(d, lambda q: q == {notice}, 20, "only the notice should be queued")
        env = d.spool.envelope(notice)
        self.assertEqual((env["sender"], env["daemon"]), ("", "bounce"))
        self.assertEqual([(r["addr"], r["state"]) for r in env["rcpts"]], [(SENDER, "P")])
        self.crash(d)
        hold[0] = False
        d.start()
        self.wait_log(d, rf"{notice}: recovered", timeout=10)
        raw, msg = self.notice_of(sink)
        self.assertEqual(raw.rcpt_tos, [SENDER])
        self.assertIn("durable bounce", str(msg))
        self.wait_log(d, rcpt_line(notice, SENDER) + r".*stat=Sent")
        self.wait_spool_empty(d)
        time.sleep(QUIET)
        self.assertEqual(len(sink.messages), 1)
        self.assertEqual(len(re.findall(rf"{qid}: to=<bad@remote\.test>", d.log())), 1,
                         "the recorded failure was attempted again")


if __name__ == "__main__":
    unittest.main()
