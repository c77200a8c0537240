#!/usr/bin/python3
"""bench_qubits.py: Pauli tomography of 7-9 qubits through the real daemon (issue 19, target 4),
not a test.

For each qubit count, simulates SAMPLES states (pure, or mixed of full rank) with 1,000 counts
per setting (pauli_counts.py, numpy), starts qtomod (release build) with one worker on a private
socket and a fresh cache, and reconstructs them with `qtomoctl reconstruct --method linear,mle`,
the path a user takes. A daemon is started per qubit count and state, so the worker's peak
memory (VmHWM) belongs to that run. Reports per sample: the mle's iterations, its certificate
(gap in log-likelihood units and per count), the fidelity of the first sample's estimate to the
true state (pure states); per run: the wall time of qtomoctl over the samples (reading the CSV,
linear and mle, writing the records) and the worker's peak memory against the prediction the
daemon checks (qd_check_sample_bytes, against max-sample-mb).

9 qubits need a larger configuration than the defaults: --max-dim 512 and a --max-frame of at
least 80,687,104 bytes (qtomod warns otherwise); this script passes them. max-sample-mb (default:
the machine's memory over the workers) must be above the prediction, about 2,935 MB for
linear,mle.

    cmake --preset release && cmake --build --preset release -j2
    OPENBLAS_CORETYPE=Haswell /usr/bin/python3 tests/bench/bench_qubits.py [--qubits 7 8 9]
        [--states pure mixed] [--samples 1] [--build DIR] [--seed S]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "client", "python"))

import qtomo_client  # noqa: E402


def predicted_mb(d, m):
    """qd_check_sample_bytes for linear,mle (daemon/qd_check.c; test_check pins its values)."""
    ws = 20 * 8 * m + 50 * 16 * d * d + 2 ** 20  # qt_estimate_ws_bound, mle
    return (64 * 2 ** 20 + 3 * 8 * m + 1.5 * ws + 2 * 4 * 16 * d * d) / 2 ** 20


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_daemon(build, tmp):
    sock = os.path.join(tmp, "s")
    log = open(os.path.join(tmp, "qtomod.log"), "w+")
    proc = subprocess.Popen([os.path.join(build, "daemon", "qtomod"), "--config", "/dev/null",
                             "--socket", sock, "--cache-dir", os.path.join(tmp, "cache"),
                             "--workers", "1", "--interactive-workers", "0",  # the one measured
                             "--max-dim", "512", "--max-frame", "100663296"],
                            stdout=log, stderr=log)
    end = time.time() + 60
    while True:
        try:
            with qtomo_client.Client(sock, timeout=5, numpy=False) as c:
                if c.status()["n_workers"] == 1:
                    return proc, sock
        except (OSError, qtomo_client.QtomoError):
            pass
        if time.time() > end or proc.poll() is not None:
            raise SystemExit("qtomod did not start: see " + log.name)
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "release"))
    ap.add_argument("--qubits", type=int, nargs="+", default=[7, 8, 9])
    ap.add_argument("--states", nargs="+", default=["pure", "mixed"])
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    qtomoctl = os.path.join(a.build, "client", "qtomoctl")
    print("OPENBLAS_CORETYPE=%s, one worker, linear,mle, 1000 counts per setting, seed %d" %
          (os.environ.get("OPENBLAS_CORETYPE", "(auto)"), a.seed))
    print("%2s %-5s %3s | %5s %9s %9s %9s | %12s | %8s %8s" %
          ("n", "state", "smp", "it", "gap", "gap/count", "fidelity", "wall s/smp",
           "peak MB", "pred MB"))
    for n in a.qubits:
        for state in a.states:
            tmp = tempfile.mkdtemp(prefix="bench-qubits-")
            proc = None
            try:
                d, m = 2 ** n, 6 ** n
                csv, target = os.path.join(tmp, "y.csv"), os.path.join(tmp, "t.json")
                subprocess.run(["/usr/bin/python3", os.path.join(HERE, "pauli_counts.py"), str(n),
                                "1" if state == "pure" else str(d), str(a.samples),
                                str(a.seed + n), csv, "1000", target], check=True)
                proc, sock = run_daemon(a.build, tmp)
                out = os.path.join(tmp, "out")
                cmd = [qtomoctl, "-s", sock, "-q", "reconstruct", csv, "--design", "pauli",
                       "--method", "linear,mle", "-o", out]
                if state == "pure":
                    cmd += ["--target", target]
                t0 = time.time()
                subprocess.run(cmd, check=True)
                wall = time.time() - t0
                with qtomo_client.Client(sock, timeout=5, numpy=False) as c:
                    pid = c.stats()["workers"][0]["pid"]
                peak = vm_hwm_kb(pid) / 1024
                with open(os.path.join(out, "records.jsonl")) as f:
                    recs = [json.loads(line) for line in f]
                for r in recs:
                    if r["method"] != "mle":
                        continue
                    mt = r.get("metrics", {})
                    fid = "%.6f" % mt["fidelity"] if "fidelity" in mt and r["sample"] == 0 else "-"
                    print("%2d %-5s %3d | %5d %9.2e %9.2e %9s | %12.1f | %8.0f %8.0f" %
                          (n, state, r["sample"], mt.get("iterations", -1),
                           mt.get("gap", float("nan")), mt.get("gap_per_count", float("nan")),
                           fid, wall / a.samples, peak, predicted_mb(d, m)))
                    sys.stdout.flush()
            finally:
                if proc:
                    proc.terminate()
                    proc.wait(timeout=60)
                shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
