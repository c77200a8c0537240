#!/usr/bin/python3
"""Out of memory: the whole daemon runs in a memory-limited cgroup whose limit leaves room for
the supervisor, idle workers and small samples but not for a large-d sample. While a batch of
small samples (nopovm d = 4, linear,mle) runs, large samples (nopovm d = --big-dim, mle) make
their workers exceed the limit and the kernel's OOM killer kill them (a worker's oom_score_adj
is 500, the supervisor's 0). Every killed worker must be replaced, each large sample must end
with one honest answer (worker_crashed after 8 workers killed, "out of memory?"; deadline when
its worker, starved of page cache, ran past the item deadline; or a result if it fitted), at
least one worker must have been OOM-killed (else the scenario did not happen), every small sample must come back exactly once with the clean run's result, and
the daemon must stay up and exit 0 on SIGTERM.

cgroup v2 (memory.max, memory.swap.max) or v1 (memory.limit_in_bytes, memory.memsw.*): a child
of the cgroup this script runs in, removed at the end. When the machine does not allow it (no
memory controller, not writable, not root), prints why and exits 77 (skipped).

    tests/reliability/oom.py [--qtomod BUILD/daemon/qtomod] [--mode auto|hook|big-dim]
        [--big 3] [--big-dim 128] [--headroom-mb 40] [--samples 2000] [--seconds 300] [--json]

With a test-hook build (auto) the large samples are QD_HOOK_ALLOC samples, which allocate
until killed; otherwise real large-d samples, whose memory depends on the estimator (see the
figures in tests/reliability/README.md).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import columns, pool_size, wait_until  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import qtomo_client as q  # noqa: E402

EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")
METHODS = ("linear", "mle")
DEADLINE = -32002  # proto/SCHEMA.md: the item passed its deadline
HOOK_ALLOC = -6.5e300  # daemon/qd.h QD_HOOK_ALLOC (test-hook builds only)


def anon_bytes(pid):
    """Anonymous memory of pid and its children (the supervisor and its workers)."""
    total = 0
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids = [pid] + [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for ln in f:
                    if ln.startswith("RssAnon:"):
                        total += int(ln.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


class Cgroup:
    """A child memory cgroup of our own (v2 or v1); raises OSError/RuntimeError with the
    reason when the machine does not allow one."""

    def __init__(self, name):
        with open("/proc/self/cgroup") as f:
            lines = [ln.rstrip("\n").split(":", 2) for ln in f]
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2) and "memory" in open(v2).read().split():
            self.v = 2
            own = [p for h, c, p in lines if h == "0"][0]
            parent = "/sys/fs/cgroup" + own
            if "memory" not in open(os.path.join(parent, "cgroup.subtree_control")).read():
                with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                    f.write("+memory")  # fails when our cgroup has processes of its own
        else:
            mem = [p for h, c, p in lines if "memory" in c.split(",")]
            if not mem or not os.path.isdir("/sys/fs/cgroup/memory"):
                raise RuntimeError("no cgroup memory controller (neither v2 nor v1 mounted)")
            self.v = 1
            parent = "/sys/fs/cgroup/memory" + mem[0]
        self.path = os.path.join(parent, name)
        os.mkdir(self.path)

    def _write(self, f, v):
        with open(os.path.join(self.path, f), "w") as fh:
            fh.write(str(v))

    def _read(self, f):
        with open(os.path.join(self.path, f)) as fh:
            return fh.read()

    def usage(self):
        return int(self._read("memory.current" if self.v == 2 else "memory.usage_in_bytes"))

    def limit(self, n):
        if self.v == 2:
            self._write("memory.max", n)
            if os.path.exists(os.path.join(self.path, "memory.swap.max")):
                self._write("memory.swap.max", 0)
        else:
            self._write("memory.limit_in_bytes", n)
            if os.path.exists(os.path.join(self.path, "memory.memsw.limit_in_bytes")):
                self._write("memory.memsw.limit_in_bytes", n)

    def oom_kills(self):
        text = self._read("memory.events" if self.v == 2 else "memory.oom_control")
        for ln in text.splitlines():
            k, _, v = ln.partition(" ")
            if k == "oom_kill":
                return int(v)
        return -1  # this kernel does not count them

    def join(self):
        """For preexec_fn: moves the calling (child) process in."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def remove(self):
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--big", type=int, default=3, help="large samples sent, one after another")
    ap.add_argument("--big-dim", type=int, default=128)
    ap.add_argument("--headroom-mb", type=float, default=40,
                    help="the limit: the daemon's anonymous memory after start-up plus this "
                         "(room for libraries and cache pages; a d = 128 mle needs ~68 MB of "
                         "its own)")
    ap.add_argument("--samples", type=int, default=2000, help="small samples in the batch")
    ap.add_argument("--mode", choices=("auto", "hook", "big-dim"), default="auto",
                    help="hook: the large samples are QD_HOOK_ALLOC samples (test-hook builds: "
                         "they allocate until killed, quickly); big-dim: real nopovm d = "
                         "--big-dim mle samples; auto: hook when the binary has test hooks")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("oom: skipped: needs root to create a memory cgroup")
        return 77
    try:
        cg = Cgroup("qtomo-oom-%d" % os.getpid())
    except (OSError, RuntimeError, IndexError) as e:
        print("oom: skipped: this machine does not give a memory-limited cgroup: %s" % e)
        return 77
    if a.mode == "auto":
        with open(a.qtomod, "rb") as f:
            a.mode = "hook" if b"QTOMO_TEST_HOOKS_ENABLED" in f.read() else "big-dim"
    tmp = tempfile.mkdtemp(prefix="qtomo-oom-")
    sock = os.path.join(tmp, "s.sock")
    log = open(os.path.join(tmp, "log"), "w+")
    fig = {"cgroup": "v%d" % cg.v, "mode": a.mode, "broke": []}
    env = dict(os.environ, QTOMO_TEST_HOOK_ALLOC_MB="2048")
    proc = None
    try:
        proc = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock,
                                 "--cache-dir", os.path.join(tmp, "cache"),
                                 "--workers", str(a.workers), "--log-level", "6",
                                 "--max-dim", str(max(64, a.big_dim)),
                                 "--item-timeout-ms", str(int(a.seconds * 1000))],
                                stdout=log, stderr=log, preexec_fn=cg.join, env=env)

        def ready():
            try:
                with q.Client(sock, timeout=10) as c:
                    return c.status()["n_workers"] == pool_size(a.workers)
            except OSError:
                return False
        if not wait_until(ready, 30):
            raise RuntimeError("qtomod did not start")
        cols = columns(a.samples)
        rnd = random.Random(64)
        if a.mode == "hook":
            big, big_design = [HOOK_ALLOC] + columns(1)[0][1:], ("nopovm", ("linear",))
        else:
            big = [float(rnd.randint(10, 500)) for _ in range(a.big_dim ** 2)]
            big_design = ("nopovm", ("mle",))
        with q.Client(sock, timeout=600, numpy=False) as c:
            ref = dict(c.submit(cols, design="nopovm", methods=METHODS))
            if a.mode == "big-dim":
                c.cache_warm([("nopovm", a.big_dim)])  # the file is built before the limit
            base = anon_bytes(proc.pid)
            limit = base + int(a.headroom_mb * 2 ** 20)
            fig["usage_before_mb"] = round(cg.usage() / 2 ** 20, 1)  # page cache included
            cg.limit(limit)
            fig.update({"anon_before_mb": round(base / 2 ** 20, 1),
                        "limit_mb": round(limit / 2 ** 20, 1)})
            kills0 = cg.oom_kills()
            small = {"lost": 0, "duplicated": 0, "errors": 0, "wrong": 0, "failures": []}

            def batch():
                got = {}
                try:
                    with q.Client(sock, timeout=600, numpy=False) as c2:
                        for idx, res in c2.submit(cols, design="nopovm", methods=METHODS):
                            small["duplicated"] += idx in got
                            got[idx] = res
                except Exception as e:  # noqa: BLE001 (reported as a failure)
                    small["failures"].append(repr(e))
                small["lost"] = sum(1 for i in range(len(cols)) if i not in got)
                for i, r in got.items():
                    if any(m["status"] != "ok" for m in r):
                        small["errors"] += 1
                        if len(small["failures"]) < 5:
                            small["failures"].append([m.get("error") for m in r])
                    elif r != ref[i]:
                        small["wrong"] += 1
            th = threading.Thread(target=batch)
            t0 = time.time()
            th.start()
            answers = []
            for _ in range(a.big):
                if time.time() - t0 > a.seconds:
                    break
                t1 = time.time()
                try:
                    r = c.reconstruct(big, design=big_design[0], methods=big_design[1],
                                      timeout_ms=int(a.seconds * 1000))
                    res = r["results"][0]
                    answers.append({"status": res["status"], "error": res.get("error"),
                                    "s": round(time.time() - t1, 1)})
                except q.QtomoError as e:
                    answers.append({"status": "request error", "error": [e.code, e.message]})
            th.join(a.seconds)
            fig["batch_s"] = round(time.time() - t0, 1)
            fig["big"] = answers
            fig["small"] = small
            fig["oom_kills"] = cg.oom_kills() - kills0 if kills0 >= 0 else None
            fig["daemon_up"] = proc.poll() is None
            if fig["daemon_up"]:
                fig["workers_after"] = c.status()["n_workers"]
                fig["totals"] = c.stats()["totals"]
                r = c.reconstruct(cols[0], design="nopovm", methods=METHODS)
                fig["fresh_sample_ok"] = r["results"] == ref[0]
        text = open(log.name).read()
        fig["logged_oom"] = text.count("possible OOM kill")
        if not fig["daemon_up"]:
            fig["broke"].append("daemon down")
        if th.is_alive():
            fig["broke"].append("the small batch did not end")
        if any(small[k] for k in ("lost", "duplicated", "errors", "wrong")):
            fig["broke"].append("small samples lost, duplicated, failed or wrong")
        if len(answers) != a.big:
            fig["broke"].append("large samples unanswered")
        for ans in answers:
            if ans["status"] != "ok" and (ans["status"] != "error" or
                                          ans["error"]["code"] not in (q.WORKER_CRASHED,
                                                                       DEADLINE)):
                fig["broke"].append("a large sample got %s" % ans)
        if fig["daemon_up"] and (fig.get("workers_after") != pool_size(a.workers) or
                                 not fig.get("fresh_sample_ok")):
            fig["broke"].append("workers not replaced or a fresh sample failed")
        if not fig["oom_kills"] and not fig["logged_oom"]:
            fig["broke"].append("no worker was OOM-killed: lower --headroom-mb or raise "
                                "--big-dim")
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            fig["exit"] = proc.wait(60)
        elif proc:
            fig["exit"] = proc.returncode
        log.close()
        cg.remove()
    if fig.get("exit") != 0:
        fig["broke"].append("daemon exit %s" % fig.get("exit"))
    if a.json:
        print(json.dumps(fig))
    else:
        print("oom: cgroup %s, limit %s MB (anonymous %s MB, with page cache %s MB after "
              "start-up); %d large samples "
              "(%s, d = %d): %s; OOM kills %s (log: %d); small batch of %d: %s; daemon up %s, "
              "%s workers after, exit %s; totals %s"
              % (fig["cgroup"], fig.get("limit_mb"), fig.get("anon_before_mb"),
                 fig.get("usage_before_mb"), a.big, a.mode,
                 4 if a.mode == "hook" else a.big_dim, fig.get("big"), fig.get("oom_kills"),
                 fig.get("logged_oom", 0),
                 a.samples, fig.get("small"), fig.get("daemon_up"), fig.get("workers_after"),
                 fig.get("exit"), fig.get("totals")))
        if fig["broke"]:
            print("oom: BROKE: %s" % fig["broke"])
    if fig["broke"]:
        print("oom: log in %s" % tmp, file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
