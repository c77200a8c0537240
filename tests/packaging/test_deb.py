"""The Debian packages (packaging/debian, built by packaging/build-deb).

DebBuild.test_build builds them (offline, lintian must report no error) into $QTOMO_DEB_DIR;
the DebTest cases (a CTest fixture makes them run after it) check the built packages: their
files, dependencies and maintainer scripts; the tree they install (extracted with dpkg -x into a
scratch root, so nothing on this machine changes): programs, units, sysusers.d, configuration,
man pages, completion; and the client side: acquire.c compiled through the installed pkg-config
file against the installed header and library (shared and static), qtomoctl and the Python
module, all talking to the packaged qtomod. Environment: QTOMO_SRC, QTOMO_DEB_DIR (set by
CTest).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_units import NotifyListener  # noqa: E402

SRC = os.environ.get("QTOMO_SRC", os.path.normpath(os.path.join(HERE, "..", "..")))
DEB_DIR = os.environ.get("QTOMO_DEB_DIR", os.path.join(SRC, "build", "deb"))
EXAMPLE = os.path.join(SRC, "client", "examples", "data", "mub_d3.csv")
PACKAGES = ["qtomod", "qtomoctl", "qtomo-mpi", "libqtomo-client0", "libqtomo-client-dev",
            "python3-qtomo-client"]


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, **kw)


def out(cmd, **kw):
    p = run(cmd, **kw)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                     p.stderr))
    return p.stdout


VERSION = out(["dpkg-parsechangelog", "-l", os.path.join(SRC, "packaging", "debian", "changelog"),
               "-S", "Version"]).strip()
UPSTREAM = VERSION.rsplit("-", 1)[0]
MA = out(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()
ARCH = out(["dpkg-architecture", "-qDEB_HOST_ARCH"]).strip()

# Every file each package ships, apart from usr/share/doc/<package>/.
EXPECTED = {
    "qtomod": {
        "etc/qtomo/qtomod.conf",
        "lib/systemd/system/qtomod.service",
        "lib/systemd/system/qtomod.socket",
        "usr/lib/sysusers.d/qtomo.conf",
        "usr/sbin/qtomod",
        "usr/share/man/man5/qtomod.conf.5.gz",
        "usr/share/man/man8/qtomod.8.gz",
    },
    "qtomoctl": {
        "usr/bin/qtomoctl",
        "usr/libexec/qtomo/qtomo-h5",
        "usr/libexec/qtomo/qtomo-plot",
        "usr/share/bash-completion/completions/qtomoctl",
        "usr/share/man/man1/qtomoctl.1.gz",
    },
    "qtomo-mpi": {
        "usr/bin/qtomo-mpi",
        "usr/share/man/man1/qtomo-mpi.1.gz",
    },
    "libqtomo-client0": {
        "usr/lib/%s/libqtomo-client.so.%s" % (MA, UPSTREAM),
        "usr/lib/%s/libqtomo-client.so.0" % MA,
    },
    "libqtomo-client-dev": {
        "usr/include/qtomo/client.h",
        "usr/lib/%s/libqtomo-client.a" % MA,
        "usr/lib/%s/libqtomo-client.so" % MA,
        "usr/lib/%s/pkgconfig/libqtomo-client.pc" % MA,
    },
    "python3-qtomo-client": {
        "usr/lib/python3/dist-packages/qtomo_client.py",
    },
}


def deb(package):
    arch = "all" if package.startswith("python3-") else ARCH
    return os.path.join(DEB_DIR, "%s_%s_%s.deb" % (package, VERSION, arch))


def have_debs():
    return all(os.path.exists(deb(p)) for p in PACKAGES)


class DebBuild(unittest.TestCase):
    def test_build(self):
        """dpkg-buildpackage -us -uc -b builds every package offline (in a network namespace
        when that is allowed); lintian reports no error."""
        if not shutil.which("dh") or not shutil.which("lintian"):
            self.skipTest("debhelper or lintian missing (packaging/install-deps installs them)")
        cmd = [os.path.join(SRC, "packaging", "build-deb"), "-o", DEB_DIR]
        # Offline for certain: in a network namespace with no interface up, where allowed.
        if run(["unshare", "-n", "true"]).returncode == 0:
            cmd = ["unshare", "-n"] + cmd
        t0 = time.monotonic()
        p = run(cmd, timeout=900)
        sys.stdout.write(p.stdout + p.stderr)
        self.assertEqual(p.returncode, 0)
        print("build-deb took %.0f s" % (time.monotonic() - t0))
        self.assertTrue(have_debs(), os.listdir(DEB_DIR))
        self.assertNotRegex(p.stdout, r"(?m)^E: ")


class DebTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        if not have_debs():
            self.skipTest("no packages in %s (packaging.build_deb did not build them)" % DEB_DIR)
        self.tmp = tempfile.mkdtemp(prefix="qtomo-deb-")
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(self.root)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def extract(self):
        for p in PACKAGES:
            out(["dpkg-deb", "-x", deb(p), self.root])
        return self.root

    def r(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    # ---- the packages themselves ----

    def test_contents(self):
        """Each package ships exactly its files; the library link points at the SONAME."""
        for p in PACKAGES:
            listing = out(["dpkg-deb", "-c", deb(p)]).splitlines()
            files = set()
            for line in listing:
                path = line.split(None, 5)[5].split(" -> ")[0]
                if not path.endswith("/") and not path.startswith("./usr/share/doc/%s/" % p):
                    files.add(path[2:])
            self.assertEqual(files, EXPECTED[p], p)
        self.extract()
        self.assertEqual(os.readlink(self.r("usr/lib/%s/libqtomo-client.so" % MA)),
                         "libqtomo-client.so.0")
        self.assertEqual(os.readlink(self.r("usr/lib/%s/libqtomo-client.so.0" % MA)),
                         "libqtomo-client.so.%s" % UPSTREAM)
        soname = re.search(r"SONAME\s+(\S+)", out(["objdump", "-p", self.r(
            "usr/lib/%s/libqtomo-client.so.%s" % (MA, UPSTREAM))])).group(1)
        self.assertEqual(soname, "libqtomo-client.so.0")

    def test_maintainer_scripts(self):
        """qtomod: /etc/qtomo/qtomod.conf is a conffile; postinst creates the user (sysusers)
        before it enables and starts the socket; the service is socket-activated, not
        enabled or started by the package; purge removes the cache."""
        ctl = os.path.join(self.tmp, "ctl")
        out(["dpkg-deb", "-e", deb("qtomod"), ctl])
        with open(os.path.join(ctl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/qtomo/qtomod.conf"])
        with open(os.path.join(ctl, "postinst")) as f:
            postinst = f.read()
        sysusers = postinst.index("systemd-sysusers")
        enable = postinst.index("deb-systemd-helper enable 'qtomod.socket'")
        start = postinst.index("deb-systemd-invoke $_dh_action 'qtomod.socket'")
        self.assertLess(sysusers, enable)
        self.assertLess(enable, start)
        self.assertIn("qtomo.conf", postinst[sysusers:sysusers + 80])
        self.assertNotIn("deb-systemd-invoke $_dh_action 'qtomod.service'", postinst)
        # The service is enabled again on upgrade only when the administrator had enabled it.
        for m in re.finditer(r"deb-systemd-helper enable 'qtomod\.service'", postinst):
            self.assertIn("was-enabled 'qtomod.service'", postinst[m.start() - 200:m.start()])
        with open(os.path.join(ctl, "prerm")) as f:
            self.assertIn("deb-systemd-invoke stop 'qtomod.socket'", f.read())
        with open(os.path.join(ctl, "postrm")) as f:
            postrm = f.read()
        self.assertIn('rm -rf "${DPKG_ROOT:-}/var/cache/qtomo"', postrm)
        self.assertIn("deb-systemd-helper purge", postrm)
        # python3-qtomo-client byte-compiles on install and cleans up on removal (dh_python3).
        ctl = os.path.join(self.tmp, "ctl-py")
        out(["dpkg-deb", "-e", deb("python3-qtomo-client"), ctl])
        with open(os.path.join(ctl, "postinst")) as f:
            self.assertIn("py3compile", f.read())

    def test_dependencies(self):
        """Every dependency of the packages is met on this Debian system (plus the packages
        themselves): they install here as they are."""
        installed = {}
        for line in out(["dpkg-query", "-W", "-f",
                         "${Package} ${Version} ${db:Status-Abbrev} ${Provides}\n"]).splitlines():
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[2].startswith("ii"):
                installed[parts[0]] = parts[1]
                for prov in (parts[3] if len(parts) > 3 else "").split(","):
                    prov = prov.strip()
                    if prov:
                        name, _, ver = prov.partition(" ")
                        installed.setdefault(name, ver.strip("()= ") or None)
        ours = {p: VERSION for p in PACKAGES}

        def met(alt):
            m = re.match(r"^([a-z0-9.+-]+)(?::[a-z0-9]+)?(?: \((<<|<=|=|>=|>>) ([^)]+)\))?$",
                         alt.strip())
            self.assertIsNotNone(m, alt)
            name, op, ver = m.groups()
            have = ours.get(name, installed.get(name, False))
            if have is False:
                return False
            if op is None:
                return True
            if have is None:
                return False
            dop = {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">>": "gt"}[op]
            return run(["dpkg", "--compare-versions", have, dop, ver]).returncode == 0

        for p in PACKAGES:
            for field in ("Pre-Depends", "Depends"):
                text = run(["dpkg-deb", "-f", deb(p), field]).stdout.strip()
                for clause in filter(None, (c.strip() for c in text.split(","))):
                    self.assertTrue(any(met(a) for a in clause.split("|")),
                                    "%s: %s: %s is not met" % (p, field, clause))
        depends = out(["dpkg-deb", "-f", deb("qtomod"), "Depends"])
        self.assertIn("qtomoctl (= %s)" % VERSION, depends)  # ExecReload= runs qtomoctl
        self.assertIn("systemd-sysusers", depends)
        self.assertIn("python3-msgpack", out(["dpkg-deb", "-f", deb("python3-qtomo-client"),
                                              "Depends"]))

    # ---- the installed tree ----

    def test_installed_tree(self):
        """Programs run; units, sysusers.d entry and configuration are the project's; the
        sysusers entry creates the accounts; man pages render cleanly; completion loads."""
        self.extract()
        self.assertEqual(out([self.r("usr/sbin/qtomod"), "--version"]).strip(),
                         "qtomod %s" % UPSTREAM)
        self.assertTrue(out([self.r("usr/bin/qtomoctl"), "--version"]).startswith(
            "qtomoctl %s" % UPSTREAM))
        # results.h5 and the figures come from the helpers qtomo-h5 and qtomo-plot, found from
        # qtomoctl's own directory in the unpacked tree; qtomoctl itself links neither HDF5 nor
        # cairo (its start is 6 ms and 4 ms shorter).
        dyn = out(["readelf", "-d", self.r("usr/bin/qtomoctl")])
        self.assertNotIn("hdf5", dyn)
        self.assertNotIn("cairo", dyn)
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "run")
            p = run([self.r("usr/bin/qtomoctl"), "reconstruct", EXAMPLE, "--local", "--design",
                     "mub", "--method", "linear", "-o", d, "--hdf5", "--plots", "first:1"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "results.h5"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89HDF\r\n\x1a\n")
            self.assertTrue(os.path.isfile(os.path.join(d, "plots", "run_purity.svg")))
            self.assertTrue(os.path.isfile(os.path.join(d, "report.html")))
        with open(self.r("usr/sbin/qtomod"), "rb") as f:  # daemon/qd_worker.c's marker
            self.assertNotIn(b"QTOMO_TEST_HOOKS_ENABLED", f.read())
        for name in ("qtomod.service", "qtomod.socket"):
            with open(self.r("lib/systemd/system/" + name)) as a, \
                    open(os.path.join(SRC, "systemd", name)) as b:
                self.assertEqual(a.read(), b.read(), name)
        with open(self.r("usr/lib/sysusers.d/qtomo.conf")) as a, \
                open(os.path.join(SRC, "systemd", "qtomo.sysusers")) as b:
            self.assertEqual(a.read(), b.read())

        # The installed units verify, with their programs taken from the scratch root.
        units = os.path.join(self.tmp, "units")
        os.makedirs(units)
        for name in ("qtomod.service", "qtomod.socket"):
            with open(self.r("lib/systemd/system/" + name)) as f:
                text = f.read()
            text = text.replace("/usr/sbin/qtomod", self.r("usr/sbin/qtomod"))
            text = text.replace("/usr/bin/qtomoctl", self.r("usr/bin/qtomoctl"))
            with open(os.path.join(units, name), "w") as f:
                f.write(text)
        p = run(["systemd-analyze", "verify", "--man=yes",
                 os.path.join(units, "qtomod.service"), os.path.join(units, "qtomod.socket")],
                env=dict(os.environ, MANPATH=self.r("usr/share/man")))
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

        # What the postinst's systemd-sysusers does, in the scratch root.
        for f in ("passwd", "group", "shadow", "gshadow"):
            open(self.r("etc/" + f), "w").close()
        out(["systemd-sysusers", "--root=" + self.root])
        with open(self.r("etc/passwd")) as f:
            self.assertRegex(f.read(), r"(?m)^qtomo:x:\d+:\d+:")
        with open(self.r("etc/group")) as f:
            groups = f.read()
        self.assertRegex(groups, r"(?m)^qtomo:x:\d+:")
        self.assertRegex(groups, r"(?m)^qtomo-admin:x:\d+:")

        # The shipped configuration is every key commented out: it changes nothing.
        conf = self.r("etc/qtomo/qtomod.conf")
        qtomod = self.r("usr/sbin/qtomod")
        shipped = out([qtomod, "--config", conf, "--dump-config"])
        self.assertEqual(shipped, out([qtomod, "--config", "/dev/null", "--dump-config"]))
        with open(conf) as f:
            text = f.read()
        for line in shipped.splitlines():
            self.assertRegex(text, r"(?m)^#%s =" % re.escape(line.split(" =")[0]))

        for page in ("man8/qtomod.8.gz", "man5/qtomod.conf.5.gz", "man1/qtomoctl.1.gz"):
            p = run(["man", "--warnings", "-E", "UTF-8", "-l", self.r("usr/share/man/" + page)],
                    env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "", page)
            self.assertGreater(len(p.stdout), 500, page)
        comp = self.r("usr/share/bash-completion/completions/qtomoctl")
        p = run(["bash", "-c", 'source "$1" && complete -p qtomoctl', "bash", comp])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("qtomoctl", p.stdout)

    def test_clients(self):
        """The installed pkg-config file compiles client/examples/acquire.c against the
        installed header and library (shared and static); it, the installed qtomoctl and the
        installed Python module reconstruct through the installed qtomod."""
        self.extract()
        libdir = self.r("usr/lib/" + MA)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.root)
        self.assertEqual(out(["pkg-config", "--modversion", "libqtomo-client"], env=env).strip(),
                         UPSTREAM)
        flags = out(["pkg-config", "--cflags", "--libs", "libqtomo-client"], env=env).split()
        self.assertIn("-I" + self.r("usr/include"), flags)
        self.assertIn("-L" + libdir, flags)
        src = os.path.join(SRC, "client", "examples", "acquire.c")
        shared = os.path.join(self.tmp, "acquire")
        out(["cc", "-Wall", "-Werror", "-o", shared, src] + flags, env=env)
        needed = re.findall(r"NEEDED\s+(\S+)", out(["objdump", "-p", shared]))
        self.assertIn("libqtomo-client.so.0", needed)
        # Static: the archive plus what `pkg-config --static` says it needs.
        static_flags = out(["pkg-config", "--static", "--libs", "libqtomo-client"],
                           env=env).split()
        static_flags = [os.path.join(libdir, "libqtomo-client.a") if f == "-lqtomo-client"
                        else f for f in static_flags]
        static = os.path.join(self.tmp, "acquire-static")
        out(["cc", "-Wall", "-Werror", "-o", static, src] + flags[:1] + static_flags, env=env)
        self.assertNotIn("libqtomo-client.so.0",
                         re.findall(r"NEEDED\s+(\S+)", out(["objdump", "-p", static])))

        # The packaged daemon, with the packaged configuration, on a private socket.
        sock = os.path.join(self.tmp, "qtomod.sock")
        notify = NotifyListener(os.path.join(self.tmp, "notify.sock"))
        self.addCleanup(notify.close)
        log = open(os.path.join(self.tmp, "qtomod.log"), "w+")
        self.addCleanup(log.close)
        daemon = subprocess.Popen(
            [self.r("usr/sbin/qtomod"), "--config", self.r("etc/qtomo/qtomod.conf"),
             "--socket", sock, "--cache-dir", os.path.join(self.tmp, "cache"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, NOTIFY_SOCKET=notify.path))
        self.addCleanup(lambda: daemon.poll() is None and (daemon.kill(), daemon.wait(10)))
        notify.wait_for("READY", "1")

        with open(EXAMPLE) as f:
            rows = [[float(x) for x in line.split(",")] for line in f if line.strip()]
        column = ",".join(repr(r[0]) for r in rows) + "\n"
        run_env = dict(os.environ, QTOMO_SOCKET=sock)
        for prog, extra in ((shared, {"LD_LIBRARY_PATH": libdir}), (static, {})):
            p = run([prog], input=column, env=dict(run_env, **extra))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"^mle purity [01]\.\d{6}\n$")

        p = run([self.r("usr/bin/qtomoctl"), "-s", sock, "--json", "reconstruct", EXAMPLE])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count('"status":"ok"'), 6, p.stdout)

        # The Python module; and the test-only crash hook (QD_HOOK_CRASH in daemon/qd.h) must
        # not be in the packaged daemon: that sample is an ordinary one there.
        code = ("import sys, qtomo_client as q\n"
                "assert q.__file__.startswith(sys.argv[1]), q.__file__\n"
                "v = [float(x) for x in sys.argv[3].split(',')]\n"
                "with q.Client(sys.argv[2], timeout=30) as c:\n"
                "    r = c.reconstruct(v, 'mub', dim=3)\n"
                "    print(*[x['status'] for x in r['results']])\n"
                "    r = c.reconstruct([-7.25e300] + v[1:], 'mub', dim=3)\n"
                "    print(*[x.get('error', {}).get('code') for x in r['results']])\n")
        p = run(["/usr/bin/python3", "-c", code, self.root, sock, column.strip()],
                env=dict(os.environ, PYTHONPATH=self.r("usr/lib/python3/dist-packages"),
                         PYTHONDONTWRITEBYTECODE="1"))
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ok", "ok"])
        self.assertNotIn("-32003", lines[1], "worker_crashed: test hooks in the package")

        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(60), 0)


if __name__ == "__main__":
    unittest.main()
