#!/usr/bin/python3
"""Chaos: a big submit while a killer SIGKILLs the supervisor's children (busy, idle or
starting workers) at a fixed interval; every sample must come back exactly once with the result
of a clean run, and the daemon must stay up. Not a test by itself (tests/integration runs a
short version): a measurement with figures for tests/reliability/README.md. Bounded in samples,
kills and time.

    tests/reliability/chaos.py [--qtomod BUILD/daemon/qtomod] [--samples 20000]
        [--interval-ms 200] [--aim any|starting] [--seconds 300] [--json]

--aim starting also kills every new child the moment it appears (workers in start-up), besides
one random child every interval.
Results are compared after a msgpack round trip, so "identical" means bit for bit.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import children, columns, pool_size, wait_workers  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import qtomo_client as q  # noqa: E402

EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")


class Daemon:
    def __init__(self, qtomod, workers):
        self.dir = tempfile.mkdtemp(prefix="qtomo-chaos-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([qtomod, "--config", "/dev/null", "--socket", self.sock,
                                      "--cache-dir", os.path.join(self.dir, "cache"),
                                      "--workers", str(workers), "--log-level", "4"],
                                     stderr=self.log, stdout=self.log)
        wait_workers(q, self.sock, pool_size(workers))

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(60)


def run_batch(sock, cols, methods):
    out, dup = {}, 0
    with q.Client(sock, timeout=600, numpy=False) as c:
        for idx, res in c.submit(cols, design="nopovm", methods=methods):
            dup += idx in out
            out[idx] = res
        totals = c.last_totals
    return out, dup, totals


def killer(pid, interval, aim, stop, kills):
    seen = set(children(pid))
    rnd = random.Random(7)
    next_kill = time.time() + interval
    while not stop.is_set():
        kids = children(pid)
        new = [k for k in kids if k not in seen]
        seen.update(kids)
        if aim == "starting" and new:  # a worker that just appeared: kill it while it starts
            target = new[-1]
        elif time.time() >= next_kill and kids:
            target = rnd.choice(kids)
        else:
            time.sleep(0.001)
            continue
        try:
            os.kill(target, signal.SIGKILL)
            kills.append(target)
        except ProcessLookupError:
            pass
        next_kill = time.time() + interval


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--interval-ms", type=float, default=200)
    ap.add_argument("--aim", choices=("any", "starting"), default="any")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cols = columns(a.samples)
    methods = ("linear", "mle")
    d = Daemon(a.qtomod, a.workers)
    t0 = time.time()
    ref, _, _ = run_batch(d.sock, cols, methods)
    clean_s = time.time() - t0
    stop, kills = threading.Event(), []
    th = threading.Thread(target=killer, args=(d.proc.pid, a.interval_ms / 1000, a.aim, stop,
                                               kills))
    th.start()
    timer = threading.Timer(a.seconds, stop.set)
    timer.start()
    t0 = time.time()
    try:
        got, dup, totals = run_batch(d.sock, cols, methods)
    finally:
        stop.set()
        timer.cancel()
        th.join()
    chaos_s = time.time() - t0
    alive = d.proc.poll() is None
    with q.Client(d.sock, timeout=30) as c:
        st = c.stats()["totals"] if alive else {}
    lost = sum(1 for i in range(len(cols)) if i not in got)
    errors = sum(1 for r in got.values() if any(m["status"] != "ok" for m in r))
    wrong = sum(1 for i, r in got.items() if r != ref.get(i)) - errors
    code = d.stop() if alive else d.proc.returncode
    fig = {"samples": len(cols), "interval_ms": a.interval_ms, "aim": a.aim, "kills": len(kills),
           "lost": lost, "duplicated": dup, "errors": errors, "wrong": wrong,
           "daemon_up": alive, "exit": code, "clean_s": round(clean_s, 2),
           "chaos_s": round(chaos_s, 2), "totals": st, "submit_totals": totals}
    if a.json:
        print(json.dumps(fig))
    else:
        print("chaos: %(samples)d samples, SIGKILL every %(interval_ms)g ms (%(aim)s): "
              "%(kills)d kills, %(lost)d lost, %(duplicated)d duplicated, %(errors)d errors, "
              "%(wrong)d wrong; daemon up %(daemon_up)s (exit %(exit)s); clean run %(clean_s)s s, "
              "under chaos %(chaos_s)s s; daemon totals %(totals)s" % fig)
    return 0 if (alive and lost == 0 and dup == 0 and wrong == 0 and errors == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
