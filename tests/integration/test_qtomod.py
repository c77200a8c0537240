"""Integration tests of qtomod: the real daemon on a private socket, driven through the Python
client (client/python/qtomo_client.py) and raw frames. Run by ctest with QTOMOD, QTOMOCTL and
QTOMO_SRC in the environment; needs /usr/bin/python3 with python3-msgpack."""
import csv
import json
import os
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

SRC = os.environ.get("QTOMO_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
import msgpack  # noqa: E402
import qtomo_client as q  # noqa: E402

QTOMOD = os.environ.get("QTOMOD", "qtomod")
QTOMOCTL = os.environ.get("QTOMOCTL", "qtomoctl")
HOOKS = os.environ.get("QTOMO_TEST_HOOKS") == "1"
HOOK_CRASH = -7.25e300
HOOK_HANG = -8.5e300
EXAMPLES = os.path.join(SRC, "client", "examples", "data")


def read_columns(path):
    with open(path) as f:
        rows = [[float(x) for x in r] for r in csv.reader(f) if r]
    return [list(c) for c in zip(*rows)]


class Notify:
    """A fake systemd NOTIFY_SOCKET: collects datagrams."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            except OSError:
                return

    def wait_for(self, text, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if any(text in m for m in self.msgs):
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


class Daemon:
    def __init__(self, *args, workers=2, env=None, activate=False):
        self.dir = tempfile.mkdtemp(prefix="qtomod-test-")
        self.sock = os.path.join(self.dir, "qtomod.sock")
        self.notify = Notify(os.path.join(self.dir, "notify.sock"))
        e = dict(os.environ)
        e.update(env or {})
        e["NOTIFY_SOCKET"] = self.notify.path
        cmd = [QTOMOD, "--config", "/dev/null", "--cache-dir", os.path.join(self.dir, "cache"),
               "--workers", str(workers)] + list(args)
        if activate:
            cmd = ["systemd-socket-activate", "-l", self.sock, "--fdname=qtomo",
                   "-E", "NOTIFY_SOCKET"] + cmd
        else:
            cmd += ["--socket", self.sock]
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(cmd, env=e, stderr=self.log, stdout=self.log)
        if activate:
            end = time.time() + 10
            while not os.path.exists(self.sock) and time.time() < end:
                time.sleep(0.02)
            socket.socket(socket.AF_UNIX).connect(self.sock)  # exec happens on first connect
        if not self.notify.wait_for("READY=1"):
            raise AssertionError("no READY=1; log:\n" + self.logtext())

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def client(self, **kw):
        return q.Client(self.sock, timeout=60, numpy=False, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.notify.close()
            self.log.close()

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


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
        d = self.start()
        with d.client() as c:
            self.assertEqual(c.server_info["proto"], [1, 0])
            self.assertEqual(c.server_info["workers"], 2)
            st = c.status()
            self.assertEqual(st["n_workers"], 2)
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
            self.assertEqual(c.stats()["totals"]["crashes"], 2)
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
            self.assertTrue(d.notify.wait_for("RELOADING=1"))
            gen = c.reload()["generation"]
            self.assertEqual(gen, 2)
            time.sleep(0.5)
            after = {w["pid"] for w in c.stats()["workers"] if w["state"] in ("idle", "busy", "starting")}
            self.assertFalse(before & after)
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
        time.sleep(4)  # never read: the daemon stops feeding it, then closes it
        with d.client() as c:
            st = c.status()
            self.assertEqual(st["inflight"], 0)
        self.assertIn("not reading its results", d.logtext())
        s.close()
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
