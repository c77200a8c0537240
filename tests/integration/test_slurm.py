"""packaging/slurm/qtomo-mpi.sbatch run for real: a private single-node Slurm cluster (Debian's
slurm-wlm 22.05 with munge) is started in a temporary directory (its own munge key and socket,
slurm.conf, spool, state and logs; SlurmctldPort and SlurmdPort free ports, the node at
127.0.0.1), the script is submitted with `sbatch --wait --ntasks 2`, and the files it writes are
compared with `qtomoctl reconstruct --local`'s as in test_qtomo_mpi.py; a job cancelled half way
(scancel) and submitted again with --resume writes an uninterrupted run's files; a bad invocation
fails the job. The daemons are stopped (scancel, then SIGTERM, then SIGKILL) whatever happens.
Skips unless run as root with munged, slurmctld, slurmd, sbatch and Slurm's PMIx plugin
installed (apt-get install slurmctld slurmd slurm-client munge). Run by ctest with QTOMO_MPI,
QTOMOCTL, QTOMO_SRC in the environment; every wait is for an event (sinfo, squeue, files), with
generous time limits."""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from qtomod_fixture import EXAMPLES, QTOMOCTL, SRC, read_columns, wait_until, write_columns
import test_qtomo_mpi as mpitest  # not its names: unittest would run QtomoMpiTest here too
from test_qtomo_mpi import ENV, MPI_ENV, QTOMO_MPI

SBATCH_SCRIPT = os.path.join(SRC, "packaging", "slurm", "qtomo-mpi.sbatch")
BELL4 = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel",
           "srun")


SBIN_PATH = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def why_not():
    """Why a private cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "not root (slurmd runs jobs as root here, SlurmUser=root)"
    missing = [d for d in DAEMONS if not shutil.which(d, path=SBIN_PATH)]
    if missing:
        return ("%s not installed (apt-get install slurmctld slurmd slurm-client munge)"
                % ", ".join(missing))
    if not os.access(QTOMO_MPI, os.X_OK):
        return "qtomo-mpi not built"
    return None


class Cluster:
    """munged, slurmctld and slurmd in the foreground, all files under one temporary dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="qtomo-slurm-")
        os.chmod(self.dir, 0o711)  # munged: the socket's directories must be searchable by all
        self.procs = []
        self.env = dict(os.environ, SLURM_CONF=self.path("slurm.conf"), PATH=SBIN_PATH)
        self.env.pop("SLURM_JOB_ID", None)
        for d, mode in (("key", 0o700), ("run", 0o755), ("state", 0o700), ("spool", 0o700),
                        ("log", 0o700)):
            os.mkdir(self.path(d), mode)
        # Job ids from a random start: the script's scratch directory is /tmp/$SLURM_JOB_ID.
        while True:
            self.first_job = random.randrange(10**6, 6 * 10**7)  # MaxJobId: 67043328
            if not os.path.exists("/tmp/%d" % self.first_job):
                break

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def log(self, name):
        try:
            with open(self.path("log", name), errors="replace") as f:
                return f.read()[-3000:]
        except OSError as e:
            return str(e)

    def logs(self):
        return "\n".join("--- %s\n%s" % (n, self.log(n)) for n in sorted(os.listdir(
            self.path("log"))))

    def spawn(self, name, argv):
        out = open(self.path("log", name + ".out"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             env=self.env, cwd=self.dir, start_new_session=True)
        out.close()
        self.procs.append((name, p))
        return p

    def write_conf(self):
        host = socket.gethostname().split(".")[0]
        conf = {
            "ClusterName": "qtomotest",
            "SlurmctldHost": "%s(127.0.0.1)" % host,
            "SlurmctldPort": free_port(),
            "SlurmdPort": free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": "socket=" + self.path("run", "munge.sock"),
            "CredType": "cred/munge",
            "StateSaveLocation": self.path("state"),
            "SlurmdSpoolDir": self.path("spool"),
            "SlurmctldPidFile": self.path("run", "slurmctld.pid"),
            "SlurmdPidFile": self.path("run", "slurmd.pid"),
            "SlurmctldLogFile": self.path("log", "slurmctld.log"),
            "SlurmdLogFile": self.path("log", "slurmd.log"),
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "MpiDefault": "none",  # Slurm's default: the script must ask for pmix itself
            "ReturnToService": 2,
            "FirstJobId": self.first_job,
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
        }
        with open(self.path("slurm.conf"), "w") as f:
            for k, v in conf.items():
                f.write("%s=%s\n" % (k, v))
            # Two CPUs whatever the machine has: two tasks share them if need be.
            f.write("NodeName=%s NodeAddr=127.0.0.1 CPUs=2 RealMemory=512 State=UNKNOWN\n"
                    % host)
            f.write("PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE State=UP\n" % host)

    def run(self, *argv, timeout=60):
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                              cwd=self.dir, timeout=timeout)

    def node_state(self):
        p = self.run("sinfo", "-h", "-o", "%T")
        return p.stdout.strip() if p.returncode == 0 else "sinfo: " + p.stderr.strip()

    def start(self):
        key = self.path("key", "munge.key")
        p = self.run("mungekey", "-c", "-k", key)
        if p.returncode:
            raise RuntimeError("mungekey: " + p.stderr)
        sock = self.path("run", "munge.sock")
        self.spawn("munged", ["munged", "-F", "-S", sock, "--key-file=" + key,
                              "--pid-file=" + self.path("run", "munged.pid"),
                              "--log-file=" + self.path("log", "munged.log"),
                              "--seed-file=" + self.path("key", "munged.seed")])
        if not wait_until(lambda: os.path.exists(sock) or self.procs[-1][1].poll() is not None,
                          60):
            raise RuntimeError("munged made no socket in 60 s\n" + self.logs())
        if self.procs[-1][1].poll() is not None:
            raise RuntimeError("munged exited\n" + self.logs())
        self.write_conf()
        conf = self.path("slurm.conf")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", conf])
        self.spawn("slurmd", ["slurmd", "-D", "-f", conf])
        if not wait_until(lambda: self.node_state() == "idle" or self.dead(), 120, 0.25):
            raise RuntimeError("the node is not idle after 120 s (%s)\n%s"
                               % (self.node_state(), self.logs()))
        if self.dead():
            raise RuntimeError("%s exited\n%s" % (self.dead(), self.logs()))

    def dead(self):
        return ", ".join(n for n, p in self.procs if p.poll() is not None)

    def stop(self):
        """Every job cancelled, every daemon ended (SIGTERM, SIGKILL after 30 s), dir removed."""
        try:
            if any(n == "slurmctld" and p.poll() is None for n, p in self.procs):
                self.run("scancel", "--full", "-u", "root")
                wait_until(lambda: not self.run("squeue", "-h").stdout.strip(), 60, 0.25)
        except (OSError, subprocess.SubprocessError):
            pass
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(30)
        shutil.rmtree(self.dir, True)


class SlurmTest(unittest.TestCase):
    maxDiff = 4000
    # The comparison of test_qtomo_mpi.py: byte for byte, run.json but for when and how.
    assertSameFiles = mpitest.QtomoMpiTest.assertSameFiles
    assertExit = mpitest.QtomoMpiTest.assertExit

    @classmethod
    def setUpClass(cls):
        why = why_not()
        if why:
            raise unittest.SkipTest(why)
        cls.cluster = Cluster()
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        p = cls.cluster.run("srun", "--mpi=list")
        if "pmix" not in p.stdout + p.stderr:
            raise unittest.SkipTest("Slurm has no PMIx plugin (srun --mpi=list: %s)"
                                    % (p.stdout + p.stderr).strip())

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qtomo-slurm-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def job_env(self):
        env = dict(MPI_ENV, SLURM_CONF=self.cluster.path("slurm.conf"),
                   PATH=os.path.dirname(os.path.abspath(QTOMO_MPI)) + ":" +
                   os.environ.get("PATH", "/usr/bin:/bin"))
        env.pop("TMPDIR", None)  # the script's own node-local scratch directory
        env["QTOMO_CACHE_DIR"] = self.path("cache")  # the node's projector cache
        for k in [k for k in env if k.startswith(("SLURM_", "SBATCH_"))]:
            if k != "SLURM_CONF":
                del env[k]
        return env

    def submit(self, ntasks, *args, wait=True, timeout=600):
        argv = ["sbatch", "--parsable", "--ntasks", str(ntasks), "--output",
                self.path("job-%j.out"), SBATCH_SCRIPT] + [str(a) for a in args]
        if wait:
            argv.insert(1, "--wait")
        p = subprocess.run(argv, capture_output=True, env=self.job_env(), cwd=self.tmp,
                           timeout=timeout)
        return p, p.stdout.decode().strip().split(";")[0]

    def job_output(self, job):
        try:
            with open(self.path("job-%s.out" % job), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sbatch(self, ntasks, *args, timeout=600):
        """The script through sbatch --wait; its job's output file's text."""
        p, job = self.submit(ntasks, *args, timeout=timeout)
        return p, job, self.job_output(job)

    @staticmethod
    def ranks(job):
        """The live qtomo-mpi processes of a job (other tests' runs may be going on)."""
        found = []
        for pid in subprocess.run(["pgrep", "-f", QTOMO_MPI], capture_output=True,
                                  text=True).stdout.split():
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if ("SLURM_JOB_ID=%s" % job).encode() in env:
                found.append(int(pid))
        return found

    def local(self, path, out, opts):
        p = subprocess.run([QTOMOCTL, "reconstruct", path, "--local", "-o", out] + opts,
                           capture_output=True, env=ENV, timeout=600)
        self.assertExit(p, 0, "--local")

    def assertJobOk(self, p, text):
        self.assertEqual(p.returncode, 0, "sbatch --wait: exit %d\n%s\njob output:\n%s\n%s"
                         % (p.returncode, p.stderr.decode(errors="replace"), text[-3000:],
                            self.cluster.logs()))

    def test_sbatch_equals_local(self):
        path = self.path("big.csv")
        write_columns(path, read_columns(BELL4, str) * 100)  # 400 samples
        opts = ["--method", "linear,mle"]
        ref = self.path("local")
        self.local(path, ref, opts)
        out = self.path("out")
        p, job, text = self.sbatch(2, path, out, *opts)
        self.assertJobOk(p, text)
        # One run of two ranks, not two runs of one: a single summary in the job's output.
        self.assertEqual(text.count("sample(s):"), 1, text[-3000:])
        self.assertIn("400 sample(s): 400 ok", text)
        self.assertSameFiles(out, ref, "sbatch --ntasks 2")
        self.assertFalse(os.path.exists("/tmp/%s" % job), "the job's scratch dir is left")
        # the projectors came from the node's cache, which outlives the job
        self.assertTrue(os.path.exists(self.path("cache", "nopovm-d4.qtpc")),
                        os.listdir(self.tmp))

    def test_scancel_then_resume_is_identical(self):
        # The script's documented recovery: the job ends half way (scancel here), the same
        # script submitted again with --resume writes an uninterrupted run's files.
        path = self.path("big.csv")
        write_columns(path, read_columns(BELL4, str) * 500)  # 2000 samples
        opts = ["--method", "linear,mle,rhor"]
        ref = self.path("local")
        self.local(path, ref, opts)
        out = self.path("out")
        p, job = self.submit(2, path, out, *opts, wait=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        rec = os.path.join(out, "records.jsonl")
        running = lambda: bool(self.cluster.run("squeue", "-h", "-j", job).stdout.strip())
        self.assertTrue(wait_until(lambda: mpitest.count_lines(rec) >= 300 or not running(),
                                   300, 0.05), "no records after 300 s")
        self.assertTrue(running(), "the job ended before it could be cancelled:\n"
                        + self.job_output(job))
        self.assertTrue(self.ranks(job), "no qtomo-mpi process with SLURM_JOB_ID=" + job)
        self.assertEqual(self.cluster.run("scancel", job).returncode, 0)
        self.assertTrue(wait_until(lambda: not running() and not self.ranks(job), 120, 0.1),
                        "the cancelled job's ranks still run: %r" % self.ranks(job))
        self.assertLess(mpitest.count_lines(rec), 2000 * 3, "cancelled, yet every record is there")
        self.assertFalse(os.path.exists(os.path.join(out, "summary.csv")))
        p, job, text = self.sbatch(2, path, out, *opts, "--resume")
        self.assertJobOk(p, text)
        self.assertIn("(resumed)", text)
        for f in ("records.jsonl", "summary.csv"):
            with open(os.path.join(out, f), "rb") as x, open(os.path.join(ref, f), "rb") as y:
                xa, yb = x.read(), y.read()
            if xa != yb:
                self.fail("%s after --resume differs from an uninterrupted run's: %s"
                          % (f, mpitest.first_difference(xa, yb)))

    def test_sbatch_bad_invocation_fails_the_job(self):
        p, _, text = self.sbatch(2, self.path("missing.csv"), self.path("out"))
        self.assertNotEqual(p.returncode, 0, text)
        self.assertIn("qtomo-mpi: ", text)


if __name__ == "__main__":
    unittest.main()
