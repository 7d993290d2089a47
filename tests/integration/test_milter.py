"""Mail filters (sendmail's INPUT_MAIL_FILTER, docs/milter.md) with real libmilter filters:
one written with Debian's python3-milter (milter_filter.py) that takes every step and makes
every change, and opendkim signing. The daemon relays to a sink, so what reached the next
hop (header, body, sender, recipients) is what the filters made of the message."""

import os
import re
import shutil
import socket
import subprocess
import threading
import sys
import time
import unittest
from pathlib import Path

from delivery_support import DeliveryTestCase
from ringmail_harness import (NOTIFY, free_port, ipv6_loopback_available, make_message,
                              qf_decode)

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"


def have_pymilter() -> bool:
    return subprocess.run([PY, "-c", "import Milter"], capture_output=True).returncode == 0


def wait_socket(path: Path, proc, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the filter exited ({proc.returncode}) before listening")
        if time.monotonic() > deadline:
            raise AssertionError(f"the filter did not make {path}")
        time.sleep(0.05)


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class Milter(DeliveryTestCase):

    def start_filter(self, name: str = "", port: int = 0, v6: bool = False) -> Path | str:
        """milter_filter.py on a unix socket (its path), or on inet:PORT@127.0.0.1 (or
        inet6:PORT@[::1]: that spec) when a port is given; its log is self.filter_log (the
        last one started)."""
        sock = self.tmp / f"filter{name}.sock"
        spec = (f"inet6:{port}@[::1]" if v6 else f"inet:{port}@127.0.0.1") if port else f"unix:{sock}"
        self.filter_log = self.tmp / f"filter{name}.log"
        proc = subprocess.Popen([PY, str(HERE / "milter_filter.py"), spec,
                                 "--log", str(self.filter_log),
                                 "--name", name or "the test filter"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        if not port:
            wait_socket(sock, proc)
            return sock
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("::1" if v6 else "127.0.0.1", port), timeout=1).close()
                return spec
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the filter did not listen on its port")
                time.sleep(0.05)

    def filter_notes(self) -> list[str]:
        return self.filter_log.read_text().splitlines() if self.filter_log.exists() else []

    def filtered_relay(self, sock, on_fail="continue", timeouts=None, **kw):
        sink = self.sink()
        spec = sock if isinstance(sock, str) else f"unix:{sock}"
        milter = {"name": "test", "socket": spec, "on_fail": on_fail}
        if timeouts:
            milter["timeouts"] = timeouts
        d = self.relay(sink, milters=[milter], **kw)
        return sink, d

    def test_envelope_steps_refused_with_the_filters_words(self):
        sink, d = self.filtered_relay(self.start_filter())
        c = self.session(d, helo=None)
        self.assertReply(c.cmd("EHLO reject.helo"), 550, "5.7.1", r"HELO refused by the filter")
        self.assertReply(c.cmd("EHLO client.example"), 250)
        self.assertReply(c.cmd("MAIL FROM:<reject@client.test>"), 550, "5.7.1",
                         r"Sender refused by the filter")
        self.assertReply(c.cmd("MAIL FROM:<tempfail@client.test>"), 451, "4.7.1")
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<reject-rcpt@remote.test>"), 550, "5.1.1",
                         r"No such user here \(filter\)")
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        qid = self.assertAccepted(c.data(make_message(subject="plain"))[1])
        c.cmd("QUIT")
        msg = sink.wait_messages(1)[0]
        self.assertEqual(msg.rcpt_tos, ["bob@remote.test"])
        self.wait_log(d, r"Milter: from=<reject@client\.test>, reject=550 5\.7\.1 Sender refused")
        # each refusal is logged once, in sendmail's words
        self.wait_log(d, r"Milter: to=<reject-rcpt@remote\.test>, reject=550 5\.1\.1 No such user")
        self.assertEqual(d.log().count("No such user here"), 1, d.log_tail(20))
        notes = self.filter_notes()
        # the connect step carries the client and sendmail's macros
        self.assertTrue(any(n.startswith("connect [127.0.0.1] 127.0.0.1 mx.test") for n in notes),
                        notes)
        # MAIL's i macro is the message's queue id
        self.assertTrue(any(n.startswith(f"mail <alice@client.test> {qid}") for n in notes), notes)
        # our own Received: field is part of the header the filter sees
        self.assertTrue(any(n.startswith("header Received from client.example") for n in notes),
                        notes)

    def test_end_of_message_changes_reach_the_next_hop(self):
        sink, d = self.filtered_relay(self.start_filter())
        message = (b"From: alice@client.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: addrcpt delrcpt chgfrom\r\nX-Remove: me\r\n"
                   b"Message-ID: <m1@client.test>\r\n\r\nbody line\r\n")
        qid = self.send(d, "alice@client.test", ["bob@remote.test", "removed@remote.test"],
                        message=message)
        msg = sink.wait_messages(1)[0]
        self.assertEqual(msg.mail_from, "changed@client.test")
        self.assertEqual(sorted(msg.rcpt_tos), ["added@remote.test", "bob@remote.test"])
        head, body = msg.data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"X-Top: inserted at the top")
        self.assertIn(b"X-Milter: seen by the test filter", lines)
        self.assertIn(b"Subject: [filtered] addrcpt delrcpt chgfrom", lines)
        self.assertFalse(any(l.startswith(b"X-Remove") for l in lines), head)
        self.assertEqual(body, b"body line\r\n")
        self.assertTrue(any(l.startswith(b"Received: from client.example") for l in lines))
        self.wait_log(d, rf"{qid}: Milter add: header: X-Milter: seen by the test filter")
        self.wait_log(d, rf"{qid}: Milter add: rcpt: <added@remote\.test>")
        self.wait_log(d, rf"{qid}: Milter delete: rcpt <removed@remote\.test>")

    def test_body_replaced_and_big_body_read_back(self):
        sink, d = self.filtered_relay(self.start_filter())
        big = "".join(f"line {i:06d} of a body longer than one spool chunk\r\n"
                      for i in range(3000))  # ~160 KiB: read back in several chunks
        self.send(d, "alice@client.test", ["bob@remote.test"], subject="keep", body=big)
        self.send(d, "alice@client.test", ["carol@remote.test"], subject="replace", body="old\r\n")
        msgs = {m.rcpt_tos[0]: m for m in sink.wait_messages(2)}
        self.assertTrue(msgs["bob@remote.test"].data.endswith(big.encode()))
        self.assertTrue(msgs["carol@remote.test"].data.endswith(
            b"\r\n\r\nThe filter replaced this body.\r\n"))
        # the filter saw the whole big body
        eoms = [n for n in self.filter_notes() if n.startswith("eom ")]
        self.assertTrue(any(n.startswith("eom %d " % len(big)) for n in eoms), eoms[:2])

    def test_reject_and_discard_at_end_of_message(self):
        sink, d = self.filtered_relay(self.start_filter())
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        c.cmd("DATA")
        c.send(make_message(subject="eomreject") + b".\r\n")
        r = c.reply()
        self.assertEqual(r.lines, ["554-5.7.1 First line of the filter",
                                   "554 5.7.1 Second line of the filter"])
        # the session goes on: a discarded message gets a 250 and goes nowhere
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        self.assertAccepted(c.data(make_message(subject="discard"))[1])
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        self.assertAccepted(c.data(make_message(subject="third"))[1])
        c.cmd("QUIT")
        msgs = sink.wait_messages(1)
        time.sleep(1)
        self.assertEqual(len(sink.messages), 1)
        self.assertIn(b"Subject: [filtered] third", msgs[0].data)
        self.wait_log(d, r"milter=test, discard")

    def test_an_address_that_is_none_is_not_added(self):
        sink, d = self.filtered_relay(self.start_filter())
        qid = self.send(d, "alice@client.test", ["bob@remote.test"], subject="badaddr")
        msg = sink.wait_messages(1)[0]
        self.assertEqual(msg.rcpt_tos, ["bob@remote.test"])
        self.wait_log(d, rf"{qid}: Milter \(test\): address <no such thing> refused")

    def test_recipient_parameters_both_ways(self):
        sink, d = self.filtered_relay(self.start_filter())
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;bob@remote.test"), 250)
        qid = self.assertAccepted(c.data(make_message(subject="rcptparams quarantine"))[1])
        # the filter got RCPT's ESMTP parameters, and ${rcpt_addr} without brackets
        self.assertIn("rcpt <bob@remote.test> bob@remote.test NOTIFY=SUCCESS,FAILURE "
                      "ORCPT=rfc822;bob@remote.test", self.filter_notes())
        # the recipient it added carries its NOTIFY= and ORCPT=; the one with a bad NOTIFY= is
        # not added (the message is held, so its qf stays to be read)
        self.wait_log(d, rf"{qid}: milter=test, quarantine=")
        rcpts = {r["addr"]: r for r in d.spool.envelope(qid)["rcpts"]}
        self.assertEqual(sorted(rcpts), ["bob@remote.test", "param@remote.test"])
        self.assertEqual(rcpts["param@remote.test"]["notify"], NOTIFY["NEVER"])
        self.assertEqual(rcpts["param@remote.test"]["orcpt"], "rfc822;orig@remote.test")
        self.assertEqual(rcpts["bob@remote.test"]["notify"], NOTIFY["SUCCESS"] | NOTIFY["FAILURE"])
        self.wait_log(d, rf"{qid}: Milter \(test\): recipient <badparam@remote\.test> not added")

    def test_quarantine(self):
        sink, d = self.filtered_relay(self.start_filter())
        qid = self.send(d, "alice@client.test", ["bob@remote.test"], subject="quarantine")
        self.wait_log(d, rf"{qid}: milter=test, quarantine=held by the test filter")
        time.sleep(1)
        self.assertEqual(sink.messages, [])
        # the qf's q record holds the reason, and the message waits for a person
        reasons = [qf_decode(line[1:]).rstrip(" ") for line in d.spool.qf_envelope(qid).decode().split("\n")
                   if line.startswith("q")]
        self.assertEqual(reasons, ["held by the test filter"])

    def test_on_fail_when_the_filter_is_not_there(self):
        missing = self.tmp / "nobody.sock"
        for on_fail, code in (("continue", 250), ("tempfail", 451), ("reject", 550)):
            with self.subTest(on_fail=on_fail):
                sink, d = self.filtered_relay(missing, on_fail=on_fail)
                c = self.connect(d)
                greeting = c.greeting
                if on_fail == "continue":
                    self.assertEqual(greeting.code, 220)
                    self.assertReply(c.ehlo("client.example"), 250)
                    self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
                else:
                    # sendmail's F=T / F=R: nothing is accepted from this connection
                    self.assertEqual(greeting.code, 421 if code == 451 else 554, greeting.text)
                self.wait_log(d, r"Milter \(test\): error connecting to filter: .*(No such file|refused)")
                d.stop()

    def test_two_filters_in_order_the_second_sees_the_first_ones_changes(self):
        first = self.start_filter("a")
        second = self.start_filter("b", port=free_port())
        second_log = self.filter_log
        sink = self.sink()
        d = self.relay(sink, milters=[
            {"name": "b", "socket": second},       # declared first, but runs second
            {"name": "a", "socket": f"unix:{first}"}],
            input_mail_filters=["a", "b"])
        self.send(d, "alice@client.test", ["bob@remote.test"], subject="two")
        msg = sink.wait_messages(1)[0]
        head = msg.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        # b inserted its X-Top above a's, and saw a's X-Milter and changed Subject
        self.assertEqual(head[:2], [b"X-Top: inserted at the top"] * 2)
        self.assertEqual([l for l in head if l.startswith(b"X-Milter")],
                         [b"X-Milter: seen by a", b"X-Milter: seen by b"])
        self.assertIn(b"Subject: [filtered] [filtered] two", head)
        notes = second_log.read_text().splitlines()
        self.assertIn("header X-Milter seen by a", notes)
        self.assertIn("header Subject [filtered] two", notes)

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_inet6_socket(self):
        sink, d = self.filtered_relay(self.start_filter("v6", port=free_port(socket.AF_INET6, "::1"),
                                                        v6=True))
        self.send(d, "alice@client.test", ["bob@remote.test"], subject="six")
        self.assertIn(b"X-Milter: seen by v6", sink.wait_messages(1)[0].data)

    def test_filter_that_dies_mid_message(self):
        for on_fail, code in (("tempfail", 451), ("reject", 550), ("continue", 250)):
            with self.subTest(on_fail=on_fail):
                sink, d = self.filtered_relay(self.start_filter(on_fail), on_fail=on_fail)
                c = self.session(d)
                self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
                self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
                r = c.data(make_message(subject="crash"))[1]
                self.assertEqual(r.code, code, r.text)
                self.wait_log(d, r"Milter \(test\): (the filter closed the connection|error)")
                if code == 250:  # F= none: the message goes on without the filter
                    self.assertNotIn(b"X-Milter", sink.wait_messages(1)[0].data)
                    d.stop()
                    continue
                # F=T, F=R: the rest of the session is refused too, and nothing was queued
                self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), code)
                self.assertEqual(d.spool.qids(), set())
                # the daemon goes on: a new session without a filter to talk to gets F= at once
                self.assertEqual(self.connect(d).greeting.code, 421 if code == 451 else 554)
                d.stop()

    def test_timeout_applies_on_fail(self):
        sock = self.start_filter()
        for on_fail, code in (("tempfail", 451), ("reject", 550), ("continue", 250)):
            with self.subTest(on_fail=on_fail):
                sink, d = self.filtered_relay(sock, on_fail=on_fail,
                                              timeouts={"eom": "1s"})
                c = self.session(d)
                self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
                self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
                r = c.data(make_message(subject="sleep"))[1]
                self.assertEqual(r.code, code, r.text)
                self.wait_log(d, r"Milter \(test\): timeout before data read in eom")
                if code == 250:
                    msg = sink.wait_messages(1)[0]
                    self.assertNotIn(b"X-Milter", msg.data)  # the filter's changes never came
                d.stop()


class HostileFilter:
    """Not a filter: a unix socket that negotiates as libmilter does, then answers the
    connect step with `mode`: "huge" (a length of 2 GiB), "zero" (a length of 0),
    "unknown" (a reply code no milter has), "flood" (half a megabyte of replies nobody
    asked for), "stall" (half a length, then silence); or "nrbody": a filter that asks for
    no replies to body chunks (SMFIP_NR_BODY), continues every step, and stops reading at
    the first body chunk."""

    def __init__(self, path: Path, mode: str):
        self.path, self.mode = path, mode
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(16)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _packet(conn):
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return None, None
            head += chunk
        n = int.from_bytes(head, "big")
        body = b""
        while len(body) < n:
            chunk = conn.recv(n - len(body))
            if not chunk:
                return None, None
            body += chunk
        return body[:1], body[1:]

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                cmd, data = self._packet(conn)
                if cmd is None:
                    return
                if cmd == b"O":  # version 6, no actions, every step with its reply
                    protocol = 0x80000 if self.mode == "nrbody" else 0
                    conn.sendall((13).to_bytes(4, "big") + b"O" + (6).to_bytes(4, "big")
                                 + bytes(4) + protocol.to_bytes(4, "big"))
                elif self.mode == "nrbody":
                    if cmd == b"B":
                        time.sleep(30)  # reads nothing more
                        return
                    if cmd != b"D":
                        conn.sendall((1).to_bytes(4, "big") + b"c")
                elif cmd == b"C":
                    conn.sendall({
                        "huge": (0x7FFFFFFF).to_bytes(4, "big") + b"c",
                        "zero": bytes(4),
                        "unknown": (1).to_bytes(4, "big") + b"Z",
                        "flood": ((1).to_bytes(4, "big") + b"c") * 100000,
                        "stall": b"\0\0",
                    }[self.mode])
        except OSError:
            return

    def close(self):
        self.srv.close()
        for c in self.conns:
            c.close()


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class Hostile(DeliveryTestCase):

    def test_malformed_replies_get_the_filters_on_fail(self):
        reasons = {"huge": r"length", "zero": r"length", "unknown": r"'Z'|unknown",
                   "flood": r"no reply is due", "stall": r"timeout"}
        for mode, why in reasons.items():
            with self.subTest(mode=mode):
                path = self.tmp / f"hostile-{mode}.sock"
                h = HostileFilter(path, mode)
                self.addCleanup(h.close)
                d = self.daemon(milters=[{"name": "h", "socket": f"unix:{path}",
                                          "on_fail": "reject", "timeouts": {"read": "1s"}}])
                for _ in range(3):  # every session gets F=R; the daemon stays up
                    c = self.connect(d)
                    if mode != "flood":
                        self.assertEqual(c.greeting.code, 554, c.greeting.text)
                        continue
                    # the first reply answered the connect step: greeted, then F=R
                    self.assertEqual(c.greeting.code, 220, c.greeting.text)
                    self.assertReply(c.cmd("EHLO client.example"), 550, "5.7.1")
                self.wait_log(d, rf"Milter \(h\): .*({why})")
                self.assertTrue(d.alive())
                d.stop()


@unittest.skipUnless(have_pymilter(), "python3-milter is not installed")
class SlowReader(DeliveryTestCase):

    def test_a_filter_that_stops_reading_the_body_holds_one_chunk(self):
        path = self.tmp / "nrbody.sock"
        h = HostileFilter(path, "nrbody")
        self.addCleanup(h.close)
        d = self.daemon(milters=[{"name": "h", "socket": f"unix:{path}", "on_fail": "reject",
                                  "timeouts": {"send": "1s", "eom": "30s"}}])
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<alice@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bob@remote.test>"), 250)
        body = "".join(f"line {i:07d} of a body the filter never reads\r\n" for i in range(60000))
        r = c.data(make_message(subject="big", body=body))[1]
        # T=S, not T=E: the body waits for each chunk to be written, so the stall shows at
        # once and the engine holds one chunk for the filter, not the 2.7 MB
        self.assertReply(r, 550, "5.7.1")
        self.wait_log(d, r"Milter \(h\): timeout writing data in eom")
        self.assertEqual(d.spool.qids(), set())


def opendkim() -> str | None:
    return shutil.which("opendkim", path="/usr/sbin:/usr/bin")


@unittest.skipUnless(opendkim() and shutil.which("opendkim-genkey", path="/usr/sbin:/usr/bin"),
                     "opendkim is not installed")
class OpenDKIM(DeliveryTestCase):

    def test_signed_message_verifies(self):
        try:
            import dkim  # Debian's python3-dkim
        except ImportError:
            self.skipTest("python3-dkim is not installed")
        keys = self.tmp / "keys"
        keys.mkdir()
        subprocess.run(["opendkim-genkey", "-D", str(keys), "-d", "example.test", "-s", "sel"],
                       check=True)
        sock = self.tmp / "opendkim.sock"
        conf = self.tmp / "opendkim.conf"
        conf.write_text(f"Socket local:{sock}\nMode s\nDomain example.test\nSelector sel\n"
                        f"KeyFile {keys / 'sel.private'}\nSyslog no\n"
                        f"PidFile {self.tmp / 'opendkim.pid'}\n"
                        "Canonicalization relaxed/simple\nRequireSafeKeys no\n")
        proc = subprocess.Popen([opendkim(), "-f", "-x", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        wait_socket(sock, proc)
        sink = self.sink()
        d = self.relay(sink, milters=[{"name": "opendkim", "socket": f"local:{sock}",
                                       "on_fail": "tempfail"}])
        message = (b"From: alice@example.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: signed\r\nMessage-ID: <dkim1@example.test>\r\n"
                   b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nA signed body.\r\n")
        self.send(d, "alice@example.test", ["bob@remote.test"], message=message)
        msg = sink.wait_messages(1)[0]
        self.assertIn(b"DKIM-Signature:", msg.data)
        self.assertRegex(msg.data, rb"d=example\.test")
        txt = (keys / "sel.txt").read_text()
        record = "".join(re.findall(r'"([^"]*)"', txt)).encode()

        def dnsfunc(name, timeout=5):
            return record if name == b"sel._domainkey.example.test." else None

        self.assertTrue(dkim.verify(msg.data, dnsfunc=dnsfunc), msg.data[:600])
        # and a changed body no longer verifies: the signature covers it
        self.assertFalse(dkim.verify(msg.data.replace(b"A signed body", b"A forged body"),
                                     dnsfunc=dnsfunc))


if __name__ == "__main__":
    unittest.main()
