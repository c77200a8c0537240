"""What the campaign scripts in tests/reliability share: the example data, readings from /proc
and waiting for a condition. Not a test by itself."""
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")


def columns(n=None):
    """The bundled example's columns (nopovm d = 4): all of them, or n cycling through them."""
    rows = [[float(x) for x in line.split(",")] for line in open(EX)]
    cols = [list(c) for c in zip(*rows)]
    return cols if n is None else [cols[i % len(cols)] for i in range(n)]


def children(pid):
    """The pids of a process's children (a supervisor's workers); [] once it is gone."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def rss_kb(pid):
    """A process's resident memory in KiB; 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def wait_until(pred, timeout, step=0.02):
    """True as soon as pred() is; after timeout seconds, pred()'s last answer."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# qtomod's default --interactive-workers: the harnesses run the default pool, whose status counts
# the batch workers (--workers) and the interactive ones.
INTERACTIVE_WORKERS = 1


def pool_size(workers):
    """Live workers of a qtomod started with --workers `workers` and defaults otherwise."""
    return workers + INTERACTIVE_WORKERS


def wait_workers(client_mod, sock, workers, timeout=30):
    """Waits until the daemon on sock answers status with `workers` live workers (the whole
    pool: see pool_size); client_mod is qtomo_client. RuntimeError after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with client_mod.Client(sock, timeout=10) as c:
                if c.status()["n_workers"] == workers:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("qtomod did not start")
