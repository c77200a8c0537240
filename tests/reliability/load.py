#!/usr/bin/python3
"""Load: N concurrent clients each send single-sample `reconstruct` requests (interactive), one
at a time, for --seconds, while one more client runs a large `submit` batch. Figures:
interactive throughput, latency p50/p99/max, the batch's results per --window (10 s; the
daemon guarantees batches a share of worker time, `batch-share-pct`), supervisor and worker RSS
at start, peak (sampled every 200 ms) and end, errors by code. Not a test: a measurement. Bounded:
--seconds of load, then --grace seconds for the answers still due; the batch is cancelled when
the load ends.

    tests/reliability/load.py [--qtomod BUILD/daemon/qtomod] [--clients 200] [--seconds 60]
        [--batch 50000] [--methods linear] [--batch-methods linear,mle] [--workers 2] [--json]

Exits 1 when a request was unanswered, a request or a result map failed with anything but BUSY
(retried after retry_after_ms) or the batch's own cancel, or the batch got no result in a
window it spent entirely in flight while the load ran.
"""
import argparse
import asyncio
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import children, columns, rss_kb  # noqa: E402
EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")
BUSY, CANCELLED = -32001, -32800
CONNECT_EAGAIN = [0]


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def values(cols, n):
    m = len(cols[0])
    flat = [v for i in range(n) for v in cols[i % len(cols)]]
    return {"dtype": "f64le", "shape": [m, n], "data": struct.pack("<%dd" % (m * n), *flat)}


class Sampler(threading.Thread):
    """Supervisor RSS, and the sum and the largest of its children's RSS, every 200 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak = pid, threading.Event(), None

    def sample(self):
        kids = [rss_kb(k) for k in children(self.pid)]
        return {"sup_kb": rss_kb(self.pid), "workers_sum_kb": sum(kids),
                "worker_max_kb": max(kids) if kids else 0, "n_workers": len(kids)}

    def run(self):
        while not self.stop.is_set():
            s = self.sample()
            self.peak = s if self.peak is None else {k: max(v, self.peak[k]) for k, v in s.items()}
            time.sleep(0.2)


async def read_msg(r):
    n = struct.unpack(">I", await r.readexactly(4))[0]
    return msgpack.unpackb(await r.readexactly(n), raw=False, strict_map_key=False)


async def open_conn(sock, limit):
    # AF_UNIX connect fails with EAGAIN while the listen backlog is full (asyncio's own connect
    # takes that for "in progress" and ends with an unconnected socket): retry, and count them
    end = time.monotonic() + 30
    while True:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(sock)
            break
        except BlockingIOError:
            s.close()
            CONNECT_EAGAIN[0] += 1
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.01)
    return await asyncio.open_unix_connection(sock=s, limit=limit)


async def hello(r, w):
    w.write(frame([0, 1, "hello", [{"proto": [1, 0], "client": "load.py"}]]))
    await w.drain()
    m = await read_msg(r)
    if m[2] is not None:
        raise RuntimeError("hello refused: %r" % (m[2],))
    return m[3]


class Stats:
    def __init__(self):
        self.lat, self.t_done, self.errors, self.unanswered = [], [], {}, 0
        self.map_errors, self.busy_retries, self.compute_ms = {}, 0, []

    def err(self, table, code):
        table[code] = table.get(code, 0) + 1


async def interactive(sock, cols, methods, stop_at, grace, st, k):
    r, w = await open_conn(sock, 1 << 22)
    await hello(r, w)
    rid = 1
    try:
        while time.monotonic() < stop_at:
            rid += 1
            col = cols[(k + rid) % len(cols)]
            req = [0, rid, "reconstruct", [{
                "values": {"dtype": "f64le", "shape": [len(col), 1],
                           "data": struct.pack("<%dd" % len(col), *col)},
                "design": "nopovm", "methods": methods}]]
            t = time.monotonic()
            w.write(frame(req))
            try:
                m = await asyncio.wait_for(read_msg(r), timeout=max(stop_at - t, 0) + grace)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                st.unanswered += 1
                return
            if m[0] != 1 or m[1] != rid:
                st.err(st.errors, "unexpected message")
                st.unanswered += 1
                return
            now = time.monotonic()
            if m[2] is not None:
                st.err(st.errors, m[2].get("code"))
                if m[2].get("code") == BUSY:
                    st.busy_retries += 1
                    await asyncio.sleep(((m[2].get("data") or {}).get("retry_after_ms", 10)) / 1e3)
                continue
            st.lat.append(now - t)
            st.compute_ms.append(m[3]["timing"]["compute_ms"])
            st.t_done.append(now)
            for rm in m[3]["results"]:
                if rm["status"] != "ok":
                    st.err(st.map_errors, rm["error"]["code"])
    finally:
        w.close()


async def batch(sock, vals, methods, out, started):
    r, w = await open_conn(sock, 1 << 26)
    await hello(r, w)
    w.write(frame([0, 2, "submit", [{"values": vals, "design": "nopovm", "methods": methods,
                                      "progress_ms": 0, "first_index": 0}]]))
    await w.drain()
    out["sent"] = time.monotonic()
    started.set()
    out["w"] = w
    seen = set()
    while True:
        m = await read_msg(r)
        if m[0] == 2 and m[1] == "result":
            p = m[2][0]
            out["times"].append(time.monotonic())
            out["dup"] += p["index"] in seen
            seen.add(p["index"])
            if any(rm["status"] != "ok" for rm in p["results"]):
                out["err_samples"] += 1
        elif m[0] == 1 and m[1] == 2:
            out["end"] = time.monotonic()
            out["error"], out["totals"] = m[2], m[3]
            break
        # the cancel's own response (id 3) is just read past
    w.close()


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


async def run(a, sock, cols):
    st = Stats()
    vals = values(cols, a.batch)
    out = {"times": [], "dup": 0, "err_samples": 0, "end": None, "error": None, "totals": None}
    started = asyncio.Event()
    bt = asyncio.ensure_future(batch(sock, vals, a.batch_methods, out, started))
    await started.wait()
    t0 = time.monotonic()
    stop_at = t0 + a.seconds
    tasks = [asyncio.ensure_future(interactive(sock, cols, a.methods, stop_at, a.grace, st, k))
             for k in range(a.clients)]
    await asyncio.gather(*tasks, return_exceptions=False)
    t_load_end = time.monotonic()
    if out["end"] is None:  # cancel the rest of the batch; its final response carries totals
        out["w"].write(frame([0, 3, "cancel", [{"id": 2}]]))
        try:
            await asyncio.wait_for(asyncio.shield(bt), a.grace)
        except asyncio.TimeoutError:
            bt.cancel()
            out["error"] = "batch final response not received"
    else:
        await bt
    return st, out, t0, stop_at, t_load_end


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--grace", type=float, default=30, help="wait this long for answers still due")
    ap.add_argument("--batch", type=int, default=50000)
    ap.add_argument("--methods", default="linear")
    ap.add_argument("--batch-methods", default="linear,mle")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--daemon-arg", action="append", default=[],
                    help="extra qtomod option, e.g. --daemon-arg=--batch-share-pct=50")
    ap.add_argument("--window", type=float, default=10, help="seconds per batch-results window")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    a.methods = a.methods.split(",")
    a.batch_methods = a.batch_methods.split(",")
    cols = columns()
    tmp = tempfile.mkdtemp(prefix="qtomo-load-")
    sock = os.path.join(tmp, "s.sock")
    extra = []
    for x in a.daemon_arg:
        extra += x.split("=", 1)
    log = open(os.path.join(tmp, "log"), "w+")
    d = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock, "--cache-dir",
                          os.path.join(tmp, "cache"), "--workers", str(a.workers),
                          "--max-connections", str(a.clients + 16), "--log-level", "4"] + extra,
                         stdout=log, stderr=log)
    end = time.time() + 20
    while not os.path.exists(sock) and time.time() < end:
        time.sleep(0.05)
    time.sleep(1.0)
    sampler = Sampler(d.pid)
    rss_start = sampler.sample()
    sampler.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    st, out, t0, stop_at, t_load_end = asyncio.run(run(a, sock, cols))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    sampler.stop.set()
    sampler.join()
    rss_end = sampler.sample()
    time.sleep(2)
    rss_after = sampler.sample()
    alive = d.poll() is None
    d.terminate()
    code = d.wait(60)

    # batch results per window of the load; a window counts when the batch was in flight for
    # the whole of it
    nwin = int(a.seconds // a.window)
    b_end = out["end"] if out["end"] is not None else float("inf")
    windows = []
    for k in range(nwin):
        lo, hi = t0 + k * a.window, t0 + (k + 1) * a.window
        nb = sum(1 for t in out["times"] if lo <= t < hi)
        ni = sum(1 for t in st.t_done if lo <= t < hi)
        windows.append({"window_s": [k * a.window, (k + 1) * a.window], "batch_results": nb,
                        "interactive_answers": ni, "checked": hi <= b_end})
    starved = [w for w in windows if w["checked"] and w["batch_results"] == 0]
    during = sum(1 for t in out["times"] if t0 <= t < stop_at)
    expected_batch_err = out["error"] is None or (isinstance(out["error"], dict) and
                                                  out["error"].get("code") == CANCELLED)
    unexpected = {c: n for c, n in st.errors.items() if c != BUSY}
    fig = {
        "clients": a.clients, "seconds": a.seconds, "methods": a.methods,
        "batch_samples": a.batch, "batch_methods": a.batch_methods, "workers": a.workers,
        "interactive_answered": len(st.lat),
        "throughput_rps": round(len(st.lat) / a.seconds, 1),
        "latency_ms": {"p50": round(pct(st.lat, 50) * 1e3, 2) if st.lat else None,
                       "p99": round(pct(st.lat, 99) * 1e3, 2) if st.lat else None,
                       "max": round(max(st.lat) * 1e3, 2) if st.lat else None},
        "compute_ms": {"p50": pct(st.compute_ms, 50), "p99": pct(st.compute_ms, 99)},
        "unanswered": st.unanswered, "errors_by_code": {str(k): v for k, v in st.errors.items()},
        "result_map_errors_by_code": {str(k): v for k, v in st.map_errors.items()},
        "busy_retries": st.busy_retries,
        "batch_results_during_load": during, "batch_results_total": len(out["times"]),
        "batch_duplicates": out["dup"], "batch_error_samples": out["err_samples"],
        "batch_final_error": out["error"], "batch_totals": out["totals"],
        "batch_done_s": round(out["end"] - t0, 1) if out["end"] else None,
        "windows": windows, "starved_windows": len(starved),
        "rss_kb": {"start": rss_start, "peak": sampler.peak, "end": rss_end,
                   "2s_after": rss_after},
        "loadgen_cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
        "connect_eagain": CONNECT_EAGAIN[0], "drain_s": round(t_load_end - stop_at, 2),
        "daemon_up": alive, "exit": code,
    }
    ok = (st.unanswered == 0 and not unexpected and not st.map_errors and not starved and
          expected_batch_err and out["err_samples"] == 0 and out["dup"] == 0 and alive)
    fig["ok"] = ok
    if a.json:
        print(json.dumps(fig))
    else:
        L = fig["latency_ms"]
        print("load: %d clients x %gs reconstruct %s + batch %d x %s, %d workers" %
              (a.clients, a.seconds, ",".join(a.methods), a.batch, ",".join(a.batch_methods),
               a.workers))
        print("  interactive: %d answered, %.1f req/s, latency p50 %s ms p99 %s ms max %s ms; "
              "unanswered %d; errors %s; result-map errors %s" %
              (len(st.lat), fig["throughput_rps"], L["p50"], L["p99"], L["max"], st.unanswered,
               fig["errors_by_code"], fig["result_map_errors_by_code"]))
        print("  interactive compute_ms (the worker's own time per request) p50 %s p99 %s" %
              (fig["compute_ms"]["p50"], fig["compute_ms"]["p99"]))
        print("  batch: %d results during the load, %d total, final %s %s" %
              (during, len(out["times"]), out["error"], out["totals"]))
        for w in windows:
            print("    %3g-%3gs: batch %6d  interactive %6d%s" %
                  (w["window_s"][0], w["window_s"][1], w["batch_results"],
                   w["interactive_answers"], "" if w["checked"] else "  (batch done)"))
        for k in ("start", "peak", "end", "2s_after"):
            s = fig["rss_kb"][k]
            print("  RSS %-8s supervisor %7.1f MB, workers sum %7.1f MB (largest %6.1f MB, %d)" %
                  (k, s["sup_kb"] / 1024, s["workers_sum_kb"] / 1024, s["worker_max_kb"] / 1024,
                   s["n_workers"]))
        print("  connects retried after EAGAIN (listen backlog full): %d" % CONNECT_EAGAIN[0])
        print("  load generator CPU %.1f s; daemon up %s, exit %s; %s" %
              (fig["loadgen_cpu_s"], alive, code, "OK" if ok else "PROMISE BROKEN"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
