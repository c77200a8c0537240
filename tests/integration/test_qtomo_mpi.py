"""End-to-end tests of qtomo-mpi (client/mpi): `mpirun -n R qtomo-mpi reconstruct` with 1, 2
and 4 ranks against `qtomoctl reconstruct --local` with the same options, byte for byte
(records.jsonl, summary.csv, results.h5's data, run.json but for the fields that say when and
how it ran); the whole job killed with SIGKILL and then --resume; a rank killed alone; bad
samples; refused options. Run by ctest with QTOMO_MPI, QTOMOCTL, QTOMO_SRC and MPIEXEC in the
environment; every test skips when mpirun is missing. Ranks are oversubscribed (the machine may
have fewer cores than ranks) and every wait is for an event, with generous time limits."""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

try:
    import h5py  # python3-h5py; only the --hdf5 case needs it
except ImportError:
    h5py = None
from qtomod_fixture import EXAMPLES, PAULI6, QTOMOCTL, pauli6_columns, read_columns, wait_until, \
    write_columns

QTOMO_MPI = os.environ.get("QTOMO_MPI", "qtomo-mpi")
MPIEXEC = os.environ.get("MPIEXEC") or shutil.which("mpirun") or ""
BELL4 = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
MUB3 = os.path.join(EXAMPLES, "mub_d3.csv")
PAULI2 = os.path.join(EXAMPLES, "pauli_2q.csv")

# One BLAS thread for --local as for the ranks (qtomo-mpi sets it itself); OpenMPI may run as
# root in containers only when told; sanitizer builds: OpenMPI's own allocations are not ours.
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
MPI_ENV = dict(ENV, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
# The default projector cache ($TMPDIR/qtomo-mpi-cache-UID) in one directory for this run.
MPI_ENV["TMPDIR"] = tempfile.mkdtemp(prefix="qtomo-mpi-tmp-")
atexit.register(shutil.rmtree, MPI_ENV["TMPDIR"], True)
if os.environ.get("QTOMO_SANITIZE"):
    # For the ranks only: OpenMPI's libraries keep allocations until exit.
    MPI_ENV["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""),
                                                     "detect_leaks=0"]))

# Fields of run.json that say when and how a run went, not what it computed.
VARYING = ("started", "finished", "elapsed_ms", "mode")


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def first_difference(a, b):
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return "line %d:\n  %r\n  %r" % (i + 1, x[:300], y[:300])
    return "%d lines against %d" % (len(la), len(lb))


def mpi_cmd(ranks, *args):
    return [MPIEXEC, "--oversubscribe", "-n", str(ranks), QTOMO_MPI] + [str(a) for a in args]


def h5_content(path):
    """Every dataset and the attributes that describe the data (not run_json, mode,
    version_server: those say how and when it ran)."""
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


class QtomoMpiTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        if not MPIEXEC or not os.access(MPIEXEC, os.X_OK):
            self.skipTest("mpirun not found (apt-get install openmpi-bin)")
        self.tmp = tempfile.mkdtemp(prefix="qtomo-mpi-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def mpi(self, ranks, *args, timeout=600):
        return subprocess.run(mpi_cmd(ranks, *args), capture_output=True, env=MPI_ENV,
                              timeout=timeout)

    def local(self, *args, timeout=600):
        return subprocess.run([QTOMOCTL] + [str(a) for a in args], capture_output=True,
                              env=ENV, timeout=timeout)

    def assertExit(self, p, code, what):
        self.assertEqual(p.returncode, code, "%s: exit %d, expected %d; stderr:\n%s" % (
            what, p.returncode, code, p.stderr.decode(errors="replace")[-3000:]))

    def assertSameFiles(self, a, b, what, h5=False):
        for f in ("records.jsonl", "summary.csv"):
            with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
                xa, yb = x.read(), y.read()
            if xa != yb:
                self.fail("%s: %s of qtomo-mpi and --local differ; %s"
                          % (what, f, first_difference(xa, yb)))
        runs = []
        for d in (a, b):
            with open(os.path.join(d, "run.json")) as f:
                runs.append({k: v for k, v in json.load(f).items() if k not in VARYING})
        self.assertEqual(runs[0], runs[1], what + ": run.json")
        if h5:
            self.assertEqual(h5_content(os.path.join(a, "results.h5")),
                             h5_content(os.path.join(b, "results.h5")), what + ": results.h5")

    def big_input(self, reps, name="big.csv"):
        path = self.path(name)
        write_columns(path, read_columns(BELL4, str) * reps)
        return path

    def equals_local(self, path, opts, ranks=(1, 2, 4), code=0, h5=False):
        self.runs = getattr(self, "runs", 0) + 1
        ref = self.path("%s.%d.local" % (os.path.basename(path), self.runs))
        self.assertExit(self.local("reconstruct", path, "--local", "-o", ref, *opts), code,
                        "--local " + " ".join(opts))
        for r in ranks:
            out = self.path("%s.%d.mpi%d" % (os.path.basename(path), self.runs, r))
            p = self.mpi(r, "reconstruct", path, "-o", out, *opts)
            self.assertExit(p, code, "%d ranks %s" % (r, " ".join(opts)))
            self.assertSameFiles(out, ref, "%d ranks, %s" % (r, " ".join(opts)), h5=h5)
            with open(os.path.join(out, "run.json")) as f:
                self.assertEqual(json.load(f)["mode"], "mpi")
        return ref

    # ---- the same files as --local ----

    def test_examples_equal_local(self):
        self.equals_local(BELL4, ["--method", "linear,mle"])
        self.equals_local(MUB3, ["--method", "linear,mle,wls,rhor", "--spectral"])
        self.equals_local(BELL4, ["--method", "linear,mle", "--bell",
                                  "--target", os.path.join(EXAMPLES, "phi_plus.json")])
        self.equals_local(PAULI2, ["--design", "pauli", "--method", "linear,mle"])
        # A custom design: every rank parses the file.
        design = self.path("pauli6.json")
        with open(design, "w") as f:
            json.dump(PAULI6, f)
        path = self.path("pauli6.csv")
        write_columns(path, pauli6_columns(70, int))  # the last sample fails: exit 1
        self.equals_local(path, ["--design-file", design, "--method", "linear,mle,wls"], code=1)

    def test_larger_input_equals_local(self):
        # 2000 samples: many chunks, chunk sizes adapted, out-of-order results reordered.
        self.equals_local(self.big_input(500), ["--method", "linear,mle"])
        # mub's batched linear inversion is sensitive to the batch's size in the last bits:
        # chunks must start where --local's batches do.
        path = self.path("mub.csv")
        cols = read_columns(MUB3, str)
        write_columns(path, cols * (700 // len(cols) + 1))
        self.equals_local(path, ["--method", "linear,mle"])

    def test_stdout_and_columns_equal_local(self):
        # Without -o the ranks format JSON lines (--json) or the table as --local prints them;
        # --columns: records name their input column.
        path = self.big_input(50)
        for g in (["--json"], []):
            opts = ["--method", "linear,mle", "--columns", "7:170"]
            ref = self.local(*g, "reconstruct", path, "--local", *opts)
            self.assertExit(ref, 0, "--local " + " ".join(g))
            p = self.mpi(3, *g, "reconstruct", path, *opts)
            self.assertExit(p, 0, "3 ranks " + " ".join(g))
            self.assertEqual(p.stdout, ref.stdout, first_difference(p.stdout, ref.stdout))
            self.assertGreater(p.stdout.count(b"\n"), 327)

    def test_parts_of_one_batch_equal_local(self):
        # Fewer samples than one batch of --local per rank: the ranks get parts of batches
        # (each inverts the whole batch, estimates its part), mub's last bits included.
        path = self.path("mub100.csv")
        cols = read_columns(MUB3, str)
        write_columns(path, (cols * (100 // len(cols) + 1))[:100])
        # (How many chunks the other ranks get depends on when they start: rank 0 computes
        # parts too, so the parts are exercised even when it does everything.)
        self.equals_local(path, ["--method", "linear,mle,rhor"], ranks=(2, 4))

    def test_bootstrap_equals_local(self):
        self.equals_local(self.big_input(10), ["--method", "linear,mle", "--bootstrap", "30",
                                               "--seed", "11"])

    def test_bootstrap_chosen_seed_is_every_ranks(self):
        # Without --seed rank 0 chooses one; every rank must resample with it.
        out = self.path("out")
        p = self.mpi(2, "reconstruct", self.big_input(3), "-o", out, "--bootstrap", "10")
        self.assertExit(p, 0, "--bootstrap without --seed")
        with open(os.path.join(out, "run.json")) as f:
            seed = json.load(f)["options"]["bootstrap"]["seed"]
        ref = self.path("ref")
        p = self.local("reconstruct", self.path("big.csv"), "--local", "-o", ref,
                       "--bootstrap", "10", "--seed", str(seed))
        self.assertExit(p, 0, "--local with the chosen seed")
        with open(os.path.join(out, "records.jsonl"), "rb") as x, \
                open(os.path.join(ref, "records.jsonl"), "rb") as y:
            self.assertEqual(x.read(), y.read())

    @unittest.skipIf(h5py is None, "python3-h5py is not installed")
    def test_hdf5_equals_local(self):
        self.equals_local(self.big_input(5), ["--method", "linear,mle", "--hdf5"], ranks=(2,),
                          h5=True)

    def test_bad_samples_get_error_records(self):
        cols = [list(c) for c in read_columns(BELL4, str) * 40]  # not 40 times the same lists
        clean = self.path("clean.csv")
        write_columns(clean, cols)
        cols[1][2] = "-40"           # a negative count: mle refuses it
        cols[70][5] = "nan"          # a NaN
        cols[130] = [""] * len(cols[130])  # an empty column
        path = self.path("bad.csv")
        write_columns(path, cols)
        ref = self.equals_local(path, ["--method", "linear,mle"], ranks=(1, 3), code=1)
        p = self.local("reconstruct", clean, "--local", "--json", "--method", "linear,mle")
        self.assertIn(p.returncode, (0, 1))
        was = {(r["sample"], r["method"]): r["status"] for r in map(json.loads,
                                                                     p.stdout.splitlines())}
        with open(os.path.join(ref, "records.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        self.assertEqual(len(recs), 320)
        now = {(r["sample"], r["method"]): r["status"] for r in recs}
        changed = {k for k in now if now[k] != was[k]}
        self.assertEqual(changed, {(1, "mle"), (70, "linear"), (70, "mle"), (130, "linear"),
                                   (130, "mle")})
        self.assertTrue(all(now[k] == "error" for k in changed))

    # ---- failures and --resume ----

    def reference(self, path, opts):
        ref = self.path("reference")
        self.assertExit(self.local("reconstruct", path, "--local", "-o", ref, *opts), 0,
                        "uninterrupted --local run")
        return ref

    def start_job(self, ranks, path, out, opts):
        return subprocess.Popen(mpi_cmd(ranks, "reconstruct", path, "-o", out, *opts),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=MPI_ENV, start_new_session=True)

    @staticmethod
    def session(p):
        """The processes of the job's session: mpirun and its ranks (OpenMPI puts the ranks
        in process groups of their own, so killpg would miss them)."""
        return [int(x) for x in subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True,
                                               text=True).stdout.split()]

    def kill_session(self, p):
        for pid in self.session(p):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.communicate(timeout=60)
        self.assertTrue(wait_until(lambda: not self.session(p), 60),
                        "processes of the killed job still run: %r" % self.session(p))

    def wait_records(self, p, out, lines):
        rec = os.path.join(out, "records.jsonl")
        self.assertTrue(wait_until(lambda: count_lines(rec) >= lines or p.poll() is not None,
                                   300), "no records after 300 s")
        self.assertIsNone(p.poll(), "the run ended before it could be interrupted")

    def resume_and_compare(self, ranks, path, out, ref, opts, total):
        self.assertLess(count_lines(os.path.join(out, "records.jsonl")), total,
                        "killed, yet every record is there")
        p = self.mpi(ranks, "reconstruct", path, "-o", out, "--resume", *opts)
        self.assertExit(p, 0, "--resume")
        self.assertIn(b"(resumed)", p.stderr)
        for f in ("records.jsonl", "summary.csv"):
            with open(os.path.join(out, f), "rb") as x, open(os.path.join(ref, f), "rb") as y:
                xa, yb = x.read(), y.read()
            if xa != yb:
                self.fail("%s after --resume differs from an uninterrupted run's: %s"
                          % (f, first_difference(xa, yb)))
        with open(os.path.join(out, "run.json")) as f:
            run = json.load(f)
        with open(os.path.join(ref, "run.json")) as f:
            want = json.load(f)
        self.assertIs(run["complete"], True)
        self.assertGreater(run["resumed_at_sample"], 0)
        self.assertEqual(run["resumed_at_sample"] + run["counts"]["samples_this_run"],
                         want["counts"]["samples"])
        self.assertEqual(run["options"], want["options"])
        self.assertEqual(run["input_sha256"], want["input_sha256"])

    def test_sigkill_job_then_resume_is_identical(self):
        opts = ["--method", "linear,mle,rhor"]
        path = self.big_input(1000)  # 4000 samples
        ref = self.reference(path, opts)
        out = self.path("killed")
        p = self.start_job(3, path, out, opts)
        self.wait_records(p, out, 300)
        self.kill_session(p)  # mpirun and every rank at once
        self.assertFalse(os.path.exists(os.path.join(out, "summary.csv")))
        self.resume_and_compare(2, path, out, ref, opts, 4000 * 3)

    def test_killed_rank_ends_job_then_resume(self):
        # One computing rank dies: MPI ends the whole job; --resume finishes it.
        opts = ["--method", "linear,mle,rhor"]
        path = self.big_input(1000)
        ref = self.reference(path, opts)
        out = self.path("killed")
        p = self.start_job(3, path, out, opts)
        self.wait_records(p, out, 300)
        ranks = {}
        for pid in subprocess.run(["pgrep", "-s", str(p.pid), "-f", QTOMO_MPI],
                                  capture_output=True, text=True).stdout.split():
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
            except OSError:
                continue
            if b"OMPI_COMM_WORLD_RANK" in env:
                ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
        self.assertEqual(sorted(ranks), [0, 1, 2], "the job's ranks")
        os.kill(ranks[2], signal.SIGKILL)
        try:
            p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.kill_session(p)
            self.fail("the job went on after one of its ranks died")
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(wait_until(lambda: not self.session(p), 60),
                        "ranks of the ended job still run: %r" % self.session(p))
        self.resume_and_compare(2, path, out, ref, opts, 4000 * 3)

    # ---- the projector cache ----

    def test_cache_built_once_then_mapped_damage_rebuilt(self):
        cache = self.path("cache")
        opts = ["--method", "linear,mle"]
        path = self.big_input(100)
        ref = self.path("ref")
        self.assertExit(self.local("reconstruct", path, "--local", "-o", ref, *opts), 0, "--local")
        runs = []
        for i in range(3):
            out = self.path("out%d" % i)
            if i == 2:  # damage inside the file's data: found when mapped, moved aside, rebuilt
                f = os.path.join(cache, "nopovm-d4.qtpc")
                size = os.path.getsize(f)
                os.chmod(f, 0o640)
                with open(f, "r+b") as fh:
                    fh.seek(size * 2 // 3)
                    b = fh.read(1)
                    fh.seek(size * 2 // 3)
                    fh.write(bytes([b[0] ^ 0x10]))
            p = self.mpi(4, "-v", "--cache-dir", cache, "reconstruct", path, "-o", out, *opts)
            self.assertExit(p, 0, "run %d" % i)
            self.assertSameFiles(out, ref, "run %d with the cache" % i)
            runs.append(p.stderr.decode(errors="replace"))
        # four ranks, one node: one of them built it, the others waited and mapped it
        self.assertEqual(runs[0].count("projector cache: built nopovm-d4.qtpc"), 1, runs[0])
        self.assertNotIn("projector cache: built", runs[1])
        self.assertIn("nopovm-d4.qtpc was damaged", runs[2])
        self.assertEqual(runs[2].count("projector cache: built nopovm-d4.qtpc"), 1, runs[2])
        self.assertEqual(sorted(f for f in os.listdir(cache) if f.endswith(".qtpc")),
                         ["nopovm-d4.qtpc"])

    def test_without_cache(self):
        # --no-cache, and a cache directory that cannot be made: designs built in memory.
        opts = ["--method", "linear,mle"]
        ref = self.path("ref")
        self.assertExit(self.local("reconstruct", BELL4, "--local", "-o", ref, *opts), 0, "local")
        for g in (["--no-cache"], ["--cache-dir", "/proc/qtomo-no-such-dir"]):
            out = self.path("out" + g[0])
            p = self.mpi(2, *g, "reconstruct", BELL4, "-o", out, *opts)
            self.assertExit(p, 0, " ".join(g))
            self.assertSameFiles(out, ref, " ".join(g))
            if len(g) == 2:
                self.assertIn(b"building designs in memory", p.stderr)

    # ---- ranks that do not see what rank 0 sees ----

    def split_job(self, setup, path, out, *opts):
        """Rank 0 in directory a, ranks 1 and 2 in b (MPMD): relative file names in opts name
        each node's own copy, as on a cluster whose nodes do not share a file system. setup
        (dir, rank0) fills each directory."""
        dirs = [self.path("node-a"), self.path("node-b")]
        for i, d in enumerate(dirs):
            os.makedirs(d)
            setup(d, i == 0)
        args = ["reconstruct", path, "-o", out] + list(opts)
        cmd = ([MPIEXEC, "--oversubscribe", "-n", "1", "--wdir", dirs[0], QTOMO_MPI] + args +
               [":", "-n", "2", "--wdir", dirs[1], QTOMO_MPI] + args)
        return subprocess.run(cmd, capture_output=True, env=MPI_ENV, timeout=600)

    def assertJobRefused(self, p, out, why):
        self.assertNotEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-3000:])
        self.assertIn(why, p.stderr)
        # Rank 0 may have computed its first chunk; when MPI's SIGTERM reached it in time it
        # closed the files as an interrupted run: never as a complete one.
        if os.path.exists(os.path.join(out, "run.json")):
            with open(os.path.join(out, "run.json")) as f:
                self.assertIs(json.load(f)["complete"], False)

    def test_other_target_on_a_rank_ends_job(self):
        # The reviewer's case: another copy of the --target file changed 192 of 320 records.
        def setup(d, rank0):
            if rank0:
                shutil.copy(os.path.join(EXAMPLES, "phi_plus.json"), os.path.join(d, "t.json"))
            else:  # psi minus
                with open(os.path.join(d, "t.json"), "w") as f:
                    json.dump({"ket": {"re": [0, 0.7071067811865476, -0.7071067811865476, 0],
                                       "im": [0, 0, 0, 0]}}, f)
        out = self.path("out")
        p = self.split_job(setup, self.big_input(80), out, "--method", "linear",
                           "--target", "t.json")
        self.assertJobRefused(p, out, b"--target file differs between nodes")

    def test_other_design_file_on_a_rank_ends_job(self):
        # The same design, its X basis written in the other order on the other node.
        def setup(d, rank0):
            mine = json.loads(json.dumps(PAULI6))
            if not rank0:
                for part in ("re", "im"):
                    v = mine["vectors"][part]
                    v[2], v[3] = v[3], v[2]
            with open(os.path.join(d, "des.json"), "w") as f:
                json.dump(mine, f)
        path = self.path("pauli6.csv")
        write_columns(path, pauli6_columns(70, int))
        out = self.path("out")
        p = self.split_job(setup, path, out, "--design-file", "des.json")
        self.assertJobRefused(p, out, b"design or detector file differs between nodes")

    def test_rank_that_cannot_set_up_ends_job(self):
        # Rank 0 reads the target, the others find none: the job ends at once, with the reason,
        # whatever rank 0 is doing (before, a rank 0 that stopped early waited for them forever).
        def setup(d, rank0):
            if rank0:
                shutil.copy(os.path.join(EXAMPLES, "phi_plus.json"), os.path.join(d, "t.json"))
        out = self.path("out")
        p = self.split_job(setup, self.big_input(80), out, "--target", "t.json")
        self.assertJobRefused(p, out, b"t.json")
        self.assertIn(b"could not set up the run", p.stderr)

    # ---- what it refuses ----

    def test_refused_options(self):
        for args, why in ((("reconstruct", "--live"), b"--live"),
                          (("reconstruct", BELL4, "--local"), b"--local"),
                          (("-s", "/tmp/x.sock", "reconstruct", BELL4), b"no daemon"),
                          (("--timeout", "3", "reconstruct", BELL4), b"no daemon"),
                          (("status",), b"reconstruct"),
                          (("reconstruct", BELL4, "--method", "nope"), b"nope")):
            p = self.mpi(2, *args, timeout=120)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(why, p.stderr, args)
            self.assertIn(b"qtomo-mpi: ", p.stderr, args)

    def test_help_and_version(self):
        p = subprocess.run([QTOMO_MPI, "--help"], capture_output=True, env=ENV, timeout=60)
        self.assertExit(p, 0, "--help")
        for word in (b"mpirun", b"--resume", b"--bootstrap", b"Slurm"):
            self.assertIn(word, p.stdout)
        p = subprocess.run([QTOMO_MPI, "--version"], capture_output=True, env=ENV, timeout=60)
        self.assertExit(p, 0, "--version")
        self.assertTrue(p.stdout.startswith(b"qtomo-mpi "))


if __name__ == "__main__":
    unittest.main()
