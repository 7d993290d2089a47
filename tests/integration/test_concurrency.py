"""1,000 clients connected at once, each sending one message: all accepted, all durable,
all with distinct queue ids."""

import asyncio
import time
import unittest

from ringmail_harness import HOSTNAME, RingmailTestCase, dot_stuff, make_message, raise_nofile

CLIENTS = 1000
TOTAL_TIMEOUT = 180.0   # the whole run, on a loaded 2-core machine under ASan


async def read_reply(reader) -> str:
    """A whole reply; returns its last line."""
    while True:
        line = (await reader.readline()).decode("utf-8", "replace")
        if not line.endswith("\r\n"):
            raise ConnectionError(f"connection closed mid-reply: {line!r}")
        if line[3:4] != "-":
            return line.rstrip("\r\n")


async def expect(reader, code: str) -> str:
    line = await read_reply(reader)
    if not line.startswith(code):
        raise AssertionError(f"expected {code}, got {line!r}")
    return line


async def client(i: int, port: int, all_connected: asyncio.Event, connected: list) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    try:
        await expect(reader, "220")
        writer.write(b"EHLO c%d.example\r\n" % i)
        await expect(reader, "250")
        connected.append(i)
        if len(connected) == CLIENTS:
            all_connected.set()
        await all_connected.wait()  # every client is in session before anyone sends
        writer.write(f"MAIL FROM:<c{i}@b.example>\r\nRCPT TO:<user{i}@{HOSTNAME}>\r\n"
                     "DATA\r\n".encode())
        await expect(reader, "250")
        await expect(reader, "250")
        await expect(reader, "354")
        msg = make_message(subject=f"client {i}", body=f"marker-{i}\r\n")
        writer.write(dot_stuff(msg) + b".\r\nQUIT\r\n")
        final = await expect(reader, "250 2.0.0 ")
        await expect(reader, "221")
        return final.split()[2]
    finally:
        writer.close()


class Concurrency(RingmailTestCase):

    def test_thousand_concurrent_clients(self):
        limit = raise_nofile(CLIENTS * 2 + 200)  # our sockets; the daemon inherits it too
        if limit < CLIENTS + 100:
            self.skipTest(f"RLIMIT_NOFILE cannot be raised above {limit}")
        d = self.daemon(limits={"connections": CLIENTS * 2})

        async def run():
            all_connected = asyncio.Event()
            connected: list[int] = []
            tasks = [asyncio.create_task(client(i, d.port, all_connected, connected))
                     for i in range(CLIENTS)]
            # a client that failed can never make the count: release the others then
            await asyncio.wait(tasks, timeout=TOTAL_TIMEOUT / 2,
                               return_when=asyncio.FIRST_EXCEPTION)
            all_connected.set()
            _, pending = await asyncio.wait(tasks, timeout=TOTAL_TIMEOUT / 2)
            for t in pending:
                t.cancel()
            return [TimeoutError(f"not done after {TOTAL_TIMEOUT}s") if t in pending
                    else (t.exception() or t.result()) for t in tasks], len(connected)

        start = time.monotonic()
        results, n_connected = asyncio.run(run())
        elapsed = time.monotonic() - start
        errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
        self.assertEqual(errors[:5], [], f"{len(errors)} of {CLIENTS} clients failed "
                                         f"(first shown) after {elapsed:.1f}s; "
                                         f"{n_connected} were in session at once")
        self.assertEqual(n_connected, CLIENTS, "not all clients were in session at once")
        qids = set(results)
        self.assertEqual(len(qids), CLIENTS, "queue ids are not unique")
        self.assertEqual(d.spool.qids(), qids)
        self.assertEqual(d.spool.partials(), [])
        # spot-check that each df holds its own client's message
        for i in range(0, CLIENTS, 97):
            self.assertIn(f"marker-{i}\r\n".encode(), d.spool.df(results[i]))
            self.assertEqual(d.spool.envelope(results[i])["sender"], f"c{i}@b.example")


if __name__ == "__main__":
    unittest.main()
