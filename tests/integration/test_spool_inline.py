"""One file per small message (docs/queue.md): a message whose data (our Received: + the
message as sent) is smaller than the spool's 64 KiB write chunk is its qf alone, the
envelope ending in a line `=` followed by exactly the L record's number of octets of data;
a larger one keeps the two files, a qf ending in `.` and a df. A one-file message survives a
restart as it is; one whose data was cut short is set aside as Qf<qid> at start-up."""

import re
import unittest

from ringmail_harness import (HOSTNAME, WRITE_CHUNK, RingmailTestCase, make_message,
                              parse_qf, split_qf)

SENDER = "a@b.example"
# no alias nor user of this machine: accepted, and it waits in the queue (routing.luser_relay
# of the harness's config points at a port where nothing listens)
RCPT = f"inline-waits@{HOSTNAME}"


def message_of(size: int, subject: str) -> bytes:
    """A message of exactly `size` octets, CRLF lines of at most 81 octets."""
    head = f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: {subject}\r\n\r\n".encode()
    left = size - len(head)
    if left < 2:
        raise ValueError(f"{size} octets is too small for a message")
    full, rest = divmod(left, 80)
    if rest == 1:  # no line is one octet long: one line of 81 instead
        full, rest = full - 1, 81
    body = (b"x" * 78 + b"\r\n") * full + (b"y" * (rest - 2) + b"\r\n" if rest else b"")
    msg = head + body
    assert len(msg) == size, (len(msg), size)
    return msg


class SpoolInline(RingmailTestCase):

    def files_of(self, d, qid: str) -> list[str]:
        return sorted(n for n in d.spool.names() if qid in n)

    def send(self, d, message: bytes, mail_params: str = "") -> str:
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail(SENDER, [RCPT], message, mail_params))
        c.cmd("QUIT")
        return qid

    def assertOneFile(self, d, qid: str, message: bytes) -> bytes:
        """The message is its qf alone, ending in `=` and the data (our Received: and the
        message as sent, to the end of the file); the data."""
        self.assertEqual(self.files_of(d, qid), ["qf" + qid])
        raw = d.spool.qf(qid)
        head, data = split_qf(raw)
        self.assertTrue(head.endswith(b"\n=\n"), head[-200:])
        self.assertIsNotNone(data)
        env = parse_qf(raw)  # checks the data's length against the L record too
        self.assertEqual(env["qid"], qid)
        self.assertEqual(env["inline_data"], data)
        self.assertEqual(int(env["size"]), len(data))
        self.assertEqual([r["addr"] for r in env["rcpts"]], [RCPT])
        received, rest = d.spool.split_df(qid)
        self.assertEqual(rest, message, "the data must hold the message exactly as sent")
        self.assertIn(qid.encode(), received, f"Received: must name the qid: {received!r}")
        self.assertEqual(raw, head + received + message)
        self.assertEqual(d.spool.data_location(qid), "qf")
        return data

    def assertTwoFiles(self, d, qid: str, message: bytes) -> bytes:
        """The message is a qf ending in `.` and a df holding the data; the data."""
        self.assertEqual(self.files_of(d, qid), ["df" + qid, "qf" + qid])
        raw = d.spool.qf(qid)
        self.assertTrue(raw.endswith(b"\n.\n"), raw[-200:])
        env = parse_qf(raw)
        self.assertIsNone(env["inline_data"])
        data = d.spool.file("df" + qid).read_bytes()
        self.assertEqual(int(env["size"]), len(data))
        received, rest = d.spool.split_df(qid)
        self.assertEqual(received + rest, data)
        self.assertEqual(rest, message, "the df must hold the message exactly as sent")
        self.assertEqual(d.spool.data_location(qid), "df")
        return data

    def test_small_message_is_one_file(self):
        d = self.daemon()
        # 8-bit octets that are not UTF-8, and lines that look like the qf's end markers
        # ("." dot-stuffed on the wire, "=" as is): all of it is data
        body = (b"caf\xe9 \xff\xfe\x80 8-bit, not UTF-8\r\n.\r\n=\r\nV1\r\n"
                + (b"s" * 62 + b"\r\n") * 15)
        message = make_message(subject="small") + body
        self.assertLess(abs(len(message) - 1024), 200)  # about 1 KiB
        qid = self.send(d, message, " BODY=8BITMIME")
        data = self.assertOneFile(d, qid, message)
        self.assertLess(len(data), WRITE_CHUNK)
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<{re.escape(SENDER)}>, "
                                        rf"size={len(data)}, class=0, nrcpts=1,"))
        self.assertEqual(d.spool.partials(), [])

    def test_large_message_keeps_its_df(self):
        d = self.daemon()
        message = message_of(100 * 1024, "large")
        qid = self.send(d, message)
        data = self.assertTwoFiles(d, qid, message)
        self.assertGreaterEqual(len(data), WRITE_CHUNK)
        self.assertIsNotNone(d.wait_log(rf"{qid}: from=<{re.escape(SENDER)}>, "
                                        rf"size={len(data)}, class=0, nrcpts=1,"))
        self.assertEqual(d.spool.partials(), [])

    def test_write_chunk_boundary(self):
        """Data of 65535 octets is one file, of 65536 (a full chunk) two."""
        d = self.daemon()
        # our Received: header's length, from a first message sent the same way
        probe = self.send(d, message_of(500, "probe"))
        hlen = len(d.spool.split_df(probe)[0])
        for want, where in ((WRITE_CHUNK - 1, "qf"), (WRITE_CHUNK, "df")):
            with self.subTest(data=want):
                for _ in range(3):  # the header's length may change (the date's day: 9 -> 10)
                    message = message_of(want - hlen, f"boundary {want}")
                    qid = self.send(d, message)
                    received, _ = d.spool.split_df(qid)
                    if len(received) == hlen:
                        break
                    hlen = len(received)
                else:
                    self.fail("the Received: header's length kept changing")
                size = int(d.spool.envelope(qid)["size"])
                self.assertEqual(size, want)
                if where == "qf":
                    self.assertOneFile(d, qid, message)
                else:
                    self.assertTwoFiles(d, qid, message)

    def test_one_file_message_survives_a_restart(self):
        d = self.daemon()
        message = make_message(subject="restart", body="kept over a restart\r\n")
        qid = self.send(d, message)
        data = self.assertOneFile(d, qid, message)
        # tried once and deferred (nothing listens where it goes): its qf updated in place
        self.assertIsNotNone(d.wait_log(rf"{qid}: to=<{re.escape(RCPT)}>, .*stat=Deferred",
                                        timeout=30), "no deferral logged")
        self.assertEqual(d.stop(), 0)
        self.assertEqual(self.files_of(d, qid), ["qf" + qid])
        d.start()
        log = d.log(since_start=True)
        self.assertRegex(log, rf"{qid}: recovered, from=<{re.escape(SENDER)}>, nrcpts=1, "
                              rf"size={len(data)}")
        self.assertRegex(log, r"spool .*: 1 message\(s\) queued, 0 partial file\(s\) removed, "
                              r"0 damaged")
        self.assertNotIn("damaged queue file", log)
        self.assertEqual([n for n in d.spool.names() if n.startswith("Qf")], [])
        self.assertEqual(d.spool.qids(), {qid})
        self.assertEqual(self.assertOneFile(d, qid, message), data)
        self.assertGreaterEqual(int(d.spool.envelope(qid)["attempts"]), 1)

    def test_truncated_one_file_message_set_aside(self):
        d = self.daemon()
        message = make_message(subject="cut short", body="this data loses its end\r\n")
        qid = self.send(d, message)
        data = self.assertOneFile(d, qid, message)
        self.assertEqual(d.stop(), 0)
        path = d.spool.file("qf" + qid)
        raw = path.read_bytes()
        path.write_bytes(raw[:-10])  # 10 octets of the data gone, the L record as it was
        with self.assertRaises(AssertionError):
            parse_qf(path.read_bytes())
        d.start()
        log = d.log(since_start=True)
        m = re.search(rf"{qid}: damaged queue file moved to (\S+): (.*)$", log, re.M)
        self.assertIsNotNone(m, "the cut message was not set aside")
        self.assertEqual(m.group(1).rsplit("/", 1)[-1], f"Qf{qid}")
        # the reason speaks of the size: the word, or the recorded or the found length
        self.assertRegex(m.group(2), rf"(?i)size|\b{len(data)}\b|\b{len(data) - 10}\b")
        self.assertRegex(log, r"spool .*: 0 message\(s\) queued, 0 partial file\(s\) removed, "
                              r"1 damaged")
        self.assertEqual(self.files_of(d, qid), ["Qf" + qid])
        self.assertEqual(d.spool.file("Qf" + qid).read_bytes(), raw[:-10], "kept as it was")
        self.assertEqual(d.spool.qids(), set())
        self.assertNotRegex(log, rf"{qid}: recovered")

    def test_empty_qf_removed(self):
        """A power cut between the commit's rename and the qf's fsync leaves an empty qf on
        ext4: never acknowledged, so recovery removes it rather than setting it aside."""
        d = self.daemon()
        qid = self.send(d, make_message(subject="never acknowledged"))
        self.assertEqual(d.stop(), 0)
        d.spool.file("qf" + qid).write_bytes(b"")
        d.start()
        self.assertIsNotNone(d.wait_log(r"spool .*: 0 message\(s\) queued, 1 partial file\(s\) "
                                        r"removed, 0 damaged", timeout=30))
        log = d.log(since_start=True)
        self.assertRegex(log, rf"warning: {qid}: removed the empty \S*qf{qid}: a commit cut short "
                              r"by a crash before the qf's fsync, never acknowledged")
        self.assertNotIn("damaged queue file", log)
        self.assertEqual(self.files_of(d, qid), [])
        self.assertEqual(d.spool.qids(), set())


if __name__ == "__main__":
    unittest.main()
