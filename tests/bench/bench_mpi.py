#!/usr/bin/python3
"""bench_mpi.py: performance of qtomo-mpi (client/mpi), not a test.

Measures, with `mpirun --oversubscribe -n R qtomo-mpi -v reconstruct FILE -o DIR`:

  (a) parallel efficiency of 2 ranks against 1 for nopovm d = 16 `linear,mle` (generated
      counts of noisy entangled states): T1 / (2 T2), from run.json's elapsed_ms (the batch,
      without MPI's start-up, which is reported apart as the wall time);
  (b) rank 0's record write rate (records/s of the time it spent in the output stage) and its
      dispatch rate (result messages handled and answered with work, per second of its time),
      from qtomo-mpi -v's statistics, on a run whose samples are cheap (nopovm d = 4 linear),
      where rank 0 is the bottleneck if anything is;
  (c) the bytes per sample of work (rank 0 -> ranks) and of results (ranks -> rank 0).

Each case is repeated (--repeats) and the median is shown. Every run is also checked against
qtomoctl reconstruct --local (records.jsonl byte for byte), once per case.

    cmake --preset release && cmake --build --preset release -j1
    OPENBLAS_CORETYPE=Haswell /usr/bin/python3 tests/bench/bench_mpi.py [--build build/release]

Needs numpy (the generated input) and mpirun. Exit status 0, or 1 when a run failed or its
records differ from --local's.
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from qtomod_fixture import write_columns  # noqa: E402

STATS = re.compile(r"qtomo-mpi: (\d+) ranks, (\d+) chunks to other ranks \((\d+) samples\), "
                   r"(\d+) samples on rank 0; ([\d.]+) s; rank 0 wrote for ([\d.]+) s, "
                   r"dispatched for ([\d.]+) s; (\d+) bytes of work and (\d+) bytes of results "
                   r"per remote sample; filed other ranks' records for ([\d.]+) s")


def nopovm_counts(d, n, seed):
    """Poisson counts of n noisy maximally entangled states of two sqrt(d)-level systems in
    the nopovm order (as tests/integration/test_qtomoctl.py's nopovm_counts)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    k = int(round(d ** 0.5))
    vs = [np.eye(d, dtype=complex)[i] for i in range(d)]
    for i in range(d):
        for j in range(i + 1, d):
            a = np.zeros(d, complex)
            a[i], a[j] = 1, 1
            b = np.zeros(d, complex)
            b[i], b[j] = 1, -1j
            vs += [a / np.sqrt(2), b / np.sqrt(2)]
    V = np.array(vs)
    cols = []
    for s in range(n):
        psi = np.zeros(d, complex)
        for a in range(k):
            psi[a * k + (a + s) % k] = np.exp(1j * np.pi * s * a / k)
        psi /= np.linalg.norm(psi)
        rho = 0.85 * np.outer(psi, psi.conj()) + 0.15 * np.eye(d) / d
        p = np.real(np.einsum("ai,ij,aj->a", V.conj(), rho, V))
        cols.append([int(x) for x in rng.poisson(2000 * np.clip(p, 0, None))])
    return cols


def env():
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
             OPENBLAS_NUM_THREADS="1")
    return e


def run_mpi(a, ranks, path, out, opts):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-n", str(ranks), a.qtomo_mpi,
           "-v", "reconstruct", path, "-o", out] + opts
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=a.timeout)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if p.returncode != 0:
        sys.exit("bench_mpi: %s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stderr[-3000:]))
    m = STATS.search(p.stderr)
    if not m:
        sys.exit("bench_mpi: no statistics line from qtomo-mpi -v:\n" + p.stderr[-2000:])
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    g = [float(x) for x in m.groups()]
    return {"wall_s": wall, "cpu_s": cpu, "load1": os.getloadavg()[0], "elapsed_s": run["elapsed_ms"] / 1e3, "ranks": int(g[0]),
            "chunks": int(g[1]), "remote": int(g[2]), "root": int(g[3]), "write_s": g[5],
            "dispatch_s": g[6], "work_b": g[7], "result_b": g[8], "file_s": g[9],
            "records": run["counts"]["samples_this_run"] * len(run["options"]["methods"])}


def check_local(a, path, out, opts, ref):
    if not os.path.exists(os.path.join(ref, "records.jsonl")):
        p = subprocess.run([a.qtomoctl, "reconstruct", path, "--local", "-o", ref] + opts,
                           capture_output=True, text=True, env=env(), timeout=a.timeout)
        if p.returncode != 0:
            sys.exit("bench_mpi: --local: exit %d\n%s" % (p.returncode, p.stderr[-2000:]))
    with open(os.path.join(out, "records.jsonl"), "rb") as x, \
            open(os.path.join(ref, "records.jsonl"), "rb") as y:
        if x.read() != y.read():
            sys.exit("bench_mpi: records of qtomo-mpi and --local differ (%s)" % out)


def median_runs(a, ranks, path, opts, tmp, ref):
    runs = []
    for i in range(a.repeats):
        out = os.path.join(tmp, "out%d" % ranks)
        runs.append(run_mpi(a, ranks, path, out, opts))
        if i == 0:
            check_local(a, path, out, opts, ref)
    return runs, {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def model(t, w0, w, u, s, rb, sizes=(1e5, 1e6), ranks=(2, 16, 64, 256, 1024)):
    """Parallel efficiency at R ranks from measured inputs (README "Clusters"):
    t  seconds per sample on one rank; w0 rank 0's time to format and file one of its own
    samples; w its time to file one formatted by another rank; u its dispatch time per remote
    sample (receiving, decoding, answering with work); s the job's start-up (MPI launch,
    design); rb result bytes per sample.
    The other ranks deliver (R - 1) / t samples/s; serving them takes rank 0 the fraction
    f = (R - 1)(w + u) / t of its time, and it computes at (1 - f) / (t + w0) with the rest.
    That holds up to R_sat = 1 + t / (w + u), where f = 1; beyond, rank 0 only serves:
    1 / (w + u) samples/s whatever R. The end of the run costs about one sample's time (chunks
    shrink to single samples), the start s."""
    c = w + u
    r_sat = 1 + t / c
    print("    model: t = %.2f ms/sample; rank 0 per sample: %.1f us formatting and filing its "
          "own, %.1f us filing and %.1f us dispatching another rank's; start-up %.2f s; rank 0 "
          "saturates at R_sat = %.0f ranks (%.0f samples/s, %.0f MB/s of results into rank 0)"
          % (1e3 * t, 1e6 * w0, 1e6 * w, 1e6 * u, s, r_sat, 1 / c, rb / c / 1e6))
    for n in sizes:
        row = []
        for r in ranks:
            f = (r - 1) * c / t
            rate = (r - 1) / t + (1 - f) / (t + w0) if f <= 1 else 1 / c
            ideal = r / t
            T = n / rate + t + s
            row.append("R=%d %.0f%%" % (r, 100 * (n / ideal) / T))
        print("    model efficiency, %.0e samples: %s" % (n, ", ".join(row)))
    return r_sat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build", "release"))
    ap.add_argument("--mpirun", default=shutil.which("mpirun") or "mpirun")
    ap.add_argument("--samples", type=int, default=1024, help="d = 16 samples (a)")
    ap.add_argument("--cheap-samples", type=int, default=100000,
                    help="d = 4 samples (b); 0 leaves (b) out")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", help="write every raw number here")
    a = ap.parse_args()
    a.qtomo_mpi = os.path.join(a.build, "client", "qtomo-mpi")
    a.qtomoctl = os.path.join(a.build, "client", "qtomoctl")
    raw = {"argv": sys.argv, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
           "nproc": os.cpu_count()}
    tmp = tempfile.mkdtemp(prefix="bench-mpi-")
    try:
        # (a) efficiency, d = 16 linear,mle
        d16 = os.path.join(tmp, "d16.csv")
        write_columns(d16, nopovm_counts(16, a.samples, 7))
        opts = ["--method", "linear,mle"]
        ref = os.path.join(tmp, "ref16")
        r1, m1 = median_runs(a, 1, d16, opts, tmp, ref)
        r2, m2 = median_runs(a, 2, d16, opts, tmp, ref)
        eff = m1["elapsed_s"] / (2 * m2["elapsed_s"])
        effw = m1["wall_s"] / (2 * m2["wall_s"])
        raw["d16"] = {"1": r1, "2": r2}
        print("(a) nopovm d = 16 linear,mle, %d samples, median of %d:" % (a.samples, a.repeats))
        print("    1 rank : %.2f s batch (%.2f s wall), %.1f ms/sample"
              % (m1["elapsed_s"], m1["wall_s"], 1e3 * m1["elapsed_s"] / a.samples))
        print("    2 ranks: %.2f s batch (%.2f s wall); rank 0 computed %d samples, rank 1 %d"
              % (m2["elapsed_s"], m2["wall_s"], m2["root"], m2["remote"]))
        print("    parallel efficiency T1/(2 T2): %.1f %% (batch), %.1f %% (wall, with MPI "
              "start-up)" % (100 * eff, 100 * effw))
        print("    CPU seconds of the job (mpirun and every rank): %.2f with 1 rank, %.2f with 2 "
              "(ratio %.1f %%: the work the second rank adds, waiting included)"
              % (m1["cpu_s"], m2["cpu_s"], 100 * m1["cpu_s"] / m2["cpu_s"]))
        print("    load average (1 min) after the runs: %.2f / %.2f on %d CPUs (other work on "
              "the machine shows here)" % (m1["load1"], m2["load1"], os.cpu_count()))
        print("    bytes per sample: work %.0f, results %.0f" % (m2["work_b"], m2["result_b"]))
        # rank 0's costs per sample in the 2-rank runs: writing (all its records), dispatching
        # (per remote sample); the per-sample time from 1 rank; start-up from wall - batch
        t = m1["elapsed_s"] / a.samples
        w = m2["file_s"] / max(m2["remote"], 1)
        w0 = (m2["write_s"] - m2["file_s"]) / max(m2["root"], 1)
        u = m2["dispatch_s"] / max(m2["remote"], 1)
        s = m2["wall_s"] - m2["elapsed_s"]
        raw["model_d16"] = {"t": t, "w0": w0, "w": w, "u": u, "s": s, "rb": m2["result_b"],
                            "r_sat": model(t, w0, w, u, s, m2["result_b"])}
        # (b) rank 0's rates on cheap samples
        if a.cheap_samples <= 0:
            return
        d4 = os.path.join(tmp, "d4.csv")
        base = nopovm_counts(4, 64, 3)
        write_columns(d4, (base * (a.cheap_samples // 64 + 1))[:a.cheap_samples])
        opts = ["--method", "linear"]
        rows = []
        for ranks in (2, 4):
            runs, m = median_runs(a, ranks, d4, opts, tmp, os.path.join(tmp, "ref4"))
            raw["d4_%d" % ranks] = runs
            rows.append((ranks, m))
        print("(b) nopovm d = 4 linear, %d samples, median of %d:" % (a.cheap_samples,
                                                                      a.repeats))
        for ranks, m in rows:
            print("    %d ranks: %.2f s batch, %.0f samples/s; rank 0: %.0f records/s written "
                  "(%.2f s writing), %.0f result messages/s dispatched (%d chunks, %.3f s); "
                  "bytes per sample: work %.0f, results %.0f"
                  % (ranks, m["elapsed_s"], a.cheap_samples / m["elapsed_s"],
                     m["records"] / m["write_s"] if m["write_s"] else 0, m["write_s"],
                     m["chunks"] / m["dispatch_s"] if m["dispatch_s"] else 0, m["chunks"],
                     m["dispatch_s"], m["work_b"], m["result_b"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
