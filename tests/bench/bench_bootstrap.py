#!/usr/bin/python3
"""bench_bootstrap.py: speed of error bars through the daemon (issue 16), not a test.

Starts the real qtomod (release build by default) on a private socket with 1 and 2 workers and
measures through the Python client (client/python/qtomo_client.py), with --bootstrap as
`reconstruct`/`submit` send it:

  (a) one d = 4 nopovm sample, linear,mle, N = 1000 resamples, 2 workers: the wall time of one
      reconstruct (the issue asks <= 0.2 s);
  (b) one d = 16 nopovm sample, linear,mle, N = 200, 2 workers (asks <= 2 s);
  (c) a 1000-sample d = 4 nopovm batch with N = 100 (linear,mle), 1 and 2 workers: samples/s
      and the ratio (asks >= 1.8x).

Each measurement is the median of --repeats runs (a and b: after one warm-up call that builds
the cache file). The daemon's log names the OpenBLAS kernels in effect; they are printed.

    cmake --preset release && cmake --build --preset release -j2
    /usr/bin/python3 tests/bench/bench_bootstrap.py [--build build/release] [--quick]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

import qtomo_client  # noqa: E402
from test_qtomoctl import nopovm_counts  # noqa: E402


class Daemon:
    def __init__(self, build, workers):
        self.dir = tempfile.mkdtemp(prefix="bench-boot-")
        self.sock = os.path.join(self.dir, "s")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(build, "daemon", "qtomod"), "--config", "/dev/null", "--socket",
             self.sock, "--cache-dir", os.path.join(self.dir, "cache"), "--workers",
             str(workers), "--interactive-workers", "0"],  # exactly the workers scaled over
            stdout=self.log, stderr=self.log)
        end = time.time() + 30
        while time.time() < end:
            try:
                with qtomo_client.Client(self.sock, timeout=5, numpy=False) as c:
                    if c.status()["n_workers"] == workers:
                        break
            except (OSError, qtomo_client.QtomoError):
                pass
            time.sleep(0.05)

    def kernels(self):
        self.log.flush()
        with open(self.log.name) as f:
            m = re.search(r"OpenBLAS kernels \S+ \([^)]*\)|OpenBLAS[^\n]*", f.read())
        return m.group(0) if m else "(not in the log)"

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def one_sample(d, col, n_boot, repeats):
    times = []
    with qtomo_client.Client(d.sock, timeout=600, numpy=False) as c:
        boot = {"resamples": n_boot, "seed": 1}
        c.reconstruct(col, "nopovm", methods=("linear", "mle"), bootstrap=boot)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = c.reconstruct(col, "nopovm", methods=("linear", "mle"), bootstrap=boot)
            times.append(time.perf_counter() - t0)
        ok = all(r["status"] == "ok" and r["uncertainty"]["failed_resamples"] == 0
                 for r in res["results"])
    return statistics.median(times), ok


def batch(d, cols, n_boot, repeats):
    rates = []
    ok = True
    with qtomo_client.Client(d.sock, timeout=3600, numpy=False) as c:
        for _ in range(repeats):
            t0 = time.perf_counter()
            n = 0
            for _, results in c.submit(cols, "nopovm", methods=("linear", "mle"),
                                       bootstrap={"resamples": n_boot, "seed": 2}):
                n += 1
                ok &= all(r["status"] == "ok" for r in results)
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "release"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke run)")
    a = ap.parse_args()
    q = a.quick
    reps = 1 if q else a.repeats
    n4 = nopovm_counts(4, 1000 if not q else 20, 11)
    n16 = nopovm_counts(16, 1, 12)[0]
    print("machine: %d cores; OPENBLAS_CORETYPE=%s" % (os.cpu_count(),
                                                       os.environ.get("OPENBLAS_CORETYPE", "")))
    d2 = Daemon(a.build, 2)
    try:
        print("kernels: " + d2.kernels())
        t, ok = one_sample(d2, n4[0], 1000 if not q else 50, reps)
        print("(a) d=4 nopovm, linear,mle, N=1000, 2 workers: %.3f s per sample%s"
              % (t, "" if ok else "  FAILED"))
        t, ok = one_sample(d2, n16, 200 if not q else 10, reps)
        print("(b) d=16 nopovm, linear,mle, N=200, 2 workers: %.3f s per sample%s"
              % (t, "" if ok else "  FAILED"))
        r2, ok2 = batch(d2, n4, 100 if not q else 10, reps)
    finally:
        d2.close()
    d1 = Daemon(a.build, 1)
    try:
        r1, ok1 = batch(d1, n4, 100 if not q else 10, reps)
    finally:
        d1.close()
    print("(c) %d-sample d=4 batch, N=100, linear,mle: 1 worker %.1f samples/s, 2 workers %.1f "
          "samples/s: %.2fx%s" % (len(n4), r1, r2, r2 / r1, "" if ok1 and ok2 else "  FAILED"))
    return 0 if ok and ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
