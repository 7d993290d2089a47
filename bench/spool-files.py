#!/usr/bin/env python3
"""bench/spool-files.py -- what one queue file per message would save, before building it.

The spool keeps a message in two files (df: the data, qf: the envelope, written as tf and
renamed; docs/queue.md). Merging them into one file is the lever earlier measurements
named for the durable message rate. This measures the file system's side of it alone, with
the daemon's sequence of operations and no SMTP: for each message, in threads that stand
for concurrent sessions,

  two:  create df, write 1 KiB; create tf, write the envelope; fsync both; rename tf -> qf;
        fsync the subdirectory; then unlink df and qf and fsync the subdirectory (delivery)
  one:  create tf, write envelope + data; fsync; rename tf -> qf; fsync the subdirectory;
        then unlink qf and fsync the subdirectory

in 16 hashed subdirectories of a directory on the file system under test, alternating the
two layouts run by run. It reports messages per second and the process's user and system
CPU per message (medians). The system CPU is the kernel's file system work, which is what
the layout changes; Python's own overhead is in the user column and the same for both.

  bench/spool-files.py [--dir /var/tmp] [--messages 3000] [--threads 32] [--repeats 5]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time

DATA = b"x" * 1024
ENVELOPE = b"e" * 400
SUBDIRS = 16


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path, data):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    os.write(fd, data)
    return fd


def one_message(base, i, layout):
    sub = os.path.join(base, f"{i % SUBDIRS:x}")
    tf, qf, df = (os.path.join(sub, f"{k}{i:016d}") for k in ("tf", "qf", "df"))
    if layout == "two":
        fds = [create(df, DATA), create(tf, ENVELOPE)]
    else:
        fds = [create(tf, ENVELOPE + DATA)]
    for fd in fds:
        os.fsync(fd)
        os.close(fd)
    os.rename(tf, qf)
    fsync_dir(sub)
    if layout == "two":
        os.unlink(df)
    os.unlink(qf)
    fsync_dir(sub)


def run(parent, layout, messages, threads):
    base = tempfile.mkdtemp(prefix=f"spool-files-{layout}.", dir=parent)
    try:
        for s in range(SUBDIRS):
            os.mkdir(os.path.join(base, f"{s:x}"))
        workers = [threading.Thread(target=lambda t=t: [one_message(base, i, layout)
                                                        for i in range(t, messages, threads)])
                   for t in range(threads)]
        c0, t0 = os.times(), time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        c1, t1 = os.times(), time.monotonic()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"rate": messages / (t1 - t0), "user_us": (c1.user - c0.user) * 1e6 / messages,
            "sys_us": (c1.system - c0.system) * 1e6 / messages}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/var/tmp", help="a directory on the file system under test")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = {"two": [], "one": []}
    for _ in range(args.repeats):
        for layout in results:
            results[layout].append(run(args.dir, layout, args.messages, args.threads))
    print(f"{args.messages} messages, {args.threads} threads, {args.repeats} runs each, in {args.dir}")
    print("| files per message | msgs/s | user µs/msg | system µs/msg | system µs, runs |")
    print("|---|---:|---:|---:|---|")
    for layout, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {layout} | {med['rate']:,.0f} | {med['user_us']:.0f} | {med['sys_us']:.0f} | "
              + ", ".join(f"{r['sys_us']:.0f}" for r in runs) + " |")


if __name__ == "__main__":
    main()
