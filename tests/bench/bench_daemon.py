#!/usr/bin/python3
"""bench_daemon.py: performance of the daemon path (qtomod + the Python client), not a test.

Starts the real `qtomod` on a private socket in a temporary directory (fresh projector cache
each time) and measures, through client/python/qtomo_client.py:

  (a) interactive latency: single-sample `reconstruct` calls, cold (first call of a (design, d):
      the worker builds and maps the cache file) and warm (median, p90, p99 of the round trip,
      and the daemon's own `compute_ms` / `queue_ms`);
  (b) batch throughput: one `submit` of a replicated batch with 1 and 2 workers, samples/s,
      read two ways: "frames" (the client only unpacks msgpack frames, as a C client would) and
      "client" (qtomo_client.submit, which also decodes every rho and metric array in Python);
  (c) the same batches through `qtomoctl reconstruct FILE --local --json` (in-process; with
      OPENBLAS_NUM_THREADS=1, and once more with the environment as it is), for the ratio
      daemon/local; the fixed start-up cost (a 1-sample file) is measured and reported;
  (d) live latency under load: single reconstructs (nopovm d=4 linear) issued, with random gaps,
      while a big `submit` runs on another connection (a separate process), compared with the
      compute time of one chunk of that batch ("a live sample waits at most one chunk").

Everything runs once per OpenBLAS environment mode: `env` (OPENBLAS_CORETYPE as inherited) and
`unset` (removed: qtomod and qtomoctl choose the kernels themselves). Each measurement is repeated
(--repeats) and the tables show medians over the repeats; --json FILE keeps every raw number.

Run with /usr/bin/python3 (Debian's python3-msgpack):

    cmake --build build/release -j2
    /usr/bin/python3 tests/bench/bench_daemon.py            # full run, a few minutes
    /usr/bin/python3 tests/bench/bench_daemon.py --quick    # smoke run, a few seconds

Exit status: 0, or 1 when a request failed or a sample did not come back `ok`.
"""

import argparse
import atexit
import gc
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import qtomo_client as q  # noqa: E402

EXAMPLES = os.path.join(REPO, "client", "examples", "data")
DEFAULT_REFDATA = os.path.normpath(os.path.join(REPO, "..", "shared", "reference-data", "origin"))

LIN, MLE = ("linear",), ("linear", "mle")
LIVE_CASE = ("nopovm", 4, LIN)  # the interactive sample of (d)


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- statistics ----

def pct(xs, p):
    """Percentile with linear interpolation (numpy's default)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def summary(xs):
    return {"n": len(xs), "median": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "max": max(xs) if xs else float("nan")}


# ---- data ----

def read_columns(path):
    with open(path) as f:
        rows = [[float(x) for x in line.replace(";", ",").split(",")] for line in f if line.strip()]
    return [list(c) for c in zip(*rows)]


def read_bell4x4(refdata):
    """The origin's lab data for d = 16 (nopovm): column 5 ("normalised coincidences") of
    matlab-repo/bell4x4_raw_NN.gbk.csv, one sample per file; None when absent."""
    cols = []
    for k in range(1, 17):
        path = os.path.join(refdata, "matlab-repo", "bell4x4_raw_%02d.gbk.csv" % k)
        if not os.path.exists(path):
            return None
        col = []
        with open(path, encoding="latin-1") as f:
            for line in f:
                cells = line.rstrip("\r\n").split(",")
                try:
                    col.append(float(cells[4]))
                except (IndexError, ValueError):
                    continue  # header and trailing rows
        if len(col) != 256:
            return None
        cols.append(col)
    return cols


def load_data(refdata):
    data = {("nopovm", 4): read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")),
            ("mub", 3): read_columns(os.path.join(EXAMPLES, "mub_d3.csv"))}
    d16 = read_bell4x4(refdata)
    if d16:
        data[("nopovm", 16)] = d16
    else:
        log("note: %s/matlab-repo/bell4x4_raw_*.gbk.csv not found: no d = 16 cases" % refdata)
    return data


def replicate(cols, n):
    return [cols[i % len(cols)] for i in range(n)]


def mname(methods):
    return ",".join(methods)


def case_name(design, d, methods):
    return "%s d=%d %s" % (design, d, mname(methods))


# ---- environment ----

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return ",".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
    except OSError:
        pass
    return "?"


def openblas_autopick():
    """The kernel set OpenBLAS picks by itself on this CPU (OPENBLAS_CORETYPE removed)."""
    code = ("import ctypes; l = ctypes.CDLL('libopenblas.so.0'); "
            "l.openblas_get_corename.restype = ctypes.c_char_p; "
            "print(l.openblas_get_corename().decode())")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=30)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def git_head():
    try:
        r = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def proc_env_var(pid, name):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            for kv in f.read().split(b"\0"):
                if kv.startswith(name.encode() + b"="):
                    return kv.split(b"=", 1)[1].decode()
    except OSError:
        return "?"
    return "(unset)"


def cpu_times():
    """(steal, busy, total) seconds of all CPUs (/proc/stat) and the CPU seconds of this process
    and its reaped descendants (qtomod reaps its workers, so a stopped daemon counts whole)."""
    import resource
    tck = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as f:
            v = [int(x) / tck for x in f.readline().split()[1:]]
        v += [0.0] * (8 - len(v))
        steal, busy, total = v[7], sum(v[:8]) - v[3] - v[4], sum(v[:8])
    except (OSError, ValueError):
        steal = busy = total = 0.0
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return steal, busy, total, own


def foreign_load(t0, t1):
    """Share of the machine's CPU time that went to steal and to processes other than ours."""
    total = max(t1[2] - t0[2], 1e-9)
    return {"steal_pct": 100.0 * (t1[0] - t0[0]) / total,
            "other_pct": 100.0 * max(0.0, (t1[1] - t0[1]) - (t1[3] - t0[3])) / total,
            "ours_pct": 100.0 * (t1[3] - t0[3]) / total}


def wait_quiet(max_wait, max_pct):
    """Waits (at most max_wait seconds) until other processes use less than max_pct % of the
    machine's CPU over one second; returns the seconds waited."""
    t_start = time.monotonic()
    while max_wait > 0:
        t0 = cpu_times()
        time.sleep(1.0)
        if foreign_load(t0, cpu_times())["other_pct"] < max_pct:
            break
        if time.monotonic() - t_start > max_wait:
            log("note: the machine stayed busy (other processes); measuring anyway")
            break
    return time.monotonic() - t_start


def mode_env(mode):
    env = dict(os.environ)
    if mode == "unset":
        env.pop("OPENBLAS_CORETYPE", None)
    return env


# ---- the daemon ----

_DAEMONS = set()


def _set_pdeathsig():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


class Daemon:
    """qtomod on a private socket with a fresh cache in a temporary directory."""

    def __init__(self, qtomod, workers, env, extra=()):
        self.dir = tempfile.mkdtemp(prefix="qtomo-bench-")
        self.sock = os.path.join(self.dir, "qtomod.sock")
        self.proc = None
        _DAEMONS.add(self)
        notify_path = os.path.join(self.dir, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(0.2)
        e = dict(env)
        e["NOTIFY_SOCKET"] = notify_path
        cmd = [qtomod, "--config", "/dev/null", "--socket", self.sock,
               "--cache-dir", os.path.join(self.dir, "cache"), "--workers", str(workers)]
        cmd += list(extra)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        try:
            self.proc = subprocess.Popen(cmd, env=e, stdout=self.log, stderr=self.log,
                                         stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig)
            end = time.monotonic() + 30
            ready = False
            while time.monotonic() < end and not ready:
                if self.proc.poll() is not None:
                    break
                try:
                    ready = b"READY=1" in notify.recv(4096)
                except socket.timeout:
                    pass
            if not ready:
                raise BenchError("qtomod did not become ready; log:\n" + self.logtext())
        finally:
            # After READY nobody reads the notify socket: remove it so that sd_notify fails fast
            # instead of filling a buffer.
            notify.close()
            try:
                os.unlink(notify_path)
            except OSError:
                pass
        self.workers = workers

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def kernels_line(self):
        for line in self.logtext().splitlines():
            if "OpenBLAS kernels" in line:
                return line.split("OpenBLAS kernels", 1)[1].strip()
        return "?"

    def client(self, timeout=120):
        return q.Client(self.sock, timeout=timeout, numpy=False, client_name="qtomo-bench")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        _DAEMONS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _cleanup_all():
    for dmn in list(_DAEMONS):
        try:
            dmn.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


# ---- client helpers ----

def check_ok(results, what):
    for r in results:
        if r.get("status") != "ok":
            raise BenchError("%s: sample not ok: %r" % (what, r.get("error")))


def submit_frames(c, cols, design, d, methods):
    """A submit read frame by frame (msgpack-unpacked, results not decoded into Python
    numbers). Uses the client's private transport; returns (n_results, n_not_ok, totals, t_first,
    t_last) with monotonic times of the first and the last result."""
    p = c._job(q.matrix_array(cols), design, d, methods, None, None, None, None)
    p["progress_ms"] = 0
    p["first_index"] = 0
    rid = c._send("submit", p)
    stream = c._streams[rid] = deque()
    n = bad = 0
    t_first = t_last = None
    try:
        while rid not in c._responses:
            c._read_msg()
            while stream:
                method, params = stream.popleft()
                if method == "result":
                    t_last = time.monotonic()
                    if t_first is None:
                        t_first = t_last
                    n += 1
                    bad += any(r.get("status") != "ok" for r in params.get("results", []))
    finally:
        c._streams.pop(rid, None)
    err, totals = c._responses.pop(rid)
    if err is not None:
        raise q.QtomoError(err.get("code"), err.get("message", ""), err.get("data"))
    return n, bad, totals, t_first, t_last


def submit_client(c, cols, design, d, methods):
    n = bad = 0
    for _, results in c.submit(cols, design, dim=d, methods=methods):
        n += 1
        bad += any(r.get("status") != "ok" for r in results)
    return n, bad, c.last_totals


def warm_daemon(dmn, data, chunk):
    """Builds every cache file and maps it in every worker (one chunk per worker)."""
    with dmn.client() as c:
        c.cache_warm(list(data))
        for (design, d), cols in data.items():
            submit_frames(c, replicate(cols, chunk * dmn.workers), design, d, LIN)


# ---- (a) interactive latency ----

def bench_latency(args, env, data, cases):
    out = {"cold": {}, "warm": {}}
    with Daemon(args.qtomod, args.lat_workers, env) as dmn:
        with dmn.client() as c:
            seen = set()
            for design, d, methods in cases:
                cols = data[(design, d)]
                k = 0
                if (design, d) not in seen:  # first call of this (design, d): builds the file
                    seen.add((design, d))
                    ts = []
                    for _ in range(2):
                        t0 = time.perf_counter()
                        r = c.reconstruct(cols[k % len(cols)], design, dim=d, methods=methods)
                        ts.append((time.perf_counter() - t0) * 1e3)
                        check_ok(r["results"], case_name(design, d, methods))
                        k += 1
                    out["cold"]["%s d=%d" % (design, d)] = {"first_ms": ts[0],
                                                             "second_ms": ts[1]}
                for _ in range(args.lat_warmup):
                    c.reconstruct(cols[k % len(cols)], design, dim=d, methods=methods)
                    k += 1
                rtt, comp, queue = [], [], []
                for _ in range(args.lat_n):
                    t0 = time.perf_counter()
                    r = c.reconstruct(cols[k % len(cols)], design, dim=d, methods=methods)
                    rtt.append((time.perf_counter() - t0) * 1e3)
                    k += 1
                    check_ok(r["results"], case_name(design, d, methods))
                    comp.append(r["timing"]["compute_ms"])
                    queue.append(r["timing"]["queue_ms"])
                over = [a - b for a, b in zip(rtt, comp)]
                out["warm"][case_name(design, d, methods)] = {
                    "rtt": summary(rtt), "compute_median": pct(comp, 50),
                    "queue_median": pct(queue, 50), "overhead_median": pct(over, 50)}
                worker = r["worker"]
            out["worker_coretype"] = proc_env_var(worker, "OPENBLAS_CORETYPE")
            out["worker_threads"] = proc_env_var(worker, "OPENBLAS_NUM_THREADS")
        out["kernels"] = dmn.kernels_line()
    return out


# ---- (b) batch throughput ----

def bench_batches(args, env, data, cases, workers):
    """{case: {"frames": rate, "client": rate, "daemon_elapsed_rate": rate}} for one repeat."""
    out = {}
    with Daemon(args.qtomod, workers, env, args.daemon_args.split()) as dmn:
        warm_daemon(dmn, data, args.chunk)
        with dmn.client() as c:
            for design, d, methods, n in cases:
                batch = replicate(data[(design, d)], n)
                name = case_name(design, d, methods)
                frames, client, elapsed = [], [], []
                for _ in range(args.inner_runs):  # short batches: several runs, their median
                    t0 = time.perf_counter()
                    got, bad, totals, _, _ = submit_frames(c, batch, design, d, methods)
                    frames.append(time.perf_counter() - t0)
                    if got != n or bad or totals["n_ok"] != n:
                        raise BenchError("%s: %d of %d results, %d not ok, totals %r"
                                         % (name, got, n, bad, totals))
                    elapsed.append(totals["elapsed_ms"] / 1e3)  # the loop clock: 1 ms steps
                    if not args.no_client_decode:
                        t0 = time.perf_counter()
                        got, bad, totals = submit_client(c, batch, design, d, methods)
                        client.append(time.perf_counter() - t0)
                        if got != n or bad:
                            raise BenchError("%s (client): %d of %d results, %d not ok"
                                             % (name, got, n, bad))
                    if sum(frames) + sum(client) > args.inner_seconds:
                        break
                rec = {"n": n, "runs": len(frames), "frames": n / med(frames),
                       "daemon_elapsed_rate": n / med(elapsed) if med(elapsed) > 0 else None}
                if client:
                    rec["client"] = n / med(client)
                out[name] = rec
            out["_stats"] = c.stats()["totals"]
    return out


# ---- (c) qtomoctl --local ----

def write_csv(path, cols):
    m = len(cols[0])
    with open(path, "w") as f:
        for r in range(m):
            f.write(",".join(repr(c[r]) for c in cols))
            f.write("\n")


def run_local(args, env, path, design, d, methods, as_json=True):
    cmd = [args.qtomoctl, "reconstruct", path, "--local"] + (["--json"] if as_json else [])
    cmd += ["--design", design, "--dim", str(d), "--method", mname(methods)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=args.op_timeout)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise BenchError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr[-2000:]))
    return t


def bench_local(args, env, data, cases, tmp):
    """{case: {"rate_1t", "fixed_1t_ms", "net_rate_1t", "rate_env", "rate_table"}} for one
    repeat: wall-clock samples/s of the whole qtomoctl run (start-up, CSV, output included)."""
    out = {}
    env1 = dict(env)
    env1["OPENBLAS_NUM_THREADS"] = "1"
    for design, d, methods, n in cases:
        name = case_name(design, d, methods)
        big = os.path.join(tmp, "%s_d%d_n%d.csv" % (design, d, n))
        one = os.path.join(tmp, "%s_d%d_n1.csv" % (design, d))
        if not os.path.exists(big):
            write_csv(big, replicate(data[(design, d)], n))
            write_csv(one, data[(design, d)][:1])
        t1s, tns, tes, tts = [], [], [], []
        for _ in range(args.inner_runs):  # short runs: several, their median
            t1s.append(run_local(args, env1, one, design, d, methods))
            tns.append(run_local(args, env1, big, design, d, methods))
            tts.append(run_local(args, env1, big, design, d, methods, as_json=False))
            if not args.no_local_env:
                tes.append(run_local(args, env, big, design, d, methods))
            if sum(t1s) + sum(tns) + sum(tes) + sum(tts) > args.inner_seconds:
                break
        t1, tn = med(t1s), med(tns)
        rec = {"n": n, "runs": len(tns), "rate_1t": n / tn, "fixed_1t_ms": t1 * 1e3,
               "net_rate_1t": (n - 1) / max(tn - t1, 1e-9), "rate_table": n / med(tts)}
        if tes:
            rec["rate_env"] = n / med(tes)
        out[name] = rec
    return out


# ---- (d) live latency under load ----

def _bg_submit(sock, cols, design, d, methods, chunk, conn):
    """Child process: one big submit on its own connection, read frame by frame until told to
    stop (then closing the connection cancels the rest). Reports, per chunk of `chunk` samples,
    how many results arrived and when the last one did."""
    try:
        c = q.Client(sock, timeout=300, numpy=False, client_name="qtomo-bench-bg")
        p = c._job(q.matrix_array(cols), design, d, methods, None, None, None, None)
        p["progress_ms"] = 0
        p["first_index"] = 0
        t_sent = time.monotonic()
        rid = c._send("submit", p)
        stream = c._streams[rid] = deque()
        n, t_first, t_last, finished = 0, None, None, False
        chunks = {}  # chunk index -> [results, time of the last]
        conn.send(("started", t_sent))
        c._sock.settimeout(0.05)
        drain_until = None
        while True:
            if drain_until is None and conn.poll():
                # Stop, but first let the chunks already begun finish (at most 3 s), so that the
                # chunk that was running during the last live call is complete in the record.
                conn.recv()
                drain_until = time.monotonic() + 3.0
            if drain_until is not None and (
                    time.monotonic() > drain_until
                    or all(k == min(chunk, len(cols) - i * chunk) for i, (k, _) in chunks.items())):
                break
            try:
                c._read_msg()
            except socket.timeout:
                continue  # (a partial frame stays buffered in c._buf)
            while stream:
                method, params = stream.popleft()
                if method == "result":
                    t_last = time.monotonic()
                    t_first = t_first or t_last
                    n += 1
                    ch = chunks.setdefault(params["index"] // chunk, [0, 0.0])
                    ch[0] += 1
                    ch[1] = t_last
            if rid in c._responses:
                finished = True
                break
        conn.send(("done", {"n": n, "t_sent": t_sent, "t_first": t_first, "t_last": t_last,
                            "finished": finished, "t_end": time.monotonic(),
                            "chunks": chunks}))
        c.close()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        conn.send(("error", repr(e)))


def chunk_intervals(chunks, workers, chunk, n_total):
    """(start, end) of every complete chunk of a single submit, from the times its results
    arrived. Chunks are cut in index order, each when a worker finishes its previous chunk, so
    chunk c (c >= workers) starts at the (c - workers + 1)-th chunk completion in time order.
    (A live sample taken in between delays that start by its own ~0.1 ms.)"""
    done = {c: t for c, (k, t) in chunks.items()
            if k == min(chunk, n_total - c * chunk)}
    ncomplete = 0
    while ncomplete in done:
        ncomplete += 1
    order = sorted(done[c] for c in range(ncomplete))
    return {c: (order[c - workers], done[c]) for c in range(workers, ncomplete)}


def predicted_wait(intervals, workers, t):
    """How long a live sample arriving at t must wait for a worker if it waits at most one
    chunk: until the first running chunk ends (0 when a worker is free)."""
    if not intervals or not (min(s for s, _ in intervals.values()) <= t
                             < max(e for _, e in intervals.values())):
        return None  # outside the reconstructed schedule
    running = [e for s, e in intervals.values() if s <= t < e]
    return min(running) - t if len(running) >= workers else 0.0


def predicted_wait_hi(intervals, workers, t, skew=1e-3):
    """predicted_wait, allowing the live request to reach the daemon up to `skew` seconds after
    the client sent it: the chunk ends are seen by the load's client after a relay delay, so a
    request sent just before a chunk end as seen there may arrive just after the next chunk
    was dispatched, and then waits that whole chunk. The larger of the two predictions."""
    a, b = predicted_wait(intervals, workers, t), predicted_wait(intervals, workers, t + skew)
    cands = [x for x in (a, None if b is None else b + skew) if x is not None]
    return max(cands) if cands else None


def live_c(args, sock, cols, gap_ms, seed):
    """args.live_n live calls by tests/bench/bench_live.c (its own connection), each after a
    random gap of up to gap_ms: [(t_start, t_end, rtt_ms, queue_ms, compute_ms)], times on
    CLOCK_MONOTONIC like time.monotonic()."""
    ldesign, ld, lmethods = LIVE_CASE
    text = "%d %d\n" % (len(cols), len(cols[0])) + "".join(
        " ".join(repr(float(x)) for x in col) + "\n" for col in cols)
    p = subprocess.run([args.bench_live, sock, ldesign, str(ld), ",".join(lmethods),
                        str(args.live_n), str(gap_ms), str(seed)], input=text,
                       capture_output=True, text=True, timeout=args.op_timeout)
    if p.returncode:
        raise BenchError("bench-live: %s" % p.stderr.strip())
    out = []
    for line in p.stdout.splitlines():
        t0, t1, qms, cms, status = line.split()
        if int(status):
            raise BenchError("live: a sample failed (%s)" % status)
        out.append((float(t0), float(t1), (float(t1) - float(t0)) * 1e3, float(qms),
                    float(cms)))
    return out


def bench_live(args, env, data, loads, workers):
    """For each load: unloaded and loaded latency of LIVE_CASE, the load's chunk times, and each
    live sample's wait compared with the wait the chunk schedule predicts."""
    out = {}
    rng = random.Random(2026)
    ldesign, ld, lmethods = LIVE_CASE
    lcols = data[(ldesign, ld)]
    chunk = args.chunk
    with Daemon(args.qtomod, workers, env, args.daemon_args.split()) as dmn:
        warm_daemon(dmn, data, args.chunk)
        with dmn.client() as c:
            if args.live_client == "c":
                base = [s[2] for s in live_c(args, dmn.sock, lcols, 0, 1)]
            else:
                base = []
                for k in range(args.live_n):
                    t0 = time.perf_counter()
                    r = c.reconstruct(lcols[k % len(lcols)], ldesign, dim=ld, methods=lmethods)
                    base.append((time.perf_counter() - t0) * 1e3)
            base_med = pct(base, 50)
            for (design, d, methods, n, gap_ms) in loads:
                name = case_name(design, d, methods)
                parent, child = multiprocessing.Pipe()
                proc = multiprocessing.Process(
                    target=_bg_submit, args=(dmn.sock, replicate(data[(design, d)], n), design,
                                             d, methods, chunk, child), daemon=True)
                proc.start()
                try:
                    if not parent.poll(60):
                        raise BenchError("background submit did not start")
                    kind, val = parent.recv()
                    if kind != "started":
                        raise BenchError("background submit: %s" % (val,))
                    time.sleep(max(0.05, 2 * gap_ms / 1e3))  # let the batch fill the workers
                    samples = []  # (t_start, t_end, rtt_ms, queue_ms, compute_ms)
                    if args.live_client == "c":
                        samples = live_c(args, dmn.sock, lcols, gap_ms, rng.randrange(1 << 30))
                    for k in range(args.live_n if args.live_client == "python" else 0):
                        time.sleep(rng.uniform(0, gap_ms) / 1e3)
                        t0 = time.monotonic()
                        r = c.reconstruct(lcols[k % len(lcols)], ldesign, dim=ld,
                                          methods=lmethods)
                        t1 = time.monotonic()
                        check_ok(r["results"], "live")
                        samples.append((t0, t1, (t1 - t0) * 1e3, r["timing"]["queue_ms"],
                                        r["timing"]["compute_ms"]))
                    parent.send("stop")
                    if not parent.poll(120):
                        raise BenchError("background submit did not stop")
                    kind, bg = parent.recv()
                    if kind != "done":
                        raise BenchError("background submit: %s" % (bg,))
                finally:
                    proc.join(10)
                    if proc.is_alive():
                        proc.kill()
                        proc.join()
                # Only live samples that started and ended while the batch was producing results.
                t_hi = bg["t_last"] if bg["finished"] else bg["t_end"]
                under = [s for s in samples if bg["t_first"] and s[0] >= bg["t_first"]
                         and s[1] <= t_hi]
                iv = chunk_intervals(bg["chunks"], workers, chunk, n)
                lo, hi = (under[0][0], under[-1][1]) if under else (0, 0)
                durs = [(e - s_) * 1e3 for s_, e in iv.values() if e > lo and s_ < hi]
                pred = [predicted_wait_hi(iv, workers, s[0]) for s in under]
                excess = [(s[2] - base_med) - p * 1e3 for s, p in zip(under, pred)
                          if p is not None]
                pred = [p * 1e3 for p in pred if p is not None]
                out[name] = {
                    "n_live": len(samples), "n_under_load": len(under), "n_pred": len(pred),
                    "bg_results": bg["n"], "bg_finished": bg["finished"],
                    "chunk": summary(durs),
                    "rtt": summary([s[2] for s in under]),
                    "queue": summary([s[3] for s in under]),
                    "pred": summary(pred), "excess": summary(excess),
                    "wait_per_chunk": ((max(s[2] for s in under) - base_med) / max(durs)
                                       if under and durs else None),
                    "compute_median": pct([s[4] for s in under], 50),
                    # raw, times in ms from the submit: live (start, round trip, queue_ms,
                    # predicted wait or None) and chunks (index, start, end)
                    "raw_live": [(round((s[0] - bg["t_sent"]) * 1e3, 3), round(s[2], 3), s[3],
                                  None if p is None else round(p * 1e3, 3))
                                 for s, p in ((s, predicted_wait_hi(iv, workers, s[0]))
                                              for s in samples)],
                    "raw_chunks": [(c, round((iv[c][0] - bg["t_sent"]) * 1e3, 3),
                                    round((iv[c][1] - bg["t_sent"]) * 1e3, 3)) for c in sorted(iv)]}
            out["_stats"] = c.stats()["totals"]
        out["_unloaded"] = summary(base)
    return out


# ---- driver ----

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build", "release"),
                    help="build tree with daemon/qtomod and client/qtomoctl [build/release]")
    ap.add_argument("--qtomod", help="qtomod binary [BUILD/daemon/qtomod]")
    ap.add_argument("--qtomoctl", help="qtomoctl binary [BUILD/client/qtomoctl]")
    ap.add_argument("--refdata", default=DEFAULT_REFDATA,
                    help="the origin's reference data (d = 16 lab data)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    ap.add_argument("--modes", default="env,unset",
                    help="OpenBLAS environment modes, comma-separated: env (OPENBLAS_CORETYPE as "
                         "inherited), unset [env,unset]")
    ap.add_argument("--sections", default="a,b,c,d", help="which parts to run [a,b,c,d]")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of everything [3]")
    ap.add_argument("--lat-n", type=int, default=200, help="(a) timed calls per case [200]")
    ap.add_argument("--lat-warmup", type=int, default=10, help="(a) untimed calls per case [10]")
    ap.add_argument("--lat-workers", type=int, default=2, help="(a) daemon workers [2]")
    ap.add_argument("--batch", type=int, default=2000, help="(b, c) samples per batch [2000]")
    ap.add_argument("--batch-d16-mle", type=int, default=200,
                    help="(b, c) samples of the d = 16 linear,mle batch [200]")
    ap.add_argument("--inner-runs", type=int, default=5,
                    help="(b, c) runs of one batch per repeat at most, while they take less "
                         "than --inner-seconds together; their median counts [5]")
    ap.add_argument("--inner-seconds", type=float, default=1.0, help="see --inner-runs [1.0]")
    ap.add_argument("--workers", default="1,2", help="(b, d) worker counts [1,2]")
    ap.add_argument("--live-n", type=int, default=100, help="(d) live calls per load [100]")
    ap.add_argument("--live-client", choices=("c", "python"), default="c",
                    help="(d) who makes the live calls: BUILD/tests/bench-live (C, so that the "
                         "round trips are the daemon's) or this process [c]")
    ap.add_argument("--bench-live", help="the C live client [BUILD/tests/bench-live]")
    ap.add_argument("--daemon-args", default="",
                    help="(b, d) more qtomod options, e.g. \"--interactive-workers 1\" []")
    ap.add_argument("--no-client-decode", action="store_true",
                    help="(b) skip the second pass through qtomo_client.submit")
    ap.add_argument("--no-local-env", action="store_true",
                    help="(c) skip the qtomoctl run with the environment's thread count")
    ap.add_argument("--op-timeout", type=float, default=600, help="per qtomoctl run, s [600]")
    ap.add_argument("--total-timeout", type=float, default=3600,
                    help="give up (and clean up) after this many seconds [3600]")
    ap.add_argument("--quiet-wait", type=float, default=0,
                    help="before each measurement, wait up to this many seconds for other "
                         "processes to use less than --quiet-pct %% of the CPU [0: no wait]")
    ap.add_argument("--quiet-pct", type=float, default=10, help="see --quiet-wait [10]")
    ap.add_argument("--json", metavar="FILE", help="write every raw number here")
    a = ap.parse_args(argv)
    a.qtomod = a.qtomod or os.environ.get("QTOMOD") or os.path.join(a.build, "daemon", "qtomod")
    a.qtomoctl = (a.qtomoctl or os.environ.get("QTOMOCTL")
                  or os.path.join(a.build, "client", "qtomoctl"))
    if a.quick:
        a.repeats, a.lat_n, a.lat_warmup, a.batch, a.batch_d16_mle = 1, 10, 2, 64, 8
        a.live_n, a.inner_runs = 8, 1
        if "--modes" not in " ".join(argv):
            a.modes = "env"
    a.chunk = 8
    try:
        conf = subprocess.run([a.qtomod, "--config", "/dev/null", "--dump-config"],
                              capture_output=True, text=True, timeout=30).stdout
        a.chunk = int([x for x in conf.splitlines() if x.startswith("chunk =")][0].split("=")[1])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        pass
    a.modes = [m for m in a.modes.split(",") if m]
    a.sections = set(a.sections.split(","))
    a.workers = [int(w) for w in a.workers.split(",")]
    for m in a.modes:
        if m not in ("env", "unset"):
            ap.error("unknown mode %r" % m)
    a.bench_live = a.bench_live or os.path.join(a.build, "tests", "bench-live")
    for b in (a.qtomod, a.qtomoctl) + ((a.bench_live,) if a.live_client == "c" and
                                       "d" in a.sections else ()):
        if not os.access(b, os.X_OK):
            ap.error("%s not found; build with: cmake --build build/release -j2" % b)
    return a


def make_cases(args, data):
    lat = [(des, d, m) for (des, d) in data for m in (LIN, MLE)]
    batches = []
    for (des, d) in data:
        for m in (LIN, MLE):
            n = args.batch_d16_mle if (d >= 16 and m == MLE) else args.batch
            batches.append((des, d, m, n))
    # (d): loads whose chunks are long (d = 16 mle, ~0.1 s per chunk) and short (d = 4 mle,
    # ~1 ms), with random gaps between live calls of up to about two chunks (last field, ms), so
    # that live samples arrive at every phase of a running chunk. Sizes are large: the batch is
    # cancelled (connection closed) once the live calls are done.
    loads = []
    if ("nopovm", 16) in data:
        loads.append(("nopovm", 16, MLE, 64 if args.quick else 4000, 5 if args.quick else 150))
    loads.append(("nopovm", 4, MLE, 2000 if args.quick else 30000, 1 if args.quick else 2))
    return lat, batches, loads


def fmt(x, nd=2):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if abs(x) >= 1000:
        return "%.0f" % x
    if abs(x) >= 100:
        return "%.1f" % x
    return "%.*f" % (nd, x)


def table(title, header, rows):
    print("\n" + title)
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i])  # noqa: E731
                               for i, c in enumerate(r))
    print(line(header))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print(line(r))


def mget(reps, *keys):
    """Median over repeats of reps[i][k0][k1]..., skipping missing values."""
    vals = []
    for rep in reps:
        v = rep
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return med(vals)


def report_mode(mode, res, args, lat_cases, batch_cases, loads):
    env = mode_env(mode)
    print("\n" + "=" * 100)
    ld = res.get("load", {})
    print("mode %s: OPENBLAS_CORETYPE=%s in the environment of qtomod and qtomoctl"
          % (mode, env.get("OPENBLAS_CORETYPE", "(unset)")))
    print("CPU share of other processes (they compete with the benchmark: more noise) during "
          "each measurement (per repeat: %s), %%: %s; hypervisor steal during the mode: %.1f %%"
          % (", ".join(x for x in ["a"] + ["b w%d" % w for w in args.workers] + ["c"]
                       + ["d w%d" % w for w in args.workers]
                       if x[0] in args.sections),
             " ".join("%.0f" % x for x in res.get("other_pct", [])), ld.get("steal_pct", 0)))
    if res.get("a"):
        a0 = res["a"][0]
        print("qtomod log: OpenBLAS kernels %s; worker env: OPENBLAS_CORETYPE=%s "
              "OPENBLAS_NUM_THREADS=%s" % (a0["kernels"], a0["worker_coretype"],
                                           a0["worker_threads"]))
        reps = res["a"]
        rows = [[k, fmt(mget(reps, "cold", k, "first_ms")), fmt(mget(reps, "cold", k,
                                                                      "second_ms"))]
                for k in reps[0]["cold"]]
        table("(a) cold: first reconstruct of a (design, d) on a fresh daemon (worker builds "
              "and maps the cache file), then the second; ms, linear; median of %d repeats"
              % len(reps), ["design", "first", "second"], rows)
        rows = []
        for des, d, m in lat_cases:
            k = case_name(des, d, m)
            rows.append([k, fmt(mget(reps, "warm", k, "rtt", "median"), 3),
                         fmt(mget(reps, "warm", k, "rtt", "p90"), 3),
                         fmt(mget(reps, "warm", k, "rtt", "p99"), 3),
                         fmt(mget(reps, "warm", k, "compute_median"), 3),
                         fmt(mget(reps, "warm", k, "overhead_median"), 3)])
        table("(a) warm interactive latency, %d workers, %d calls per case after %d warm-up; "
              "round trip in ms (median of %d repeats); compute = daemon's compute_ms (it "
              "covers the iterative methods only, not linear), overhead = round trip - compute"
              % (args.lat_workers, args.lat_n, args.lat_warmup, len(reps)),
              ["case", "median", "p90", "p99", "compute", "overhead"], rows)
    if any(res.get("b", {}).values()) or res.get("c"):
        rows = []
        for des, d, m, n in batch_cases:
            k = case_name(des, d, m)
            row = [k, str(n)]
            for w in args.workers:
                reps = res.get("b", {}).get(w, [])
                row += [fmt(mget(reps, k, "frames"), 0), fmt(mget(reps, k, "client"), 0)]
            lreps = res.get("c", [])
            loc = mget(lreps, k, "rate_1t")
            row += [fmt(loc, 0), fmt(mget(lreps, k, "rate_env"), 0),
                    fmt(mget(lreps, k, "rate_table"), 0)]
            for w in args.workers:
                row.append(fmt(mget(res.get("b", {}).get(w, []), k, "frames") / loc
                               if loc == loc and loc else None))
            rows.append(row)
        hdr = ["case", "n"]
        for w in args.workers:
            hdr += ["w%d frames" % w, "w%d client" % w]
        hdr += ["local 1T", "local env", "local tbl"] + ["w%d/local" % w for w in args.workers]
        table("(b, c) batch throughput, samples/s (median of %d repeats). wN frames: one submit "
              "to qtomod with N workers, read frame by frame; wN client: qtomo_client.submit "
              "(decodes every result in Python); local 1T: qtomoctl reconstruct --local --json "
              "> /dev/null with OPENBLAS_NUM_THREADS=1, whole process; local env: the same with "
              "OPENBLAS_NUM_THREADS as inherited; local tbl: 1T without --json (summary table, "
              "no rho printed); wN/local = wN frames / local 1T" % args.repeats, hdr, rows)
        if res.get("c"):
            rows = [[case_name(des, d, m), fmt(mget(res["c"], case_name(des, d, m),
                                                    "fixed_1t_ms"), 1),
                     fmt(mget(res["c"], case_name(des, d, m), "net_rate_1t"), 0)]
                    for des, d, m, n in batch_cases]
            table("(c) qtomoctl --local --json, 1T: wall time of a 1-sample file (start-up), ms; "
                  "samples/s of the batch without that time",
                  ["case", "1 sample", "net rate"], rows)
        for w in args.workers:
            reps = res.get("b", {}).get(w, [])
            if reps:
                print("daemon totals after (b), %d workers, last repeat: %r"
                      % (w, reps[-1].get("_stats")))
    if any(res.get("d", {}).values()):
        rows = []
        for w in args.workers:
            reps = res["d"].get(w, [])
            if not reps:
                continue
            rows.append(["none", str(w), "-", "-", fmt(mget(reps, "_unloaded", "median"), 3),
                         fmt(mget(reps, "_unloaded", "p90"), 3),
                         fmt(mget(reps, "_unloaded", "p99"), 3),
                         fmt(mget(reps, "_unloaded", "max"), 3), "-", "-", "-", "-", "-",
                         "%d" % mget(reps, "_unloaded", "n")])
            for des, d, m, n, gap in loads:
                k = case_name(des, d, m)
                worst = lambda *ks: max((v for v in (mget([r], *ks) for r in reps)  # noqa: E731
                                         if v == v), default=None)
                rows.append([k, str(w), fmt(mget(reps, k, "chunk", "median"), 2),
                             fmt(mget(reps, k, "chunk", "max"), 2),
                             fmt(mget(reps, k, "rtt", "median"), 3),
                             fmt(mget(reps, k, "rtt", "p90"), 3),
                             fmt(mget(reps, k, "rtt", "p99"), 3),
                             fmt(mget(reps, k, "rtt", "max"), 3),
                             fmt(mget(reps, k, "queue", "max"), 1),
                             fmt(mget(reps, k, "excess", "median"), 3),
                             fmt(worst(k, "excess", "max"), 3),
                             fmt(mget(reps, k, "wait_per_chunk"), 2),
                             fmt(worst(k, "wait_per_chunk"), 2),
                             "%d/%d" % (mget(reps, k, "n_under_load"), mget(reps, k, "n_live"))])
        table("(d) live latency under load: reconstruct %s by %s, random gaps, while one big "
              "submit (the load) runs on another connection; ms, median of %d repeats unless 'worst'. "
              "chunk: compute time of the load's chunks of %d samples that overlapped the live "
              "calls (reconstructed from its result times); median..max: live round trip; "
              "qmax: daemon's queue_ms (1 ms steps); excess: live wait (round trip - unloaded "
              "median) minus the wait the chunk schedule predicts (until the first running "
              "chunk ends, allowing 1 ms of clock skew between the two clients); w/c: (max - "
              "unloaded median) / chunk max, > 1: a live sample waited longer than the longest "
              "chunk; n: live calls entirely under load"
              % (case_name(*LIVE_CASE), "the C client bench-live" if args.live_client == "c"
                 else "the Python client", args.repeats, args.chunk),
              ["load", "workers", "chunk med", "chunk max", "median", "p90", "p99", "max",
               "qmax", "excess med", "excess worst", "w/c", "w/c worst", "n"], rows)
        for w in args.workers:
            reps = res["d"].get(w, [])
            if reps:
                print("daemon totals after (d), %d workers, last repeat: %r"
                      % (w, reps[-1].get("_stats")))


def main(argv):
    args = parse_args(argv)
    atexit.register(_cleanup_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(int(args.total_timeout))
    multiprocessing.set_start_method("fork")
    gc.disable()
    data = load_data(args.refdata)
    lat_cases, batch_cases, loads = make_cases(args, data)

    print("qtomo daemon benchmark (tests/bench/bench_daemon.py)")
    print("tree %s; %s; %s" % (git_head(),
                               subprocess.run([args.qtomod, "--version"], capture_output=True,
                                              text=True).stdout.strip(), args.qtomod))
    print("CPU: %s; %d online CPUs (%d usable); flags %s; kernel %s"
          % (cpu_model(), os.cpu_count(), len(os.sched_getaffinity(0)), cpu_flags(),
             platform.release()))
    print("environment: OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=%s; OpenBLAS picks by itself "
          "(OPENBLAS_CORETYPE unset): %s; python %s, msgpack %s"
          % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
             os.environ.get("OPENBLAS_NUM_THREADS", "(unset)"), openblas_autopick(),
             platform.python_version(), ".".join(map(str, q.msgpack.version))))
    print("data: nopovm d=4 client/examples/data/bell_nopovm_d4.csv (4 columns), mub d=3 "
          "mub_d3.csv (3), nopovm d=16 %s; batches replicate the columns"
          % ("bell4x4_raw_01..16 column 5 (16)" if ("nopovm", 16) in data else "absent"))
    print("settings: repeats %d, modes %s, qtomod defaults (chunk %d)"
          % (args.repeats, ",".join(args.modes), args.chunk))
    sys.stdout.flush()

    modes = list(args.modes)
    if "env" in modes and "unset" in modes and "OPENBLAS_CORETYPE" not in os.environ:
        modes.remove("unset")  # the same thing twice
    everything = {"args": {k: (sorted(v) if isinstance(v, set) else v)
                           for k, v in vars(args).items()}, "modes": {}}
    tmp = tempfile.mkdtemp(prefix="qtomo-bench-data-")
    atexit.register(shutil.rmtree, tmp, True)
    for mode in modes:
        env = mode_env(mode)
        res = {"a": [], "b": {w: [] for w in args.workers}, "c": [],
               "d": {w: [] for w in args.workers}}
        st0 = cpu_times()
        res["other_pct"] = []  # per measurement: CPU share of other processes

        def measure(fn, *a):
            waited = wait_quiet(args.quiet_wait, args.quiet_pct)
            gc.collect()  # the collector is off while measuring (pauses of ms in the clients)
            t0 = cpu_times()
            r = fn(*a)
            ld = foreign_load(t0, cpu_times())
            res["other_pct"].append(round(ld["other_pct"], 1))
            if isinstance(r, dict):
                r["_other_pct"], r["_waited_s"] = ld["other_pct"], waited
            return r

        for rep in range(args.repeats):
            log("[%s] repeat %d/%d" % (mode, rep + 1, args.repeats))
            if "a" in args.sections:
                res["a"].append(measure(bench_latency, args, env, data, lat_cases))
            if "b" in args.sections:
                for w in args.workers:
                    res["b"][w].append(measure(bench_batches, args, env, data, batch_cases, w))
            if "c" in args.sections:
                res["c"].append(measure(bench_local, args, env, data, batch_cases, tmp))
            if "d" in args.sections:
                for w in args.workers:
                    res["d"][w].append(measure(bench_live, args, env, data, loads, w))
        res["load"] = foreign_load(st0, cpu_times())
        report_mode(mode, res, args, lat_cases, batch_cases, loads)
        everything["modes"][mode] = res
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BenchError, q.QtomoError) as e:
        log("bench_daemon: %s" % e)
        sys.exit(1)
