"""Integration tests of qtomod: the real daemon on a private socket, driven through the Python
client (client/python/qtomo_client.py) and raw frames. Run by ctest with QTOMOD, QTOMOCTL and
QTOMO_SRC in the environment; needs /usr/bin/python3 with python3-msgpack."""
import json
import os
import platform
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack
from qtomod_fixture import EXAMPLES, PAULI6, QTOMOCTL, QTOMOD, SRC, Daemon, pauli6_columns, \
    read_columns, wait_until, write_columns
import qtomo_client as q  # noqa: E402 (on the path qtomod_fixture sets)

HOOKS = os.environ.get("QTOMO_TEST_HOOKS") == "1"
HOOK_CRASH = -7.25e300
HOOK_HANG = -8.5e300
HOOK_WAIT = -9.75e300
HOOK_SPIN = -5.25e300


def local_records(*args):
    out = subprocess.run([QTOMOCTL, "reconstruct"] + list(args) + ["--local", "--json"],
                         capture_output=True, text=True)
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    if not recs:
        raise AssertionError("qtomoctl --local gave nothing: " + out.stderr)
    return recs


def live_pids(stats):
    return {w["pid"] for w in stats["workers"] if w["state"] in ("idle", "busy", "starting")}


def idle_pool(client, n):
    """True when the pool is exactly n idle workers (no chunk ending, none starting or
    exiting)."""
    return [w["state"] for w in client.stats()["workers"]] == ["idle"] * n


def process_gone(pid):
    """True when pid no longer runs (gone, or a zombie nobody has reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def raw_frames(path, data, nread=1):
    """Sends bytes on a fresh connection (after a hello) and returns decoded frames until close
    or nread frames."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    hello = msgpack.packb([0, 1, "hello", [{"proto": [1, 0]}]])
    s.sendall(struct.pack(">I", len(hello)) + hello)
    out, buf = [], b""

    def read_frame():
        nonlocal buf
        while True:
            if len(buf) >= 4:
                n = struct.unpack(">I", buf[:4])[0]
                if len(buf) >= 4 + n:
                    body, buf = buf[4:4 + n], buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk

    read_frame()  # hello result
    s.sendall(data)
    while len(out) < nread:
        f = read_frame()
        if f is None:
            break
        out.append(f)
    closed = read_frame() is None if out and out[-1][0] == 2 else None
    s.close()
    return out, closed


class QtomodTest(unittest.TestCase):
    def start(self, *args, **kw):
        d = Daemon(*args, **kw)
        self.addCleanup(d.cleanup)
        return d

    def test_ready_status_and_sigterm(self):
        d = self.start(interactive=None)  # the default pool: 2 batch and 1 interactive worker
        with d.client() as c:
            self.assertEqual(c.server_info["proto"], [1, 0])
            self.assertEqual(c.server_info["workers"], 2)
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 3), c.status())
        self.assertEqual(d.stop(), 0)
        self.assertTrue(any("STOPPING=1" in m for m in d.notify.msgs), d.notify.msgs)
        self.assertTrue(any(m.startswith("STATUS=") for m in d.notify.msgs))

    def test_batch_equals_local_bit_for_bit(self):
        d = self.start("--chunk", "5")
        for name, design in (("mub_d3.csv", "mub"), ("bell_nopovm_d4.csv", "nopovm")):
            path = os.path.join(EXAMPLES, name)
            local = subprocess.run([QTOMOCTL, "reconstruct", path, "--local", "--json",
                                    "--design", design, "--method", "linear,mle"],
                                   capture_output=True, text=True)
            recs = [json.loads(line) for line in local.stdout.splitlines()]
            cols = read_columns(path)
            with d.client() as c:
                got = dict(c.submit(cols, design=design, methods=("linear", "mle")))
                self.assertEqual(c.last_totals["n_ok"] + c.last_totals["n_err"], len(cols))
            self.assertEqual(len(got), len(cols))
            for r in recs:
                res = got[r["sample"]][["linear", "mle"].index(r["method"])]
                self.assertEqual(res["status"], r["status"])
                if r["status"] != "ok":
                    self.assertEqual(res["error"]["code"], r["error"]["code"])
                    continue
                # Bit for bit: the daemon must compute exactly what --local computes.
                for i, row in enumerate(r["rho"]["re"]):
                    for j, re in enumerate(row):
                        z = res["rho"][i][j]
                        self.assertEqual((z.real, z.imag), (re, r["rho"]["im"][i][j]),
                                         (name, r["sample"], r["method"], i, j))
                for k, v in r["metrics"].items():
                    self.assertEqual(res["metrics"][k], v, (name, r["sample"], r["method"], k))
        self.assertEqual(d.stop(), 0)

    def test_errors_per_sample_and_request(self):
        d = self.start()
        with d.client() as c:
            good = [0.5, 0.5, 1.0, 0.0, 0.5, 0.5]
            out = dict(c.submit([good, [float("nan")] * 6, good], design="mub",
                                methods=("linear",)))
            self.assertEqual(out[1][0]["status"], "error")
            self.assertEqual(out[1][0]["error"]["code"], q.INVALID_SAMPLE)
            self.assertEqual(out[0][0]["status"], "ok")
            with self.assertRaises(q.QtomoError) as e:
                c.reconstruct(good, design="nosuch")
            self.assertEqual(e.exception.code, q.INVALID_PARAMS)
            with self.assertRaises(q.QtomoError) as e:
                c.reconstruct(good[:5], design="mub")
            self.assertEqual(e.exception.code, q.INVALID_PARAMS)
            with self.assertRaises(q.QtomoError) as e:
                c.cache_evict("mub", 2)
            # The worker keeps mub d = 2 mapped: busy, with a retry hint.
            self.assertEqual(e.exception.code, q.BUSY)
            self.assertGreater(e.exception.data["retry_after_ms"], 0)
            with self.assertRaises(q.QtomoError) as e:
                c.cache_evict("sic", 3)
            self.assertEqual(e.exception.code, q.NOT_FOUND)
            self.assertEqual(c.status()["inflight"], 0)
        self.assertEqual(d.stop(), 0)

    def test_sample_predicted_above_max_sample_mb_is_refused(self):
        # pauli 6 qubits (46,656 values): linear is predicted at about 76 MB in a worker,
        # linear,mle at about 83 MB (qd_check_sample_bytes); the limit sits between them.
        d = self.start("--max-sample-mb", "80")
        y = [100.0 + (a % 7) for a in range(6 ** 6)]
        with d.client() as c:
            r = c.reconstruct(y, design="pauli", methods=("linear",))
            self.assertEqual(r["results"][0]["status"], "ok")
            with self.assertRaises(q.QtomoError) as e:
                c.reconstruct(y, design="pauli", methods=("linear", "mle"))
            self.assertEqual(e.exception.code, q.TOO_LARGE)
            self.assertIn("predicted to need 83 MB", str(e.exception))
            self.assertIn("max-sample-mb (80 MB)", str(e.exception))
            with self.assertRaises(q.QtomoError) as e:
                list(c.submit([y, y], design="pauli", methods=("linear", "mle")))
            self.assertEqual(e.exception.code, q.TOO_LARGE)
            # The connection and the daemon go on.
            r = c.reconstruct(y, design="pauli", methods=("linear",))
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertEqual(c.status()["inflight"], 0)
        self.assertEqual(d.stop(), 0)

    def test_malformed_frames(self):
        d = self.start("--max-frame", "65536")
        # Empty frame: protocol_error -32700 and close.
        out, closed = raw_frames(d.sock, struct.pack(">I", 0))
        self.assertEqual(out[0][:2], [2, "protocol_error"])
        self.assertEqual(out[0][2][0]["code"], -32700)
        self.assertTrue(closed)
        # Oversize header: -32007 before any body byte.
        out, closed = raw_frames(d.sock, struct.pack(">I", 1 << 30))
        self.assertEqual(out[0][2][0]["code"], -32007)
        # The allocation bomb: an array header claiming 2^32-1 elements in 5 bytes.
        body = b"\xdd\xff\xff\xff\xff"
        out, closed = raw_frames(d.sock, struct.pack(">I", len(body)) + body)
        self.assertEqual(out[0][2][0]["code"], -32700)
        # A readable id with bad params: an error response, the connection goes on.
        body = msgpack.packb([0, 7, "reconstruct", "oops"])
        body2 = msgpack.packb([0, 8, "result", [{}]])
        body3 = msgpack.packb([0, 9, "status", [{}]])
        data = b"".join(struct.pack(">I", len(b)) + b for b in (body, body2, body3))
        out, _ = raw_frames(d.sock, data, nread=3)
        self.assertEqual([(f[1], f[2]["code"] if f[2] else 0) for f in out],
                         [(7, -32600), (8, -32601), (9, 0)])
        with d.client() as c:
            self.assertEqual(c.status()["n_workers"], 2)
        self.assertEqual(d.stop(), 0)

    def test_target_of_another_dimension_is_refused(self):
        """A c128le target whose size is not the resolved d (16 nopovm values, no d: d = 4) is
        refused with invalid_params naming both sizes; it used to be read past its end (2 x 2)
        or silently cut (8 x 8)."""
        d = self.start()

        def request(rid, k):
            target = struct.pack("<%dd" % (2 * k * k), *([1.0] + [0.0] * (2 * k * k - 1)))
            params = {"values": {"dtype": "f64le", "shape": [16, 1],
                                 "data": struct.pack("<16d", *([1.0 / 16] * 16))},
                      "design": "nopovm", "methods": ["linear"],
                      "target": {"dtype": "c128le", "shape": [k, k], "data": target}}
            body = msgpack.packb([0, rid, "reconstruct", [params]], use_bin_type=True)
            return struct.pack(">I", len(body)) + body

        out, _ = raw_frames(d.sock, request(5, 2) + request(6, 8) + request(7, 4), nread=3)
        by_id = {f[1]: f for f in out}
        for rid, k in ((5, 2), (6, 8)):
            err = by_id[rid][2]
            self.assertEqual(err["code"], -32602)
            self.assertIn("%d x %d" % (k, k), err["message"])
            self.assertIn("d = 4", err["message"])
        self.assertIsNone(by_id[7][2])
        self.assertEqual(by_id[7][3]["results"][0]["status"], "ok")
        with d.client() as c:
            self.assertEqual(c.status()["n_workers"], 2)
        self.assertEqual(d.stop(), 0)

    def test_killed_starting_workers_do_not_stop_the_daemon(self):
        """SIGKILL from outside (an operator, the OOM killer) that hits workers as they start
        is not a crash loop: the breaker is for workers that cannot start. Every new worker is
        killed as soon as it appears, 12 times in a few seconds (the breaker trips at 5 start-up
        failures in 30 s); the daemon stays up and answers every sample of a batch after.
        Workers take 300 ms to start here (a test hook), so the kills hit them starting
        however busy the machine is."""
        d = self.start(env={"QTOMO_TEST_WORKER_START_MS": "300"})
        children = "/proc/%d/task/%d/children" % (d.proc.pid, d.proc.pid)
        seen, kills, deadline = set(), 0, time.time() + 60
        while kills < 12 and time.time() < deadline and d.proc.poll() is None:
            with open(children) as f:
                pids = [int(p) for p in f.read().split()]
            for pid in pids:
                if pid not in seen:
                    seen.add(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
            time.sleep(0.001)
        self.assertGreaterEqual(kills, 12)  # two may appear in one read of children
        self.assertIsNone(d.proc.poll(), "the daemon stopped:\n" + d.logtext()[-2000:])
        self.assertIn("was killed during start-up", d.logtext())
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 25
        with d.client() as c:
            out = dict(c.submit(cols, design="nopovm", methods=("linear",)))
            self.assertEqual(sorted(out), list(range(len(cols))))
            self.assertTrue(all(r[0]["status"] == "ok" for r in out.values()))
        self.assertEqual(d.stop(), 0)

    def test_damaged_cache_file_gives_no_wrong_result(self):
        """A cache file whose header is intact but whose sections have flipped bytes, in
        place under a running worker's mapping and renamed into place for new workers, is
        never used: every result stays identical to the clean run, the file is moved aside and
        rebuilt, and the log says so."""
        d = self.start("--workers", "1")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv"))
        path = os.path.join(d.dir, "cache", "nopovm-d4.qtpc")

        def run(c):
            return [r["results"] for r in (c.reconstruct(col, design="nopovm",
                                                         methods=("linear", "mle"))
                                            for col in cols)]

        def damaged_copy():
            with open(path, "rb") as f:
                data = bytearray(f.read())
            n = struct.unpack_from("<I", data, 236)[0]
            secs = [struct.unpack_from("<IIQQQ", data, 240 + 32 * i) for i in range(n)]
            for _, _, off, size, _ in secs:  # an exponent byte in the middle of each section
                data[off + (size // 2 & ~7) + 6] ^= 0x40
            return bytes(data)

        with d.client() as c:
            ref = run(c)
            time.sleep(0.05)  # past the file system's time stamp granularity
            bad = damaged_copy()
            os.chmod(path, 0o600)
            with open(path, "r+b") as f:  # in place, under the worker's mapping
                f.write(bad)
            self.assertEqual(run(c), ref)
            self.assertTrue(wait_until(lambda: "aside to quarantine" in d.logtext(), 10))
            bad = damaged_copy()  # of the rebuilt file
            with open(path + ".tmp", "wb") as f:
                f.write(bad)
            os.rename(path + ".tmp", path)  # renamed into place; new workers map it
            c.reload()
            self.assertTrue(wait_until(lambda: idle_pool(c, 1), 20))
            self.assertEqual(run(c), ref)
        self.assertEqual(d.logtext().count("aside to quarantine"), 2, d.logtext()[-3000:])
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_cache_file_truncated_during_an_item(self):
        """Issue 15, defect 5: the cache file is truncated while a worker has it mapped, in
        the middle of an item (the QD_HOOK_WAIT sample holds the worker between mapping and
        computing). d = 4 cut to half (a 4 KB file: the cut bytes of its last page read as zeros)
        and d = 8 cut to nothing (SIGBUS inside the mapping). The worker ends with QD_EXIT_CACHE_CHANGED;
        its samples are retried, not charged as crashes, on a worker that finds the file
        truncated, moves it aside and rebuilds it: every result equals the clean run's, and
        the log names the file. (Before: mle gave invalid_params 'maximum likelihood failed'
        for every sample of the item.)"""
        hooks = tempfile.mkdtemp(prefix="qtomo-hooks-")
        self.addCleanup(shutil.rmtree, hooks, True)
        d = self.start(workers=1, env={"QTOMO_TEST_HOOK_DIR": hooks})
        rnd = random.Random(15)
        data = {4: read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")),
                8: [[float(rnd.randint(10, 500)) for _ in range(64)] for _ in range(6)]}
        methods = ("linear", "mle")
        with d.client() as c:
            for dim, single in ((4, False), (4, True), (8, False)):
                cols = data[dim]
                path = os.path.join(d.dir, "cache", "nopovm-d%d.qtpc" % dim)
                ref = dict(c.submit(cols, design="nopovm", methods=methods))
                size = os.path.getsize(path)
                for f in os.listdir(hooks):
                    os.unlink(os.path.join(hooks, f))
                wait = [HOOK_WAIT] + cols[0][1:]
                # One item: the real samples, then the hook sample (or the hook sample alone).
                # The worker computes every linear estimate first (not from the mapping), then
                # mle sample by sample, reading the mapping.
                it = c.submit([wait] if single else cols + [wait], design="nopovm",
                              methods=methods)
                self.assertTrue(wait_until(lambda: any(f.startswith("waiting.")
                                                       for f in os.listdir(hooks)), 20))
                os.truncate(path, size // 2 if dim == 4 else 0)
                open(os.path.join(hooks, "go"), "w").close()
                got = {}
                for idx, res in it:
                    self.assertNotIn(idx, got)
                    got[idx] = res
                self.assertEqual(sorted(got), list(range(1 if single else len(cols) + 1)))
                hooked = got.pop(0 if single else len(cols))
                for i in got:
                    self.assertEqual(got[i], ref[i], (dim, single, i))
                # The hook sample is nonsense (a huge negative count): its own honest error
                # or result, never worker_crashed.
                for r in hooked:
                    self.assertNotEqual(r.get("error", {}).get("code"), -32003, hooked)
                self.assertEqual(os.path.getsize(path), size)  # rebuilt
            st = c.stats()
            self.assertEqual(st["totals"]["crashes"], 0, st["totals"])
        log = d.logtext()
        self.assertEqual(log.count("nopovm-d4.qtpc changed under it"), 2, log[-3000:])
        self.assertEqual(log.count("nopovm-d8.qtpc changed under it"), 1, log[-3000:])
        # d = 4: the worker saw the change after a sample; d = 8: SIGBUS (no word of its own).
        self.assertEqual(log.count("nopovm-d4.qtpc changed during an item"), 2, log[-3000:])
        self.assertEqual(log.count("nopovm-d8.qtpc changed during an item"), 0, log[-3000:])
        self.assertEqual(log.count("aside to quarantine"), 3, log[-3000:])
        self.assertEqual(d.stop(), 0)

    def test_deadline_kills_hit_no_innocent_request(self):
        """Deadline race: two connections submit d = 16 work with deadlines of 1-40 ms, so
        their workers are killed for deadlines again and again, while a third connection sends
        ordinary single samples: the third sees no error, every sample of the first two gets
        exactly one result, and the deadline kills are counted as timeouts only. (The race this
        guards against, a kill as the item's last answer is in the channel, is rare here; its
        regression test is test_sched's test_deadline_with_result_in_channel.)"""
        d = self.start("--kill-grace-ms", "50")
        rnd = random.Random(2026)
        heavy = [[rnd.random() + 0.1 for _ in range(256)] for _ in range(24)]
        good = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv"))
        stop = threading.Event()
        problems, counts = [], {"heavy": 0, "light": 0}

        def loader(seed):
            r = random.Random(seed)
            with d.client() as c:
                while not stop.is_set():
                    got = dict(c.submit(heavy, design="nopovm", methods=("linear", "mle"),
                                        timeout_ms=r.randint(1, 40)))
                    if sorted(got) != list(range(len(heavy))):
                        problems.append("a heavy sample lost or duplicated")
                    counts["heavy"] += len(got)

        def light():
            with d.client() as c:
                while not stop.is_set():
                    res = c.reconstruct(good[counts["light"] % len(good)], design="nopovm",
                                        methods=("linear",))
                    if res["results"][0]["status"] != "ok":
                        problems.append(res["results"][0].get("error"))
                    counts["light"] += 1

        threads = [threading.Thread(target=loader, args=(s,)) for s in (1, 2)]
        threads.append(threading.Thread(target=light))
        for t in threads:
            t.start()
        with d.client() as c:  # until enough workers were killed for deadlines (or 60 s)
            wait_until(lambda: c.stats()["totals"]["timeouts"] >= 6, 60, step=0.1)
        stop.set()
        for t in threads:
            t.join(120)
        self.assertEqual(problems, [])
        self.assertGreater(counts["light"], 0)
        with d.client() as c:
            tot = c.stats()["totals"]
        self.assertGreaterEqual(tot["timeouts"], 6, tot)
        self.assertEqual(tot["crashes"], 0, tot)
        self.assertEqual(d.stop(), 0)

    def test_large_frame_kept_not_copied_gives_same_results(self):
        """A submit frame over 1 MiB is kept as read (its buffer handed to the job, the next
        frame moved out of it) instead of copied: same results as the same samples in small
        frames, and a request pipelined right behind it is answered."""
        d = self.start()
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 2300  # 1.18 MB
        self.assertGreater(len(cols) * 16 * 8, 1 << 20)

        def job(part):
            return {"values": q.matrix_array(part), "design": "nopovm", "methods": ["linear"],
                    "options": {}, "first_index": 0}

        def run(reqs):
            """Sends hello and reqs in one write; returns results by request and index, and
            the requests answered without error."""
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.sock)
            msgs = [[0, 1, "hello", [{"proto": [1, 0]}]]] + reqs
            s.sendall(b"".join(struct.pack(">I", len(b)) + b for b in (
                msgpack.packb(m, use_bin_type=True) for m in msgs)))
            f = s.makefile("rb")
            res, ok = {}, set()
            while len(ok) < len(msgs):
                n = struct.unpack(">I", f.read(4))[0]
                m = msgpack.unpackb(f.read(n), raw=False)
                if m[0] == 2 and m[1] == "result":
                    res[(m[2][0]["request"], m[2][0]["index"])] = m[2][0]["results"]
                elif m[0] == 1:
                    self.assertIsNone(m[2], m)
                    ok.add(m[1])
            s.close()
            return res

        small = run([[0, 2 + k // 1000, "submit", [dict(job(cols[k:k + 1000]), first_index=k)]]
                     for k in range(0, len(cols), 1000)])
        big = run([[0, 2, "submit", [job(cols)]], [0, 3, "reconstruct", [job(cols[:1])]]])
        self.assertEqual(len(big), len(cols))
        for k in range(len(cols)):
            self.assertEqual(big[(2, k)], small[(2 + k // 1000, k)], k)
        self.assertEqual(d.stop(), 0)

    def test_large_frames_wait_their_turn_within_max_input(self):
        """Large request frames being received are bounded in total (max-input-mb, here 1 MiB;
        one frame always gets in): while client A's 1.5 MB frame is half sent, client B's is
        not read beyond its first read and B waits; when A's frame is in, B's turn comes and
        both submits are answered with every result."""
        d = self.start("--max-input-mb", "1")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 3000  # 1.5 MB

        def frames():
            return b"".join(struct.pack(">I", len(b)) + b for b in (
                msgpack.packb(m, use_bin_type=True) for m in (
                    [0, 1, "hello", [{"proto": [1, 0]}]],
                    [0, 2, "submit", [{"values": q.matrix_array(cols), "design": "nopovm",
                                       "methods": ["linear"], "options": {}}]])))

        def stats():
            with d.client() as c:
                return c.stats()

        a, b = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        a.connect(d.sock)
        b.connect(d.sock)
        fa, fb = frames(), frames()
        half = len(fa) // 2
        a.sendall(fa[:half])
        self.assertTrue(wait_until(lambda: stats()["input"]["reserved"] > 1 << 20, 60), stats())
        b.setblocking(False)
        sent_b = 0
        try:
            while sent_b < len(fb):
                sent_b += b.send(fb[sent_b:sent_b + 65536])
        except BlockingIOError:
            pass
        self.assertTrue(wait_until(lambda: stats()["input"]["waiting"] == 1, 60), stats())
        self.assertLess(sent_b, len(fb))  # B's frame is not read while it waits
        a.sendall(fa[half:])
        b.setblocking(True)
        b.sendall(fb[sent_b:])

        def results(s):
            f, n_res = s.makefile("rb"), 0
            while True:
                m = msgpack.unpackb(f.read(struct.unpack(">I", f.read(4))[0]), raw=False)
                if m[0] == 2 and m[1] == "result":
                    n_res += 1
                elif m[0] == 1 and m[1] == 2:
                    self.assertIsNone(m[2], m)
                    return n_res
        self.assertEqual(results(a), len(cols))
        self.assertEqual(results(b), len(cols))
        st = stats()
        self.assertEqual((st["input"]["reserved"], st["input"]["waiting"]), (0, 0), st)
        a.close()
        b.close()
        self.assertEqual(d.stop(), 0)

    def test_stopped_client_can_finish_sending_its_request(self):
        """A client stopped for output (its results pile up) is still read up to its next whole
        frame: libqtomo-client sends the next part of a split submit before reading, and used
        to wait forever in send() while the daemon waited for it to read. The held part runs
        once the client has read enough, and both parts are answered in full."""
        d = self.start("--write-high-water-kb", "64")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv"))

        def frame(m):
            b = msgpack.packb(m, use_bin_type=True)
            return struct.pack(">I", len(b)) + b

        def submit(rid, part):
            return frame([0, rid, "submit", [{"values": q.matrix_array(part), "design": "nopovm",
                                               "methods": ["linear"], "options": {}}]])
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.sock)
        s.sendall(frame([0, 1, "hello", [{"proto": [1, 0]}]]) + submit(2, cols * 1000))

        def stopped():
            with d.client() as c:
                return c.stats()["output"]["stopped"] >= 1
        self.assertTrue(wait_until(stopped, 120))
        part1 = submit(3, cols * 6000)  # 3 MB: more than the socket buffers hold
        self.assertGreater(len(part1), 2 << 20)
        s.settimeout(120)
        s.sendall(part1)  # the daemon must read it although this client reads nothing yet
        f, done, n = s.makefile("rb"), set(), {2: 0, 3: 0}
        while len(done) < 3:
            m = msgpack.unpackb(f.read(struct.unpack(">I", f.read(4))[0]), raw=False)
            if m[0] == 2 and m[1] == "result":
                n[m[2][0]["request"]] += 1
            elif m[0] == 1:
                self.assertIsNone(m[2], m)
                done.add(m[1])
        self.assertEqual(n, {2: len(cols) * 1000, 3: len(cols) * 6000})
        s.close()
        self.assertEqual(d.stop(), 0)

    def test_stalled_large_frame_gives_its_input_room_back(self):
        """A client that announces a large frame and stops sending in its middle holds input
        room only until idle-read-timeout-ms: then it gets bye and is closed, and the room is
        free for others."""
        d = self.start("--idle-read-timeout-ms", "500")
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.sock)
        s.sendall(struct.pack(">I", 10 << 20) + b"\x00" * (200 << 10))

        def reserved():
            with d.client() as c:
                return c.stats()["input"]["reserved"]
        self.assertTrue(wait_until(lambda: reserved() > 10 << 20, 60))
        self.assertTrue(wait_until(lambda: "in the middle of a" in d.logtext(), 60), d.logtext())
        self.assertTrue(wait_until(lambda: reserved() == 0, 60))
        s.settimeout(60)
        data = b""
        while True:
            k = s.recv(65536)
            if not k:
                break
            data += k
        self.assertIn(b"idle", data)  # the bye
        s.close()
        self.assertEqual(d.stop(), 0)

    def test_output_is_bounded_per_connection_and_in_total(self):
        """Clients that never read: one floods reconstruct requests, twelve submit batches. The
        flooder stops being read at its high-water mark; the batches stop at their share once
        all output passes max-output-mb; a client that reads is served all along. Queued output
        stays within the limit plus what stopped connections' running items still send."""
        high_kb, total_mb = 256, 1
        # Items of exactly 4 samples (chunk-grow-us 0), so that what a stopped connection's
        # running item still sends is bounded by the slack below; grown items (up to 64 fast
        # samples) scale that term by their size.
        d = self.start("--write-high-water-kb", str(high_kb), "--max-output-mb", str(total_mb),
                       "--chunk", "4", "--chunk-grow-us", "0", "--idle-write-timeout-ms",
                       "600000")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv"))
        socks = []

        def raw(msgs):
            s = socket.socket(socket.AF_UNIX)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(d.sock)
            s.setblocking(False)
            socks.append(s)
            data = b"".join(struct.pack(">I", len(b)) + b
                            for b in (msgpack.packb(m, use_bin_type=True) for m in msgs))
            return s, data

        def push(s, data):  # what the daemon reads; the rest waits in our buffer
            try:
                return data[s.send(data):]
            except BlockingIOError:
                return data

        job = {"values": q.matrix_array(cols[:1]), "design": "nopovm", "methods": ["linear"],
               "options": {}}
        flood = raw([[0, 1, "hello", [{"proto": [1, 0]}]]] +
                    [[0, 2 + i, "reconstruct", [job]] for i in range(20000)])
        batch = {"values": q.matrix_array(cols * 400), "design": "nopovm",
                 "methods": ["linear"], "options": {}}
        pending = [flood] + [raw([[0, 1, "hello", [{"proto": [1, 0]}]], [0, 2, "submit", [batch]]])
                             for _ in range(12)]
        slack = 14 * 64 * 1024  # items running for stopped connections, a read's requests

        def stats():
            with d.client() as c:
                return c.stats()

        def filled():
            for i, (s, data) in enumerate(pending):
                pending[i] = (s, push(s, data))
            o = stats()["output"]
            self.assertLessEqual(o["queued"], total_mb * 2**20 + slack, o)
            return o["stopped"] >= 13
        self.assertTrue(wait_until(filled, 240, 0.1), stats())
        self.assertTrue(pending[0][1], "the flooder's requests were all read")
        # A client that reads is served while the others hold their output.
        with d.client() as c:
            got = list(c.submit(cols * 20, design="nopovm", methods=("linear",)))
            self.assertEqual(len(got), len(cols) * 20)
            self.assertEqual(c.last_totals["n_ok"], len(cols) * 20)
            o = c.stats()["output"]
        self.assertLessEqual(o["queued"], total_mb * 2**20 + slack, o)
        for s in socks:
            s.close()
        self.assertTrue(wait_until(lambda: stats()["output"]["queued"] == 0, 60), stats())
        self.assertEqual(d.stop(), 0)

    def test_memory_of_unread_output_is_given_back(self):
        """10 clients submit 1,000 samples each and never read (tests/reliability/
        slow_readers.py): queued frames hold only their bytes, not an 8 KB buffer each (peak
        ~19 MB above idle here; 66 MB before), and once the clients are gone the supervisor
        is back near its idle size. Memory figures mean nothing under AddressSanitizer."""
        with open(QTOMOD, "rb") as f:
            if b"__asan_init" in f.read():
                self.skipTest("AddressSanitizer build: its allocator keeps freed memory")
        script = os.path.join(SRC, "tests", "reliability", "slow_readers.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--clients", "10",
                              "--samples", "1000", "--seconds", "60", "--json"],
                             capture_output=True, text=True, timeout=240)
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        self.assertLess(r["peak_kb"] - r["start_kb"], 40 * 1024, r)
        self.assertLess(r["after_kb"] - r["start_kb"], 12 * 1024, r)

    def test_stalls_short(self):
        """tests/reliability/stalls.py, short: non-readers, vanishing clients (some SIGKILLed
        mid-stream) and large frames, phase by phase: every ping answered, the daemon up, and
        the misbehaving clients' work cancelled once they are gone (queues empty, nothing in
        flight). No latency threshold here: that is the long run's (tests/reliability)."""
        script = os.path.join(SRC, "tests", "reliability", "stalls.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--phases", "a,b,c",
                              "--phase-seconds", "3", "--nonreaders", "10",
                              "--nonreader-samples", "1000", "--wave-clients", "8",
                              "--wave-killed", "2", "--wave-samples", "500", "--wave-ms", "500",
                              "--big-clients", "2", "--big-samples", "100000", "--p99-ms", "1e9",
                              "--json"], capture_output=True, text=True, timeout=280)
        self.assertEqual(out.returncode, 0, out.stdout[-2000:] + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertEqual(r["unanswered_pings"], 0, r)
        self.assertEqual(len(r["phases"]), 3, r)
        for p in r["phases"]:
            self.assertGreaterEqual(p["pings"], 10, p)  # 300 at 10 ms; ASan on a busy machine
            self.assertLessEqual(p["after"]["inflight"], 1, p)  # the pinger's own status
            self.assertEqual(p["after"]["queue"]["batch"], 0, p)

    def test_load_short(self):
        """tests/reliability/load.py, short: 20 clients sending single samples for 9 s while a
        batch runs: every request answered without error and the batch gets results in every
        3 s window (batch-share-pct: it never starves)."""
        script = os.path.join(SRC, "tests", "reliability", "load.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--clients", "20",
                              "--seconds", "9", "--window", "3", "--batch", "100000",
                              "--daemon-arg=--max-queue=300000", "--json"],
                             capture_output=True, text=True, timeout=280)
        self.assertEqual(out.returncode, 0, out.stdout[-2000:] + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertGreater(r["interactive_answered"], 0, r)
        self.assertEqual(r["starved_windows"], 0, r)
        self.assertEqual(r["unanswered"], 0, r)

    def test_chaos_short(self):
        """tests/reliability/chaos.py, short: a 3,000-sample batch while every new worker is
        SIGKILLed as it starts and a random child every 50 ms: nothing lost, duplicated, failed
        or different from a clean run, and the daemon stays up (it used to stop in a crash
        loop and cancel the rest)."""
        script = os.path.join(SRC, "tests", "reliability", "chaos.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--samples", "3000",
                              "--interval-ms", "50", "--aim", "starting", "--seconds", "60",
                              "--json"], capture_output=True, text=True, timeout=280)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertGreaterEqual(r["kills"], 10, r)
        self.assertTrue(r["daemon_up"], r)

    def test_cache_faults_short(self):
        """tests/reliability/cache_faults.py, short: every kind of damage to the cache file
        once (truncated, header, each section in place and renamed into place, a foreign
        valid file, random bytes in place and renamed, unlinked) while batches run: nothing
        lost, duplicated, failed or different from a clean run, every fault logged and the file
        rebuilt, the daemon up."""
        script = os.path.join(SRC, "tests", "reliability", "cache_faults.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--faults", "22",
                              "--batch", "100", "--seconds", "120", "--json"],
                             capture_output=True, text=True, timeout=280)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertEqual(r["faults"], 22, r)
        self.assertEqual(len(r["by_kind"]), 22, r)
        self.assertEqual(r["logged"], 22, r)
        self.assertEqual(r["rebuilt"], 22, r)
        self.assertTrue(r["daemon_up"], r)

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_oom_short(self):
        """tests/reliability/oom.py, short: the daemon in a memory-limited cgroup (v2 or v1),
        a QD_HOOK_ALLOC sample's workers OOM-killed by the kernel while 500 small samples run:
        the killed workers are replaced, the sample ends with worker_crashed after 8 ("out of
        memory?"), the small samples are all identical to a clean run, the daemon stays up.
        Skipped where the machine gives no memory cgroup (exit 77)."""
        script = os.path.join(SRC, "tests", "reliability", "oom.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--mode", "hook",
                              "--big", "1", "--samples", "500", "--seconds", "120", "--json"],
                             capture_output=True, text=True, timeout=200)
        if out.returncode == 77:
            self.skipTest(out.stdout.strip())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertGreaterEqual(r["logged_oom"], 8, r)
        self.assertEqual(r["big"][0]["error"]["code"], -32003, r)
        self.assertIn("out of memory?", r["big"][0]["error"]["message"], r)
        self.assertEqual(r["workers_after"], 3, r)  # 2 batch workers and the interactive one

    def test_worker_sigkill_mid_batch(self):
        d = self.start("--chunk", "4")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 20
        with d.client() as c:
            pids = [w["pid"] for w in c.stats()["workers"]]
            seen = []
            for i, (idx, res) in enumerate(c.submit(cols, design="nopovm",
                                                    methods=("linear", "mle", "rhor"))):
                seen.append(idx)
                if i == 3:
                    os.kill(pids[0], signal.SIGKILL)
            self.assertEqual(sorted(seen), list(range(len(cols))))  # exactly one each
            self.assertEqual(c.last_totals["n_ok"], len(cols))
            st = c.stats()
            self.assertEqual(st["n_workers"], 2)
            self.assertNotIn(pids[0], [w["pid"] for w in st["workers"]])
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_poison_and_hang(self):
        d = self.start("--kill-grace-ms", "200")
        good = [0.5, 0.5, 1.0, 0.0, 0.5, 0.5]
        with d.client() as c:
            out = dict(c.submit([good, [HOOK_CRASH] + good[1:], good], design="mub",
                                methods=("linear", "mle")))
            self.assertEqual(sorted(out), [0, 1, 2])
            self.assertEqual(out[1][0]["error"]["code"], -32003)
            self.assertEqual(out[1][1]["error"]["code"], -32003)
            self.assertEqual(out[0][0]["status"], "ok")
            # The first crash hits the 3-sample item before any answer: nobody is charged and
            # the samples run alone; the poison sample then crashes twice and fails alone.
            self.assertEqual(c.stats()["totals"]["crashes"], 3)
            t0 = time.time()
            r = c.reconstruct([HOOK_HANG] + good[1:], design="mub", methods=("linear",),
                              timeout_ms=300)
            self.assertEqual(r["results"][0]["error"]["code"], -32002)
            self.assertLess(time.time() - t0, 5)
            r = c.reconstruct(good, design="mub", methods=("linear",))
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertEqual(c.stats()["totals"]["timeouts"], 1)
        self.assertEqual(d.stop(), 0)

    def test_disconnect_mid_stream_and_cancel(self):
        d = self.start("--chunk", "1")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 50
        c = d.client()
        it = c.submit(cols, design="nopovm", methods=("linear", "mle", "wls"))
        next(it)
        c.close()
        with d.client() as c2:
            end = time.time() + 20
            while c2.status()["inflight"] and time.time() < end:
                time.sleep(0.05)
            st = c2.status()
            self.assertEqual(st["inflight"], 0)
            self.assertEqual(st["queue"]["batch"], 0)
            it = c2.submit(cols, design="nopovm", methods=("linear", "mle", "wls"))
            next(it)
            self.assertTrue(c2.cancel(c2.last_request_id)["found"])
            with self.assertRaises(q.QtomoError) as e:
                for _ in it:
                    pass
            self.assertEqual(e.exception.code, -32800)
            t = e.exception.data
            self.assertEqual(t["n_ok"] + t["n_err"] + t["n_cancelled"], len(cols))
        self.assertEqual(d.stop(), 0)

    def test_sighup_reload_under_load(self):
        d = self.start("--chunk", "2")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 10
        with d.client() as c:
            before = {w["pid"] for w in c.stats()["workers"]}
            seen = []
            for i, (idx, _) in enumerate(c.submit(cols, design="nopovm",
                                                  methods=("linear", "mle"))):
                seen.append(idx)
                if i == 2:
                    d.proc.send_signal(signal.SIGHUP)
            self.assertEqual(sorted(seen), list(range(len(cols))))
            self.assertEqual(c.last_totals["n_ok"], len(cols))
            self.assertTrue(d.notify.wait_for_text("RELOADING=1"))
            gen = c.reload()["generation"]
            self.assertEqual(gen, 2)
            time.sleep(0.5)
            after = {w["pid"] for w in c.stats()["workers"] if w["state"] in ("idle", "busy", "starting")}
            self.assertFalse(before & after)
        self.assertEqual(d.stop(), 0)

    def test_sighup_burst_is_coalesced(self):
        # A burst of SIGHUPs (a deployment loop) started a pool of workers per signal and
        # starved the batch running meanwhile. Now one reload at once and at most one a second
        # after (qd_reload.h); the batch finishes, and the burst's last signal is not lost.
        d = self.start("--chunk", "2")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 50
        with d.client() as c:
            it = c.submit(cols, design="nopovm", methods=("linear", "mle"))
            seen = [next(it)[0]]
            t0 = time.time()
            for _ in range(100):
                d.proc.send_signal(signal.SIGHUP)
                time.sleep(0.005)
            span = time.time() - t0
            seen += [idx for idx, _ in it]
            self.assertEqual(sorted(seen), list(range(len(cols))))
            self.assertEqual(c.last_totals["n_ok"], len(cols))
            reloads = lambda: d.logtext().count("reloaded: generation")  # noqa: E731
            self.assertTrue(wait_until(lambda: reloads() >= 2, 30), d.logtext()[-3000:])
            self.assertIn("at most one reload every", d.logtext())
            self.assertLessEqual(reloads(), 3 + int(time.time() - t0), "span %.1f s" % span)
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2, 30), c.status())
        self.assertEqual(d.stop(), 0)

    def test_sigterm_drains(self):
        d = self.start("--drain-timeout-ms", "20000")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 5
        with d.client() as c:
            it = c.submit(cols, design="nopovm", methods=("linear", "mle"))
            next(it)
            d.proc.send_signal(signal.SIGTERM)
            rest = list(it)
            self.assertEqual(len(rest) + 1, len(cols))
            self.assertEqual(c.last_totals["n_ok"], len(cols))
        self.assertEqual(d.proc.wait(30), 0)
        self.assertFalse(os.path.exists(d.sock))

    def test_custom_design_and_cache(self):
        d = self.start()
        with d.client() as c:
            self.assertEqual(c.cache_warm([("mub", 3), ("nopovm", 2)])["warmed"], 2)
            names = [e["name"] for e in c.cache_list()["entries"]]
            self.assertIn("mub-d3.qtpc", names)
            self.assertEqual(c.cache_verify()["damaged"], [])
            self.assertEqual(c.cache_evict("nopovm", 2)["bytes"] > 0, True)
            with self.assertRaises(q.QtomoError) as e:
                c.cache_warm([("mub", 6)])
            self.assertEqual(e.exception.code, -32602)
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(shutil.which("systemd-socket-activate"), "no systemd-socket-activate")
    def test_socket_activation(self):
        d = self.start(activate=True)
        with d.client() as c:
            r = c.reconstruct([0.5, 0.5, 1.0, 0.0, 0.5, 0.5], design="mub", methods=("linear",))
            self.assertEqual(r["results"][0]["status"], "ok")
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_permissions(self):
        d = self.start("--socket-mode", "0660")
        os.chmod(d.dir, 0o755)
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                 "try:\n s.connect(sys.argv[1]); print('connected')\n"
                 "except PermissionError: print('denied')\n")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "/usr/bin/python3", "-c", probe, d.sock],
                             capture_output=True, text=True).stdout.strip()
        self.assertEqual(out, "denied")
        os.chmod(d.sock, 0o666)
        admin = ("import sys\nsys.path.insert(0, sys.argv[2])\nimport qtomo_client as q\n"
                 "c=q.Client(sys.argv[1], numpy=False)\n"
                 "try:\n c.reload(); print('allowed')\n"
                 "except q.QtomoError as e: print(e.code)\n")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "/usr/bin/python3", "-c", admin, d.sock,
                              os.path.join(SRC, "client", "python")],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "-32005", out.stderr)
        self.assertIn("refused (not admin)", d.logtext())
        self.assertEqual(d.stop(), 0)

    def test_access_short(self):
        """tests/reliability/access.py --quick: a peer outside the socket's group cannot
        connect; a non-admin peer gets permission_denied for every admin method in
        proto/SCHEMA.md; requests with hostile design names and ids (../, absolute paths, NUL
        bytes, 70 KB names) are all answered and make the daemon (followed by strace -f) name
        no path outside its cache directory. Needs root, setpriv and strace (CI runs as root)."""
        script = os.path.join(SRC, "tests", "reliability", "access.py")
        out = subprocess.run([sys.executable, script, "--qtomod", QTOMOD, "--quick", "--json"],
                             capture_output=True, text=True, timeout=200)
        if out.returncode == 77:
            self.skipTest(out.stdout.strip())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr[-2000:])
        r = json.loads(out.stdout)
        self.assertEqual(r["outside_group"], {"connect": "PermissionError"}, r)
        self.assertEqual(r["in_group_not_admin"]["reload"], -32005, r)
        self.assertEqual(r["in_group_not_admin"]["cache.evict"], -32005, r)
        self.assertEqual(r["marked"], [], r)
        self.assertEqual(r["requests"], r["answered"], r)

    def test_backpressure_idle_reader(self):
        d = self.start("--write-high-water-kb", "64", "--idle-write-timeout-ms", "1500",
                       "--chunk", "8")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 2000
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(d.sock)
        for m in ([0, 1, "hello", [{"proto": [1, 0]}]],
                  [0, 2, "submit", [{"values": q.matrix_array(cols), "design": "nopovm",
                                     "methods": ["linear"], "options": {}}]]):
            b = msgpack.packb(m, use_bin_type=True)
            s.sendall(struct.pack(">I", len(b)) + b)
        # Never read: the daemon stops feeding it, then closes it.
        self.assertTrue(wait_until(lambda: "not reading its results" in d.logtext(), 120),
                        d.logtext())
        with d.client() as c:
            st = c.status()
            self.assertEqual(st["inflight"], 0)
        s.close()
        self.assertEqual(d.stop(), 0)

    def test_watchdog_cadence(self):
        # WATCHDOG_USEC = 1 s: the loop must ping at half of it, idle and under a batch. (With
        # 400 ms this failed once on a busy machine: a 200 ms hiccup of the scheduler is not the
        # daemon's; a gap of the whole interval still would be.)
        usec = 1000000
        half = usec / 2e6
        window = 4.0
        d = self.start("--chunk", "1", watchdog_usec=usec)

        def pings(t0, t1):
            return [(t, pid) for t, pid, m in list(d.notify.stamps)
                    if "WATCHDOG=1" in m.split("\n") and t0 <= t < t1]

        def check(window, what):
            times = [t for t, _ in window]
            gaps = sorted(b - a for a, b in zip(times, times[1:]))
            info = (what, len(times), [round(g, 3) for g in gaps])
            # 4 s at 500 ms nominal is 8; the whole interval (1 s) would give 4.
            self.assertGreaterEqual(len(times), 5, info)
            self.assertLessEqual(len(times), 12, info)
            self.assertGreaterEqual(gaps[len(gaps) // 2], 0.6 * half, info)
            self.assertLessEqual(gaps[len(gaps) // 2], 1.5 * half, info)
            # systemd would kill the service after a gap of the whole interval.
            self.assertLess(gaps[-1], usec / 1e6, info)
            # From the supervisor (the pid WATCHDOG_PID names), never from a worker.
            self.assertEqual({pid for _, pid in window}, {d.proc.pid}, info)

        with d.client() as c:
            for w in c.stats()["workers"]:  # systemd's variables are the supervisor's alone
                with open("/proc/%d/environ" % w["pid"], "rb") as f:
                    env = f.read().split(b"\0")
                self.assertFalse([v for v in env if v.startswith((b"WATCHDOG_", b"NOTIFY_"))])
        t0 = time.monotonic()
        time.sleep(window)  # the measurement window, idle
        check(pings(t0, t0 + window), "idle")
        # Long enough to outlast the window in optimised builds too (it is cancelled after it).
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 8000
        with d.client() as c:
            it = c.submit(cols, design="nopovm", methods=("linear", "mle", "rhor"))
            rid = c.last_request_id
            next(it)
            t1, n = time.monotonic(), 1
            for _ in it:
                n += 1
                if time.monotonic() >= t1 + window:
                    break
            self.assertLess(n, len(cols), "the batch ended before the window did")
            check(pings(t1, t1 + window), "during a batch")
            self.assertTrue(c.cancel(rid)["found"])
            with self.assertRaises(q.QtomoError) as e:
                for _ in it:
                    pass
            self.assertEqual(e.exception.code, -32800)
        self.assertEqual(d.stop(), 0)

    def test_crash_loop_exits_3(self):
        # Workers that cannot start: the cache directory is replaced by a file after start-up
        # (as when it is removed or its file system goes away). The supervisor keeps its open
        # directory; every new worker fails in qt_cache_open before saying ready.
        d = self.start()
        with d.client() as c:
            pids = sorted(live_pids(c.stats()))
        self.assertEqual(len(pids), 2)
        cache = os.path.join(d.dir, "cache")
        os.rename(cache, cache + ".moved")
        with open(cache, "w") as f:
            f.write("not a directory\n")
        os.kill(pids[0], signal.SIGKILL)  # its replacement, and the next ones, fail
        rc = d.proc.wait(25)
        log = d.logtext()
        self.assertEqual(rc, 3, log)
        self.assertIn("5 workers failed during start-up within 30 s: giving up (crash loop)", log)
        self.assertEqual(log.count("failed during start-up (status 2, signal 0)"), 5, log)
        self.assertIn("Not a directory", log)  # the workers' own reason
        self.assertTrue(d.notify.wait_for_text("STATUS=workers crash during start-up", 5),
                        d.notify.msgs)
        self.assertTrue(any("ERRNO=" in m for m in d.notify.msgs), d.notify.msgs)
        status = [m for m in d.notify.msgs if "STATUS=" in m]
        self.assertIn("STATUS=workers crash during start-up", status[-1], status)  # stays
        # The surviving worker goes with the supervisor (channel EOF / parent-death signal).
        self.assertTrue(wait_until(lambda: process_gone(pids[1]), 10))
        self.assertEqual(d.stop(), 3)

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_crash_loop_ends_requests(self):
        # The crash loop with clients waiting: one worker, hung on a sample (busy), a
        # reconstruct queued behind it; the cache directory breaks and the worker is killed.
        # Its replacements fail; the daemon exits 3 and both requests get shutting_down.
        d = self.start(workers=1)
        good = [0.5, 0.5, 1.0, 0.0, 0.5, 0.5]
        c1, c2 = d.client(), d.client()
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        it = c1.submit([[HOOK_HANG] + good[1:], good], design="mub", methods=("linear",))
        self.assertTrue(wait_until(lambda: [w["state"] for w in c2.stats()["workers"]] ==
                                   ["busy"]))
        pid = c2.stats()["workers"][0]["pid"]
        errs = []

        def rec():
            try:
                c2.reconstruct(good, design="mub", methods=("linear",))
            except Exception as e:  # noqa: BLE001 (anything but shutting_down fails below)
                errs.append(e)

        t = threading.Thread(target=rec, daemon=True)
        with d.client() as c3:
            t.start()
            self.assertTrue(wait_until(lambda: c3.status()["queue"]["interactive"] == 1))
        cache = os.path.join(d.dir, "cache")
        os.rename(cache, cache + ".moved")
        with open(cache, "w") as f:
            f.write("not a directory\n")
        os.kill(pid, signal.SIGKILL)
        with self.assertRaises(q.QtomoError) as e:
            for _ in it:
                pass
        self.assertEqual(e.exception.code, q.SHUTTING_DOWN)
        self.assertEqual(e.exception.data["n_ok"] + e.exception.data["n_cancelled"], 2)
        t.join(20)
        self.assertEqual([getattr(x, "code", repr(x)) for x in errs], [q.SHUTTING_DOWN])
        rc = d.proc.wait(25)
        self.assertEqual(rc, 3, d.logtext())
        self.assertIn("giving up (crash loop)", d.logtext())
        self.assertEqual(d.stop(), 3)

    def test_recycle_by_item_count(self):
        d = self.start("--worker-max-jobs", "10", "--chunk", "1")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 15
        with d.client() as c:
            before = live_pids(c.stats())
            self.assertEqual(len(before), 2)
            seen = []
            for idx, res in c.submit(cols, design="nopovm", methods=("linear", "mle")):
                seen.append(idx)
                self.assertEqual([r["status"] for r in res], ["ok", "ok"], idx)
            self.assertEqual(sorted(seen), list(range(len(cols))))  # exactly one each
            self.assertEqual(c.last_totals["n_ok"], len(cols))
            # The last results may reach us before their worker's end of chunk reaches the
            # supervisor (which is when it recycles): wait until the pool has settled.
            self.assertTrue(wait_until(lambda: idle_pool(c, 2)), c.stats())
            st = c.stats()
            # 60 samples, 10 or 11 per worker life: the two lives still running hold at most
            # 10 each, so at least 40 samples were done by recycled workers.
            self.assertGreaterEqual(st["totals"]["recycled"], 4, st)
            self.assertLessEqual(st["totals"]["recycled"], 6, st)
            self.assertEqual(st["totals"]["crashes"], 0)
            self.assertFalse(before & live_pids(st), (before, st["workers"]))
            self.assertTrue(all(w["jobs"] < 11 for w in st["workers"]), st["workers"])
            r = c.reconstruct(cols[0], design="nopovm", methods=("linear",))
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertNotIn(r["worker"], before)  # computed by a replacement
            self.assertTrue(wait_until(lambda: idle_pool(c, 2)), c.stats())
            st = c.stats()  # that sample may have recycled its worker too
        log = d.logtext()
        counts = [int(line.split(" recycled after ")[1].split()[0])
                  for line in log.splitlines() if " recycled after " in line]
        self.assertEqual(len(counts), st["totals"]["recycled"], log)
        self.assertTrue(all(10 <= n <= 11 for n in counts), counts)  # + up to 10 % jitter
        self.assertEqual(d.stop(), 0)

    def test_recycle_by_rss(self):
        # 1 MiB: every worker is above it, so each one is recycled after each chunk.
        d = self.start("--worker-max-rss-mb", "1", "--chunk", "4")
        cols = read_columns(os.path.join(EXAMPLES, "bell_nopovm_d4.csv")) * 6
        with d.client() as c:
            st = c.stats()
            before = live_pids(st)
            self.assertTrue(all(w["rss_kb"] > 1024 for w in st["workers"]), st["workers"])
            seen = []
            for idx, res in c.submit(cols, design="nopovm", methods=("linear", "mle")):
                seen.append(idx)
                self.assertEqual([r["status"] for r in res], ["ok", "ok"], idx)
            self.assertEqual(sorted(seen), list(range(len(cols))))  # exactly one each
            self.assertEqual(c.last_totals["n_ok"], len(cols))
            self.assertTrue(wait_until(lambda: idle_pool(c, 2)), c.stats())  # see above
            st = c.stats()
            self.assertEqual(st["totals"]["recycled"], len(cols) // 4, st)  # one per chunk
            self.assertEqual(st["totals"]["crashes"], 0)
            self.assertFalse(before & live_pids(st), (before, st["workers"]))
            r = c.reconstruct(cols[0], design="nopovm", methods=("linear", "mle"))
            self.assertEqual([x["status"] for x in r["results"]], ["ok", "ok"])
            self.assertEqual(c.status()["n_workers"], 2)
        self.assertIsNone(d.proc.poll())
        self.assertNotIn("crash loop", d.logtext())
        self.assertEqual(d.stop(), 0)

    def test_detector_put(self):
        # detector.put: the daemon checks a detector model, keeps its effective design (with
        # the backgrounds) and names it; results against it are --local's bit for bit, and
        # bad models are refused with the field named.
        d = self.start("--chunk", "4")
        bell = os.path.join(EXAMPLES, "bell_nopovm_d4.csv")
        model = {"efficiencies": [0.7 + 0.3 * ((5 * a) % 7) / 6 for a in range(16)],
                 "background": [0.5 * (a % 3) for a in range(16)],
                 "setting_intensity": [1.05]}
        mpath = os.path.join(d.dir, "det.json")
        with open(mpath, "w") as f:
            json.dump(model, f)
        methods = ["linear", "mle"]
        recs = local_records(bell, "--design", "nopovm", "--method", ",".join(methods),
                             "--detector", mpath)
        cols = read_columns(bell, float)
        with d.client() as c:
            self.assertIn("detector", c.server_info["features"])
            ref = c.detector_put(json.dumps(model), "nopovm", 4)
            self.assertEqual((ref["design"], ref["d"], ref["m"]), ("custom", 4, 16))
            self.assertEqual(ref["design_id"], recs[0]["design_id"])  # the file qtomoctl builds
            self.assertEqual(ref["detector"], recs[0]["detector"])
            got = dict(c.submit(cols, design="custom", design_id=ref["design_id"],
                                methods=methods))
            for r in recs:
                res = got[r["sample"]][methods.index(r["method"])]
                self.assertEqual(res["status"], r["status"], r)
                for i, row in enumerate(r["rho"]["re"]):
                    for j, re in enumerate(row):
                        z = res["rho"][i][j]
                        self.assertEqual((z.real, z.imag), (re, r["rho"]["im"][i][j]))
                if r["method"] == "mle":
                    self.assertLessEqual(res["metrics"]["gap"], 1e-8)
                    self.assertEqual(res["metrics"]["gap"], r["metrics"]["gap"])
            # wls and rhor cannot take a background: each sample fails, saying so.
            r = c.reconstruct(cols[0], design="custom", design_id=ref["design_id"],
                              methods=["linear", "rhor"])
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertEqual(r["results"][1]["status"], "error")
            self.assertIn("background", r["results"][1]["error"]["message"])
            # The identity is no detector: the base design itself.
            self.assertEqual(c.detector_put("{}", "nopovm", 4),
                             {"design": "nopovm", "d": 4, "m": 16})
            # A custom base, by its design.put id.
            did = c.design_put(json.dumps(PAULI6))
            ref2 = c.detector_put('{"efficiencies": [1, 0.9, 1, 0.9, 1, 0.9]}', "custom", 2,
                                  design_id=did)
            self.assertEqual((ref2["design"], ref2["m"]), ("custom", 6))
            self.assertNotEqual(ref2["design_id"], did)
            # Refusals name what was wrong; the daemon goes on.
            for args, code, what in (
                    (('{"efficiencies": [1, 1, 1, 0]}', "nopovm", 4), q.INVALID_PARAMS,
                     "efficiencies has 4 values"),
                    (('{"background": [0, 0, -1' + ', 0' * 13 + ']}', "nopovm", 4),
                     q.INVALID_PARAMS, "background[2]"),
                    (('{"efficiency": []}', "mub", 3), q.INVALID_PARAMS, "efficiency"),
                    (("{}", "nopovm", 4, "custom-" + "0" * 32), q.INVALID_PARAMS, "design_id"),
                    (("{}", "custom", 2, "custom-" + "0" * 32), q.NOT_FOUND, ""),
                    (("{}", "custom", 2, "custom-xyz"), q.INVALID_PARAMS, "design_id"),
                    (("{}", "square", 4), q.INVALID_PARAMS, "square")):
                with self.assertRaises(q.QtomoError) as e:
                    c.detector_put(*args)
                self.assertEqual(e.exception.code, code, args)
                self.assertIn(what, e.exception.message, args)
            st = c.stats()
            self.assertEqual(st["totals"]["crashes"], 0)
        self.assertEqual(d.stop(), 0)

    @staticmethod
    def slice_ns(pid):
        # The kernel's time slice of pid (/proc/PID/sched, se.slice), or None.
        with open("/proc/%d/sched" % pid) as f:
            for line in f:
                if line.startswith("se.slice"):
                    return int(line.split(":")[1])
        return None

    @classmethod
    def custom_slices(cls):
        # Whether this kernel keeps a slice asked with sched_setattr (EEVDF custom slices, Linux
        # 6.12): asked of a child, then read back.
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        attr = struct.pack("=IIQiIQQQ", 48, 0, 0, 0, 0, 300000, 0, 0)
        child = subprocess.Popen(["sleep", "30"])
        try:
            buf = ctypes.create_string_buffer(attr, len(attr))
            if libc.syscall(314, child.pid, buf, 0) != 0:  # SYS_sched_setattr on x86-64
                return False
            return cls.slice_ns(child.pid) == 300000
        finally:
            child.kill()
            child.wait()

    def live_beside_batch(self, d, batch_nice):
        # One batch worker at batch_nice and one interactive worker at nice 0: live samples
        # sent while a batch keeps the batch worker busy are all served by the interactive one.
        def nice(pid):
            with open("/proc/%d/stat" % pid) as f:
                return int(f.read().rsplit(")", 1)[1].split()[16])

        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            pids = [w["pid"] for w in c.stats()["workers"]]
            by_nice = {nice(p): p for p in pids}
            self.assertEqual(sorted(by_nice), [0, batch_nice])
            live, batch = by_nice[0], by_nice[batch_nice]
        cols = [[100.0 + ((a * 7 + k) % 13) for a in range(256)] for k in range(300)]
        done = {}

        def run_batch():
            with d.client() as c:
                done.update(dict(c.submit(cols, design="nopovm", dim=16,
                                          methods=["linear", "mle"])))

        t = threading.Thread(target=run_batch)
        t.start()
        with d.client() as c:
            self.assertTrue(wait_until(lambda: any(
                w["pid"] == batch and w["state"] == "busy" for w in c.stats()["workers"])))
            for k in range(5):
                r = c.reconstruct([100.0 + k + a for a in range(16)], design="nopovm", dim=4,
                                  methods=["linear"])
                self.assertEqual(r["results"][0]["status"], "ok")
            jobs = {w["pid"]: w["jobs"] for w in c.stats()["workers"]}
            self.assertEqual(jobs[live], 5)
        t.join()
        self.assertEqual(sorted(done), list(range(300)))
        self.assertTrue(all(r[1]["status"] == "ok" for r in done.values()))
        with d.client() as c:
            jobs = {w["pid"]: w["jobs"] for w in c.stats()["workers"]}
            self.assertEqual((jobs[live], jobs[batch]), (5, 300))
        self.assertEqual(d.stop(), 0)

    def test_interactive_worker(self):
        # interactive-workers: an extra worker that takes only interactive work, at normal
        # priority, while batch workers run at batch-nice.
        self.live_beside_batch(self.start("--interactive-workers", "1", "--batch-nice", "7",
                                          workers=1), 7)

    def test_default_pool_has_an_interactive_worker(self):
        # Without options the pool is --workers batch workers at nice 10 and one interactive
        # worker, so that a live sample never waits for a batch item (issue 19). Where the
        # kernel has custom time slices, the supervisor (unless under SCHED_FIFO) and the
        # interactive worker ask for latency-slice-us (100 µs) and the batch workers keep the
        # kernel's default.
        d = self.start(workers=1, interactive=None)
        if platform.machine() == "x86_64" and self.custom_slices():
            with d.client() as c:
                self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
                pids = [w["pid"] for w in c.stats()["workers"]]
            slices = sorted(self.slice_ns(p) for p in pids)
            if subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode:
                self.assertEqual(self.slice_ns(d.proc.pid), 100000)
            else:  # under SCHED_FIFO, which has no slice (test_live_items_under_fifo)
                self.assertEqual(self.policy(d.proc.pid)[0], os.SCHED_FIFO)
            self.assertEqual(slices[0], 100000, slices)
            self.assertGreater(slices[1], 100000, slices)
        self.live_beside_batch(d, 10)

    def test_batch_idle(self):
        # batch-idle 1: batch workers always under SCHED_IDLE, the interactive one and the
        # supervisor under SCHED_OTHER; both kinds of work are served. The batch is small: an
        # idle-policy worker gets almost no CPU while other processes keep this machine's cores
        # busy.
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        d = self.start("--batch-idle", "1", "--rt-priority", "0", workers=1, interactive=None)
        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            pids = [w["pid"] for w in c.stats()["workers"]]
            policies = sorted(os.sched_getscheduler(p) for p in pids)
            self.assertEqual(policies, sorted([os.SCHED_OTHER, os.SCHED_IDLE]))
            idle = [p for p in pids if os.sched_getscheduler(p) == os.SCHED_IDLE][0]
            self.assertEqual(os.getpriority(os.PRIO_PROCESS, idle), 10)  # batch-nice kept
            self.assertEqual(os.sched_getscheduler(d.proc.pid), os.SCHED_OTHER)
            cols = [[100.0 + k + a for a in range(16)] for k in range(20)]
            done = dict(c.submit(cols, design="nopovm", dim=4, methods=["linear"]))
            self.assertEqual(sorted(done), list(range(20)))
            self.assertTrue(all(r[0]["status"] == "ok" for r in done.values()))
            r = c.reconstruct(cols[0], design="nopovm", dim=4, methods=["linear"])
            self.assertEqual(r["results"][0]["status"], "ok")
            jobs = {os.sched_getscheduler(w["pid"]): w["jobs"] for w in c.stats()["workers"]}
            self.assertEqual(jobs, {os.SCHED_IDLE: 20, os.SCHED_OTHER: 1})
        self.assertEqual(d.stop(), 0)

    def batch_idle_while_live(self, d):
        # batch-idle 2: batch workers keep SCHED_OTHER at batch-nice until an
        # interactive item comes, are under SCHED_IDLE before it is sent, and go back 5 s after
        # the last one ended; a batch alone does not move them. Returns the batch worker's pid
        # before and after, and the log.
        cols = [[100.0 + k + a for a in range(16)] for k in range(20)]

        def batch_pid(c):
            return [w["pid"] for w in c.stats()["workers"]
                    if os.getpriority(os.PRIO_PROCESS, w["pid"]) == 10][0]

        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            batch = batch_pid(c)
            live = [w["pid"] for w in c.stats()["workers"] if w["pid"] != batch][0]
            self.assertEqual(os.sched_getscheduler(batch), os.SCHED_OTHER)
            done = dict(c.submit(cols, design="nopovm", dim=4, methods=["linear"]))
            self.assertEqual(len(done), 20)
            self.assertEqual(os.sched_getscheduler(batch), os.SCHED_OTHER)
            r = c.reconstruct(cols[0], design="nopovm", dim=4, methods=["linear"])
            t_end = time.monotonic()
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertEqual(os.sched_getscheduler(batch), os.SCHED_IDLE)
            self.assertEqual(os.getpriority(os.PRIO_PROCESS, batch), 10)
            self.assertEqual(os.sched_getscheduler(live), os.SCHED_OTHER)
            done = dict(c.submit(cols, design="nopovm", dim=4, methods=["linear"]))
            self.assertTrue(all(v[0]["status"] == "ok" for v in done.values()))

            def back():
                ws = c.stats()["workers"]
                return len(ws) == 2 and all(
                    os.sched_getscheduler(w["pid"]) == os.SCHED_OTHER for w in ws)

            self.assertTrue(wait_until(back, 60, step=0.05))
            self.assertGreater(time.monotonic() - t_end, 4.5)
            after = batch_pid(c)
            done = dict(c.submit(cols, design="nopovm", dim=4, methods=["linear"]))
            self.assertTrue(all(v[0]["status"] == "ok" for v in done.values()))
        log = d.logtext()
        self.assertEqual(d.stop(), 0)
        return batch, after, log

    def test_batch_idle_while_live(self):
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        if os.geteuid() != 0:
            self.skipTest("needs CAP_SYS_NICE to move a worker back from SCHED_IDLE")
        d = self.start("--batch-idle", "2", "--rt-priority", "0", workers=1, interactive=None)
        before, after, _ = self.batch_idle_while_live(d)
        self.assertEqual(before, after)  # moved back, not replaced

    def test_batch_idle_while_live_unprivileged(self):
        # Without CAP_SYS_NICE and with RLIMIT_NICE 0 a worker cannot leave SCHED_IDLE
        # (sched(7)): it is replaced by a fresh one, said once in the log.
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        wrap = ["prlimit", "--nice=0:0", "--"]
        if os.geteuid() == 0:
            wrap = ["setpriv", "--bounding-set", "-sys_nice", "--"] + wrap
        d = self.start("--batch-idle", "2", "--rt-priority", "0", workers=1, interactive=None,
                       wrap=wrap)
        before, after, log = self.batch_idle_while_live(d)
        self.assertNotEqual(before, after)
        self.assertEqual(log.count("cannot leave SCHED_IDLE"), 1, log)

    def test_cpu_wait_not_counted_against_deadline(self):
        # An idle-policy batch worker pinned to one CPU beside a busy loop gets a fraction of a
        # percent of it: one d = 16 linear,mle sample (some ms of CPU time) takes W seconds,
        # nearly all of it waiting for a CPU. Measured first with the default deadline, then
        # asked again with a deadline of W/4 (the credit may reach ten deadlines): the wait
        # does not count, the sample is computed, no worker is killed. Sized from the measured
        # W, so a slow build or a busy machine changes the numbers, not the outcome.
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        d = self.start("--batch-idle", "1", "--chunk", "1", workers=1, interactive=None)
        rng = random.Random(3)
        col = [float(rng.randint(0, 200)) for a in range(256)]  # ~10 ms of MLE
        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            batch = [w["pid"] for w in c.stats()["workers"]
                     if os.sched_getscheduler(w["pid"]) == os.SCHED_IDLE][0]
            done = dict(c.submit([col], design="nopovm", dim=16, methods=["linear", "mle"]))
            self.assertEqual([r["status"] for r in done[0]], ["ok", "ok"])  # cache built
            cpu = sorted(os.sched_getaffinity(batch))[0]
            busy = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            self.addCleanup(busy.wait)
            self.addCleanup(busy.kill)
            os.sched_setaffinity(busy.pid, {cpu})
            os.sched_setaffinity(batch, {cpu})

            def schedstat_ms(pid, field):
                with open("/proc/%d/schedstat" % pid) as f:
                    return int(f.read().split()[field]) / 1e6

            def run_delay_ms():
                return schedstat_ms(batch, 1)

            # the loop runs on that CPU before the worker is given anything
            self.assertTrue(wait_until(lambda: schedstat_ms(busy.pid, 0) > 50))

            t0 = time.monotonic()
            done = dict(c.submit([col], design="nopovm", dim=16, methods=["linear", "mle"]))
            starved_ms = (time.monotonic() - t0) * 1e3
            self.assertEqual([r["status"] for r in done[0]], ["ok", "ok"])
            timeout_ms = max(20, int(starved_ms / 4))
            before = run_delay_ms()
            done = dict(c.submit([col], design="nopovm", dim=16, methods=["linear", "mle"],
                                 timeout_ms=timeout_ms))
            waited = run_delay_ms() - before
            self.assertEqual([r["status"] for r in done[0]], ["ok", "ok"], (done, d.logtext()))
            self.assertEqual(c.stats()["totals"]["timeouts"], 0, d.logtext())
            # one item, which waited two deadlines and more
            self.assertGreater(waited, 2 * timeout_ms, (starved_ms, timeout_ms))
        self.assertEqual(d.stop(), 0)

    @staticmethod
    def policy(pid):
        # (policy, whether SCHED_RESET_ON_FORK is set, real-time priority) of pid.
        p = os.sched_getscheduler(pid)
        return p & ~0x40000000, bool(p & 0x40000000), os.sched_getparam(pid).sched_priority

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_live_items_under_fifo(self):
        # rt-priority 1 (the default): the supervisor runs under SCHED_FIFO 2 with
        # reset-on-fork, so that every worker, a replacement too, starts under SCHED_OTHER; the
        # interactive worker is put under SCHED_FIFO 1 before its first item and stays there
        # between items; an item still running once its 100 ms budget is spent goes on under
        # SCHED_OTHER (with its time slice back) and the next item puts it back. Batch workers
        # are never moved.
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        if subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode:
            self.skipTest("needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1")
        hooks = tempfile.mkdtemp(prefix="qtomo-hooks-")
        self.addCleanup(shutil.rmtree, hooks, True)
        d = self.start(workers=1, interactive=None, env={"QTOMO_TEST_HOOK_DIR": hooks})
        fifo, other = (os.SCHED_FIFO, True, 1), (os.SCHED_OTHER, False, 0)
        col = [100.0, 20.0, 30.0, 40.0]
        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            self.assertEqual(self.policy(d.proc.pid), (os.SCHED_FIFO, True, 2))
            pids = [w["pid"] for w in c.stats()["workers"]]
            batch = [p for p in pids if os.getpriority(os.PRIO_PROCESS, p) == 10][0]
            live = [p for p in pids if p != batch][0]
            self.assertEqual([self.policy(p) for p in pids], [other, other])
            r = c.reconstruct(col, design="nopovm", dim=2, methods=["linear"])
            self.assertEqual(r["results"][0]["status"], "ok")
            self.assertEqual(self.policy(live), fifo)
            done = dict(c.submit([col] * 10, design="nopovm", dim=2, methods=["linear"]))
            self.assertEqual(len(done), 10)
            self.assertEqual(self.policy(batch), other)
            self.assertEqual(os.getpriority(os.PRIO_PROCESS, batch), 10)

            out = {}

            def long_item():
                with d.client() as c2:
                    out["r"] = c2.reconstruct([HOOK_WAIT] + col[1:], design="nopovm", dim=2,
                                              methods=["linear"])

            t = threading.Thread(target=long_item)
            t.start()
            self.addCleanup(t.join, 60)
            self.addCleanup(lambda: open(os.path.join(hooks, "go"), "w").close())
            self.assertTrue(wait_until(lambda: os.path.exists(
                os.path.join(hooks, "waiting.%d" % live)), 20))
            # (without CAP_SYS_NICE the reset-on-fork flag stays: compared without it)
            slices = platform.machine() == "x86_64" and self.custom_slices()
            self.assertTrue(wait_until(
                lambda: (self.policy(live)[0::2] == other[0::2]
                         and (not slices or self.slice_ns(live) == 100000)), 20, step=0.01))
            self.assertTrue(t.is_alive())  # the item still runs
            open(os.path.join(hooks, "go"), "w").close()
            t.join(60)
            self.assertIn("r", out)
            # the hook sample is nonsense (a huge negative count): its own error, not a crash
            self.assertNotEqual(out["r"]["results"][0].get("error", {}).get("code"), -32003)
            # the item may have run past its budget, which is then owed: later items (ordinary
            # meanwhile) get the policy back once a quarter of the time since has paid it

            def live_again():
                r = c.reconstruct(col, design="nopovm", dim=2, methods=["linear"])
                self.assertEqual(r["results"][0]["status"], "ok")
                return self.policy(live) == fifo

            self.assertTrue(wait_until(live_again, 30, step=0.05))
            # a replacement starts under the ordinary policy: reset on fork
            os.kill(batch, signal.SIGKILL)
            self.assertTrue(wait_until(lambda: batch not in [w["pid"] for w in
                                                             c.stats()["workers"]]
                                       and c.status()["n_workers"] == 2, 30))
            new = [w["pid"] for w in c.stats()["workers"] if w["pid"] != live][0]
            self.assertEqual(self.policy(new), other)
            self.assertEqual(c.stats()["totals"]["timeouts"], 0)
        log = d.logtext()
        self.assertNotIn("SCHED_FIFO", log)
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(HOOKS, "qtomod built without test hooks")
    def test_fifo_item_computing_on_one_core(self):
        # The whole daemon on one CPU (taskset): an interactive item that computes without end
        # under SCHED_FIFO cannot keep the supervisor, one priority above it, off that CPU: the
        # supervisor's tick takes the worker out of the policy once its budget is spent, and
        # another connection is answered while the item still runs. (At equal priorities the
        # supervisor would wait for the item to end.)
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        if subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode:
            self.skipTest("needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 2")
        hooks = tempfile.mkdtemp(prefix="qtomo-hooks-")
        self.addCleanup(shutil.rmtree, hooks, True)
        cpu = sorted(os.sched_getaffinity(0))[0]
        d = self.start(workers=1, interactive=None, env={"QTOMO_TEST_HOOK_DIR": hooks},
                       wrap=["taskset", "-c", str(cpu)])
        col = [100.0, 20.0, 30.0, 40.0]
        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            r = c.reconstruct(col, design="nopovm", dim=2, methods=["linear"])
            self.assertEqual(r["results"][0]["status"], "ok")
            live = r["worker"]
            self.assertEqual(self.policy(live)[0::2], (os.SCHED_FIFO, 1))
            out = {}

            def spin_item():
                with d.client() as c2:
                    out["r"] = c2.reconstruct([HOOK_SPIN] + col[1:], design="nopovm", dim=2,
                                              methods=["linear"])

            t = threading.Thread(target=spin_item)
            t.start()
            self.addCleanup(t.join, 90)
            self.addCleanup(lambda: open(os.path.join(hooks, "go"), "w").close())
            self.assertTrue(wait_until(lambda: os.path.exists(
                os.path.join(hooks, "waiting.%d" % live)), 20))
            self.assertTrue(wait_until(lambda: self.policy(live)[0] == os.SCHED_OTHER, 40,
                                       step=0.01))
            with d.client() as c3:
                self.assertEqual(c3.status()["n_workers"], 2)
            self.assertTrue(t.is_alive())  # the item still computes
            open(os.path.join(hooks, "go"), "w").close()
            t.join(60)
            self.assertIn("r", out)
            self.assertNotEqual(out["r"]["results"][0].get("error", {}).get("code"), -32003)
            self.assertEqual(c.stats()["totals"]["crashes"], 0)
        self.assertEqual(d.stop(), 0)

    def test_live_items_without_fifo(self):
        # Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 the supervisor cannot use SCHED_FIFO:
        # said once, and nothing is asked of the workers; live samples are served all the same.
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            self.skipTest("the test runs under another policy, which qtomod keeps")
        wrap = ["prlimit", "--rtprio=0:0", "--"]
        if os.geteuid() == 0:
            wrap = ["setpriv", "--bounding-set", "-sys_nice", "--"] + wrap
        d = self.start(workers=1, interactive=None, wrap=wrap)
        with d.client() as c:
            self.assertTrue(wait_until(lambda: c.status()["n_workers"] == 2))
            sup = d.proc.pid  # setpriv and prlimit exec it
            with open("/proc/%d/comm" % sup) as f:
                self.assertEqual(f.read().strip(), "qtomod")
            for _ in range(3):
                r = c.reconstruct([100.0, 20.0, 30.0, 40.0], design="nopovm", dim=2,
                                  methods=["linear"])
                self.assertEqual(r["results"][0]["status"], "ok")
            for p in [w["pid"] for w in c.stats()["workers"]] + [sup]:
                self.assertEqual(os.sched_getscheduler(p), os.SCHED_OTHER)
        log = d.logtext()
        self.assertEqual(log.count("live samples run under the ordinary policy"), 1, log)
        self.assertNotIn("cannot set SCHED_FIFO", log)
        self.assertEqual(d.stop(), 0)

    def test_design_put_custom(self):
        d = self.start("--chunk", "3")
        text = json.dumps(PAULI6)
        dpath, cpath = os.path.join(d.dir, "pauli6.json"), os.path.join(d.dir, "pauli6.csv")
        with open(dpath, "w") as f:
            f.write(text)
        cols = pauli6_columns(10, float)
        write_columns(cpath, cols)
        recs = local_records(cpath, "--design", "custom", "--design-file", dpath,
                             "--method", "linear,mle")
        self.assertEqual(len(recs), 2 * len(cols))
        self.assertEqual(recs[-1]["status"], "error")  # the zero group
        methods = ["linear", "mle"]

        def same(r, res):
            self.assertEqual(res["status"], r["status"], r)
            if r["status"] != "ok":
                self.assertEqual(res["error"]["code"], r["error"]["code"])
                return
            for i, row in enumerate(r["rho"]["re"]):  # bit for bit, as --local
                for j, re in enumerate(row):
                    z = res["rho"][i][j]
                    self.assertEqual((z.real, z.imag), (re, r["rho"]["im"][i][j]),
                                     (r["sample"], r["method"], i, j))
            for k, v in r["metrics"].items():
                self.assertEqual(res["metrics"][k], v, (r["sample"], r["method"], k))

        with d.client() as c:
            did = c.design_put(text)
            self.assertRegex(did, r"^custom-[0-9a-f]{32}$")
            self.assertEqual(did, recs[0]["design_id"])  # the same content id as --local
            self.assertEqual(c.design_put(text), did)
            got = dict(c.submit(cols, design="custom", design_id=did, methods=methods))
            self.assertEqual(sorted(got), list(range(len(cols))))
            self.assertEqual(c.last_totals["n_err"], 1)
            for r in recs:
                same(r, got[r["sample"]][methods.index(r["method"])])
            r = c.reconstruct(cols[3], design="custom", design_id=did, methods=methods)
            for k in range(len(methods)):
                same(recs[2 * 3 + k], r["results"][k])
            # An id nobody uploaded: not found, and the message says what to do.
            for call in (lambda i: c.reconstruct(cols[0], design="custom", design_id=i),
                         lambda i: list(c.submit(cols, design="custom", design_id=i))):
                with self.assertRaises(q.QtomoError) as e:
                    call("custom-" + "0" * 32)
                self.assertEqual(e.exception.code, q.NOT_FOUND)
                self.assertIn("design.put", e.exception.message)
            with self.assertRaises(q.QtomoError) as e:
                c.reconstruct(cols[0], design="custom")
            self.assertEqual(e.exception.code, q.INVALID_PARAMS)
            self.assertIn("design_id", e.exception.message)
            # Invalid design texts: -32602 naming the problem; the daemon goes on.
            for bad, what in (
                    ('{"dim":2,"vectors":{"re":[[1,0],[0,1,2],[1,1],[1,-1]]}}', "row 1"),
                    ('{"dim":2,"vectors":{"re":[[1,0],[0,1],[1,0],[0,1]]}}',
                     "not informationally complete"),
                    ('{"dim":2,', "invalid JSON"),
                    ('{"dim":2,"vectors":{"re":[[1,0],[0,1]]},"colour":1}', "colour")):
                with self.assertRaises(q.QtomoError) as e:
                    c.design_put(bad)
                self.assertEqual(e.exception.code, q.INVALID_PARAMS, bad)
                self.assertIn(what, e.exception.message, bad)
            r = c.reconstruct(cols[3], design="custom", design_id=did, methods=methods)
            same(recs[2 * 3], r["results"][0])
            st = c.stats()
            self.assertEqual(st["n_workers"], 2)
            self.assertEqual(st["totals"]["crashes"], 0)
            self.assertEqual(st["inflight"], 0)
            self.assertIn(did + "-d2.qtpc", [e["name"] for e in c.cache_list()["entries"]])
        self.assertEqual(d.stop(), 0)
        # The file removed after a submit was accepted (evicted, or deleted by hand): every
        # sample fails, saying to upload the design again (it said "No such file"). A fresh
        # daemon, whose workers are stopped while the file goes, so that none has it mapped
        # (a worker that has computes on from its mapping, correctly).
        d = self.start("--chunk", "3")
        with d.client() as c:
            did = c.design_put(text)
            workers = [int(x) for x in subprocess.run(
                ["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True).stdout.split()]
            got = {}

            def submit():
                with d.client() as c2:
                    got.update(c2.submit(cols[:3], design="custom", design_id=did,
                                         methods=["linear"]))
            for w in workers:
                os.kill(w, signal.SIGSTOP)
            try:
                t = threading.Thread(target=submit, daemon=True)
                t.start()
                self.assertTrue(wait_until(lambda: ": 3 samples, custom" in d.logtext(), 30),
                                d.logtext()[-2000:])
                os.unlink(os.path.join(d.dir, "cache", did + "-d2.qtpc"))
            finally:
                for w in workers:
                    os.kill(w, signal.SIGCONT)
            t.join(60)
            self.assertEqual(sorted(got), [0, 1, 2])
            for res in got.values():
                self.assertEqual(res[0]["status"], "error", res)
                self.assertIn("upload it again with design.put", res[0]["error"]["message"])
        self.assertEqual(d.stop(), 0)

    def test_bootstrap_python_client(self):
        """Error bars through the Python client: every ok result carries them, the same request
        gives the same numbers, first_index keys the resample streams as a submit's index does,
        and probabilities need shots."""
        d = self.start()
        counts = [700, 300, 420, 580, 150, 850]
        probs = [0.7, 0.3, 0.42, 0.58, 0.15, 0.85]
        methods = ("linear", "mle")
        boot = {"resamples": 50, "seed": 7}

        def unc(r):
            self.assertEqual([x["status"] for x in r["results"]], ["ok", "ok"], r)
            return [x["uncertainty"] for x in r["results"]]

        with d.client() as c:
            self.assertIn("bootstrap", c.server_info["features"])
            r = c.reconstruct(counts, "mub", methods=methods, bootstrap=boot)
            for res, u in zip(r["results"], unc(r)):
                self.assertEqual((u["resamples"], u["seed"], u["kind"], u["confidence"]),
                                 (50, 7, "data", 0.95), res["method"])
                self.assertNotIn("error", u)
                self.assertNotIn("shots", u)
                self.assertEqual(u["failed_resamples"], 0)
                pur = u["metrics"]["purity"]
                self.assertGreater(pur["std"], 0)
                self.assertLessEqual(pur["lo"], pur["hi"])
                self.assertTrue(0 < res["metrics"]["purity"] <= 1)
                eig = u["metrics"]["eigenvalues"]
                for k in ("std", "lo", "hi"):
                    self.assertEqual(len(eig[k]), 2)
                self.assertTrue(all(lo <= hi for lo, hi in zip(eig["lo"], eig["hi"])))
                re, im = u["rho_std"]["re"], u["rho_std"]["im"]
                self.assertEqual([len(re), len(re[0]), len(im), len(im[0])], [2, 2, 2, 2])
                self.assertAlmostEqual(re[0][1], re[1][0], places=12)  # rho is Hermitian
                self.assertTrue(re[0][0] > 0 and im[0][1] > 0 and im[0][0] == 0)
            self.assertGreater(r["results"][0]["uncertainty"]["trace_distance_bound"], 0)
            # The same request twice: the same numbers.
            self.assertEqual(unc(c.reconstruct(counts, "mub", methods=methods, bootstrap=boot)),
                             unc(r))
            # first_index names the sample: a reconstruct of sample 5 has the error bars of a
            # submit's sample 5, and they differ from those of sample 0.
            r5 = unc(c.reconstruct(counts, "mub", methods=methods, bootstrap=boot,
                                   first_index=5))
            got = dict(c.submit([counts, counts], "mub", methods=methods, bootstrap=boot,
                                first_index=4))
            self.assertEqual([x["uncertainty"] for x in got[5]], r5)
            self.assertNotEqual(r5[0]["metrics"]["purity"], unc(r)[0]["metrics"]["purity"])
            # Without a seed the server picks one, reports it, and it reproduces the numbers.
            u = unc(c.reconstruct(counts, "mub", methods=methods, bootstrap=20))
            self.assertIsInstance(u[0]["seed"], int)
            self.assertEqual(u[0]["seed"], u[1]["seed"])
            self.assertEqual(unc(c.reconstruct(counts, "mub", methods=methods,
                                               bootstrap={"resamples": 20,
                                                          "seed": u[0]["seed"]})), u)
            # Probabilities are not counts: refused without shots, resampled with them.
            with self.assertRaises(q.QtomoError) as e:
                c.reconstruct(probs, "mub", methods=methods, bootstrap=boot)
            self.assertEqual(e.exception.code, q.INVALID_PARAMS)
            self.assertIn("shots", e.exception.message)
            rp = unc(c.reconstruct(probs, "mub", methods=methods,
                                   bootstrap=dict(boot, shots=1000)))
            for u, uc in zip(rp, unc(r)):
                self.assertEqual((u["resamples"], u["seed"], u["shots"]), (50, 7, 1000))
                self.assertGreater(u["metrics"]["purity"]["std"], 0)
                for k in ("std", "lo", "hi"):  # 1000 shots of probs are the counts above
                    self.assertAlmostEqual(u["metrics"]["purity"][k], uc["metrics"]["purity"][k],
                                           places=9)
            st = c.stats()
            self.assertEqual((st["totals"]["crashes"], st["inflight"]), (0, 0))
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
