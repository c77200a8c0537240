#!/usr/bin/python3
"""bench_memory.py: memory of the daemon with large designs mapped (issue 19, target 5), not a
test.

Starts the real qtomod (release build by default) with 2 workers on a private socket and a fresh
projector cache, and for nopovm and mub at d = 32 and d = 64:

  1. one `reconstruct` (linear) per worker, issued in parallel on two connections until both
     workers have answered one, so that each worker has built or mapped the cache file;
  2. reads /proc/PID/smaps of the supervisor and of each worker: the cache file's mapping
     (Rss, Pss) and the whole process (smaps_rollup: Rss, Pss, Private).

What the issue asks: a second mapping adds < 5 % of the file's size (sum of the workers' Pss of
the file minus one file size, over the file size), and the supervisor does not map cache files.

    cmake --preset release && cmake --build --preset release -j2
    OPENBLAS_CORETYPE=Haswell /usr/bin/python3 tests/bench/bench_memory.py [--build DIR]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "client", "python"))

import qtomo_client  # noqa: E402


def smaps_file(pid, name):
    """(rss_kb, pss_kb) of the mappings of files whose path ends with name."""
    rss = pss = 0
    inside = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                inside = len(parts) >= 6 and parts[-1].endswith(name)
            elif inside and parts[0] == "Rss:":
                rss += int(parts[1])
            elif inside and parts[0] == "Pss:":
                pss += int(parts[1])
    return rss, pss


def rollup(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
                out[parts[0][:-1]] = int(parts[1])
    out["Private"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


def sample(design, d):
    m = {"nopovm": d * d, "mub": d * (d + 1)}[design]
    return [100.0 + (a % 7) for a in range(m)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "release"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-mem-")
    sock = os.path.join(tmp, "s")
    cache = os.path.join(tmp, "cache")
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([os.path.join(a.build, "daemon", "qtomod"), "--config", "/dev/null",
                             "--socket", sock, "--cache-dir", cache, "--workers", "2",
                             "--interactive-workers", "0"],  # exactly the 2 measured
                            stdout=log, stderr=log)
    try:
        end = time.time() + 30
        while True:
            try:
                with qtomo_client.Client(sock, timeout=5, numpy=False) as c:
                    if c.status()["n_workers"] == 2:
                        break
            except (OSError, qtomo_client.QtomoError):
                pass
            if time.time() > end:
                raise SystemExit("qtomod did not start: see " + log.name)
            time.sleep(0.05)
        print("OPENBLAS_CORETYPE=%s, 2 workers, supervisor pid %d" %
              (os.environ.get("OPENBLAS_CORETYPE", "(auto)"), proc.pid))
        print("%-8s %3s %9s | %-30s | %-30s | %s" %
              ("design", "d", "file MiB", "worker file Rss/Pss MiB", "worker total Pss/Private MiB",
               "extra mapping / file"))
        for design, d in (("nopovm", 32), ("mub", 32), ("nopovm", 64), ("mub", 64)):
            seen = set()
            deadline = time.time() + 600
            while len(seen) < 2 and time.time() < deadline:
                results = [None, None]

                def one(i):
                    with qtomo_client.Client(sock, timeout=600, numpy=False) as c:
                        results[i] = c.reconstruct(sample(design, d), design=design, dim=d,
                                                   methods=["linear"])
                threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                with qtomo_client.Client(sock, timeout=5, numpy=False) as c:
                    workers = c.stats()["workers"]
                seen = {w["pid"] for w in workers
                        if smaps_file(w["pid"], "%s-d%d.qtpc" % (design, d))[0] > 0}
            name = "%s-d%d.qtpc" % (design, d)
            size = os.path.getsize(os.path.join(cache, name)) / 2 ** 20
            per = [(w["pid"],) + smaps_file(w["pid"], name) for w in workers]
            tot = [rollup(w["pid"]) for w in workers]
            sup = smaps_file(proc.pid, name)
            pss_sum = sum(p[2] for p in per) / 1024
            extra = (pss_sum - min(size, pss_sum)) / size if size else 0.0
            print("%-8s %3d %9.1f | %-30s | %-30s | %.3f (supervisor maps %d kB)" %
                  (design, d, size,
                   ", ".join("%.1f/%.1f" % (p[1] / 1024, p[2] / 1024) for p in per),
                   ", ".join("%.1f/%.1f" % (t["Pss"] / 1024, t["Private"] / 1024) for t in tot),
                   extra, sup[0]))
        r = rollup(proc.pid)
        print("supervisor: Rss %.1f MiB, Pss %.1f MiB, Private %.1f MiB" %
              (r["Rss"] / 1024, r["Pss"] / 1024, r["Private"] / 1024))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
