/* qtomoctl's qctl_write_h5: results.h5 is written by the helper program qtomo-h5 (h5_main.c, with
 * recon_h5.c's writer), so that qtomoctl itself does not link HDF5. HDF5 and the ~36 libraries
 * it loads cost every qtomoctl start about 6 ms of dynamic linking, whatever the command
 * (issue 19); only runs that write results.h5 pay it now, once. qtomo-mpi links the writer
 * itself (recon_h5.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qctl.h"
#include "recon.h"

extern char **environ;

/* The helper: next to this program (the build tree), else at QTOMO_H5_HELPER_REL from this
 * program's directory (the installed tree: bin/ to libexec/qtomo/, wherever it was unpacked). */
static int helper_path(char *out, size_t len)
{
    char exe[4096], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0)
        return n < 0 ? -errno : -ENOENT;
    exe[n] = '\0';
    if (!(slash = strrchr(exe, '/')))
        return -ENOENT;
    *slash = '\0';
    if ((size_t)snprintf(out, len, "%s/qtomo-h5", exe) < len && access(out, X_OK) == 0)
        return 0;
    if ((size_t)snprintf(out, len, "%s/%s", exe, QTOMO_H5_HELPER_REL) < len &&
        access(out, X_OK) == 0)
        return 0;
    return -ENOENT;
}

/* Runs path with argv and waits: 0 and its wait status, or a negative error (printed). The
 * child starts with SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked: qtomoctl treats those as "stop
 * after the current sample, then finish the files", and a Ctrl-C on the terminal reaches the
 * whole process group, so the file being written is finished rather than left half-made
 * (qtomoctl waits; SIGKILL still ends it). SIGCHLD is the default while we wait: a parent that
 * ignores it would make the kernel reap the child and waitpid fail. */
static int run(const char *path, char *const argv[], int *ret_status)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    posix_spawnattr_t at;
    sigset_t mask;
    pid_t pid;
    int r;

    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGQUIT);
    if ((r = posix_spawnattr_init(&at)) != 0) {
        qctl_err("cannot run %s: %s", path, strerror(r));
        return -r;
    }
    (void)posix_spawnattr_setsigmask(&at, &mask);
    (void)posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(SIGCHLD, &dfl, &old);
    fflush(NULL); /* what we buffered goes out before anything the child prints */
    r = posix_spawn(&pid, path, NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    if (r != 0) {
        qctl_err("cannot run %s: %s", path, strerror(r));
        r = -r;
    } else {
        while (waitpid(pid, ret_status, 0) < 0) {
            if (errno != EINTR) {
                r = -errno;
                qctl_err("cannot wait for %s: %s", path, strerror(errno));
                break;
            }
        }
    }
    (void)sigaction(SIGCHLD, &old, NULL);
    return r;
}

int qctl_write_h5(const char *dir)
{
    char path[8192], *arg = strdup(dir);
    char *argv[] = {path, arg, NULL};
    int st = 0, r = helper_path(path, sizeof(path));

    if (r < 0)
        qctl_err("cannot write results.h5: its helper qtomo-h5 is not installed (%s, or %s "
                 "from qtomoctl's directory)",
                 "qtomo-h5", QTOMO_H5_HELPER_REL);
    else if (!arg)
        qctl_err("out of memory");
    r = r < 0 ? r : !arg ? -ENOMEM : run(path, argv, &st);
    free(arg);
    if (r < 0)
        return r;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st)) /* otherwise it said why itself */
        qctl_err("cannot write results.h5: %s was killed by signal %d", path, WTERMSIG(st));
    return -EIO;
}
