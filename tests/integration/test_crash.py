"""No loss: kill -9 while 50 clients send. After a restart on the same spool every
message that got a 250 is there intact, nothing half-written remains, and every message
present is one whose final dot its client had sent.

A process kill leaves the page cache intact, so this cannot show that a 250 survives a
power cut: tests/unit/test_spool_power.c checks the fsync and rename order for that."""

import re
import sys
import threading
import time
import unittest

from ringmail_harness import (HOSTNAME, WRITE_CHUNK, RingmailTestCase, SMTPConn, dot_stuff,
                              make_message, partial_names)

CLIENTS = 50
SEND_FOR = 2.0   # seconds of load before the kill
RECOVERY_LISTED = 1000  # messages recovery logs one by one (queue/spool_recover.c)


class Load:
    """Shared record of what the clients did (guarded by a lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: dict[str, bytes] = {}   # marker -> message bytes
        self.final_sent: set[str] = set()      # markers whose final dot was sent
        self.acked: dict[str, str] = {}        # qid -> marker
        self.stop = threading.Event()
        self.errors: list[str] = []


def sender(port: int, n: int, load: Load):
    seq = 0
    while not load.stop.is_set():
        try:
            c = SMTPConn(port, timeout=30)
        except OSError as e:
            if not load.stop.is_set():
                with load.lock:
                    load.errors.append(f"client {n}: cannot connect before the kill: {e}")
            return
        try:
            c.ehlo()
            for _ in range(5):  # a few messages per connection, then a new one
                seq += 1
                marker = f"marker-{n}-{seq}"
                # mostly small messages, every 4th large enough to be in flight
                filler = ("z" * 70 + "\r\n") * (1000 if seq % 4 == 0 else 2)
                msg = make_message(subject=marker, body=f"{marker}\r\n{filler}.{marker}\r\n")
                with load.lock:
                    load.messages[marker] = msg
                r = c.cmd("MAIL FROM:<load@b.example>")
                if r.code != 250:
                    raise AssertionError(r.text)
                if c.cmd(f"RCPT TO:<u{n}@{HOSTNAME}>").code != 250 or c.cmd("DATA").code != 354:
                    raise AssertionError("RCPT/DATA refused")
                c.send(dot_stuff(msg))
                with load.lock:
                    load.final_sent.add(marker)
                c.send(b".\r\n")
                qid = c.reply().qid()
                if qid is None:
                    raise AssertionError("message not accepted")
                with load.lock:
                    load.acked[qid] = marker
                if load.stop.is_set():
                    break
        except (OSError, ConnectionError, TimeoutError):
            if not load.stop.is_set():
                with load.lock:
                    load.errors.append(f"client {n}: connection failed before the kill")
            return
        except AssertionError as e:
            with load.lock:
                load.errors.append(f"client {n}: {e}")
            return
        finally:
            c.close()


class Crash(RingmailTestCase):

    def test_kill9_under_load(self):
        d = self.daemon()
        load = Load()
        threads = [threading.Thread(target=sender, args=(d.port, n, load), daemon=True)
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(SEND_FOR)
        load.stop.set()  # from now on a failed connection is expected
        d.kill()         # SIGKILL: no chance to tidy up
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung after the kill")
        self.assertEqual(load.errors, [])
        self.assertGreater(len(load.acked), 0, "no message was acknowledged before the kill")

        before = d.spool.names()
        d.start()      # same config, same spool: recovery runs before "ready"
        spool = d.spool
        sys.stderr.write(f"\n[crash] {len(load.acked)} acknowledged, {len(load.final_sent)} "
                         f"final dots sent; before the restart the spool had "
                         f"{sum(n.startswith('qf') for n in before)} qf and "
                         f"{len(partial_names(before))} partial files\n")
        self.assertEqual(spool.partials(), [], "partial files survived recovery")
        self.assertEqual([n for n in spool.names() if n.startswith("Qf")], [],
                         "recovery found damaged envelopes")
        present = spool.qids()
        missing = set(load.acked) - present
        self.assertEqual(missing, set(), f"{len(missing)} acknowledged messages were lost")
        markers = []
        names = set(spool.names())
        for qid in sorted(present):
            _, data = spool.split_df(qid)
            m = re.search(rb"^Subject: (marker-\d+-\d+)\r\n", data, re.M)
            self.assertIsNotNone(m, f"{qid}: not one of ours")
            marker = m.group(1).decode()
            markers.append(marker)
            self.assertIn(marker, load.final_sent,
                          f"{qid}: {marker} is stored but its final dot was never sent")
            self.assertEqual(data, load.messages[marker], f"{qid}: {marker} is not intact")
            if qid in load.acked:
                self.assertEqual(load.acked[qid], marker)
            env = spool.envelope(qid)
            self.assertEqual(env["sender"], "load@b.example")
            self.assertEqual(len(env["rcpts"]), 1)
            self.assertEqual(int(env["size"]), len(spool.df(qid)), f"{qid}: size mismatch")
            # smaller than the write chunk: one file, the data in the qf; else qf and df
            inline = env["inline_data"] is not None
            self.assertEqual(inline, int(env["size"]) < WRITE_CHUNK, f"{qid}: {env['size']}")
            self.assertEqual("df" + qid in names, not inline, f"{qid}: df and inline data")
        self.assertEqual(len(markers), len(set(markers)), "a message was stored twice")
        # recovery lists the first 1,000 messages, oldest (smallest id) first, then a count
        log = d.log(since_start=True)
        for qid in sorted(present)[:RECOVERY_LISTED]:
            self.assertRegex(log, rf"{qid}: recovered, from=<load@b\.example>, nrcpts=1, "
                                  rf"size=\d+")
        if len(present) > RECOVERY_LISTED:
            self.assertRegex(log, rf"{len(present) - RECOVERY_LISTED} more message\(s\) "
                                  rf"recovered, not listed one by one")
        # and the daemon works after the restart, with a queue id never used before
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail("a@b.example", [f"user@{HOSTNAME}"],
                                              make_message()))
        self.assertNotIn(qid, present)


if __name__ == "__main__":
    unittest.main()
