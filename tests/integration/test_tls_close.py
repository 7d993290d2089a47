"""After QUIT over STARTTLS the daemon ends TLS properly (issue 8): the 221, then a TLS
close_notify, then the TCP close. Without the close_notify a client sees an unexpected EOF
(Python raises SSLEOFError once ragged EOFs are not suppressed, unwrap() fails), and an
OpenSSL client marks the session not resumable. The close_notify is written after the
221, while the engine already drains the connection for its close: the engine must still
take it.
"""

import ssl
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, IO_TIMEOUT, RingmailTestCase
from tls_support import Certs, client_context, tls_config

CERTS: Certs


def setUpModule():
    global CERTS
    CERTS = Certs(Path(tempfile.mkdtemp(prefix="ringmail-tls-close-")))


class TlsClose(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        self.ctx = client_context(verify=True, cafile=CERTS.ca)

    def tls_session(self, session: ssl.SSLSession | None = None):
        """A connection after EHLO, STARTTLS and EHLO again; ragged EOFs are errors."""
        c = self.session(self.d)
        self.assertReply(c.cmd("STARTTLS"), 220)
        self.assertEqual(c.buf, b"")
        c.sock = self.ctx.wrap_socket(c.sock, server_hostname=HOSTNAME, session=session,
                                      suppress_ragged_eofs=False)
        c.sock.settimeout(IO_TIMEOUT)
        self.assertReply(c.ehlo(), 250)
        return c

    def read_to_eof(self, c) -> bytes:
        """What follows the last reply, up to the end of TLS (an SSLEOFError, or a reset,
        if the server closed without a close_notify)."""
        data = c.buf
        while chunk := c.sock.recv(4096):
            data += chunk
        return data

    def test_quit_then_close_notify(self):
        c = self.tls_session()
        self.assertReply(c.cmd("QUIT"), 221)
        try:
            rest = self.read_to_eof(c)
        except ssl.SSLEOFError as e:
            self.fail(f"the server closed TCP without a TLS close_notify after the 221: {e}")
        self.assertEqual(rest, b"")

    def test_unwrap_after_quit(self):
        c = self.tls_session()
        self.assertReply(c.cmd("QUIT"), 221)
        try:
            plain = c.sock.unwrap()  # our close_notify, then waits for the server's
        except (ssl.SSLError, OSError) as e:
            self.fail(f"unwrap() after QUIT: no close_notify from the server: {e!r}")
        c.sock = plain
        plain.settimeout(IO_TIMEOUT)
        try:
            self.assertEqual(plain.recv(1), b"", "bytes after the close_notify")
        except ConnectionResetError:
            pass  # our close_notify may arrive after the server closed: a reset, no data

    def test_timeout_close_sends_close_notify(self):
        # The daemon's own close (here: the misc timeout's 421) ends TLS the same way.
        self.d = self.daemon(timeouts={"helo": "1s", "mail": "1s", "misc": "1s"},
                             **tls_config(CERTS, "ECDSA-P256"))
        c = self.tls_session()
        self.assertReply(c.reply(timeout=15), 421, "4.4.2")
        try:
            rest = self.read_to_eof(c)
        except ssl.SSLEOFError as e:
            self.fail(f"the server closed TCP without a TLS close_notify after the 421: {e}")
        self.assertEqual(rest, b"")


if __name__ == "__main__":
    unittest.main()
