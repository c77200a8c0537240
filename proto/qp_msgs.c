/* Typed messages: value readers with bounds, bulk arrays, and the encoders and decoders of each
 * method's params and results (SCHEMA.md). */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "num/qt_design_kind.h"
#include "num/qt_optdesc.h"
#include "qp.h"

/* ---- reading ---- */

const msgpack_object *qp_get(const msgpack_object *map, const char *key)
{
    size_t kl = strlen(key);

    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;

        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int qp_read_u64(const msgpack_object *o, const char *field, uint64_t max, uint64_t *ret,
                struct qt_diag *reterr)
{
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not an integer in [0, %llu]", field,
                           (unsigned long long)max);
    *ret = o->via.u64;
    return 0;
}

int qp_read_f64(const msgpack_object *o, const char *field, double *ret, struct qt_diag *reterr)
{
    if (!o)
        return -ENOENT;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *ret = o->via.f64;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *ret = (double)o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *ret = (double)o->via.i64;
        break;
    default:
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not a number", field);
    }
    return 0;
}

int qp_read_bool(const msgpack_object *o, const char *field, bool *ret, struct qt_diag *reterr)
{
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not a boolean", field);
    *ret = o->via.boolean;
    return 0;
}

int qp_read_str(const msgpack_object *o, const char *field, char *buf, size_t len,
                struct qt_diag *reterr)
{
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= len ||
        (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not a string of at most %zu bytes", field,
                           len - 1);
    if (o->via.str.size) /* empty strings have a NULL pointer */
        memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return 0;
}

/* Checks a bulk array and returns its data (bin) object. */
static int read_array_data(const msgpack_object *o, const char *field, bool complex_, size_t rank,
                           size_t *shape, size_t max_elems, const msgpack_object **ret,
                           struct qt_diag *reterr)
{
    const char *dtype = complex_ ? "c128le" : "f64le";
    const msgpack_object *dt = qp_get(o, "dtype"), *sh = qp_get(o, "shape"),
                         *data = qp_get(o, "data");
    size_t elems = 1, esz = complex_ ? 16 : 8;

    if (!o)
        return -ENOENT;
    if (!dt || dt->type != MSGPACK_OBJECT_STR || dt->via.str.size != strlen(dtype) ||
        memcmp(dt->via.str.ptr, dtype, dt->via.str.size) != 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: dtype must be \"%s\"", field, dtype);
    if (!sh || sh->type != MSGPACK_OBJECT_ARRAY || sh->via.array.size != rank)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: shape must have %zu dimensions", field,
                           rank);
    for (size_t i = 0; i < rank; i++) {
        const msgpack_object *x = &sh->via.array.ptr[i];

        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER || x->via.u64 == 0 ||
            x->via.u64 > max_elems || __builtin_mul_overflow(elems, x->via.u64, &elems) ||
            elems > max_elems || elems > SIZE_MAX / 16)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "%s: shape entries must be positive with a product of at most %zu",
                               field, max_elems);
        shape[i] = (size_t)x->via.u64;
    }
    if (!data || data->type != MSGPACK_OBJECT_BIN || data->via.bin.size != elems * esz)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: data must be bin of %zu bytes", field,
                           elems * esz);
    *ret = data;
    return 0;
}

int qp_read_array(const msgpack_object *o, const char *field, bool complex_, size_t rank,
                  size_t *shape, size_t max_elems, void **ret, struct qt_diag *reterr)
{
    const msgpack_object *data;
    void *out;
    int r = read_array_data(o, field, complex_, rank, shape, max_elems, &data, reterr);

    if (r < 0)
        return r;
    out = malloc(data->via.bin.size ? data->via.bin.size : 1);
    if (!out)
        return -ENOMEM;
    memcpy(out, data->via.bin.ptr, data->via.bin.size); /* little-endian host (checked below) */
    *ret = out;
    return 0;
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#    error "bulk arrays are copied as little-endian doubles"
#endif

/* ---- bulk arrays ---- */

static void pack_array_head(msgpack_packer *pk, const char *dtype, size_t rank, const size_t *shape,
                            size_t bytes)
{
    (void)msgpack_pack_map(pk, 3);
    qp_pack_key(pk, "dtype");
    qp_pack_str(pk, dtype);
    qp_pack_key(pk, "shape");
    (void)msgpack_pack_array(pk, rank);
    for (size_t i = 0; i < rank; i++)
        (void)msgpack_pack_uint64(pk, shape[i]);
    qp_pack_key(pk, "data");
    (void)msgpack_pack_bin(pk, bytes);
}

void qp_pack_f64v(msgpack_packer *pk, const double *v, size_t n)
{
    pack_array_head(pk, "f64le", 1, &n, n * 8);
    (void)msgpack_pack_bin_body(pk, v, n * 8);
}

void qp_pack_f64m(msgpack_packer *pk, const void *v_le, size_t rows, size_t cols)
{
    size_t shape[2] = {rows, cols};

    pack_array_head(pk, "f64le", 2, shape, rows * cols * 8);
    (void)msgpack_pack_bin_body(pk, v_le, rows * cols * 8);
}

void qp_pack_c128m(msgpack_packer *pk, const double complex *v, size_t rows, size_t cols)
{
    size_t shape[2] = {rows, cols};

    pack_array_head(pk, "c128le", 2, shape, rows * cols * 16);
    (void)msgpack_pack_bin_body(pk, v, rows * cols * 16);
}

/* ---- hello ---- */

int qp_pack_hello(struct qp_writer *w, uint32_t id, const char *client, uint32_t max_frame)
{
    qp_begin_request(w, id, QP_M_HELLO);
    (void)msgpack_pack_map(&w->pk, 2);
    qp_pack_key(&w->pk, "proto");
    (void)msgpack_pack_array(&w->pk, 2);
    (void)msgpack_pack_uint32(&w->pk, QP_VERSION_MAJOR);
    (void)msgpack_pack_uint32(&w->pk, QP_VERSION_MINOR);
    qp_pack_key(&w->pk, "client");
    qp_pack_str(&w->pk, client);
    return qp_frame_end(w, max_frame);
}

static int read_version(const msgpack_object *o, uint32_t *major, uint32_t *minor,
                        struct qt_diag *reterr)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[0].via.u64 > UINT32_MAX || o->via.array.ptr[1].via.u64 > UINT32_MAX)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "proto: must be [major, minor]");
    *major = (uint32_t)o->via.array.ptr[0].via.u64;
    *minor = (uint32_t)o->via.array.ptr[1].via.u64;
    return 0;
}

int qp_decode_hello(const msgpack_object *params, struct qp_hello *h, struct qt_diag *reterr)
{
    int r;

    memset(h, 0, sizeof(*h));
    r = read_version(qp_get(params, "proto"), &h->major, &h->minor, reterr);
    if (r < 0)
        return r;
    r = qp_read_str(qp_get(params, "client"), "client", h->client, sizeof(h->client), reterr);
    return r == -ENOENT ? 0 : r;
}

int qp_pack_hello_result(struct qp_writer *w, uint32_t id, const struct qp_server_info *si,
                         uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;
    size_t nf = 0;

    while (si->features && si->features[nf])
        nf++;
    qp_begin_response(w, id);
    (void)msgpack_pack_map(pk, 5);
    qp_pack_key(pk, "proto");
    (void)msgpack_pack_array(pk, 2);
    (void)msgpack_pack_uint32(pk, si->major);
    (void)msgpack_pack_uint32(pk, si->minor);
    qp_pack_key(pk, "server");
    qp_pack_str(pk, si->server);
    qp_pack_key(pk, "limits");
    (void)msgpack_pack_map(pk, 5);
    qp_pack_key(pk, "max_frame");
    (void)msgpack_pack_uint32(pk, si->max_frame);
    qp_pack_key(pk, "max_dim");
    (void)msgpack_pack_uint32(pk, si->max_dim);
    qp_pack_key(pk, "max_batch");
    (void)msgpack_pack_uint32(pk, si->max_batch);
    qp_pack_key(pk, "max_inflight");
    (void)msgpack_pack_uint32(pk, si->max_inflight);
    qp_pack_key(pk, "max_item_ms");
    (void)msgpack_pack_uint32(pk, si->max_item_ms);
    qp_pack_key(pk, "features");
    (void)msgpack_pack_array(pk, nf);
    for (size_t i = 0; i < nf; i++)
        qp_pack_str(pk, si->features[i]);
    qp_pack_key(pk, "workers");
    (void)msgpack_pack_uint32(pk, si->workers);
    return qp_frame_end(w, max_frame);
}

int qp_decode_hello_result(const msgpack_object *result, struct qp_server_info *si,
                           struct qt_diag *reterr)
{
    const msgpack_object *lim = qp_get(result, "limits");
    uint64_t v = 0;
    int r;

    struct {
        const char *key;
        uint32_t *dst;
    } f[] = {{"max_frame", &si->max_frame},
             {"max_dim", &si->max_dim},
             {"max_batch", &si->max_batch},
             {"max_inflight", &si->max_inflight},
             {"max_item_ms", &si->max_item_ms}};

    memset(si, 0, sizeof(*si));
    r = read_version(qp_get(result, "proto"), &si->major, &si->minor, reterr);
    if (r < 0)
        return r;
    r = qp_read_str(qp_get(result, "server"), "server", si->server, sizeof(si->server), reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "server: missing") : r;
    for (size_t i = 0; i < QT_ARRAY_SIZE(f); i++) {
        r = qp_read_u64(qp_get(lim, f[i].key), f[i].key, UINT32_MAX, &v, reterr);
        if (r < 0)
            return r == -ENOENT
                       ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "limits.%s: missing", f[i].key)
                       : r;
        *f[i].dst = (uint32_t)v;
    }
    r = qp_read_u64(qp_get(result, "workers"), "workers", UINT32_MAX, &v, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    si->workers = r == 0 ? (uint32_t)v : 0;
    return 0;
}

/* ---- reconstruct / submit ---- */

void qp_job_init(struct qp_job *j)
{
    memset(j, 0, sizeof(*j));
    qt_opts_init(&j->opts);
}

void qp_job_done(struct qp_job *j)
{
    free(j->values);
    free(j->target);
    j->values = NULL;
    j->values_le = NULL;
    j->target = NULL;
}

static size_t count_methods(const bool *m)
{
    size_t n = 0;

    for (int i = 0; i < _QT_METHOD_MAX; i++)
        n += m[i];
    return n;
}

size_t qp_pack_job_fields(msgpack_packer *pk, const struct qp_job *j)
{
    struct qt_opts def;
    size_t nopt = 0, nf = 3u + (j->design_id[0] != 0) + (j->d != 0) + (j->target != NULL) +
                          (j->timeout_ms != 0) + (j->boot.resamples != 0);

    qt_opts_init(&def);
    for (size_t i = 0; i < qt_optdesc_count; i++)
        nopt += qt_optdesc_get(&qt_optdescs[i], &j->opts) != qt_optdesc_get(&qt_optdescs[i], &def);
    nopt += j->opts.physical != def.physical;
    nopt += j->opts.bell != def.bell;
    nopt += j->opts.spectral != def.spectral;
    qp_pack_key(pk, "design");
    qp_pack_str(pk, j->design);
    if (j->design_id[0]) {
        qp_pack_key(pk, "design_id");
        qp_pack_str(pk, j->design_id);
    }
    if (j->d) {
        qp_pack_key(pk, "d");
        (void)msgpack_pack_uint64(pk, j->d);
    }
    qp_pack_key(pk, "methods");
    (void)msgpack_pack_array(pk, count_methods(j->methods));
    for (int i = 0; i < _QT_METHOD_MAX; i++)
        if (j->methods[i])
            qp_pack_str(pk, qt_method_name((enum qt_method)i));
    qp_pack_key(pk, "options");
    (void)msgpack_pack_map(pk, nopt);
    for (size_t i = 0; i < qt_optdesc_count; i++) {
        const struct qt_optdesc *e = &qt_optdescs[i];
        double v = qt_optdesc_get(e, &j->opts);

        if (v == qt_optdesc_get(e, &def))
            continue;
        qp_pack_key(pk, e->name);
        if (e->type == QT_OPT_FLAG)
            (void)(v != 0 ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
        else if (e->type == QT_OPT_UINT)
            (void)msgpack_pack_uint64(pk, (uint64_t)v);
        else
            (void)msgpack_pack_double(pk, v);
    }
    if (j->opts.physical != def.physical) {
        qp_pack_key(pk, "physical");
        qp_pack_str(pk, j->opts.physical == QT_PHYS_SMOLIN ? "smolin" : "clip");
    }
    if (j->opts.bell != def.bell) {
        qp_pack_key(pk, "bell");
        (void)(j->opts.bell ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    }
    if (j->opts.spectral != def.spectral) {
        qp_pack_key(pk, "spectral");
        (void)(j->opts.spectral ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    }
    if (j->target) {
        qp_pack_key(pk, "target");
        qp_pack_c128m(pk, j->target, j->d, j->d);
    }
    if (j->timeout_ms) {
        qp_pack_key(pk, "timeout_ms");
        (void)msgpack_pack_uint32(pk, j->timeout_ms);
    }
    if (j->boot.resamples)
        qp_pack_boot_req(pk, &j->boot);
    return nf;
}

int qp_pack_job(struct qp_writer *w, uint32_t id, enum qp_method m, const struct qp_job *j,
                uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;
    msgpack_sbuffer fields;
    msgpack_packer fpk;
    size_t nf;
    int r;

    if ((m != QP_M_RECONSTRUCT && m != QP_M_SUBMIT) || (m == QP_M_RECONSTRUCT && j->n != 1) ||
        (j->target && j->d == 0))
        return -EINVAL;
    msgpack_sbuffer_init(&fields);
    msgpack_packer_init(&fpk, &fields, msgpack_sbuffer_write);
    nf = qp_pack_job_fields(&fpk, j);
    qp_begin_request(w, id, m);
    /* a reconstruct with error bars names its sample (the resample streams) with first_index */
    bool rec_index = m == QP_M_RECONSTRUCT && j->boot.resamples && j->first_index;

    (void)msgpack_pack_map(pk, 1u + nf + 2u * (m == QP_M_SUBMIT) + rec_index);
    qp_pack_key(pk, "values");
    qp_pack_f64m(pk, j->values ? (const void *)j->values : j->values_le, j->m, j->n);
    r = msgpack_sbuffer_write(&w->sb, fields.data, fields.size);
    msgpack_sbuffer_destroy(&fields);
    if (r < 0) {
        qp_writer_reset(w);
        return -ENOMEM;
    }
    if (rec_index) {
        qp_pack_key(pk, "first_index");
        (void)msgpack_pack_uint64(pk, j->first_index);
    }
    if (m == QP_M_SUBMIT) {
        qp_pack_key(pk, "progress_ms");
        (void)msgpack_pack_uint32(pk, j->progress_ms);
        qp_pack_key(pk, "first_index");
        (void)msgpack_pack_uint64(pk, j->first_index);
    }
    return qp_frame_end(w, max_frame);
}

static int decode_options(const msgpack_object *o, struct qt_opts *opts, struct qt_diag *reterr)
{
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "options: not a map");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        const struct qt_optdesc *e;
        char name[48];
        double x = 0.0;
        bool b = false;
        int r;

        r = qp_read_str(k, "options key", name, sizeof(name), reterr);
        if (r < 0)
            return r;
        for (uint32_t j = 0; j < i; j++) /* maps are small: options has 19 keys at most */
            if (o->via.map.ptr[j].key.via.str.size == k->via.str.size &&
                memcmp(o->via.map.ptr[j].key.via.str.ptr, name, k->via.str.size) == 0)
                return qt_diag_set(reterr, QT_EOPTION, 0, 0, "options: \"%s\" given twice", name);
        if (strcmp(name, "physical") == 0) {
            char phys[16];

            r = qp_read_str(v, "options.physical", phys, sizeof(phys), reterr);
            if (r < 0)
                return r;
            if (strcmp(phys, "clip") == 0)
                opts->physical = QT_PHYS_CLIP;
            else if (strcmp(phys, "smolin") == 0)
                opts->physical = QT_PHYS_SMOLIN;
            else
                return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                                   "options.physical: \"%s\" is not clip or smolin", phys);
            continue;
        }
        if (strcmp(name, "bell") == 0) {
            r = qp_read_bool(v, "options.bell", &opts->bell, reterr);
            if (r < 0)
                return r;
            continue;
        }
        if (strcmp(name, "spectral") == 0) {
            r = qp_read_bool(v, "options.spectral", &opts->spectral, reterr);
            if (r < 0)
                return r;
            continue;
        }
        e = qt_optdesc_find(name, strlen(name));
        if (!e)
            return qt_diag_set(reterr, QT_EOPTION, 0, 0, "options: unknown option \"%s\"", name);
        if (e->type == QT_OPT_FLAG) {
            r = qp_read_bool(v, name, &b, reterr);
            x = b;
        } else {
            r = qp_read_f64(v, name, &x, reterr);
        }
        if (r < 0)
            return r;
        if (qt_optdesc_set(e, x, opts) < 0)
            return qt_diag_set(reterr, QT_EOPTION, 0, 0, "options.%s: %g is out of range", name, x);
    }
    return 0;
}

static int decode_job(const msgpack_object *params, enum qp_method m, size_t max_dim,
                      size_t max_batch, bool ref, struct qp_job *j, struct qt_diag *reterr)
{
    const msgpack_object *meth = qp_get(params, "methods"), *data;
    size_t shape[2], max_elems = QT_DESIGN_MAX_OUTCOMES * (m == QP_M_SUBMIT ? max_batch : 1);
    uint64_t v = 0;
    int r;

    qp_job_init(j);
    if (!params)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "params missing");
    if (ref) {
        r = read_array_data(qp_get(params, "values"), "values", false, 2, shape, max_elems, &data,
                            reterr);
        if (r == 0)
            j->values_le = data->via.bin.ptr;
    } else {
        r = qp_read_array(qp_get(params, "values"), "values", false, 2, shape, max_elems,
                          (void **)&j->values, reterr);
    }
    if (r == -ENOENT)
        r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "values: missing");
    if (r < 0)
        goto fail;
    j->m = shape[0];
    j->n = shape[1];
    if (j->m > QT_DESIGN_MAX_OUTCOMES) {
        r = qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "values: %zu rows, at most %u", j->m,
                        QT_DESIGN_MAX_OUTCOMES);
        goto fail;
    }
    if ((m == QP_M_RECONSTRUCT && j->n != 1) || j->n > max_batch) {
        r = qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "values: %zu columns, at most %zu", j->n,
                        m == QP_M_RECONSTRUCT ? (size_t)1 : max_batch);
        goto fail;
    }
    r = qp_read_str(qp_get(params, "design"), "design", j->design, sizeof(j->design), reterr);
    if (r == -ENOENT)
        r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "design: missing");
    if (r < 0)
        goto fail;
    r = qp_read_str(qp_get(params, "design_id"), "design_id", j->design_id, sizeof(j->design_id),
                    reterr);
    if (r < 0 && r != -ENOENT)
        goto fail;
    r = qp_read_u64(qp_get(params, "d"), "d", max_dim, &v, reterr);
    if (r < 0 && r != -ENOENT)
        goto fail;
    j->d = r == 0 ? (size_t)v : 0;
    if (!meth || meth->type != MSGPACK_OBJECT_ARRAY || meth->via.array.size == 0 ||
        meth->via.array.size > _QT_METHOD_MAX) {
        r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "methods: a non-empty array of method names");
        goto fail;
    }
    for (uint32_t i = 0; i < meth->via.array.size; i++) {
        char name[16];
        int k;

        r = qp_read_str(&meth->via.array.ptr[i], "methods[]", name, sizeof(name), reterr);
        if (r < 0)
            goto fail;
        k = qt_method_from_name(name);
        if (k < 0) {
            r = qt_diag_set(reterr, QT_EMETHOD, 0, 0, "methods: unknown method \"%s\"", name);
            goto fail;
        }
        j->methods[k] = true;
    }
    r = decode_options(qp_get(params, "options"), &j->opts, reterr);
    if (r < 0)
        goto fail;
    r = qp_read_array(qp_get(params, "target"), "target", true, 2, shape, max_dim * max_dim,
                      (void **)&j->target, reterr);
    if (r == 0 && (shape[0] != shape[1] || (j->d && shape[0] != j->d))) {
        r = qt_diag_set(reterr, QT_ESHAPE, 0, 0, "target: must be d x d");
        goto fail;
    }
    if (r < 0 && r != -ENOENT)
        goto fail;
    j->target_d = j->target ? shape[0] : 0;
    j->opts.target = j->target;
    r = qp_read_u64(qp_get(params, "timeout_ms"), "timeout_ms", UINT32_MAX, &v, reterr);
    if (r < 0 && r != -ENOENT)
        goto fail;
    j->timeout_ms = r == 0 ? (uint32_t)v : 0;
    r = qp_read_u64(qp_get(params, "progress_ms"), "progress_ms", UINT32_MAX, &v, reterr);
    if (r < 0 && r != -ENOENT)
        goto fail;
    j->progress_ms = r == 0 ? (uint32_t)v : 0;
    r = qp_read_u64(qp_get(params, "first_index"), "first_index", SIZE_MAX / 2, &v, reterr);
    if (r < 0 && r != -ENOENT)
        goto fail;
    j->first_index = r == 0 ? (size_t)v : 0;
    r = qp_decode_boot_req(qp_get(params, "bootstrap"), &j->boot, reterr);
    if (r < 0)
        goto fail;
    r = qp_decode_boot_part(qp_get(params, "boot_part"), &j->part, reterr);
    if (r < 0)
        goto fail;
    return 0;
fail:
    qp_job_done(j);
    return r;
}

int qp_decode_job(const msgpack_object *params, enum qp_method m, size_t max_dim, size_t max_batch,
                  struct qp_job *j, struct qt_diag *reterr)
{
    return decode_job(params, m, max_dim, max_batch, false, j, reterr);
}

int qp_decode_job_ref(const msgpack_object *params, enum qp_method m, size_t max_dim,
                      size_t max_batch, struct qp_job *j, struct qt_diag *reterr)
{
    return decode_job(params, m, max_dim, max_batch, true, j, reterr);
}

/* ---- results ---- */

/* The vectors of a result's "spectral" map, in the order of qt_result.spectral. */
static const char *const qp_spectral_keys[3] = {"amplitudes", "phases_pi", "eigenvalues"};

static int decode_spectral(const msgpack_object *o, struct qt_result *res, struct qt_diag *reterr)
{
    size_t d = res->d;
    int r;

    if (o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "spectral: not a map");
    r = qp_read_f64(qp_get(o, "dominant_eigenvalue"), "spectral.dominant_eigenvalue",
                    &res->spectral_dominant, reterr);
    if (r < 0)
        return r == -ENOENT
                   ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "spectral.dominant_eigenvalue: missing")
                   : r;
    for (size_t k = 0; k < 3; k++) {
        double *vec = NULL;
        size_t n = 0;

        r = qp_read_array(qp_get(o, qp_spectral_keys[k]), qp_spectral_keys[k], false, 1, &n, d,
                          (void **)&vec, reterr);
        if (r == 0 && n != d)
            r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "spectral.%s: %zu values, dim is %zu",
                            qp_spectral_keys[k], n, d);
        if (r == 0)
            memcpy(res->spectral + k * d, vec, d * sizeof(double));
        free(vec);
        if (r < 0)
            return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "spectral.%s: missing",
                                              qp_spectral_keys[k])
                                : r;
    }
    res->has_spectral = true;
    return 0;
}

void qp_pack_result_map(msgpack_packer *pk, const struct qt_result *res)
{
    const struct qt_metrics *mt = &res->mt;
    size_t nm = 0, nw = 0;

    if (res->err) {
        (void)msgpack_pack_map(pk, 4);
        qp_pack_key(pk, "method");
        qp_pack_str(pk, qt_method_name(res->method));
        qp_pack_key(pk, "dim");
        (void)msgpack_pack_uint64(pk, res->d);
        qp_pack_key(pk, "status");
        qp_pack_str(pk, "error");
        qp_pack_key(pk, "error");
        (void)msgpack_pack_map(pk, 3);
        qp_pack_key(pk, "code");
        (void)msgpack_pack_int32(pk, qt_status_from_err(res->err));
        qp_pack_key(pk, "name");
        qp_pack_str(pk, qt_errname(res->err));
        qp_pack_key(pk, "message");
        qp_pack_str(pk, res->errmsg);
        return;
    }
    for (int i = 0; i < _QT_MT_MAX; i++)
        nm += qt_metrics_has(mt, (enum qt_metric_id)i);
    for (int i = 0; i < _QT_WARN_COUNT; i++)
        nw += (res->warnings >> i) & 1u;
    (void)msgpack_pack_map(pk, 5u + (nw > 0 ? 1u : 0u) + (res->has_spectral ? 1u : 0u));
    qp_pack_key(pk, "method");
    qp_pack_str(pk, qt_method_name(res->method));
    qp_pack_key(pk, "dim");
    (void)msgpack_pack_uint64(pk, res->d);
    qp_pack_key(pk, "status");
    qp_pack_str(pk, "ok");
    qp_pack_key(pk, "rho");
    qp_pack_c128m(pk, res->rho, res->d, res->d);
    qp_pack_key(pk, "metrics");
    (void)msgpack_pack_map(pk, nm);
    for (int i = 0; i < _QT_MT_MAX; i++) {
        const struct qt_metric_desc *md = &qt_metric_descs[i];
        const char *p = (const char *)mt + md->offset;

        if (!qt_metrics_has(mt, (enum qt_metric_id)i))
            continue;
        qp_pack_key(pk, md->name);
        switch (md->type) {
        case QT_MTYPE_F64:
            (void)msgpack_pack_double(pk, *(const double *)p);
            break;
        case QT_MTYPE_I64:
            (void)msgpack_pack_int64(pk, *(const int64_t *)p);
            break;
        case QT_MTYPE_BOOL:
            (void)(*(const bool *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
            break;
        case QT_MTYPE_STR:
            qp_pack_str(pk, *(const char *const *)p ? *(const char *const *)p : "");
            break;
        case QT_MTYPE_F64V:
            qp_pack_f64v(pk, *(const double *const *)p,
                         *(const size_t *)((const char *)mt + md->count_offset));
            break;
        }
    }
    if (nw) {
        qp_pack_key(pk, "warnings");
        (void)msgpack_pack_array(pk, nw);
        for (int i = 0; i < _QT_WARN_COUNT; i++)
            if ((res->warnings >> i) & 1u)
                qp_pack_str(pk, qt_warning_name((unsigned)i));
    }
    if (res->has_spectral) {
        qp_pack_key(pk, "spectral");
        (void)msgpack_pack_map(pk, 4);
        qp_pack_key(pk, "dominant_eigenvalue");
        (void)msgpack_pack_double(pk, res->spectral_dominant);
        for (int k = 0; k < 3; k++) {
            qp_pack_key(pk, qp_spectral_keys[k]);
            qp_pack_f64v(pk, res->spectral + (size_t)k * res->d, res->d);
        }
    }
}

void qp_pack_results(msgpack_packer *pk, const struct qt_result *const *res, size_t n_res)
{
    (void)msgpack_pack_array(pk, n_res);
    for (size_t i = 0; i < n_res; i++)
        qp_pack_result_map(pk, res[i]);
}

/* The typed forms encode the results array once and reuse the relay writers (qp_relay.c), so
 * the two framings cannot drift apart. */
int qp_pack_result_notify(struct qp_writer *w, uint32_t request, size_t index,
                          const struct qt_result *const *res, size_t n_res, uint32_t max_frame)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_results(&pk, res, n_res);
    r = qp_pack_result_notify_raw(w, request, index, sb.data, sb.size, NULL, 0, -1.0, max_frame);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int qp_pack_reconstruct_result(struct qp_writer *w, uint32_t id, const struct qt_result *const *res,
                               size_t n_res, double queue_ms, double compute_ms, int32_t worker,
                               uint32_t max_frame)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_results(&pk, res, n_res);
    r = qp_pack_reconstruct_result_raw(w, id, sb.data, sb.size, NULL, 0, queue_ms, compute_ms,
                                       worker, max_frame);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* Reads a public status code and error name back into an internal error, so that the record
 * writer prints the same code and name as for a local result: the internal error whose name
 * and public code both match, else one with the same public code. */
static int err_from_status(int64_t code);

int qp_err_from_wire(int64_t code, const char *name)
{
    static const int errnos[] = {-ENOMEM, -EINVAL, -ETIMEDOUT, -ECANCELED, -EIO,    -ENOENT, -EBUSY,
                                 -ENOSPC, -EPERM,  -EACCES,    -ESHUTDOWN, -ERANGE, -EDOM};

    for (int e = QT_ENOTCOUNTS; e <= QT_EPROTOVERS; e++)
        if (qt_status_from_err(e) == code && strcmp(qt_errname(e), name) == 0)
            return e;
    for (size_t i = 0; i < QT_ARRAY_SIZE(errnos); i++)
        if (qt_status_from_err(errnos[i]) == code && strcmp(qt_errname(errnos[i]), name) == 0)
            return errnos[i];
    return err_from_status(code);
}

static int err_from_status(int64_t code)
{
    switch (code) {
    case QT_ST_INVALID_SAMPLE:
        return QT_ENONFINITE;
    case QT_ST_INVALID_PARAMS:
        return QT_EOPTION;
    case QT_ST_TIMEOUT:
        return -ETIMEDOUT;
    case QT_ST_CANCELLED:
        return -ECANCELED;
    case QT_ST_WORKER_CRASHED:
        return QT_ECRASHED;
    case QT_ST_BUSY:
        return -EBUSY;
    case QT_ST_SHUTTING_DOWN:
        return -ESHUTDOWN;
    case QT_ST_TOO_LARGE:
        return QT_ETOOBIG;
    case QT_ST_NOT_FOUND:
        return -ENOENT;
    case QT_ST_PERMISSION_DENIED:
        return -EACCES;
    case QT_ST_UNSUPPORTED_PROTOCOL:
        return QT_EPROTOVERS;
    default:
        return -EIO;
    }
}

int qp_decode_result_map(const msgpack_object *o, size_t max_dim, struct qt_result *res,
                         struct qt_diag *reterr)
{
    char name[32], status[8];
    const msgpack_object *mtm, *warn, *spec;
    uint64_t d = 0;
    size_t shape[2];
    double complex *rho = NULL;
    int meth, r;

    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "result: not a map");
    r = qp_read_str(qp_get(o, "method"), "method", name, sizeof(name), reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "method: missing") : r;
    meth = qt_method_from_name(name);
    if (meth < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "method: unknown \"%s\"", name);
    r = qp_read_u64(qp_get(o, "dim"), "dim", max_dim, &d, reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "dim: missing") : r;
    r = qp_read_str(qp_get(o, "status"), "status", status, sizeof(status), reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "status: missing") : r;
    if (d > res->cap || res->cap == 0) {
        qt_result_done(res);
        r = qt_result_init(res, d ? d : 1);
        if (r < 0)
            return r;
    }
    qt_result_reset(res, (enum qt_method)meth);
    res->d = d;
    if (strcmp(status, "error") == 0) {
        const msgpack_object *e = qp_get(o, "error"), *c = qp_get(e, "code");
        int64_t code = c && c->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? c->via.i64 : 0;
        char ename[32] = "";

        if (qp_read_str(qp_get(e, "name"), "error.name", ename, sizeof(ename), reterr) < 0)
            ename[0] = '\0';
        res->err = qp_err_from_wire(code, ename);
        r = qp_read_str(qp_get(e, "message"), "error.message", res->errmsg, sizeof(res->errmsg),
                        reterr);
        if (r < 0 || code == 0)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "error: needs code and message");
        return 0;
    }
    if (strcmp(status, "ok") != 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "status: \"%s\" is not ok or error", status);
    r = qp_read_array(qp_get(o, "rho"), "rho", true, 2, shape, max_dim * max_dim, (void **)&rho,
                      reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "rho: missing") : r;
    if (shape[0] != d || shape[1] != d) {
        free(rho);
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "rho: shape is not dim x dim");
    }
    memcpy(res->rho, rho, d * d * sizeof(*rho));
    free(rho);
    mtm = qp_get(o, "metrics");
    if (mtm && mtm->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "metrics: not a map");
    for (int i = 0; mtm && i < _QT_MT_MAX; i++) {
        const struct qt_metric_desc *md = &qt_metric_descs[i];
        const msgpack_object *v = qp_get(mtm, md->name);
        char *p = (char *)&res->mt + md->offset;
        double x = 0.0;
        bool b = false;

        if (!v)
            continue;
        switch (md->type) {
        case QT_MTYPE_F64:
            r = qp_read_f64(v, md->name, &x, reterr);
            if (r == 0)
                *(double *)p = x;
            break;
        case QT_MTYPE_I64:
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
                *(int64_t *)p = (int64_t)v->via.u64;
            else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                *(int64_t *)p = v->via.i64;
            else
                r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not an integer", md->name);
            break;
        case QT_MTYPE_BOOL:
            r = qp_read_bool(v, md->name, &b, reterr);
            if (r == 0)
                *(bool *)p = b;
            break;
        case QT_MTYPE_STR:
            /* The one text metric (message) is stored in errmsg, unused by an ok result. */
            r = qp_read_str(v, md->name, res->errmsg, sizeof(res->errmsg), reterr);
            if (r == 0)
                *(const char **)p = res->errmsg;
            break;
        case QT_MTYPE_F64V: {
            size_t n;
            double *vec = NULL;
            double *dst = i == QT_MT_EIGENVALUES ? res->eigenvalues : res->bell;

            r = qp_read_array(v, md->name, false, 1, &n, d, (void **)&vec, reterr);
            if (r == 0 && dst) {
                memcpy(dst, vec, n * sizeof(double));
                *(const double **)p = dst;
                *(size_t *)((char *)&res->mt + md->count_offset) = n;
            }
            free(vec);
            break;
        }
        }
        if (r < 0)
            return r;
        res->mt.have |= (uint64_t)1 << i;
    }
    warn = qp_get(o, "warnings");
    if (warn && warn->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < warn->via.array.size; i++)
            for (int k = 0; k < _QT_WARN_COUNT; k++)
                if (warn->via.array.ptr[i].type == MSGPACK_OBJECT_STR &&
                    warn->via.array.ptr[i].via.str.size == strlen(qt_warning_name((unsigned)k)) &&
                    memcmp(warn->via.array.ptr[i].via.str.ptr, qt_warning_name((unsigned)k),
                           strlen(qt_warning_name((unsigned)k))) == 0)
                    res->warnings |= 1u << k;
    spec = qp_get(o, "spectral");
    return spec ? decode_spectral(spec, res, reterr) : 0;
}

/* ---- progress, totals, cancel, simple ---- */

int qp_pack_progress(struct qp_writer *w, const struct qp_progress *p, uint32_t max_frame)
{
    qp_begin_notification(w, QP_M_PROGRESS);
    (void)msgpack_pack_map(&w->pk, 5);
    qp_pack_key(&w->pk, "request");
    (void)msgpack_pack_uint32(&w->pk, p->request);
    qp_pack_key(&w->pk, "done");
    (void)msgpack_pack_uint64(&w->pk, p->done);
    qp_pack_key(&w->pk, "failed");
    (void)msgpack_pack_uint64(&w->pk, p->failed);
    qp_pack_key(&w->pk, "total");
    (void)msgpack_pack_uint64(&w->pk, p->total);
    qp_pack_key(&w->pk, "eta_ms");
    (void)msgpack_pack_int64(&w->pk, p->eta_ms);
    return qp_frame_end(w, max_frame);
}

int qp_decode_progress(const msgpack_object *params, struct qp_progress *p, struct qt_diag *reterr)
{
    uint64_t v = 0;
    const msgpack_object *eta = qp_get(params, "eta_ms");

    memset(p, 0, sizeof(*p));
    if (qp_read_u64(qp_get(params, "request"), "request", UINT32_MAX, &v, reterr) < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "request: missing or not a u32");
    p->request = (uint32_t)v;
    if (qp_read_u64(qp_get(params, "done"), "done", UINT64_MAX, &p->done, reterr) < 0 ||
        qp_read_u64(qp_get(params, "failed"), "failed", UINT64_MAX, &p->failed, reterr) < 0 ||
        qp_read_u64(qp_get(params, "total"), "total", UINT64_MAX, &p->total, reterr) < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "progress: done, failed, total required");
    p->eta_ms = eta && eta->type == MSGPACK_OBJECT_POSITIVE_INTEGER && eta->via.u64 <= INT64_MAX
                    ? (int64_t)eta->via.u64
                    : -1;
    return 0;
}

int qp_pack_submit_result(struct qp_writer *w, uint32_t id, const struct qp_totals *t,
                          uint32_t max_frame)
{
    qp_begin_response(w, id);
    (void)msgpack_pack_map(&w->pk, 4);
    qp_pack_key(&w->pk, "n_ok");
    (void)msgpack_pack_uint64(&w->pk, t->n_ok);
    qp_pack_key(&w->pk, "n_err");
    (void)msgpack_pack_uint64(&w->pk, t->n_err);
    qp_pack_key(&w->pk, "n_cancelled");
    (void)msgpack_pack_uint64(&w->pk, t->n_cancelled);
    qp_pack_key(&w->pk, "elapsed_ms");
    (void)msgpack_pack_double(&w->pk, t->elapsed_ms);
    return qp_frame_end(w, max_frame);
}

int qp_decode_totals(const msgpack_object *o, struct qp_totals *t, struct qt_diag *reterr)
{
    memset(t, 0, sizeof(*t));
    if (qp_read_u64(qp_get(o, "n_ok"), "n_ok", UINT64_MAX, &t->n_ok, reterr) < 0 ||
        qp_read_u64(qp_get(o, "n_err"), "n_err", UINT64_MAX, &t->n_err, reterr) < 0 ||
        qp_read_u64(qp_get(o, "n_cancelled"), "n_cancelled", UINT64_MAX, &t->n_cancelled, reterr) <
            0 ||
        qp_read_f64(qp_get(o, "elapsed_ms"), "elapsed_ms", &t->elapsed_ms, reterr) < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "totals: n_ok, n_err, n_cancelled, elapsed_ms required");
    return 0;
}

int qp_pack_cancel(struct qp_writer *w, uint32_t id, uint32_t target, uint32_t max_frame)
{
    qp_begin_request(w, id, QP_M_CANCEL);
    (void)msgpack_pack_map(&w->pk, 1);
    qp_pack_key(&w->pk, "id");
    (void)msgpack_pack_uint32(&w->pk, target);
    return qp_frame_end(w, max_frame);
}

int qp_decode_cancel(const msgpack_object *params, uint32_t *target, struct qt_diag *reterr)
{
    uint64_t v = 0;

    if (qp_read_u64(qp_get(params, "id"), "id", UINT32_MAX, &v, reterr) < 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "id: missing or not a u32");
    *target = (uint32_t)v;
    return 0;
}

int qp_pack_simple(struct qp_writer *w, uint32_t id, enum qp_method m, const char *design, size_t d,
                   uint32_t max_frame)
{
    qp_begin_request(w, id, m);
    (void)msgpack_pack_map(&w->pk, (size_t)(design != NULL) + (size_t)(d != 0));
    if (design) {
        qp_pack_key(&w->pk, "design");
        qp_pack_str(&w->pk, design);
    }
    if (d) {
        qp_pack_key(&w->pk, "d");
        (void)msgpack_pack_uint64(&w->pk, d);
    }
    return qp_frame_end(w, max_frame);
}

int qp_decode_design_d(const msgpack_object *params, size_t max_dim, char *design, size_t len,
                       size_t *d, struct qt_diag *reterr)
{
    uint64_t v = 0;
    int r;

    design[0] = '\0';
    *d = 0;
    r = qp_read_str(qp_get(params, "design"), "design", design, len, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    r = qp_read_u64(qp_get(params, "d"), "d", max_dim, &v, reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    *d = r == 0 ? (size_t)v : 0;
    return 0;
}
