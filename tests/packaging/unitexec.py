"""Reading systemd unit files, and running a command the way a unit's [Service] section would,
as far as that is possible without systemd as PID 1 (tests/packaging).

As a program, ``unitexec.py UNIT [--user UID:GID] [--writable DIR]... [--no-seccomp] -- CMD...``
applies to itself what the unit asks for, then executes CMD (same process, so a descriptor and
LISTEN_PID passed by systemd-socket-activate stay valid):

- as root: a mount namespace in which the whole tree is read-only (ProtectSystem=strict) except
  /dev, /proc and the --writable directories (the unit's CacheDirectory=), /proc remounted with
  subset=pid (ProcSubset=pid), a new network namespace (PrivateNetwork=) and IPC namespace
  (PrivateIPC=), then the user and group (a stand-in for User=/Group=), without supplementary
  groups;
- UMask=, NoNewPrivileges=;
- unless --no-seccomp (sanitizer builds: LeakSanitizer needs ptrace), seccomp filters for
  SystemCallFilter= (+ SystemCallArchitectures=native), RestrictAddressFamilies= and
  MemoryDenyWriteExecute=, built from `systemd-analyze syscall-filter` exactly as the unit
  lists them. Where systemd would return an error (SystemCallErrorNumber=EPERM), these filters
  kill the process instead, so that a forbidden call cannot go unnoticed; address families get
  EAFNOSUPPORT as under systemd.

Not emulated (they only hide things or need PID 1): PrivateTmp=, ProtectHome=, PrivateDevices=,
ProtectKernel*=, ProtectClock=, ProtectControlGroups=, RestrictNamespaces=, RestrictRealtime=,
LockPersonality=, CapabilityBoundingSet=, IPAddressDeny=, the cgroup and the watchdog itself.
"""

import ctypes
import ctypes.util
import errno
import os
import shlex
import subprocess
import sys


def parse_unit(path):
    """{section: [(key, value), ...]} in file order (keys may repeat)."""
    sections, cur, cont = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = cont + raw.strip()
            cont = ""
            if not line or line[0] in "#;":
                continue
            if line.endswith("\\"):
                cont = line[:-1] + " "
                continue
            if line.startswith("[") and line.endswith("]"):
                cur = line[1:-1]
                sections.setdefault(cur, [])
                continue
            key, eq, value = line.partition("=")
            if not eq or cur is None:
                raise ValueError("%s: cannot parse %r" % (path, raw))
            sections[cur].append((key.strip(), value.strip()))
    return sections


def values(unit, section, key):
    """Every value of key in order; an empty assignment resets the list (systemd's rule)."""
    out = []
    for k, v in unit.get(section, []):
        if k == key:
            out = [] if v == "" else out + [v]
    return out


def value(unit, section, key, default=None):
    v = values(unit, section, key)
    return v[-1] if v else default


def command(unit, key):
    """An Exec*= line as argv (the unit's lines use no prefixes, specifiers or variables)."""
    line = value(unit, "Service", key)
    if line is None:
        raise ValueError("no %s=" % key)
    if line[0] in "-@:+!" or "%" in line or "$" in line:
        raise ValueError("%s=%s: prefixes, specifiers and variables are not supported here"
                         % (key, line))
    return shlex.split(line)


def timespan_usec(text):
    """A systemd time span ('30s', '2min', '500ms', '1h') in microseconds."""
    units = {"us": 1, "usec": 1, "ms": 1000, "msec": 1000, "s": 10**6, "sec": 10**6, "": 10**6,
             "min": 60 * 10**6, "m": 60 * 10**6, "h": 3600 * 10**6, "hr": 3600 * 10**6}
    total = 0
    for part in text.split():
        num = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += int(float(num) * units[part[len(num):]])
    return total


# ---- system call sets ----

def syscall_sets():
    """{'@set': [members]} from `systemd-analyze syscall-filter` (members may be @sets)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], check=True,
                         capture_output=True, text=True).stdout
    sets, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = sets.setdefault(line.strip(), [])
        elif line.startswith("#"):
            cur = None  # the trailing lists of ungrouped calls
        elif line.strip() and not line.strip().startswith("#") and cur is not None:
            cur.append(line.strip())
    return sets


def expand(names, sets):
    out = set()
    for n in names:
        if n.startswith("@"):
            out |= expand(sets[n], sets)
        else:
            out.add(n.split(":")[0])
    return out


# systemd.exec(5): always permitted, in addition to the list.
IMPLICIT = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
            "clock_getres", "clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep",
            "time"}


def allowed_syscalls(unit, sets=None):
    """The allow list a unit's SystemCallFilter= lines give (allow-list units only)."""
    sets = sets if sets is not None else syscall_sets()
    allowed, mode = set(), None
    for v in values(unit, "Service", "SystemCallFilter"):
        neg = v.startswith("~")
        names = expand((v[1:] if neg else v).split(), sets)
        if mode is None:
            mode = "deny" if neg else "allow"
        if mode == "deny":
            raise ValueError("deny-list SystemCallFilter= is not supported here")
        allowed = allowed - names if neg else allowed | names
    return None if mode is None else allowed | IMPLICIT


# ---- libseccomp through ctypes ----

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE, SCMP_CMP_MASKED_EQ = 1, 7


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | (e & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _seccomp():
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _filter(lib, default, rules):
    """Loads one filter: rules are (syscall name, action, [(arg, op, a, b), ...])."""
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name, action, cmps in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # not a system call on this architecture
            arr = (ScmpArgCmp * max(1, len(cmps)))(*[ScmpArgCmp(*c) for c in cmps])
            r = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if r < 0:
                raise OSError(-r, "seccomp_rule_add(%s): %s" % (name, os.strerror(-r)))
        r = lib.seccomp_load(ctx)
        if r < 0:
            raise OSError(-r, "seccomp_load: %s" % os.strerror(-r))
    finally:
        lib.seccomp_release(ctx)


def seccomp_filters(unit):
    """The unit's filters as (default action, rules), in the order systemd loads them: the
    system call allow list last, since it forbids seccomp() itself."""
    filters = []
    if value(unit, "Service", "MemoryDenyWriteExecute") == "yes":
        import mmap
        wx, x, shm_exec = mmap.PROT_WRITE | mmap.PROT_EXEC, mmap.PROT_EXEC, 0o100000
        kill = SCMP_ACT_KILL_PROCESS
        filters.append((SCMP_ACT_ALLOW, [
            ("mmap", kill, [(2, SCMP_CMP_MASKED_EQ, wx, wx)]),
            ("mmap2", kill, [(2, SCMP_CMP_MASKED_EQ, wx, wx)]),
            ("mprotect", kill, [(2, SCMP_CMP_MASKED_EQ, x, x)]),
            ("pkey_mprotect", kill, [(2, SCMP_CMP_MASKED_EQ, x, x)]),
            ("shmat", kill, [(2, SCMP_CMP_MASKED_EQ, shm_exec, shm_exec)]),
        ]))
    families = value(unit, "Service", "RestrictAddressFamilies")
    if families is not None:
        if families.split() != ["AF_UNIX"]:
            raise ValueError("only RestrictAddressFamilies=AF_UNIX is supported here")
        import socket
        filters.append((SCMP_ACT_ALLOW, [("socket", SCMP_ACT_ERRNO(errno.EAFNOSUPPORT),
                                          [(0, SCMP_CMP_NE, socket.AF_UNIX, 0)])]))
    allowed = allowed_syscalls(unit)
    if allowed is not None:
        if value(unit, "Service", "SystemCallArchitectures") not in (None, "native"):
            raise ValueError("only SystemCallArchitectures=native is supported here")
        filters.append((SCMP_ACT_KILL_PROCESS,
                        [(n, SCMP_ACT_ALLOW, []) for n in sorted(allowed)]))
    return filters


def apply_seccomp(filters):
    lib = _seccomp()
    for default, rules in filters:
        _filter(lib, default, rules)


# ---- namespaces and mounts (root only) ----

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC = 0x00020000, 0x40000000, 0x08000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    libc.syscall.restype = ctypes.c_long
    return libc


def _check(r, what):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def _setattr(libc, path, set_=0, clr=0):
    attr = MountAttr(set_, clr, 0, 0)
    _check(libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                        ctypes.c_char_p(path.encode()), ctypes.c_uint(AT_RECURSIVE),
                        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr %s" % path)


def apply_namespaces(unit, writable):
    libc = _libc()
    flags = CLONE_NEWNS
    if value(unit, "Service", "PrivateNetwork") == "yes":
        flags |= CLONE_NEWNET
    if value(unit, "Service", "PrivateIPC") == "yes":
        flags |= CLONE_NEWIPC
    _check(libc.unshare(flags), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    if value(unit, "Service", "ProtectSystem") == "strict":
        _setattr(libc, "/", set_=MOUNT_ATTR_RDONLY)
        for api in ("/dev", "/proc"):
            _setattr(libc, api, clr=MOUNT_ATTR_RDONLY)
        for d in writable:
            _check(libc.mount(d.encode(), d.encode(), None, MS_BIND | MS_REC, None),
                   "bind %s" % d)
            _setattr(libc, d, clr=MOUNT_ATTR_RDONLY)
    if value(unit, "Service", "ProcSubset") == "pid":
        _check(libc.mount(b"proc", b"/proc", b"proc", 0, b"subset=pid"), "mount proc subset=pid")


def main(argv):
    if "--" not in argv:
        sys.exit("usage: unitexec.py UNIT [--user UID:GID] [--writable DIR]... [--no-seccomp] "
                 "-- CMD...")
    i = argv.index("--")
    opts, cmd = argv[1:i], argv[i + 1:]
    unit = parse_unit(opts.pop(0))
    user, writable, seccomp = None, [], True
    while opts:
        o = opts.pop(0)
        if o == "--user":
            user = tuple(int(x) for x in opts.pop(0).split(":"))
        elif o == "--writable":
            writable.append(os.path.abspath(opts.pop(0)))
        elif o == "--no-seccomp":
            seccomp = False
        else:
            sys.exit("unitexec.py: unknown option %s" % o)
    filters = seccomp_filters(unit) if seccomp else []
    if os.geteuid() == 0:
        try:
            apply_namespaces(unit, writable)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise
            # A container that denies mount namespaces to root: the rest still applies.
            print("unitexec.py: %s; no file system or namespace settings" % e, file=sys.stderr)
        if user:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
    umask = value(unit, "Service", "UMask")
    if umask:
        os.umask(int(umask, 8))
    if value(unit, "Service", "NoNewPrivileges") == "yes":
        _check(_libc().prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    apply_seccomp(filters)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
