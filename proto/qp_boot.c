/* Error bars on the wire (SCHEMA.md §4 `submit` bootstrap, §7 uncertainty): the request's
 * `bootstrap` map, the worker's `boot_part` and `boot` rows, and the uncertainty maps of
 * results. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "qp.h"

void qp_pack_boot_req(msgpack_packer *pk, const struct qt_boot_req *b)
{
    qp_pack_key(pk, "bootstrap");
    (void)msgpack_pack_map(pk, 3u + b->has_seed + (b->shots != 0));
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, b->resamples);
    qp_pack_key(pk, "kind");
    qp_pack_str(pk, qt_resample_kind_name(b->kind) ? qt_resample_kind_name(b->kind) : "");
    if (b->has_seed) {
        qp_pack_key(pk, "seed");
        (void)msgpack_pack_uint64(pk, b->seed);
    }
    qp_pack_key(pk, "confidence");
    (void)msgpack_pack_double(pk, b->confidence);
    if (b->shots) {
        qp_pack_key(pk, "shots");
        (void)msgpack_pack_uint64(pk, b->shots);
    }
}

int qp_decode_boot_req(const msgpack_object *o, struct qt_boot_req *b, struct qt_diag *reterr)
{
    char kind[16];
    uint64_t v = 0;
    int r;

    memset(b, 0, sizeof(*b));
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "bootstrap: not a map");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        static const char *const known[] = {"resamples", "kind", "seed", "confidence", "shots"};
        bool ok = false;

        if (k->type != MSGPACK_OBJECT_STR)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "bootstrap: a key is not a string");
        for (size_t q = 0; q < sizeof(known) / sizeof(known[0]); q++)
            ok |= k->via.str.size == strlen(known[q]) &&
                  memcmp(k->via.str.ptr, known[q], k->via.str.size) == 0;
        if (!ok) /* options of error bars are not ignored: a result would silently differ */
            return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap: unknown key \"%.*s\"",
                               (int)(k->via.str.size > 40 ? 40 : k->via.str.size),
                               k->via.str.ptr);
        for (uint32_t j = 0; j < i; j++)
            if (o->via.map.ptr[j].key.via.str.size == k->via.str.size &&
                memcmp(o->via.map.ptr[j].key.via.str.ptr, k->via.str.ptr, k->via.str.size) == 0)
                return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap: a key given twice");
    }
    r = qp_read_u64(qp_get(o, "resamples"), "bootstrap.resamples", UINT32_MAX, &v, reterr);
    if (r == -ENOENT)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap.resamples: missing");
    if (r < 0)
        return r;
    if (v < 2 || v > QT_BOOT_MAX_RESAMPLES)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap.resamples: %llu, not in [2, %u]",
                           (unsigned long long)v, QT_BOOT_MAX_RESAMPLES);
    b->resamples = (uint32_t)v;
    r = qp_read_str(qp_get(o, "kind"), "bootstrap.kind", kind, sizeof(kind), reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0 && qt_resample_kind_from_name(kind, &b->kind) < 0)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "bootstrap.kind: \"%s\" is not data or parametric", kind);
    r = qp_read_u64(qp_get(o, "seed"), "bootstrap.seed", QT_BOOT_MAX_SEED, &b->seed, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    b->has_seed = r == 0;
    b->confidence = QT_BOOT_CONFIDENCE;
    r = qp_read_f64(qp_get(o, "confidence"), "bootstrap.confidence", &b->confidence, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    if (!(b->confidence > 0.0 && b->confidence < 1.0))
        return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap.confidence: not in (0, 1)");
    r = qp_read_u64(qp_get(o, "shots"), "bootstrap.shots", QT_BOOT_MAX_SEED, &b->shots, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0 && b->shots == 0)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0, "bootstrap.shots: must be at least 1");
    return 0;
}

void qp_pack_boot_part(msgpack_packer *pk, const struct qp_boot_part *p)
{
    qp_pack_key(pk, "boot_part");
    (void)msgpack_pack_array(pk, 3);
    (void)msgpack_pack_uint64(pk, p->sample);
    (void)msgpack_pack_uint32(pk, p->k0);
    (void)msgpack_pack_uint32(pk, p->n);
}

int qp_decode_boot_part(const msgpack_object *o, struct qp_boot_part *p, struct qt_diag *reterr)
{
    uint64_t k0 = 0, n = 0;

    memset(p, 0, sizeof(*p));
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
        qp_read_u64(&o->via.array.ptr[0], "boot_part[0]", UINT64_MAX, &p->sample, reterr) < 0 ||
        qp_read_u64(&o->via.array.ptr[1], "boot_part[1]", QT_BOOT_MAX_RESAMPLES, &k0, reterr) <
            0 ||
        qp_read_u64(&o->via.array.ptr[2], "boot_part[2]", QT_BOOT_MAX_RESAMPLES, &n, reterr) < 0 ||
        n == 0 || k0 + n > QT_BOOT_MAX_RESAMPLES)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "boot_part: not [sample, k0, n]");
    p->set = true;
    p->k0 = (uint32_t)k0;
    p->n = (uint32_t)n;
    return 0;
}

void qp_pack_boot_rows(msgpack_packer *pk, const struct qp_boot_rows *rows, size_t n)
{
    qp_pack_key(pk, "boot");
    (void)msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const struct qp_boot_rows *b = &rows[i];

        if (!b->ok) {
            (void)msgpack_pack_nil(pk);
            continue;
        }
        (void)msgpack_pack_map(pk, 5u + b->has_td_bound);
        qp_pack_key(pk, "have");
        (void)msgpack_pack_uint64(pk, b->have);
        qp_pack_key(pk, "k0");
        (void)msgpack_pack_uint32(pk, b->k0);
        qp_pack_key(pk, "n");
        (void)msgpack_pack_uint32(pk, b->n);
        qp_pack_key(pk, "rows");
        (void)msgpack_pack_bin_with_body(pk, b->rows_le, b->len);
        qp_pack_key(pk, "boundary");
        (void)(b->boundary ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
        if (b->has_td_bound) {
            qp_pack_key(pk, "td_bound");
            (void)msgpack_pack_double(pk, b->td_bound);
        }
    }
}

int qp_decode_boot_rows(const msgpack_object *o, size_t n_methods, size_t d,
                        struct qp_boot_rows *rows, struct qt_diag *reterr)
{
    memset(rows, 0, n_methods * sizeof(*rows));
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n_methods)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "boot: not an array of %zu", n_methods);
    for (size_t i = 0; i < n_methods; i++) {
        const msgpack_object *e = &o->via.array.ptr[i], *raw;
        struct qp_boot_rows *b = &rows[i];
        uint64_t k0 = 0, n = 0;
        int r;

        if (e->type == MSGPACK_OBJECT_NIL)
            continue;
        raw = qp_get(e, "rows");
        if (qp_read_u64(qp_get(e, "have"), "boot.have", UINT64_MAX, &b->have, reterr) < 0 ||
            qp_read_u64(qp_get(e, "k0"), "boot.k0", QT_BOOT_MAX_RESAMPLES, &k0, reterr) < 0 ||
            qp_read_u64(qp_get(e, "n"), "boot.n", QT_BOOT_MAX_RESAMPLES, &n, reterr) < 0 ||
            qp_read_bool(qp_get(e, "boundary"), "boot.boundary", &b->boundary, reterr) < 0)
            return QT_EPARSE;
        for (unsigned id = 0; id < 64; id++)
            if (((b->have >> id) & 1u) &&
                (id >= _QT_MT_MAX || (qt_metric_descs[id].type != QT_MTYPE_F64 &&
                                      qt_metric_descs[id].type != QT_MTYPE_F64V)))
                return qt_diag_set(reterr, QT_EPARSE, 0, 0, "boot.have: bit %u is not a numeric "
                                   "metric", id);
        r = qp_read_f64(qp_get(e, "td_bound"), "boot.td_bound", &b->td_bound, reterr);
        if (r < 0 && r != -ENOENT)
            return r;
        b->has_td_bound = r == 0;
        b->k0 = (uint32_t)k0;
        b->n = (uint32_t)n;
        if (!raw || raw->type != MSGPACK_OBJECT_BIN ||
            raw->via.bin.size != (size_t)n * qp_boot_stride(b->have, d) * sizeof(double))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "boot.rows: not %llu rows for d = %zu",
                               (unsigned long long)n, d);
        b->rows_le = raw->via.bin.ptr;
        b->len = raw->via.bin.size;
        b->ok = true;
    }
    return 0;
}

size_t qp_boot_stride(uint64_t have, size_t d)
{
    size_t k = 1 + 2 * d * d;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        if ((have >> id) & 1u)
            k += qt_metric_descs[id].type == QT_MTYPE_F64V ? d : 1;
    return k;
}

/* ---- uncertainty maps ---- */

static void pack_stats(msgpack_packer *pk, const struct qt_boot_stat *st, size_t n)
{
    double *v = malloc(3 * (n ? n : 1) * sizeof(double));

    if (!v) { /* an empty array: the decoder refuses it, so the loss is not silent */
        qp_pack_f64m(pk, NULL, 3, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[3 * i] = st[i].std;
        v[3 * i + 1] = st[i].lo;
        v[3 * i + 2] = st[i].hi;
    }
    qp_pack_f64m(pk, v, 3, n);
    free(v);
}

void qp_pack_uncertainty(msgpack_packer *pk, const struct qt_uncertainty *u)
{
    size_t nm = 0, nw = 0;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        nm += (u->have >> id) & 1u;
    for (unsigned i = 0; i < _QT_BOOT_WARN_COUNT; i++)
        nw += (u->warn >> i) & 1u;
    (void)msgpack_pack_map(pk, 5u + (u->shots != 0) + (nw != 0) +
                                   (u->err ? 1u : 2u + u->has_td_bound));
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, u->resamples);
    qp_pack_key(pk, "kind");
    qp_pack_str(pk, qt_resample_kind_name(u->kind) ? qt_resample_kind_name(u->kind) : "");
    qp_pack_key(pk, "seed");
    (void)msgpack_pack_uint64(pk, u->seed);
    qp_pack_key(pk, "confidence");
    (void)msgpack_pack_double(pk, u->confidence);
    if (u->shots) {
        qp_pack_key(pk, "shots");
        (void)msgpack_pack_uint64(pk, u->shots);
    }
    qp_pack_key(pk, "failed_resamples");
    (void)msgpack_pack_uint32(pk, u->failed);
    if (nw) {
        qp_pack_key(pk, "warnings");
        (void)msgpack_pack_array(pk, nw);
        for (unsigned i = 0; i < _QT_BOOT_WARN_COUNT; i++)
            if ((u->warn >> i) & 1u)
                qp_pack_str(pk, qt_boot_warn_name(i));
    }
    if (u->err) {
        qp_pack_key(pk, "error");
        (void)msgpack_pack_map(pk, 3);
        qp_pack_key(pk, "code");
        (void)msgpack_pack_int32(pk, qt_status_from_err(u->err));
        qp_pack_key(pk, "name");
        qp_pack_str(pk, qt_errname(u->err));
        qp_pack_key(pk, "message");
        qp_pack_str(pk, u->errmsg);
        return;
    }
    qp_pack_key(pk, "metrics");
    (void)msgpack_pack_map(pk, nm);
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        bool vec = qt_metric_descs[id].type == QT_MTYPE_F64V;

        if (!((u->have >> id) & 1u))
            continue;
        qp_pack_key(pk, qt_metric_descs[id].name);
        if (vec)
            pack_stats(pk, id == QT_MT_EIGENVALUES ? u->veig : u->vbell, u->d);
        else
            pack_stats(pk, &u->stats[id], 1);
    }
    qp_pack_key(pk, "rho_std");
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "re");
    qp_pack_f64m(pk, u->rho_std_re, u->d, u->d);
    qp_pack_key(pk, "im");
    qp_pack_f64m(pk, u->rho_std_im, u->d, u->d);
    if (u->has_td_bound) {
        qp_pack_key(pk, "trace_distance_bound");
        (void)msgpack_pack_double(pk, u->td_bound);
    }
}

static int read_stats(const msgpack_object *o, const char *name, size_t n,
                      struct qt_boot_stat *st, struct qt_diag *reterr)
{
    size_t shape[2];
    double *v = NULL;
    int r = qp_read_array(o, name, false, 2, shape, 3 * n, (void **)&v, reterr);

    if (r < 0)
        return QT_EPARSE;
    if (shape[0] != 3 || shape[1] != n) {
        free(v);
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.metrics.%s: not [3, %zu]", name,
                           n);
    }
    for (size_t i = 0; i < n; i++) {
        st[i].std = v[3 * i];
        st[i].lo = v[3 * i + 1];
        st[i].hi = v[3 * i + 2];
    }
    free(v);
    return 0;
}

static int read_square(const msgpack_object *o, const char *field, size_t d, double **ret,
                       struct qt_diag *reterr)
{
    size_t shape[2];
    int r = qp_read_array(o, field, false, 2, shape, d * d, (void **)ret, reterr);

    if (r == -ENOENT)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: missing", field);
    if (r < 0)
        return QT_EPARSE;
    if (shape[0] != d || shape[1] != d)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not %zu x %zu", field, d, d);
    return 0;
}

int qp_decode_uncertainty(const msgpack_object *o, size_t d, struct qt_uncertainty *u,
                          struct qt_diag *reterr)
{
    const msgpack_object *mt, *w, *e, *rs;
    uint64_t v = 0;
    char kind[16];
    int r;

    qt_uncertainty_done(u);
    memset(u, 0, sizeof(*u));
    u->d = d;
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty: not a map");
    if (qp_read_u64(qp_get(o, "resamples"), "uncertainty.resamples", QT_BOOT_MAX_RESAMPLES, &v,
                    reterr) < 0 ||
        qp_read_str(qp_get(o, "kind"), "uncertainty.kind", kind, sizeof(kind), reterr) < 0 ||
        qp_read_u64(qp_get(o, "seed"), "uncertainty.seed", UINT64_MAX, &u->seed, reterr) < 0 ||
        qp_read_f64(qp_get(o, "confidence"), "uncertainty.confidence", &u->confidence, reterr) <
            0)
        return QT_EPARSE;
    u->resamples = (uint32_t)v;
    if (qt_resample_kind_from_name(kind, &u->kind) < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.kind: \"%s\"", kind);
    r = qp_read_u64(qp_get(o, "shots"), "uncertainty.shots", UINT64_MAX, &u->shots, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    if (qp_read_u64(qp_get(o, "failed_resamples"), "uncertainty.failed_resamples", u->resamples,
                    &v, reterr) < 0)
        return QT_EPARSE;
    u->failed = (uint32_t)v;
    w = qp_get(o, "warnings");
    if (w && w->type != MSGPACK_OBJECT_ARRAY)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.warnings: not an array");
    for (uint32_t i = 0; w && i < w->via.array.size; i++) /* unknown names are ignored */
        for (unsigned b = 0; b < _QT_BOOT_WARN_COUNT; b++)
            if (w->via.array.ptr[i].type == MSGPACK_OBJECT_STR &&
                w->via.array.ptr[i].via.str.size == strlen(qt_boot_warn_name(b)) &&
                memcmp(w->via.array.ptr[i].via.str.ptr, qt_boot_warn_name(b),
                       w->via.array.ptr[i].via.str.size) == 0)
                u->warn |= 1u << b;
    e = qp_get(o, "error");
    if (e) {
        char name[32];

        if (qp_read_str(qp_get(e, "name"), "uncertainty.error.name", name, sizeof(name),
                        reterr) < 0 ||
            qp_read_str(qp_get(e, "message"), "uncertainty.error.message", u->errmsg,
                        sizeof(u->errmsg), reterr) < 0)
            return QT_EPARSE;
        e = qp_get(e, "code");
        if (!e || e->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.error.code: not negative");
        u->err = qp_err_from_wire(e->via.i64, name);
        return 0;
    }
    mt = qp_get(o, "metrics");
    if (!mt || mt->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.metrics: not a map");
    for (uint32_t i = 0; i < mt->via.map.size; i++) {
        const msgpack_object *k = &mt->via.map.ptr[i].key;
        char name[48];
        int id;

        if (qp_read_str(k, "uncertainty.metrics key", name, sizeof(name), reterr) < 0)
            return QT_EPARSE;
        id = qt_metric_from_name(name);
        if (id < 0 || (qt_metric_descs[id].type != QT_MTYPE_F64 &&
                       qt_metric_descs[id].type != QT_MTYPE_F64V))
            continue; /* a newer server's metric */
        if ((u->have >> id) & 1u)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "uncertainty.metrics.%s: twice", name);
        if (qt_metric_descs[id].type == QT_MTYPE_F64V) {
            struct qt_boot_stat **vs = id == QT_MT_EIGENVALUES ? &u->veig : &u->vbell;

            *vs = calloc(d ? d : 1, sizeof(**vs));
            if (!*vs)
                return -ENOMEM;
            r = read_stats(&mt->via.map.ptr[i].val, name, d, *vs, reterr);
        } else {
            r = read_stats(&mt->via.map.ptr[i].val, name, 1, &u->stats[id], reterr);
        }
        if (r < 0)
            return r;
        u->have |= (uint64_t)1 << id;
    }
    rs = qp_get(o, "rho_std");
    if (read_square(qp_get(rs, "re"), "uncertainty.rho_std.re", d, &u->rho_std_re, reterr) < 0 ||
        read_square(qp_get(rs, "im"), "uncertainty.rho_std.im", d, &u->rho_std_im, reterr) < 0)
        return QT_EPARSE;
    r = qp_read_f64(qp_get(o, "trace_distance_bound"), "uncertainty.trace_distance_bound",
                    &u->td_bound, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    u->has_td_bound = r == 0;
    return 0;
}
