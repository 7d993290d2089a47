"""Happy path: smtplib and swaks deliver into the spool; the basic commands answer right."""

import re
import shutil
import smtplib
import socket
import subprocess
import time
import unittest

from ringmail_harness import (HOSTNAME, RingmailTestCase, SMTPConn, free_port,
                              ipv6_loopback_available, make_message)


class HappyPath(RingmailTestCase):

    def assert_stored(self, d, qid, message, rcpts, sender, msgid):
        """qf names the recipients, df = our Received: + the message as sent, log line."""
        self.assertIn(qid, d.spool.qids())
        received, rest = d.spool.split_df(qid)
        self.assertEqual(rest, message, "df must hold the message exactly as sent")
        self.assertIn(HOSTNAME.encode(), received)
        self.assertIn(qid.encode(), received, f"Received: must name the qid: {received!r}")
        self.assertTrue(received.endswith(b"\r\n"))
        env = d.spool.envelope(qid)
        self.assertEqual([r["addr"] for r in env["rcpts"]], rcpts)
        self.assertEqual(env["sender"], sender)
        self.assertEqual(env["msgid"], f"<{msgid}>")
        self.assertEqual(env["helo"], "client.example")
        self.assertEqual(env["client_addr"], "127.0.0.1")
        self.assertEqual(int(env["size"]), len(d.spool.df(qid)))
        line = d.wait_log(rf"^.*{qid}: from=<{re.escape(sender)}>, size=\d+, class=0, "
                          rf"nrcpts={len(rcpts)}, msgid=<{re.escape(msgid)}>, proto=ESMTP, "
                          rf"daemon=MTA, relay=[^,]*\[127\.0\.0\.1\].*$")
        self.assertIsNotNone(line, f"no from= log line for {qid}")
        self.assertEqual(d.spool.partials(), [])

    def test_smtplib(self):
        d = self.daemon()
        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
            code, banner = s.ehlo("client.example")
            self.assertEqual(code, 250)
            for kw in ("enhancedstatuscodes", "pipelining", "8bitmime", "size", "dsn",
                       "smtputf8", "chunking", "help"):
                self.assertTrue(s.has_extn(kw), f"EHLO lacks {kw}: {banner!r}")
            code, resp = s.mail("a@b.example")
            self.assertEqual((code, resp), (250, b"2.1.0 <a@b.example>... Sender ok"))
            for rcpt in (f"user@{HOSTNAME}", "other@localhost"):
                code, resp = s.rcpt(rcpt)
                self.assertEqual((code, resp), (250, f"2.1.5 <{rcpt}>... Recipient ok".encode()))
            message = make_message(msgid="happy1@client.example",
                                   body="line one\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n")
            code, resp = s.data(message)
            self.assertEqual(code, 250, resp)
            m = re.match(rb"2\.0\.0 ([0-9A-Za-z]+) Message accepted for delivery$", resp)
            self.assertIsNotNone(m, resp)
            qid = m.group(1).decode()
        self.assert_stored(d, qid, message, [f"user@{HOSTNAME}", "other@localhost"],
                           "a@b.example", "happy1@client.example")

    def test_swaks(self):
        swaks = shutil.which("swaks")
        if not swaks:
            self.skipTest("swaks is not installed")
        d = self.daemon()
        out = subprocess.run(
            [swaks, "--server", "127.0.0.1", "--port", str(d.port), "--to", f"user@{HOSTNAME}",
             "--from", "a@b.example", "--header", "Message-Id: <x@y>", "--timeout", "30"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        m = re.search(r"^<[-~] +250 2\.0\.0 ([0-9A-Za-z]+) Message accepted for delivery$",
                      out.stdout, re.M)
        self.assertIsNotNone(m, out.stdout)
        qid = m.group(1)
        self.assertIn(qid, d.spool.qids())
        _, rest = d.spool.split_df(qid)
        self.assertIn(b"\r\nMessage-Id: <x@y>\r\n", b"\r\n" + rest)
        self.assertIn(b"This is a test mailing", rest)  # swaks' default body
        self.assertEqual([r["addr"] for r in d.spool.envelope(qid)["rcpts"]],
                         [f"user@{HOSTNAME}"])
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<a@b\.example>, size=\d+, class=0, "
                                        rf"nrcpts=1, msgid=<x@y>, proto=ESMTP, daemon=MTA"))

    def test_commands(self):
        """Greeting, HELO, VRFY, EXPN, NOOP, HELP, RSET, null sender, QUIT."""
        d = self.daemon()
        c = self.connect(d)
        self.assertReply(c.greeting, 220, pattern=rf"^220 {re.escape(HOSTNAME)} ESMTP")
        ehlo = c.ehlo()
        self.assertReply(ehlo, 250)
        self.assertTrue(ehlo.lines[0].startswith(f"250-{HOSTNAME}"), ehlo.text)
        self.assertReply(c.cmd("HELO client.example"), 250)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd(f"VRFY user@{HOSTNAME}"), 252, "2.5.2")
        self.assertReply(c.cmd("EXPN staff"), 502, "5.7.0")
        self.assertIn(c.cmd("HELP").code, (211, 214))
        self.assertReply(c.cmd("RCPT TO:<user@mx.test>"), 503)  # no MAIL yet
        self.assertReply(c.cmd("MAIL FROM:<>"), 250, "2.1.0")
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 503)  # nested MAIL
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("DATA"), 503)  # no transaction after RSET
        self.assertReply(c.cmd("XYZZY"), 500)
        self.assertReply(c.cmd("MAIL FROM:<>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<postmaster@{HOSTNAME}>"), 250, "2.1.5")
        r354, final = c.data(make_message(subject="bounce"))
        self.assertReply(r354, 354)
        qid = self.assertAccepted(final)
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<>, size=\d+, class=0, nrcpts=1"))
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertEqual(c.wait_closed(), b"")

    def test_null_connections_are_logged_as_sendmail_does(self):
        """A client that never sends MAIL gets sendmail's "did not issue" line (fail2ban's
        sendmail-reject counts it in its extra mode), under the connection's own id; one
        that sent a message does not."""
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("QUIT"), 221)
        c.wait_closed()
        leaver = self.connect(d)
        leaver.close()
        line = (r"\]: [0-9A-Za-z]{16}: \[127\.0\.0\.1\] did not issue MAIL/EXPN/VRFY/ETRN "
                r"during connection to MTA$")
        deadline = time.monotonic() + 10
        while len(re.findall(line, d.log(), re.M)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(re.findall(line, d.log(), re.M)), 2, d.log())
        sender = self.session(d)
        self.assertAccepted(sender.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                             make_message()))
        self.assertReply(sender.cmd("QUIT"), 221)
        sender.wait_closed()
        self.assertEqual(d.stop(), 0)
        self.assertEqual(len(re.findall(line, d.log(), re.M)), 2, d.log())

    def test_two_messages_one_session(self):
        d = self.daemon()
        c = self.session(d)
        qids = []
        for i in range(2):
            msg = make_message(subject=f"n{i}", body=f"body {i}\r\n")
            qids.append(self.assertAccepted(c.send_mail("a@b.example", [f"u{i}@{HOSTNAME}"], msg)))
            self.assertEqual(d.spool.split_df(qids[-1])[1], msg)
        self.assertNotEqual(qids[0], qids[1])
        self.assertNotIn(b"u0@", d.spool.qf_envelope(qids[1]),
                         "recipients leak between transactions")

    def test_ipv6_listener(self):
        if not ipv6_loopback_available():
            self.skipTest("no IPv6 loopback")
        port6 = free_port(socket.AF_INET6, "::1")
        d = self.new_daemon(start=False)
        d.config["listen"].append({"name": "MTA6", "address": "::1", "port": port6})
        d.write_config()
        d.start()
        c = self.connect(d)  # the IPv4 one still works
        self.assertReply(c.ehlo(), 250)
        c6 = SMTPConn(port6, host="::1")
        self._conns.append(c6)
        self.assertReply(c6.greeting, 220)
        c6.ehlo()
        qid = self.assertAccepted(c6.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                               make_message(msgid="v6@client.example")))
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<a@b\.example>.*daemon=MTA6"))
        # sendmail's spelling of an IPv6 client, and the listener's name as its daemon name
        idle6 = SMTPConn(port6, host="::1")
        self._conns.append(idle6)
        idle6.cmd("QUIT")
        self.assertIsNotNone(d.wait_log(r"\]: [0-9A-Za-z]{16}: \[IPv6:::1\] did not issue "
                                        r"MAIL/EXPN/VRFY/ETRN during connection to MTA6$"))


if __name__ == "__main__":
    unittest.main()
