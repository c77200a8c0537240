/* Error bars through the daemon: units in, one answer per sample out (qd_boot.h). */
#include "qd_boot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_bootstrap.h"
#include "qp.h"

struct bsample {
    uint32_t got;         /* units answered */
    void *point;          /* unit 0's results array */
    size_t point_len;
    bool point_ok, point_in;
    bool rows_in;                  /* the point came from a unit that sent rows (it ran) */
    bool nilp[_QT_METHOD_MAX];     /* ... and this method's point estimate failed there */
    double us;
    double *raw[_QT_METHOD_MAX]; /* N rows each (zero: failed), once a unit sent rows */
    uint64_t have[_QT_METHOD_MAX];
    bool boundary[_QT_METHOD_MAX], has_td[_QT_METHOD_MAX];
    double td[_QT_METHOD_MAX];
};

struct qd_boot {
    size_t n, nm, d;
    struct qt_boot_req req;
    uint32_t per, parts;
    struct bsample **smp; /* [n], allocated as units arrive */
};

static size_t max_stride(size_t d)
{
    uint64_t all = 0;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        if (qt_metric_descs[id].type == QT_MTYPE_F64 || qt_metric_descs[id].type == QT_MTYPE_F64V)
            all |= (uint64_t)1 << id;
    return qp_boot_stride(all, d);
}

int qd_boot_plan(uint32_t N, size_t nm, size_t d, unsigned workers, uint32_t *per,
                 uint32_t *parts)
{
    size_t row = nm * max_stride(d) * sizeof(double), cap, spread;

    if (row == 0 || (double)N * (double)row > (double)QD_BOOT_SAMPLE_BYTES)
        return -E2BIG;
    cap = QD_BOOT_UNIT_BYTES / row ? QD_BOOT_UNIT_BYTES / row : 1;
    spread = ((size_t)N + 2u * (size_t)(workers ? workers : 1) - 1) /
             (2u * (size_t)(workers ? workers : 1));
    if (spread < 8)
        spread = 8; /* each unit also recomputes the point estimate: not too many */
    if (cap > QD_BOOT_UNIT_RESAMPLES)
        cap = QD_BOOT_UNIT_RESAMPLES; /* a unit's deadline is one item's: keep units short */
    *per = (uint32_t)(spread < cap ? spread : cap);
    if (*per > N)
        *per = N;
    *parts = (N + *per - 1) / *per;
    return 0;
}

int qd_boot_new(struct qd_boot **ret, size_t n, const struct qt_boot_req *req, size_t nm, size_t d,
                uint32_t per, uint32_t parts)
{
    struct qd_boot *b = calloc(1, sizeof(*b));

    *ret = NULL;
    if (!b || !(b->smp = calloc(n ? n : 1, sizeof(*b->smp)))) {
        free(b);
        return -ENOMEM;
    }
    b->n = n;
    b->nm = nm;
    b->d = d;
    b->req = *req;
    b->per = per;
    b->parts = parts;
    *ret = b;
    return 0;
}

void qd_boot_release(struct qd_boot *b, size_t sample)
{
    struct bsample *bs = sample < b->n ? b->smp[sample] : NULL;

    if (!bs)
        return;
    for (size_t k = 0; k < _QT_METHOD_MAX; k++)
        free(bs->raw[k]);
    free(bs->point);
    free(bs);
    b->smp[sample] = NULL;
}

void qd_boot_free(struct qd_boot *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        qd_boot_release(b, i);
    free(b->smp);
    free(b);
}

void qd_boot_unit_range(const struct qd_boot *b, size_t unit, size_t *sample, uint32_t *k0,
                        uint32_t *cnt)
{
    uint32_t p = (uint32_t)(unit % b->parts);

    *sample = unit / b->parts;
    *k0 = p * b->per;
    *cnt = b->req.resamples - *k0 < b->per ? b->req.resamples - *k0 : b->per;
}

/* Copies one method's rows into the sample's table; false when they do not fit. */
static bool take_rows(struct qd_boot *b, struct bsample *bs, size_t k, const struct qp_boot_rows *r,
                      uint32_t k0, uint32_t cnt)
{
    size_t stride = qp_boot_stride(r->have, b->d);

    if (r->k0 != k0 || r->n != cnt)
        return false;
    if (!bs->raw[k]) {
        bs->raw[k] = calloc((size_t)b->req.resamples * stride, sizeof(double));
        if (!bs->raw[k])
            return false;
        bs->have[k] = r->have;
    } else if (bs->have[k] != r->have) {
        return false;
    }
    memcpy(bs->raw[k] + (size_t)k0 * stride, r->rows_le, r->len);
    return true;
}

int qd_boot_unit(struct qd_boot *b, size_t unit, const void *results, size_t len, bool ok,
                 const msgpack_object *rows, double us, char *why, size_t whylen)
{
    struct qp_boot_rows br[_QT_METHOD_MAX];
    struct qt_diag dg = {0};
    struct bsample *bs;
    size_t sample;
    uint32_t k0, cnt;

    why[0] = '\0';
    qd_boot_unit_range(b, unit, &sample, &k0, &cnt);
    if (sample >= b->n)
        return 0;
    bs = b->smp[sample];
    if (!bs && !(bs = b->smp[sample] = calloc(1, sizeof(*bs))))
        return -ENOMEM;
    bs->us += us;
    if (rows && qp_decode_boot_rows(rows, b->nm, b->d, br, &dg) < 0) {
        snprintf(why, whylen, "unit %zu: unreadable rows: %s", unit, dg.msg);
        rows = NULL;
    }
    /* Every unit computes the same point estimate (one sample alone, deterministic): the
     * record's is the first that ran (sent rows), so that losing unit 0 loses only its
     * resamples; a unit that did not run gives the error maps when none ran. */
    if ((rows && !bs->rows_in) || !bs->point_in) {
        void *pt = malloc(len ? len : 1);

        if (!pt)
            return -ENOMEM;
        memcpy(pt, results, len);
        free(bs->point);
        bs->point = pt;
        bs->point_len = len;
        bs->point_ok = ok;
        bs->point_in = true;
    }
    if (rows && !bs->rows_in) {
        bs->rows_in = true;
        for (size_t k = 0; k < b->nm; k++) { /* and how the point estimate lies */
            bs->nilp[k] = !br[k].ok;
            bs->boundary[k] = br[k].boundary;
        }
    }
    for (size_t k = 0; rows && k0 == 0 && k < b->nm; k++) { /* computed by the first unit */
        bs->has_td[k] = br[k].ok && br[k].has_td_bound;
        bs->td[k] = br[k].td_bound;
    }
    for (size_t k = 0; rows && k < b->nm; k++)
        if (br[k].ok && !take_rows(b, bs, k, &br[k], k0, cnt))
            snprintf(why, whylen, "unit %zu: rows of method %zu do not fit", unit, k);
    return ++bs->got == b->parts ? 1 : 0;
}

int qd_boot_finish(struct qd_boot *b, size_t sample, const void **results, size_t *len, bool *ok,
                   msgpack_sbuffer *unc, double *us)
{
    struct bsample *bs = sample < b->n ? b->smp[sample] : NULL;
    msgpack_packer pk;

    if (!bs || !bs->point_in)
        return -EINVAL;
    *results = bs->point;
    *len = bs->point_len;
    *ok = bs->point_ok;
    *us = bs->us;
    msgpack_packer_init(&pk, unc, msgpack_sbuffer_write);
    (void)msgpack_pack_array(&pk, b->nm);
    for (size_t k = 0; k < b->nm; k++) {
        struct qt_uncertainty u = {0};
        int r;

        if (!bs->rows_in || bs->nilp[k]) {
            /* No estimate to put error bars on: nil (its result map is the error that says
             * why). */
            (void)msgpack_pack_nil(&pk);
            continue;
        }
        if (!bs->raw[k]) {
            qt_boot_fail(&u, &b->req, b->req.seed, QT_ENOCONV,
                         "the resamples' rows were lost (unreadable from the worker)");
        } else {
            r = qt_boot_reduce(bs->raw[k], b->req.resamples, bs->have[k], b->d,
                               b->req.confidence, &u);
            if (r == -ENOMEM)
                return r;
            if (r < 0)
                qt_boot_fail(&u, &b->req, b->req.seed, r,
                             "fewer than two resamples could be estimated");
            u.kind = b->req.kind;
            u.seed = b->req.seed;
            u.shots = b->req.shots;
            if (bs->boundary[k] && !u.err)
                u.warn |= QT_BOOT_WARN_BOUNDARY;
            u.has_td_bound = bs->has_td[k] && !u.err;
            u.td_bound = bs->td[k];
        }
        qp_pack_uncertainty(&pk, &u);
        qt_uncertainty_done(&u);
    }
    return 0;
}
