"""The systemd units (systemd/): systemd-analyze verify and security, the sysusers.d entry, and
qtomod started exactly as qtomod.service would start it, behind qtomod.socket's descriptor.

Without systemd as PID 1 the units are checked offline: copies with the installed paths
(/usr/sbin/qtomod, /usr/bin/qtomoctl) rewritten to the build's programs, and the service's
command lines run through systemd-socket-activate with a fake NOTIFY_SOCKET (unitexec.py
applies the unit's user, file system, namespace and seccomp settings). Environment: QTOMOD,
QTOMOCTL, QTOMO_SRC (set by CTest); QTOMO_SANITIZE (sanitizer builds skip the seccomp run).
Run as root for the user switch and namespaces (CI does); otherwise those parts are skipped.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import unitexec  # noqa: E402
from qtomod_fixture import Notify  # noqa: E402

SRC = os.environ.get("QTOMO_SRC", os.path.normpath(os.path.join(HERE, "..", "..")))
QTOMOD = os.environ.get("QTOMOD", os.path.join(SRC, "build", "dev", "daemon", "qtomod"))
QTOMOCTL = os.environ.get("QTOMOCTL", os.path.join(SRC, "build", "dev", "client", "qtomoctl"))
UNITS = os.path.join(SRC, "systemd")
EXAMPLE = os.path.join(SRC, "client", "examples", "data", "mub_d3.csv")
MAX_EXPOSURE = 2.0
# The daemon runs as this stand-in for User=qtomo/Group=qtomo when the test is root.
STANDIN = (65534, 65534)
# WatchdogSec=30s would ping every 15 s; the test asks for pings it can see within a second.
TEST_WATCHDOG_USEC = 1000000


def rewrite_programs(text):
    return (text.replace("/usr/sbin/qtomod", QTOMOD)
                .replace("/usr/bin/qtomoctl", QTOMOCTL))


def unit_copies(tmp):
    """The two units with the programs' paths rewritten to the build, in tmp."""
    for name in ("qtomod.socket", "qtomod.service"):
        with open(os.path.join(UNITS, name), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write(rewrite_programs(text))
    return [os.path.join(tmp, n) for n in ("qtomod.service", "qtomod.socket")]


def man_tree(tmp):
    """A MANPATH with the build's man pages (<build>/man), for Documentation=man:..."""
    built = os.path.join(os.path.dirname(os.path.dirname(QTOMOD)), "man")
    for page in os.listdir(built):
        m = re.match(r".*\.(\d)$", page)
        if m:
            d = os.path.join(tmp, "man", "man" + m.group(1))
            os.makedirs(d, exist_ok=True)
            os.symlink(os.path.join(built, page), os.path.join(d, page))
    return os.path.join(tmp, "man")


class NotifyListener(Notify):
    """A fake $NOTIFY_SOCKET as /run/systemd/notify: any service user may send."""

    def __init__(self, path):
        super().__init__(path, mode=0o777)


class UnitsTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="qtomo-units-")
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_verify(self):
        """systemd-analyze verify prints nothing (also checks the man pages it names)."""
        files = unit_copies(self.tmp)
        env = dict(os.environ, MANPATH=man_tree(self.tmp), SYSTEMD_PAGER="", SYSTEMD_LOG_COLOR="0")
        p = subprocess.run(["systemd-analyze", "verify", "--man=yes"] + files, env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_security_exposure(self):
        """systemd-analyze security --offline=yes: overall exposure at most 2.0."""
        service = unit_copies(self.tmp)[0]
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                            "--threshold=%d" % int(MAX_EXPOSURE * 10), service],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for qtomod\.service: ([0-9.]+)", p.stdout)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        exposure = float(m.group(1))
        print("qtomod.service exposure: %.1f (limit %.1f)" % (exposure, MAX_EXPOSURE))
        self.assertLessEqual(exposure, MAX_EXPOSURE, p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_sysusers(self):
        """systemd-sysusers creates the user and groups the units name, as system accounts."""
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        for f in ("passwd", "group", "shadow", "gshadow"):
            open(os.path.join(root, "etc", f), "w").close()
        d = os.path.join(root, "usr", "lib", "sysusers.d")
        os.makedirs(d)
        shutil.copy(os.path.join(UNITS, "qtomo.sysusers"), os.path.join(d, "qtomo.conf"))
        p = subprocess.run(["systemd-sysusers", "--root=" + root], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

        def table(name):
            with open(os.path.join(root, "etc", name), encoding="utf-8") as f:
                return {line.split(":")[0]: line.rstrip("\n").split(":") for line in f}

        users, groups = table("passwd"), table("group")
        svc = unitexec.parse_unit(os.path.join(UNITS, "qtomod.service"))
        sock = unitexec.parse_unit(os.path.join(UNITS, "qtomod.socket"))
        user = unitexec.value(svc, "Service", "User")
        self.assertIn(user, users)
        self.assertLess(int(users[user][2]), 1000, "a system uid")
        self.assertEqual(users[user][6], "/usr/sbin/nologin")
        for g in (unitexec.value(svc, "Service", "Group"),
                  unitexec.value(sock, "Socket", "SocketGroup"), "qtomo-admin"):
            self.assertIn(g, groups)
            self.assertLess(int(groups[g][2]), 1000, "a system gid")
        # qtomod's default admin-group is the group sysusers creates.
        dump = subprocess.run([QTOMOD, "--config", "/dev/null", "--dump-config"],
                              capture_output=True, text=True, timeout=60).stdout
        self.assertIn("admin-group = qtomo-admin\n", dump)

    def test_unit_settings(self):
        """The settings the daemon relies on (daemon-notes section 3)."""
        svc = unitexec.parse_unit(os.path.join(UNITS, "qtomod.service"))
        sock = unitexec.parse_unit(os.path.join(UNITS, "qtomod.socket"))
        v = lambda k: unitexec.value(svc, "Service", k)  # noqa: E731
        self.assertEqual(v("Type"), "notify")
        self.assertIsNone(v("RuntimeDirectory"), "the socket's directory must outlive restarts")
        self.assertEqual(v("KillMode"), "mixed")
        self.assertEqual(v("OOMPolicy"), "continue")
        self.assertEqual(v("Restart"), "on-failure")
        self.assertEqual(v("CacheDirectory"), "qtomo")
        self.assertEqual(unitexec.command(svc, "ExecReload")[-1], "reload")
        # TimeoutStopSec= must leave room for the drain (drain-timeout-ms).
        dump = subprocess.run([QTOMOD, "--config", "/dev/null", "--dump-config"],
                              capture_output=True, text=True, timeout=60).stdout
        drain_ms = int(re.search(r"^drain-timeout-ms = (\d+)$", dump, re.M).group(1))
        self.assertGreater(unitexec.timespan_usec(v("TimeoutStopSec")), drain_ms * 1000)
        self.assertEqual(unitexec.value(sock, "Socket", "ListenStream"), "/run/qtomo/qtomod.sock")
        self.assertEqual(unitexec.value(sock, "Socket", "FileDescriptorName"), "qtomo")
        self.assertEqual(unitexec.value(sock, "Socket", "SocketMode"), "0660")
        # ExecReload talks to the socket the socket unit creates.
        self.assertIn(unitexec.value(sock, "Socket", "ListenStream"),
                      unitexec.command(svc, "ExecReload"))

    def test_lifecycle(self):
        """As the unit starts it (user, environment, file system, namespaces; no seccomp):
        ready, serves a batch, reloads through ExecReload=, stops on SIGTERM with exit 0."""
        self.run_unit(seccomp=False)

    def test_lifecycle_sandboxed(self):
        """The same under the unit's seccomp filters: SystemCallFilter=,
        RestrictAddressFamilies=AF_UNIX and MemoryDenyWriteExecute= (OpenBLAS needs no W+X)."""
        if os.environ.get("QTOMO_SANITIZE"):
            self.skipTest("sanitizer build (LeakSanitizer uses ptrace, outside the filter)")
        self.run_unit(seccomp=True)

    # ---- the daemon under the unit ----

    def run_unit(self, seccomp):
        svc_path = os.path.join(UNITS, "qtomod.service")
        svc = unitexec.parse_unit(svc_path)
        sock = unitexec.parse_unit(os.path.join(UNITS, "qtomod.socket"))
        root = os.path.join(self.tmp, "root")  # stands for / in every path the units name
        as_root = os.geteuid() == 0
        uid, gid = STANDIN if as_root else (os.getuid(), os.getgid())

        # What qtomod.socket does: /run/qtomo (DirectoryMode=), the socket, its descriptor.
        listen = root + unitexec.value(sock, "Socket", "ListenStream")
        os.makedirs(os.path.dirname(listen),
                    mode=int(unitexec.value(sock, "Socket", "DirectoryMode", "0755"), 8))
        # What CacheDirectory= does.
        cache = os.path.join(root, "var", "cache", unitexec.value(svc, "Service", "CacheDirectory"))
        os.makedirs(cache)
        os.chmod(cache, int(unitexec.value(svc, "Service", "CacheDirectoryMode", "0755"), 8))
        if as_root:
            os.chown(cache, uid, gid)

        notify = NotifyListener(os.path.join(self.tmp, "notify.sock"))
        self.addCleanup(notify.close)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(TEST_WATCHDOG_USEC),
               "CACHE_DIRECTORY": cache, "HOME": "/"}
        for line in unitexec.values(svc, "Service", "Environment"):
            for assignment in shlex.split(line):
                k, _, val = assignment.partition("=")
                env[k] = root + val if val.startswith(("/var/", "/run")) else val
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        self.assertIsNotNone(unitexec.value(svc, "Service", "WatchdogSec"))

        wrapper = [sys.executable, os.path.join(HERE, "unitexec.py"), svc_path]
        if as_root:
            wrapper += ["--user", "%d:%d" % (uid, gid)]
        wrapper += ["--writable", cache] + ([] if seccomp else ["--no-seccomp"]) + ["--"]
        start = [rewrite_programs(a) for a in unitexec.command(svc, "ExecStart")]
        fdname = unitexec.value(sock, "Socket", "FileDescriptorName")
        cmd = ["systemd-socket-activate", "-l", listen, "--fdname=" + fdname]
        for k, val in sorted(env.items()):
            cmd += ["-E", "%s=%s" % (k, val)]
        cmd += wrapper + start
        log = open(os.path.join(self.tmp, "qtomod.log"), "w+")
        self.addCleanup(log.close)
        daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  env={"PATH": env["PATH"]})
        self.addCleanup(self.stop, daemon)

        def daemon_log():
            log.flush()
            log.seek(0)
            return log.read()

        deadline = time.monotonic() + 10
        while not os.path.exists(listen):
            self.assertIsNone(daemon.poll(), daemon_log())
            self.assertLess(time.monotonic(), deadline, "no socket " + listen)
            time.sleep(0.02)
        # SocketUser=, SocketGroup=, SocketMode= (the stand-in group for qtomo).
        if as_root:
            os.chown(listen, 0, gid)
        os.chmod(listen, int(unitexec.value(sock, "Socket", "SocketMode"), 8))

        # The first connection starts the daemon; the batch is served once it is ready.
        p = subprocess.run([QTOMOCTL, "-s", listen, "--timeout", "60", "--json", "reconstruct",
                            EXAMPLE], capture_output=True, text=True, timeout=90)
        self.assertEqual(p.returncode, 0, p.stderr + daemon_log())
        records = [line for line in p.stdout.splitlines() if line]
        self.assertEqual(len(records), 6, p.stdout)  # 3 samples x (linear, mle)
        self.assertTrue(all('"status":"ok"' in r for r in records), p.stdout)
        ready = notify.wait_for("READY", "1")
        self.assertIn("listening on the socket-activated descriptor", daemon_log())
        self.assertTrue(os.listdir(cache), "the projector cache is in CacheDirectory=")

        # ExecReload=, as the service's user under the same settings: synchronous, exit 0.
        reload_cmd = [rewrite_programs(a) for a in unitexec.command(svc, "ExecReload")]
        reload_cmd = [listen if a == unitexec.value(sock, "Socket", "ListenStream") else a
                      for a in reload_cmd]
        r = subprocess.run(wrapper + reload_cmd, capture_output=True, text=True, timeout=60,
                           env={"PATH": env["PATH"]})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + daemon_log())
        reloading = notify.wait_for("RELOADING", "1", start=ready + 1, timeout=5)
        notify.wait_for("READY", "1", start=reloading + 1, timeout=5)
        self.assertIn("reloaded", daemon_log())
        # Still serving after the reload.
        p = subprocess.run([QTOMOCTL, "-s", listen, "--timeout", "60", "ping"],
                           capture_output=True, text=True, timeout=90)
        self.assertEqual(p.returncode, 0, p.stderr)
        notify.wait_for("WATCHDOG", "1", timeout=5)

        # SIGTERM (KillMode=mixed: to the main process only): STOPPING=1, exit 0, no worker left.
        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(60), 0, daemon_log())
        notify.wait_for("STOPPING", "1", timeout=5)
        self.assertEqual({pid for pid, _ in notify.messages}, {daemon.pid},
                         "NotifyAccess=main: every message from the main process")
        time.sleep(0.2)
        self.assertEqual(self.leftovers(), [], daemon_log())

    def leftovers(self):
        """Processes whose command line names the scratch directory (workers)."""
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if self.tmp.encode() in f.read():
                        out.append(int(pid))
            except OSError:
                pass
        return out

    def stop(self, daemon):
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)


if __name__ == "__main__":
    unittest.main()
