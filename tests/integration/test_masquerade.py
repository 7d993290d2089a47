"""Masquerading and the genericstable on what leaves by SMTP (docs/config.md,
"masquerade"): the header senders, the envelope sender with masquerade.envelope, the
recipient headers only with all_headers, exposed users, and the rest of the message byte
for byte."""

import unittest

from delivery_support import DeliveryTestCase
from ringmail_harness import HOSTNAME

MESSAGE = (f"From: Joe <joe@{HOSTNAME}>\r\n"
           f"Sender: root@{HOSTNAME}\r\n"
           f"To: ann@{HOSTNAME},\r\n bob@other.test\r\n"
           "Subject: masq\r\n"
           "\r\n"
           f"body mentions joe@{HOSTNAME}\r\n").encode()


class Masquerade(DeliveryTestCase):
    def test_headers_and_envelope(self):
        sink = self.sink()
        d = self.relay(sink, masquerade={"as": "example.com", "envelope": True,
                                         "exposed_users": ["root"]})
        self.send(d, f"joe@{HOSTNAME}", ["bob@remote.test"], message=MESSAGE)
        (m,) = sink.wait_messages(1)
        self.assertEqual(m.mail_from, "joe@example.com")
        head, _, body = m.data.partition(b"\r\n\r\n")
        self.assertIn(b"From: Joe <joe@example.com>\r\n", head)
        self.assertIn(f"Sender: root@{HOSTNAME}\r\n".encode(), head)  # EXPOSED_USER
        # recipient headers only with all_headers; the folding and the body as they were
        self.assertIn(f"To: ann@{HOSTNAME},\r\n bob@other.test\r\n".encode(), head)
        self.assertEqual(body, f"body mentions joe@{HOSTNAME}\r\n".encode())

    def test_genericstable_and_all_headers(self):
        sink = self.sink()
        gt = self.tmp / "genericstable"
        gt.write_text("joe joseph.bloggs@example.com\n")
        d = self.relay(sink, maps={"genericstable": str(gt)},
                       masquerade={"as": "example.com", "all_headers": True,
                                   "generics_domains": [HOSTNAME]})
        self.send(d, f"joe@{HOSTNAME}", ["bob@remote.test"], message=MESSAGE)
        (m,) = sink.wait_messages(1)
        # the envelope only with masquerade.envelope
        self.assertEqual(m.mail_from, f"joe@{HOSTNAME}")
        head = m.data.partition(b"\r\n\r\n")[0]
        self.assertIn(b"From: Joe <joseph.bloggs@example.com>\r\n", head)
        self.assertIn(b"To: ann@example.com,\r\n bob@other.test\r\n", head)

    def test_nothing_configured_nothing_changes(self):
        sink = self.sink()
        d = self.relay(sink)
        self.send(d, f"joe@{HOSTNAME}", ["bob@remote.test"], message=MESSAGE)
        (m,) = sink.wait_messages(1)
        self.assertEqual(m.mail_from, f"joe@{HOSTNAME}")
        self.assertTrue(m.data.endswith(MESSAGE), m.data)


if __name__ == "__main__":
    unittest.main()
