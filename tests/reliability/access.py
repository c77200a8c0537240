#!/usr/bin/python3
"""Access: who may talk to qtomod and what a request can make it open.

1. The socket: qtomod binds it with `socket-mode` 0660 and `socket-group`; a peer in that group
   connects, a peer outside it (uid nobody, another gid, no supplementary groups) gets EACCES.
2. Admin methods (every method proto/SCHEMA.md's table marks `yes`): a connected peer that is
   not admin gets permission_denied (-32005) for each; a non-admin method still works.
3. Paths: requests carrying design names, design ids, cache ids and design texts with `../`,
   absolute paths, NUL bytes, newlines and very long names, all containing a marker, are sent
   while `strace -f -e trace=%file` follows the supervisor and every worker: no file-name
   system call may name the marker outside the cache directory (files with the marker in
   their names exist next to it, to be found if anything tried; a well-formed cache key such as
   `custom-qtmark…` looked up by name relative to the cache directory's descriptor is counted,
   not a failure), no call may name a `..` component, every request must be answered, and the
   daemon must still answer status afterwards. Paths the daemon named outside its cache
   directory and the system's own places are listed.

Needs root (to run peers as nobody with setpriv and to trace the daemon); otherwise prints why
and exits 77 (skipped). Not a test by itself (tests/integration runs it with --quick).

    tests/reliability/access.py [--qtomod BUILD/daemon/qtomod] [--rounds 20] [--quick] [--json]
"""
import argparse
import grp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import children, pool_size, wait_until  # noqa: E402
CLIENT = os.path.join(REPO, "client", "python")
sys.path.insert(0, CLIENT)
import qtomo_client as q  # noqa: E402

MARK = "qtmark"
PERMISSION_DENIED = -32005  # proto/SCHEMA.md
NOBODY = 65534
# Places any process may name (libraries, its own /proc, devices, configuration).
SYSTEM = ("/proc/", "/sys/", "/dev/", "/etc/", "/usr/", "/lib", "/run/systemd/")
# A peer's probe, run as another user: connect, then each method given; prints a JSON line.
PEER = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[2])
import qtomo_client as q
out = {}
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    out["connect"] = "ok"
except OSError as e:
    out["connect"] = e.__class__.__name__
    print(json.dumps(out)); sys.exit(0)
s.close()
c = q.Client(sys.argv[1], timeout=30, numpy=False)
for m in json.loads(sys.argv[3]):
    params = {"cache.evict": {"design": "nopovm", "d": 4}}.get(m, {})
    try:
        c._call(m, params)
        out[m] = "ok"
    except q.QtomoError as e:
        out[m] = e.code
print(json.dumps(out))
"""


def admin_methods():
    """The methods proto/SCHEMA.md's method table marks admin."""
    with open(os.path.join(REPO, "proto", "SCHEMA.md")) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[2] == "yes" and "request" in cells[1]:
                return re.findall(r"`([^`]+)`", cells[0])
    raise RuntimeError("no admin row in proto/SCHEMA.md")


def peer(sock, uid, gid, methods):
    out = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                          "/usr/bin/python3", "-c", PEER, sock, CLIENT, json.dumps(methods)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("peer probe failed: " + out.stderr[-1000:])
    return json.loads(out.stdout)


def hostile_names(rounds):
    base = ["../../../../../../tmp/" + MARK, "/tmp/" + MARK, "/etc/passwd\0" + MARK,
            MARK + "\0../../x", "../" * 40 + MARK, MARK + "/" + "../" * 8 + "etc/shadow",
            "nopovm/../../" + MARK, "custom-../" + MARK, "custom-" + "0" * 32 + "/../" + MARK,
            "custom-" + MARK + "0" * 26, "%2e%2e%2f" + MARK, MARK + "\n../x", "./" + MARK,
            "~/" + MARK, MARK * 400, "a" * 70000 + MARK, "\u2025/" + MARK, "..\\" + MARK,
            MARK + ".qtpc", MARK + "-d4.qtpc", "quarantine/../../" + MARK, "locks/" + MARK]
    return (base * max(1, rounds // 10))[:max(len(base), rounds * 2)]


def requests(c, names):
    """Every request that carries a name the daemon could be tempted to open; each must be
    answered (a result or an error)."""
    fig = {"requests": 0, "answered": 0, "ok": 0, "codes": {}}
    values = [0.5, 0.5, 1.0, 0.0, 0.5, 0.5]
    for n in names:
        calls = [("reconstruct", {"values": values, "design": n, "methods": ["linear"]}),
                 ("reconstruct", {"values": values, "design": "custom", "design_id": n,
                                  "methods": ["linear"]}),
                 ("cache.evict", {"design": n, "d": 4}),
                 ("cache.verify", {"design": n, "d": 4}),
                 ("cache.warm", {"items": [{"design": n, "d": 4}]}),
                 ("design.put", {"design": json.dumps(
                     {"name": n, "dim": 2,
                      "vectors": {"re": [[1, 0], [0, 1], [0.7071067811865476, 0.7071067811865476],
                                         [0.7071067811865476, -0.7071067811865476],
                                         [0.7071067811865476, 0], [0.7071067811865476, 0]],
                                  "im": [[0, 0], [0, 0], [0, 0], [0, 0],
                                         [0, 0.7071067811865476], [0, -0.7071067811865476]]},
                      "groups": [0, 0, 1, 1, 2, 2]})})]
        for m, p in calls:
            fig["requests"] += 1
            if m == "reconstruct":
                p = dict(p, values=q.values_array(p["values"]))
            try:
                c._call(m, p)
                fig["ok"] += 1
                fig["answered"] += 1
            except q.QtomoError as e:
                fig["answered"] += 1
                k = "%s %d" % (m, e.code)
                fig["codes"][k] = fig["codes"].get(k, 0) + 1
    # Submits too (the batch path), and a hello with the marker as client name.
    for n in names[:4]:
        fig["requests"] += 1
        try:
            list(c.submit([values], design="custom", design_id=n, methods=("linear",)))
            fig["ok"] += 1
        except q.QtomoError as e:
            k = "submit %d" % e.code
            fig["codes"][k] = fig["codes"].get(k, 0) + 1
        fig["answered"] += 1
    return fig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--rounds", type=int, default=20, help="hostile names: about 2 x rounds")
    ap.add_argument("--quick", action="store_true", help="the integration test's short run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("access: skipped: needs root (peers run as nobody with setpriv; strace attaches "
              "to the daemon)")
        return 77
    for tool in ("setpriv", "strace"):
        if not shutil.which(tool):
            print("access: skipped: %s is not installed" % tool)
            return 77
    try:
        group = grp.getgrgid(NOBODY).gr_name
    except KeyError:
        print("access: skipped: no group %d (nogroup) to give the socket" % NOBODY)
        return 77
    rounds = 5 if a.quick else a.rounds
    tmp = tempfile.mkdtemp(prefix="qtomo-access-")
    os.chmod(tmp, 0o755)
    sock = os.path.join(tmp, "s.sock")
    cache = os.path.join(tmp, "cache")
    # Bait: files with the marker in their names, where a path escaping the cache would land.
    for p in (os.path.join(tmp, MARK), os.path.join(tmp, MARK + "-d4.qtpc"), "/tmp/" + MARK):
        with open(p, "w") as f:
            f.write("bait\n")
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock,
                             "--cache-dir", cache, "--workers", "2", "--socket-mode", "0660",
                             "--socket-group", group, "--log-level", "6"],
                            stdout=log, stderr=log)
    fig = {"socket_mode": None, "socket_group": None, "broke": []}
    strace = None
    try:
        if not wait_until(lambda: os.path.exists(sock) and len(children(proc.pid)) >= 2, 30):
            raise RuntimeError("qtomod did not start")
        with q.Client(sock, timeout=30) as c:
            wait_until(lambda: c.status()["n_workers"] == pool_size(2), 30)
        st = os.stat(sock)
        fig["socket_mode"] = "%04o" % (st.st_mode & 0o7777)
        fig["socket_group"] = grp.getgrgid(st.st_gid).gr_name
        if st.st_mode & 0o7777 != 0o660 or st.st_gid != NOBODY:
            fig["broke"].append("socket mode/group")
        # 1. Outside the group: no connection. In the group: connection, but not admin.
        admin = admin_methods()
        fig["admin_methods"] = admin
        fig["outside_group"] = peer(sock, NOBODY, 1, [])
        if fig["outside_group"].get("connect") != "PermissionError":
            fig["broke"].append("a peer outside the socket's group connected")
        fig["in_group_not_admin"] = peer(sock, NOBODY, NOBODY, admin + ["status"])
        for m in admin:
            if fig["in_group_not_admin"].get(m) != PERMISSION_DENIED:
                fig["broke"].append("non-admin peer was not refused %s" % m)
        if fig["in_group_not_admin"].get("status") != "ok":
            fig["broke"].append("non-admin peer could not call status")
        # 3. Paths, under strace.
        trace = os.path.join(tmp, "strace.out")
        serr = open(os.path.join(tmp, "strace.err"), "w+")
        pids = [proc.pid] + children(proc.pid)
        cmd = ["strace", "-f", "-e", "trace=%file", "-o", trace, "-s", "4096"]
        for p in pids:
            cmd += ["-p", str(p)]
        strace = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=serr)

        def attached():
            serr.flush()
            with open(serr.name) as f:
                return f.read().count("attached") >= len(pids)
        if not wait_until(attached, 20):
            raise RuntimeError("strace did not attach")
        names = hostile_names(rounds)
        with q.Client(sock, timeout=120, numpy=False, client_name="../../" + MARK) as c:
            fig.update(requests(c, names))
            fig["status_after"] = c.status()["n_workers"]
        # Workers the daemon starts now map and build from scratch: they are traced too.
        with q.Client(sock, timeout=60) as c:
            c.reload()
            wait_until(lambda: c.status()["n_workers"] == pool_size(2), 30)
            c.reconstruct([0.5, 0.5, 1.0, 0.0, 0.5, 0.5], design="mub", methods=("linear",))
        strace.terminate()
        strace.wait(30)
        strace = None
        with open(trace) as f:
            lines = f.read().splitlines()
        fig["traced_calls"] = len(lines)
        # A marked name is a cache key (a design id is one: [a-z0-9_-], no dot first) looked up
        # relative to the cache directory's descriptor, or an escape: a slash, or a path not
        # relative to a directory descriptor.
        marked = [ln for ln in lines if MARK in ln]
        key = re.compile(r'^\d+ +\w+at2?\((\d+), "[a-z0-9_-][a-z0-9_.-]*"')
        fig["marked_cache_keys"] = [ln for ln in marked if key.match(ln)][:5]
        fig["n_marked_cache_keys"] = sum(1 for ln in marked if key.match(ln))
        fig["marked"] = [ln for ln in marked if not key.match(ln)][:10]
        paths = set()
        for ln in lines:
            m = re.search(r'"([^"]*)"', ln)
            if m:
                paths.add(m.group(1))
        fig["outside"] = sorted(p for p in paths if p.startswith("/")
                                and not p.startswith(cache) and not p.startswith(SYSTEM))
        fig["dotdot"] = sorted(p for p in paths if ".." in p.split("/"))
        if fig["marked"]:
            fig["broke"].append("the daemon named a client's path")
        if fig["dotdot"]:
            fig["broke"].append("the daemon named a path with ..")
        if fig["answered"] != fig["requests"]:
            fig["broke"].append("requests unanswered")
        fig["daemon_up"] = proc.poll() is None
        if not fig["daemon_up"]:
            fig["broke"].append("daemon down")
    finally:
        if strace:
            strace.kill()
            strace.wait()
        if proc.poll() is None:
            proc.terminate()
            fig["exit"] = proc.wait(60)
        else:
            fig["exit"] = proc.returncode
        log.close()
        os.unlink("/tmp/" + MARK)
    if fig["exit"] != 0:
        fig["broke"].append("daemon exit %s" % fig["exit"])
    if a.json:
        print(json.dumps(fig))
    else:
        print("access: socket %s group %s; outside the group: %s; in the group, not admin: %s"
              % (fig["socket_mode"], fig["socket_group"], fig.get("outside_group"),
                 fig.get("in_group_not_admin")))
        print("access: %s hostile requests, %s answered (%s ok); %s file-name calls traced, "
              "%d naming the marker outside the cache directory (%d cache keys with it looked up "
              "inside it), %d with '..'; outside the cache and system places: %s"
              % (fig.get("requests"), fig.get("answered"), fig.get("ok"),
                 fig.get("traced_calls"), len(fig.get("marked", [])),
                 fig.get("n_marked_cache_keys", 0),
                 len(fig.get("dotdot", [])), fig.get("outside")))
        print("access: answers: %s" % json.dumps(fig.get("codes")))
        if fig["broke"]:
            print("access: BROKE: %s" % fig["broke"])
    if fig["broke"]:
        print("access: log and trace in %s" % tmp, file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
