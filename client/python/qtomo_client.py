"""Python client for the qtomo daemon ``qtomod`` (wire protocol 1.0, ``proto/SCHEMA.md``).

Standard library plus ``msgpack`` (Debian: ``python3-msgpack``); numpy is used when importable.

    with Client() as c:                       # socket from $QTOMO_SOCKET etc., then hello
        r = c.reconstruct([40, 10, 25, 30], "nopovm", methods=("linear", "mle"))
        rho = r["results"][0]["rho"]          # rho[i][j], complex
        for index, results in c.submit(columns, "mub", dim=4, progress_ms=500):
            ...                               # samples stream in completion order
        print(c.last_totals)                  # {n_ok, n_err, n_cancelled, elapsed_ms}
        r = c.reconstruct(counts, "mub", bootstrap={"resamples": 200, "seed": 7})
        u = r["results"][0]["uncertainty"]    # error bars: u["metrics"]["purity"]["std"], ...

A Client is not thread-safe, with one exception: ``cancel(id, wait=False)`` only writes, so
another thread may call it while one thread iterates a ``submit``.
"""

import math
import os
import socket
import struct
import threading
from collections import deque

import msgpack

try:
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is optional
    _np = None

PROTO = (1, 0)
DEFAULT_MAX_FRAME = 64 << 20  # QP_DEFAULT_MAX_FRAME, in effect until hello tells otherwise

# Error codes (SCHEMA.md §2, qt_status.h).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601
INVALID_PARAMS, INTERNAL, BUSY, TIMEOUT = -32602, -32603, -32001, -32002
WORKER_CRASHED, NOT_FOUND, PERMISSION_DENIED = -32003, -32004, -32005
SHUTTING_DOWN, TOO_LARGE, INVALID_SAMPLE = -32006, -32007, -32008
UNSUPPORTED_PROTOCOL, CANCELLED = -32010, -32800

_DTYPES = {"f64le": ("<f8", 8), "c128le": ("<c16", 16)}

# Error bars (qt_uncert.h): the bounds the server checks, and its default confidence.
BOOT_MAX_RESAMPLES = 100000
BOOT_MAX_SEED = (1 << 53) - 1
BOOT_CONFIDENCE = 0.95
BOOT_KINDS = ("data", "parametric")
_BOOT_KEYS = ("resamples", "kind", "seed", "confidence", "shots")
_VECTOR_METRICS = ("eigenvalues", "bell_fidelities")


class QtomoError(Exception):
    """An error from the daemon or the protocol.

    ``code``: the wire error code (see the module constants; None for a lost connection),
    ``message``: the server's text, ``data``: the error map's ``data`` (``retry_after_ms`` for
    BUSY, the submit totals for CANCELLED/SHUTTING_DOWN) or, for a lost connection, the ``bye``
    params if the server sent one.
    """

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self):
        return self.message if self.code is None else "%s (%d)" % (self.message, self.code)


class QtomoConnectionError(QtomoError, ConnectionError):
    """The connection is gone (closed by the server, after a ``bye`` or otherwise)."""


def default_socket_path():
    """$QTOMO_SOCKET, else $XDG_RUNTIME_DIR/qtomo/qtomod.sock, else /run/qtomo/qtomod.sock."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return (os.environ.get("QTOMO_SOCKET") or (xdg and os.path.join(xdg, "qtomo", "qtomod.sock"))
            or "/run/qtomo/qtomod.sock")


# ---- framing ----

def encode_frame(msg, max_frame=DEFAULT_MAX_FRAME):
    """One frame (4-byte big-endian length + msgpack body); QtomoError TOO_LARGE if the body
    exceeds ``max_frame``."""
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > max_frame:
        raise QtomoError(TOO_LARGE, "frame of %d bytes exceeds max_frame %d"
                         % (len(body), max_frame))
    return struct.pack(">I", len(body)) + body


def decode_body(body):
    """Unpack a frame body and check the msgpack-rpc envelope shape (SCHEMA.md §2)."""
    try:
        msg = msgpack.unpackb(bytes(body), raw=False, strict_map_key=True)
    except Exception as e:
        raise QtomoError(PARSE_ERROR, "unreadable frame: %s" % e) from None
    if (not isinstance(msg, list) or len(msg) < 3 or msg[0] not in (0, 1, 2)
            or len(msg) != (3 if msg[0] == 2 else 4)
            or (msg[0] == 1 and not isinstance(msg[2], (dict, type(None))))
            or (msg[0] == 2 and not (isinstance(msg[2], list) and len(msg[2]) <= 1
                                     and all(isinstance(p, dict) for p in msg[2])))):
        raise QtomoError(PARSE_ERROR, "not a msgpack-rpc message: %r" % (msg,))
    return msg


def decode_frame(frame, max_frame=DEFAULT_MAX_FRAME):
    """Decode one complete frame (header + body) into the raw message list."""
    if len(frame) < 4:
        raise QtomoError(PARSE_ERROR, "truncated frame header")
    (n,) = struct.unpack(">I", frame[:4])
    _check_len(n, max_frame)
    if len(frame) != 4 + n:
        raise QtomoError(PARSE_ERROR, "frame length %d, header says %d" % (len(frame) - 4, n))
    return decode_body(frame[4:])


def _check_len(n, max_frame):
    if n == 0:
        raise QtomoError(PARSE_ERROR, "empty frame")
    if n > max_frame:
        raise QtomoError(TOO_LARGE, "incoming frame of %d bytes exceeds max_frame %d"
                         % (n, max_frame))


# ---- bulk arrays (SCHEMA.md §3) ----

def _bulk(dtype, shape, data):
    return {"dtype": dtype, "shape": [int(s) for s in shape], "data": data}


def _is_nd(x):
    return _np is not None and isinstance(x, _np.ndarray)


def values_array(values):
    """A sample (sequence of m floats) as the f64le [m, 1] bulk array of ``reconstruct``."""
    return matrix_array(_np.reshape(values, (-1, 1)) if _is_nd(values) else [values])


def matrix_array(matrix):
    """Samples as the f64le [m, n] bulk array of ``submit``, one column per sample.

    ``matrix``: a list of n columns of m floats each, or a numpy array of shape (m, n)
    (rows = outcomes, as in input files; a 1-D array is one sample)."""
    if _is_nd(matrix):
        a = _np.asarray(matrix, dtype="<f8")
        a = a.reshape(-1, 1) if a.ndim == 1 else a
        if a.ndim != 2:
            raise ValueError("matrix must be 2-D (m outcomes x n samples)")
        return _bulk("f64le", a.shape, a.tobytes(order="F"))
    cols = [[float(x) for x in c] for c in matrix]
    if not cols or any(len(c) != len(cols[0]) for c in cols):
        raise ValueError("matrix must be a non-empty list of columns of equal length")
    flat = [x for c in cols for x in c]
    return _bulk("f64le", [len(cols[0]), len(cols)], struct.pack("<%dd" % len(flat), *flat))


def target_array(target):
    """A d x d complex matrix (``target[i][j]`` or numpy) as the c128le [d, d] bulk array."""
    if _is_nd(target):
        a = _np.asarray(target, dtype="<c16")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError("target must be square")
        return _bulk("c128le", a.shape, a.tobytes(order="F"))
    rows = [list(r) for r in target]
    d = len(rows)
    if d == 0 or any(len(r) != d for r in rows):
        raise ValueError("target must be a non-empty square matrix")
    zs = [complex(rows[i][j]) for j in range(d) for i in range(d)]  # column-major: i + d*j
    flat = [x for z in zs for x in (z.real, z.imag)]
    return _bulk("c128le", [d, d], struct.pack("<%dd" % len(flat), *flat))


def decode_array(arr, use_numpy=False):
    """A received bulk array as Python data: rank 1 → list, rank 2 → list of rows
    (``a[i][j]``, from column-major); a numpy array of that shape with ``use_numpy``."""
    dtype, shape, data = arr.get("dtype"), arr.get("shape"), arr.get("data")
    if dtype not in _DTYPES or not isinstance(shape, list) or not isinstance(data, bytes):
        raise QtomoError(PARSE_ERROR, "bad bulk array")
    if len(data) != math.prod(shape) * _DTYPES[dtype][1]:
        raise QtomoError(PARSE_ERROR, "bulk array data is %d bytes, shape %r" % (len(data), shape))
    if use_numpy:
        a = _np.frombuffer(data, dtype=_DTYPES[dtype][0]).reshape(shape, order="F")
        return a.astype(a.dtype.newbyteorder("="))  # native order, writable copy
    flat = struct.unpack("<%dd" % (len(data) // 8), data)
    if dtype == "c128le":
        flat = [complex(flat[k], flat[k + 1]) for k in range(0, len(flat), 2)]
    if len(shape) == 2:
        r, c = shape
        return [[flat[i + r * j] for j in range(c)] for i in range(r)]
    return list(flat)


def decode_result(res, use_numpy=False):
    """A result map (SCHEMA.md §7) with ``rho``, array metrics (``eigenvalues``,
    ``bell_fidelities``) and the vectors of ``spectral`` (``amplitudes``, ``phases_pi``,
    ``eigenvalues``; requested with the option ``spectral``) decoded by ``decode_array``; other
    keys are kept as received."""
    res = dict(res)
    if isinstance(res.get("rho"), dict):
        res["rho"] = decode_array(res["rho"], use_numpy)
    for key in ("metrics", "spectral"):
        if isinstance(res.get(key), dict):
            res[key] = {k: decode_array(v, use_numpy) if isinstance(v, dict) and "dtype" in v
                        else v for k, v in res[key].items()}
    return res


def _plain(v):
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


# ---- error bars (bootstrap) ----

def _boot_int(b, key, lo, hi):
    v = _plain(b[key])
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError("bootstrap.%s: %r is not an integer" % (key, b[key]))
    if not lo <= v <= hi:
        raise ValueError("bootstrap.%s: %d is not in [%d, %d]" % (key, v, lo, hi))
    return v


def bootstrap_params(bootstrap):
    """The request's ``bootstrap`` map from None (no error bars), an int N (N resamples) or a
    dict with ``resamples`` (required, in [2, 100000]), ``kind`` ("data", the default, or
    "parametric"), ``seed`` (in [0, 2^53 - 1]; None or absent: the server picks one and every
    result reports it), ``confidence`` of the percentile interval (in (0, 1), default 0.95) and
    ``shots`` (counts per group, >= 1, for data given as probabilities or powers; absent: the
    values must be counts). ``kind`` and ``confidence`` are always sent, as the C client
    does. ValueError names the field that is out of range."""
    if bootstrap is None:
        return None
    b = _plain(bootstrap)
    if isinstance(b, int) and not isinstance(b, bool):
        b = {"resamples": b}
    if not isinstance(b, dict):
        raise ValueError("bootstrap: %r is not None, a number of resamples or a dict"
                         % (bootstrap,))
    for k in b:
        if k not in _BOOT_KEYS:  # the server refuses unknown keys too
            raise ValueError("bootstrap: unknown key %r (known: %s)" % (k, ", ".join(_BOOT_KEYS)))
    if b.get("resamples") is None:
        raise ValueError("bootstrap.resamples: missing")
    p = {"resamples": _boot_int(b, "resamples", 2, BOOT_MAX_RESAMPLES)}
    kind = b.get("kind")
    kind = "data" if kind is None else kind
    if kind not in BOOT_KINDS:
        raise ValueError("bootstrap.kind: %r is not data or parametric" % (kind,))
    p["kind"] = kind
    if b.get("seed") is not None:
        p["seed"] = _boot_int(b, "seed", 0, BOOT_MAX_SEED)
    conf = _plain(b.get("confidence"))
    conf = BOOT_CONFIDENCE if conf is None else conf
    if (not isinstance(conf, (int, float)) or isinstance(conf, bool)
            or not 0.0 < conf < 1.0):  # also refuses NaN
        raise ValueError("bootstrap.confidence: %r is not in (0, 1)" % (b.get("confidence"),))
    p["confidence"] = float(conf)
    if b.get("shots") is not None:
        p["shots"] = _boot_int(b, "shots", 1, BOOT_MAX_SEED)
    return p


def _stats(name, arr, use_numpy):
    """A metric's [3, n] bulk array as {std, lo, hi}: numbers for a scalar metric, lists (or
    numpy arrays) of n for a vector one."""
    shape = arr.get("shape") if isinstance(arr, dict) else None
    if not isinstance(shape, list) or len(shape) != 2 or shape[0] != 3:
        raise QtomoError(PARSE_ERROR, "uncertainty.metrics.%s: not a [3, n] array" % name)
    a = decode_array(arr, use_numpy)
    vec = name in _VECTOR_METRICS or shape[1] != 1
    return {k: (a[i] if vec else float(a[i][0])) for i, k in enumerate(("std", "lo", "hi"))}


def decode_uncertainty(unc, use_numpy=False):
    """One entry of a result's ``uncertainty`` array (qp_pack_uncertainty, proto/qp_boot.c) as
    qtomoctl's JSON record has it: ``{resamples, kind, seed, confidence[, shots],
    failed_resamples[, warnings]``, then either ``error: {code, name, message}`` (no error bars; the estimate stands) or
    ``metrics: {name: {std, lo, hi}}`` (vector metrics: a list of d each), ``rho_std: {re,
    im}`` (``re[i][j]``, as ``rho``) and, for linear, ``trace_distance_bound``}. With
    ``use_numpy`` the vectors and matrices are numpy arrays. None (nil) stays None."""
    if unc is None:
        return None
    if not isinstance(unc, dict):
        raise QtomoError(PARSE_ERROR, "uncertainty: not a map")
    u = dict(unc)
    if "error" in u:
        return u
    if not isinstance(u.get("metrics"), dict) or not isinstance(u.get("rho_std"), dict):
        raise QtomoError(PARSE_ERROR, "uncertainty: neither error nor metrics and rho_std")
    u["metrics"] = {k: _stats(k, v, use_numpy) for k, v in u["metrics"].items()}
    rs = u["rho_std"]
    for k in ("re", "im"):
        shape = rs[k].get("shape") if isinstance(rs.get(k), dict) else None
        if not isinstance(shape, list) or len(shape) != 2 or shape[0] != shape[1]:
            raise QtomoError(PARSE_ERROR, "uncertainty.rho_std.%s: not a d x d array" % k)
    u["rho_std"] = {k: decode_array(rs[k], use_numpy) for k in ("re", "im")}
    return u


def decode_results(results, uncertainty=None, use_numpy=False):
    """A ``results`` array decoded by ``decode_result``; with the ``uncertainty`` array of the
    same message (one map or nil per result, in the same order), each result with error bars
    gets them as ``result["uncertainty"]`` (``decode_uncertainty``); nil leaves the key out."""
    out = [decode_result(x, use_numpy) for x in results]
    if uncertainty is None:
        return out
    if not isinstance(uncertainty, list) or len(uncertainty) != len(out):
        raise QtomoError(PARSE_ERROR, "uncertainty: not an array of %d" % len(out))
    for res, unc in zip(out, uncertainty):
        if unc is not None:
            res["uncertainty"] = decode_uncertainty(unc, use_numpy)
    return out


# ---- client ----

class Client:
    """One connection to qtomod.

    ``socket_path``: see ``default_socket_path``; ``timeout``: socket timeout in seconds (None:
    block); ``client_name``: sent in ``hello``; ``numpy``: decode arrays to numpy (None: when
    importable). Connects and performs ``hello``; ``server_info`` holds its result (proto,
    server, limits, features, workers). Use as a context manager or call ``close()``.
    """

    def __init__(self, socket_path=None, timeout=None, client_name="qtomo-python/0.1",
                 numpy=None):
        if numpy and _np is None:
            raise ImportError("numpy=True but numpy is not importable")
        self.use_numpy = (_np is not None) if numpy is None else bool(numpy)
        self.socket_path = socket_path or default_socket_path()
        self.max_frame = DEFAULT_MAX_FRAME
        self.server_info = None
        self.last_totals = None      # totals of the last finished submit
        self.last_request_id = None  # id of the last request sent (e.g. a submit, for cancel)
        self.bye = None              # params of a received `bye` {reason, retry_after_ms}
        self._next_id = 1
        self._buf = bytearray()
        self._responses = {}         # id -> (error, result) not yet collected
        self._discard = set()        # ids whose responses nobody waits for
        self._streams = {}           # submit id -> deque of (method, params) notifications
        self._wlock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.socket_path)
            params = {"proto": list(PROTO)}
            if client_name:
                params["client"] = client_name
            info = self._call("hello", params)
            if info["proto"][0] != PROTO[0]:
                raise QtomoError(UNSUPPORTED_PROTOCOL, "server speaks protocol %r" % info["proto"])
            self.max_frame = int(info["limits"]["max_frame"])
            self.server_info = info
        except BaseException:
            self.close()
            raise

    def close(self):
        """Close the connection (the server cancels this connection's requests)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport --

    def _send(self, method, params, discard=False):
        with self._wlock:
            if self._sock is None:
                raise self._lost()
            rid = self._next_id
            self._next_id += 1
            frame = encode_frame([0, rid, method, [params]], self.max_frame)
            if discard:
                self._discard.add(rid)
            self.last_request_id = rid
            self._sock.sendall(frame)
            return rid

    def _lost(self):
        b = self.bye
        msg = "connection closed" + (" after bye %r" % (b,) if b else "")
        return QtomoConnectionError(None, msg, b)

    def _fill(self, n):
        while len(self._buf) < n:
            if self._sock is None:
                raise self._lost()
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                self.close()
                raise self._lost()
            self._buf += chunk

    def _read_msg(self):
        """Read one frame and file it: responses by id, submit notifications by request."""
        self._fill(4)
        (n,) = struct.unpack(">I", self._buf[:4])
        if n == 0 or n > self.max_frame:  # refused from the header: the stream is lost
            self.close()
            _check_len(n, self.max_frame)
        self._fill(4 + n)
        body = bytes(self._buf[4:4 + n])
        del self._buf[:4 + n]
        try:
            msg = decode_body(body)
        except QtomoError:
            self.close()
            raise
        if msg[0] == 1:
            if msg[1] in self._discard:
                self._discard.discard(msg[1])
            else:
                self._responses[msg[1]] = (msg[2], msg[3])
            return
        if msg[0] != 2:
            return  # a request from the server: not in the protocol, ignore
        method, params = msg[1], msg[2][0] if msg[2] else {}
        if method == "bye":
            self.bye = params
        elif method == "protocol_error":
            self.close()
            raise QtomoError(params.get("code", PARSE_ERROR),
                             "protocol_error: %s" % params.get("message", ""))
        elif method in ("result", "progress"):
            q = self._streams.get(params.get("request"))
            if q is not None:
                q.append((method, params))

    def _wait(self, rid):
        try:
            while rid not in self._responses:
                self._read_msg()
        except BaseException:
            self._discard.add(rid)
            raise
        return self._result(*self._responses.pop(rid))

    @staticmethod
    def _result(err, result):
        if err is not None:
            raise QtomoError(err.get("code"), err.get("message", ""), err.get("data"))
        return result

    def _call(self, method, params=None):
        return self._wait(self._send(method, params if params is not None else {}))

    # -- estimation --

    @staticmethod
    def _job(values, design, dim, methods, options, target, timeout_ms, design_id,
             bootstrap=None):
        p = {"values": values, "design": design}
        if design_id:
            p["design_id"] = design_id
        tgt = target_array(target) if target is not None else None
        if dim is None and tgt is not None:
            dim = tgt["shape"][0]
        if dim:
            p["d"] = int(dim)
        p["methods"] = [methods] if isinstance(methods, str) else [str(m) for m in methods]
        p["options"] = {str(k): _plain(v) for k, v in (options or {}).items()}
        if tgt is not None:
            p["target"] = tgt
        if timeout_ms:
            p["timeout_ms"] = int(timeout_ms)
        if bootstrap is not None:
            p["bootstrap"] = bootstrap
        return p

    def _boot(self, bootstrap):
        """The checked ``bootstrap`` map, or None; QtomoError INVALID_PARAMS, before anything is
        sent, when the server's hello lists no "bootstrap" feature: a server that does not
        know the key might ignore it, and the results would silently lack their error bars."""
        b = bootstrap_params(bootstrap)
        if b is not None and "bootstrap" not in ((self.server_info or {}).get("features") or ()):
            raise QtomoError(INVALID_PARAMS, "bootstrap: the server does not compute error bars "
                             "(its hello lists no 'bootstrap' feature)")
        return b

    def reconstruct(self, values, design, dim=None, methods=("linear", "mle"), options=None,
                    target=None, timeout_ms=None, design_id=None, bootstrap=None,
                    first_index=None):
        """Estimate one sample on the interactive queue.

        ``values``: m floats in the design's outcome order; ``design``: nopovm, mub, sic, pauli
        or custom (with ``design_id`` from ``design_put``); ``dim``: d (None: the target's, else
        inferred by the server); ``methods``: any of linear, mle, wls, rhor; ``options``:
        {name: value} as in SCHEMA.md §8 (e.g. ``{"mle-gap-tol": 1e-9}``); ``target``: d x d
        density matrix (adds fidelity, trace_distance); ``timeout_ms``: per-item deadline;
        ``bootstrap``: error bars, None, a number of resamples or a dict (``bootstrap_params``);
        ``first_index``: only with ``bootstrap``, the sample's index, which keys its resample
        streams (a submit's sample first_index + column gets the same error bars).
        Returns ``{index, results, timing, worker}``; per-sample failures are result maps with
        ``status: "error"``; with ``bootstrap`` each result that has error bars carries them
        as ``uncertainty`` (``decode_uncertainty``). ValueError for a bad ``bootstrap`` or
        ``first_index``; QtomoError INVALID_PARAMS when the server has no error bars.
        """
        b = self._boot(bootstrap)
        if first_index is not None:
            if b is None:
                raise ValueError("first_index: only with bootstrap on reconstruct")
            first_index = _plain(first_index)
            if (not isinstance(first_index, int) or isinstance(first_index, bool)
                    or not 0 <= first_index < 1 << 63):
                raise ValueError("first_index: %r is not in [0, 2^63 - 1]" % (first_index,))
        p = self._job(values_array(values), design, dim, methods, options, target, timeout_ms,
                      design_id, b)
        if first_index is not None:
            p["first_index"] = first_index
        r = dict(self._call("reconstruct", p))
        r["results"] = decode_results(r.get("results", []), r.pop("uncertainty", None),
                                      self.use_numpy)
        return r

    def submit(self, matrix, design, dim=None, methods=("linear", "mle"), options=None,
               target=None, timeout_ms=None, design_id=None, progress_ms=0, first_index=0,
               on_progress=None, bootstrap=None):
        """Estimate a batch (one sample per column, see ``matrix_array``) on the batch queue.

        The request is sent at once (its id is ``last_request_id``, for ``cancel``); returns a
        generator of ``(index, results)`` in completion order, index = first_index + column.
        ``bootstrap``: error bars as in ``reconstruct`` (the index keys a sample's resample
        streams), checked before the request is sent.
        ``on_progress(params)`` gets each ``progress`` notification ({request, done, failed,
        total, eta_ms}). At the end ``last_totals`` = {n_ok, n_err, n_cancelled, elapsed_ms}; an
        error final response raises QtomoError (cancel: CANCELLED with ``data`` = totals).
        Iterate it to the end or ``close()`` it; until then its notifications are buffered
        while other requests are waited for.
        """
        b = self._boot(bootstrap)
        p = self._job(matrix_array(matrix), design, dim, methods, options, target, timeout_ms,
                      design_id, b)
        p["progress_ms"] = int(progress_ms)
        p["first_index"] = int(first_index)
        rid = self._send("submit", p)
        self._streams[rid] = deque()
        return self._stream(rid, on_progress)

    def _stream(self, rid, on_progress):
        q = self._streams[rid]
        finished = False
        try:
            while True:
                while q:
                    method, params = q.popleft()
                    if method == "result":
                        yield params["index"], decode_results(params.get("results", []),
                                                              params.get("uncertainty"),
                                                              self.use_numpy)
                    elif on_progress is not None:
                        on_progress(params)
                if rid in self._responses:  # all notifications precede the final response
                    break
                self._read_msg()
            finished = True
            err, result = self._responses.pop(rid)
            if err is not None and "n_ok" in (err.get("data") or {}):
                self.last_totals = err["data"]  # totals of a cancelled/shut-down batch
            self.last_totals = self._result(err, result)
        finally:
            self._streams.pop(rid, None)
            if not finished and self._responses.pop(rid, None) is None:
                self._discard.add(rid)

    def cancel(self, request_id, wait=True):
        """Cancel a reconstruct/submit of this connection. Returns ``{found: bool}``; with
        ``wait=False`` only sends the request (safe from another thread) and returns None."""
        if not wait:
            self._send("cancel", {"id": int(request_id)}, discard=True)
            return None
        return self._call("cancel", {"id": int(request_id)})

    # -- administration --

    def status(self):
        """``{uptime_s, queue, inflight, n_workers, cache}``."""
        return self._call("status")

    def stats(self):
        """The status keys plus ``totals`` and per-worker ``workers``."""
        return self._call("stats")

    def design_put(self, json_text):
        """Upload a custom design (design-file JSON text); returns its id ``"custom-<hex>"``."""
        if isinstance(json_text, bytes):
            json_text = json_text.decode("utf-8")
        return self._call("design.put", {"design": json_text})["id"]

    def detector_put(self, json_text, design, dim, design_id=None):
        """Upload a detector model (detector-file JSON text, README "Detectors") for the base
        ``design`` at dimension ``dim`` (``design_id`` for a custom base). The server checks it
        (errors name the field), keeps its effective design with the backgrounds, and answers
        ``{design, design_id?, d, m, detector?}``: reconstruct with ``design`` and
        ``design_id`` (``"custom"`` and the effective design's id, or the base design for the
        identity model); ``detector`` is the model's id for records. QtomoError
        INVALID_PARAMS, before anything is sent, when the server's hello lists no "detector"
        feature."""
        if isinstance(json_text, bytes):
            json_text = json_text.decode("utf-8")
        if "detector" not in ((self.server_info or {}).get("features") or ()):
            raise QtomoError(INVALID_PARAMS, "detector: the server does not take detector "
                             "models (its hello lists no 'detector' feature)")
        params = {"detector": json_text, "design": design, "d": int(dim)}
        if design_id is not None:
            params["design_id"] = design_id
        return self._call("detector.put", params)

    def cache_list(self):
        """``{entries: [{name, id, design, d, m, bytes, last_use_ns, mapped_by}, ...]}``."""
        return self._call("cache.list")

    def cache_warm(self, items):
        """Build cache files ahead of use; ``items``: (design, d) pairs. ``{warmed: n}``."""
        return self._call("cache.warm", {"items": [{"design": str(des), "d": int(d)}
                                                   for des, d in items]})

    def cache_evict(self, design, d):
        """Remove a cache file (admin). ``{bytes: n}``."""
        return self._call("cache.evict", {"design": design, "d": int(d)})

    def cache_verify(self, design=None, d=None):
        """Verify checksums of one entry (design and d) or of all (neither).
        ``{checked: n, damaged: [{name, reason}, ...]}``."""
        p = {k: v for k, v in (("design", design), ("d", d)) if v is not None}
        return self._call("cache.verify", p)

    def reload(self):
        """Re-read the daemon's configuration (admin). ``{generation: n}``."""
        return self._call("reload")
