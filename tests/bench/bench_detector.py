#!/usr/bin/python3
"""bench_detector.py: what a detector model costs per sample (issue 18), not a test.

For pauli designs of 2 and 4 qubits (d = 4, 16) it writes N simulated samples (a mixed product
state, 1000 counts per setting, through a detector model: efficiencies 0.7-1.0, 3 % crosstalk
per qubit, drift +-5 %, and a 0.5-count background per outcome) and times
`qtomoctl reconstruct --local --method M` (whole process, median of --repeats) three ways:

  ideal:   the data without the model (no --detector);
  model:   --detector with efficiencies, crosstalk and drift (no background);
  model+bg: the same with the background (mle then maximises the Poisson likelihood).

The fixed cost (reading, building the design) is removed by timing 1 and N samples; it prints
ms per sample and the ratios to `ideal`, plus the OpenBLAS kernels in effect.

    cmake --preset release && cmake --build --preset release -j2
    OPENBLAS_CORETYPE=Haswell /usr/bin/python3 tests/bench/bench_detector.py [--build DIR]
"""
import argparse
import itertools
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

# Per-qubit outcome probabilities of a qubit state with Bloch vector r: basis X, Y, Z, bit 0 = +1.
BASES = "XYZ"


def qubit_probs(r, basis, bit):
    c = r[BASES.index(basis)]
    return 0.5 * (1 + c) if bit == 0 else 0.5 * (1 - c)


def simulate(n, samples, rng, model, background):
    """Columns of counts (pauli outcome order) under the model."""
    bloch = [[0.6 * rng.uniform(-1, 1) for _ in range(3)] for _ in range(n)]
    settings = list(itertools.product(BASES, repeat=n))
    k = 2 ** n
    cols = []
    for _ in range(samples):
        col = []
        for g, bases in enumerate(settings):
            p = []
            for bits in itertools.product((0, 1), repeat=n):
                v = 1.0
                for q in range(n):
                    v *= qubit_probs(bloch[q], bases[q], bits[q])
                p.append(v)
            if model:
                eta = model["efficiencies"][g * k:(g + 1) * k]
                t = model["setting_intensity"][g]
                pe = [t * eta[b] * p[b] for b in range(k)]
                p = [0.0] * k
                for b in range(k):  # per-qubit crosstalk: bit flips with probability 0.03
                    for a in range(k):
                        flips = bin(a ^ b).count("1")
                        p[a] += pe[b] * (0.03 ** flips) * (0.97 ** (n - flips))
            mean = [1000.0 * x + background for x in p]
            col += [poisson(rng, m) for m in mean]
        cols.append(col)
    return cols


def poisson(rng, mean):
    if mean > 30:
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    L, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p < L:
            return k
        k += 1


def write_csv(path, cols):
    with open(path, "w") as f:
        for a in range(len(cols[0])):
            f.write(",".join(str(c[a]) for c in cols) + "\n")


def run(qtomoctl, args, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run([qtomoctl, "reconstruct"] + args, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit("qtomoctl %s failed: %s" % (" ".join(args), p.stderr.decode()))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "release"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="mle")
    a = ap.parse_args()
    qtomoctl = os.path.join(a.build, "client", "qtomoctl")
    env_kernels = os.environ.get("OPENBLAS_CORETYPE", "(auto-detected)")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    tmp = tempfile.mkdtemp(prefix="bench-det-")
    rng = random.Random(18)
    print("OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s, method %s, median of %d" %
          (env_kernels, os.environ["OPENBLAS_NUM_THREADS"], a.method, a.repeats))
    try:
        for n, N in ((2, 400), (4, 40)):
            m, k, G = 6 ** n, 2 ** n, 3 ** n
            model = {"efficiencies": [0.7 + 0.3 * rng.random() for _ in range(m)],
                     "qubit_crosstalk": [[[0.97, 0.03], [0.03, 0.97]]] * n,
                     "setting_intensity": [0.95 + 0.1 * rng.random() for _ in range(G)]}
            files = {}
            for name, mdl, bg in (("ideal", None, 0.0), ("model", model, 0.0),
                                  ("model+bg", model, 0.5)):
                cols = simulate(n, N, rng, mdl, bg)
                path = os.path.join(tmp, "%s-%d.csv" % (name, n))
                write_csv(path, cols)
                write_csv(path + ".1", cols[:1])
                det = None
                if mdl:
                    det = os.path.join(tmp, "%s-%d.json" % (name, n))
                    with open(det, "w") as f:
                        json.dump(dict(mdl, background=[bg] * m) if bg else mdl, f)
                files[name] = (path, det)
            per = {}
            for name, (path, det) in files.items():
                extra = ["--detector", det] if det else []
                args = ["--design", "pauli", "--local", "--method", a.method] + extra
                t1 = run(qtomoctl, [path + ".1"] + args, a.repeats)
                tN = run(qtomoctl, [path] + args, a.repeats)
                per[name] = (tN - t1) / (N - 1)
                print("pauli %d qubits (d = %d), %s: %.2f ms per sample (fixed %.3f s)" %
                      (n, k, name, 1e3 * per[name], t1))
            print("pauli %d qubits: model / ideal = %.2f, model+bg / ideal = %.2f" %
                  (n, per["model"] / per["ideal"], per["model+bg"] / per["ideal"]))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
