/* qtomoctl's shared helpers (qctl_util.h): messages, BLAS setup, connecting and exit codes. */
#include "qctl_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/qt_mem.h"
#include "io/qt_designfile.h"
#include "num/qt_lapack.h"
#include "qctl.h"
#include "qtomo/client.h"

const char *qctl_progname = "qtomoctl";

void qctl_err(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", qctl_progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qctl_info(const struct qctl_global *g, const char *fmt, ...)
{
    va_list ap;

    if (g->verbosity < 1)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qctl_blas_env(const struct qctl_global *g)
{
    const char *ct;

    /* One thread whatever happens below: records then match the daemon's bit for bit. */
    qt_blas_single_thread();
    if (getenv("OPENBLAS_CORETYPE"))
        return; /* the user's choice, or we already re-executed */
    ct = qt_blas_coretype_advice();
    if (!ct)
        return;
    if (setenv("OPENBLAS_CORETYPE", ct, 1) != 0)
        return;
    if (!getenv("OPENBLAS_NUM_THREADS"))
        (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
    fflush(NULL);
    execv("/proc/self/exe", g->argv0);
    /* exec failed: carry on with the kernels we have. */
}

int qctl_exit_for(int err)
{
    switch (err) {
    case -ENOENT:
    case -ECONNREFUSED:
    case -ENOTDIR:
    case -EACCES:
    case -ENAMETOOLONG:
        return QCTL_EXIT_NODAEMON;
    case QTOMO_E_INVALID_PARAMS:
    case QTOMO_E_NOT_FOUND:
    case QTOMO_E_TOO_LARGE:
    case -EINVAL:
        return QCTL_EXIT_USAGE;
    case -ENOMEM:
        return QCTL_EXIT_FAILED;
    default:
        return QCTL_EXIT_SERVER;
    }
}

int qctl_connect(const struct qctl_global *g, struct qtomo_conn **ret)
{
    struct qtomo_error e;
    char path[108];
    int r;

    if (!g->socket && qtomo_default_socket(path, sizeof(path)) < 0)
        path[0] = '\0';
    r = qtomo_connect(ret, g->socket ? g->socket : path, "qtomoctl/" QTOMO_VERSION,
                      g->timeout > 0 ? (int)(g->timeout * 1e3) : 0, &e);
    if (r == 0)
        return 0;
    qctl_err("%s", e.message);
    switch (qctl_exit_for(r)) {
    case QCTL_EXIT_NODAEMON:
        if (r == -EACCES)
            fprintf(stderr, "hint: the socket belongs to the daemon's group; ask an "
                            "administrator to add you to it\n");
        else
            fprintf(stderr, "hint: start the daemon (qtomod, or systemctl start qtomod.socket), "
                            "point -s/QTOMO_SOCKET at its socket, or use --local\n");
        return QCTL_EXIT_NODAEMON;
    case QCTL_EXIT_USAGE:
        return QCTL_EXIT_USAGE;
    default:
        return r == -ETIMEDOUT ? QCTL_EXIT_NODAEMON : QCTL_EXIT_SERVER;
    }
}

void qctl_warn_target_fix(const char *what, const char *name, const struct qt_target_fix *fix)
{
    if (!fix->projected)
        return;
    qctl_err("warning: %s '%s' is not a density matrix (trace %.9g, smallest eigenvalue %.3g, "
             "Hermitian defect %.3g) but within 1e-3 of one: projected onto the density "
             "matrices, trace distance %.3g from it",
             what, name, fix->trace, fix->min_eig, fix->herm_defect, fix->distance);
}

/* Reads a whole file ('-' = standard input) up to max bytes (qctl.h). Here rather than with the
 * reconstruct command: the helper qtomo-h5 reads files too, and links no command. */
int qctl_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t len = 0, cap = 0;
    char *buf = NULL;
    struct stat st;
    int r = 0;

    if (!f)
        return -errno;
    /* A regular file's size is known: one buffer, in huge pages from 1 MiB (filled at once;
     * 4 kB pages cost this VM 11 us each, 4 ms for a 1.4 MB input). Room for one byte more:
     * the read that sees the end, and the terminator csvtab.h's parser wants. A file that grows
     * meanwhile takes the path below. */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (uintmax_t)st.st_size <= max) {
        cap = (size_t)st.st_size + 1;
        if (!(buf = qt_alloc_huge(cap, 1)))
            cap = 0;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;

            /* Up to the limit itself (+1 to see the end): a file sized by fstat that grew by a
             * little may still be within it. */
            if (ncap > max + 1 && cap < max + 1)
                ncap = max + 1;
            char *nb = ncap > max + 1 ? NULL : realloc(buf, ncap);

            if (!nb) {
                r = ncap > max + 1 ? QT_ETOOBIG : -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        r = -EIO;
        goto out;
    }
    *ret_buf = buf;
    *ret_len = len;
    buf = NULL;
out:
    free(buf);
    if (f != stdin)
        fclose(f);
    return r;
}
