"""At least once, never twice what the queue file marked delivered: kill -9 while 1,000
messages are being delivered, restart on the same spool, and look at what two recording
sinks got.

Layout: message i has a{i}@one.test and b{i}@two.test, and every third one also
c{i}@one.test, so each message has two next hops (two sinks, one transaction each) and some
transactions have two recipients: 2,334 recipients in 2,000 transactions. Every fifth
message also has d{i}@three.test, whose next hop always answers 451 (a mailertable error:
entry): those 200 messages stay queued with their other recipients marked delivered and
are tried again every second or two, before and after the kill, so the qf files the
restart reads always hold delivered recipients next to pending ones.

1. Fill: the mailertable sends both domains to an `error:4.3.0` entry, so the 1,000
   messages are accepted and deferred without a connection; the daemon stops (SIGTERM).
2. Deliver: the mailertable now names the two sinks; the daemon starts on the same spool
   and recovery makes every message due at once. Once the sinks hold 40% of the recipients,
   the whole process group gets SIGKILL.
3. The spool as the kill left it is read (the snapshot): each recipient's state byte in its
   qf ('P' pending, 'D' delivered), or "gone" when the qf was already removed (unlinked
   only after every recipient was recorded).
4. Restart on the same spool and wait until only the 200 messages for three.test are left,
   each with nothing but its d recipient pending.

A sink's connections are numbered in accept order; the delivering daemon reads the greeting
before it sends anything, so every transaction of the killed daemon arrived on a connection
accepted before the kill: a recipient is "before" on connections numbered up to the count
taken once the sink had no connection open after the kill, "after" on later ones.

What must hold, per recipient:
- delivered at least once (before + after >= 1), at most once per run (a run never sends a
  recipient twice here: the sinks accept everything, and a retry of a message sends only
  its d recipient);
- the criterion of the issue: a recipient whose qf said 'D', or whose qf was gone, in the
  snapshot is never delivered after the restart;
- its "stat=Sent" line was in the log before the kill (qmgr logs an attempt's outcomes,
  then writes and fsyncs the qf: a qf's 'D' without its log line would mean the order is
  broken, or a line was lost);
- a duplicate (before and after) is therefore a recipient still 'P' in the snapshot whose
  transaction had been accepted: its message was in flight (popped from the index, not yet
  recorded). The daemon holds at most workers x queue.max_active messages in flight, so the
  messages with a duplicate are bounded by that (8 here), whatever the timing.
The counts (duplicates, those whose Sent line was already written, in-flight) are printed.

A process kill leaves the page cache intact, so this cannot show a 'D' survives a power
cut: tests/unit/test_spool_power.c and the fsync order in spool_update do."""

import re
import sys
import threading
import time
import unittest
from collections import Counter

from ringmail_harness import RingmailTestCase, make_message
from sink import Delay, Sink

MESSAGES = 1000
WORKERS = 2
MAX_ACTIVE = 4          # queue.max_active: messages in delivery at once per worker
KILL_AT = 0.4           # share of the recipients the sinks hold when the kill comes
SENDERS = 4             # client connections that fill the queue
# Each transaction's final reply waits a little: with at most WORKERS x MAX_ACTIVE messages
# in delivery the run lasts a few seconds, so a test thread that the machine starves for a
# moment still finds the delivery half done, and the kill often lands between a sink's
# 250 and the qf update (the duplicates this test bounds).
FINAL = Delay(0.02, "250 2.0.0 Ok")
FILL_QUEUE = {"minimal_backoff": "1s", "maximal_backoff": "2s", "interval": "2s",
              "max_active": MAX_ACTIVE}


def recipients(i: int) -> list[str]:
    rcpts = [f"a{i}@one.test", f"b{i}@two.test"]
    if i % 3 == 0:
        rcpts.append(f"c{i}@one.test")
    if i % 5 == 0:
        rcpts.append(f"d{i}@three.test")
    return rcpts


def message_of(rcpt: str) -> int:
    return int(re.match(r"[abcd](\d+)@", rcpt).group(1))


HELD = "error:4.3.0:451 held until the sinks are up"
NEVER = "error:4.3.0:451 three.test is never reachable"


class DeliveryCrash(RingmailTestCase):

    def fill(self, d) -> dict[str, int]:
        """Sends the messages over SENDERS connections; qid -> message number."""
        qids: dict[str, int] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def send(first: int):
            c = d.connect()
            try:
                c.ehlo()
                for i in range(first, MESSAGES, SENDERS):
                    final = c.send_mail("alice@client.test", recipients(i), make_message(
                        subject=f"crash-{i}", msgid=f"crash-{i}@client.test"))
                    qid = final.qid()
                    with lock:
                        if qid is None:
                            errors.append(f"message {i}: {final.text}")
                            return
                        qids[qid] = i
                c.cmd("QUIT")
            except (OSError, ConnectionError, TimeoutError) as e:
                with lock:
                    errors.append(f"sender {first}: {e!r}")
            finally:
                c.close()

        threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(errors, [])
        self.assertEqual(len(qids), MESSAGES)
        return qids

    def test_kill9_during_delivery(self):
        mailertable = self.tmp / "mailertable"
        mailertable.write_text(f"one.test {HELD}\ntwo.test {HELD}\nthree.test {NEVER}\n")
        t0 = time.monotonic()
        d = self.daemon(workers=WORKERS, queue=FILL_QUEUE, maps={"mailertable": str(mailertable)})
        qids = self.fill(d)
        t_fill = time.monotonic() - t0
        self.assertEqual(d.stop(), 0)
        self.assertEqual(d.spool.qids(), set(qids))
        everyone = {r for i in range(MESSAGES) for r in recipients(i)
                    if not r.endswith("@three.test")}
        held = {q for q, i in qids.items() if i % 5 == 0}

        one, two = Sink("127.0.0.2", final=FINAL).start(), Sink("127.0.0.3", final=FINAL).start()
        self.addCleanup(one.stop)
        self.addCleanup(two.stop)
        sinks = (one, two)
        mailertable.write_text(f"one.test esmtp:{one.hostport}\ntwo.test esmtp:{two.hostport}\n"
                               f"three.test {NEVER}\n")

        def received() -> int:
            return sum(len(m.rcpt_tos) for s in sinks for m in list(s.messages))

        t0 = time.monotonic()
        d.start(read_queue=False)  # deliveries begin as the queue is read: the kill is timed
        deadline = time.monotonic() + 120
        while received() < KILL_AT * len(everyone) and time.monotonic() < deadline:
            time.sleep(0.005)
        d.kill()
        t_kill = time.monotonic() - t0
        self.assertGreaterEqual(received(), KILL_AT * len(everyone),
                                f"the sinks got too little before the kill:\n{d.log_tail()}")
        first_log = d.log(since_start=True)
        for s in sinks:
            s.wait_until(lambda s=s: s.open_connections == 0, 30, "the killed daemon's "
                         "connections to close")
        conns_before = [len(s.connections) for s in sinks]

        snapshot: dict[str, str] = {r: "gone" for r in everyone}
        for qid in d.spool.qids():
            for r in d.spool.envelope(qid)["rcpts"]:
                if r["addr"] in everyone:
                    snapshot[r["addr"]] = r["state"]
        by_state = Counter(snapshot.values())
        self.assertGreater(by_state["P"], 0, "everything was delivered before the kill")
        self.assertGreater(by_state["D"], 0, "no queued message had a delivered recipient")
        self.assertEqual(set(by_state) - {"P", "D", "gone"}, set(), by_state)

        t0 = time.monotonic()
        d.start()
        deadline = time.monotonic() + 120
        while d.spool.qids() != held and time.monotonic() < deadline:
            time.sleep(0.1)
        t_rest = time.monotonic() - t0
        self.assertEqual(d.spool.qids(), held, f"not delivered after the restart:\n"
                                               f"{d.log_tail()}")
        for qid in held:
            states = {r["addr"]: r["state"] for r in d.spool.envelope(qid)["rcpts"]}
            self.assertEqual({a: st for a, st in states.items() if st != "D"},
                             {f"d{qids[qid]}@three.test": "P"}, qid)

        def tally() -> tuple[Counter, Counter]:
            before, after = Counter(), Counter()
            for s, n_before in zip(sinks, conns_before):
                for m in list(s.messages):
                    self.assertEqual(m.mail_from, "alice@client.test", "a bounce or notice")
                    (before if m.conn <= n_before else after).update(m.rcpt_tos)
            return before, after

        # the daemon removed the last message on its 250; the sink records a transaction
        # just after writing that reply
        deadline = time.monotonic() + 30
        while set().union(*tally()) != everyone and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        before, after = tally()
        self.assertEqual(set(before) | set(after), everyone, "recipients never delivered")
        sent_logged = set(re.findall(r"to=<([^>]+)>, .*stat=Sent", first_log))
        recorded = {r for r, st in snapshot.items() if st in ("D", "gone")}
        self.assertEqual(sorted(r for r in recorded if after[r]), [],
                         "recipients the qf marked delivered were delivered again")
        self.assertEqual([r for r, n in (before + after).items()
                          if n > 2 or before[r] > 1 or after[r] > 1], [],
                         "a recipient sent twice within one run")
        self.assertEqual(sorted(recorded - sent_logged), [],
                         "qf says delivered, the log has no stat=Sent before the kill")
        self.assertEqual(sorted(recorded - set(before)), [],
                         "qf says delivered, the sink never got it")

        duplicates = sorted((r for r in everyone if before[r] and after[r]), key=message_of)
        dup_messages = {message_of(r) for r in duplicates}
        self.assertLessEqual(len(dup_messages), WORKERS * MAX_ACTIVE,
                             f"more messages sent twice than could be in flight: "
                             f"{duplicates}")
        sys.stderr.write(
            f"\n[delivery-crash] {len(everyone)} recipients in {MESSAGES} messages; at the "
            f"kill: {by_state['D'] + by_state['gone']} recorded delivered "
            f"({by_state['gone']} in removed messages), {by_state['P']} pending of which "
            f"{sum(1 for r in everyone if snapshot[r] == 'P' and before[r])} had reached a "
            f"sink; {len(duplicates)} recipients in {len(dup_messages)} messages sent twice "
            f"(bound {WORKERS * MAX_ACTIVE} messages), "
            f"{len(set(duplicates) & sent_logged)} of them already logged stat=Sent; "
            f"fill {t_fill:.1f} s, start to kill {t_kill:.1f} s, restart to empty spool "
            f"{t_rest:.1f} s\n")


if __name__ == "__main__":
    unittest.main()
