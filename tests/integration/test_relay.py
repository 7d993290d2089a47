"""No open relay: remote domains and the classic relay tricks are refused from a client
outside relay_from; local domains, relay domains (and subdomains) are accepted; a
relay_from client may relay anywhere."""

import re
import unittest

from ringmail_harness import HOSTNAME, TEST_NET, RingmailTestCase, make_message

# Each asks for routing beyond mx.test: refused with 550 5.7.1 Relaying denied
ROUTING_TRICKS = [
    f"user%host.example@{HOSTNAME}",
    f"@{HOSTNAME}:user@host.example",
    f'"user@host.example"@{HOSTNAME}',
    f"host.example!user@{HOSTNAME}",
    f'"user%host.example"@{HOSTNAME}',
    f"@{HOSTNAME},@localhost:user@host.example",
]
# Not a valid path at all: a syntax refusal (5xx), never accepted
SYNTAX_TRICKS = [f"user@host.example@{HOSTNAME}"]


class RelayDenied(RingmailTestCase):

    def setUp(self):
        super().setUp()
        # the test client (127.0.0.1) is not in relay_from
        self.start_session(relay_from=[TEST_NET], relay_domains=["relay.test"],
                           limits={"errors": 100, "error_throttle": 100})
        self.assertReply(self.c.cmd("MAIL FROM:<a@b.example>"), 250)

    def assert_reject_logged(self, reply):
        """The sendmail-style check_rcpt line names the refusal the client got."""
        rx = (r"ruleset=check_rcpt, arg1=<[^\n]*>, relay=[^,\n]*\[127\.0\.0\.1\], reject="
              + re.escape(reply.last))
        self.assertIsNotNone(self.d.wait_log(rx), f"no reject log line for {reply.last!r}")

    def test_remote_domain_denied(self):
        r = self.c.cmd("RCPT TO:<user@remote.example>")
        self.assertReply(r, 550, "5.7.1")
        self.assertEqual(r.last, "550 5.7.1 <user@remote.example>... Relaying denied")
        # sendmail's line word for word, with the message's queue id (fail2ban's
        # sendmail-reject filter reads it)
        self.assertIsNotNone(self.d.wait_log(
            r"\]: [0-9A-Za-z]{16}: ruleset=check_rcpt, arg1=<user@remote\.example>, "
            r"relay=\[127\.0\.0\.1\], "
            r"reject=550 5\.7\.1 <user@remote\.example>\.\.\. Relaying denied$"))
        # the transaction has no recipient: DATA is refused, nothing is stored
        self.assertReply(self.c.cmd("DATA"), 503)
        self.assertEqual(self.d.spool.qids(), set())

    def test_relay_tricks(self):
        for addr in ROUTING_TRICKS:
            with self.subTest(addr=addr):
                r = self.c.cmd(f"RCPT TO:<{addr}>")
                self.assertReply(r, 550, "5.7.1", r"\.\.\. Relaying denied$")
                self.assert_reject_logged(r)
        for addr in SYNTAX_TRICKS:
            with self.subTest(addr=addr):
                r = self.c.cmd(f"RCPT TO:<{addr}>")
                self.assertTrue(500 <= r.code < 600, r.text)
                # not a check_rcpt refusal: logged as sendmail's usrerr(), "<qid>: <text>"
                text = re.sub(r"^\d{3} (\d\.\d+\.\d+ )?", "", r.last)
                self.assertIsNotNone(self.d.wait_log(
                    rf"\]: [0-9A-Za-z]{{16}}: {re.escape(text)}$"), r.text)
                self.assertNotRegex(self.d.log(), rf"arg1=<{re.escape(addr)}>")
        # none of them made it into a transaction; a plain local recipient does
        self.assertReply(self.c.cmd("DATA"), 503)
        self.assertReply(self.c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250, "2.1.5")
        r354, final = self.c.data(make_message())
        qid = self.assertAccepted(final)
        qf = self.d.spool.qf_envelope(qid)
        self.assertNotIn(b"host.example", qf)
        self.assertIsNotNone(self.d.wait_log(rf"{qid}: from=<a@b\.example>, .*nrcpts=1,"))

    def test_local_and_relay_domains(self):
        for addr in (f"user@{HOSTNAME}", "user@localhost", f"user@{HOSTNAME.upper()}",
                     "user@relay.test", "user@sub.relay.test", "user@a.b.RELAY.test"):
            with self.subTest(addr=addr):
                self.assertReply(self.c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        for addr in ("user@xrelay.test", "user@relay.test.example", "user@sub.mx.test",
                     "user@test", "user@[192.0.2.1]"):
            with self.subTest(addr=addr):
                self.assertReply(self.c.cmd(f"RCPT TO:<{addr}>"), 550, "5.7.1")


class RelayFromClient(RingmailTestCase):

    def test_relay_from_client_may_relay(self):
        d = self.daemon()  # default relay_from: loopback
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail("a@b.example", ["user@remote.example"],
                                              make_message()))
        self.assertIn(b"user@remote.example", d.spool.qf_envelope(qid))

    def test_relay_from_explicit_network(self):
        d = self.daemon(relay_from=[TEST_NET, "127.0.0.0/8"])
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@remote.example>"), 250, "2.1.5")


if __name__ == "__main__":
    unittest.main()
