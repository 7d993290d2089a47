#!/usr/bin/env python3
"""bench/queue-bench.py -- the million-message queue benchmark (issue 9). Not a test: it
measures and prints, and asserts nothing.

  1. index     bench/queue_bench index N: queue/queue_index.h alone at N entries: bytes per
               entry, push, peek (the next due message), pop + push back (a deferral),
               lookup by id, pop.
  2. fill      bench/queue_bench fill SPOOL N: N deferred messages (one recipient, next
               attempt a day ahead) written straight into the sharded spool through
               queue/ (envelope_write, spool_msg_path), one syncfs at the end. Skipped with
               --reuse when SPOOL already holds them (a fill of a million takes minutes on
               a slow disk).
  3. baseline  ringmaild on an empty spool: time from exec to "ready", the engine's RSS
               and PSS (/proc/PID/smaps_rollup) once the (empty) queue is read.
  4. recovery  ringmaild on the full spool, --repeats times (page cache warm after the
               first; --cold drops the caches before each, which needs root and slows the
               whole machine for a while): time to "ready" (the spool's listing runs before
               it), how long an SMTP greeting takes right after it, time until the summary
               line "N message(s) queued" (the envelopes are read in the background after
               ready), the engine's CPU at both, its RSS/PSS and peak RSS once the queue is
               read. Memory per queued message = (full - baseline) / N.

The daemon: BUILD_DIR/ringmaild (a Release build: --build-dir, default build-bench, built
here unless BUILD=0), with the integration harness's base configuration (loopback only,
DNS pointed at a closed port) and the spool given. Nothing is delivered while it runs:
every message is due a day later. Prints one JSON object and a Markdown table on stdout.

    bench/queue-bench.py --messages 1000000 --spool /var/tmp/qbench --reuse
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from ringmail_harness import SMTPConn, base_config, free_port, to_yaml  # noqa: E402

READY_TIMEOUT = 600.0


def build(build_dir: Path) -> None:
    if os.environ.get("BUILD", "1") == "0":
        return
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir),
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", "ringmaild",
                    "queue_bench"], check=True, stdout=subprocess.DEVNULL)


def run_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[0])


def count_qf(spool: Path) -> int:
    return sum(1 for _, _, files in os.walk(spool) for f in files if f.startswith("qf"))


def memory(pid: int) -> dict:
    """kB figures of smaps_rollup (Rss, Pss, Anonymous, Private_Dirty) and the peak RSS."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m and m.group(1) in ("Rss", "Pss", "Anonymous", "Private_Dirty"):
                out[m.group(1)] = int(m.group(2))
    with open(f"/proc/{pid}/status") as f:
        out["VmHWM"] = int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system time of a process so far (its threads included): recovery's CPU,
    which the machine's other load does not change as much as the wall time."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def engine_pid(parent: int) -> int:
    """The engine: the parent's only child once the pickup's fork (twice, so that it leaves
    the parent at once) is gone."""
    deadline = time.monotonic() + 5
    while True:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            children = f.read().split()
        if len(children) == 1:
            return int(children[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"ringmaild (pid {parent}) has children {children}")
        time.sleep(0.01)


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def wait_log(proc, log_path: Path, offset: int, pattern: str, t0: float) -> str:
    """The log since `offset` once `pattern` is in it."""
    text = ""
    while not re.search(pattern, text):
        if proc.poll() is not None:
            raise RuntimeError(f"ringmaild exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() - t0 > READY_TIMEOUT:
            raise RuntimeError(f"no {pattern!r} within {READY_TIMEOUT} s:\n{text[-3000:]}")
        time.sleep(0.01)
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    return text


def greeting_s(port: int) -> float:
    """Seconds from connect to the whole 220 greeting: the daemon serves while it reads."""
    t0 = time.monotonic()
    c = SMTPConn(port, timeout=60)
    took = time.monotonic() - t0
    c.close()
    return round(took, 4)


def start_measure(daemon: Path, workdir: Path, spool: Path, workers: int) -> dict:
    """Starts ringmaild on `spool`, waits for "ready" (the listing), then for the summary
    line (every envelope read), measures, stops it."""
    port = free_port()
    cfg = base_config(workdir, port)
    cfg["spool"] = str(spool)
    cfg["workers"] = workers
    conf = workdir / "ringmail.yaml"
    conf.write_text("\n".join(to_yaml(cfg)) + "\n")
    log_path = workdir / "ringmaild.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen([str(daemon), "--config", str(conf), "--foreground"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=workdir, start_new_session=True)
    try:
        wait_log(proc, log_path, offset, r"\bready\b", t0)
        ready_s = time.monotonic() - t0
        eng = engine_pid(proc.pid)
        result = {"ready_s": round(ready_s, 3), "greeting_s": greeting_s(port),
                  "engine_cpu_ready_s": cpu_seconds(eng)}
        text = wait_log(proc, log_path, offset, r"\d+ message\(s\) queued", t0)
        result["recovered_s"] = round(time.monotonic() - t0, 3)
        result["engine_cpu_s"] = cpu_seconds(eng)
        time.sleep(1.0)  # the workers have taken the last boxes
        result["engine"] = memory(eng)
        result["parent"] = memory(proc.pid)
        m = re.search(r"(\d+) message\(s\) queued", text)
        result["queued"] = int(m.group(1)) if m else None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--spool", type=Path, help="the spool to fill (default: a new temp dir)")
    ap.add_argument("--reuse", action="store_true", help="SPOOL already holds the messages")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each start")
    ap.add_argument("--fill-threads", type=int, default=2)
    args = ap.parse_args()

    build(args.build_dir)
    args.build_dir = args.build_dir.resolve()
    daemon = args.build_dir / "ringmaild"
    tool = args.build_dir / "bench" / "queue_bench"
    work = Path(tempfile.mkdtemp(prefix="ringmail-qbench-"))
    spool = args.spool or work / "spool"
    res = {"messages": args.messages, "spool": str(spool), "workers": args.workers}

    sys.stderr.write(f"index: {args.messages} entries\n")
    res["index"] = run_json([str(tool), "index", str(args.messages)])

    if args.reuse:
        found = count_qf(spool)
        if found != args.messages:
            sys.stderr.write(f"--reuse: {spool} holds {found} messages, not {args.messages}\n")
            return 1
    else:
        sys.stderr.write(f"fill: {args.messages} messages into {spool}\n")
        res["fill"] = run_json([str(tool), "fill", str(spool), str(args.messages),
                                "--threads", str(args.fill_threads)])

    empty = work / "empty-spool"
    sys.stderr.write("baseline: empty spool\n")
    res["baseline"] = start_measure(daemon, work, empty, args.workers)
    res["runs"] = []
    for i in range(args.repeats):
        if args.cold:
            drop_caches()
        sys.stderr.write(f"recovery run {i + 1}/{args.repeats}\n")
        r = start_measure(daemon, work, spool, args.workers)
        if r["queued"] != args.messages:
            sys.stderr.write(f"the daemon queued {r['queued']}, not {args.messages}\n")
        res["runs"].append(r)

    base = res["baseline"]["engine"]
    best = min(res["runs"], key=lambda r: r["ready_s"])
    per = {k: (best["engine"][k] - base[k]) * 1024 / args.messages for k in base
           if k != "VmHWM"}
    res["per_message_bytes"] = {k: round(v, 1) for k, v in per.items()}
    print(json.dumps(res))
    idx = res["index"]
    print("\n| figure | value |\n|---|---|")
    print(f"| messages queued | {args.messages:,} ({args.workers} workers) |")
    if "fill" in res:
        print(f"| fill (queue_bench, {res['fill']['threads']} threads) | "
              f"{res['fill']['with_sync_s']:.1f} s |")
    print(f"| start to ready, empty spool | {res['baseline']['ready_s']:.2f} s |")
    print("| start to ready, full spool | " +
          ", ".join(f"{r['ready_s']:.2f} s" for r in res["runs"]) +
          (" (cold cache each)" if args.cold else " (first may be cold)") + " |")
    print("| SMTP greeting right after ready | " +
          ", ".join(f"{r['greeting_s'] * 1000:.1f} ms" for r in res["runs"]) + " |")
    print("| start to the queue read (summary line) | " +
          ", ".join(f"{r['recovered_s']:.2f} s" for r in res["runs"]) + " |")
    print("| engine CPU (user + sys) until ready / until read, full spool | " +
          ", ".join(f"{r['engine_cpu_ready_s']:.2f} / {r['engine_cpu_s']:.2f} s"
                    for r in res["runs"]) + " |")
    print(f"| engine PSS, empty / full | {base['Pss'] / 1024:.1f} / "
          f"{best['engine']['Pss'] / 1024:.1f} MiB |")
    print(f"| memory per queued message (PSS, RSS, anonymous) | {per['Pss']:.0f} / "
          f"{per['Rss']:.0f} / {per['Anonymous']:.0f} bytes |")
    print(f"| engine peak RSS (VmHWM: the listing), empty / full | "
          f"{base['VmHWM'] / 1024:.1f} / {best['engine']['VmHWM'] / 1024:.1f} MiB |")
    print(f"| queue_index bytes per entry (own count, RSS growth) | "
          f"{idx['index_bytes_per_entry']:.0f}, {idx['rss_growth_per_entry']:.0f} |")
    print(f"| next due message: peek, pop + push back, pop | {idx['peek_ns']:.1f} ns, "
          f"{idx['pop_push_ns']:.0f} ns, {idx['pop_ns']:.0f} ns |")
    print(f"| push, lookup by id | {idx['push_ns']:.0f} ns, {idx['contains_ns']:.0f} ns |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
