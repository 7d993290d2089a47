"""Slowloris inside DATA and BDAT (Postfix's smtpd_min_data_rate): a read of N octets adds
N / limits.min_data_rate seconds to what remains of the message's datablock deadline, never
more than timeouts.datablock ahead. A client trickling one octet at a time is cut after
about datablock (421 4.4.2, nothing stored); a client faster than the rate never is.

Skipped while the daemon does not read limits.min_data_rate (the key is core's to wire)."""

import subprocess
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message, ringmaild_path

DATABLOCK = 2        # seconds
LATEST = 20.0        # a trickle must be cut by then (without the rate: never)
TIMEOUT_REPLY = r"^421 4\.4\.2 .* Timeout waiting for input; closing connection$"


def daemon_reads_min_data_rate(workdir) -> bool:
    cfg = workdir / "probe.yaml"
    cfg.write_text(f"hostname: {HOSTNAME}\nspool: {workdir / 'probe-spool'}\n"
                   "limits:\n  min_data_rate: 500\n")
    r = subprocess.run([ringmaild_path(), "--check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    return "min_data_rate" not in r.stderr


class DataRate(RingmailTestCase):

    def setUp(self):
        super().setUp()
        if not daemon_reads_min_data_rate(self.tmp):
            self.skipTest("ringmaild does not read limits.min_data_rate yet")
        self.d = self.daemon(timeouts={"datablock": f"{DATABLOCK}s", "shutdown_grace": "5s"},
                             limits={"min_data_rate": 500})

    def trickle(self, c, octets: bytes) -> bool:
        """One octet every 0.2 s until the server answers (True) or for LATEST seconds
        (False: the client held on)."""
        c.sock.settimeout(0.2)
        deadline = time.monotonic() + LATEST
        i = 0
        while time.monotonic() < deadline:
            try:
                c.send(octets[i % len(octets):i % len(octets) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return True
            i += 1
            try:
                chunk = c.sock.recv(4096)
            except TimeoutError:
                continue
            c.buf += chunk
            if not chunk or b"\r\n" in c.buf:
                return True
        return False

    def assert_cut(self, c):
        self.assertTrue(self.trickle(c, b"slow data\r\n"),
                        f"a client sending 5 octets/s still held on after {LATEST} s")
        self.assertReply(c.reply(timeout=5), 421, "4.4.2", TIMEOUT_REPLY)
        self.assertEqual(c.wait_closed(timeout=10), b"")
        time.sleep(0.2)
        self.assertEqual(self.d.spool.qids(), set())
        self.assertEqual(self.d.spool.partials(), [])

    def test_data_trickle_is_cut(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        self.assert_cut(c)

    def test_bdat_trickle_is_cut(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{HOSTNAME}>"), 250)
        c.send(b"BDAT 100000\r\n")
        self.assert_cut(c)

    def test_refused_bdat_trickle_is_cut(self):
        c = self.session(self.d)
        c.send(b"BDAT 100000\r\n")  # no MAIL: refused once its octets are read
        self.assert_cut(c)

    def test_fast_client_is_not_cut(self):
        c = self.session(self.d)
        body = ("x" * 998 + "\r\n") * 2000  # 2 MB, far above 500 octets/s
        message = make_message(body=body)
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], message))
        self.assertEqual(self.d.spool.split_df(qid)[1], message)


if __name__ == "__main__":
    unittest.main()
