/* qtomoctl's helper programs. results.h5 is written by qtomo-h5 (h5_main.c, with recon_h5.c's
 * writer) and figures are drawn by qtomo-plot (plot_main.c, with plot_run.c and cairo), so that
 * qtomoctl itself links neither HDF5 nor cairo: their libraries (~36 and ~15) cost every
 * qtomoctl start dynamic linking, about 6 ms and 4 ms, whatever the command (issue 19); only
 * the runs that write results.h5 or figures pay it now, once. qtomo-mpi links both itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plot_run.h"
#include "qctl.h"
#include "recon.h"

extern char **environ;

/* A helper: next to this program (the build tree), else at rel from this program's directory
 * (the installed tree: bin/ to libexec/qtomo/, wherever it was unpacked). */
static int helper_path(const char *name, const char *rel, char *out, size_t len)
{
    char exe[4096], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0)
        return n < 0 ? -errno : -ENOENT;
    exe[n] = '\0';
    if (!(slash = strrchr(exe, '/')))
        return -ENOENT;
    *slash = '\0';
    if ((size_t)snprintf(out, len, "%s/%s", exe, name) < len && access(out, X_OK) == 0)
        return 0;
    if ((size_t)snprintf(out, len, "%s/%s", exe, rel) < len && access(out, X_OK) == 0)
        return 0;
    return -ENOENT;
}

static const int stop_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_STOP_SIGS (sizeof(stop_sigs) / sizeof(stop_sigs[0]))

static volatile sig_atomic_t fwd_pid, fwd_sig;

/* While a stoppable helper runs: its stop signal is passed on to it, and remembered. */
static void forward(int sig)
{
    fwd_sig = sig;
    if (fwd_pid > 0)
        (void)kill((pid_t)fwd_pid, sig);
}

/* Runs path with argv and waits: 0 and its wait status, or a negative error (printed).
 * Not stoppable (qtomo-h5): the child starts with SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked:
 * qtomoctl treats those as "stop after the current sample, then finish the files", and a
 * Ctrl-C on the terminal reaches the whole process group, so the file being written is
 * finished rather than left half-made (qtomoctl waits; SIGKILL still ends it).
 * Stoppable (qtomo-plot: drawing is not a batch to finish): the child starts with those
 * signals at their defaults and unblocked; one that reaches qtomoctl while it waits (kill,
 * timeout(1)) is passed on to the child, and once the child has ended, qtomoctl ends by the
 * same signal, as when it drew the figures itself.
 * SIGCHLD is the default while we wait: a parent that ignores it would make the kernel reap
 * the child and waitpid fail. */
static int run(const char *path, char *const argv[], bool stoppable, int *ret_status)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old, fwd = {.sa_handler = forward};
    struct sigaction old_stop[N_STOP_SIGS];
    posix_spawnattr_t at;
    sigset_t stop, mask;
    pid_t pid;
    int r;

    sigemptyset(&stop);
    for (size_t i = 0; i < N_STOP_SIGS; i++)
        sigaddset(&stop, stop_sigs[i]);
    if ((r = posix_spawnattr_init(&at)) != 0) {
        qctl_err("cannot run %s: %s", path, strerror(r));
        return -r;
    }
    if (stoppable) {
        (void)pthread_sigmask(SIG_BLOCK, NULL, &mask);
        for (size_t i = 0; i < N_STOP_SIGS; i++)
            sigdelset(&mask, stop_sigs[i]);
        (void)posix_spawnattr_setsigdefault(&at, &stop);
        (void)posix_spawnattr_setsigmask(&at, &mask);
        (void)posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        /* Held until the child's pid is known, so that none is lost in between. */
        (void)pthread_sigmask(SIG_BLOCK, &stop, &mask);
        fwd_pid = 0;
        fwd_sig = 0;
        sigemptyset(&fwd.sa_mask);
        for (size_t i = 0; i < N_STOP_SIGS; i++)
            (void)sigaction(stop_sigs[i], &fwd, &old_stop[i]);
    } else {
        (void)posix_spawnattr_setsigmask(&at, &stop);
        (void)posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    }
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(SIGCHLD, &dfl, &old);
    fflush(NULL); /* what we buffered goes out before anything the child prints */
    r = posix_spawn(&pid, path, NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    if (stoppable) {
        fwd_pid = r == 0 ? pid : 0;
        (void)pthread_sigmask(SIG_SETMASK, &mask, NULL); /* a held signal is passed on now */
    }
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
    if (stoppable) {
        fwd_pid = 0;
        for (size_t i = 0; i < N_STOP_SIGS; i++)
            (void)sigaction(stop_sigs[i], &old_stop[i], NULL);
        if (fwd_sig) { /* end as the signal would have ended us */
            (void)signal(fwd_sig, SIG_DFL);
            (void)raise(fwd_sig);
        }
    }
    return r;
}

/* Runs the helper name (at rel when installed) with the arguments args (NULL-terminated, at
 * most 6) and waits: 0 and its wait status, or a negative error, printed with what (what could
 * not be done). */
static int run_helper(const char *name, const char *rel, const char *what, const char *const args[],
                      bool stoppable, int *st)
{
    char path[8192], *argv[8] = {path};
    size_t n = 1;
    int r = helper_path(name, rel, path, sizeof(path));

    if (r < 0) {
        qctl_err("cannot %s: its helper %s is not installed (%s, or %s from qtomoctl's "
                 "directory)",
                 what, name, name, rel);
        return r;
    }
    for (; args[n - 1] && n < sizeof(argv) / sizeof(argv[0]) - 1 && r == 0; n++)
        if (!(argv[n] = strdup(args[n - 1]))) /* posix_spawn takes char *const[] */
            r = -ENOMEM;
    if (r < 0)
        qctl_err("out of memory");
    else
        r = run(path, argv, stoppable, st);
    while (--n > 0)
        free(argv[n]);
    return r;
}

int qctl_write_h5(const char *dir)
{
    const char *const args[] = {dir, NULL};
    int st = 0,
        r = run_helper("qtomo-h5", QTOMO_H5_HELPER_REL, "write results.h5", args, false, &st);

    if (r < 0)
        return r;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st)) /* otherwise it said why itself */
        qctl_err("cannot write results.h5: qtomo-h5 was killed by signal %d", WTERMSIG(st));
    return -EIO;
}

int qctl_plot_dir(const char *dir, const struct plot_sel *sel, const struct qctl_global *g)
{
    char text[PLOT_SEL_TEXT];
    const char *const args[] = {dir, text, g->verbosity >= 0 && !g->json ? NULL : "--quiet", NULL};
    int st = 0, r = plot_sel_format(sel, text, sizeof(text));

    if (r == 0)
        r = run_helper("qtomo-plot", QTOMO_PLOT_HELPER_REL, "draw the figures", args, true, &st);
    if (r < 0)
        return QCTL_EXIT_FAILED;
    if (WIFEXITED(st)) /* it said why itself */
        return WEXITSTATUS(st);
    qctl_err("cannot draw the figures: qtomo-plot was killed by signal %d", WTERMSIG(st));
    return QCTL_EXIT_FAILED;
}
