"""A mail filter written with Debian's python3-milter (libmilter underneath), for
test_milter.py: what it does is chosen by the message, so one filter serves every case.

    milter_filter.py SOCKET [--log FILE] [--name NAME]

HELO `reject.helo`: refused. MAIL from `reject@...`: 550 with its own text; `tempfail@...`:
TEMPFAIL. RCPT `reject-rcpt@...`: that recipient refused. At the end of the message, by
words in the Subject: `sleep` sleeps 5 s first; `eomreject` refuses with a two-line reply;
`discard` discards; otherwise it adds X-Milter, inserts X-Top at the top, changes Subject,
deletes X-Remove, and by further words: `addrcpt`, `delrcpt` (removed@remote.test),
`chgfrom`, `replace` (the body), `quarantine`, `badaddr` (adds a recipient that is no address),
`rcptparams` (adds one with NOTIFY= and ORCPT=, and one whose NOTIFY= is wrong); `crash`
makes the process exit at the end of the message without a word. X-Milter says "seen by
NAME" (default: the test filter). Each callback is written to the log file (one line,
`step value`) so the test sees what the MTA sent.
"""

import os
import sys
import time

import Milter

LOG = None
NAME = "the test filter"


def note(*words):
    if LOG:
        with open(LOG, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\n")


class TestFilter(Milter.Base):

    def __init__(self):
        self.subject = ""
        self.chunks = b""

    def connect(self, hostname, family, hostaddr):
        note("connect", hostname, hostaddr[0] if hostaddr else "",
             self.getsymval("j"), self.getsymval("{daemon_name}"))
        return Milter.CONTINUE

    def hello(self, name):
        note("helo", name)
        if name == "reject.helo":
            self.setreply("550", "5.7.1", "HELO refused by the filter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, sender, *args):
        note("mail", sender, self.getsymval("i"), self.getsymval("{mail_addr}"), *args)
        self.subject = ""
        self.chunks = b""
        if sender.startswith("<reject@"):
            self.setreply("550", "5.7.1", "Sender refused by the filter")
            return Milter.REJECT
        if sender.startswith("<tempfail@"):
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *args):
        note("rcpt", rcpt, self.getsymval("{rcpt_addr}"), *args)
        if rcpt.startswith("<reject-rcpt@"):
            self.setreply("550", "5.1.1", "No such user here (filter)")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        note("header", name, value)
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        note("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks += chunk
        return Milter.CONTINUE

    def eom(self):
        note("eom", len(self.chunks), self.chunks[:200].decode("latin-1").replace("\r\n", "|"))
        s = self.subject
        if "sleep" in s:
            time.sleep(5)
        if "crash" in s:
            os._exit(1)
        if "eomreject" in s:
            self.setreply("554", "5.7.1", "First line of the filter", "Second line of the filter")
            return Milter.REJECT
        if "discard" in s:
            return Milter.DISCARD
        self.addheader("X-Milter", "seen by " + NAME)
        self.addheader("X-Top", "inserted at the top", 0)
        self.chgheader("Subject", 1, "[filtered] " + s)
        self.chgheader("X-Remove", 1, "")
        if "addrcpt" in s:
            self.addrcpt("<added@remote.test>")
        if "badaddr" in s:
            self.addrcpt("<no such thing>")
        if "rcptparams" in s:
            self.addrcpt("<param@remote.test>", "NOTIFY=NEVER ORCPT=rfc822;orig@remote.test")
            self.addrcpt("<badparam@remote.test>", "NOTIFY=SOMETIMES")
        if "delrcpt" in s:
            self.delrcpt("<removed@remote.test>")
        if "chgfrom" in s:
            self.chgfrom("<changed@client.test>")
        if "replace" in s:
            self.replacebody(b"The filter replaced this body.\r\n")
        if "quarantine" in s:
            self.quarantine("held by the test filter")
        return Milter.ACCEPT


def main():
    global LOG, NAME
    sock = sys.argv[1]
    if "--log" in sys.argv:
        LOG = sys.argv[sys.argv.index("--log") + 1]
    if "--name" in sys.argv:
        NAME = sys.argv[sys.argv.index("--name") + 1]
    Milter.factory = TestFilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.ADDRCPT_PAR
                     | Milter.DELRCPT | Milter.CHGFROM | Milter.CHGBODY | Milter.QUARANTINE)
    Milter.runmilter("ringmail-test", sock, timeout=60)


if __name__ == "__main__":
    main()
