"""End-to-end tests of qtomoctl and libqtomo-client: the real qtomod (2 workers, a private
socket and cache directory, started here), qtomoctl against it and against `--local`, and
client_check (tests/integration/client_check.c, the public C API). Run by ctest with QTOMOD,
QTOMOCTL, CLIENT_CHECK, QTOMO_SRC and QTOMO_REFDATA in the environment; needs /usr/bin/python3
with python3-msgpack, numpy, pandas (summarize is checked against pandas) and python3-h5py
(test_hdf5_*). Tests of the origin's real data skip when ../shared/reference-data/origin is
absent."""
import cmath
import csv
import hashlib
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import msgpack
try:
    import h5py  # python3-h5py (packaging/install-deps); only test_hdf5_* needs it
    import numpy
except ImportError:
    h5py = None
from qtomod_fixture import EXAMPLES, PAULI6, QTOMOCTL, SRC, Daemon, pauli6_columns, \
    read_columns, wait_until, write_columns

CLIENT_CHECK = os.environ.get("CLIENT_CHECK", "")
REFDATA = os.environ.get("QTOMO_REFDATA") or os.path.join(SRC, "..", "shared", "reference-data",
                                                          "origin")
ORIGIN = os.path.join(REFDATA, "matlab-repo")
BELL4 = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")

# --local computes in this process. The daemon's workers run OpenBLAS with one thread; --local
# gets the same only when it re-executes itself (OPENBLAS_CORETYPE unset). Every comparison
# below pins it, except test_local_blas_threads_match_daemon, which is about exactly that.
LOCAL_ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def ctl(*args, env=None, input=None, timeout=50):
    """Runs qtomoctl; bytes in, bytes out."""
    return subprocess.run([QTOMOCTL] + [str(a) for a in args], capture_output=True, env=env,
                          input=input, timeout=timeout)


def local(*args, **kw):
    kw.setdefault("env", LOCAL_ENV)
    return ctl(*args, **kw)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def first_difference(a, b):
    """A short description of where two byte strings of JSON lines or CSV first differ."""
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            k = next(j for j in range(min(len(x), len(y)) + 1)
                     if j == min(len(x), len(y)) or x[j] != y[j])
            return "line %d differs at byte %d:\n  %r\n  %r" % (
                i + 1, k, x[max(0, k - 80):k + 80], y[max(0, k - 80):k + 80])
    return "%d lines against %d" % (len(la), len(lb))


def nopovm_counts(d, n, seed):
    """Poisson counts of n noisy maximally entangled states of two sqrt(d)-level systems in the
    nopovm order (|0>..|d-1>, then for i < j: (|i>+|j>)/sqrt2, (|i>-i|j>)/sqrt2)."""
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


class FakeServer:
    """A Unix-socket server that reads the client's hello frame and then misbehaves: mode
    'garbage' answers with a correctly framed body that is not msgpack, 'close' closes the
    connection, 'protocol' answers with an unsupported_protocol error, 'badresult' with a
    hello result that lacks required keys, 'zero' with a frame of length 0, 'silent' never
    answers."""

    def __init__(self, path, mode):
        self.path, self.mode = path, mode
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.stop = False
        self.conns = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    @staticmethod
    def read_frame(c):
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            chunk = c.recv(65536)
            if not chunk:
                return None
            buf += chunk
        return msgpack.unpackb(buf[4:4 + struct.unpack(">I", buf[:4])[0]], raw=False)

    @staticmethod
    def frame(obj):
        body = msgpack.packb(obj, use_bin_type=True)
        return struct.pack(">I", len(body)) + body

    def run(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            self.handle(c)

    def handle(self, c):
        c.settimeout(10)
        try:
            hello = self.read_frame(c)
            if hello is None:
                return
            rid = hello[1]
            if self.mode == "garbage":
                c.sendall(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
            elif self.mode == "close":
                c.close()
            elif self.mode == "protocol":
                c.sendall(self.frame([1, rid, {"code": -32010,
                                               "message": "this server speaks 9.0"}, None]))
            elif self.mode == "badresult":
                c.sendall(self.frame([1, rid, None, {"proto": [1, 0]}]))
            elif self.mode == "zero":
                c.sendall(struct.pack(">I", 0))
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.t.join()
        self.srv.close()
        for c in self.conns:
            c.close()


class ResultProxy(FakeServer):
    """A Unix-socket proxy in front of a real qtomod that alters the daemon's stream at its k-th
    result notification: mode 'drop' leaves it out, 'dup' sends it twice. Everything else is
    relayed as it is, frame by frame."""

    def __init__(self, path, upstream, mode, k):
        self.upstream, self.k = upstream, k
        super().__init__(path, mode)

    @staticmethod
    def frames(sock):
        buf = b""
        while True:
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                n = 4 + struct.unpack(">I", buf[:4])[0]
                yield buf[:n]
                buf = buf[n:]
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk

    def relay_up(self, cl, up):
        try:
            for f in self.frames(cl):
                up.sendall(f)
        except OSError:
            pass

    def serve(self, cl):
        up = socket.socket(socket.AF_UNIX)
        up.connect(self.upstream)
        self.conns += [cl, up]
        threading.Thread(target=self.relay_up, args=(cl, up), daemon=True).start()
        seen = 0
        try:
            for f in self.frames(up):
                m = msgpack.unpackb(f[4:], raw=False, strict_map_key=False)
                if m[0] == 2 and m[1] == "result":
                    seen += 1
                    if seen == self.k and self.mode == "drop":
                        continue
                    if seen == self.k and self.mode == "dup":
                        cl.sendall(f)
                cl.sendall(f)
        except OSError:
            pass
        cl.close()

    def handle(self, c):  # each connection relayed by its own thread
        threading.Thread(target=self.serve, args=(c,), daemon=True).start()


class QtomoctlTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qtomoctl-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, *args, **kw):
        d = Daemon(*args, prefix="qtomoctl-daemon-", ready_timeout=30, **kw)
        self.addCleanup(d.cleanup)
        return d

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def assertSameBytes(self, a, b, what):
        if a != b:
            self.fail("%s: daemon and --local differ; %s" % (what, first_difference(a, b)))

    def assertSameOutputs(self, out, ref, what):
        """records.jsonl and summary.csv of two output directories, byte for byte."""
        for f in ("records.jsonl", "summary.csv"):
            with open(os.path.join(out, f), "rb") as x, open(os.path.join(ref, f), "rb") as y:
                got, want = x.read(), y.read()
            if got != want:
                self.fail("%s: %s differs from a clean run's: %s"
                          % (what, f, first_difference(got, want)))

    def assertExit(self, p, code, what):
        self.assertEqual(p.returncode, code, "%s: exit %d, expected %d; stderr:\n%s" % (
            what, p.returncode, code, p.stderr.decode(errors="replace")[-2000:]))

    def require(self, *paths):
        for p in paths:
            if not os.path.exists(p):
                self.skipTest("reference data not found: %s (the data of the origin live in "
                              "../shared/reference-data/origin)" % p)

    def big_input(self, reps, name="big.csv"):
        path = self.path(name)
        write_columns(path, read_columns(BELL4, str) * reps)
        return path

    # ---- summary.csv ----

    def test_summary_from_results_equals_from_records(self):
        # A run builds summary.csv from its results as it writes the records; --resume with
        # nothing left to do rebuilds it from records.jsonl alone. Both must give the same
        # bytes: failed samples, every method, --bell, --spectral, error bars, a target.
        cols = read_columns(BELL4, str) * 3
        cols[1] = [""] * len(cols[1])                   # an empty column
        cols[4] = ["0"] * len(cols[4])                  # a group summing to zero
        cols[7] = cols[7][:-1] + [""]                   # a missing value
        bad = self.path("bad.csv")
        write_columns(bad, cols)
        good = self.big_input(3, "good.csv")
        runs = [(bad, "--method", "linear,mle,wls,rhor", "--bell", "--spectral"),
                (good, "--method", "linear,mle", "--bootstrap", "8", "--seed", "5", "--target",
                 os.path.join(EXAMPLES, "phi_plus.json"), "--spectral")]
        for k, (path, *opts) in enumerate(runs):
            out = self.path("run%d" % k)
            p = local("reconstruct", path, "--local", "-o", out, *opts)
            self.assertIn(p.returncode, (0, 1), p.stderr.decode(errors="replace")[-2000:])
            summary = os.path.join(out, "summary.csv")
            with open(summary, "rb") as f:
                first = f.read()
            os.unlink(summary)
            p = local("reconstruct", path, "--local", "-o", out, "--resume", *opts)
            self.assertIn(p.returncode, (0, 1), p.stderr.decode(errors="replace")[-2000:])
            with open(summary, "rb") as f:
                again = f.read()
            if first != again:
                self.fail("run %d: summary.csv from results and from records differ; %s"
                          % (k, first_difference(first, again)))
            self.assertEqual(first.count(b"\n"), count_lines(os.path.join(out, "records.jsonl")) + 1)

    # ---- error bars (--bootstrap) ----

    def test_bootstrap_daemon_equals_local_any_worker_count(self):
        # The same seed gives the same records through 1 worker, 2 workers and --local: each
        # sample's resamples are units spread over the workers and reduced in resample order.
        runs = []
        for workers in (1, 2):
            d = self.start(workers=workers)
            bell, mub3 = self.path("bell%d.csv" % workers), self.path("mub%d.csv" % workers)
            shutil.copy(BELL4, bell)
            shutil.copy(os.path.join(EXAMPLES, "mub_d3.csv"), mub3)
            recs = self.daemon_equals_local(d, bell, 4, "--method", "linear,mle", "--bootstrap",
                                            "60", "--seed", "42", "--target",
                                            os.path.join(EXAMPLES, "phi_plus.json"))
            runs.append(recs)
            self.daemon_equals_local(d, mub3, 3, "--method", "linear,wls", "--bootstrap", "30",
                                     "--seed", "7", "--resample", "parametric", "--confidence",
                                     "0.9")
            self.assertEqual(d.stop(), 0)
        self.assertEqual(runs[0], runs[1])
        for r in runs[0]:
            u = r["uncertainty"]
            self.assertEqual((u["resamples"], u["kind"], u["seed"], u["confidence"]),
                             (60, "data", 42, 0.95))
            self.assertEqual(u["failed_resamples"], 0)
            for m in ("purity", "fidelity", "trace_distance"):
                st = u["metrics"][m]
                self.assertGreater(st["std"], 0, m)
                self.assertLessEqual(st["lo"], st["hi"], m)
            self.assertEqual(len(u["metrics"]["eigenvalues"]["std"]), 4)
            self.assertEqual(len(u["rho_std"]["re"]), 4)
            # nopovm has no trace-distance bound (Poisson counts, see qt_tdbound.h)
            self.assertNotIn("trace_distance_bound", u)
        with open(self.path("mub2.csv.daemon", "summary.csv")) as f:
            head = f.readline().rstrip("\n").split(",")
        self.assertIn("purity_std", head)
        self.assertIn("purity_hi", head)
        self.assertIn("trace_distance_bound", head)  # mub linear has one
        self.assertGreater(head.index("purity_std"), head.index("error"))
        with open(self.path("mub2.csv.daemon", "run.json")) as f:
            self.assertEqual(json.load(f)["options"]["bootstrap"],
                             {"resamples": 30, "kind": "parametric", "seed": 7,
                              "confidence": 0.9, "shots": 0})

    def test_bootstrap_worker_killed_mid_sample_is_exactly_once(self):
        # A worker killed while it computes a unit of resamples: the unit is retried on another
        # worker and the records are still those of --local, with no failed resamples.
        d = self.start(workers=2)
        path = self.path("bell.csv")
        write_columns(path, read_columns(BELL4, str)[:2])
        opts = ["--method", "linear,mle", "--bootstrap", "400", "--seed", "5"]
        # Size the run from this machine's speed: at least ~4 s through the daemon.
        t0 = time.monotonic()
        ref = local("reconstruct", path, "--local", "--json", *opts)
        self.assertExit(ref, 0, "--local")
        per_pass = max(time.monotonic() - t0, 1e-3)
        reps = max(1, min(40, int(8.0 / per_pass)))
        write_columns(path, read_columns(BELL4, str)[:2] * reps)
        ref = local("reconstruct", path, "--local", "--json", *opts, timeout=600)
        self.assertExit(ref, 0, "--local")
        p = subprocess.Popen([QTOMOCTL, "-s", d.sock, "reconstruct", path, "--json"] + opts,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed = []

        def kill_busy():
            st = json.loads(ctl("-s", d.sock, "--json", "stats").stdout)
            busy = [w["pid"] for w in st["worker_detail"] if w["state"] == "busy"]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            return bool(busy) or p.poll() is not None

        for _ in range(2):  # two kills, a while apart
            self.assertTrue(wait_until(kill_busy, 60))
            time.sleep(per_pass / 4)
        out, err = p.communicate(timeout=600)
        self.assertEqual(p.returncode, 0, err.decode(errors="replace")[-2000:])
        self.assertEqual(len(killed), 2, "the run ended before the kills")
        self.assertSameBytes(out, ref.stdout, "records after killed workers")
        st = json.loads(ctl("-s", d.sock, "--json", "stats").stdout)
        self.assertEqual(st["errors"], 0)
        self.assertEqual(d.stop(), 0)

    def test_bootstrap_refusals_and_resume_keeps_seed(self):
        d = self.start()
        probs = self.path("probs.csv")
        cols = read_columns(BELL4)
        write_columns(probs, [[v / sum(c) for v in c] for c in cols])
        for mode in ("daemon", "local"):
            args = ["-s", d.sock] if mode == "daemon" else []
            extra = [] if mode == "daemon" else ["--local"]
            p = ctl(*args, "reconstruct", probs, *extra, "--bootstrap", "20")
            self.assertExit(p, 2, mode + " probabilities without --shots")
            self.assertIn(b"--shots", p.stderr)
            self.assertIn(b"column 1", p.stderr)
            p = ctl(*args, "reconstruct", probs, *extra, "--json", "--bootstrap", "20",
                    "--shots", "5000", "--seed", "1", env=LOCAL_ENV)
            self.assertExit(p, 0, mode + " with --shots")
            u = json.loads(p.stdout.split(b"\n")[0])["uncertainty"]
            self.assertEqual(u["shots"], 5000)
        for bad in (["--seed", "3"], ["--bootstrap", "1"], ["--bootstrap", "10", "--confidence",
                                                             "1"],
                    ["--bootstrap", "10", "--resample", "jackknife"],
                    ["--bootstrap", "10", "--seed", str(2 ** 53)]):
            p = ctl("-s", d.sock, "reconstruct", BELL4, *bad)
            self.assertExit(p, 2, " ".join(bad))
        # Without --seed one is chosen, reported, and kept by --resume.
        out = self.path("out")
        p = ctl("-s", d.sock, "reconstruct", BELL4, "-o", out, "--bootstrap", "10")
        self.assertExit(p, 0, "chosen seed")
        with open(os.path.join(out, "run.json")) as f:
            seed = json.load(f)["options"]["bootstrap"]["seed"]
        with open(os.path.join(out, "records.jsonl")) as f:
            self.assertEqual({json.loads(line)["uncertainty"]["seed"] for line in f}, {seed})
        p = ctl("-s", d.sock, "reconstruct", BELL4, "-o", out, "--bootstrap", "10", "--resume")
        self.assertExit(p, 0, "--resume without --seed")
        p = ctl("-s", d.sock, "reconstruct", BELL4, "-o", out, "--bootstrap", "10", "--resume",
                "--seed", str(seed + 1))
        self.assertExit(p, 2, "--resume with another seed")
        self.assertEqual(d.stop(), 0)

    # ---- daemon == --local on the origin's real data ----

    def daemon_equals_local(self, d, path, n_samples, *opts, exit_code=0):
        """reconstruct PATH through the daemon and --local: --json output byte-identical, and
        with -o DIR records.jsonl and summary.csv byte-identical, run.json complete with the
        input's SHA-256."""
        a = ctl("-s", d.sock, "reconstruct", path, "--json", *opts)
        b = local("reconstruct", path, "--local", "--json", *opts)
        self.assertExit(a, exit_code, "daemon --json")
        self.assertExit(b, exit_code, "--local --json")
        methods = opts[opts.index("--method") + 1].split(",") if "--method" in opts else [1, 2]
        self.assertEqual(a.stdout.count(b"\n"), n_samples * len(methods))
        self.assertSameBytes(a.stdout, b.stdout, "--json output of " + path)
        name = os.path.basename(path)
        dd, dl = self.path(name + ".daemon"), self.path(name + ".local")
        a = ctl("-s", d.sock, "reconstruct", path, "-o", dd, *opts)
        b = local("reconstruct", path, "--local", "-o", dl, *opts)
        self.assertExit(a, exit_code, "daemon -o")
        self.assertExit(b, exit_code, "--local -o")
        for f in ("records.jsonl", "summary.csv"):
            with open(os.path.join(dd, f), "rb") as x, open(os.path.join(dl, f), "rb") as y:
                self.assertSameBytes(x.read(), y.read(), f)
        runs = []
        for out, mode in ((dd, "daemon"), (dl, "local")):
            with open(os.path.join(out, "run.json")) as f:
                run = json.load(f)
            runs.append(run)
            self.assertEqual(run["input_sha256"], sha256(path))
            self.assertIs(run["complete"], True)
            self.assertEqual(run["mode"], mode)
            self.assertEqual(run["resumed_at_sample"], 0)
            self.assertEqual(run["counts"]["samples"], n_samples)
            self.assertEqual(run["counts"]["samples_this_run"], n_samples)
        self.assertEqual(runs[0]["options"], runs[1]["options"])
        self.assertEqual(runs[0]["counts"], runs[1]["counts"])
        # Mean purities are summed in the order results arrive (the daemon's order varies), so
        # they may differ in the last bits; the records themselves may not.
        self.assertEqual(runs[0]["methods"].keys(), runs[1]["methods"].keys())
        for m, a in runs[0]["methods"].items():
            b = runs[1]["methods"][m]
            self.assertEqual((a["ok"], a["failed"]), (b["ok"], b["failed"]), m)
            if a["mean_purity"] is None or b["mean_purity"] is None:
                self.assertEqual(a["mean_purity"], b["mean_purity"], m)
            else:
                self.assertAlmostEqual(a["mean_purity"], b["mean_purity"], delta=1e-13, msg=m)
        self.assertTrue(runs[0]["versions"]["server"].startswith("qtomod/"))
        with open(os.path.join(dd, "records.jsonl")) as f:
            return [json.loads(line) for line in f]

    def test_origin_01csv_daemon_equals_local(self):
        src = os.path.join(ORIGIN, "01.csv")
        self.require(src)
        d = self.start()
        recs = self.daemon_equals_local(d, src, 1, "--method", "linear,mle")
        self.assertEqual([(r["method"], r["status"], r["dim"], r["design"]) for r in recs],
                         [("linear", "ok", 4, "nopovm"), ("mle", "ok", 4, "nopovm")])
        # The MATLAB reference of this file: linear purity 0.920958007 (origin-digest).
        self.assertAlmostEqual(recs[0]["metrics"]["purity"], 0.920958007, delta=1e-5)
        self.assertEqual(d.stop(), 0)

    def test_target_daemon_equals_local(self):
        # The target travels to the worker, which checks it again: a state checked twice must
        # be the same bits (the worker used to divide an already normalised target by its
        # trace once more, and fidelity and trace distance differed in the last bits).
        src = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
        d = self.start()
        recs = self.daemon_equals_local(d, src, 4, "--method", "linear,mle", "--bell",
                                        "--target", os.path.join(EXAMPLES, "phi_plus.json"))
        self.assertTrue(all("fidelity" in r["metrics"] for r in recs))
        self.assertEqual(d.stop(), 0)

    def test_origin_bell4x4_d16_daemon_equals_local(self):
        # The normalised coincidences (column 5) of every bell4x4_raw_NN.gbk.csv, one sample per
        # file: 256 rows (d = 16, nopovm), as the origin's gen_reference.py reads them.
        files = sorted(f for f in (os.listdir(ORIGIN) if os.path.isdir(ORIGIN) else [])
                       if re.fullmatch(r"bell4x4_raw_\d\d\.gbk\.csv", f))
        if not files:
            self.require(os.path.join(ORIGIN, "bell4x4_raw_01.gbk.csv"))
        cols = []
        for name in files:
            with open(os.path.join(ORIGIN, name), encoding="gbk") as f:
                rows = list(csv.reader(f))[1:]
            col = [r[4].strip() for r in rows if len(r) > 4 and r[4].strip()]
            self.assertEqual(len(col), 256, name)
            float(col[0])
            cols.append(col)
        path = self.path("bell4x4_normalised.csv")
        write_columns(path, cols)
        d = self.start()
        recs = self.daemon_equals_local(d, path, len(cols), "--method", "linear,mle")
        self.assertTrue(all(r["dim"] == 16 and r["design"] == "nopovm" for r in recs))
        self.assertEqual([r["status"] for r in recs], ["ok"] * 2 * len(cols))
        self.assertTrue(all(r["metrics"]["converged"] for r in recs if r["method"] == "mle"))
        self.assertEqual(d.stop(), 0)

    def test_local_blas_threads_match_daemon(self):
        # The daemon's workers always run OpenBLAS single-threaded. qtomoctl --local does so
        # only when it re-executes itself to pick the kernels (OPENBLAS_CORETYPE unset);
        # with OPENBLAS_CORETYPE already set (as systemd units and CI set it) and
        # OPENBLAS_NUM_THREADS unset it computes d = 16 MLE with threaded BLAS, and its records
        # are no longer identical to the daemon's.
        if (os.cpu_count() or 1) < 2:
            self.skipTest("one CPU: OpenBLAS runs one thread anyway")
        path = self.path("nopovm16.csv")
        write_columns(path, nopovm_counts(16, 2, 2026))
        d = self.start()
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if d.kernel():
            env["OPENBLAS_CORETYPE"] = d.kernel()  # the daemon's kernels, set by the user
        a = ctl("-s", d.sock, "reconstruct", path, "--json", "--method", "linear,mle")
        b = ctl("reconstruct", path, "--local", "--json", "--method", "linear,mle", env=env)
        self.assertExit(a, 0, "daemon")
        self.assertExit(b, 0, "--local")
        self.assertSameBytes(a.stdout, b.stdout, "--json output with OPENBLAS_CORETYPE=%s and "
                             "OPENBLAS_NUM_THREADS unset" % env.get("OPENBLAS_CORETYPE"))
        self.assertEqual(d.stop(), 0)

    # ---- -o DIR, interruption and --resume ----

    def start_run(self, d, path, out, methods="linear,mle,rhor"):
        return subprocess.Popen([QTOMOCTL, "-s", d.sock, "reconstruct", path, "-o", out,
                                 "--method", methods],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def interrupt(self, d, path, out, sig, lines=30):
        """Starts a run into out and sends sig once records.jsonl has some lines."""
        p = self.start_run(d, path, out)
        rec = os.path.join(out, "records.jsonl")
        self.assertTrue(wait_until(lambda: count_lines(rec) >= lines or p.poll() is not None,
                                   40), "no records after 40 s")
        self.assertIsNone(p.poll(), "the run ended before it could be interrupted")
        p.send_signal(sig)
        _, err = p.communicate(timeout=40)
        total = len(read_columns(path, str)) * 3
        self.assertLess(count_lines(rec), total, "interrupted, yet every record is there")
        return p.returncode, err.decode(errors="replace")

    @staticmethod
    def inflight(d):
        return json.loads(ctl("-s", d.sock, "--json", "status").stdout)["inflight"]

    def reference_run(self, d, path):
        ref = self.path("reference")
        p = ctl("-s", d.sock, "reconstruct", path, "-o", ref, "--method", "linear,mle,rhor")
        self.assertExit(p, 0, "uninterrupted run")
        return self.read_outputs(ref)

    @staticmethod
    def read_outputs(out):
        """(records.jsonl, summary.csv) of an output directory, as bytes."""
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            records = f.read()
        with open(os.path.join(out, "summary.csv"), "rb") as f:
            summary = f.read()
        return records, summary

    def assertMatchesReference(self, out, ref, n):
        records, summary = ref
        for f, want in (("records.jsonl", records), ("summary.csv", summary)):
            with open(os.path.join(out, f), "rb") as x:
                got = x.read()
            if got != want:
                self.fail("%s after --resume differs from an uninterrupted run's: %s"
                          % (f, first_difference(got, want)))
        with open(os.path.join(out, "run.json")) as f:
            run = json.load(f)
        self.assertIs(run["complete"], True)
        self.assertGreater(run["resumed_at_sample"], 0)
        self.assertEqual(run["resumed_at_sample"] + run["counts"]["samples_this_run"], n)
        self.assertEqual(run["counts"]["samples"], n)

    def test_resume_after_sigkill_is_byte_identical(self):
        d = self.start()
        path = self.big_input(250)  # 1000 samples, linear,mle,rhor: a few seconds
        ref = self.reference_run(d, path)
        out = self.path("killed")
        rc, _ = self.interrupt(d, path, out, signal.SIGKILL)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertFalse(os.path.exists(os.path.join(out, "summary.csv")))
        # The daemon notices the dead client and cancels its batch.
        self.assertTrue(wait_until(lambda: self.inflight(d) == 0, 30))
        p = ctl("-s", d.sock, "reconstruct", path, "-o", out, "--method", "linear,mle,rhor",
                "--resume")
        self.assertExit(p, 0, "--resume")
        self.assertIn(b"(resumed)", p.stderr)
        self.assertMatchesReference(out, ref, 1000)
        # Nothing left to do: a second --resume keeps the files as they are.
        p = ctl("-s", d.sock, "reconstruct", path, "-o", out, "--method", "linear,mle,rhor",
                "--resume")
        self.assertExit(p, 0, "second --resume")
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            self.assertEqual(f.read(), ref[0])
        self.assertEqual(d.stop(), 0)

    def test_exit_4_when_the_stream_misses_or_repeats_a_result(self):
        # Exactly one result per sample, checked by the client too: a stream that skipped one
        # held every later record back and still ended "complete" with exit 0; one that
        # repeated one counted it twice. Both are now exit 4 with the run left incomplete, and
        # --resume against the daemon itself finishes it byte-identical to a clean run.
        d = self.start()
        path = self.big_input(10)  # 40 samples
        ref = self.path("reference")
        p = ctl("-s", d.sock, "reconstruct", path, "-o", ref, "--method", "linear")
        self.assertExit(p, 0, "clean run")
        for mode, why in (("drop", b"of its 40 samples answered"), ("dup", b"twice")):
            proxy = ResultProxy(self.path(mode + ".sock"), d.sock, mode, 10)
            self.addCleanup(proxy.close)
            out = self.path(mode)
            p = ctl("-s", proxy.path, "reconstruct", path, "-o", out, "--method", "linear")
            self.assertExit(p, 4, mode)
            self.assertIn(why, p.stderr, mode)
            with open(os.path.join(out, "run.json")) as f:
                self.assertIs(json.load(f)["complete"], False, mode)
            p = ctl("-s", d.sock, "reconstruct", path, "-o", out, "--method", "linear",
                    "--resume")
            self.assertExit(p, 0, mode + ": --resume")
            self.assertSameOutputs(out, ref, mode + ", after --resume")
        self.assertEqual(d.stop(), 0)

    def test_one_run_per_output_directory(self):
        # Two runs on one DIR wrote interleaved, duplicated and missing records and both ended
        # "complete". A run holds a lock on DIR from before its first check to its exit. The
        # first run here waits on stopped workers, so that it is still running whatever the
        # machine's speed.
        d = self.start("--item-timeout-ms", "600000")
        workers = subprocess.run(["pgrep", "-P", str(d.proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        self.assertTrue(workers, "no worker processes")
        def signal_workers(sig):
            for w in workers:
                try:
                    os.kill(int(w), sig)
                except ProcessLookupError:
                    pass
        signal_workers(signal.SIGSTOP)
        self.addCleanup(signal_workers, signal.SIGCONT)
        out = self.path("out")
        cmd = [QTOMOCTL, "-s", d.sock, "reconstruct", BELL4, "--method", "linear", "-o", out]
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(first.kill)

        def locked():  # from /proc/locks: probing with a lock of our own could refuse the run
            try:
                st = os.stat(out)
            except FileNotFoundError:
                return False
            key = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
            with open("/proc/locks") as f:
                return any(ln.split()[1] == "FLOCK" and ln.split()[5] == key
                           for ln in f if len(ln.split()) > 5)
        self.assertTrue(wait_until(lambda: locked() or first.poll() is not None, 60),
                        "the first run never locked its directory")
        self.assertIsNone(first.poll(), "the first run ended with its workers stopped")
        for extra in ((), ("--resume",)):
            p = ctl("-s", d.sock, "reconstruct", BELL4, "--method", "linear", "-o", out, *extra)
            self.assertExit(p, 2, "second run " + " ".join(extra))
            self.assertIn(b"in use by another qtomoctl run", p.stderr)
        signal_workers(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
        self.assertEqual(first.returncode, 0, err.decode(errors="replace")[-2000:])
        self.assertEqual(count_lines(os.path.join(out, "records.jsonl")), 4)
        with open(os.path.join(out, "run.json")) as f:
            self.assertIs(json.load(f)["complete"], True)
        self.assertEqual(d.stop(), 0)

    def test_output_directory_that_fills_up(self):
        # A disk that fills during -o DIR: exit 1; the summary says its counts are of samples
        # computed and that DIR is incomplete (it listed summary.csv, which was never written,
        # and "51 ok" where 46 records were on disk); --resume, with room again, finishes the
        # run byte-identical to a clean one. RLIMIT_FSIZE (EFBIG) stands in for a full disk.
        path = self.big_input(100)  # 400 samples, ~0.5 MB of records
        ref = self.path("ref")
        p = ctl("reconstruct", path, "--local", "--method", "linear", "-o", ref, env=LOCAL_ENV)
        self.assertExit(p, 0, "clean run")
        out = self.path("out")

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (60000, 60000))
        p = subprocess.run([QTOMOCTL, "reconstruct", path, "--local", "--method", "linear",
                            "-o", out], env=LOCAL_ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, preexec_fn=limit, timeout=120)
        self.assertExit(p, 1, "writing past the limit")
        self.assertIn(b"File too large", p.stderr)
        self.assertIn(b"sample(s) computed: ", p.stderr)
        self.assertIn(b"is incomplete", p.stderr)
        self.assertNotIn(b"summary.csv, ", p.stderr)
        p = ctl("reconstruct", path, "--local", "--method", "linear", "-o", out, "--resume",
                env=LOCAL_ENV)
        self.assertExit(p, 0, "--resume")
        self.assertSameOutputs(out, ref, "after --resume")

    def test_output_that_cannot_be_written_is_an_error(self):
        # Records are flushed in bursts, so some are still buffered when the run ends: writing
        # them must be checked like any other write (a full disk, a closed pipe), before the
        # summary, in both modes, for a table and for --json.
        d = self.start()
        for extra in ((), ("--json",)):
            for mode, args, env in (("daemon", ("-s", d.sock), None), ("local", (), LOCAL_ENV)):
                cmd = list(args) + ["reconstruct", BELL4, "--method", "linear", *extra]
                if mode == "local":
                    cmd.append("--local")
                with open("/dev/full", "wb") as full:
                    p = subprocess.run([QTOMOCTL] + cmd, stdout=full, stderr=subprocess.PIPE,
                                       env=env, timeout=60)
                what = "%s %s" % (mode, " ".join(extra) or "table")
                self.assertNotEqual(p.returncode, 0, what + ": exit 0 writing to /dev/full")
                self.assertIn(b"No space left on device", p.stderr, what)
        self.assertEqual(d.stop(), 0)

    def test_local_run_streams_records_then_resume_after_sigkill(self):
        # --local writes its records while it runs: a reader sees them grow, and a SIGKILL
        # loses at most the samples in flight, which --resume recomputes to the bytes of an
        # uninterrupted run.
        path = self.big_input(2500)  # 10,000 samples: seconds of linear,mle
        opts = ("--method", "linear,mle")
        ref = self.path("reference")
        p = local("reconstruct", path, "--local", "-o", ref, *opts, timeout=600)
        self.assertExit(p, 0, "uninterrupted --local run")
        out = self.path("killed")
        rec = os.path.join(out, "records.jsonl")
        p = subprocess.Popen([QTOMOCTL, "reconstruct", path, "--local", "-o", out, *opts],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=LOCAL_ENV)
        try:
            self.assertTrue(wait_until(lambda: count_lines(rec) >= 30 or p.poll() is not None,
                                       120), "no records after 120 s")
            self.assertIsNone(p.poll(), "no records were written until the run had ended")
            p.kill()
        finally:
            p.communicate(timeout=60)
        self.assertLess(count_lines(rec), 20000, "killed, yet every record is there")
        p = local("reconstruct", path, "--local", "-o", out, *opts, "--resume", timeout=600)
        self.assertExit(p, 0, "--resume")
        self.assertMatchesReference(out, self.read_outputs(ref), 10000)

    def killed_run(self):
        d = self.start()
        path = self.big_input(250)
        out = self.path("killed")
        rc, _ = self.interrupt(d, path, out, signal.SIGKILL)
        self.assertEqual(rc, -signal.SIGKILL)
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            before = f.read()
        return d, path, out, before

    def assertRefusedKeepsRecords(self, p, out, before, what):
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            after = f.read()
        self.assertEqual(p.returncode, 2,
                         "%s: --resume after SIGKILL was accepted (exit %d) and rewrote "
                         "records.jsonl from %d to %d lines; stderr:\n%s"
                         % (what, p.returncode, before.count(b"\n"), after.count(b"\n"),
                            p.stderr.decode(errors="replace")[-800:]))
        self.assertEqual(after, before, what + ": a refused --resume changed records.jsonl")

    def test_resume_after_sigkill_refuses_other_method(self):
        # A run killed with SIGKILL never wrote run.json (it is written at the end); --resume
        # must still refuse options that differ from the records', not truncate them.
        d, path, out, before = self.killed_run()
        p = ctl("-s", d.sock, "reconstruct", path, "-o", out, "--method", "linear,mle",
                "--resume")
        self.assertRefusedKeepsRecords(p, out, before, "--method linear,mle")
        self.assertEqual(d.stop(), 0)

    def test_resume_after_sigkill_refuses_other_input(self):
        d, path, out, before = self.killed_run()
        other = self.path("other.csv")
        cols = read_columns(path, str)
        cols[0][0] = str(float(cols[0][0]) + 1)
        write_columns(other, cols)
        p = ctl("-s", d.sock, "reconstruct", other, "-o", out, "--method", "linear,mle,rhor",
                "--resume")
        self.assertRefusedKeepsRecords(p, out, before, "another input file")
        self.assertEqual(d.stop(), 0)

    def test_sigint_then_resume_and_refusals(self):
        d = self.start()
        path = self.big_input(250)
        ref = self.reference_run(d, path)
        out = self.path("interrupted")
        rc, err = self.interrupt(d, path, out, signal.SIGINT)
        self.assertEqual(rc, 1, err)
        self.assertIn("--resume", err)
        with open(os.path.join(out, "run.json")) as f:
            run = json.load(f)
        self.assertIs(run["complete"], False)
        self.assertEqual(run["input_sha256"], sha256(path))
        # SIGINT cancels the batch on the daemon (the client's cancel).
        self.assertTrue(wait_until(lambda: self.inflight(d) == 0, 30))
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            before = f.read()
        other = self.path("other.csv")
        cols = read_columns(path, str)
        cols[5][3] = str(float(cols[5][3]) + 1)
        write_columns(other, cols)
        for args, what, why in (
                ((path, "--method", "linear,mle,rhor"), "a run without --resume",
                 b"already holds records"),
                ((path, "--method", "linear,mle", "--resume"), "--resume with other methods",
                 b"other options"),
                ((path, "--method", "linear,mle,rhor", "--tolerance", "1e-8", "--resume"),
                 "--resume with another tolerance", b"other options"),
                ((other, "--method", "linear,mle,rhor", "--resume"),
                 "--resume with another input", b"another input file")):
            p = ctl("-s", d.sock, "reconstruct", "-o", out, *args)
            self.assertExit(p, 2, what)
            self.assertIn(why, p.stderr, what)
            with open(os.path.join(out, "records.jsonl"), "rb") as f:
                self.assertEqual(f.read(), before, what + " changed records.jsonl")
        p = ctl("-s", d.sock, "reconstruct", path, "-o", out, "--method", "linear,mle,rhor",
                "--resume")
        self.assertExit(p, 0, "--resume")
        self.assertMatchesReference(out, ref, 1000)
        self.assertEqual(d.stop(), 0)

    # ---- exit codes ----

    def test_exit_0_all_ok_1_some_failed(self):
        d = self.start()
        p = ctl("-s", d.sock, "reconstruct", BELL4, "--json")
        self.assertExit(p, 0, "good file")
        # Column 2: a negative value (linear flags it, mle refuses it); column 3 empty.
        cols = read_columns(BELL4, str)
        cols[1][3] = "-5"
        cols[2] = [""] * len(cols[2])
        bad = self.path("bad.csv")
        write_columns(bad, cols)
        a = ctl("-s", d.sock, "reconstruct", bad, "--json", "--method", "linear,mle")
        b = local("reconstruct", bad, "--local", "--json", "--method", "linear,mle")
        self.assertExit(a, 1, "daemon, failed samples")
        self.assertExit(b, 1, "--local, failed samples")
        self.assertSameBytes(a.stdout, b.stdout, "records with failed samples")
        self.assertIn(b"3 of 8 records failed", a.stderr)
        recs = [json.loads(line) for line in a.stdout.splitlines()]
        st = [(r["sample"], r["method"], r["status"], r.get("error", {}).get("name"))
              for r in recs]
        self.assertEqual(st, [(0, "linear", "ok", None), (0, "mle", "ok", None),
                              (1, "linear", "ok", None), (1, "mle", "error", "negative"),
                              (2, "linear", "error", "nonfinite"),
                              (2, "mle", "error", "nonfinite"),
                              (3, "linear", "ok", None), (3, "mle", "ok", None)])
        self.assertIn("negative_input", recs[2]["warnings"])
        self.assertIn("column 3 is empty", recs[4]["error"]["message"])
        # -o DIR: the same exit code, and the run is still complete.
        p = ctl("-s", d.sock, "reconstruct", bad, "-o", self.path("bad"))
        self.assertExit(p, 1, "daemon -o, failed samples")
        with open(self.path("bad", "run.json")) as f:
            run = json.load(f)
        self.assertIs(run["complete"], True)
        self.assertEqual(run["counts"]["samples_failed"], 2)
        # --live with a line that is not numbers.
        p = ctl("-s", d.sock, "reconstruct", "--live", "--json", "--method", "linear",
                input=b"1,2,3,x\n" + ",".join(cols[0]).encode() + b"\n")
        self.assertExit(p, 1, "--live with a bad line")
        recs = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([r["status"] for r in recs], ["error", "ok"])
        self.assertIn("line 1: field 4 is not a number", recs[0]["error"]["message"])
        # Messages name the input's line, blank lines counted; a line with a NUL byte is an
        # error, not a blank line (it was skipped without a record).
        good = ",".join(cols[0]).encode() + b"\n"
        p = ctl("-s", d.sock, "reconstruct", "--live", "--json", "--method", "linear",
                input=good + b"\n" + good[:-1] + b",1\n" + b"\0\0\0\n" + good)
        self.assertExit(p, 1, "--live with a blank line and bad lines")
        recs = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([r["status"] for r in recs], ["ok", "error", "error", "ok"])
        self.assertIn("line 3: ", recs[1]["error"]["message"])
        self.assertIn("line 4: the line holds a NUL byte", recs[2]["error"]["message"])
        self.assertEqual(d.stop(), 0)

    def test_exit_2_usage(self):
        d = self.start()
        s = ("-s", d.sock)
        bad_design = self.path("bad_design.json")
        with open(bad_design, "w") as f:
            f.write('{"dim":2,"vectors":{"re":[[1,0],[0,1],[1,0],[0,1]]}}')
        missing = self.path("missing.csv")
        for args, why in (
                (("--bogus", "status"), b"unrecognized option"),
                (("frob",), b"unknown command"),
                ((), b"Usage"),
                (("--timeout", "soon", "status"), b"--timeout"),
                (s + ("reconstruct", "--bogus", BELL4), b"unrecognized option"),
                (s + ("reconstruct", missing), b"cannot read"),
                (s + ("reconstruct",), b"needs an input FILE"),
                (s + ("reconstruct", BELL4, BELL4), b"one input FILE"),
                (s + ("reconstruct", BELL4, "--method", "bogus"), b"unknown method"),
                (s + ("reconstruct", BELL4, "--resume"), b"--resume needs -o"),
                (s + ("reconstruct", BELL4, "--columns", "9:10"), b"--columns"),
                (s + ("reconstruct", BELL4, "--design", "mub"), BELL4.encode()),
                (s + ("reconstruct", BELL4, "--dim", "3"), b"--dim"),
                (s + ("reconstruct", BELL4, "--tolerance", "2"), b"tolerance"),
                (s + ("reconstruct", "--live", BELL4), b"--live"),
                (s + ("cache", "frob"), b"cache: expected"),
                (s + ("cache", "warm", "mub", "x"), b"dimension"),
                (s + ("cache", "warm", "mub", "6"), b""),  # refused by the daemon
                (s + ("design", "put", missing), b"cannot read"),
                (s + ("design", "get", BELL4), b"unknown action"),
                (s + ("design", "put", bad_design), b"informationally complete"),
                (s + ("status", "extra"), b"too many arguments"),
                (("help", "frob"), b"unknown command")):
            p = ctl(*args)
            self.assertExit(p, 2, " ".join(args))
            self.assertIn(why, p.stderr, " ".join(args))
        self.assertEqual(d.stop(), 0)

    def test_exit_3_daemon_not_reachable(self):
        missing = self.path("nobody.sock")
        for args in (("reconstruct", BELL4), ("status",), ("ping",), ("design", "put", BELL4),
                     ("reconstruct", "--live")):
            p = ctl("-s", missing, *args, input=b"")
            self.assertExit(p, 3, " ".join(args))
            self.assertIn(b"--local", p.stderr, "no hint")
            self.assertIn(missing.encode(), p.stderr)
        # Through QTOMO_SOCKET instead of -s.
        p = ctl("status", env=dict(os.environ, QTOMO_SOCKET=missing))
        self.assertExit(p, 3, "QTOMO_SOCKET")
        # A socket file nobody listens on (ECONNREFUSED).
        dead = self.path("dead.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(dead)
        s.close()
        p = ctl("-s", dead, "reconstruct", BELL4)
        self.assertExit(p, 3, "socket without a listener")
        self.assertIn(b"--local", p.stderr)
        # A listener that never answers, with --timeout: gives up in time.
        srv = FakeServer(self.path("silent.sock"), "silent")
        self.addCleanup(srv.close)
        t0 = time.time()
        p = ctl("-s", srv.path, "--timeout", "1", "status")
        self.assertExit(p, 3, "silent server with --timeout 1")
        self.assertLess(time.time() - t0, 10)

    def test_exit_4_protocol_error(self):
        for mode, why in (("garbage", b"unreadable"), ("close", b"closed"),
                          ("protocol", b"9.0"), ("badresult", b"hello"),
                          ("zero", b"frame")):
            srv = FakeServer(self.path(mode + ".sock"), mode)
            try:
                for args in (("reconstruct", BELL4), ("status",), ("--json", "ping")):
                    p = ctl("-s", srv.path, "--timeout", "20", *args)
                    self.assertExit(p, 4, "%s server: %s" % (mode, " ".join(args)))
                    self.assertIn(b"qtomoctl: ", p.stderr)
                    if mode != "close":
                        self.assertIn(why, p.stderr, mode)
                    self.assertEqual(p.stdout, b"", mode)
            finally:
                srv.close()

    # ---- progress bar ----

    def run_on_pty(self, args):
        """Runs qtomoctl with stderr on a pseudo-terminal (stdout to a file); returns the exit
        code and everything written to the terminal."""
        master, slave = os.openpty()
        with open(self.path("stdout.txt"), "wb") as out:
            p = subprocess.Popen([QTOMOCTL] + list(args), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=slave)
        os.close(slave)
        buf = b""
        end = time.time() + 50
        while time.time() < end:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                buf += chunk
            elif p.poll() is not None:
                break
        os.close(master)
        return p.wait(30), buf.decode(errors="replace")

    def test_progress_bar_on_tty(self):
        d = self.start()
        path = self.big_input(250)
        rc, text = self.run_on_pty(["-s", d.sock, "reconstruct", path, "-o", self.path("out"),
                                    "--method", "linear,mle"])
        self.assertEqual(rc, 0, text)
        for s in ("\r[", "samples/s", "ETA", "1000/1000", "1000 sample(s): 1000 ok, 0 failed",
                  "linear  mean purity", "mle     mean purity", "output:"):
            self.assertIn(s, text)
        self.assertEqual(count_lines(self.path("out", "records.jsonl")), 2000)
        # -q: nothing on the terminal.
        rc, text = self.run_on_pty(["-q", "-s", d.sock, "reconstruct", path, "-o",
                                    self.path("quiet"), "--method", "linear"])
        self.assertEqual(rc, 0, text)
        self.assertEqual(text, "")
        self.assertEqual(d.stop(), 0)

    def test_no_progress_bar_without_tty(self):
        d = self.start()
        path = self.big_input(250)
        p = ctl("-s", d.sock, "reconstruct", path, "-o", self.path("out"), "--method",
                "linear,mle")
        self.assertExit(p, 0, "stderr to a pipe")
        err = p.stderr.decode()
        self.assertNotIn("\r[", err)
        self.assertNotIn("samples/s", err)
        self.assertNotIn("ETA", err)
        self.assertIn("mean purity", err)  # the summary: -o was given
        self.assertIn("output:", err)
        # To stdout without a terminal: records only, no bar, no summary.
        p = ctl("-s", d.sock, "reconstruct", path, "--json", "--method", "linear")
        self.assertExit(p, 0, "--json to a pipe")
        self.assertEqual(p.stderr, b"")
        self.assertEqual(p.stdout.count(b"\n"), 1000)
        self.assertEqual(d.stop(), 0)

    # ---- administration, --json ----

    def json_of(self, d, *args):
        p = ctl("-s", d.sock, "--json", *args)
        self.assertExit(p, 0, " ".join(args))
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, (args, p.stdout))
        return json.loads(lines[0])

    def test_admin_commands_json(self):
        d = self.start()
        p = ctl("-s", d.sock, "reconstruct", BELL4, "--json")  # builds nopovm-d4.qtpc
        self.assertExit(p, 0, "reconstruct")
        status_keys = {"uptime_s", "queue_interactive", "queue_batch", "inflight", "workers",
                       "cache_files", "cache_bytes", "cache_budget"}
        st = self.json_of(d, "status")
        self.assertEqual(set(st), status_keys)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(st["inflight"], 0)
        self.assertGreaterEqual(st["cache_files"], 1)
        stats_keys = status_keys | {"items", "errors", "timeouts", "crashes", "recycled",
                                    "worker_detail"}
        for cmd in ("stats", "workers"):
            st = self.json_of(d, cmd)
            self.assertEqual(set(st), stats_keys, cmd)
            self.assertEqual(len(st["worker_detail"]), 2)
            for w in st["worker_detail"]:
                self.assertEqual(set(w), {"pid", "state", "jobs", "rss_kb"})
                self.assertIn(w["state"], ("idle", "busy", "starting"))
            self.assertGreaterEqual(st["items"], 4)
            self.assertEqual(st["crashes"], 0)
        entries = self.json_of(d, "cache", "list")
        self.assertIsInstance(entries, list)
        nop = [e for e in entries if e["name"] == "nopovm-d4.qtpc"]
        self.assertEqual(len(nop), 1, entries)
        self.assertEqual(set(nop[0]), {"name", "id", "design", "d", "m", "bytes", "last_use_ns",
                                       "mapped_by"})
        self.assertEqual((nop[0]["design"], nop[0]["d"], nop[0]["m"]), ("nopovm", 4, 16))
        self.assertEqual(self.json_of(d, "cache", "warm", "mub", "3"), {"warmed": 1})
        v = self.json_of(d, "cache", "verify")
        self.assertEqual(set(v), {"checked", "damaged"})
        self.assertGreaterEqual(v["checked"], 2)
        self.assertEqual(v["damaged"], [])
        self.assertEqual(self.json_of(d, "cache", "verify", "mub", "3"),
                         {"checked": 1, "damaged": []})
        ping = self.json_of(d, "ping")
        self.assertEqual(set(ping), {"server", "rtt_ms"})
        self.assertTrue(ping["server"].startswith("qtomod/"))
        self.assertGreaterEqual(ping["rtt_ms"], 0)
        # The daemon's own user is an administrator.
        ev = self.json_of(d, "cache", "evict", "mub", "3")
        self.assertGreater(ev["bytes"], 0)
        # The human forms.
        for args, want in ((("status",), "workers:  2"), (("ping",), "alive"),
                           (("workers",), "state"), (("cache", "list"), "nopovm-d4.qtpc"),
                           (("cache", "verify"), "0 damaged")):
            p = ctl("-s", d.sock, *args)
            self.assertExit(p, 0, " ".join(args))
            self.assertIn(want, p.stdout.decode(), args)
        self.assertEqual(d.stop(), 0)

    def test_version_json(self):
        # --json is a global option: every command's output is then JSON, version's too.
        d = self.start()
        for args in (("--json", "version"), ("-s", d.sock, "--json", "version")):
            p = ctl(*args)
            self.assertExit(p, 0, " ".join(args))
            try:
                docs = [json.loads(line) for line in p.stdout.decode().splitlines()]
            except ValueError:
                self.fail("qtomoctl %s printed no JSON:\n%s" % (" ".join(args),
                                                                p.stdout.decode()))
            self.assertIn("0.1.0", json.dumps(docs))
        self.assertIn("qtomod/", json.dumps(docs))
        self.assertEqual(d.stop(), 0)

    def test_version_reaches_daemon_through_default_socket(self):
        # 'qtomoctl help version': "Print qtomoctl's version, and the daemon's when it is
        # reachable." Every other command finds the daemon through $QTOMO_SOCKET.
        d = self.start()
        p = ctl("-s", d.sock, "version")
        self.assertExit(p, 0, "version -s")
        self.assertIn(b"server qtomod/", p.stdout)
        env = dict(os.environ, QTOMO_SOCKET=d.sock)
        self.assertExit(ctl("ping", env=env), 0, "ping via QTOMO_SOCKET")
        p = ctl("version", env=env)
        self.assertExit(p, 0, "version via QTOMO_SOCKET")
        self.assertIn(b"server qtomod/", p.stdout,
                      "QTOMO_SOCKET names a running daemon, but 'qtomoctl version' did not "
                      "report it:\n" + p.stdout.decode())
        self.assertEqual(d.stop(), 0)

    def test_design_put_and_design_file(self):
        d = self.start()
        dpath, cpath = self.path("pauli6.json"), self.path("pauli6.csv")
        with open(dpath, "w") as f:
            json.dump(PAULI6, f)
        write_columns(cpath, pauli6_columns(8, int))
        p = ctl("-s", d.sock, "design", "put", dpath)
        self.assertExit(p, 0, "design put")
        did = p.stdout.decode().strip()
        self.assertRegex(did, r"^custom-[0-9a-f]{32}$")
        self.assertEqual(self.json_of(d, "design", "put", dpath), {"id": did})
        # The last sample's Z group sums to zero: exit 1 both ways, same records.
        recs = self.daemon_equals_local(d, cpath, 9, "--design-file", dpath, "--method",
                                        "linear,mle", exit_code=1)
        self.assertTrue(all(r["design"] == "custom" and r["design_id"] == did and r["dim"] == 2
                            for r in recs))
        self.assertEqual([r["status"] for r in recs], ["ok"] * 16 + ["error"] * 2)
        with open(self.path("pauli6.csv.daemon", "run.json")) as f:
            self.assertEqual(json.load(f)["options"]["design_id"], did)
        # --design custom without a file, and a file with the wrong number of rows.
        p = ctl("-s", d.sock, "reconstruct", cpath, "--design", "custom")
        self.assertExit(p, 2, "--design custom without --design-file")
        p = ctl("-s", d.sock, "reconstruct", BELL4, "--design-file", dpath)
        self.assertExit(p, 2, "design file of 6 outcomes, 16 rows")
        self.assertIn(b"6 outcomes", p.stderr)
        self.assertEqual(d.stop(), 0)

    def test_reload_as_owner(self):
        d = self.start()
        p = ctl("-s", d.sock, "reload")
        self.assertExit(p, 0, "reload")
        self.assertIn(b"configuration generation 1", p.stdout)
        self.assertEqual(self.json_of(d, "reload"), {"generation": 2})
        self.assertExit(ctl("-s", d.sock, "-q", "reload"), 0, "reload -q")
        self.assertTrue(wait_until(lambda: self.json_of(d, "status")["workers"] == 2, 30))
        p = ctl("-s", d.sock, "reconstruct", BELL4, "--json")
        self.assertExit(p, 0, "reconstruct after reloads")
        self.assertEqual(d.stop(), 0)

    # ---- --live ----

    def live_lines(self):
        cols = read_columns(BELL4, str)
        return [",".join(c) for c in cols] + ["1,2,3,x", "0.5,0.5,1.0,0.0,0.5,0.5", "1,2,3"] + \
            [",".join(cols[0])]

    def test_live_is_interactive(self):
        # Each result comes back before the next line is written: the client neither waits for
        # EOF nor for a full buffer. A sample that never came back would time out here.
        d = self.start()
        lines = [",".join(c) for c in read_columns(BELL4, str)] * 2 + ["0.5,0.5,1.0,0.0,0.5,0.5"]
        p = subprocess.Popen([QTOMOCTL, "-s", d.sock, "reconstruct", "--live", "--json",
                              "--method", "linear"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        fd = p.stdout.fileno()
        buf, got = b"", []
        try:
            for k, line in enumerate(lines):
                p.stdin.write(line.encode() + b"\n")
                p.stdin.flush()
                end = time.time() + 30
                while b"\n" not in buf:
                    r, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
                    if not r:
                        self.fail("no result for line %d within 30 s of writing it" % (k + 1))
                    chunk = os.read(fd, 65536)
                    self.assertTrue(chunk, "qtomoctl closed its output")
                    buf += chunk
                rec, buf = buf.split(b"\n", 1)
                self.assertEqual(buf, b"", "more than one record for one line")
                got.append(json.loads(rec))
                self.assertEqual(got[-1]["sample"], k)
                self.assertEqual(got[-1]["status"], "ok", got[-1])
            p.stdin.close()
            self.assertEqual(p.wait(30), 0, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        # What the daemon computes for a live sample is what a batch computes for that column.
        batch = [json.loads(x) for x in local("reconstruct", BELL4, "--local", "--json",
                                              "--method", "linear").stdout.splitlines()]
        for k, r in enumerate(got[:8]):
            self.assertEqual(r["rho"], batch[k % 4]["rho"], k)
            self.assertEqual(r["metrics"], batch[k % 4]["metrics"], k)
        self.assertEqual(got[8]["dim"], 2)  # 6 values: mub, d = 2
        self.assertEqual(d.stop(), 0)

    def test_live_equals_local_live(self):
        d = self.start()
        data = ("\n".join(self.live_lines()) + "\n").encode()
        a = ctl("-s", d.sock, "reconstruct", "--live", "--json", "--method", "linear,mle",
                input=data)
        b = local("reconstruct", "--live", "--local", "--json", "--method", "linear,mle",
                  input=data)
        self.assertExit(a, 1, "daemon --live (two bad lines)")
        self.assertExit(b, 1, "--local --live (two bad lines)")
        self.assertEqual(a.stdout.count(b"\n"), 16)
        self.assertSameBytes(a.stdout, b.stdout, "--live records")
        self.assertEqual(d.stop(), 0)

    def test_live_records_name_their_design(self):
        # A --live sample's design is inferred from its length, as for a file; its record must
        # say which design that was, as a file's records do ("design": "nopovm"), not "".
        d = self.start()
        data = (",".join(read_columns(BELL4, str)[0]) + "\n0.5,0.5,1.0,0.0,0.5,0.5\n").encode()
        for what, cmd, env in (("daemon", ("-s", d.sock, "reconstruct", "--live"), None),
                               ("--local", ("reconstruct", "--live", "--local"), LOCAL_ENV)):
            p = ctl(*cmd, "--json", "--method", "linear", input=data, env=env)
            self.assertExit(p, 0, what)
            recs = [json.loads(x) for x in p.stdout.splitlines()]
            self.assertEqual([(r["status"], r["dim"]) for r in recs], [("ok", 4), ("ok", 2)])
            self.assertEqual([r["design"] for r in recs], ["nopovm", "mub"],
                             "--live records, " + what)
        self.assertEqual(d.stop(), 0)

    # ---- help, man page and completion cannot drift ----

    def commands(self):
        p = ctl("--help")
        self.assertExit(p, 0, "--help")
        text = p.stdout.decode()
        block = text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        cmds = [line.split()[0] for line in block.splitlines() if line.strip()]
        self.assertIn("reconstruct", cmds)
        return cmds

    def test_help_reaches_every_protocol_method(self):
        with open(os.path.join(SRC, "proto", "qp.h")) as f:
            table = f.read()
        methods = re.findall(r'X\(\s*\w+\s*,\s*"([a-z._]+)"\s*,\s*QP_C2S_REQUEST', table)
        self.assertIn("submit", methods)
        # Which command reaches each client-to-server method (None: every command's handshake).
        reach = {"hello": None,
                 "reconstruct": ("reconstruct", None),  # --live
                 "submit": ("reconstruct", None),  # FILE
                 "cancel": ("reconstruct", None),  # SIGINT during a FILE run
                 "status": ("status", None), "stats": ("stats", None),
                 "design.put": ("design", "put"), "detector.put": ("detector", "put"),
                 "cache.list": ("cache", "list"), "cache.warm": ("cache", "warm"),
                 "cache.evict": ("cache", "evict"), "cache.verify": ("cache", "verify"),
                 "reload": ("reload", None)}
        unmapped = [m for m in methods if m not in reach]
        self.assertEqual(unmapped, [], "protocol methods that no qtomoctl command reaches: add "
                         "a command (and map it here)")
        cmds = self.commands()
        for m in methods:
            if reach[m] is None:
                continue
            cmd, action = reach[m]
            self.assertIn(cmd, cmds, "%s: command '%s' is not in qtomoctl --help" % (m, cmd))
            p = ctl("help", cmd)
            self.assertExit(p, 0, "help " + cmd)
            if action:
                self.assertRegex(p.stdout.decode(), r"qtomoctl %s %s\b" % (cmd, action), m)
        self.assertIn(b"--live", ctl("help", "reconstruct").stdout)
        for cmd in cmds:
            p = ctl("help", cmd)
            self.assertExit(p, 0, "help " + cmd)
            self.assertIn(b"Usage: qtomoctl " + cmd.encode(), p.stdout)

    def test_every_command_takes_help_option(self):
        # 'qtomoctl CMD --help' prints what 'qtomoctl help CMD' prints, exit 0, without a daemon.
        wrong = []
        for cmd in self.commands():
            want = ctl("help", cmd).stdout
            p = ctl("-s", self.path("nobody.sock"), cmd, "--help")
            if p.returncode != 0 or p.stdout != want:
                wrong.append("'qtomoctl %s --help': exit %d, stdout %r, stderr %r" % (
                    cmd, p.returncode, p.stdout[:80], p.stderr[:80]))
        self.assertEqual(wrong, [], "\n".join(wrong))

    def test_gen_man_mentions_every_command(self):
        p = ctl("--gen-man")
        self.assertExit(p, 0, "--gen-man")
        man = p.stdout.decode()
        self.assertTrue(man.startswith(".TH QTOMOCTL 1"))
        for cmd in self.commands():
            self.assertRegex(man, r"\n\.SS %s\b" % cmd, cmd)
            self.assertIn("Usage: qtomoctl " + cmd, man.replace("\\-", "-"), cmd)
        for code in range(5):
            self.assertRegex(man, r"\.SH EXIT STATUS[\s\S]*\.TP\n%d\n" % code)
        for opt in re.findall(r"(--[a-z][a-z0-9-]+)", ctl("help", "reconstruct").stdout.decode()):
            self.assertIn(opt.replace("-", "\\-"), man, opt)
        if shutil.which("groff"):
            path = self.path("qtomoctl.1")
            with open(path, "w") as f:
                f.write(man)
            g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path],
                               capture_output=True, text=True)
            self.assertEqual((g.returncode, g.stderr), (0, ""))

    def test_gen_completion_is_valid_bash(self):
        p = ctl("--gen-completion")
        self.assertExit(p, 0, "--gen-completion")
        script = self.path("qtomoctl.bash")
        with open(script, "wb") as f:
            f.write(p.stdout)
        b = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
        self.assertEqual((b.returncode, b.stderr), (0, ""))
        text = p.stdout.decode()
        cmds = self.commands()
        for cmd in cmds:
            self.assertRegex(text, r"\n\s+%s\) COMPREPLY" % cmd, cmd)

        def complete(*words):
            prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1));'
                    ' _qtomoctl; printf "%s\\n" "${COMPREPLY[@]}"')
            r = subprocess.run(["bash", "-c", prog, "bash", script, "qtomoctl"] + list(words),
                               capture_output=True, text=True, cwd=self.tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            return set(r.stdout.split())

        self.assertTrue(set(cmds) <= complete(""), complete(""))
        self.assertEqual(complete("ca"), {"cache", "calibrate"})
        self.assertEqual(complete("calibrate", "--st"), {"--states"})
        self.assertEqual(complete("-s", "x.sock", "cache", ""),
                         {"list", "verify", "warm", "evict"})
        self.assertEqual(complete("design", ""), {"put"})
        self.assertEqual(complete("help", "rel"), {"reload"})
        self.assertEqual(complete("reconstruct", "--phys"), {"--physical"})
        self.assertEqual(complete("reconstruct", "--physical", ""), {"clip", "smolin"})
        opts = set(re.findall(r"(--[a-z][a-z0-9-]+)", ctl("help", "reconstruct").stdout.decode()))
        self.assertEqual(opts - complete("reconstruct", "--"), set(),
                         "reconstruct options the completion does not offer")

    # ---- libqtomo-client through its public header ----

    def run_client_check(self, *extra):
        if not CLIENT_CHECK:
            self.skipTest("CLIENT_CHECK is not set (run through ctest)")
        max_batch = 700  # < 3000: client_check's batch is split into parts
        d = self.start("--max-batch", max_batch)
        p = local("reconstruct", BELL4, "--local", "--json", "--method", "linear,mle",
                  "--columns", "1:1")
        self.assertExit(p, 0, "--local column 1")
        expect = self.path("expect.txt")
        with open(expect, "w") as f:
            for r in (json.loads(x) for x in p.stdout.splitlines()):
                vals = [r["method"], repr(r["metrics"]["purity"])]
                vals += [repr(x) for row in r["rho"]["re"] for x in row]
                vals += [repr(x) for row in r["rho"]["im"] for x in row]
                f.write(" ".join(vals) + "\n")
        c = subprocess.run([CLIENT_CHECK, d.sock, EXAMPLES, expect, str(max_batch)] +
                           list(extra), capture_output=True, text=True, timeout=50)
        self.assertEqual(c.returncode, 0, "client_check failed:\n" + c.stdout + c.stderr)
        self.assertEqual(d.stop(), 0)

    def test_client_library(self):
        self.run_client_check()

    def test_client_library_refused_target_keeps_job(self):
        self.run_client_check("target-refused")

    def test_client_library_target_must_fit_design(self):
        self.run_client_check("design-after-target")

    def test_client_library_bootstrap(self):
        self.run_client_check("bootstrap")

    # ---- results.h5 (--hdf5) ----

    INT64_FILL = -2 ** 63

    def h5_expect(self, v, dtype):
        """What a dataset holds for the JSON value v (None: absent or null)."""
        if dtype.kind == "f":
            return float("nan") if v is None else v
        if dtype.kind == "i" and dtype.itemsize == 1:  # bool metrics
            return -1 if v is None else int(v)
        if dtype.kind == "i":
            return self.INT64_FILL if v is None else v
        return "" if v is None else v

    def assertH5Value(self, got, want, what):
        if isinstance(got, bytes):
            got = got.decode()
        if isinstance(want, float) and want != want:
            self.assertTrue(got != got, "%s: %r, expected NaN" % (what, got))
        else:
            self.assertEqual(got, want, what)  # exact: the same doubles

    def assertH5Column(self, ds, values, what):
        """ds[k] against the JSON values[k] (None: absent), lists element by element."""
        self.assertEqual(ds.shape[0], len(values), what)
        for k, v in enumerate(values):
            got = ds[k]
            if ds.ndim == 1:
                self.assertH5Value(got, self.h5_expect(v, ds.dtype), "%s[%d]" % (what, k))
                continue
            flat = numpy.asarray(got).reshape(-1)
            want = [None] * flat.size if v is None else \
                [x for row in v for x in (row if isinstance(row, list) else [row])]
            self.assertEqual(len(want), flat.size, "%s[%d]: shape" % (what, k))
            for i, (g, w) in enumerate(zip(flat, want)):
                self.assertH5Value(g, self.h5_expect(w, ds.dtype), "%s[%d][%d]" % (what, k, i))

    def h5_check(self, out):
        """DIR/results.h5 holds exactly what DIR/records.jsonl and DIR/run.json hold."""
        with open(os.path.join(out, "records.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        with open(os.path.join(out, "run.json")) as f:
            run = json.load(f)
        d = run["options"]["dim"]
        with h5py.File(os.path.join(out, "results.h5"), "r") as h:
            a = h.attrs
            self.assertEqual(json.loads(a["run_json"]), run)
            self.assertEqual((a["format"], a["format_version"]), ("qtomo-results", 1))
            for k in ("input", "input_sha256", "mode"):
                self.assertEqual(a[k], run[k], k)
            self.assertEqual((a["design"], a["dim"]), (run["options"]["design"], d))
            self.assertEqual(list(a["methods"]), run["options"]["methods"])
            self.assertEqual(a["version_qtomoctl"], run["versions"]["qtomoctl"])
            self.assertEqual(a.get("version_server"), run["versions"].get("server"))
            # the index
            def col(f):
                return [f(r) for r in recs]

            for name in ("sample", "column", "method", "status"):
                self.assertH5Column(h[name], col(lambda r: r[name]), name)
            self.assertH5Column(h["error_code"], col(lambda r: r.get("error", {}).get("code", 0)),
                                "error_code")
            for key in ("name", "message"):
                self.assertH5Column(h["error_" + key], col(lambda r: r.get("error", {}).get(key)),
                                    "error_" + key)
            self.assertH5Column(h["warnings"], col(lambda r: " ".join(r.get("warnings", []))),
                                "warnings")
            # rho: complex (h5py's compound r, i), row-major, NaN for error records
            rho = h["rho"]
            self.assertEqual((rho.dtype, rho.shape), (numpy.dtype("complex128"), (len(recs), d, d)))
            t = rho.id.get_type()  # the file's type: h5py's complex layout, for MATLAB too
            self.assertEqual([t.get_member_name(i) for i in range(t.get_nmembers())], [b"r", b"i"])
            for k, r in enumerate(recs):
                m = rho[k]
                for i in range(d):
                    for j in range(d):
                        if r["status"] == "ok":
                            self.assertEqual(m[i, j].real, r["rho"]["re"][i][j])
                            self.assertEqual(m[i, j].imag, r["rho"]["im"][i][j])
                        else:
                            self.assertTrue(numpy.isnan(m[i, j].real) and
                                            numpy.isnan(m[i, j].imag))
            # every metric of every record
            names = {n for r in recs for n in r.get("metrics", {})}
            self.assertEqual(set(h["metrics"]), names)
            for n in names:
                self.assertH5Column(h["metrics"][n], col(lambda r: r.get("metrics", {}).get(n)),
                                    "metrics/" + n)
            # the error bars
            uncs = col(lambda r: r.get("uncertainty"))
            if not any(uncs):
                self.assertNotIn("uncertainty", h)
                return recs
            u0 = next(u for u in uncs if u)
            ua = h["uncertainty"].attrs
            for k in ("resamples", "kind", "seed", "confidence"):
                self.assertEqual(ua[k], u0[k], k)
            unames = {n for u in uncs if u for n in u.get("metrics", {})}
            self.assertEqual({n for n in h["uncertainty"] if isinstance(h["uncertainty"][n],
                                                                         h5py.Group)}, unames)
            for n in unames:
                for q in ("std", "lo", "hi"):
                    self.assertH5Column(
                        h["uncertainty"][n][q],
                        [((u or {}).get("metrics", {}).get(n) or {}).get(q) for u in uncs],
                        "uncertainty/%s/%s" % (n, q))
            for part in ("re", "im"):
                self.assertH5Column(h["uncertainty"]["rho_std_" + part],
                                    [(u or {}).get("rho_std", {}).get(part) for u in uncs],
                                    "rho_std_" + part)
            self.assertH5Column(h["uncertainty"]["failed_resamples"],
                                [(u or {}).get("failed_resamples") for u in uncs],
                                "failed_resamples")
            self.assertH5Column(h["uncertainty"]["warnings"],
                                [" ".join((u or {}).get("warnings", [])) for u in uncs],
                                "uncertainty/warnings")
        return recs

    @staticmethod
    def h5_content(path):
        """Every dataset (dtype, shape, bytes or strings) and the attributes that describe the
        data (not run_json, mode, version_server: those say how and when it ran)."""
        out = {}
        with h5py.File(path, "r") as h:
            def visit(name, obj):
                for k, v in obj.attrs.items():
                    if k not in ("run_json", "mode", "version_server"):
                        out["%s@%s" % (name, k)] = repr(v)
                if isinstance(obj, h5py.Dataset):
                    v = obj[()]
                    out[name] = (obj.dtype.str, obj.shape,
                                 v.tolist() if obj.dtype.kind == "O" else v.tobytes())
            visit("/", h)
            h.visititems(visit)
        return out

    def test_hdf5_results_match_records_resume_and_daemon(self):
        if h5py is None:
            self.fail("python3-h5py is needed (packaging/install-deps)")
        opts = ["--method", "linear,mle", "--bell", "--bootstrap", "20", "--seed", "1"]
        out = self.path("out")
        p = local("reconstruct", BELL4, "--local", "-o", out, "--hdf5", *opts)
        self.assertExit(p, 0, "--hdf5")
        self.assertIn(b"results.h5", p.stderr)
        recs = self.h5_check(out)
        self.assertEqual(len(recs), 8)
        self.assertTrue(all("uncertainty" in r for r in recs))
        ref = self.h5_content(os.path.join(out, "results.h5"))
        self.assertFalse(os.path.exists(os.path.join(out, ".results.h5.tmp")))
        # --resume after the run: the same results.h5.
        p = local("reconstruct", BELL4, "--local", "-o", out, "--hdf5", "--resume", *opts)
        self.assertExit(p, 0, "--resume of a finished run")
        self.assertEqual(self.h5_content(os.path.join(out, "results.h5")), ref)
        # An interrupted run (two samples kept, a line cut short) resumed, here without
        # --hdf5: the results.h5 it left is rebuilt, the same as an uninterrupted run's.
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            lines = f.read().splitlines(keepends=True)
        with open(os.path.join(out, "records.jsonl"), "wb") as f:
            f.write(b"".join(lines[:4]) + lines[4][:50])
        p = local("reconstruct", BELL4, "--local", "-o", out, "--resume", *opts)
        self.assertExit(p, 0, "--resume of an interrupted run")
        self.h5_check(out)
        self.assertEqual(self.h5_content(os.path.join(out, "results.h5")), ref)
        # An empty column: error records with NaN matrices and their codes.
        cols = read_columns(BELL4, str)
        cols[2] = [""] * len(cols[2])
        bad = self.path("bad.csv")
        write_columns(bad, cols)
        p = local("reconstruct", bad, "--local", "-o", self.path("bad"), "--hdf5", *opts)
        self.assertExit(p, 1, "--hdf5 with failed samples")
        recs = self.h5_check(self.path("bad"))
        self.assertEqual([r["status"] for r in recs].count("error"), 2)
        with h5py.File(self.path("bad", "results.h5"), "r") as h:
            self.assertEqual(list(h["error_code"][:]), [0, 0, 0, 0, -32008, -32008, 0, 0])
            self.assertTrue(numpy.isnan(h["metrics/purity"][4]))
            self.assertEqual(h["metrics/rank"][5], self.INT64_FILL)  # mle has no rank
            self.assertEqual(h["metrics/rank"].fillvalue, self.INT64_FILL)
            self.assertEqual(list(h["metrics/converged"][:]), [-1, 1, -1, 1, -1, -1, -1, 1])
        bad_ref = self.h5_content(self.path("bad", "results.h5"))
        # More records than one block of the writer (256): 560 records, 3 blocks.
        p = local("reconstruct", self.big_input(70), "--local", "-o", self.path("big"), "--hdf5")
        self.assertExit(p, 0, "--hdf5, 280 samples")
        self.assertEqual(len(self.h5_check(self.path("big"))), 560)
        # Through the daemon: the same datasets.
        d = self.start()
        for src, dst, want, code in ((BELL4, "dout", ref, 0), (bad, "dbad", bad_ref, 1)):
            p = ctl("-s", d.sock, "reconstruct", src, "-o", self.path(dst), "--hdf5", *opts)
            self.assertExit(p, code, "daemon --hdf5")
            self.h5_check(self.path(dst))
            self.assertEqual(self.h5_content(self.path(dst, "results.h5")), want, dst)
        self.assertEqual(d.stop(), 0)
        # --hdf5 needs -o, and --live writes no files.
        self.assertExit(ctl("reconstruct", BELL4, "--local", "--hdf5"), 2, "--hdf5 without -o")
        self.assertExit(ctl("reconstruct", "--live", "--hdf5", input=b""), 2, "--live --hdf5")


    # ---- analysis commands: summarize, fidelity, bell ----

    def analysis_run(self, *opts, n=12, bad=()):
        """A --local run of n samples made from the bundled d = 4 data (counts scaled by
        seeded random factors so that every statistic is non-trivial); samples in bad are all
        zeros, so their records fail."""
        import random
        rng = random.Random(17)
        base = read_columns(BELL4)
        cols = []
        for i in range(n):
            c = base[i % len(base)]
            cols.append([0] * len(c) if i in bad else
                        [round(x * rng.uniform(0.7, 1.3)) for x in c])
        path, out = self.path("analysis.csv"), self.path("analysis-out")
        write_columns(path, cols)
        p = local("reconstruct", "--local", "-o", out, "--design", "nopovm", "--method",
                  "linear,mle,rhor", *opts, path)
        self.assertExit(p, 1 if bad else 0, "reconstruct")
        return out

    def assertStatsClose(self, got, want, scale, what):
        """got: our JSON statistics; want: a pandas describe() Series. Relative 1e-12, on the
        scale of the data for statistics near zero (std of a constant, differences of equal
        values), where both sides are rounding noise."""
        import math
        self.assertEqual(got["count"], int(want["count"]), what + ": count")
        for key in ("mean", "std", "min", "25%", "50%", "75%", "max"):
            w, g = float(want[key]), got[key]
            if math.isnan(w):
                self.assertIsNone(g, "%s: %s is %r, pandas NaN" % (what, key, g))
                continue
            self.assertTrue(math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12 * scale),
                            "%s: %s is %r, pandas %r" % (what, key, g, w))

    def test_summarize_matches_pandas(self):
        import pandas as pd
        out = self.analysis_run("--bell", bad=(5,))
        summary = os.path.join(out, "summary.csv")
        p = ctl("summarize", "--compare-methods", "--json", out)
        self.assertExit(p, 0, "summarize --json")
        got = json.loads(p.stdout)
        df = pd.read_csv(summary)
        ids = {"sample", "method", "column", "dim", "error_code"}
        numeric = [c for c in df.select_dtypes("number").columns
                   if c not in ids and df[c].notna().any()]
        desc = df.groupby("method").describe()
        methods = list(dict.fromkeys(df["method"]))
        self.assertEqual(list(got["methods"]), methods)
        self.assertEqual(got["rows"], len(df))
        checked = 0
        for m in methods:
            mine = got["methods"][m]["metrics"]
            want = [c for c in numeric if desc.loc[m, (c, "count")] > 0]
            self.assertEqual(list(mine), want, m + ": metric columns")
            for c in want:
                scale = float(df[c].abs().max()) or 1.0
                self.assertStatsClose(mine[c], desc.loc[m, c], scale, "%s %s" % (m, c))
                checked += 1
        self.assertGreater(checked, 40)
        # Paired differences b - a over samples where both records are ok.
        ok = df[df["record_status"] == "ok"]
        pairs = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]
        self.assertEqual([(c["a"], c["b"]) for c in got["comparisons"]], pairs)
        for comp in got["comparisons"]:
            a, b = comp["a"], comp["b"]
            pa = ok[ok["method"] == a].set_index("sample")
            pb = ok[ok["method"] == b].set_index("sample")
            self.assertIn("purity", comp["metrics"])
            for c, mine in comp["metrics"].items():
                diff = (pb[c] - pa[c]).dropna()
                self.assertEqual(mine["count"], 11, "%s - %s %s" % (b, a, c))
                scale = float(df[c].abs().max()) or 1.0
                self.assertStatsClose(mine, diff.describe(), scale, "%s - %s %s" % (b, a, c))
        # Convergence and iterations.
        for m, conv in got["convergence"].items():
            rows = df[df["method"] == m]
            if "converged" in conv:
                flags = rows["converged"].dropna().astype(str) == "True"
                self.assertEqual(conv["converged"]["count"], len(flags))
                self.assertEqual(conv["converged"]["true"], int(flags.sum()))
            for c in ("iterations", "n_iterations", "n_evaluations"):
                if c in conv:
                    it = rows[c].dropna()
                    self.assertEqual(conv[c]["count"], len(it))
                    self.assertEqual(conv[c]["max"], it.max())
                    self.assertEqual(conv[c]["median"], it.median())
                    self.assertTrue(abs(conv[c]["mean"] - it.mean()) <= 1e-12 * it.max())
        self.assertIn("converged", got["convergence"]["rhor"])
        self.assertIn("iterations", got["convergence"]["mle"])
        # The table form, from the file or the directory, and the global --json.
        p = ctl("summarize", "--compare-methods", summary)
        self.assertExit(p, 0, "summarize table")
        text = p.stdout.decode()
        for w in ("linear: 12 rows", "mle - linear, paired by sample", "purity", "converged"):
            self.assertIn(w, text)
        self.assertEqual(json.loads(ctl("--json", "summarize", summary).stdout)["methods"],
                         got["methods"])
        # Options after the arguments.
        self.assertEqual(json.loads(ctl("summarize", out, "--compare-methods", "--json").stdout),
                         got)

    def test_summarize_bad_csv(self):
        cases = {
            "unterminated.csv": (b'sample,method,purity\n0,linear,"0.5\n', b"line 2"),
            "short.csv": (b"sample,method,purity\n0,linear,0.5\n1,linear\n", b"line 3"),
            "nomethod.csv": (b"sample,purity\n0,0.5\n", b"no 'method' column"),
            "empty.csv": (b"", b"no header"),
            "quote.csv": (b'sample,method,purity\n0,lin"ear,0.5\n', b"line 2, field 2"),
            "nul.csv": (b"sample,method,purity\n0,linear,0\x005\n", b"NUL"),
        }
        for name, (data, msg) in cases.items():
            with open(self.path(name), "wb") as f:
                f.write(data)
            p = ctl("summarize", self.path(name))
            self.assertExit(p, 2, name)
            self.assertIn(msg, p.stderr, name)
        # Garbage never crashes; quoted commas, quotes and CRLF are read.
        with open(self.path("junk.csv"), "wb") as f:
            f.write(bytes(range(256)) * 40)
        self.assertIn(ctl("summarize", self.path("junk.csv")).returncode, (0, 2))
        with open(self.path("quoted.csv"), "wb") as f:
            f.write(b'sample,method,purity,message\r\n0,linear,0.5,"a, ""b""\r\nc"\r\n'
                    b'\r\n1,linear,0.7,x\r\n')
        p = ctl("summarize", "--json", self.path("quoted.csv"))
        self.assertExit(p, 0, "quoted")
        st = json.loads(p.stdout)["methods"]["linear"]["metrics"]["purity"]
        self.assertEqual((st["count"], st["min"], st["max"]), (2, 0.5, 0.7))
        self.assertEqual(ctl("summarize", self.path("missing")).returncode, 2)

    @staticmethod
    def np_fidelity(rho, sigma):
        import numpy as np

        def sqrtm(a):
            w, v = np.linalg.eigh((a + a.conj().T) / 2)
            return (v * np.sqrt(np.clip(w, 0, None))) @ v.conj().T
        s = sqrtm(rho)
        w = np.linalg.eigvalsh(s @ sigma @ s)
        return float(np.sum(np.sqrt(np.clip(w, 0, None))) ** 2), \
            float(0.5 * np.sum(np.abs(np.linalg.eigvalsh(rho - sigma))))

    @staticmethod
    def record_rhos(out):
        import numpy as np
        recs = {}
        with open(os.path.join(out, "records.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r["status"] == "ok":
                    r["np_rho"] = np.array(r["rho"]["re"]) + 1j * np.array(r["rho"]["im"])
                recs[(r["sample"], r["method"])] = r
        return recs

    def test_fidelity_of_records_and_targets(self):
        import numpy as np
        target = os.path.join(EXAMPLES, "phi_plus.json")
        out = self.analysis_run("--target", target, n=4, bad=(2,))
        recs = self.record_rhos(out)
        phi = np.array([1, 0, 0, 1]) / np.sqrt(2)
        sigma = np.outer(phi, phi.conj())
        amp = self.path("amp.json")
        with open(amp, "w") as f:
            json.dump({"amplitudes": [1, 0, 0, 1], "phases_pi": [0, 0, 0, 0]}, f)
        for (s, m), r in recs.items():
            if r["status"] != "ok":
                continue
            # Against the target: what reconstruct --target recorded, and numpy.
            for spec in ("%s:%d:%s" % (out, s, m),
                         "%s:%d:%s" % (os.path.join(out, "records.jsonl"), s, m)):
                for b in (target, amp):
                    p = ctl("fidelity", "--json", spec, b)
                    self.assertExit(p, 0, "fidelity " + spec)
                    got = json.loads(p.stdout)
                    self.assertEqual(got["dim"], 4)
                    self.assertAlmostEqual(got["fidelity"], r["metrics"]["fidelity"], delta=1e-12)
                    self.assertAlmostEqual(got["trace_distance"], r["metrics"]["trace_distance"],
                                           delta=1e-12)
                    # A pure target: F = <phi|rho|phi>, with no square root of noise.
                    f = float(np.real(np.vdot(phi, r["np_rho"] @ phi)))
                    self.assertAlmostEqual(got["fidelity"], f, delta=1e-12)
                    t = self.np_fidelity(r["np_rho"], sigma)[1]
                    self.assertAlmostEqual(got["trace_distance"], t, delta=1e-12)
            # Between two records (mixed states), and symmetric.
            other = recs[(s, "linear")]
            p = ctl("fidelity", "--json", "%s:%d:%s" % (out, s, m), "%s:%d:linear" % (out, s))
            got = json.loads(p.stdout)
            f, t = self.np_fidelity(r["np_rho"], other["np_rho"])
            # Square roots of eigenvalues at rounding level (rank-deficient states) make any
            # two computations differ by ~1e-8.
            self.assertAlmostEqual(got["fidelity"], f, delta=1e-7)
            self.assertAlmostEqual(got["trace_distance"], t, delta=1e-12)
        p = ctl("fidelity", target, "%s:0:rhor" % out)
        self.assertExit(p, 0, "table")
        self.assertRegex(p.stdout.decode(), r"dim\s+4\nfidelity\s+0\.\d+\ntrace_distance\s+0\.\d+\n")
        # Refusals: exit 2 and say why.
        ket2 = self.path("ket2.json")
        with open(ket2, "w") as f:
            json.dump({"ket": {"re": [1, 0]}}, f)
        for args, msg in (((ket2, "%s:0:linear" % out), b"has dimension 2"),
                          (("%s:9:linear" % out, target), b"no record of sample 9"),
                          (("%s:2:linear" % out, target), b"failed"),
                          (("%s:x:linear" % out, target), b"not a non-negative integer"),
                          ((self.path("nothing"), target), b"neither a readable target"),
                          ((target,), b"missing arguments")):
            p = ctl("fidelity", *args)
            self.assertExit(p, 2, " ".join(args))
            self.assertIn(msg, p.stderr, " ".join(args))

    def test_bell_summary_like_origin(self):
        import numpy as np
        out = self.analysis_run("--bell", n=6, bad=(3,))
        recs = self.record_rhos(out)
        p = ctl("bell", out)
        self.assertExit(p, 0, "bell")
        self.assertIn(b"15 records analysed (skipped: 3 failed", p.stdout)
        with open(os.path.join(out, "bell_summary.csv")) as f:
            rows = list(csv.DictReader(f))
        with open(os.path.join(out, "bell_summary.csv")) as f:
            head = f.readline().strip().split(",")
        self.assertEqual(head, ["bell_dimension", "bell_local_dimension", "bell_max_fidelity",
                                "bell_min_fidelity", "bell_avg_fidelity", "bell_dominant_index",
                                "sample", "method"] + ["bell_fidelity_%d" % i for i in range(4)])
        self.assertEqual(len(rows), 15)
        self.assertEqual(sorted(os.listdir(out)), ["bell_summary.csv", "records.jsonl",
                                                   "run.json", "summary.csv"])
        # The generalised Bell states in the origin's order, by numpy.
        k = 2
        basis = []
        for m in range(k):
            for n in range(k):
                v = np.zeros(k * k, complex)
                for j in range(k):
                    v[j * k + (j + n) % k] += np.exp(2j * np.pi / k) ** (m * j)
                basis.append(v / np.sqrt(k))
        for row in rows:
            r = recs[(int(row["sample"]), row["method"])]
            fid = [float(np.real(np.vdot(v, r["np_rho"] @ v))) for v in basis]
            got = [float(row["bell_fidelity_%d" % i]) for i in range(4)]
            for g, w in zip(got, fid):
                self.assertAlmostEqual(g, w, delta=1e-12)
            mt = r["metrics"]
            self.assertEqual(got, mt["bell_fidelities"])  # the same rho, the same code
            self.assertEqual(float(row["bell_max_fidelity"]), mt["bell_max_fidelity"])
            self.assertEqual(float(row["bell_min_fidelity"]), mt["bell_min_fidelity"])
            self.assertEqual(int(row["bell_dominant_index"]), int(np.argmax(fid)))
            self.assertEqual(float(row["bell_avg_fidelity"]), float(np.mean(got)))
            self.assertEqual((row["bell_dimension"], row["bell_local_dimension"]), ("4", "2"))
        p = ctl("bell", "--json", os.path.join(out, "records.jsonl"))
        self.assertExit(p, 0, "bell --json")
        got = json.loads(p.stdout)
        self.assertEqual((got["records"], got["failed_skipped"]), (15, 3))
        lin = [float(r["bell_max_fidelity"]) for r in rows if r["method"] == "linear"]
        self.assertEqual(got["methods"]["linear"]["records"], 5)
        self.assertEqual(got["methods"]["linear"]["max_fidelity"]["max"], max(lin))
        self.assertEqual(sum(got["methods"]["mle"]["dominant_index_counts"]), 5)
        # d = 3 is not a square; a directory without records.
        p = local("reconstruct", "--local", "-o", self.path("d3"),
                  os.path.join(EXAMPLES, "mub_d3.csv"), "--design", "mub")
        self.assertExit(p, 0, "reconstruct d3")
        p = ctl("bell", self.path("d3"))
        self.assertExit(p, 2, "bell d3")
        self.assertIn(b"square", p.stderr)
        os.mkdir(self.path("empty"))
        self.assertExit(ctl("bell", self.path("empty")), 2, "bell empty")

    def test_spectral_daemon_equals_local(self):
        # --spectral travels in the request's options, the worker decomposes, the result map
        # carries "spectral": records and summary.csv byte-identical through the daemon and
        # --local, also with error bars (whose resamples skip the decomposition).
        d = self.start()
        bell = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
        recs = self.daemon_equals_local(d, bell, 4, "--method", "linear,mle,wls,rhor",
                                        "--spectral", "--bell")
        mub3 = self.path("mub3.csv")
        shutil.copy(os.path.join(EXAMPLES, "mub_d3.csv"), mub3)
        recs3 = self.daemon_equals_local(d, mub3, 3, "--method", "linear,mle", "--spectral",
                                         "--bootstrap", "20", "--seed", "5")
        self.assertTrue(all("uncertainty" in r for r in recs3))
        for r in recs + recs3:
            sp, n = r["spectral"], r["dim"]
            self.assertEqual(sorted(sp), ["amplitudes", "dominant_eigenvalue", "eigenvalues",
                                          "phases_pi"])
            self.assertEqual([len(sp[k]) for k in ("amplitudes", "phases_pi", "eigenvalues")],
                             [n] * 3)
            self.assertEqual(sp["eigenvalues"], sorted(sp["eigenvalues"], reverse=True))
            self.assertEqual(sp["dominant_eigenvalue"], sp["eigenvalues"][0])
            self.assertAlmostEqual(sp["dominant_eigenvalue"], r["metrics"]["max_eigenvalue"],
                                   delta=1e-12)
            self.assertAlmostEqual(sum(a * a for a in sp["amplitudes"]), 1.0, delta=1e-12)
            self.assertTrue(all(-1.0 < p <= 1.0 for p in sp["phases_pi"]))
            # c = amplitudes * e^{i pi phases} is an eigenvector of rho for the dominant
            # eigenvalue (the equation holds whatever the global phase).
            rho = [[complex(r["rho"]["re"][i][j], r["rho"]["im"][i][j]) for j in range(n)]
                   for i in range(n)]
            c = [a * cmath.exp(1j * math.pi * p)
                 for a, p in zip(sp["amplitudes"], sp["phases_pi"])]
            for i in range(n):
                rc = sum(rho[i][j] * c[j] for j in range(n))
                self.assertLess(abs(rc - sp["dominant_eigenvalue"] * c[i]), 1e-12)
        # Phi+ dominates every sample of column 1: equal amplitudes 1/sqrt(2) on |00>, |11>.
        sp = recs[0]["spectral"]
        self.assertAlmostEqual(sp["amplitudes"][0], sp["amplitudes"][3], delta=0.02)
        self.assertAlmostEqual(sp["phases_pi"][3], 0.0, delta=0.02)
        with open(self.path("bell_nopovm_d4.csv.daemon", "summary.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([float(x["spectral_dominant_eigenvalue"]) for x in rows],
                         [r["spectral"]["dominant_eigenvalue"] for r in recs])
        # Without --spectral nothing changes: no key, no column.
        p = ctl("-s", d.sock, "reconstruct", bell, "--json", "--method", "linear")
        self.assertExit(p, 0, "without --spectral")
        self.assertTrue(all("spectral" not in json.loads(x) for x in p.stdout.splitlines()))
        self.assertEqual(d.stop(), 0)

    def test_table_small_fixes(self):
        # A CSV error names its location once; the table prints a pure state's entropy (-2e-16
        # from rounding) as 0, not -0.00000000, while the record keeps the exact value; --bell
        # adds the dominant Bell fidelity as a column ("-" when d is not a square).
        bad = self.path("bad1.csv")
        with open(bad, "w") as f:
            f.write("HH,1\n2,3\n")
        p = local("reconstruct", bad, "--local")
        self.assertExit(p, 2, "bad1.csv")
        self.assertEqual(p.stderr.count(b"line 1, field 1"), 1, p.stderr)
        self.assertIn(b"bad1.csv' line 1, field 1: 'HH' is not a number\n", p.stderr)
        pure = self.path("pure.csv")
        with open(pure, "w") as f:  # column 1: |0>, design mub d = 2
            f.write("1,0\n0,1\n0.5,0.5\n0.5,0.5\n0.5,0.5\n0.5,0.5\n")
        p = local("reconstruct", pure, "--local", "--design", "mub", "--method", "linear",
                  "--columns", "1", "--json")
        self.assertExit(p, 0, "pure --json")
        ent = json.loads(p.stdout)["metrics"]["eigenvalue_entropy"]
        self.assertLessEqual(ent, 0.0)  # the record: the exact (rounded) value
        p = local("reconstruct", pure, "--local", "--design", "mub", "--method", "linear",
                  "--columns", "1")
        self.assertExit(p, 0, "pure table")
        head, row = p.stdout.decode().splitlines()[:2]
        cells = dict(zip(head.split(), row.split()))
        self.assertEqual(cells["entropy"], "0.00000000")
        self.assertNotIn("-0.0", p.stdout.decode())
        self.assertNotIn("bell_max", head)
        p = local("reconstruct", BELL4, "--local", "--bell", "--method", "linear,mle",
                  "--columns", "1:2")
        self.assertExit(p, 0, "--bell table")
        lines = p.stdout.decode().splitlines()
        head = lines[0].split()
        self.assertEqual(head[-2:], ["bell_max", "note"])
        q = local("reconstruct", BELL4, "--local", "--bell", "--method", "linear,mle",
                  "--columns", "1:2", "--json")
        recs = [json.loads(x) for x in q.stdout.splitlines()]
        self.assertEqual(len(recs), len(lines) - 1)
        for line, r in zip(lines[1:], recs):
            cells = line.split()
            self.assertAlmostEqual(float(cells[head.index("bell_max")]),
                                   r["metrics"]["bell_max_fidelity"], delta=5e-9)
        p = local("reconstruct", os.path.join(EXAMPLES, "mub_d3.csv"), "--local", "--bell",
                  "--method", "linear", "--columns", "1")
        self.assertExit(p, 0, "--bell d = 3")
        head, row = p.stdout.decode().splitlines()[:2]
        self.assertEqual(row.split()[head.split().index("bell_max")], "-")

    def test_theory_and_published_targets(self):
        # --target 4D_custom (no such file: the origin's theory profile) and a published matrix
        # printed to 4 decimals (trace 1.0001, an eigenvalue of -5e-5): projected with a warning
        # on stderr, and the projected state is what travels, so the daemon's records are the
        # --local ones byte for byte. Beyond 1e-3 the target is refused as before.
        d = self.start()
        bell = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
        cwd = os.getcwd()
        os.chdir(self.path())  # "4D_custom" must not name a file here
        try:
            recs = self.daemon_equals_local(d, bell, 4, "--method", "linear,mle", "--target",
                                            "4D_custom")
            with open(self.path("bell_nopovm_d4.csv.local", "run.json")) as f:
                self.assertEqual(json.load(f)["options"]["target"], {"profile": "4D_custom"})
            p = local("reconstruct", bell, "--local", "--target", "16D_custom")
            self.assertExit(p, 2, "16D_custom on d = 4")
            self.assertIn(b"profile '16D_custom' has d = 16, the data has d = 4", p.stderr)
            p = local("reconstruct", bell, "--local", "--target", "5D_custom")
            self.assertExit(p, 2, "unknown name")
            self.assertIn(b"cannot read target file '5D_custom'", p.stderr)
        finally:
            os.chdir(cwd)
        # A pure target: F = <psi|rho|psi> with the origin's psi = (1, 1, 1, -1)/2.
        psi = [0.5, 0.5, 0.5, -0.5]
        for r in recs:
            rho = [[complex(r["rho"]["re"][i][j], r["rho"]["im"][i][j]) for j in range(4)]
                   for i in range(4)]
            f = sum(psi[i] * rho[i][j] * psi[j] for i in range(4) for j in range(4)).real
            self.assertAlmostEqual(r["metrics"]["fidelity"], f, delta=1e-9)
        pub = self.path("published.json")
        with open(pub, "w") as f:
            json.dump({"density_matrix": [[0.5, 0, 0, 0.5001], [0, 0, 0, 0], [0, 0, 0, 0],
                                          [0.5001, 0, 0, 0.5001]]}, f)
        bell2 = self.path("bell2.csv")  # daemon_equals_local's output dirs are per input name
        shutil.copy(bell, bell2)
        recs = self.daemon_equals_local(d, bell2, 4, "--method", "linear,mle", "--target", pub)
        self.assertGreater(recs[0]["metrics"]["fidelity"], 0.95)
        for p in (ctl("-s", d.sock, "reconstruct", bell, "--target", pub, "--method", "linear"),
                  local("reconstruct", bell, "--local", "--target", pub, "--method", "linear")):
            self.assertExit(p, 0, "published target")
            self.assertIn(b"warning: target file", p.stderr)
            self.assertIn(b"trace 1.0001", p.stderr)
            self.assertIn(b"projected onto the density matrices", p.stderr)
        with open(pub, "w") as f:
            json.dump({"density_matrix": [[0.5, 0, 0, 0.503], [0, 0, 0, 0], [0, 0, 0, 0],
                                          [0.503, 0, 0, 0.5]]}, f)
        p = local("reconstruct", bell, "--local", "--target", pub)
        self.assertExit(p, 2, "beyond the tolerance")
        self.assertIn(b"negative eigenvalue", p.stderr)
        self.assertEqual(d.stop(), 0)

    # ---- pictures: --plots, qtomoctl plot, DIR/report.html ----

    def plotted_run(self, name="plots-run"):
        out = self.path(name)
        p = local("reconstruct", BELL4, "--local", "-o", out, "--plots", "all", "--bootstrap", 20,
                  "--seed", 1, timeout=300)
        self.assertExit(p, 0, "reconstruct --plots all")
        with open(os.path.join(out, "records.jsonl")) as f:
            records = [json.loads(x) for x in f]
        return out, records

    def test_plots_files_exist_and_svgs_parse(self):
        import xml.etree.ElementTree as ET
        out, records = self.plotted_run()
        self.assertEqual(len(records), 8)  # 4 samples x (linear, mle)
        names = ["run_purity", "run_eigenvalues"]
        for r in records:
            for part in ("re", "im"):
                for kind in ("bars", "heat"):
                    names.append("sample%d_%s_%s_%s" % (r["sample"], r["method"], part, kind))
        for name in names:
            for ext in ("svg", "pdf", "png"):
                f = os.path.join(out, "plots", name + "." + ext)
                self.assertTrue(os.path.isfile(f), f)
                self.assertGreater(os.path.getsize(f), 0, f)
                if ext == "svg":
                    root = ET.parse(f).getroot()
                    self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg", f)
                elif ext == "pdf":
                    with open(f, "rb") as fh:
                        self.assertEqual(fh.read(5), b"%PDF-", f)
                else:
                    with open(f, "rb") as fh:
                        self.assertEqual(fh.read(8), b"\x89PNG\r\n\x1a\n", f)
        self.assertGreater(os.path.getsize(os.path.join(out, "report.html")), 0)
        self.assertEqual([x for x in os.listdir(os.path.join(out, "plots")) if ".tmp" in x], [])
        # qtomoctl plot redraws an existing run; first:1 gives per-sample figures of sample 0
        # only, the run-level figures always.
        shutil.rmtree(os.path.join(out, "plots"))
        os.unlink(os.path.join(out, "report.html"))
        p = ctl("plot", out, "--plots", "first:1")
        self.assertExit(p, 0, "qtomoctl plot --plots first:1")
        got = sorted(os.listdir(os.path.join(out, "plots")))
        self.assertIn("run_purity.svg", got)
        self.assertIn("run_eigenvalues.png", got)
        self.assertEqual(sorted({x.split("_")[0] for x in got}), ["run", "sample0"])
        self.assertTrue(os.path.isfile(os.path.join(out, "report.html")))
        # Columns select by the input column; bad selections are usage errors.
        p = ctl("plot", out, "--plots", "3")
        self.assertExit(p, 0, "qtomoctl plot --plots 3")
        self.assertTrue(os.path.isfile(os.path.join(out, "plots", "sample2_mle_re_bars.svg")))
        for bad in ("first:x", "1-", "x", "3-1"):
            self.assertExit(ctl("plot", out, "--plots", bad), 2, "--plots " + bad)
        self.assertExit(local("reconstruct", BELL4, "--local", "--plots"), 2, "--plots without -o")
        self.assertExit(ctl("plot", self.path("no-such-run")), 2, "plot of a missing directory")

    def test_report_escapes_data(self):
        # A method name and an error message from records.jsonl cannot inject HTML.
        out, records = self.plotted_run()
        evil = '<img src=x onerror="alert(1)">'
        records[0] = {k: records[0][k] for k in ("sample", "column", "design", "dim")}
        records[0].update(method="<b>m</b>", status="error",
                          error={"code": 1, "name": "x", "message": evil})
        records[1]["method"] = "mle'\"<script>alert(2)</script>"
        with open(os.path.join(out, "records.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
        p = ctl("plot", out, "--plots", "all")
        self.assertExit(p, 0, "qtomoctl plot")
        with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
            html = f.read()
        self.assertNotIn(evil, html)
        self.assertNotIn("<b>m</b>", html)
        self.assertNotIn("<script>alert", html)
        self.assertIn("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;", html)
        self.assertIn("&lt;b&gt;m&lt;/b&gt;", html)
        # Defence in depth: a Content-Security-Policy allows no network, and no script but the
        # page's own render check, named by its hash.
        import base64
        scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
        self.assertEqual(len(scripts), 1)
        digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
        self.assertIn("<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
                      "img-src 'self'; style-src 'unsafe-inline'; script-src 'sha256-%s'\">"
                      % digest, html)
        # File names keep only [A-Za-z0-9_-].
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", records[1]["method"])
        self.assertEqual(safe, "mle___script_alert_2___script_")
        self.assertTrue(os.path.isfile(os.path.join(out, "plots",
                                                    "sample0_%s_re_bars.svg" % safe)))

    def test_report_renders_in_chromium(self):
        # Opens DIR/report.html in headless Chromium: a screenshot, and the DOM after load, in
        # which the page's own check (#qt-status) counted the images that loaded with a natural
        # size, the summary rows, and script/console/resource errors.
        chromium = "/usr/bin/chromium"
        if not os.path.exists(chromium):
            self.skipTest("/usr/bin/chromium is missing (packaging/install-deps installs it)")
        out, records = self.plotted_run()
        url = "file://" + os.path.abspath(os.path.join(out, "report.html"))
        base = [chromium, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
                "--user-data-dir=" + self.path("chromium-profile"), "--enable-logging=stderr",
                "--v=0", "--virtual-time-budget=10000"]
        shot = self.path("report.png")
        p = subprocess.run(base + ["--window-size=1200,3000", "--screenshot=" + shot, url],
                           capture_output=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-2000:])
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(struct.unpack(">II", png[16:24]), (1200, 3000))
        self.assertGreater(len(png), 50000)  # a blank page compresses to a few kB
        p = subprocess.run(base + ["--dump-dom", url], capture_output=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-2000:])
        dom = p.stdout.decode()
        m = re.search(r'<p id="qt-status"([^>]*)>', dom)
        self.assertIsNotNone(m, "no render check in the dumped DOM")
        attrs = dict(re.findall(r'data-([a-z]+)="(\d+)"', m.group(1)))
        n_images = len(records) * 4 + 2  # 4 figures per record, purity and spectra
        self.assertEqual(attrs, {"images": str(n_images), "loaded": str(n_images),
                                 "rows": str(len(records)), "errors": "0"}, m.group(0))
        console = [x for x in p.stderr.decode(errors="replace").splitlines() if "CONSOLE" in x]
        self.assertEqual(console, [], "console messages")

    def test_plot_large_run_report_stays_small(self):
        # 10,000 samples x 2 methods: run-level figures of all of them, per-sample figures of the
        # first 20 samples, and a page that stays small (200 table rows, a note, 100 sections).
        out, records = self.plotted_run()
        proto = {r["method"]: r for r in records if r["sample"] == 0}
        n = 10000
        with open(os.path.join(out, "records.jsonl"), "w") as f:
            for k in range(n):
                for method in ("linear", "mle"):
                    r = dict(proto[method], sample=k, column=k + 1)
                    if k >= 20:
                        r.pop("rho")  # only the selected ones are drawn
                    r["metrics"] = dict(r["metrics"], purity=0.9 + (k % 97) / 1000)
                    f.write(json.dumps(r) + "\n")
        shutil.rmtree(os.path.join(out, "plots"))
        t0 = time.monotonic()
        p = ctl("plot", out, timeout=300)
        self.assertExit(p, 0, "qtomoctl plot of 10,000 samples")
        elapsed = time.monotonic() - t0
        got = os.listdir(os.path.join(out, "plots"))
        self.assertEqual(len([x for x in got if x.startswith("sample")]), 20 * 2 * 4 * 3)
        self.assertEqual(len([x for x in got if x.startswith("run_")]), 2 * 3)
        size = os.path.getsize(os.path.join(out, "report.html"))
        self.assertLess(size, 300000, "report.html of a 10,000-sample run")
        with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
            html = f.read()
        self.assertIn("The first 200 of 20000 records", html)
        self.assertEqual(html.count("<section id="), 40)
        if os.path.exists("/usr/bin/chromium"):
            url = "file://" + os.path.abspath(os.path.join(out, "report.html"))
            p = subprocess.run(["/usr/bin/chromium", "--headless=new", "--disable-gpu",
                                "--no-sandbox", "--no-first-run",
                                "--user-data-dir=" + self.path("chromium-profile"),
                                "--virtual-time-budget=10000", "--dump-dom", url],
                               capture_output=True, timeout=300)
            m = re.search(r'<p id="qt-status"([^>]*)>', p.stdout.decode())
            self.assertIsNotNone(m, "no render check in the dumped DOM")
            attrs = dict(re.findall(r'data-([a-z]+)="(\d+)"', m.group(1)))
            self.assertEqual(attrs, {"images": "162", "loaded": "162", "rows": "200",
                                     "errors": "0"}, m.group(0))
        print("plot of 20,000 records: %.1f s, report.html %d bytes" % (elapsed, size))


    def test_plots_spectral_figure(self):
        # --spectral records get a figure of the dominant eigenvector (amplitudes, phases), and
        # the report shows it; records without spectral have none.
        import xml.etree.ElementTree as ET
        out = self.path("spec")
        p = local("reconstruct", BELL4, "--local", "-o", out, "--spectral", "--plots", "all",
                  "--method", "linear,mle", "--columns", "1:2")
        self.assertExit(p, 0, "--spectral --plots")
        with open(os.path.join(out, "report.html")) as f:
            report = f.read()
        for s in (0, 1):
            for m in ("linear", "mle"):
                base = os.path.join(out, "plots", "sample%d_%s_spectral" % (s, m))
                for ext in ("svg", "pdf", "png"):
                    self.assertGreater(os.path.getsize(base + "." + ext), 0, base + ext)
                ET.parse(base + ".svg")
                self.assertIn("sample%d_%s_spectral.svg" % (s, m), report)
        out2 = self.path("nospec")
        p = local("reconstruct", BELL4, "--local", "-o", out2, "--plots", "all", "--columns", "1:1")
        self.assertExit(p, 0, "--plots without --spectral")
        self.assertEqual([f for f in os.listdir(os.path.join(out2, "plots")) if "spectral" in f],
                         [])

    def test_hdf5_helper(self):
        # results.h5 is written by the helper qtomo-h5 that qtomoctl runs: a parent that
        # ignores SIGCHLD (inherited across exec) must not lose its exit status, and a qtomoctl
        # without its helper says so and fails instead of leaving no results.h5 silently.
        out = self.path("h5ign")
        p = subprocess.run([QTOMOCTL, "reconstruct", BELL4, "--local", "-o", out, "--hdf5",
                            "--method", "linear"], capture_output=True, env=LOCAL_ENV,
                           timeout=50,
                           preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
        self.assertExit(p, 0, "--hdf5 with SIGCHLD ignored")
        with open(os.path.join(out, "results.h5"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89HDF\r\n\x1a\n")
        alone = self.path("alone")
        os.makedirs(alone)
        shutil.copy(QTOMOCTL, alone)
        p = subprocess.run([os.path.join(alone, "qtomoctl"), "reconstruct", BELL4, "--local",
                            "-o", self.path("h5none"), "--hdf5", "--method", "linear"],
                           capture_output=True, env=LOCAL_ENV, timeout=50)
        self.assertExit(p, 1, "--hdf5 without the helper")
        self.assertIn(b"qtomo-h5", p.stderr)

    def test_plot_helper(self):
        # Figures are drawn by the helper qtomo-plot that qtomoctl runs (qtomoctl itself does
        # not load cairo): the selection and -q reach it, its exit code is qtomoctl's, and a
        # qtomoctl without it says so and fails.
        self.assertNotIn(b"cairo", subprocess.run(["readelf", "-d", QTOMOCTL],
                                                  capture_output=True, check=True).stdout)
        out = self.path("plothelper")
        p = local("reconstruct", BELL4, "--local", "-o", out, "--method", "linear",
                  "--plots", "2,4")
        self.assertExit(p, 0, "--plots 2,4")
        self.assertIn(b"figures: ", p.stderr)
        got = {x.split("_")[0] for x in os.listdir(os.path.join(out, "plots"))}
        self.assertEqual(got, {"run", "sample1", "sample3"})
        p = ctl("-q", "plot", out, "--plots", "first:1")
        self.assertExit(p, 0, "-q plot")
        self.assertEqual(p.stderr, b"")
        self.assertExit(ctl("plot", self.path("no-such-run")), 2, "the helper's usage exit")
        alone = self.path("plotalone")
        os.makedirs(alone)
        shutil.copy(QTOMOCTL, alone)
        for args in (["reconstruct", BELL4, "--local", "-o", self.path("plotnone"), "--method",
                      "linear", "--plots"], ["plot", out]):
            p = subprocess.run([os.path.join(alone, "qtomoctl")] + args, capture_output=True,
                               env=LOCAL_ENV, timeout=50)
            self.assertExit(p, 1, "%s without the helper" % args[0])
            self.assertIn(b"its helper qtomo-plot is not installed", p.stderr)

    def test_plot_helper_stops_with_qtomoctl(self):
        # A stop signal sent to qtomoctl while its helper draws (kill, timeout(1)) reaches the
        # helper: both end, qtomoctl by that signal, and no qtomo-plot is left drawing (the
        # drawing takes minutes: it is stopped, not waited for).
        out = self.path("plotstop")
        p = local("reconstruct", self.big_input(250), "--local", "-o", out, "--method", "linear",
                  timeout=120)  # 1,000 samples: 12,000 figure files, about 2 minutes to draw
        self.assertExit(p, 0, "the run to draw")
        p = subprocess.Popen([QTOMOCTL, "plot", out, "--plots", "all"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)

        def helper():
            for d in os.listdir("/proc"):
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                except (OSError, ValueError):
                    continue
                name, rest = st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()
                if name == "qtomo-plot" and int(rest[1]) == p.pid:
                    return int(d)
            return None
        try:
            self.assertTrue(wait_until(lambda: helper() or p.poll() is not None, 60))
            child = helper()
            self.assertIsNotNone(child, "qtomoctl plot ended before its helper was seen")
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        err = p.stderr.read().decode(errors="replace")
        self.assertEqual(p.returncode, -signal.SIGTERM, err)
        # Stopped while drawing, not after: no report (written last), no summary line.
        self.assertNotIn("figures:", err)
        self.assertFalse(os.path.exists(os.path.join(out, "report.html")))

        def gone():
            try:
                with open("/proc/%d/stat" % child) as f:
                    return f.read().split(") ")[1].startswith("Z")
            except OSError:
                return True
        self.assertTrue(wait_until(gone, 60), "qtomo-plot %d still runs" % child)

    def test_hdf5_spectral(self):
        # --spectral fields are datasets of results.h5 too, equal to the records'.
        out = self.path("h5spec")
        p = local("reconstruct", BELL4, "--local", "-o", out, "--spectral", "--hdf5", "--method",
                  "linear,mle")
        self.assertExit(p, 0, "--spectral --hdf5")
        with open(os.path.join(out, "records.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        with h5py.File(os.path.join(out, "results.h5"), "r") as h:
            for k, r in enumerate(recs):
                sp = r["spectral"]
                self.assertEqual(h["spectral/dominant_eigenvalue"][k], sp["dominant_eigenvalue"])
                for n in ("amplitudes", "phases_pi", "eigenvalues"):
                    self.assertEqual(list(h["spectral/" + n][k]), sp[n], n)

    def test_analysis_hostile_inputs(self):
        # Review findings: a UTF-8 BOM and hexadecimal text in summary.csv, too many methods for
        # --compare-methods, a method name whose 40-byte cut would split a UTF-8 character, a
        # negative sample number.
        out = self.path("run")
        p = local("reconstruct", BELL4, "--local", "-o", out, "--method", "linear,mle")
        self.assertExit(p, 0, "run")
        summ = os.path.join(out, "summary.csv")
        with open(summ, "rb") as f:
            data = f.read()
        bom = self.path("bom.csv")
        with open(bom, "wb") as f:
            f.write(b"\xef\xbb\xbf" + data)
        p = ctl("summarize", bom, "--compare-methods", "--json")
        self.assertExit(p, 0, "summarize with a BOM")
        self.assertEqual(json.loads(p.stdout)["rows"], 8)
        lines = data.decode().splitlines()
        many = self.path("many.csv")
        with open(many, "w") as f:
            f.write(lines[0] + "\n")
            for k in range(100):
                row = lines[1].split(",")
                row[1] = "m%d" % k
                f.write(",".join(row) + "\n")
        p = ctl("summarize", many, "--compare-methods")
        self.assertExit(p, 2, "100 methods compared")
        self.assertIn(b"at most 64", p.stderr)
        recs = self.path("odd")
        os.mkdir(recs)
        with open(os.path.join(out, "records.jsonl")) as f:
            good = [json.loads(x) for x in f]
        with open(os.path.join(recs, "records.jsonl"), "w") as f:
            r = dict(good[0])
            r["method"] = "a" * 39 + "\u00e9"
            f.write(json.dumps(r) + "\n")
            r = dict(good[1])
            r["sample"] = -1
            f.write(json.dumps(r) + "\n")
        p = ctl("plot", recs, "--plots", "all")
        self.assertExit(p, 0, "plot of odd records")
        names = os.listdir(os.path.join(recs, "plots"))
        self.assertTrue(any(n.startswith("sample0_") for n in names), names)
        self.assertFalse(any("18446744073709551615" in n or "sample-1" in n for n in names), names)
        p = ctl("bell", recs)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"sample >= 0", p.stderr)

    def test_plots_not_drawn_after_interrupt(self):
        # SIGINT ends the batch; no figures are drawn after it (qtomoctl plot draws them later).
        path = self.big_input(250)
        out = self.path("intr")
        p = subprocess.Popen([QTOMOCTL, "reconstruct", path, "--local", "-o", out, "--plots",
                              "all", "--method", "linear,mle,rhor"], env=LOCAL_ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rec = os.path.join(out, "records.jsonl")
        self.assertTrue(wait_until(lambda: count_lines(rec) >= 30 or p.poll() is not None, 60))
        if p.poll() is not None:
            self.skipTest("the run ended before it could be interrupted")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        self.assertIn(b"no figures drawn", err)
        self.assertFalse(os.path.exists(os.path.join(out, "plots")))

    # ---- calibration (qtomoctl calibrate) ----

    def calib_csv(self, states, dark=0, bg=0.0, name="calib.csv"):
        """Expected counts (rounded) of a 2-qubit pauli calibration: per-qubit efficiencies and
        2 x 2 crosstalk, 1e5 photons per run, a background bg and `dark` dark columns."""
        eta = [(0.92, 0.81), (0.97, 0.88)]
        cross = [((0.98, 0.03), (0.02, 0.97)), ((0.99, 0.04), (0.01, 0.96))]
        eig = {0: "+-", 1: "rl", 2: "01"}  # the pauli bases X, Y, Z: bit 0, bit 1

        def prob(letter, basis, bit):
            e = eig[basis]
            return (1.0 if letter == e[bit] else 0.0) if letter in e else 0.5

        cols = []
        for j, st in enumerate(states):
            col = []
            for setting in range(9):
                bases = (setting // 3, setting % 3)
                for a in range(4):
                    bits_a = (a >> 1, a & 1)
                    mu = 0.0
                    for b in range(4):
                        bits_b = (b >> 1, b & 1)
                        t = 1e5 * (1 + 0.01 * (j % 5))
                        for q in range(2):
                            t *= cross[q][bits_a[q]][bits_b[q]] * eta[q][bits_b[q]] * \
                                prob(st[q], bases[q], bits_b[q])
                        mu += t
                    col.append(str(round(mu + bg)))
            cols.append(col)
        for _ in range(dark):
            cols.append([str(round(bg))] * 36)
        path = self.path(name)
        write_columns(path, cols)
        return path, eta, cross

    def test_calibrate_then_reconstruct(self):
        # calibrate fits the model the counts were made with (exact expected counts, so to
        # rounding), writes a detector file that reconstruct --detector takes and the fit's
        # report beside it; bad inputs are refused naming the state, column or group.
        states = [a + b for a in "01+-rl" for b in "01+-rl"]
        spath = self.path("states.json")
        with open(spath, "w") as f:
            json.dump(states, f)
        csv, eta, cross = self.calib_csv(states)
        det = self.path("det.json")
        p = local("calibrate", csv, "--design", "pauli", "--states", spath, "-o", det)
        self.assertExit(p, 0, "calibrate")
        self.assertIn(b"chi2/dof", p.stdout)
        self.assertIn(b"largest crosstalk", p.stdout)
        with open(det) as f:
            model = json.load(f)
        self.assertEqual(sorted(model), ["crosstalk", "efficiencies"])
        with open(det + ".fit.json") as f:
            fit = json.load(f)
        for key in ("efficiencies_se", "crosstalk_se", "chi2", "dof", "loglik",
                    "pearson_residuals", "intensity"):
            self.assertIn(key, fit)
        self.assertEqual(len(fit["pearson_residuals"]), 36)
        self.assertEqual(fit["dof"], 36 * 36 - (9 * 16 + 36 - 1))
        true_eff = [eta[0][a >> 1] * eta[1][a & 1] for a in range(4)]
        for g in range(9):
            for a in range(4):
                want = true_eff[a] / max(true_eff)
                self.assertAlmostEqual(model["efficiencies"][4 * g + a], want, delta=2e-4)
                for b in range(4):
                    c = cross[0][a >> 1][b >> 1] * cross[1][a & 1][b & 1]
                    self.assertAlmostEqual(model["crosstalk"][g][a][b], c, delta=2e-4)
        p = local("reconstruct", os.path.join(EXAMPLES, "pauli_2q.csv"), "--local", "--design",
                  "pauli", "--detector", det, "--json")
        self.assertExit(p, 0, "reconstruct --detector with the calibrated model")
        recs = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual(len(recs), 6)
        self.assertTrue(all(r["status"] == "ok" and r["detector"].startswith("det-")
                            for r in recs))
        # --qubit: one 2 x 2 model per qubit (the truth here), written as qubit_crosstalk.
        detq = self.path("detq.json")
        p = local("calibrate", csv, "--design", "pauli", "--states", spath, "--qubit", "-o", detq)
        self.assertExit(p, 0, "calibrate --qubit")
        self.assertIn(b"qubit  eta(0)", p.stdout)
        with open(detq) as f:
            model = json.load(f)
        self.assertEqual(sorted(model), ["efficiencies", "qubit_crosstalk"])
        for q in range(2):
            for a in range(2):
                for b in range(2):
                    self.assertAlmostEqual(model["qubit_crosstalk"][q][a][b], cross[q][a][b],
                                           delta=1e-4)
        for a in range(36):
            self.assertAlmostEqual(model["efficiencies"][a], true_eff[a % 4] / max(true_eff),
                                   delta=1e-4)
        with open(detq + ".fit.json") as f:
            fit = json.load(f)
        self.assertEqual(len(fit["qubit_efficiencies_se"]), 4)
        self.assertEqual(fit["dof"], 36 * 36 - (8 + 36 - 2))
        p = local("reconstruct", os.path.join(EXAMPLES, "pauli_2q.csv"), "--local", "--design",
                  "pauli", "--detector", detq)
        self.assertExit(p, 0, "reconstruct --detector with the per-qubit model")
        # A background needs a dark column; the fitted one is the truth, and linear takes it.
        csv_bg, _, _ = self.calib_csv(states, dark=1, bg=40.0, name="calib_bg.csv")
        sbg = self.path("states_bg.json")
        with open(sbg, "w") as f:
            json.dump(states + ["dark"], f)
        detbg = self.path("detbg.json")
        p = local("calibrate", csv_bg, "--design", "pauli", "--states", sbg, "--background",
                  "-o", detbg)
        self.assertExit(p, 0, "calibrate --background")
        with open(detbg) as f:
            model = json.load(f)
        for x in model["background"]:
            self.assertAlmostEqual(x, 40.0, delta=0.5)
        p = local("reconstruct", os.path.join(EXAMPLES, "pauli_2q.csv"), "--local", "--design",
                  "pauli", "--method", "linear", "--detector", detbg)
        self.assertExit(p, 0, "reconstruct --detector with a calibrated background")
        p = local("calibrate", csv_bg, "--design", "pauli", "--states", spath)
        self.assertExit(p, 2, "37 columns, 36 states")
        self.assertIn(b"gives 36 states but", p.stderr)
        self.assertIn(b"has 37 columns", p.stderr)
        p = local("calibrate", csv, "--design", "pauli", "--states", sbg)
        self.assertExit(p, 2, "dark run without --background")
        self.assertIn(b"has 36 columns", p.stderr)
        # Computational-basis states only: the X and Y settings see every state in one
        # proportion.
        zonly = self.path("zonly.json")
        with open(zonly, "w") as f:
            json.dump(["00", "01", "10", "11"], f)
        csv_z, _, _ = self.calib_csv(["00", "01", "10", "11"], name="calib_z.csv")
        p = local("calibrate", csv_z, "--design", "pauli", "--states", zonly)
        self.assertExit(p, 2, "unidentifiable groups")
        self.assertIn(b"group 0 (outcomes 0..3) is not identifiable", p.stderr)
        for bad, msg in (([[1, 1, 0, 0]] + states[1:], b"state 0 (column 1): the ket is not "
                                                       b"normalised (squared norm 2)"),
                         (["0"] + states[1:], b"state 0 (column 1): '0' needs 2 qubit letters"),
                         ([[1, 0]] + states[1:], b"state 0 (column 1): needs 4 numbers")):
            with open(self.path("bad.json"), "w") as f:
                json.dump(bad, f)
            p = local("calibrate", csv, "--design", "pauli", "--states", self.path("bad.json"))
            self.assertExit(p, 2, msg.decode())
            self.assertIn(msg, p.stderr)

    # ---- detector models (--detector) ----

    def test_detector_daemon_equals_local(self):
        # A detector model makes the run's design its effective design (custom, uploaded by
        # design.put): records through the daemon and --local are the same bytes and name the
        # model; {} is no detector at all; bad files and unsupported combinations are refused
        # with the field named; --resume refuses another detector file.
        d = self.start()
        k = 16
        cross = [[0.98 if a == b else 0.02 / (k - 1) for b in range(k)] for a in range(k)]
        det = {"efficiencies": [0.7 + 0.3 * ((5 * a) % 7) / 6 for a in range(k)],
               "crosstalk": [cross], "setting_intensity": [1.1]}
        dpath = self.path("det.json")
        with open(dpath, "w") as f:
            json.dump(det, f)
        recs = self.daemon_equals_local(d, BELL4, 4, "--method", "linear,mle,rhor",
                                        "--detector", dpath)
        ids = {(r["design"], r["design_id"], r["detector"]) for r in recs}
        self.assertEqual(len(ids), 1)
        design, did, detid = ids.pop()
        self.assertEqual(design, "custom")
        self.assertRegex(did, r"^custom-[0-9a-f]{32}$")
        self.assertRegex(detid, r"^det-[0-9a-f]{32}$")
        self.assertTrue(all(r["status"] == "ok" for r in recs))
        # detector put: the daemon builds the same effective design from the model alone.
        p = ctl("-s", d.sock, "--json", "detector", "put", dpath, "nopovm", "4")
        self.assertExit(p, 0, "detector put")
        self.assertEqual(json.loads(p.stdout), {"design": "custom", "design_id": did, "d": 4,
                                                "m": 16, "detector": detid})
        p = ctl("-s", d.sock, "detector", "put", dpath, "custom", "4")
        self.assertExit(p, 2, "detector put custom without its id")
        with open(self.path("bell_nopovm_d4.csv.daemon", "run.json")) as f:
            opts = json.load(f)["options"]
        self.assertEqual(opts["detector"], {"path": dpath, "sha256": sha256(dpath), "id": detid})
        # Error bars resample the counts under the effective design, alike both ways.
        boot = self.path("bell_boot.csv")
        shutil.copyfile(BELL4, boot)
        recs = self.daemon_equals_local(d, boot, 4, "--method", "linear,mle", "--detector",
                                        dpath, "--bootstrap", "20", "--seed", "7")
        self.assertTrue(all("metrics" in r["uncertainty"] for r in recs))
        h5dir = self.path("det_h5")
        p = local("reconstruct", BELL4, "--local", "-o", h5dir, "--hdf5", "--method", "linear",
                  "--detector", dpath)
        self.assertExit(p, 0, "--detector --hdf5")
        with h5py.File(os.path.join(h5dir, "results.h5"), "r") as h:
            self.assertEqual(h.attrs["detector"], detid)
            self.assertEqual(h.attrs["design_id"], did)
        # The model changes the estimate.
        plain = local("reconstruct", BELL4, "--local", "--json", "--method", "linear")
        self.assertExit(plain, 0, "without a detector")
        self.assertNotEqual(json.loads(plain.stdout.splitlines()[0])["rho"], recs[0]["rho"])
        # --resume with another detector file is refused and keeps the records.
        out = self.path("bell_nopovm_d4.csv.local")
        with open(os.path.join(out, "records.jsonl"), "rb") as f:
            before = f.read()
        det2 = dict(det, setting_intensity=[1.0])
        d2 = self.path("det2.json")
        with open(d2, "w") as f:
            json.dump(det2, f)
        p = local("reconstruct", BELL4, "--local", "-o", out, "--method", "linear,mle,rhor",
                  "--detector", d2, "--resume")
        self.assertRefusedKeepsRecords(p, out, before, "another detector file")
        # {} is the identity: records equal to those without a detector, for a custom design
        # (the zero-group sample fails alike) and for a built-in one, daemon and --local.
        empty = self.path("empty.json")
        with open(empty, "w") as f:
            f.write("{}")
        cdes, cpath = self.path("pauli6.json"), self.path("pauli6.csv")
        with open(cdes, "w") as f:
            json.dump(PAULI6, f)
        write_columns(cpath, pauli6_columns(8, int))
        for args, code in (((cpath, "--design-file", cdes), 1), ((BELL4,), 0)):
            for run in (lambda *a: ctl("-s", d.sock, *a), lambda *a: local(*a, "--local")):
                a = run("reconstruct", *args, "--json", "--method", "linear,mle")
                b = run("reconstruct", *args, "--json", "--method", "linear,mle",
                        "--detector", empty)
                self.assertExit(a, code, "without a detector")
                self.assertExit(b, code, "--detector {}")
                self.assertGreater(len(a.stdout), 0)
                self.assertSameBytes(a.stdout, b.stdout, "--detector {} vs none")
        # A background travels with the effective design: linear subtracts it, mle fits the
        # Poisson likelihood with it (certified), in the workers as in --local; error bars
        # resample under it.
        bgm = self.path("bgm.json")
        with open(bgm, "w") as f:
            json.dump({"background": [0.5 * (a % 3) for a in range(16)],
                       "efficiencies": det["efficiencies"]}, f)
        bell = self.path("bell_bgm.csv")
        shutil.copyfile(BELL4, bell)
        recs = self.daemon_equals_local(d, bell, 4, "--method", "linear,mle", "--detector", bgm)
        mle = [r for r in recs if r["method"] == "mle"]
        self.assertTrue(mle and all(r["status"] == "ok" and r["metrics"]["gap"] <= 1e-8
                                    and r["metrics"]["converged"] for r in mle))
        nobg = self.path("nobg.json")
        with open(nobg, "w") as f:
            json.dump({"efficiencies": det["efficiencies"]}, f)
        p = local("reconstruct", BELL4, "--local", "--json", "--method", "mle", "--detector",
                  nobg)
        self.assertExit(p, 0, "the same model without its background")
        self.assertNotEqual([json.loads(x)["rho"] for x in p.stdout.splitlines()],
                            [r["rho"] for r in mle])
        for how in ("data", "parametric"):
            bootbg = self.path("bell_bgm_%s.csv" % how)
            shutil.copyfile(BELL4, bootbg)
            recs = self.daemon_equals_local(d, bootbg, 4, "--method", "linear,mle",
                                            "--detector", bgm, "--bootstrap", "10", "--seed",
                                            "3", "--resample", how)
            self.assertTrue(all("metrics" in r["uncertainty"] for r in recs))
        # Structured effective designs (pauli and mub bases keep their own maps, then mix each
        # group): the daemon's cache file keeps the structure, so its records are --local's.
        for name, design, m, k, groups in (("pauli_2q.csv", "pauli", 36, 4, 9),
                                           ("mub_d3.csv", "mub", 12, 3, 4)):
            model = {"efficiencies": [0.75 + 0.25 * ((3 * a) % 5) / 4 for a in range(m)],
                     "crosstalk": [[[0.97 if i == j else 0.03 / (k - 1) for j in range(k)]
                                    for i in range(k)]] * groups,
                     "background": [0.3 * (a % 4) for a in range(m)],
                     "setting_intensity": [0.95 + 0.01 * g for g in range(groups)]}
            mpath = self.path("model_%s.json" % design)
            with open(mpath, "w") as f:
                json.dump(model, f)
            copy = self.path("structured_" + name)
            shutil.copyfile(os.path.join(EXAMPLES, name), copy)
            recs = self.daemon_equals_local(d, copy, 3, "--design", design, "--method",
                                            "linear,mle", "--detector", mpath, "--bootstrap", "8",
                                            "--seed", "5", "--resample", "parametric")
            mle = [r for r in recs if r["method"] == "mle"]
            self.assertTrue(all(r["status"] == "ok" and r["metrics"]["gap"] <= 1e-8
                                for r in mle), design)
        # A background larger than the counts: linear warns, daemon = --local.
        bg = self.path("bg.json")
        with open(bg, "w") as f:
            json.dump({"background": [0.0] * 15 + [1e6], "efficiencies": det["efficiencies"]},
                      f)
        bell = self.path("bell_bg.csv")
        shutil.copyfile(BELL4, bell)
        recs = self.daemon_equals_local(d, bell, 4, "--method", "linear", "--detector", bg)
        self.assertTrue(all("negative_input" in r.get("warnings", []) for r in recs))
        # --live: the same model on every line (background subtracted per line), daemon =
        # --local, and the same estimates as the file's up to the batched inversion's rounding.
        data = ("\n".join(",".join(c) for c in read_columns(BELL4, str)) + "\n").encode()
        live = ("reconstruct", "--live", "--json", "--design", "nopovm", "--dim", "4",
                "--method", "linear", "--detector", bg)
        a = ctl("-s", d.sock, *live, input=data)
        b = local(*live, "--local", input=data)
        self.assertExit(a, 0, "daemon --live --detector")
        self.assertExit(b, 0, "--local --live --detector")
        self.assertSameBytes(a.stdout, b.stdout, "--live --detector records")
        lrecs = [json.loads(x) for x in a.stdout.splitlines()]
        self.assertEqual(len(lrecs), len(recs))
        for x, y in zip(lrecs, recs):
            self.assertEqual((x["detector"], x["design_id"]), (y["detector"], y["design_id"]))
            for rx, ry in zip(x["rho"]["re"] + x["rho"]["im"], y["rho"]["re"] + y["rho"]["im"]):
                for u, v in zip(rx, ry):
                    self.assertAlmostEqual(u, v, delta=1e-12)
        p = local("reconstruct", "--live", "--local", "--detector", bg, input=data)
        self.assertExit(p, 2, "--live --detector without --design")
        self.assertIn(b"give --design and --dim", p.stderr)
        p = local("reconstruct", BELL4, "--local", "--method", "linear,rhor", "--detector", bg)
        self.assertExit(p, 2, "background with rhor")
        self.assertIn(b"rhor fits the multinomial without background counts", p.stderr)
        # Bad files name the field and index.
        for bad, msg in (({"efficiencies": [1] * 15 + [0]}, b"efficiencies[15] must be > 0"),
                         ({"efficiencies": [1, 1]}, b"efficiencies has 2 values"),
                         ({"background": [0] * 3 + [-1] + [0] * 12}, b"background[3]"),
                         ({"crosstalk": [[[1, 0], [0, 1]]]}, b"crosstalk[0] is 2 x 2"),
                         ({"setting_intensity": [1, 1]}, b"setting_intensity has 2 values"),
                         ({"qubit_crosstalk": [[[1, 0], [0, 1]]]},
                          b"qubit_crosstalk needs a pauli design"),
                         ({"efficiency": [1]}, b"unknown key 'efficiency'")):
            with open(self.path("bad.json"), "w") as f:
                json.dump(bad, f)
            p = ctl("-s", d.sock, "reconstruct", BELL4, "--detector", self.path("bad.json"))
            self.assertExit(p, 2, "bad detector file %r" % bad)
            self.assertIn(msg, p.stderr)
        p = local("reconstruct", BELL4, "--local", "--method", "wls", "--detector", dpath)
        self.assertExit(p, 2, "wls with unequal efficiencies")
        self.assertIn(b"wls fits frequencies", p.stderr)
        self.assertEqual(d.stop(), 0)

if __name__ == "__main__":
    unittest.main()
