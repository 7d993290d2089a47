"""SIGHUP reloads the configuration for new sessions; sessions already open keep the one
they started with; a broken file keeps the running configuration and says why."""

import signal
import time
import unittest

from ringmail_harness import TEST_NET, RingmailTestCase, make_message, raise_nofile


class Sighup(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.daemon(relay_from=[TEST_NET], relay_domains=["old.test"])

    def rcpt(self, c, addr) -> int:
        return c.cmd(f"RCPT TO:<{addr}>").code

    def open_session(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        return c

    def hup_until(self, addr, code, timeout=10.0):
        """Sends SIGHUP, then opens new sessions until RCPT addr gets `code` (bounded)."""
        self.d.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            c = self.open_session()
            got = self.rcpt(c, addr)
            c.cmd("QUIT")
            c.close()
            if got == code or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def test_reload_applies_to_new_sessions_only(self):
        old = self.open_session()
        self.assertEqual(self.rcpt(old, "u@old.test"), 250)
        self.d.config["relay_domains"] = ["new.test"]
        self.d.write_config()
        self.assertEqual(self.hup_until("u@new.test", 250), 250, "reload not applied")
        self.assertIsNotNone(self.d.wait_log(r"configuration reloaded"))
        new = self.open_session()
        self.assertEqual(self.rcpt(new, "u@old.test"), 550)
        self.assertEqual(self.rcpt(new, "u@new.test"), 250)
        # the session opened before the reload still has the old relay domains
        self.assertEqual(self.rcpt(old, "v@old.test"), 250)
        self.assertEqual(self.rcpt(old, "v@new.test"), 550)
        self.assertAccepted(old.data(make_message())[1])
        self.assertTrue(self.d.alive())

    def test_broken_file_keeps_running_config(self):
        self.d.write_config(text=self.d.config_path.read_text() + "bogus_key: [\n")
        self.d.signal(signal.SIGHUP)
        m = self.d.wait_log(r"reload failed, keeping the running configuration: "
                            + str(self.d.config_path).replace(".", r"\.") + r":\d+:")
        self.assertIsNotNone(m, "a failed reload is not logged with FILE:LINE")
        self.assertTrue(self.d.alive())
        c = self.open_session()
        self.assertEqual(self.rcpt(c, "u@old.test"), 250)
        self.assertEqual(self.rcpt(c, "u@new.test"), 550)
        # a later good file is picked up again
        self.d.config["relay_domains"] = ["new.test"]
        self.d.write_config()
        self.assertEqual(self.hup_until("u@new.test", 250), 250)

    def test_bad_value_on_reload(self):
        """A file that parses but fails validation also keeps the old config."""
        self.d.config["limits"] = {"recipients": "lots"}
        self.d.config["relay_domains"] = ["new.test"]
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        self.assertIsNotNone(self.d.wait_log(r"reload failed.*recipients"))
        c = self.open_session()
        self.assertEqual(self.rcpt(c, "u@new.test"), 550)
        self.assertEqual(self.rcpt(c, "u@old.test"), 250)


class ReloadConnections(RingmailTestCase):

    def test_reload_raises_limits_connections(self):
        """limits.connections applies on reload, past the value the daemon started with
        (the engine's own slot cap was that value + 256, and clients past it were closed
        without a reply or a log line)."""
        raise_nofile(4096)
        d = self.daemon(workers=1, limits={"connections": 1, "connections_per_client": 0})
        first = self.connect(d)
        self.assertEqual(first.greeting.code, 220)
        refused = self.connect(d)
        self.assertEqual(refused.greeting.code, 421, refused.greeting.text)
        d.config["limits"]["connections"] = 400
        d.write_config()
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"configuration reloaded .*\(generation 2\)"))
        conns = [self.connect(d) for _ in range(300)]
        codes = [c.greeting.code for c in conns]
        self.assertEqual(codes.count(220), 300, f"greetings: {sorted(set(codes))}")


if __name__ == "__main__":
    unittest.main()
