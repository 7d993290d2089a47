"""The metrics endpoint (metrics.listen, docs/metrics.md): scraped with Debian's
prometheus_client parser while clients drive a known load, and its counters checked
against what the clients saw; the HTTP answers of the small server."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
import unittest
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from delivery_support import DeliveryTestCase
from ringmail_harness import free_port, ipv6_loopback_available, make_message
from tls_support import Certs, starttls, tls_config

CERTS: Certs


def setUpModule():
    global CERTS
    CERTS = Certs(Path(tempfile.mkdtemp(prefix="ringmail-metrics-")))


def http(port: int, request: bytes, timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Sends `request` and reads until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return status, headers, body


def scrape(port: int, host: str = "127.0.0.1") -> dict[tuple, float]:
    """Every sample: (name, sorted labels) -> value; the parser must accept it all."""
    status, headers, body = split_response(http(port, b"GET /metrics HTTP/1.1\r\n"
                                                      b"Host: localhost\r\n\r\n", host=host))
    assert status == 200, status
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    assert int(headers["content-length"]) == len(body), headers
    assert headers["connection"] == "close"
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: dict, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


class MetricsTest(DeliveryTestCase):

    def metrics_daemon(self, **overrides):
        port = free_port()
        sink = self.sink()
        d = self.relay(sink, metrics={"listen": f"127.0.0.1:{port}"},
                       relay_domains=["remote.test"], relay_from=["192.0.2.0/24"],
                       **tls_config(CERTS, "ECDSA-P256"), **overrides)
        return d, port, sink

    def test_counters_match_the_clients(self):
        d, mport, sink = self.metrics_daemon()
        # a scraper that says nothing, and one whose request head never ends: both are cut
        # off (core/metrics_http.h: 5 s) while the load runs
        idle = [socket.create_connection(("127.0.0.1", mport), timeout=10) for _ in range(2)]
        idle[1].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        idle_since = time.monotonic()
        for s in idle:
            self.addCleanup(s.close)

        threads, per_thread = 4, 5
        seen = {"2": 0, "3": 0, "4": 0, "5": 0}
        lock = threading.Lock()
        counts = {"accepted": 0, "tls": 0, "sessions": 0, "denied": 0, "unknown": 0,
                  "bytes": 0, "ehlo": 0}
        errors = []

        def client(t: int):
            try:
                for i in range(per_thread):
                    use_tls = (t + i) % 2 == 0
                    c = self.connect(d)
                    replies = [c.greeting, c.ehlo()]
                    if use_tls:
                        replies.append(starttls(c))
                        replies.append(c.ehlo())
                    replies.append(c.cmd("XYZZY"))
                    replies.append(c.cmd("MAIL FROM:<alice@client.test>"))
                    replies.append(c.cmd(f"RCPT TO:<bob{t}.{i}@remote.test>"))
                    replies.append(c.cmd("RCPT TO:<eve@elsewhere.test>"))
                    msg = make_message(subject=f"m{t}.{i}")
                    r354, final = c.data(msg)
                    replies += [r354, final, c.cmd("QUIT")]
                    c.close()
                    with lock:
                        for r in replies:
                            seen[str(r.code)[0]] += 1
                        counts["sessions"] += 1
                        counts["tls"] += use_tls
                        counts["ehlo"] += 2 if use_tls else 1
                        counts["unknown"] += replies[-7].code == 500
                        counts["denied"] += replies[-4].code == 550
                        if final.code == 250:
                            counts["accepted"] += 1
                            counts["bytes"] += len(msg)
            except Exception as e:  # reported by the main thread
                errors.append(e)

        # scrapes before, during and after the load (however quick it is): no counter ever
        # goes down
        stop = threading.Event()
        scrapes = [scrape(mport)]

        def scraper():
            while not stop.is_set():
                scrapes.append(scrape(mport))
                time.sleep(0.05)

        sc = threading.Thread(target=scraper)
        sc.start()
        workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        sc.join()
        scrapes.append(scrape(mport))
        self.assertEqual(errors, [])
        for before, after in zip(scrapes, scrapes[1:]):
            for key, v in before.items():
                if key[0].endswith(("_total", "_bucket", "_count", "_sum")):
                    self.assertGreaterEqual(after.get(key, 0), v, f"{key} went down")

        n = threads * per_thread
        self.assertEqual(counts["accepted"], n)
        self.assertEqual(counts["denied"], n)
        self.assertEqual(counts["unknown"], n)
        # the sessions are over once the open gauge is back to 0
        deadline = time.monotonic() + 5
        while (m := scrape(mport))[("ringmail_connections_open", ())] and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(m[("ringmail_connections_open", ())], 0)

        self.assertEqual(total(m, "ringmail_messages_accepted_total"), n)
        self.assertGreaterEqual(total(m, "ringmail_messages_accepted_bytes_total"),
                                counts["bytes"])
        self.assertEqual(total(m, "ringmail_messages_rejected_total", stage="rcpt"), n)
        self.assertEqual(total(m, "ringmail_messages_rejected_total", stage="mail"), 0)
        for cls, k in (("2xx", "2"), ("3xx", "3"), ("4xx", "4"), ("5xx", "5")):
            self.assertEqual(total(m, "ringmail_smtp_replies_total", **{"class": cls}), seen[k],
                             f"{cls} replies")
        verbs = {"EHLO": counts["ehlo"], "STARTTLS": counts["tls"], "MAIL": n, "RCPT": 2 * n,
                 "DATA": n, "QUIT": n, "unknown": n, "HELO": 0}
        for verb, want in verbs.items():
            self.assertEqual(total(m, "ringmail_smtp_commands_total", verb=verb), want, verb)
        self.assertEqual(total(m, "ringmail_connections_total", listener="MTA",
                               result="accepted"), counts["sessions"])

        self.assertEqual(total(m, "ringmail_tls_handshakes_total", result="ok"), counts["tls"])
        self.assertEqual(total(m, "ringmail_tls_handshakes_total", result="ok", cert="ECDSA",
                               version="TLSv1.3"), counts["tls"])
        self.assertEqual(total(m, "ringmail_tls_handshakes_total", result="failed"), 0)
        self.assertEqual(m[("ringmail_tls_handshake_cpu_seconds_count", ())], counts["tls"])
        self.assertGreater(m[("ringmail_tls_handshake_cpu_seconds_sum", ())], 0)

        commits = m[("ringmail_spool_commit_seconds_count", ())]
        self.assertEqual(commits, n)
        self.assertEqual(m[("ringmail_spool_commit_seconds_bucket", (("le", "+Inf"),))], commits)
        buckets = sorted((float(dict(ls)["le"]), v) for (name, ls), v in m.items()
                         if name == "ringmail_spool_commit_seconds_bucket")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), "cumulative")

        self.assertEqual(m[("ringmail_build_info", (("version", self.version(d)),))], 1)
        self.assertLessEqual(m[("ringmail_start_time_seconds", ())], time.time())

        # every message reaches the sink: sent deliveries, and an empty queue
        sink.wait_messages(n, timeout=30)
        deadline = time.monotonic() + 10
        # the line is logged before the message's files are removed: wait for both
        while (total(m := scrape(mport), "ringmail_deliveries_total", result="sent") < n or
               total(m, "ringmail_queue_messages")) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(total(m, "ringmail_deliveries_total", result="sent", mailer="relay"), n)
        self.assertEqual(total(m, "ringmail_queue_messages"), 0)

        for s in idle:  # closed without an answer
            s.settimeout(max(0.5, 8 - (time.monotonic() - idle_since)))
            self.assertEqual(s.recv(100), b"")

    def test_http_answers(self):
        port = free_port()
        d = self.new_daemon(start=False, metrics={"listen": f"127.0.0.1:{port}"},
                            maps={"access": "access"})
        (d.workdir / "access").write_text("Connect:127.0.0.3 REJECT\n")
        d.start()
        # a refusal by the access map is counted by its reason
        c = self.connect(d, source="127.0.0.3")
        self.assertEqual(c.greeting.code, 550)
        c.wait_closed()
        m = scrape(port)
        self.assertEqual(total(m, "ringmail_connections_total", listener="MTA", result="access"),
                         1)
        self.assertEqual(total(m, "ringmail_connections_total", listener="MTA",
                               result="accepted"), 0)
        self.assertEqual(total(m, "ringmail_smtp_replies_total", **{"class": "5xx"}), 1)
        status, headers, body = split_response(http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n"))
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["content-length"]), 100)
        status, headers, _ = split_response(http(port, b"GET /metrics?x=1 HTTP/1.1\n\n"))
        self.assertEqual(status, 200)
        status, _, _ = split_response(http(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"))
        self.assertEqual(status, 404)
        status, headers, _ = split_response(http(port, b"POST /metrics HTTP/1.1\r\n"
                                                       b"Content-Length: 0\r\n\r\n"))
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        for garbage in (b"hello\r\n\r\n", b"GET /metrics HTTP/2.0\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"):
            with self.subTest(garbage=garbage[:30]):
                status, headers, _ = split_response(http(port, garbage))
                self.assertEqual(status, 400)
                self.assertEqual(headers["connection"], "close")
        self.assertRegex(d.log(), r"listening: metrics on http://127\.0\.0\.1:\d+/metrics")

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6(self):
        port = free_port(socket.AF_INET6, "::1")
        d = self.daemon(metrics={"listen": f"[::1]:{port}"})
        m = scrape(port, host="::1")
        self.assertEqual(total(m, "ringmail_connections_open"), 0)
        self.assertNotRegex(d.log(), "not a loopback address")

    def test_non_loopback_warns(self):
        # a port free on every address: one free on 127.0.0.1 alone may be another test's
        # listener on 127.0.0.x, which a bind to 0.0.0.0 collides with
        port = free_port(addr="0.0.0.0")
        d = self.daemon(metrics={"listen": f"0.0.0.0:{port}"})
        d.wait_log(r"metrics\.listen 0\.0\.0\.0:\d+ is not a loopback address")

    def version(self, d) -> str:
        """The version the greeting says."""
        c = self.connect(d)
        c.cmd("QUIT")
        return re.search(r"ESMTP ringmail (\S+);", c.greeting.text).group(1)
