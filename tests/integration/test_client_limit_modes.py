"""FEATURE(ratecontrol) and FEATURE(conncontrol)'s arguments (features.ratecontrol,
features.conncontrol; issue 12): without `terminate` a client over its ClientRate: or
ClientConn: limit is greeted and refused at MAIL with sendmail's 452 (the check_relay line
logged at connect); under delay_checks without `nodelay`, at each RCPT (ruleset=check_rcpt);
with `terminate`, 421 at connect. Each client binds its own 127.0.0.N. And
limits.connection_rate_throttle: greetings beyond N per second wait, never refused."""

import select
import socket
import time
import unittest

from test_client_limits import ClientLimitCase

RATE_452 = "452 4.3.2 Connection rate limit exceeded."
CONNS_452 = "452 4.3.2 Too many open connections."
RATE_421 = "421 4.3.2 Connection rate limit exceeded."


class LimitModes(ClientLimitCase):

    def test_ratecontrol_without_terminate_refuses_mail(self):
        d = self.limits_daemon("ClientRate:127.0.0.2\t1\n",
                               features={"ratecontrol": True},
                               limits={"connections_per_client": 0})
        self.assertRegex(self.greet_and_quit(d, "127.0.0.2"), r"^220 ")
        c = self.client(d, "127.0.0.2")
        self.assertEqual(c.greeting.code, 220)  # greeted, not closed
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").last, RATE_452)
        self.assertEqual(c.cmd("MAIL FROM:<>").last, RATE_452)  # every MAIL
        self.assertEqual(c.cmd("RCPT TO:<postmaster>").code, 503)  # no transaction
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assertIsNotNone(d.wait_log(self.check_relay_line("127.0.0.2", RATE_452)))
        # other clients are untouched
        other = self.client(d, "127.0.0.3")
        self.assertEqual(other.ehlo().code, 250)
        self.assertEqual(other.cmd("MAIL FROM:<a@example.org>").code, 250)
        self.assertNotIn("features.ratecontrol", d.log())  # live: no "not enforced" warning

    def test_conncontrol_without_terminate_holds_the_slot(self):
        d = self.limits_daemon("ClientConn:127.0.0.4\t1\n",
                               features={"conncontrol": ["nodelay"], "delay_checks": True})
        held = self.client(d, "127.0.0.4")
        self.assertEqual(held.greeting.code, 220)
        over = self.client(d, "127.0.0.4")
        self.assertEqual(over.greeting.code, 220)
        self.assertEqual(over.ehlo().code, 250)
        # nodelay: refused at MAIL even under delay_checks
        self.assertEqual(over.cmd("MAIL FROM:<a@example.org>").last, CONNS_452)
        self.assertIsNotNone(d.wait_log(self.check_relay_line("127.0.0.4", CONNS_452)))
        # the refused session still holds a slot: with `held` gone, a third is over too
        held.cmd("QUIT")
        held.wait_closed()
        third = self.client(d, "127.0.0.4")
        self.assertEqual(third.ehlo().code, 250)
        self.assertEqual(third.cmd("MAIL FROM:<a@example.org>").last, CONNS_452)

    def test_delay_checks_without_nodelay_refuses_each_rcpt(self):
        d = self.limits_daemon("ClientRate:127.0.0.5\t1\n",
                               features={"ratecontrol": True, "delay_checks": True},
                               limits={"connections_per_client": 0})
        self.assertRegex(self.greet_and_quit(d, "127.0.0.5"), r"^220 ")
        c = self.client(d, "127.0.0.5")
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
        r = c.cmd("RCPT TO:<postmaster>")
        self.assertEqual(r.last, "452 4.3.2 <postmaster>... Connection rate limit exceeded.")
        self.assertIsNotNone(d.wait_log(
            r"ruleset=check_rcpt, arg1=<postmaster>, relay=\[127\.0\.0\.5\], "
            r"reject=452 4[.]3[.]2 <postmaster>[.][.][.] Connection rate limit exceeded[.]"))
        self.assertNotRegex(d.log(), r"ruleset=check_relay, arg1=\[127\.0\.0\.5\]")

    def test_terminate_and_connect_ok_exemption(self):
        d = self.limits_daemon("ClientRate:127.0.0.6\t1\nClientRate:127.0.0.7\t1\n"
                               "Connect:127.0.0.7\tOK\n",
                               features={"ratecontrol": ["terminate"]},
                               limits={"connections_per_client": 0})
        self.assertRegex(self.greet_and_quit(d, "127.0.0.6"), r"^220 ")
        self.assertEqual(self.greet_and_quit(d, "127.0.0.6"), RATE_421)
        self.assertIsNotNone(d.wait_log(self.check_relay_line("127.0.0.6", RATE_421)))
        # without `nodelay` the limit comes after the Connect: lookup: OK exempts the client
        for _ in range(3):
            self.assertRegex(self.greet_and_quit(d, "127.0.0.7"), r"^220 ")


class Throttle(ClientLimitCase):

    def test_connection_rate_throttle_delays_greetings(self):
        d = self.limits_daemon("# none\n", limits={"connection_rate_throttle": 2})
        start = time.monotonic()
        socks = []
        for i in range(6):  # over several clients: the throttle counts them all
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10,
                                         source_address=(f"127.0.0.{10 + i}", 0))
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        greeted = {}
        while len(greeted) < len(socks) and time.monotonic() - start < 10:
            ready, _, _ = select.select([s for s in socks if s not in greeted], [], [], 10)
            for s in ready:
                greeted[s] = (time.monotonic() - start, s.recv(512).decode())
        self.assertEqual(len(greeted), 6)
        self.assertTrue(all(text.startswith("220 ") for _, text in greeted.values()),
                        greeted.values())  # delayed, never refused
        delays = sorted(t for t, _ in greeted.values())
        self.assertLess(delays[1], 0.9)     # two in the first second
        self.assertGreater(delays[4], 0.95)  # the fifth and sixth two seconds on
        self.assertGreater(delays[5], 0.95)


if __name__ == "__main__":
    unittest.main()
