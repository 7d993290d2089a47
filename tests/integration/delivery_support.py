"""delivery_support.py: what the end-to-end delivery tests (test_delivery_dsn.py,
test_delivery_faults.py) share: next hops (sink.py) stopped at the end of the test, a
daemon that relays to them, a client that gives it a message with DSN parameters, and
waits on the spool, the log and the notices that come back.

    class T(DeliveryTestCase):
        def test_x(self):
            sink = self.sink()                             # 127.0.0.2, a free port
            d = self.relay(sink, queue=FAST_QUEUE)         # routing.smart_host = the sink
            qid = self.send(d, "alice@client.test", ["bob@remote.test"],
                            mail_params="RET=HDRS", rcpt_params={"bob@remote.test": "NOTIFY=NEVER"})
            raw, msg = self.notice_of(sink)                # the first message from <>, parsed
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import time

from ringmail_harness import RingmailTestCase, make_message
from sink import Sink

# Short schedules so retries happen within a test.
FAST_QUEUE = {"minimal_backoff": "1s", "maximal_backoff": "2s", "interval": "2s"}


def rcpt_line(qid: str, rcpt: str) -> str:
    """The start of sendmail's per-recipient log line, as a regex."""
    return rf"{qid}: to=<{re.escape(rcpt)}>, "


class DeliveryTestCase(RingmailTestCase):

    def sink(self, addr: str = "127.0.0.2", **kw) -> Sink:
        s = Sink(addr, **kw).start()
        self.addCleanup(s.stop)
        return s

    def relay(self, sink: Sink, **overrides):
        """A daemon whose smart host is `sink`."""
        routing = dict(overrides.pop("routing", {}), smart_host=sink.hostport)
        return self.daemon(routing=routing, **overrides)

    def send(self, d, sender: str, rcpts: list[str], mail_params: str = "",
             rcpt_params: dict[str, str] | None = None, message: bytes | None = None,
             subject: str = "test", body: str = "hello\r\n") -> str:
        """One transaction; every command must be accepted. The queue id."""
        c = self.session(d)
        params = f" {mail_params}" if mail_params else ""
        self.assertReply(c.cmd(f"MAIL FROM:<{sender}>{params}"), 250)
        for r in rcpts:
            extra = (rcpt_params or {}).get(r, "")
            self.assertReply(c.cmd(f"RCPT TO:<{r}>{' ' + extra if extra else ''}"), 250)
        if message is None:
            message = make_message(subject=subject, body=body)
        qid = self.assertAccepted(c.data(message)[1])
        c.cmd("QUIT")
        return qid

    def crash(self, d, timeout: float = 10.0) -> None:
        """kill -9, and wait until the listening port is free again: Daemon.kill() returns
        once the parent is reaped, while the engine's threads may still hold the listener a
        moment (a start() at once then fails with "port in use")."""
        d.kill()
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", d.port))
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        self.fail(f"port {d.port} still taken {timeout}s after kill -9")
            time.sleep(0.02)

    # waiting --------------------------------------------------------------
    def wait_log(self, d, pattern: str, timeout: float = 20.0, what: str = ""):
        m = d.wait_log(pattern, timeout=timeout)
        self.assertIsNotNone(m, f"no log line /{pattern}/ {what}")
        return m

    def wait_spool(self, d, pred, timeout: float = 30.0, what: str = "spool condition"):
        """Waits until pred(set of qids) holds; the qids then."""
        deadline = time.monotonic() + timeout
        while True:
            qids = d.spool.qids()
            if pred(qids):
                return qids
            if time.monotonic() > deadline:
                self.fail(f"{what}: spool holds {sorted(qids)}")
            time.sleep(0.05)

    def wait_spool_empty(self, d, timeout: float = 30.0):
        self.wait_spool(d, lambda q: not q, timeout, "the spool never became empty")

    def envelopes(self, d) -> dict[str, dict]:
        """Every committed message's envelope, by qid (a message removed meanwhile is
        skipped)."""
        out = {}
        for qid in d.spool.qids():
            try:
                out[qid] = d.spool.envelope(qid)
            except FileNotFoundError:
                pass
        return out

    # notices --------------------------------------------------------------
    @staticmethod
    def notices(sink: Sink) -> list:
        return [m for m in sink.messages if m.mail_from == ""]

    def notice_of(self, sink: Sink, n: int = 1, timeout: float = 30.0):
        """The n-th message from <> the sink accepted: (sink record, parsed message)."""
        sink.wait_until(lambda: len(self.notices(sink)) >= n, timeout, f"{n} notice(s) from <>")
        raw = self.notices(sink)[n - 1]
        return raw, email.message_from_bytes(raw.data, policy=email.policy.default)

    def report_parts(self, msg):
        """(human part, the delivery-status part's groups, the returned part) of an RFC 3464
        report, after checking its structure."""
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual(len(parts), 3, [p.get_content_type() for p in parts])
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        groups = list(parts[1].iter_parts())
        self.assertGreaterEqual(len(groups), 2, "no per-recipient group")
        self.assertIn("Reporting-MTA", groups[0])
        return parts[0], groups, parts[2]

    def rcpt_group(self, groups, rcpt: str):
        for g in groups[1:]:
            if g["Final-Recipient"] == f"rfc822; {rcpt}":
                return g
        self.fail(f"no group for {rcpt}: {[g['Final-Recipient'] for g in groups[1:]]}")
