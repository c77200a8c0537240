#!/usr/bin/python3
"""cpu_split.py: CPU time per sample of the supervisor, each worker and the client (the frame
reader of bench_daemon.py) during one large submit, from /proc/<pid>/stat (utime + stime)
before and after; workers that exit during the batch (recycling) are counted through the
supervisor's cutime + cstime. Not a test: a tool for the 2-core budget of issue 19.

    OPENBLAS_CORETYPE=Haswell /usr/bin/python3 tests/bench/cpu_split.py \
        --case nopovm,4,linear+mle --n 20000 --workers 1,2 --runs 3 [--extra "--chunk 16"]
"""
import os, sys, time, json, argparse, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_daemon as B

def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    x = s[s.rindex(")") + 2:].split()
    return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")

def cticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    x = s[s.rindex(")") + 2:].split()
    return (int(x[13]) + int(x[14])) / os.sysconf("SC_CLK_TCK")

def children(pid):
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "release"))
ap.add_argument("--case", default="nopovm,4,linear+mle")
ap.add_argument("--n", type=int, default=20000)
ap.add_argument("--workers", default="1,2")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--extra", default="")
a = ap.parse_args()
design, d, m = a.case.split(",")
d = int(d); methods = tuple(m.split("+"))
data = B.load_data(B.DEFAULT_REFDATA)
cols = B.replicate(data[(design, d)], a.n)
env = dict(os.environ)
for w in [int(x) for x in a.workers.split(",")]:
    with B.Daemon(a.build + "/daemon/qtomod", w, env, a.extra.split() if a.extra else ()) as dmn:
        B.warm_daemon(dmn, {(design, d): data[(design, d)]}, 8)
        rates = []
        for r in range(a.runs):
            with dmn.client() as c:
                sup = dmn.proc.pid
                wk = wk0 = children(sup)
                me = os.getpid()
                t0 = {p: ticks(p) for p in [sup, me] + wk}
                ct0 = cticks(sup)
                c0 = time.process_time()
                w0 = time.perf_counter()
                got, bad, totals, _, _ = B.submit_frames(c, cols, design, d, methods)
                el = time.perf_counter() - w0
                c1 = time.process_time()
                wk2 = children(sup)
                t1 = {}
                for p in set(wk2) - set(wk):
                    t0[p] = 0.0
                wk = sorted(set(wk) | set(wk2))
                for p in [sup] + wk:
                    try: t1[p] = ticks(p)
                    except OSError: t1[p] = None
                assert got == a.n and not bad, (got, bad)
                us = lambda x: "%.1f" % (x * 1e6 / a.n)
                wcpu = [t1[p] - t0[p] for p in wk if t1[p] is not None]
                wsum = sum(wcpu) + cticks(sup) - ct0 - sum(t0[p] for p in wk if t1[p] is None)
                rates.append(a.n / el)
                print("%s w%d run%d: %.0f samples/s (%.2fs); CPU us/sample: sup %s client %s workers %s (all workers %s; total %s) (recycled: %s)" % (
                    a.case, w, r, a.n / el, el, us(t1[sup] - t0[sup]), us(c1 - c0),
                    "+".join(us(x) for x in wcpu), us(wsum), us(wsum + t1[sup] - t0[sup] + c1 - c0), sorted(set(wk2) - set(wk0)) and "yes" or "no"), flush=True)
        print("%s w%d median %.0f samples/s" % (a.case, w, statistics.median(rates)), flush=True)
