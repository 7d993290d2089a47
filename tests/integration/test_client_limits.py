"""FEATURE(ratecontrol) and FEATURE(conncontrol) (issue 12): ClientRate: and ClientConn:
access entries, their defaults (the empty key, limits.connection_rate and
limits.connections_per_client), from several loopback addresses (each socket bound to its
own 127.0.0.N): a client over its limit gets sendmail's 421 and check_relay line, and the
other clients are not affected."""

import time
import unittest

from ringmail_harness import RingmailTestCase, SMTPConn

RATE = "421 4.3.2 Connection rate limit exceeded."
CONNS = "421 4.3.2 Too many open connections."


class ClientLimitCase(RingmailTestCase):

    def limits_daemon(self, access: str, **overrides):
        d = self.new_daemon(start=False, **overrides)
        (d.workdir / "access").write_text(access)
        d.config.setdefault("maps", {})["access"] = "access"
        d.write_config()
        return d.start()

    def client(self, d, source: str) -> SMTPConn:
        c = SMTPConn(d.port, source=source)
        self._conns.append(c)
        return c

    def greet_and_quit(self, d, source: str) -> str:
        c = self.client(d, source)
        text = c.greeting.text
        if c.greeting.code == 220:
            c.cmd("QUIT")
        c.close()
        return text

    def check_relay_line(self, addr: str, reject: str) -> str:
        return (rf"ruleset=check_relay, arg1=\[{addr}\], arg2={addr}, relay=\[{addr}\], "
                rf"reject={reject.replace('.', r'[.]')}$")


class RateControl(ClientLimitCase):

    def test_client_rate_entries_and_default(self):
        d = self.limits_daemon("ClientRate:127.0.0.2\t2\n"
                               "ClientRate:127.0.0.3\t0\n"
                               "ClientRate:\t4\n",
                               limits={"connections_per_client": 0,
                                       "connection_rate_window": "60s"})
        # 127.0.0.2: two per minute, the third is refused and logged as sendmail does
        self.assertRegex(self.greet_and_quit(d, "127.0.0.2"), r"^220 ")
        self.assertRegex(self.greet_and_quit(d, "127.0.0.2"), r"^220 ")
        self.assertEqual(self.greet_and_quit(d, "127.0.0.2"), RATE)
        self.assertIsNotNone(d.wait_log(self.check_relay_line("127.0.0.2", RATE)))
        # 0 = no limit for 127.0.0.3; the empty key's 4 for everyone else
        for _ in range(6):
            self.assertRegex(self.greet_and_quit(d, "127.0.0.3"), r"^220 ")
        for _ in range(4):
            self.assertRegex(self.greet_and_quit(d, "127.0.0.4"), r"^220 ")
        self.assertEqual(self.greet_and_quit(d, "127.0.0.4"), RATE)
        # a client's refusals do not spill over to others
        self.assertRegex(self.greet_and_quit(d, "127.0.0.5"), r"^220 ")

    def test_connection_rate_default_and_window(self):
        d = self.limits_daemon("# no ClientRate: entries\n",
                               limits={"connections_per_client": 0, "connection_rate": 1,
                                       "connection_rate_window": "2s"})
        self.assertRegex(self.greet_and_quit(d, "127.0.0.6"), r"^220 ")
        self.assertEqual(self.greet_and_quit(d, "127.0.0.6"), RATE)
        self.assertRegex(self.greet_and_quit(d, "127.0.0.7"), r"^220 ")
        # once the window has passed, the client is let in again
        time.sleep(2.6)
        self.assertRegex(self.greet_and_quit(d, "127.0.0.6"), r"^220 ")

    def test_no_access_warning_for_enforced_entries(self):
        d = self.limits_daemon("ClientRate:127.0.0.2\t2\nClientConn:\t3\nGreetPause:\t500\n"
                               "Srv_Features:\tV\n")
        log = d.log()
        # only the tag the daemon does not read is counted
        self.assertRegex(log, r"entries with other tags: accepted but not enforced yet \(1 entry")


class ConnControl(ClientLimitCase):

    def test_client_conn_entries_and_default(self):
        d = self.limits_daemon("ClientConn:127.0.0.2\t1\nClientConn:127.0.0.3\t0\n",
                               limits={"connections_per_client": 2})
        held = self.client(d, "127.0.0.2")
        self.assertEqual(held.greeting.code, 220)
        self.assertEqual(self.greet_and_quit(d, "127.0.0.2"), CONNS)
        self.assertIsNotNone(d.wait_log(self.check_relay_line("127.0.0.2", CONNS)))
        # 0: no limit for 127.0.0.3 whatever connections_per_client says
        many = [self.client(d, "127.0.0.3") for _ in range(4)]
        self.assertTrue(all(c.greeting.code == 220 for c in many))
        # the configured default (2) for a client without an entry
        two = [self.client(d, "127.0.0.4") for _ in range(2)]
        self.assertTrue(all(c.greeting.code == 220 for c in two))
        self.assertEqual(self.greet_and_quit(d, "127.0.0.4"), CONNS)
        # the slot comes back when the held session ends
        held.cmd("QUIT")
        held.wait_closed()
        for _ in range(50):
            text = self.greet_and_quit(d, "127.0.0.2")
            if text != CONNS:
                break
            time.sleep(0.05)
        self.assertRegex(text, r"^220 ")


if __name__ == "__main__":
    unittest.main()
