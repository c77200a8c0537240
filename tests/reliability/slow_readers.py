#!/usr/bin/python3
"""Slow readers: N clients each submit a batch and never read their results; the supervisor's
RSS is sampled from start to end, then the clients close and the RSS after is read. Not a test:
a measurement (issue 15, defects 6 and 9). Bounded: one batch per client, at most --seconds.

    tests/reliability/slow_readers.py [--qtomod BUILD/daemon/qtomod] [--clients 20]
        [--samples 2000] [--seconds 60]
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
from rel_common import rss_kb  # noqa: E402
EX = os.path.join(REPO, "client", "examples", "data", "bell_nopovm_d4.csv")


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtomod", default=os.path.join(REPO, "build", "release", "daemon", "qtomod"))
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    cols = [[float(x) for x in line.split(",")] for line in open(EX)]
    cols = [list(c) for c in zip(*cols)]
    values = [cols[i % len(cols)] for i in range(a.samples)]
    m = len(values[0])
    data = struct.pack("<%dd" % (m * a.samples), *[v for col in values for v in col])
    tmp = tempfile.mkdtemp(prefix="qtomo-slow-")
    sock = os.path.join(tmp, "s.sock")
    d = subprocess.Popen([a.qtomod, "--config", "/dev/null", "--socket", sock, "--cache-dir",
                          os.path.join(tmp, "cache"), "--log-level", "4"])
    end = time.time() + 20
    while not os.path.exists(sock) and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.5)
    start = rss_kb(d.pid)
    conns = []
    for i in range(a.clients):
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(sock)
        s.sendall(frame([0, 1, "hello", [{"proto": [1, 0]}]]))
        s.sendall(frame([0, 2, "submit", [{"values": {"dtype": "f64le", "shape": [m, a.samples],
                                                      "data": data},
                                           "design": "nopovm", "methods": ["linear", "mle"]}]]))
        conns.append(s)
    peak, t0, last, same = start, time.time(), -1, 0
    while time.time() - t0 < a.seconds:
        r = rss_kb(d.pid)
        peak = max(peak, r)
        same = same + 1 if r == last else 0
        last = r
        if same >= 20:  # 2 s without change: everything queued or paused
            break
        time.sleep(0.1)
    for s in conns:
        s.close()
    time.sleep(2)
    after = rss_kb(d.pid)
    d.terminate()
    d.wait(30)
    if a.json:
        print(json.dumps({"start_kb": start, "peak_kb": peak, "after_kb": after}))
        return 0
    print("qtomod %s: %d clients x %d samples (nopovm d=4 linear,mle), never read: supervisor "
          "RSS start %.1f MB, peak %.1f MB, 2 s after they closed %.1f MB"
          % (a.qtomod, a.clients, a.samples, start / 1024, peak / 1024, after / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
