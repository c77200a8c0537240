"""What the daemon tests share: the real qtomod on a private socket and cache directory with a
fake systemd NOTIFY_SOCKET (Daemon, Notify), and the sample data and helpers around it. Used by
test_qtomod.py and test_qtomoctl.py (working directory tests/integration) and by
tests/packaging/test_units.py (Notify). Environment: QTOMOD, QTOMOCTL, QTOMO_SRC (set by CTest)."""
import csv
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.abspath(os.environ.get("QTOMO_SRC",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
QTOMOD = os.environ.get("QTOMOD", "qtomod")
QTOMOCTL = os.environ.get("QTOMOCTL", "qtomoctl")
EXAMPLES = os.path.join(SRC, "client", "examples", "data")


def read_columns(path, conv=float):
    """Samples in the origin's layout (rows = outcomes, columns = samples), each value
    converted by conv (str keeps the text)."""
    with open(path) as f:
        rows = [[conv(x) for x in r] for r in csv.reader(f) if r]
    return [list(c) for c in zip(*rows)]


def write_columns(path, cols):
    """Writes samples in the origin's layout: rows = outcomes, columns = samples."""
    with open(path, "w") as f:
        for row in zip(*cols):
            f.write(",".join(str(v) for v in row) + "\n")


def wait_until(pred, timeout=20, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# A custom design (design.put, --design-file): the six Pauli eigenstates of a qubit as kets, in
# the order |0>, |1>, |+>, |->, |+i>, |-i> (one group per Pauli basis).
_H = 0.7071067811865476
PAULI6 = {"name": "pauli6", "dim": 2,
          "vectors": {"re": [[1, 0], [0, 1], [_H, _H], [_H, -_H], [_H, 0], [_H, 0]],
                      "im": [[0, 0], [0, 0], [0, 0], [0, 0], [0, _H], [0, -_H]]},
          "groups": [0, 0, 1, 1, 2, 2]}


def pauli6_columns(n, num):
    """Counts of 1000 shots per basis for n states (Bloch vectors inside, on and outside the
    ball), plus one sample whose Z group sums to zero (a per-sample error); values as num
    (int or float) makes them."""
    cols = []
    for k in range(n):
        x, y, z = 0.9 * ((k % 3) - 1) / 1.5, 0.3 * ((k % 4) - 1.5), 0.95 - 0.19 * k
        col = []
        for r in (z, x, y):
            c = round(1000 * (1 + r) / 2)
            col += [num(c), num(1000 - c)]
        cols.append(col)
    cols.append([num(v) for v in (0, 0, 500, 500, 500, 500)])
    return cols


class Notify:
    """A fake systemd NOTIFY_SOCKET: collects datagrams with their arrival time and the
    sender's pid, which the kernel attaches (SO_PASSCRED), as systemd receives them. mode:
    the socket's permissions (0o777 as /run/systemd/notify: any service user may send)."""

    def __init__(self, path, mode=None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.stamps = []  # (monotonic arrival time, sender pid, text)
        self.cond = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        credsize = socket.CMSG_SPACE(struct.calcsize("3i"))
        while not self.stopped:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, credsize)
            except socket.timeout:
                continue
            except OSError:
                return
            t, pid = time.monotonic(), None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[:12])[0]
            with self.cond:
                self.stamps.append((t, pid, data.decode()))
                self.cond.notify_all()

    @property
    def msgs(self):
        """The texts received, in order."""
        with self.cond:
            return [m for _, _, m in self.stamps]

    @property
    def messages(self):
        """(sender pid, {key: value}) for each datagram received, in order."""
        with self.cond:
            return [(pid, dict(line.split("=", 1) for line in m.splitlines() if "=" in line))
                    for _, pid, m in self.stamps]

    def wait_for_text(self, text, timeout=20):
        """True once a datagram containing text has come, False after timeout."""
        return wait_until(lambda: any(text in m for m in self.msgs), timeout)

    def wait_for(self, key, value=None, start=0, timeout=30.0):
        """Index of the first message from start on with key (= value); fails after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                messages = self.messages
                for i in range(start, len(messages)):
                    f = messages[i][1]
                    if key in f and (value is None or f[key] == value):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s%s in %r" % (key, "=" + value if value else "",
                                                            messages))
                self.cond.wait(left)

    def close(self):
        if self.stopped:
            return
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


class Daemon:
    """qtomod on a private socket and cache directory, as the test user, with a fake
    NOTIFY_SOCKET; ready once it says READY=1 (within ready_timeout seconds). activate: behind
    systemd-socket-activate; watchdog_usec: with WATCHDOG_USEC and WATCHDOG_PID as systemd sets
    them. interactive: the --interactive-workers it is given, unless args give it; None: the
    default (1). Most tests reason about a pool of exactly `workers` processes, so they run
    without the extra interactive worker; the tests of the default pool pass None. wrap: a
    command that runs qtomod (e.g. one that drops a capability)."""

    def __init__(self, *args, workers=2, interactive=0, env=None, activate=False,
                 watchdog_usec=None, prefix="qtomod-test-", ready_timeout=20, wrap=()):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.sock = os.path.join(self.dir, "qtomod.sock")
        self.notify = Notify(os.path.join(self.dir, "notify.sock"))
        e = dict(os.environ)
        e.update(env or {})
        e["NOTIFY_SOCKET"] = self.notify.path
        cmd = [QTOMOD, "--config", "/dev/null", "--cache-dir", os.path.join(self.dir, "cache"),
               "--workers", str(workers)] + [str(a) for a in args]
        if interactive is not None and "--interactive-workers" not in args:
            cmd += ["--interactive-workers", str(interactive)]
        cmd = list(wrap) + cmd
        if activate:
            cmd = ["systemd-socket-activate", "-l", self.sock, "--fdname=qtomo",
                   "-E", "NOTIFY_SOCKET"] + cmd
        else:
            cmd += ["--socket", self.sock]
        if watchdog_usec:
            # As systemd does: WATCHDOG_PID names the service's main process. The shell's pid
            # is qtomod's after exec, so self.proc.pid is the daemon's pid.
            e["WATCHDOG_USEC"] = str(watchdog_usec)
            cmd = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"',
                   "qtomod"] + cmd
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(cmd, env=e, stderr=self.log, stdout=self.log)
        if activate:
            # The socket's file appears at bind(), a moment before listen(): until then a
            # connect is refused. Exec happens on the first accepted connect.
            end = time.time() + 10
            while True:
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.sock)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    if time.time() > end:
                        raise
                    time.sleep(0.02)
        if not self.notify.wait_for_text("READY=1", ready_timeout):
            raise AssertionError("qtomod did not get ready (no READY=1); log:\n" +
                                 self.logtext())

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def kernel(self):
        """The OpenBLAS core type the daemon's workers use, when it names one."""
        m = re.search(r"OpenBLAS kernels (\w+) \(", self.logtext())
        return m.group(1) if m else None

    def client(self, **kw):
        """A Python client (client/python/qtomo_client.py) connected to the daemon."""
        import qtomo_client
        return qtomo_client.Client(self.sock, timeout=60, numpy=False, **kw)

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
        self.notify.close()
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
