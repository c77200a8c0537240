#!/usr/bin/python3
"""Cache faults: batches run (nopovm d = 4, linear,mle) while the cache file they use is damaged
again and again in the daemon's cache directory: truncated (also under a running item), header
bytes flipped, each section flipped in place and by write-temp+rename, replaced by a foreign
valid cache file (mub d = 4), random bytes in place and by rename, unlinked; after each fault the
workers are made to open the file again (a rolling reload, or SIGKILL of an idle worker), so
that damage renamed into place is seen too. Faults are injected one at a time: the next only
after the daemon's log told of the last one (moved aside, changed under a worker, or rebuilt)
and the file is back, byte for byte as the clean build. Every sample must come back exactly
once with the clean run's result, every fault must be logged and the file rebuilt, and the
daemon must stay up. Not a test by itself (tests/integration runs a short version): a
measurement with figures for tests/reliability/README.md. Bounded in faults and time.

    tests/reliability/cache_faults.py [--qtomod BUILD/daemon/qtomod] [--faults 200]
        [--batch 400] [--seconds 300] [--seed 1] [--json]

Results are compared after a msgpack round trip, so "identical" means bit for bit.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import children, columns, wait_until, wait_workers  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import qtomo_client as q  # noqa: E402

EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")
METHODS = ("linear", "mle")
NAME = "nopovm-d4.qtpc"
FOREIGN = "mub-d4.qtpc"
# What the daemon logs when it notices a damaged file, and when it has built one. A worker that
# finds its mapping changed says so ("...changed (...); moved aside" or "; already moved aside
# ..." when another worker moved it first, which may itself have been killed right after).
NOTICED = ("aside to quarantine", "changed under it", "; moved aside", "; already moved aside")
BUILT = "cache: built " + NAME


class Daemon:
    def __init__(self, qtomod, workers):
        self.dir = tempfile.mkdtemp(prefix="qtomo-cachefaults-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.cache = os.path.join(self.dir, "cache")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([qtomod, "--config", "/dev/null", "--socket", self.sock,
                                      "--cache-dir", self.cache, "--workers", str(workers),
                                      # only batch workers: force_reopen kills an idle worker
                                      # so that a new one maps the file, and an interactive
                                      # worker, idle during batches, would never map it
                                      "--interactive-workers", "0", "--log-level", "6"],
                                     stderr=self.log, stdout=self.log)
        wait_workers(q, self.sock, workers)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(60)


def sections(data):
    """(offset, size) of each section, from the header (src/cache/FORMAT.md)."""
    n = struct.unpack_from("<I", data, 236)[0]
    return [struct.unpack_from("<IIQQQ", data, 240 + 32 * i)[2:4] for i in range(n)]


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 0x40
    return bytes(b)


def put_in_place(path, data):
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))


def put_by_rename(path, data):
    tmp = path + ".inject"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def faults(clean, foreign):
    """(name, action(path, rnd)) for each kind of fault; the sections' are one per section."""
    out = [("truncate", lambda p, r: os.truncate(p, r.randrange(0, len(clean)))),
           ("header_in_place", lambda p, r: put_in_place(p, flip(clean, r.randrange(8, 240)))),
           ("foreign_rename", lambda p, r: put_by_rename(p, foreign)),
           ("random_in_place", lambda p, r: put_in_place(p, r.randbytes(len(clean)))),
           ("random_rename", lambda p, r: put_by_rename(p, r.randbytes(len(clean)))),
           ("unlink", lambda p, r: os.unlink(p))]
    for k, (off, size) in enumerate(sections(clean)):
        def bad(r, off=off, size=size):
            return flip(clean, off + r.randrange(size))
        out.append(("section%d_in_place" % k, lambda p, r, bad=bad: put_in_place(p, bad(r))))
        out.append(("section%d_rename" % k, lambda p, r, bad=bad: put_by_rename(p, bad(r))))
    return out


class Batches(threading.Thread):
    """Submits the same batch again and again until stopped; compares each with the clean run."""

    def __init__(self, sock, cols, ref):
        super().__init__()
        self.sock, self.cols, self.ref = sock, cols, ref
        self.stop = threading.Event()
        self.fig = {"batches": 0, "samples": 0, "lost": 0, "duplicated": 0, "errors": 0,
                    "wrong": 0, "failures": []}

    def run(self):
        f = self.fig
        try:
            with q.Client(self.sock, timeout=600, numpy=False) as c:
                while not self.stop.is_set():
                    got = {}
                    for idx, res in c.submit(self.cols, design="nopovm", methods=METHODS):
                        f["duplicated"] += idx in got
                        got[idx] = res
                    f["batches"] += 1
                    f["samples"] += len(got)
                    f["lost"] += sum(1 for i in range(len(self.cols)) if i not in got)
                    for i, r in got.items():
                        if any(m["status"] != "ok" for m in r):
                            f["errors"] += 1
                            if len(f["failures"]) < 5:
                                f["failures"].append([m.get("error") for m in r])
                        elif r != self.ref[i]:
                            f["wrong"] += 1
        except Exception as e:  # noqa: BLE001 (a broken connection is a failure, reported)
            f["failures"].append(repr(e))
            f["errors"] += 1


def force_reopen(d, c, rnd, fig):
    """New workers map the file: a rolling reload, or SIGKILL of an idle worker. When no worker
    is idle (a loaded machine keeps both busy), a reload: otherwise nothing would open the file
    again, and damage to a copy no worker maps would wait for the next natural reopen."""
    if rnd.random() >= 0.5:
        idle = [w["pid"] for w in c.stats()["workers"] if w["state"] == "idle"]
        if idle:
            try:
                os.kill(rnd.choice(idle), signal.SIGKILL)
                fig["idle_kills"] += 1
                return
            except ProcessLookupError:
                pass
    c.reload()
    fig["reloads"] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--notice-timeout", type=float, default=20,
                    help="seconds a fault may go unnoticed (unlogged) before it counts as such")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    cols = columns(a.batch)
    d = Daemon(a.qtomod, a.workers)
    path = os.path.join(d.cache, NAME)
    fig = {"faults": 0, "by_kind": {}, "logged": 0, "unlogged": [], "rebuilt": 0,
           "not_rebuilt": [], "reloads": 0, "idle_kills": 0}
    with q.Client(d.sock, timeout=600, numpy=False) as c:
        t0 = time.time()
        ref = dict(c.submit(cols, design="nopovm", methods=METHODS))
        clean_s = time.time() - t0
        c.cache_warm([("mub", 4)])
        with open(path, "rb") as f:
            clean = f.read()
        with open(os.path.join(d.cache, FOREIGN), "rb") as f:
            foreign = f.read()
        kinds = faults(clean, foreign)
        b = Batches(d.sock, cols, ref)
        b.start()
        end = time.time() + a.seconds
        while fig["faults"] < a.faults and time.time() < end and d.proc.poll() is None \
                and b.is_alive():
            name, act = kinds[fig["faults"] % len(kinds)]
            log0 = d.logtext()
            noticed0 = sum(log0.count(s) for s in NOTICED)
            built0 = log0.count(BUILT)
            try:
                act(path, rnd)
            except FileNotFoundError:
                continue  # the file is being rebuilt: try again
            fig["faults"] += 1
            fig["by_kind"][name] = fig["by_kind"].get(name, 0) + 1

            def noticed():
                t = d.logtext()
                if name == "unlink":  # nothing to move aside: a new worker builds it
                    return t.count(BUILT) > built0
                return sum(t.count(s) for s in NOTICED) > noticed0

            force_reopen(d, c, rnd, fig)
            if wait_until(noticed, a.notice_timeout):
                fig["logged"] += 1
            else:
                fig["unlogged"].append(name)

            def back():
                try:
                    with open(path, "rb") as f:
                        return f.read() == clean
                except FileNotFoundError:
                    return False

            # Until the file is back: in-place damage is seen by the running batches, renamed
            # damage by workers that map it afresh.
            ok = False
            for _ in range(10):
                if wait_until(back, 2):
                    ok = True
                    break
                force_reopen(d, c, rnd, fig)
            if ok:
                fig["rebuilt"] += 1
            else:
                fig["not_rebuilt"].append(name)
            # One fault at a time: two more whole batches on the rebuilt file before the next
            # (a second fault while a worker is still mapping the rebuilt file is another
            # scenario: the worker gives up after two tries and the chunk fails with checksum).
            n = b.fig["batches"]
            wait_until(lambda: b.fig["batches"] >= n + 2 or not b.is_alive(), 30)
        b.stop.set()
        b.join(600)
    alive = d.proc.poll() is None
    st = {}
    if alive:
        with q.Client(d.sock, timeout=30) as c:
            st = c.stats()["totals"]
    log = d.logtext()
    fig.update(b.fig)
    fig.update({"daemon_up": alive, "clean_batch_s": round(clean_s, 2),
                "quarantined": log.count("aside to quarantine"),
                "changed_under_worker": log.count("changed under it"),
                "built": log.count(BUILT), "totals": st,
                # workers that died mid-item other than by our SIGKILL of a worker that had
                # just become busy (those count as crashes in the daemon's totals)
                "died_otherwise": sum(1 for ln in log.splitlines()
                                      if "died during an item" in ln and ", 9)" not in ln)})
    fig["exit"] = d.stop() if alive else d.proc.returncode
    d.log.close()
    promise = (alive and fig["exit"] == 0 and fig["lost"] == 0 and fig["duplicated"] == 0
               and fig["died_otherwise"] == 0
               and fig["wrong"] == 0 and fig["errors"] == 0 and not fig["unlogged"]
               and not fig["not_rebuilt"] and fig["faults"] > 0)
    if a.json:
        print(json.dumps(fig))
    else:
        print("cache faults: %(faults)d faults (%(logged)d logged, %(rebuilt)d rebuilt), "
              "%(batches)d batches, %(samples)d samples: %(lost)d lost, %(duplicated)d "
              "duplicated, %(wrong)d wrong, %(errors)d errors; daemon up %(daemon_up)s "
              "(exit %(exit)s); quarantined %(quarantined)d, changed under a worker "
              "%(changed_under_worker)d, built %(built)d; workers dead mid-item other than by our "
              "SIGKILL %(died_otherwise)d; totals %(totals)s" % fig)
        print("re-opens forced: %(reloads)d rolling reloads, %(idle_kills)d SIGKILLs of idle "
              "workers (a worker that turned busy meanwhile counts as a crash in the totals); "
              "clean batch %(clean_batch_s)s s" % fig)
        print("by kind: %s" % json.dumps(fig["by_kind"]))
        if fig["unlogged"] or fig["not_rebuilt"] or fig["failures"]:
            print("unlogged %s, not rebuilt %s, failures %s"
                  % (fig["unlogged"], fig["not_rebuilt"], fig["failures"]))
    if not promise:
        print("cache faults: the promise broke; log in %s" % d.dir, file=sys.stderr)
    else:
        shutil.rmtree(d.dir, ignore_errors=True)
    return 0 if promise else 1


if __name__ == "__main__":
    sys.exit(main())
