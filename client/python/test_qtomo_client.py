"""Offline tests of qtomo_client: golden frames of the C codec and a fake qtomod in a thread.

Run from the repository root:  /usr/bin/python3 -m unittest client/python/test_qtomo_client.py
"""

import os
import socket
import struct
import sys
import tempfile
import threading
import unittest

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qtomo_client as qc  # noqa: E402

GOLDEN = os.path.join(HERE, "..", "..", "tests", "unit", "golden", "proto")

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

RHO = [[0.75, 0.125 - 0.25j], [0.125 + 0.25j, 0.25]]  # the golden result's rho, rho[i][j]


def golden(name):
    with open(os.path.join(GOLDEN, name + ".bin"), "rb") as f:
        return f.read()


def frame(msg):
    body = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def unframe(data):
    return msgpack.unpackb(data[4:], raw=False, strict_map_key=True)


def reconstruct_job():
    """The golden reconstruct request's arguments (tests/unit/test_proto.c)."""
    return dict(values=[0.25] * 4, design="nopovm", dim=2, methods=("linear", "mle"),
                options={"mle-gap-tol": 1e-9, "physical": "smolin"}, timeout_ms=5000)


SUBMIT_COLS = [[40, 10, 25, 30], [0.5, 0.125, 0.25, 0.125]]


def submit_job(matrix=SUBMIT_COLS):
    return dict(matrix=matrix, design="nopovm", dim=2, methods=("linear",), progress_ms=500,
                first_index=10)


def result_notify(index, request=3):
    msg = unframe(golden("result_notify"))
    msg[2][0]["index"] = index
    msg[2][0]["request"] = request
    return frame(msg)


class TestGolden(unittest.TestCase):
    def test_hello_bytes(self):
        msg = [0, 1, "hello", [{"proto": [1, 0], "client": "qtomoctl/0.1.0"}]]
        self.assertEqual(qc.encode_frame(msg), golden("hello"))

    def test_job_bytes(self):
        j = reconstruct_job()
        p = qc.Client._job(qc.values_array(j.pop("values")), j["design"], j["dim"], j["methods"],
                           j["options"], None, j["timeout_ms"], None)
        self.assertEqual(qc.encode_frame([0, 2, "reconstruct", [p]]), golden("reconstruct"))
        mats = [SUBMIT_COLS] + ([np.array(SUBMIT_COLS).T] if np is not None else [])
        for m in mats:
            p = qc.Client._job(qc.matrix_array(m), "nopovm", 2, ("linear",), None, None, None, None)
            p.update(progress_ms=500, first_index=10)
            self.assertEqual(qc.encode_frame([0, 3, "submit", [p]]), golden("submit"))

    def test_decode_results(self):
        for name in ("result_notify", "reconstruct_result"):
            msg = qc.decode_frame(golden(name))
            raw = msg[2][0]["results"] if msg[0] == 2 else msg[3]["results"]
            ok, err = [qc.decode_result(r) for r in raw]
            self.assertEqual(ok["method"], "linear")
            self.assertEqual(ok["rho"], RHO)
            self.assertEqual(ok["metrics"]["eigenvalues"], [0.875, 0.125])
            self.assertEqual(ok["metrics"]["rank"], 2)
            self.assertIs(ok["metrics"]["success"], True)
            self.assertEqual(ok["warnings"], ["negative_eigenvalues_clipped", "not_converged"])
            self.assertEqual(err, {"method": "mle", "dim": 2, "status": "error", "error": {
                "code": qc.INVALID_SAMPLE, "name": "nonfinite", "message": "column 3 is empty"}})
        msg = qc.decode_frame(golden("reconstruct_result"))
        self.assertEqual(msg[3]["timing"], {"queue_ms": 1.5, "compute_ms": 20.25})
        if np is not None:
            ok = qc.decode_result(msg[3]["results"][0], use_numpy=True)
            self.assertTrue(np.array_equal(ok["rho"], np.array(RHO)))
            self.assertEqual(ok["metrics"]["eigenvalues"].tolist(), [0.875, 0.125])

    def test_decode_other(self):
        d = qc.decode_frame
        self.assertEqual(d(golden("progress")), [2, "progress", [
            {"request": 3, "done": 5, "failed": 1, "total": 20, "eta_ms": 1500}]])
        self.assertEqual(d(golden("submit_result")), [1, 3, None, {
            "n_ok": 18, "n_err": 2, "n_cancelled": 0, "elapsed_ms": 1234.5}])
        self.assertEqual(d(golden("error_retry")), [1, 13, {
            "code": qc.BUSY, "message": "the batch queue is full",
            "data": {"retry_after_ms": 250}}, None])
        self.assertEqual(d(golden("error"))[2]["code"], qc.INVALID_PARAMS)
        self.assertEqual(d(golden("bye")), [2, "bye", [
            {"reason": "shutdown", "retry_after_ms": 1000}]])
        self.assertEqual(d(golden("protocol_error"))[2][0]["code"], qc.PARSE_ERROR)
        info = d(golden("hello_result"))[3]
        self.assertEqual(info["limits"]["max_frame"], 64 << 20)
        self.assertEqual(info["proto"], [1, 0])

    def test_target_and_errors(self):
        t = qc.target_array(RHO)
        self.assertEqual(t["shape"], [2, 2])
        self.assertEqual(struct.unpack("<8d", t["data"]),
                         (0.75, 0, 0.125, 0.25, 0.125, -0.25, 0.25, 0))  # column-major, re/im
        self.assertEqual(qc.decode_array(t), RHO)
        if np is not None:
            self.assertEqual(qc.target_array(np.array(RHO)), t)
        with self.assertRaises(qc.QtomoError) as cm:
            qc.encode_frame([0, 1, "x", [{"a": b"\0" * 5000}]], 4096)
        self.assertEqual(cm.exception.code, qc.TOO_LARGE)
        with self.assertRaises(qc.QtomoError) as cm:
            qc.decode_frame(struct.pack(">I", 5000) + b"\0" * 5000, 4096)
        self.assertEqual(cm.exception.code, qc.TOO_LARGE)


class FakeServer:
    """qtomod stand-in on a temporary Unix socket: runs script(self) on one connection."""

    def __init__(self, script):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "qtomod.sock")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(1)
        self.error = None
        self.script = script
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.conn, _ = self.lsock.accept()
            self.conn.settimeout(10)
            with self.conn:
                self.script(self)
        except BaseException as e:  # reported by finish()
            self.error = e

    def recv(self):
        hdr = self._exact(4)
        return hdr + self._exact(struct.unpack(">I", hdr)[0])

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError("client closed")
            buf += chunk
        return buf

    def expect(self, want):
        """Receive a frame equal to want (golden name, raw bytes or message); returns it."""
        got = self.recv()
        if isinstance(want, str):
            want = golden(want)
        if isinstance(want, bytes):
            assert got == want, (unframe(got), unframe(want))
        else:
            assert unframe(got) == want, (unframe(got), want)
        return unframe(got)

    def send(self, *frames):
        for f in frames:
            self.conn.sendall(golden(f) if isinstance(f, str) else f)

    def reply(self, rid, result):
        self.send(frame([1, rid, None, result]))

    def hello(self, max_frame=None):
        self.expect("hello")
        if max_frame is None:
            self.send("hello_result")
        else:
            msg = unframe(golden("hello_result"))
            msg[3]["limits"]["max_frame"] = max_frame
            self.send(frame(msg))

    def finish(self, test):
        self.thread.join(10)
        self.lsock.close()
        self.dir.cleanup()
        if self.error is not None:
            raise self.error
        test.assertFalse(self.thread.is_alive())


class TestEndToEnd(unittest.TestCase):
    def connect(self, srv, **kw):
        return qc.Client(srv.path, timeout=10, client_name="qtomoctl/0.1.0", **kw)

    def test_session(self):
        def script(s):
            s.hello()
            s.expect("reconstruct")
            s.send("reconstruct_result")
            s.expect("submit")
            s.send(result_notify(11), "progress", result_notify(10), "submit_result")
            s.expect("cancel")
            s.reply(4, {"found": False})
            for rid, name in ((5, "status"), (6, "stats"), (7, "cache_list")):
                s.expect(name)
                s.reply(rid, {"method": name})
            s.expect([0, 8, "cache.warm", [{"items": [{"design": "mub", "d": 4}]}]])
            s.reply(8, {"warmed": 1})
            s.expect("cache_evict")
            s.reply(9, {"bytes": 123})
            s.expect("cache_verify")
            s.reply(10, {"checked": 2, "damaged": []})
            s.expect("reload")
            s.reply(11, {"generation": 1})
            s.expect([0, 12, "design.put", [{"design": "{}"}]])
            s.send(golden("error"))
            s.expect([0, 13, "design.put", [{"design": "{\"dim\": 2}"}]])
            s.reply(13, {"id": "custom-" + "0" * 32})
            s.recv()  # 14: status
            s.send("bye")

        for use_numpy in ((False, True) if np is not None else (False,)):
            srv = FakeServer(script)
            with self.connect(srv, numpy=use_numpy) as c:
                self.assertEqual(c.server_info["server"], "qtomod/0.1.0")
                self.assertEqual(c.max_frame, 64 << 20)
                r = c.reconstruct(**reconstruct_job())
                self.assertEqual((r["index"], r["worker"]), (0, 1))
                rho = r["results"][0]["rho"]
                if use_numpy:
                    self.assertIsInstance(rho, np.ndarray)
                    self.assertTrue(np.array_equal(rho, np.array(RHO)))
                else:
                    self.assertEqual(rho, RHO)
                self.assertEqual(r["results"][1]["error"]["code"], qc.INVALID_SAMPLE)
                progress = []
                job = submit_job(np.array(SUBMIT_COLS).T if use_numpy else SUBMIT_COLS)
                got = list(c.submit(on_progress=progress.append, **job))
                self.assertEqual([i for i, _ in got], [11, 10])
                self.assertEqual(got[0][1][0]["metrics"]["eigenvalues"][0], 0.875)
                self.assertEqual(progress[0]["done"], 5)
                self.assertEqual(c.last_totals["n_ok"], 18)
                self.assertEqual(c.cancel(3), {"found": False})
                self.assertEqual(c.status(), {"method": "status"})
                self.assertEqual(c.stats(), {"method": "stats"})
                self.assertEqual(c.cache_list(), {"method": "cache_list"})
                self.assertEqual(c.cache_warm([("mub", 4)]), {"warmed": 1})
                self.assertEqual(c.cache_evict("mub", 4), {"bytes": 123})
                self.assertEqual(c.cache_verify()["checked"], 2)
                self.assertEqual(c.reload(), {"generation": 1})
                c._next_id = 12  # the golden error frame answers id 12
                with self.assertRaises(qc.QtomoError) as cm:
                    c.design_put("{}")
                self.assertEqual(cm.exception.code, qc.INVALID_PARAMS)
                self.assertIn("mle-gap-tol", cm.exception.message)
                self.assertEqual(c.design_put('{"dim": 2}'), "custom-" + "0" * 32)
                with self.assertRaises(qc.QtomoConnectionError) as cm:
                    c.status()
                self.assertIsInstance(cm.exception, ConnectionError)
                self.assertEqual(c.bye["reason"], "shutdown")
                self.assertEqual(cm.exception.data["retry_after_ms"], 1000)
            srv.finish(self)

    def test_cancel_submit(self):
        totals = {"n_ok": 1, "n_err": 0, "n_cancelled": 1, "elapsed_ms": 3.0}

        def script(s):
            s.hello()
            s.expect("submit")
            s.send(result_notify(10))
            s.expect([0, 4, "cancel", [{"id": 3}]])
            s.send(result_notify(11))  # arrives while the client waits for the cancel reply
            s.reply(4, {"found": True})
            s.send(frame([1, 3, {"code": qc.CANCELLED, "message": "cancelled", "data": totals},
                          None]))
            s.expect([0, 5, "cancel", [{"id": 3}]])
            s.reply(5, {"found": False})  # discarded by the client (wait=False)
            s.expect([0, 6, "status", [{}]])
            s.reply(6, {"ok": True})

        srv = FakeServer(script)
        with self.connect(srv, numpy=False) as c:
            c._next_id = 3
            gen = c.submit(**submit_job())
            rid = c.last_request_id
            self.assertEqual(next(gen)[0], 10)
            self.assertEqual(c.cancel(rid), {"found": True})
            self.assertEqual(next(gen)[0], 11)
            with self.assertRaises(qc.QtomoError) as cm:
                next(gen)
            self.assertEqual((cm.exception.code, cm.exception.data), (qc.CANCELLED, totals))
            self.assertEqual(c.last_totals, totals)
            self.assertIsNone(c.cancel(rid, wait=False))
            self.assertEqual(c.status(), {"ok": True})
        srv.finish(self)

    def test_frame_limits(self):
        def script(s):
            s.hello(max_frame=4096)
            s.expect("status")  # the oversized reconstruct was never sent
            s.conn.sendall(struct.pack(">I", 4097))  # header only: refused before the body

        srv = FakeServer(script)
        with self.connect(srv) as c:
            self.assertEqual(c.max_frame, 4096)
            with self.assertRaises(qc.QtomoError) as cm:
                c.reconstruct([1.0] * 1000, "nopovm")
            self.assertEqual(cm.exception.code, qc.TOO_LARGE)
            c._next_id = 5
            with self.assertRaises(qc.QtomoError) as cm:
                c.status()
            self.assertEqual(cm.exception.code, qc.TOO_LARGE)
            with self.assertRaises(qc.QtomoConnectionError):
                c.status()  # the client closed the connection
        srv.finish(self)

    def test_protocol_error(self):
        def script(s):
            s.hello()
            s.recv()
            s.send("protocol_error")

        srv = FakeServer(script)
        with self.connect(srv) as c:
            with self.assertRaises(qc.QtomoError) as cm:
                c.status()
            self.assertEqual(cm.exception.code, qc.PARSE_ERROR)
            self.assertIn("268435455", cm.exception.message)
        srv.finish(self)

    def test_socket_path(self):
        env = dict(os.environ)
        try:
            os.environ.pop("QTOMO_SOCKET", None)
            os.environ["XDG_RUNTIME_DIR"] = "/x"
            self.assertEqual(qc.default_socket_path(), "/x/qtomo/qtomod.sock")
            os.environ["QTOMO_SOCKET"] = "/y.sock"
            self.assertEqual(qc.default_socket_path(), "/y.sock")
            del os.environ["QTOMO_SOCKET"], os.environ["XDG_RUNTIME_DIR"]
            self.assertEqual(qc.default_socket_path(), "/run/qtomo/qtomod.sock")
        finally:
            os.environ.clear()
            os.environ.update(env)


if __name__ == "__main__":
    unittest.main()
