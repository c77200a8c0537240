#!/usr/bin/python3
"""The test-only fault hooks never reach a build a user runs.

Configures the release preset into a scratch directory (configure only, a few seconds) and
checks in its compile database that qtomod's sources are compiled without QTOMO_TEST_HOOKS,
whatever QTOMO_BUILD_TESTS is; and, as a control, that the build running this test compiles
them with the hooks exactly when its own cache says so. The packaged binary is checked by
test_deb.py (no hook marker in /usr/sbin/qtomod).

Usage: release_hooks.py SOURCE_DIR BUILD_DIR"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def hook_flags(build):
    with open(os.path.join(build, "compile_commands.json")) as f:
        db = json.load(f)
    flags = {}
    for e in db:
        if re.search(r"daemon/qd_\w+\.c$", e["file"]):
            flags[os.path.basename(e["file"])] = "QTOMO_TEST_HOOKS" in e.get("command", " ".join(e.get("arguments", [])))
    if "qd_worker.c" not in flags:
        sys.exit("release_hooks: qd_worker.c is not in %s's compile database" % build)
    return flags


def cache_value(build, key):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    return None


def main():
    src, build = sys.argv[1], sys.argv[2]
    ours = hook_flags(build)
    want = cache_value(build, "QTOMO_TEST_HOOKS") == "ON"
    if ours["qd_worker.c"] != want:
        sys.exit("release_hooks: control failed: QTOMO_TEST_HOOKS=%s here but qd_worker.c has %s"
                 % (want, ours["qd_worker.c"]))
    tmp = tempfile.mkdtemp(prefix="qtomo-release-")
    try:
        for extra in ([], ["-DQTOMO_BUILD_TESTS=ON"]):
            subprocess.run(["cmake", "--preset", "release", "-B", tmp] + extra, cwd=src,
                           check=True, stdout=subprocess.DEVNULL)
            bad = [f for f, on in hook_flags(tmp).items() if on]
            if bad:
                sys.exit("release_hooks: the release preset%s compiles hooks into %s"
                         % (" with " + extra[0] if extra else "", ", ".join(bad)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("release preset: no test hooks in qtomod (control: this build has hooks=%s)" % want)


if __name__ == "__main__":
    main()
