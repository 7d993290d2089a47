"""A real libmilter filter (Debian's python3-milter) for tests/unit/test_milter.c.

Usage: /usr/bin/python3 milter_filter.py SOCKET_PATH

It answers by triggers in the envelope so that one session exercises every reply:
  sender containing "tempfail-mail"  -> TEMPFAIL at MAIL
  recipient containing "reject"      -> REJECT at RCPT with a reply code (550 5.7.1)
  recipient containing "discard"     -> DISCARD at RCPT
  sender containing "mlreply"        -> a multi-line 554 reply at end of message
  sender containing "skip"           -> SKIP after the first body chunk
  otherwise, at end of message: progress, add/insert/change/delete header, add a recipient
  with ESMTP arguments, delete one, change the sender with arguments, replace the body,
  quarantine, then ACCEPT. The added X-Seen header reports what the filter saw (macros per
  step, headers, the body's size) so the test can check what the MTA sent.
Headers are marked @noreply, so the filter negotiates SMFIP_NR_HDR.
"""
import sys

import Milter


class TestFilter(Milter.Base):
    def __init__(self):
        self.seen = []
        self.sender = ""
        self.received = b""

    def connect(self, hostname, family, hostaddr):
        self.seen.append("connect=%s/%s/j=%s" % (hostname, hostaddr[0], self.getsymval("j")))
        return Milter.CONTINUE

    def hello(self, name):
        self.seen.append("helo=%s" % name)
        return Milter.CONTINUE

    def envfrom(self, sender, *args):
        self.sender = sender
        self.received = b""
        self.seen = [s for s in self.seen if s.startswith(("connect", "helo"))]
        self.seen.append("mail=%s%s/i=%s" % (sender, "".join(" " + a for a in args),
                                              self.getsymval("i")))
        if "tempfail-mail" in sender:
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *args):
        self.seen.append("rcpt=%s/%s" % (rcpt, self.getsymval("{rcpt_addr}")))
        if "reject" in rcpt:
            self.setreply("550", "5.7.1", "no such user here")
            return Milter.REJECT
        if "discard" in rcpt:
            return Milter.DISCARD
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name, value):
        self.seen.append("hdr=%s:%s" % (name, value.replace("\n", "|").replace("\r", "^")))
        return Milter.CONTINUE

    def eoh(self):
        self.seen.append("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.received += chunk
        if "skip" in self.sender:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        self.seen.append("body=%d/msg_id=%s" % (len(self.received), self.getsymval("{msg_id}")))
        if "mlreply" in self.sender:
            self.setreply("554", "5.7.1", "first line", "second line")
            return Milter.REJECT
        self.progress()
        self.addheader("X-Seen", " ".join(self.seen))
        self.addheader("X-Top", "inserted", 0)
        self.chgheader("Subject", 1, "changed subject")
        self.chgheader("X-Remove", 1, "")
        self.addrcpt("<added@example.test>", "NOTIFY=NEVER")
        self.delrcpt("<b@example.test>")
        self.chgfrom("<changed@example.test>", "BODY=8BITMIME")
        self.replacebody(b"replaced body\r\n")
        self.quarantine("held for review")
        return Milter.ACCEPT

    def abort(self):
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


if __name__ == "__main__":
    Milter.factory = TestFilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.ADDRCPT_PAR |
                     Milter.DELRCPT | Milter.CHGFROM | Milter.CHGBODY | Milter.QUARANTINE)
    sys.stdout.flush()
    Milter.runmilter("ringmail-test", "unix:" + sys.argv[1], 30)
