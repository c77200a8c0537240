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


def result_notify(index, request=3, uncertainty=None):
    msg = unframe(golden("result_notify"))
    msg[2][0]["index"] = index
    msg[2][0]["request"] = request
    if uncertainty is not None:
        msg[2][0]["uncertainty"] = uncertainty
    return frame(msg)


def f64m(rows, cols, flat):
    """A bulk f64le [rows, cols] array of the column-major values flat."""
    return {"dtype": "f64le", "shape": [rows, cols],
            "data": struct.pack("<%dd" % len(flat), *flat)}


# Error bars as the server packs them (proto/qp_boot.c qp_pack_uncertainty), for a d = 2 result:
# metrics [3, n] column-major, element j's (std, lo, hi) at 3j, 3j+1, 3j+2; rho_std d x d.
UNC_OK = {"resamples": 200, "kind": "data", "seed": 7, "confidence": 0.9, "shots": 1000,
          "failed_resamples": 3, "warnings": ["boundary_estimate", "resamples_failed"],
          "metrics": {"purity": f64m(3, 1, [0.01, 0.8, 0.9]),
                      "eigenvalues": f64m(3, 2, [0.02, 0.85, 0.95, 0.03, 0.05, 0.15]),
                      "some_new_vector": f64m(3, 2, [1, 2, 3, 4, 5, 6])},
          "rho_std": {"re": f64m(2, 2, [0.1, 0.2, 0.3, 0.4]),
                      "im": f64m(2, 2, [0.0, 0.5, 0.6, 0.0])},
          "trace_distance_bound": 0.125}
UNC_OK_DECODED = {
    "resamples": 200, "kind": "data", "seed": 7, "confidence": 0.9, "shots": 1000,
    "failed_resamples": 3, "warnings": ["boundary_estimate", "resamples_failed"],
    "metrics": {"purity": {"std": 0.01, "lo": 0.8, "hi": 0.9},
                "eigenvalues": {"std": [0.02, 0.03], "lo": [0.85, 0.05], "hi": [0.95, 0.15]},
                "some_new_vector": {"std": [1, 4], "lo": [2, 5], "hi": [3, 6]}},
    "rho_std": {"re": [[0.1, 0.3], [0.2, 0.4]], "im": [[0.0, 0.6], [0.5, 0.0]]},  # [i][j]
    "trace_distance_bound": 0.125}
UNC_ERR = {"resamples": 50, "kind": "parametric", "seed": 123, "confidence": 0.95,
           "failed_resamples": 49, "warnings": ["resamples_failed"],
           "error": {"code": qc.INTERNAL, "name": "not_converged",
                     "message": "fewer than two resamples could be estimated"}}


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

    def test_decode_spectral(self):
        def f64v(*x):
            return {"dtype": "f64le", "shape": [len(x)], "data": struct.pack("<%dd" % len(x), *x)}

        raw = {"method": "linear", "dim": 2, "status": "ok", "metrics": {},
               "spectral": {"dominant_eigenvalue": 0.75, "amplitudes": f64v(0.6, 0.8),
                            "phases_pi": f64v(0.0, 1.0), "eigenvalues": f64v(0.75, 0.25)}}
        sp = qc.decode_result(raw)["spectral"]
        self.assertEqual(sp, {"dominant_eigenvalue": 0.75, "amplitudes": [0.6, 0.8],
                              "phases_pi": [0.0, 1.0], "eigenvalues": [0.75, 0.25]})
        if np is not None:
            sp = qc.decode_result(raw, use_numpy=True)["spectral"]
            self.assertEqual(sp["phases_pi"].tolist(), [0.0, 1.0])

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


class TestBootstrap(unittest.TestCase):
    def test_params(self):
        bp = qc.bootstrap_params
        self.assertIsNone(bp(None))
        # kind and confidence are always sent (as qp_pack_boot_req); seed and shots when given.
        want = {"resamples": 50, "kind": "data", "confidence": 0.95}
        for b in (50, {"resamples": 50}, {"resamples": 50, "kind": None, "seed": None,
                                          "confidence": None, "shots": None}):
            got = bp(b)
            self.assertEqual(got, want, b)
            self.assertEqual(list(got), ["resamples", "kind", "confidence"])
        full = {"shots": 1000, "confidence": 0.5, "seed": (1 << 53) - 1, "kind": "parametric",
                "resamples": 100000}
        got = bp(full)
        self.assertEqual(got, full)
        self.assertEqual(list(got), ["resamples", "kind", "seed", "confidence", "shots"])
        self.assertIsInstance(bp({"resamples": 2, "confidence": 1 / 2})["confidence"], float)
        self.assertEqual(bp({"resamples": 2, "seed": 0})["seed"], 0)
        if np is not None:
            self.assertEqual(bp(np.int64(7)), dict(want, resamples=7))
            got = bp({"resamples": np.uint32(9), "seed": np.int64(3),
                      "confidence": np.float64(0.9), "shots": np.int32(10)})
            self.assertEqual(msgpack.packb(got), msgpack.packb({
                "resamples": 9, "kind": "data", "seed": 3, "confidence": 0.9, "shots": 10}))

    def test_params_refused(self):
        bad = [  # (bootstrap, the field the message names)
            (1, "bootstrap.resamples"), (100001, "bootstrap.resamples"),
            (0, "bootstrap.resamples"), (-5, "bootstrap.resamples"),
            (True, "bootstrap:"), (50.0, "bootstrap:"), ("50", "bootstrap:"), ([50], "bootstrap:"),
            ({}, "bootstrap.resamples: missing"), ({"kind": "data"}, "bootstrap.resamples"),
            ({"resamples": 2.5}, "bootstrap.resamples"), ({"resamples": True}, "resamples"),
            ({"resamples": 50, "seeds": 1}, "'seeds'"),
            ({"resamples": 50, "kind": "poisson"}, "bootstrap.kind"),
            ({"resamples": 50, "kind": "Data"}, "bootstrap.kind"),
            ({"resamples": 50, "seed": -1}, "bootstrap.seed"),
            ({"resamples": 50, "seed": 1 << 53}, "bootstrap.seed"),
            ({"resamples": 50, "seed": 1.0}, "bootstrap.seed"),
            ({"resamples": 50, "confidence": 0}, "bootstrap.confidence"),
            ({"resamples": 50, "confidence": 1.0}, "bootstrap.confidence"),
            ({"resamples": 50, "confidence": float("nan")}, "bootstrap.confidence"),
            ({"resamples": 50, "confidence": "0.9"}, "bootstrap.confidence"),
            ({"resamples": 50, "shots": 0}, "bootstrap.shots"),
            ({"resamples": 50, "shots": 1 << 53}, "bootstrap.shots"),
            ({"resamples": 50, "shots": 10.0}, "bootstrap.shots")]
        for b, field in bad:
            with self.assertRaises(ValueError, msg=repr(b)) as cm:
                qc.bootstrap_params(b)
            self.assertIn(field, str(cm.exception), b)

    def test_job_bytes(self):
        """The request's key order is the C encoder's (qp_pack_job): bootstrap last of the
        job's fields, then a reconstruct's first_index."""
        b = qc.bootstrap_params({"resamples": 50, "seed": 7, "shots": 100})
        vals = qc.values_array([0.25] * 4)
        p = qc.Client._job(vals, "nopovm", 2, ("linear",), None, None, 5000, None, b)
        self.assertEqual(list(p), ["values", "design", "d", "methods", "options", "timeout_ms",
                                   "bootstrap"])
        self.assertEqual(p["bootstrap"], {"resamples": 50, "kind": "data", "seed": 7,
                                          "confidence": 0.95, "shots": 100})
        p = qc.Client._job(vals, "nopovm", 2, ("linear",), None, None, 5000, None)
        self.assertNotIn("bootstrap", p)

    def test_decode_uncertainty(self):
        self.assertIsNone(qc.decode_uncertainty(None))
        self.assertEqual(qc.decode_uncertainty(UNC_OK), UNC_OK_DECODED)
        self.assertEqual(qc.decode_uncertainty(UNC_ERR), UNC_ERR)  # kept as received
        one = qc.decode_uncertainty(dict(UNC_OK, metrics={"bell_fidelities":
                                                          f64m(3, 1, [1, 2, 3])}))
        self.assertEqual(one["metrics"], {"bell_fidelities": {"std": [1], "lo": [2], "hi": [3]}})
        u = dict(UNC_OK)
        del u["shots"], u["warnings"], u["trace_distance_bound"]
        got = qc.decode_uncertainty(u)
        self.assertEqual(list(got), ["resamples", "kind", "seed", "confidence",
                                     "failed_resamples", "metrics", "rho_std"])
        # Through a whole frame: results [ok, error] with uncertainty [map, nil].
        msg = unframe(golden("reconstruct_result"))
        msg[3]["uncertainty"] = [UNC_OK, None]
        msg = qc.decode_frame(frame(msg))
        ok, err = qc.decode_results(msg[3]["results"], msg[3]["uncertainty"])
        self.assertEqual(ok["uncertainty"], UNC_OK_DECODED)
        self.assertEqual(ok["rho"], RHO)
        self.assertNotIn("uncertainty", err)
        self.assertEqual(qc.decode_results(msg[3]["results"], [UNC_ERR, UNC_ERR])[1]
                         ["uncertainty"], UNC_ERR)
        self.assertEqual(qc.decode_results(msg[3]["results"]),
                         [qc.decode_result(r) for r in msg[3]["results"]])
        if np is not None:
            got = qc.decode_uncertainty(UNC_OK, use_numpy=True)
            pur, eig = got["metrics"]["purity"], got["metrics"]["eigenvalues"]
            self.assertEqual((type(pur["std"]), pur["lo"], pur["hi"]), (float, 0.8, 0.9))
            self.assertIsInstance(eig["std"], np.ndarray)
            for k in ("std", "lo", "hi"):
                self.assertEqual(eig[k].tolist(), UNC_OK_DECODED["metrics"]["eigenvalues"][k])
            for k in ("re", "im"):
                self.assertTrue(np.array_equal(got["rho_std"][k],
                                               np.array(UNC_OK_DECODED["rho_std"][k])))

    def test_decode_uncertainty_refused(self):
        res = unframe(golden("reconstruct_result"))[3]["results"]
        for unc in ([UNC_OK], [UNC_OK, None, None], {"0": UNC_OK}, [UNC_OK, 5]):
            with self.assertRaises(qc.QtomoError, msg=repr(unc)[:40]) as cm:
                qc.decode_results(res, unc)
            self.assertEqual(cm.exception.code, qc.PARSE_ERROR)
        bad = []
        for key, val in (("purity", f64m(2, 1, [0.1, 0.2])),    # not [3, n]
                         ("purity", {"dtype": "f64le", "shape": [3],
                                     "data": struct.pack("<3d", 1, 2, 3)}),
                         ("purity", dict(f64m(3, 1, [1, 2, 3]), shape=[3, 2]))):  # short data
            u = dict(UNC_OK, metrics={key: val})
            bad.append(u)
        bad.append(dict(UNC_OK, rho_std={"re": UNC_OK["rho_std"]["re"]}))
        bad.append(dict(UNC_OK, rho_std={"re": f64m(1, 4, [0] * 4), "im": f64m(1, 4, [0] * 4)}))
        bad.append({k: v for k, v in UNC_OK.items() if k != "metrics"})
        for u in bad:
            with self.assertRaises(qc.QtomoError) as cm:
                qc.decode_uncertainty(u)
            self.assertEqual(cm.exception.code, qc.PARSE_ERROR)


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

    def hello(self, max_frame=None, features=None):
        self.expect("hello")
        if max_frame is None and features is None:
            self.send("hello_result")  # features: stream, progress
        else:
            msg = unframe(golden("hello_result"))
            if max_frame is not None:
                msg[3]["limits"]["max_frame"] = max_frame
            if features is not None:
                msg[3]["features"] = features
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

    def test_bootstrap(self):
        values = [700, 300, 420, 580, 150, 850]
        boot = {"resamples": 50, "kind": "data", "seed": 7, "confidence": 0.95}
        rec = {"values": qc.values_array(values), "design": "mub",
               "methods": ["linear", "mle"], "options": {}, "bootstrap": boot, "first_index": 5}
        sub = {"values": qc.matrix_array(SUBMIT_COLS), "design": "nopovm", "d": 2,
               "methods": ["linear"], "options": {},
               "bootstrap": {"resamples": 2, "kind": "parametric", "confidence": 0.5,
                             "shots": 1000},
               "progress_ms": 0, "first_index": 10}

        def script(s):
            s.hello(features=["bootstrap"])
            s.expect(frame([0, 2, "reconstruct", [rec]]))  # bytes: the keys in this order
            msg = unframe(golden("reconstruct_result"))
            msg[1], msg[3]["uncertainty"] = 2, [UNC_OK, None]
            s.send(frame(msg))
            s.expect(frame([0, 3, "submit", [sub]]))
            s.send(result_notify(11, 3, [UNC_ERR, None]), result_notify(10, 3),
                   result_notify(12, 3, [None, None]), "submit_result")

        for use_numpy in ((False, True) if np is not None else (False,)):
            srv = FakeServer(script)
            with self.connect(srv, numpy=use_numpy) as c:
                r = c.reconstruct(values, "mub", bootstrap={"resamples": 50, "seed": 7},
                                  first_index=5)
                self.assertNotIn("uncertainty", r)  # moved into the results
                ok, err = r["results"]
                self.assertNotIn("uncertainty", err)
                u = ok["uncertainty"]
                if use_numpy:
                    self.assertEqual(u["metrics"]["eigenvalues"]["lo"].tolist(), [0.85, 0.05])
                    self.assertEqual(u["rho_std"]["re"].tolist(), [[0.1, 0.3], [0.2, 0.4]])
                else:
                    self.assertEqual(u, UNC_OK_DECODED)
                self.assertEqual(u["metrics"]["purity"], {"std": 0.01, "lo": 0.8, "hi": 0.9})
                got = dict(c.submit(SUBMIT_COLS, "nopovm", dim=2, methods=("linear",),
                                    first_index=10, bootstrap={"resamples": 2, "shots": 1000,
                                                               "kind": "parametric",
                                                               "confidence": 0.5}))
                self.assertEqual(got[11][0]["uncertainty"], UNC_ERR)
                for i in (10, 12):
                    self.assertNotIn("uncertainty", got[i][0])
                self.assertEqual(c.last_totals["n_ok"], 18)
            srv.finish(self)

    def test_bootstrap_refused(self):
        """Nothing is sent for a refused request: the next request gets id 2."""
        def script(s):
            s.hello()  # features: stream, progress; no bootstrap
            s.expect([0, 2, "status", [{}]])
            s.reply(2, {"ok": True})

        srv = FakeServer(script)
        with self.connect(srv) as c:
            for call in (lambda: c.reconstruct([1, 2, 3, 4], "nopovm", bootstrap=50),
                         lambda: c.submit(SUBMIT_COLS, "nopovm", bootstrap={"resamples": 9})):
                with self.assertRaises(qc.QtomoError) as cm:
                    call()
                self.assertEqual(cm.exception.code, qc.INVALID_PARAMS)
                self.assertIn("'bootstrap' feature", cm.exception.message)
            with self.assertRaises(ValueError) as cm:  # checked before the feature
                c.reconstruct([1, 2, 3, 4], "nopovm", bootstrap=1)
            self.assertIn("bootstrap.resamples", str(cm.exception))
            self.assertEqual(c.status(), {"ok": True})
        srv.finish(self)

        def script2(s):
            s.hello(features=["bootstrap"])
            s.expect([0, 2, "status", [{}]])
            s.reply(2, {"ok": True})

        srv = FakeServer(script2)
        with self.connect(srv) as c:
            for kw in ({"first_index": 3}, {"first_index": 0},
                       {"first_index": -1, "bootstrap": 50},
                       {"first_index": 1 << 63, "bootstrap": 50},
                       {"first_index": 2.0, "bootstrap": 50},
                       {"bootstrap": {"resamples": 50, "colour": 1}}):
                with self.assertRaises(ValueError, msg=repr(kw)) as cm:
                    c.reconstruct([1, 2, 3, 4], "nopovm", **kw)
                self.assertIn("first_index" if "first_index" in kw else "colour",
                              str(cm.exception))
            with self.assertRaises(ValueError):
                c.submit(SUBMIT_COLS, "nopovm", bootstrap={"resamples": 50, "kind": "x"})
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
