/* One chunk of samples: the batched linear inversion, then the iterative methods of each
 * sample started from its linear estimate (see qt_chunk.h). */
#include "qt_chunk.h"

#include <complex.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* The result records of a chunk. */
struct chunk_recs {
    struct qt_result *lin;        /* n, one per sample (the batch fills them all at once) */
    struct qt_result *it;         /* n_methods, reused from sample to sample; unused for linear */
    const struct qt_result **res; /* n_methods, what the callback sees */
    size_t n, n_methods;
};

static void recs_done(struct chunk_recs *c)
{
    /* The arrays are zeroed when allocated, and qt_result_done accepts unused records. */
    for (size_t i = 0; c->lin && i < c->n; i++)
        qt_result_done(&c->lin[i]);
    for (size_t k = 0; c->it && k < c->n_methods; k++)
        qt_result_done(&c->it[k]);
    free(c->lin);
    free(c->it);
    free((void *)c->res);
}

static int recs_init(struct chunk_recs *c, size_t d, size_t n, const enum qt_method *methods,
                     size_t n_methods)
{
    c->n = n;
    c->n_methods = n_methods;
    c->lin = calloc(n, sizeof(*c->lin));
    c->it = calloc(n_methods ? n_methods : 1, sizeof(*c->it));
    c->res = calloc(n_methods ? n_methods : 1, sizeof(*c->res));
    if (!c->lin || !c->it || !c->res)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (qt_result_init(&c->lin[i], d) < 0)
            return -ENOMEM;
    for (size_t k = 0; k < n_methods; k++)
        if (methods[k] != QT_METHOD_LINEAR && qt_result_init(&c->it[k], d) < 0)
            return -ENOMEM;
    return 0;
}

static double now_us(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The iterative methods of one sample y, started from its linear result lin; fills c->res. */
static void one_sample(const struct qt_design *des, struct qt_ws *ws, const double *y,
                       const struct qt_opts *opts, const enum qt_method *methods,
                       const struct qt_result *lin, struct chunk_recs *c)
{
    const double complex *start = lin->err ? NULL : lin->rho;

    for (size_t k = 0; k < c->n_methods; k++) {
        struct qt_result *r = &c->it[k];

        if (methods[k] == QT_METHOD_LINEAR) {
            c->res[k] = lin;
            continue;
        }
        /* A failure is recorded in the result and passed on like any other. */
        if (qt_estimate_from(des, ws, methods[k], y, des->m, opts, start, r) < 0 && r->err == 0)
            r->err = -EIO;
        c->res[k] = r;
    }
}

int qt_chunk_estimate(const struct qt_design *des, struct qt_ws *ws, const double *Y, size_t m,
                      size_t n, const struct qt_opts *opts, const enum qt_method *methods,
                      size_t n_methods, qt_chunk_cb cb, void *userdata)
{
    return qt_chunk_estimate_part(des, ws, Y, m, n, 0, n, opts, methods, n_methods, cb, userdata);
}

int qt_chunk_estimate_part(const struct qt_design *des, struct qt_ws *ws, const double *Y, size_t m,
                           size_t n, size_t lo, size_t hi, const struct qt_opts *opts,
                           const enum qt_method *methods, size_t n_methods, qt_chunk_cb cb,
                           void *userdata)
{
    struct chunk_recs c = {0};
    int r;

    if (m != des->m)
        return QT_ESAMPLELEN;
    if (lo > hi || hi > n)
        return -EINVAL;
    if (lo == hi)
        return 0;
    r = recs_init(&c, des->d, n, methods, n_methods);
    if (r == 0 && qt_estimate_linear_batch(des, ws, n, Y, m, opts, c.lin) < 0)
        r = -ENOMEM;
    for (size_t i = lo; r == 0 && i < hi; i++) {
        double t0 = now_us();

        one_sample(des, ws, Y + m * i, opts, methods, &c.lin[i], &c);
        r = cb(i, c.res, n_methods, now_us() - t0, userdata);
        if (r > 0)
            r = 0;
    }
    recs_done(&c);
    return r;
}
