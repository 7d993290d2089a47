"""Delivery status notifications from queue/bounce, as a mail reader sees them.

tests/tools/bounce_sample writes sample notices (failure, RET=HDRS, over the size limit,
delay, success, double bounce, long lines, 8-bit content); each is parsed with Python's
email package (policy default) and checked as an RFC 3464 report: multipart/report with
report-type=delivery-status, a text/plain part, a message/delivery-status part whose
per-message and per-recipient groups parse as header blocks with the RFC 3464 fields,
and the original returned intact (message/rfc822) or its header only
(text/rfc822-headers). No daemon is involved: the end-to-end bounce is another test.
"""

import email
import email.parser
import email.policy
import email.utils
import os
import re
import subprocess
import tempfile
import unittest


def tool():
    d = os.environ.get("RINGMAIL_TOOLS")
    path = os.path.join(d, "bounce_sample") if d else None
    return path if path and os.access(path, os.X_OK) else None


def header_blocks(raw):
    """RFC 3464 2.1: the delivery-status body is groups of fields separated by empty
    lines; each group parsed as a header block."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    groups = [g for g in raw.split(b"\r\n\r\n") if g.strip()]
    return [parser.parsebytes(g + b"\r\n\r\n") for g in groups]


def raw_parts(data, boundary):
    """The raw bytes of each body part (header block included), split at the delimiters
    exactly as RFC 2046 5.1.1 defines them (the CRLF before a delimiter belongs to it)."""
    delim = b"\r\n--" + boundary.encode()
    body = data[data.index(b"\r\n\r\n") + 2:]
    chunks = body.split(delim)
    assert chunks[-1].startswith(b"--"), "no close delimiter"
    # chunks[0] is the preamble; every part starts after the delimiter line's CRLF.
    return [c[2:] for c in chunks[1:-1]]


class BounceFormatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tool = tool()
        if not cls.tool:
            raise unittest.SkipTest("RINGMAIL_TOOLS/bounce_sample not built")
        cls.dir = tempfile.TemporaryDirectory(prefix="ringmail-bounce-")
        subprocess.run([cls.tool, "--all", cls.dir.name], check=True, timeout=30)
        cls.names = subprocess.run([cls.tool, "--list"], check=True, capture_output=True,
                                   text=True, timeout=30).stdout.split()
        with open(os.path.join(cls.dir.name, "original.eml"), "rb") as f:
            cls.original = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def load(self, name):
        with open(os.path.join(self.dir.name, name + ".eml"), "rb") as f:
            data = f.read()
        return data, email.message_from_bytes(data, policy=email.policy.default)

    def check_report(self, name):
        """The checks every sample passes; returns (raw, message, [parts], dsn groups)."""
        data, msg = self.load(name)
        # CRLF only, no line over 998 octets (RFC 5322 2.1.1).
        self.assertTrue(data.endswith(b"\r\n"))
        for line in data.split(b"\r\n"):
            self.assertNotIn(b"\n", line, name)
            self.assertNotIn(b"\r", line, name)
            self.assertLessEqual(len(line), 998, name)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(str(msg["MIME-Version"]), "1.0")
        self.assertEqual(str(msg["Auto-Submitted"]), "auto-replied")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "MAILER-DAEMON@mx.test")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(str(msg["Date"])))
        self.assertRegex(str(msg["Message-ID"]), r"^<\d{12}\.[0-9A-Za-z]{16}@mx\.test>$")
        for part in msg.walk():
            self.assertEqual(part.defects, [], name)

        parts = msg.get_payload()
        self.assertEqual(len(parts), 3, name)
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        self.assertIn(parts[2].get_content_type(), ("message/rfc822", "text/rfc822-headers"))

        # The delivery-status part, parsed by hand as header blocks...
        boundary = msg.get_boundary()
        raw = raw_parts(data, boundary)
        self.assertEqual(len(raw), 3)
        self.assertNotIn(boundary.encode(), b"".join(p[p.index(b"\r\n\r\n"):] for p in raw))
        dsn_raw = raw[1][raw[1].index(b"\r\n\r\n") + 4:]
        groups = header_blocks(dsn_raw)
        # ...and by the email package, which must agree on the number of groups.
        self.assertEqual(len(parts[1].get_payload()), len(groups))
        per_msg = groups[0]
        self.assertEqual(str(per_msg["Reporting-MTA"]), "dns; mx.test")
        self.assertEqual(str(per_msg["Received-From-MTA"]), "dns; client.example.org")
        self.assertEqual(email.utils.parsedate_to_datetime(str(per_msg["Arrival-Date"]))
                         .timestamp(), 1700000000)
        self.assertEqual(str(per_msg["Original-Envelope-Id"]), "QQ+314159")
        self.assertGreaterEqual(len(groups), 2)
        for g in groups[1:]:
            self.assertRegex(str(g["Final-Recipient"]), r"^rfc822; \S+@\S+$")
            self.assertIn(str(g["Action"]), ("failed", "delayed", "delivered", "relayed",
                                              "expanded"))
            self.assertRegex(str(g["Status"]), r"^[245]\.\d{1,3}\.\d{1,3}$")
            self.assertEqual(str(g["Status"])[0], {"failed": "5", "delayed": "4"}
                             .get(str(g["Action"]), "2"))
            if g["Last-Attempt-Date"] is not None:
                self.assertIsNotNone(email.utils.parsedate_to_datetime(
                    str(g["Last-Attempt-Date"])))
        return data, msg, parts, groups, raw

    def returned_content(self, raw_part):
        return raw_part[raw_part.index(b"\r\n\r\n") + 4:]

    def test_all_samples_listed(self):
        self.assertEqual(set(self.names), {"failure", "failure_hdrs", "over_limit", "delay",
                                           "success", "double", "long_lines", "eight_bit"})

    def test_failure(self):
        data, msg, parts, groups, raw = self.check_report("failure")
        self.assertEqual(msg["To"].addresses[0].addr_spec, "sender@example.com")
        self.assertEqual(str(msg["Subject"]), "Returned mail: see transcript for details")
        text = parts[0].get_content()
        self.assertIn("The original message was received at", text)
        self.assertIn("----- The following addresses had permanent fatal errors -----", text)
        self.assertEqual(len(groups), 3)
        first = groups[1]
        self.assertEqual(str(first["Original-Recipient"]), "rfc822;User+Tag@example.net")
        self.assertEqual(str(first["Final-Recipient"]), "rfc822; user@example.net")
        self.assertEqual(str(first["Action"]), "failed")
        self.assertEqual(str(first["Status"]), "5.1.1")
        self.assertEqual(str(first["Remote-MTA"]), "dns; mx.example.net")
        self.assertEqual(str(first["Diagnostic-Code"]),
                         "smtp; 550 5.1.1 <user@example.net>... User unknown")
        self.assertIsNone(groups[2]["Original-Recipient"])
        self.assertIsNone(groups[2]["Remote-MTA"])
        # The original, byte for byte, and as a message the reader can open.
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        self.assertEqual(self.returned_content(raw[2]), self.original)
        inner = parts[2].get_payload()[0]
        self.assertEqual(str(inner["Subject"]), "quarterly report")
        self.assertIn("the report is attached in spirit.", inner.get_content())

    def test_ret_hdrs(self):
        data, msg, parts, groups, raw = self.check_report("failure_hdrs")
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        head = self.original[:self.original.index(b"\r\n\r\n") + 2]
        self.assertEqual(self.returned_content(raw[2]), head)
        self.assertNotIn(b"attached in spirit", data)

    def test_over_limit(self):
        data, msg, parts, groups, raw = self.check_report("over_limit")
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"attached in spirit", data)
        self.assertIn("more than the 100 returned here: only its header follows",
                      parts[0].get_content())

    def test_delay(self):
        data, msg, parts, groups, raw = self.check_report("delay")
        self.assertEqual(str(msg["Subject"]),
                         "Warning: could not send message for past 4 hours")
        self.assertIn("THIS IS A WARNING MESSAGE ONLY", parts[0].get_content())
        self.assertEqual(len(groups), 2)
        g = groups[1]
        self.assertEqual(str(g["Action"]), "delayed")
        self.assertEqual(email.utils.parsedate_to_datetime(str(g["Will-Retry-Until"]))
                         .timestamp(), 1700000000 + 5 * 86400)
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")

    def test_success(self):
        data, msg, parts, groups, raw = self.check_report("success")
        self.assertEqual(str(msg["Subject"]), "Return receipt")
        self.assertEqual([str(g["Action"]) for g in groups[1:]], ["delivered", "relayed"])
        self.assertEqual(str(groups[2]["Remote-MTA"]), "dns; legacy.example.com")
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")

    def test_double_bounce(self):
        data, msg, parts, groups, raw = self.check_report("double")
        self.assertEqual(msg["To"].addresses[0].addr_spec, "postmaster")
        self.assertEqual(str(msg["Subject"]), "Postmaster notify: see transcript for details")

    def test_long_lines(self):
        data, msg, parts, groups, raw = self.check_report("long_lines")
        diag = str(groups[1]["Diagnostic-Code"])
        # Folded at the space before the long word, then cut inside it: unfolding gives
        # the reply back with one space added at each cut.
        self.assertTrue(diag.startswith("smtp; 550 5.7.1 x"))
        self.assertEqual(diag.replace(" ", "").count("x"), 3000)
        self.assertTrue(diag.endswith(" rejected"))
        body = self.returned_content(raw[2])
        # The 2500-octet line, cut at 998 octets and kept whole.
        self.assertEqual(body, self.original + b"y" * 998 + b"\r\n" + b"y" * 998 + b"\r\n"
                         + b"y" * 504 + b"\r\n")

    def test_eight_bit(self):
        data, msg, parts, groups, raw = self.check_report("eight_bit")
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        self.assertEqual(str(parts[2]["Content-Transfer-Encoding"]), "8bit")
        inner = parts[2].get_payload()[0]
        self.assertEqual(str(inner["Subject"]), "caf\u00e9")
        self.assertIn("na\u00efve", inner.get_content())


if __name__ == "__main__":
    unittest.main()
