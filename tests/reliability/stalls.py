#!/usr/bin/python3
"""Stalls: a well-behaved client sends `status` (the protocol has no ping; `status` is answered
by the supervisor itself) every 10 ms and records each latency, while misbehaving clients load
the daemon in bounded phases:

  idle  nothing else (the baseline);
  a     50 clients each submit a large batch and never read;
  b     waves of 50 clients that submit a batch and vanish mid-stream: a quarter close right
        after sending, a quarter close half-way through sending the frame, half read a few
        results first; 10 more per wave sit in a subprocess that is SIGKILLed;
  c     12 clients each send one ~57 MB `submit` frame (445,000 samples of nopovm d = 4, 16
        doubles each), then read and discard;
  d     all of a, b and c at once.

Per phase: ping p50/p99/max, pings over 20 and 100 ms, the pinger's own oversleep (how late its
10 ms timer fired: the machine's share of the latency), the supervisor's peak RSS against the
bound the configuration implies, and the daemon's totals and queues before, at the end and after
the phase (was the misbehaving clients' work paused, cancelled?). The pinger is a separate
process so that the load generator's GIL does not delay it. Not a test: a measurement. Bounded:
--phase-seconds per phase plus at most 15 s of cool-down.

    tests/reliability/stalls.py [--qtomod BUILD/daemon/qtomod] [--phases idle,a,b,c,d]
        [--phase-seconds 15] [--limits raised|default] [--p99-ms 20] [--perf PHASE] [--json]

--limits raised passes --max-queue 20000000 so that the phases' batches are accepted (the 57 MB
frames are within the default max-frame, 64 MiB, and max-batch, 1,000,000); --limits default
runs the daemon with its defaults, under which most of them are refused with BUSY (max-queue
100,000 samples). Exits 1 when a phase's ping p99 exceeds --p99-ms, a ping went unanswered or
the daemon died.
"""
import argparse
import json
import os
import random
import select
import signal
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
from rel_common import columns, rss_kb  # noqa: E402
EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")
HELLO = [0, 1, "hello", [{"proto": [1, 0], "client": "stalls.py"}]]


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def submit_frame(n, rid=2):
    cols = columns()
    m = len(cols[0])
    unit = b"".join(struct.pack("<%dd" % m, *c) for c in cols)
    reps, rest = divmod(n, len(cols))
    data = unit * reps + unit[:rest * m * 8]
    return frame([0, rid, "submit", [{"values": {"dtype": "f64le", "shape": [m, n], "data": data},
                                      "design": "nopovm", "methods": ["linear", "mle"],
                                      "progress_ms": 0, "first_index": 0}]])


def read_msg(s):
    def exact(k):
        b = bytearray()
        while len(b) < k:
            x = s.recv(k - len(b))
            if not x:
                raise ConnectionError("closed")
            b += x
        return bytes(b)
    n = struct.unpack(">I", exact(4))[0]
    return msgpack.unpackb(exact(n), raw=False, strict_map_key=False)


def connect(sock, rcvbuf=None, timeout=30):
    s = socket.socket(socket.AF_UNIX)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(sock)
    return s


# --- the well-behaved client (a subprocess) ---------------------------------------------------

def pinger(sock, interval):
    """status every interval until stdin closes; prints [[t_send, latency, oversleep], ...]."""
    s = connect(sock, timeout=10)
    s.sendall(frame(HELLO))
    read_msg(s)
    out, rid = [], 1
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    due = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        t = time.monotonic()
        late = t - due
        rid += 1
        s.sendall(frame([0, rid, "status", [{}]]))
        try:
            m = read_msg(s)
            lat = time.monotonic() - t
            if m[0] != 1 or m[1] != rid or m[2] is not None:
                lat = -1.0
        except (OSError, ConnectionError):
            lat = -1.0  # unanswered
        out.append([t, lat, late])
        if lat < 0:
            break
        due = max(due + interval, time.monotonic())
    json.dump(out, sys.stdout)
    return 0


def vanisher(sock, clients, samples):
    """clients connections that submit a batch and read results until SIGKILLed."""
    fr = frame(HELLO) + submit_frame(samples)
    conns = []
    for _ in range(clients):
        try:
            s = connect(sock, timeout=5)
            s.sendall(fr)
            s.setblocking(False)
            conns.append(s)
        except OSError:
            pass
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while conns:
        r, _, _ = select.select(conns, [], [], 1)
        for s in r:
            try:
                if not s.recv(65536):
                    conns.remove(s)
            except OSError:
                conns.remove(s)
    time.sleep(3600)


# --- the misbehaving clients -----------------------------------------------------------------

class NonReaders:
    """Phase a: n clients submit a batch each and never read."""

    def __init__(self, sock, n, samples, fr):
        self.conns, self.sent_bytes = [], 0
        for _ in range(n):
            s = connect(sock, rcvbuf=4096)
            s.sendall(frame(HELLO) + fr)
            self.sent_bytes += len(fr)
            self.conns.append(s)

    def close(self):
        for s in self.conns:
            s.close()


class Waves(threading.Thread):
    """Phase b: every wave_s a wave of n in-process vanishing clients plus k in a subprocess."""

    def __init__(self, sock, fr, samples, n, k, wave_s, until):
        super().__init__(daemon=True)
        self.sock, self.fr, self.samples, self.n, self.k = sock, fr, samples, n, k
        self.wave_s, self.until, self.rnd = wave_s, until, random.Random(5)
        self.waves = self.clients = self.killed = self.read_failed = 0

    def one(self, kind):
        try:
            s = connect(self.sock, rcvbuf=16384, timeout=5)
            if kind == 1:  # close half-way through the frame
                s.sendall(frame(HELLO) + self.fr[:len(self.fr) // 2])
            else:
                s.sendall(frame(HELLO) + self.fr)
                if kind >= 2:  # read a few frames first
                    for _ in range(self.rnd.randint(1, 40)):
                        read_msg(s)
            if kind == 3:
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        except (OSError, ConnectionError):
            self.read_failed += 1

    def run(self):
        while time.monotonic() < self.until:
            t = time.monotonic()
            p = subprocess.Popen([sys.executable, __file__, "--vanisher", self.sock,
                                  "--vanisher-clients", str(self.k), "--vanisher-samples",
                                  str(self.samples)], stdout=subprocess.PIPE)
            th = [threading.Thread(target=self.one, args=(i % 4,)) for i in range(self.n)]
            for x in th:
                x.start()
            p.stdout.readline()
            time.sleep(self.rnd.uniform(0.1, 0.6))
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.killed += self.k
            for x in th:
                x.join()
            self.waves += 1
            self.clients += self.n + self.k
            time.sleep(max(0, self.wave_s - (time.monotonic() - t)))


class BigFrames:
    """Phase c: n clients each send one big submit frame, then read and discard."""

    def __init__(self, sock, n, fr):
        self.sock, self.fr, self.stop = sock, fr, threading.Event()
        self.first_reply_s, self.errors, self.results = [], {}, 0
        self.lock = threading.Lock()
        self.th = [threading.Thread(target=self.one, daemon=True) for _ in range(n)]
        for x in self.th:
            x.start()

    def one(self):
        try:
            s = connect(self.sock, timeout=1)
            s.sendall(frame(HELLO))
            read_msg(s)
            s.settimeout(120)
            s.sendall(self.fr)
            t = time.monotonic()
            s.settimeout(0.5)
            first = True
            while not self.stop.is_set():
                try:
                    m = read_msg(s)
                except socket.timeout:
                    continue
                with self.lock:
                    if first:
                        self.first_reply_s.append(time.monotonic() - t)
                        first = False
                    if m[0] == 1:
                        c = m[2]["code"] if m[2] else "ok"
                        self.errors[c] = self.errors.get(c, 0) + 1
                        break
                    if m[0] == 2 and m[1] == "result":
                        self.results += 1
            s.close()
        except (OSError, ConnectionError) as e:
            with self.lock:
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1

    def close(self):
        self.stop.set()
        for x in self.th:
            x.join(30)


# --- the run ----------------------------------------------------------------------------------

class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.s = pid, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            self.s.append((time.monotonic(), rss_kb(self.pid)))
            time.sleep(0.1)

    def peak(self, lo, hi):
        return max([r for t, r in self.s if lo <= t <= hi] or [0])


def stats(sock):
    s = connect(sock, timeout=10)
    s.sendall(frame(HELLO) + frame([0, 2, "stats", [{}]]))
    read_msg(s)
    m = read_msg(s)
    s.close()
    r = m[3]
    return {"items": r["totals"]["items"], "queue": r["queue"], "inflight": r["inflight"],
            "n_workers": r["n_workers"]}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--phases", default="idle,a,b,c,d")
    ap.add_argument("--phase-seconds", type=float, default=15)
    ap.add_argument("--idle-seconds", type=float, default=5)
    ap.add_argument("--limits", choices=("raised", "default"), default="raised")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--p99-ms", type=float, default=20)
    ap.add_argument("--nonreaders", type=int, default=50)
    ap.add_argument("--nonreader-samples", type=int, default=5000)
    ap.add_argument("--wave-clients", type=int, default=40)
    ap.add_argument("--wave-killed", type=int, default=10)
    ap.add_argument("--wave-samples", type=int, default=2000)
    ap.add_argument("--wave-ms", type=float, default=1000)
    ap.add_argument("--big-clients", type=int, default=12)
    ap.add_argument("--big-samples", type=int, default=445000)
    ap.add_argument("--daemon-arg", action="append", default=[],
                    help="extra qtomod option, e.g. --daemon-arg=--write-high-water-kb=512")
    ap.add_argument("--perf", default="", help="perf record -g the supervisor during this phase")
    ap.add_argument("--dump-pings", help="write [t_send, latency, oversleep] of every ping here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pinger", help=argparse.SUPPRESS)
    ap.add_argument("--vanisher", help=argparse.SUPPRESS)
    ap.add_argument("--vanisher-clients", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--vanisher-samples", type=int, default=2000, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pinger:
        return pinger(a.pinger, a.interval_ms / 1000)
    if a.vanisher:
        return vanisher(a.vanisher, a.vanisher_clients, a.vanisher_samples)

    tmp = tempfile.mkdtemp(prefix="qtomo-stalls-")
    sock = os.path.join(tmp, "s.sock")
    extra = ["--max-queue", "20000000"] if a.limits == "raised" else []
    for x in a.daemon_arg:
        extra += x.split("=", 1)
    log = open(os.path.join(tmp, "log"), "w+")
    d = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock, "--cache-dir",
                          os.path.join(tmp, "cache"), "--workers", str(a.workers),
                          "--max-connections", "1024", "--log-level", "4"] + extra,
                         stdout=log, stderr=log)
    end = time.time() + 20
    while not os.path.exists(sock) and time.time() < end:
        time.sleep(0.05)
    time.sleep(1.0)
    s = connect(sock)
    s.sendall(frame(HELLO))
    limits = read_msg(s)[3]["limits"]
    s.close()
    conf = subprocess.run([a.qtomod, "--config", "/dev/null", "--dump-config"] + extra,
                          capture_output=True, text=True).stdout
    high_kb = int(next((ln.split("=")[1] for ln in conf.splitlines()
                        if ln.strip().startswith("write-high-water-kb")), "8192"))
    fr_nr = submit_frame(a.nonreader_samples)
    fr_wave = submit_frame(a.wave_samples)
    fr_big = submit_frame(a.big_samples) if ("c" in a.phases or "d" in a.phases) else b""
    smp = Sampler(d.pid)
    smp.start()
    pg = subprocess.Popen([sys.executable, __file__, "--pinger", sock, "--interval-ms",
                           str(a.interval_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.5)
    phases = []
    for ph in a.phases.split(","):
        before = stats(sock)
        rss0 = rss_kb(d.pid)
        perf = None
        secs = a.idle_seconds if ph == "idle" else a.phase_seconds
        if a.perf == ph:
            pdata = os.path.join(tmp, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-g", "-k", "CLOCK_MONOTONIC", "-o", pdata,
                                     "-p", str(d.pid),
                                     "--", "sleep", str(secs)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        until = t0 + secs
        nr = wv = bf = None
        bound_kb = rss0
        if ph in ("a", "d"):
            nr = NonReaders(sock, a.nonreaders, a.nonreader_samples, fr_nr)
            bound_kb += a.nonreaders * (high_kb + len(fr_nr) // 1024)
        if ph in ("b", "d"):
            wv = Waves(sock, fr_wave, a.wave_samples, a.wave_clients, a.wave_killed,
                       a.wave_ms / 1000, until)
            wv.start()
            # a wave's clients at once, each its frame and the high-water mark
            bound_kb += (a.wave_clients + a.wave_killed) * (high_kb + len(fr_wave) // 1024)
        if ph in ("c", "d"):
            bf = BigFrames(sock, a.big_clients, fr_big)
            bound_kb += a.big_clients * (high_kb + len(fr_big) // 1024)
        time.sleep(max(0, until - time.monotonic()))
        at_end = stats(sock)
        if wv:
            wv.join()
        if nr:
            nr.close()
        if bf:
            bf.close()
        t1 = time.monotonic()
        if perf:
            perf.wait()
        # cool-down: until nothing is queued or in flight but the stats request itself
        cool_end = time.monotonic() + 15
        while time.monotonic() < cool_end:
            after = stats(sock)
            if after["inflight"] <= 1 and not after["queue"]["interactive"] and \
                    not after["queue"]["batch"]:
                break
            time.sleep(0.1)
        t2 = time.monotonic()
        phases.append({"phase": ph, "t": (t0, t1), "drain_s": round(t2 - t1, 2),
                       "rss_start_kb": rss0, "rss_peak_kb": smp.peak(t0, t2),
                       "rss_after_kb": rss_kb(d.pid), "bound_kb": bound_kb,
                       "before": before, "at_end": at_end, "after": after,
                       "nonreaders": a.nonreaders if nr else 0,
                       "waves": wv and {"waves": wv.waves, "clients": wv.clients,
                                        "sigkilled": wv.killed, "read_failed": wv.read_failed},
                       "big": bf and {"first_reply_s": [round(x, 2) for x in bf.first_reply_s],
                                      "final": {str(k): v for k, v in bf.errors.items()},
                                      "results_read": bf.results,
                                      "frame_mb": round(len(fr_big) / 1e6, 1)},
                       "perf": pdata if perf else None})
        time.sleep(1)
    pg.stdin.close()
    pings = json.loads(pg.stdout.read())
    pg.wait()
    if a.dump_pings:
        with open(a.dump_pings, "w") as f:
            json.dump({"pings": pings, "phases": [[p["phase"]] + list(p["t"]) for p in phases]}, f)
    smp.stop.set()
    alive = d.poll() is None
    d.terminate()
    code = d.wait(60)
    unanswered = sum(1 for p in pings if p[1] < 0)
    ok = alive and unanswered == 0
    for p in phases:
        lo, hi = p.pop("t")
        lat = [x[1] * 1e3 for x in pings if lo <= x[0] <= hi and x[1] >= 0]
        late = [x[2] * 1e3 for x in pings if lo <= x[0] <= hi]
        p["pings"] = len(lat)
        p["ping_ms"] = {"p50": round(pct(lat, 50), 2), "p99": round(pct(lat, 99), 2),
                        "max": round(max(lat), 1)} if lat else None
        p["over_20ms"] = sum(1 for x in lat if x > 20)
        p["over_100ms"] = sum(1 for x in lat if x > 100)
        p["oversleep_ms"] = {"p99": round(pct(late, 99), 2), "max": round(max(late), 1)} \
            if late else None
        p["p99_ok"] = bool(lat) and pct(lat, 99) <= a.p99_ms
        ok = ok and p["p99_ok"]
    fig = {"limits": a.limits, "hello_limits": limits, "write_high_water_kb": high_kb,
           "workers": a.workers, "daemon_args": extra, "phases": phases,
           "unanswered_pings": unanswered, "daemon_up": alive, "exit": code, "ok": ok}
    if a.json:
        print(json.dumps(fig))
    else:
        print("stalls: limits %s %s, write-high-water %d KB, %d workers; extra %s" %
              (a.limits, limits, high_kb, a.workers, extra))
        for p in phases:
            pm = p["ping_ms"] or {}
            print("  %-4s pings %5d p50 %6s p99 %6s max %7s ms, >20 ms %4d, >100 ms %3d; "
                  "pinger oversleep p99 %s ms; supervisor RSS %.1f -> peak %.1f MB (bound %.1f "
                  "MB), after %.1f MB; drain %.1f s" %
                  (p["phase"], p["pings"], pm.get("p50"), pm.get("p99"), pm.get("max"),
                   p["over_20ms"], p["over_100ms"], (p["oversleep_ms"] or {}).get("p99"),
                   p["rss_start_kb"] / 1024, p["rss_peak_kb"] / 1024, p["bound_kb"] / 1024,
                   p["rss_after_kb"] / 1024, p["drain_s"]))
            print("       items %d -> %d (end of phase) -> %d; queue at end %s inflight %d; "
                  "after %s inflight %d%s%s" %
                  (p["before"]["items"], p["at_end"]["items"], p["after"]["items"],
                   p["at_end"]["queue"], p["at_end"]["inflight"], p["after"]["queue"],
                   p["after"]["inflight"], "; waves %s" % p["waves"] if p["waves"] else "",
                   "; big %s" % p["big"] if p["big"] else ""))
            if p["perf"]:
                print("       perf data: %s" % p["perf"])
        print("  unanswered pings %d; daemon up %s, exit %s; %s" %
              (unanswered, alive, code, "OK" if ok else "PROMISE BROKEN"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
