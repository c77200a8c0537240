#!/usr/bin/python3
"""Hostile requests: a client-side fuzzer that mutates valid requests of every method
semantically (types, shapes, relations between fields, limits, NaN/Inf, options, ids,
notifications sent as requests, duplicate and unknown keys) and sends them to a real qtomod,
best the ASan build. Every request must be answered (a response with its id) or its connection
closed (an unreadable envelope), and the daemon must stay up and answer a fresh client's status
throughout. Bounded: --requests requests, --seconds at most.

    tests/reliability/hostile.py [--qtomod BUILD/daemon/qtomod] [--requests 100000]
        [--seed 1] [--seconds 1800] [--json]
"""
import argparse
import json
import math
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import qtomo_client as q  # noqa: E402

METHODS = ["hello", "reconstruct", "submit", "cancel", "status", "stats", "design.put",
           "cache.list", "cache.warm", "cache.evict", "cache.verify", "reload"]
DESIGN = json.dumps({"dim": 2, "vectors": [[[1, 0], [0, 0]], [[0, 0], [1, 0]], [[0.7071067811865476, 0], [0.7071067811865476, 0]],
                                          [[0.7071067811865476, 0], [-0.7071067811865476, 0]], [[0.7071067811865476, 0], [0, 0.7071067811865476]],
                                          [[0.7071067811865476, 0], [0, -0.7071067811865476]]]})


def f64(rows, cols, val=0.25, dtype="f64le"):
    return {"dtype": dtype, "shape": [rows, cols],
            "data": struct.pack("<%dd" % (rows * cols), *([val] * (rows * cols)))}


def c128(k, val=0.5):
    return {"dtype": "c128le", "shape": [k, k],
            "data": struct.pack("<%dd" % (2 * k * k), *([val] * (2 * k * k)))}


def valid(method, rnd):
    if method == "hello":
        return {"proto": [1, 0], "client": "hostile"}
    if method in ("reconstruct", "submit"):
        n = 1 if method == "reconstruct" else rnd.randint(1, 6)
        p = {"values": f64(16, n, rnd.random() + 0.01), "design": "nopovm",
             "methods": rnd.sample(["linear", "mle", "wls", "rhor"], rnd.randint(1, 2)),
             "options": {}, "timeout_ms": rnd.choice([0, 1, 50, 1000])}
        if rnd.random() < 0.3:
            p["target"] = c128(4, 0.25)
        if method == "submit":
            p["progress_ms"] = rnd.choice([0, 1, 100])
            p["first_index"] = rnd.choice([0, 5, 2 ** 40])
        return p
    if method == "cancel":
        return {"id": rnd.randint(0, 50)}
    if method == "design.put":
        return {"design": DESIGN}
    if method == "cache.warm":
        return {"items": [{"design": "nopovm", "d": rnd.randint(2, 5)}]}
    if method in ("cache.evict", "cache.verify"):
        return {"design": rnd.choice(["nopovm", "mub"]), "d": rnd.randint(2, 5)}
    return {}


VARIANTS = [None, True, False, -1, 0, 1, 2 ** 32, 2 ** 64 - 1, -(2 ** 63), math.nan, math.inf,
            -math.inf, 1e308, 5e-324, "", "x" * 300, "nopovm", "custom", "mub", "linear",
            b"\x00" * 8, [], ["linear", "linear"], ["bogus"], {}, {"zz": 1},
            {"mle_max_iter": -1}, {"tolerance": math.nan}, {"physical": "smolin"},
            f64(16, 1), f64(12, 3), f64(0, 1), f64(16, 1, math.nan), f64(16, 1, math.inf),
            f64(16, 1, -1.0), f64(4, 1, dtype="f32le"), c128(2), c128(8), c128(4, math.nan),
            {"dtype": "f64le", "shape": [16, 1], "data": b"short"},
            {"dtype": "f64le", "shape": [2 ** 31, 2 ** 31], "data": b""}]
KEYS = ["values", "design", "design_id", "d", "methods", "options", "target", "timeout_ms",
        "progress_ms", "first_index", "id", "items", "proto", "client", "zz"]


def pack_map(pairs):
    """A msgpack map from (key, value) pairs, duplicates allowed."""
    out = b""
    n = len(pairs)
    out += bytes([0x80 | n]) if n < 16 else struct.pack(">BH", 0xde, n)
    for k, v in pairs:
        out += msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
    return out


def hostile(rid, rnd):
    """(frame bytes, expect): expect 'answer' (a response with rid) or 'maybe-close'."""
    method = rnd.choice(METHODS)
    pairs = list(valid(method, rnd).items())
    for _ in range(rnd.randint(1, 3)):
        op = rnd.random()
        if op < 0.45 and pairs:
            i = rnd.randrange(len(pairs))
            pairs[i] = (pairs[i][0], rnd.choice(VARIANTS))
        elif op < 0.6 and pairs:
            pairs.pop(rnd.randrange(len(pairs)))
        elif op < 0.75 and pairs:
            k = rnd.choice(pairs)[0]
            pairs.append((k, rnd.choice(VARIANTS)))
        else:
            pairs.append((rnd.choice(KEYS), rnd.choice(VARIANTS)))
    params = b"\x91" + pack_map(pairs)
    env = rnd.random()
    head = [0, rid, method]
    expect = "answer"
    if env < 0.03:
        head[0] = 2  # a notification sent by a client
        expect = "maybe-close"
    elif env < 0.05:
        head[2] = rnd.choice(["result", "w.ready", "w.result", "progress", "nope"])
    elif env < 0.06:
        head[1] = -rid
        expect = "maybe-close"
    elif env < 0.07:
        params = msgpack.packb(rnd.choice(VARIANTS), use_bin_type=True)
    body = b"\x94" + msgpack.packb(head[0]) + msgpack.packb(head[1]) + \
        msgpack.packb(head[2]) + params
    return struct.pack(">I", len(body)) + body, expect


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(120)
        self.s.connect(path)
        self.buf = b""
        self.send(msgpack.packb([0, 0, "hello", [{"proto": [1, 0]}]]))
        self.read()

    def send(self, body):
        self.s.sendall(struct.pack(">I", len(body)) + body)

    def read(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return msgpack.unpackb(body, raw=False, strict_map_key=False)
            chunk = self.s.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "asan", "daemon", "qtomod"))
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1800)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qtomo-hostile-")
    sock = os.path.join(tmp, "s.sock")
    log = open(os.path.join(tmp, "log"), "w+")
    d = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock, "--cache-dir",
                          os.path.join(tmp, "cache"), "--log-level", "3", "--max-dim", "8"],
                         stdout=log, stderr=log)
    end = time.time() + 60
    while not os.path.exists(sock) and time.time() < end:
        time.sleep(0.05)
    time.sleep(1)
    rnd = random.Random(a.seed)
    stats = {"sent": 0, "answered": 0, "closed": 0, "unanswered": 0, "ok": 0, "refused": 0,
             "status_checks": 0}
    t0 = time.time()
    conn = Conn(sock)
    rid, outstanding, window = 1, {}, 16
    next_check = 1000

    def reconnect(kind):
        nonlocal conn
        for e in outstanding.values():
            stats[kind] += 1
            stats.setdefault("closed_by_kind", {}).setdefault(e, 0)
            stats["closed_by_kind"][e] += kind == "closed"
        outstanding.clear()
        conn = Conn(sock)

    while (stats["sent"] < a.requests or outstanding) and time.time() - t0 < a.seconds \
            and d.poll() is None:
        if stats["sent"] < a.requests and len(outstanding) < window:
            frame, expect = hostile(rid, rnd)
            if expect == "maybe-close":  # on a connection of its own: it may end it
                one = Conn(sock)
                one.s.sendall(frame)
                stats["sent"] += 1
                while True:
                    try:
                        f = one.read()
                    except socket.timeout:
                        stats["unanswered"] += 1
                        break
                    if f is None:
                        stats["closed"] += 1
                        break
                    if f[0] == 1 and isinstance(f[1], int) and abs(f[1]) == rid:
                        stats["answered"] += 1
                        stats["ok" if f[2] is None else "refused"] += 1
                        break
                one.s.close()
                rid = rid % 1000000 + 1
                continue
            try:
                conn.s.sendall(frame)
            except OSError:
                reconnect("closed")
                continue
            outstanding[rid] = expect
            stats["sent"] += 1
            rid = rid % 1000000 + 1
            continue
        try:
            f = conn.read()
        except socket.timeout:
            reconnect("unanswered")  # no answer for 120 s: a defect
            continue
        except OSError:
            f = None
        if f is None:
            reconnect("closed")  # an unreadable envelope ends its connection
            continue
        if f[0] == 1 and isinstance(f[1], int) and abs(f[1]) in outstanding:
            outstanding.pop(abs(f[1]))
            stats["answered"] += 1
            stats["ok" if f[2] is None else "refused"] += 1
        if stats["sent"] >= next_check:
            next_check += 1000
            with q.Client(sock, timeout=60) as c:
                c.status()
            stats["status_checks"] += 1
    alive = d.poll() is None
    stats["seconds"] = round(time.time() - t0, 1)
    stats["daemon_up"] = alive
    if alive:
        with q.Client(sock, timeout=60) as c:
            stats["totals"] = c.stats()["totals"]
        d.terminate()
        stats["exit"] = d.wait(120)
    else:
        stats["exit"] = d.returncode
    log.seek(0)
    text = log.read()
    stats["asan_reports"] = text.count("ERROR: AddressSanitizer") + text.count("runtime error:")
    if a.json:
        print(json.dumps(stats))
    else:
        print("hostile: %(sent)d requests in %(seconds)s s: %(answered)d answered (%(ok)d ok, "
              "%(refused)d refused), %(closed)d closed their connection, %(unanswered)d unanswered; "
              "daemon up %(daemon_up)s, "
              "exit %(exit)s, sanitizer reports %(asan_reports)d, status checks %(status_checks)d"
              % stats)
    bad = not alive or stats["exit"] != 0 or stats["asan_reports"] or stats["unanswered"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
