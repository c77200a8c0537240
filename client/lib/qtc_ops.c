/* libqtomo-client: jobs, results, reconstruct, submit and the administrative calls. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "num/qt_design_kind.h"
#include "num/qt_optdesc.h"
#include "qtc_internal.h"

/* Bytes of a request other than its values and target (keys, options, ids), generously. */
#define REQUEST_OVERHEAD 8192u
#define SUBMIT_WINDOW    2u /* parts of a split batch in flight at once */

/* ---- jobs ---- */

qtomo_job *qtomo_job_new(void)
{
    qtomo_job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    qp_job_init(&j->job);
    j->job.methods[QT_METHOD_LINEAR] = true;
    j->job.methods[QT_METHOD_MLE] = true;
    return j;
}

void qtomo_job_free(qtomo_job *j)
{
    if (!j)
        return;
    qp_job_done(&j->job);
    free(j);
}

int qtomo_job_set_design(qtomo_job *j, const char *design, size_t d)
{
    int kind = design ? qt_design_kind_from_name(design) : -1;

    if (design && (kind < 0 || kind == QT_DESIGN_CUSTOM))
        return -EINVAL; /* custom designs go through qtomo_job_set_custom */
    j->design_set = design != NULL;
    if (design)
        (void)snprintf(j->job.design, sizeof(j->job.design), "%s", qt_design_kind_name((enum qt_design_kind)kind));
    j->job.design_id[0] = '\0';
    j->job.d = d;
    return 0;
}

int qtomo_job_set_custom(qtomo_job *j, const char *design_id, size_t d)
{
    if (!design_id || strlen(design_id) >= sizeof(j->job.design_id))
        return -EINVAL;
    j->design_set = true;
    (void)snprintf(j->job.design, sizeof(j->job.design), "custom");
    (void)snprintf(j->job.design_id, sizeof(j->job.design_id), "%s", design_id);
    j->job.d = d;
    return 0;
}

int qtomo_job_set_detector(qtomo_job *j, const struct qtomo_detector_ref *ref)
{
    if (!ref || !ref->design[0])
        return -EINVAL;
    if (strcmp(ref->design, "custom") == 0)
        return qtomo_job_set_custom(j, ref->design_id, ref->d);
    return qtomo_job_set_design(j, ref->design, ref->d);
}

int qtomo_job_set_methods(qtomo_job *j, const char *list)
{
    bool m[_QT_METHOD_MAX] = {false};
    const char *p = list;
    size_t n = 0;

    if (!list)
        return -EINVAL;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[16];

        if (len == 0 || len >= sizeof(name))
            return -EINVAL;
        memcpy(name, p, len);
        name[len] = '\0';
        int k = qt_method_from_name(name);
        if (k < 0)
            return -EINVAL;
        m[k] = true;
        n++;
        p += len + (p[len] == ',');
    }
    if (!n)
        return -EINVAL;
    memcpy(j->job.methods, m, sizeof(m));
    return 0;
}

int qtomo_job_set_option(qtomo_job *j, const char *name, double value, struct qtomo_error *err)
{
    const struct qt_optdesc *e;

    if (!name)
        return qtc_fail(err, -EINVAL, "option name missing");
    if (strcmp(name, "physical") == 0 || strcmp(name, "bell") == 0 ||
        strcmp(name, "spectral") == 0) {
        if (value != 0.0 && value != 1.0)
            return qtc_fail(err, -EINVAL, "option %s takes 0 or 1, got %g", name, value);
        if (name[0] == 'p')
            j->job.opts.physical = value != 0.0 ? QT_PHYS_SMOLIN : QT_PHYS_CLIP;
        else if (name[0] == 'b')
            j->job.opts.bell = value != 0.0;
        else
            j->job.opts.spectral = value != 0.0;
        return 0;
    }
    e = qt_optdesc_find(name, strlen(name));
    if (!e)
        return qtc_fail(err, -EINVAL, "unknown option '%s'", name);
    if (e->type == QT_OPT_FLAG && value != 0.0 && value != 1.0)
        return qtc_fail(err, -EINVAL, "option %s is a flag (0 or 1), got %g", name, value);
    if (qt_optdesc_set(e, value, &j->job.opts) < 0)
        return qtc_fail(err, -EINVAL, "option %s: %g is not %s in %s%g, %g]", name, value,
                        e->type == QT_OPT_UINT ? "an integer" : "a number",
                        e->lo_open ? "(" : "[", e->lo, e->hi);
    return 0;
}

int qtomo_job_set_target(qtomo_job *j, const double complex *rho, size_t d)
{
    double complex *t;

    if (!rho || d == 0 || d > QT_DESIGN_MAX_D || (j->job.d && j->job.d != d))
        return -EINVAL; /* the job is left as it was */
    t = malloc(d * d * sizeof(*t));
    if (!t)
        return -ENOMEM;
    memcpy(t, rho, d * d * sizeof(*t));
    free(j->job.target);
    j->job.target = t;
    j->job.opts.target = t;
    j->target_d = d;
    return 0;
}

int qtomo_job_set_bootstrap(qtomo_job *j, uint32_t resamples, const char *kind, int64_t seed,
                            double confidence, uint64_t shots)
{
    struct qt_boot_req b = {0};

    if (resamples == 0) {
        memset(&j->job.boot, 0, sizeof(j->job.boot));
        return 0;
    }
    if (resamples < 2 || resamples > QT_BOOT_MAX_RESAMPLES ||
        (kind && qt_resample_kind_from_name(kind, &b.kind) < 0) ||
        (seed >= 0 && (uint64_t)seed > QT_BOOT_MAX_SEED) ||
        (confidence != 0.0 && !(confidence > 0.0 && confidence < 1.0)) ||
        shots > QT_BOOT_MAX_SEED)
        return -EINVAL;
    b.resamples = resamples;
    b.has_seed = seed >= 0;
    b.seed = seed >= 0 ? (uint64_t)seed : 0;
    b.confidence = confidence != 0.0 ? confidence : QT_BOOT_CONFIDENCE;
    b.shots = shots;
    j->job.boot = b;
    return 0;
}

void qtomo_job_set_timeout(qtomo_job *j, uint32_t timeout_ms)
{
    j->job.timeout_ms = timeout_ms;
}

void qtomo_job_set_progress(qtomo_job *j, uint32_t interval_ms)
{
    j->job.progress_ms = interval_ms;
}

/* The job as sent for m values: the design inferred when it was not set. */
static int job_for(const qtomo_job *j, size_t m, struct qp_job *out, struct qtomo_error *err)
{
    *out = j->job;
    out->values = NULL;
    if (!j->design_set) {
        struct qt_diag dg = {0};
        int kind;
        size_t d;

        if (qt_design_infer(-1, m, &kind, &d, &dg) < 0)
            return qtc_fail(err, -EINVAL, "%s", dg.msg);
        if (out->d && out->d != d)
            return qtc_fail(err, -EINVAL, "%zu values mean d = %zu for %s, but d = %zu was set",
                            m, d, qt_design_kind_name((enum qt_design_kind)kind), out->d);
        (void)snprintf(out->design, sizeof(out->design), "%s", qt_design_kind_name((enum qt_design_kind)kind));
        out->d = d;
    }
    if (out->target && !out->d)
        out->d = j->target_d; /* the design's size is the target's */
    if (out->target && out->d != j->target_d)
        return qtc_fail(err, -EINVAL, "the target is %zu x %zu but the design has d = %zu",
                        j->target_d, j->target_d, out->d);
    return 0;
}

/* The packer reads values and never writes them; qp_job's pointer is not const because the
 * decoder owns what it allocates. */
static void job_values(struct qp_job *pj, const double *values, size_t m, size_t n)
{
    union {
        const double *c;
        double *p;
    } u = {values};

    pj->values = u.p;
    pj->m = m;
    pj->n = n;
}

static int pack_failed(struct qtomo_error *err, int r, size_t n, const qtomo_conn *c)
{
    if (r == QT_ETOOBIG)
        return qtc_fail(err, QTOMO_E_TOO_LARGE,
                        "%zu sample(s) do not fit in one message of at most %u bytes", n,
                        c->max_frame);
    return qtc_fail(err, -EINVAL, "cannot encode the request: %s", qt_strerror(r));
}

/* ---- samples ---- */

uint64_t qtomo_sample_index(const qtomo_sample *s)
{
    return s->index;
}

size_t qtomo_sample_count(const qtomo_sample *s)
{
    return s->n;
}

const char *qtomo_sample_method(const qtomo_sample *s, size_t i)
{
    return i < s->n ? qt_method_name(s->res[i].method) : NULL;
}

size_t qtomo_sample_dim(const qtomo_sample *s, size_t i)
{
    return i < s->n ? s->res[i].d : 0;
}

int qtomo_sample_status(const qtomo_sample *s, size_t i, const char **message)
{
    if (i >= s->n)
        return -EINVAL;
    if (message)
        *message = s->res[i].err ? s->res[i].errmsg : "";
    return s->res[i].err ? qt_status_from_err(s->res[i].err) : 0;
}

const double complex *qtomo_sample_rho(const qtomo_sample *s, size_t i)
{
    return i < s->n && !s->res[i].err ? s->res[i].rho : NULL;
}

static const struct qt_metric_desc *metric(const qtomo_sample *s, size_t i, const char *name,
                                           const char **p)
{
    if (i >= s->n || s->res[i].err || !name)
        return NULL;
    for (int k = 0; k < _QT_MT_MAX; k++)
        if (strcmp(qt_metric_descs[k].name, name) == 0) {
            if (!qt_metrics_has(&s->res[i].mt, (enum qt_metric_id)k))
                return NULL;
            *p = (const char *)&s->res[i].mt + qt_metric_descs[k].offset;
            return &qt_metric_descs[k];
        }
    return NULL;
}

/* The "spectral." names of the result map's spectral (--spectral): k = 0 amplitudes,
 * 1 phases_pi, 2 eigenvalues, 3 dominant_eigenvalue; -1 for other names. */
static int spectral_key(const char *name)
{
    static const char *const keys[] = {"amplitudes", "phases_pi", "eigenvalues",
                                       "dominant_eigenvalue"};

    if (!name || strncmp(name, "spectral.", 9) != 0)
        return -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(name + 9, keys[k]) == 0)
            return k;
    return -1;
}

int qtomo_sample_metric(const qtomo_sample *s, size_t i, const char *name, double *value)
{
    const char *p = NULL;
    const struct qt_metric_desc *md = metric(s, i, name, &p);

    if (spectral_key(name) == 3 && i < s->n && !s->res[i].err && s->res[i].has_spectral) {
        *value = s->res[i].spectral_dominant;
        return 0;
    }
    if (!md)
        return -ENOENT;
    switch (md->type) {
    case QT_MTYPE_F64:
        *value = *(const double *)p;
        return 0;
    case QT_MTYPE_I64:
        *value = (double)*(const int64_t *)p;
        return 0;
    case QT_MTYPE_BOOL:
        *value = *(const bool *)p ? 1.0 : 0.0;
        return 0;
    default:
        return -ENOENT;
    }
}

const double *qtomo_sample_vector(const qtomo_sample *s, size_t i, const char *name, size_t *n)
{
    const char *p = NULL;
    const struct qt_metric_desc *md = metric(s, i, name, &p);
    int k = spectral_key(name);

    if (k >= 0 && k < 3) {
        if (i >= s->n || s->res[i].err || !s->res[i].has_spectral)
            return NULL;
        if (n)
            *n = s->res[i].d;
        return s->res[i].spectral + (size_t)k * s->res[i].d;
    }
    if (!md || md->type != QT_MTYPE_F64V)
        return NULL;
    if (n)
        *n = *(const size_t *)((const char *)&s->res[i].mt + md->count_offset);
    return *(const double *const *)p;
}

void qtomo_sample_timing(const qtomo_sample *s, double *queue_ms, double *compute_ms)
{
    if (queue_ms)
        *queue_ms = s->queue_ms;
    if (compute_ms)
        *compute_ms = s->compute_ms;
}

void qtomo_sample_free(qtomo_sample *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < _QT_METHOD_MAX; i++) {
        qt_result_done(&s->res[i]);
        qt_uncertainty_done(&s->unc[i]);
    }
    free(s);
}

int qtomo_sample_uncertainty(const qtomo_sample *s, size_t i, struct qtomo_uncertainty *u)
{
    const struct qt_uncertainty *q = qtc_sample_uncertainty(s, i);

    memset(u, 0, sizeof(*u));
    if (!q)
        return -ENOENT;
    u->resamples = q->resamples;
    u->failed = q->failed;
    u->seed = q->seed;
    u->shots = q->shots;
    u->confidence = q->confidence;
    u->kind = qt_resample_kind_name(q->kind);
    u->boundary = (q->warn & QT_BOOT_WARN_BOUNDARY) != 0;
    u->error = q->err ? q->errmsg : NULL;
    u->has_trace_distance_bound = q->has_td_bound;
    u->trace_distance_bound = q->td_bound;
    u->rho_std_re = q->rho_std_re;
    u->rho_std_im = q->rho_std_im;
    return 0;
}

int qtomo_sample_error_bar(const qtomo_sample *s, size_t i, const char *metric, size_t k,
                           double *std, double *lo, double *hi)
{
    const struct qt_uncertainty *q = qtc_sample_uncertainty(s, i);
    const struct qt_boot_stat *st;
    int id = metric ? qt_metric_from_name(metric) : -1;

    if (!q || q->err || id < 0 || !((q->have >> id) & 1u))
        return -ENOENT;
    if (qt_metric_descs[id].type == QT_MTYPE_F64V) {
        st = id == QT_MT_EIGENVALUES ? q->veig : q->vbell;
        if (!st || k >= q->d)
            return -ENOENT;
        st += k;
    } else {
        if (k != 0)
            return -ENOENT;
        st = &q->stats[id];
    }
    if (std)
        *std = st->std;
    if (lo)
        *lo = st->lo;
    if (hi)
        *hi = st->hi;
    return 0;
}

/* Decodes the uncertainty array (one map or nil per result) into s. */
static int decode_unc(const msgpack_object *o, qtomo_sample *s, struct qt_diag *dg)
{
    for (size_t i = 0; i < _QT_METHOD_MAX; i++) { /* s is reused from sample to sample */
        qt_uncertainty_done(&s->unc[i]);
        s->has_unc[i] = false;
    }
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != s->n)
        return qt_diag_set(dg, QT_EPARSE, 0, 0, "uncertainty: not an array of %zu", s->n);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int r;

        if (o->via.array.ptr[i].type == MSGPACK_OBJECT_NIL)
            continue;
        r = qp_decode_uncertainty(&o->via.array.ptr[i], s->res[i].d, &s->unc[i], dg);
        if (r < 0)
            return r;
        s->has_unc[i] = true;
    }
    return 0;
}

/* Decodes a results array into s. */
static int decode_results(const qtomo_conn *c, const msgpack_object *o, qtomo_sample *s,
                          struct qt_diag *dg)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 ||
        o->via.array.size > _QT_METHOD_MAX)
        return qt_diag_set(dg, QT_EPARSE, 0, 0, "results: not an array of 1-4 result maps");
    s->n = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int r = qp_decode_result_map(&o->via.array.ptr[i], c->si.max_dim ? c->si.max_dim
                                                                         : QT_DESIGN_MAX_D,
                                     &s->res[i], dg);
        if (r < 0)
            return r;
        s->n++;
    }
    return 0;
}

/* ---- reconstruct ---- */

int qtomo_reconstruct(qtomo_conn *c, const qtomo_job *j, const double *values, size_t m,
                      qtomo_sample **ret, struct qtomo_error *err)
{
    struct qt_diag dg = {0};
    struct qp_job pj;
    qtomo_sample *s;
    uint32_t id;
    uint64_t index = 0;
    int r;

    *ret = NULL;
    if (!values || m == 0)
        return qtc_fail(err, -EINVAL, "no values");
    r = job_for(j, m, &pj, err);
    if (r < 0)
        return r;
    if (pj.boot.resamples && !c->feat_bootstrap)
        return qtc_fail(err, -ENOTSUP, "the server does not compute error bars (its hello "
                                       "lists no 'bootstrap' feature)");
    job_values(&pj, values, m, 1);
    id = qtc_next_id(c);
    r = qp_pack_job(&c->w, id, QP_M_RECONSTRUCT, &pj, c->max_frame);
    if (r < 0)
        return pack_failed(err, r, 1, c);
    r = qtc_call(c, &c->w, id, err);
    if (r < 0)
        return r;
    s = calloc(1, sizeof(*s));
    if (!s)
        return qtc_fail(err, -ENOMEM, "out of memory");
    const msgpack_object *res = c->msg.result, *tm = qp_get(res, "timing");
    r = qp_read_u64(qp_get(res, "index"), "index", UINT64_MAX, &index, &dg);
    if (r >= 0)
        r = decode_results(c, qp_get(res, "results"), s, &dg);
    if (r >= 0)
        r = decode_unc(qp_get(res, "uncertainty"), s, &dg);
    if (r >= 0 && tm) {
        if (qp_read_f64(qp_get(tm, "queue_ms"), "timing.queue_ms", &s->queue_ms, &dg) < 0 ||
            qp_read_f64(qp_get(tm, "compute_ms"), "timing.compute_ms", &s->compute_ms, &dg) < 0)
            r = QT_EPARSE;
    }
    if (r < 0) {
        qtomo_sample_free(s);
        return qtc_bad_result(c, err, "reconstruct", r, &dg);
    }
    s->index = index;
    *ret = s;
    return 0;
}

/* ---- submit ---- */

struct part {
    uint32_t id;
    size_t col0, ncol;
    struct qp_progress prog; /* last progress of this part */
    bool done;
};

struct submit {
    qtomo_conn *c;
    const struct qtomo_callbacks *cb;
    struct qp_job pj;
    const double *values;
    size_t m, n, per_part, n_parts, sent, inflight;
    uint64_t first_index;
    struct part *parts;
    qtomo_sample *s;
    struct qtomo_totals tot;
    bool cancel;    /* cancel requested: by a callback, the flag, or a failed part */
    int first_err;  /* the first part error other than cancelled */
    struct qtomo_error perr;
};

static int send_part(struct submit *sb, struct qtomo_error *err)
{
    struct part *p = &sb->parts[sb->sent];
    int r;

    p->col0 = sb->sent * sb->per_part;
    p->ncol = sb->n - p->col0 < sb->per_part ? sb->n - p->col0 : sb->per_part;
    p->id = qtc_next_id(sb->c);
    job_values(&sb->pj, sb->values + p->col0 * sb->m, sb->m, p->ncol);
    sb->pj.first_index = (size_t)sb->first_index + p->col0;
    r = qp_pack_job(&sb->c->w, p->id, QP_M_SUBMIT, &sb->pj, sb->c->max_frame);
    if (r < 0)
        return pack_failed(err, r, p->ncol, sb->c);
    r = qtc_send(sb->c, &sb->c->w, err);
    qp_writer_reset(&sb->c->w);
    if (r < 0)
        return r;
    sb->sent++;
    sb->inflight++;
    return 0;
}

static int send_cancels(struct submit *sb, struct qtomo_error *err)
{
    sb->cancel = true;
    sb->c->cancelling = true;
    for (size_t i = 0; i < sb->sent; i++) {
        struct part *p = &sb->parts[i];
        int r;

        if (p->done)
            continue;
        r = qp_pack_cancel(&sb->c->w, qtc_next_id(sb->c), p->id, sb->c->max_frame);
        if (r >= 0)
            r = qtc_send(sb->c, &sb->c->w, err);
        qp_writer_reset(&sb->c->w);
        if (r < 0)
            return r;
    }
    return 0;
}

static struct part *find_part(struct submit *sb, uint64_t id)
{
    for (size_t i = 0; i < sb->sent; i++)
        if (sb->parts[i].id == id && !sb->parts[i].done)
            return &sb->parts[i];
    return NULL;
}

static int on_notification(struct submit *sb, struct qtomo_error *err)
{
    qtomo_conn *c = sb->c;
    const msgpack_object *p = c->msg.params;
    struct qt_diag dg = {0};
    uint64_t req = 0, index = 0;
    struct part *pt;
    int r;

    if (c->msg.method != QP_M_RESULT && c->msg.method != QP_M_PROGRESS)
        return 0;
    r = qp_read_u64(qp_get(p, "request"), "request", UINT32_MAX, &req, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, c->msg.method_name, r, &dg);
    pt = find_part(sb, req);
    if (!pt)
        return 0; /* another request's, or after its end */
    if (c->msg.method == QP_M_PROGRESS) {
        if (qp_decode_progress(p, &pt->prog, &dg) < 0)
            return qtc_bad_result(c, err, "progress", QT_EPARSE, &dg);
        if (sb->cb->progress) {
            struct qtomo_progress all = {0, 0, sb->n, pt->prog.eta_ms};

            for (size_t i = 0; i < sb->sent; i++) {
                all.done += sb->parts[i].prog.done;
                all.failed += sb->parts[i].prog.failed;
            }
            if (sb->sent < sb->n_parts)
                all.eta_ms = -1;
            sb->cb->progress(sb->cb->userdata, &all);
        }
        return 0;
    }
    r = qp_read_u64(qp_get(p, "index"), "index", UINT64_MAX, &index, &dg);
    if (r >= 0)
        r = decode_results(c, qp_get(p, "results"), sb->s, &dg);
    if (r >= 0)
        r = decode_unc(qp_get(p, "uncertainty"), sb->s, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "result", r, &dg);
    sb->s->index = index;
    sb->s->queue_ms = 0.0;
    if (qp_read_f64(qp_get(p, "compute_ms"), "compute_ms", &sb->s->compute_ms, &dg) < 0)
        sb->s->compute_ms = -1.0; /* absent (another server) or unreadable: unknown */
    if (sb->cb->result(sb->cb->userdata, sb->s) != 0 && !sb->cancel)
        return send_cancels(sb, err);
    return 0;
}

static int on_response(struct submit *sb, struct qtomo_error *err)
{
    qtomo_conn *c = sb->c;
    struct part *pt = c->msg.id_valid ? find_part(sb, c->msg.id) : NULL;
    struct qp_totals t = {0};
    struct qt_diag dg = {0};

    if (!pt)
        return 0; /* a cancel's answer */
    pt->done = true;
    sb->inflight--;
    pt->prog.done = pt->ncol; /* for later progress sums */
    if (c->msg.error && c->msg.error->type != MSGPACK_OBJECT_NIL) {
        struct qtomo_error e;
        int r = qtc_server_error(c, &e, &t);

        if (r == QTOMO_EPROTO) {
            if (err)
                *err = e;
            return r;
        }
        if (r != QTOMO_E_CANCELLED && !sb->first_err) {
            sb->first_err = r;
            sb->perr = e;
        }
        if (t.n_ok + t.n_err + t.n_cancelled == 0)
            t.n_cancelled = pt->ncol; /* refused before it ran */
        if (!sb->cancel) {
            sb->tot.n_ok += t.n_ok;
            sb->tot.n_err += t.n_err;
            sb->tot.n_cancelled += t.n_cancelled;
            return send_cancels(sb, err);
        }
    } else if (qp_decode_totals(c->msg.result, &t, &dg) < 0) {
        return qtc_bad_result(c, err, "submit", QT_EPARSE, &dg);
    }
    sb->tot.n_ok += t.n_ok;
    sb->tot.n_err += t.n_err;
    sb->tot.n_cancelled += t.n_cancelled;
    if (sb->n_parts == 1)
        sb->tot.elapsed_ms = t.elapsed_ms;
    return 0;
}

static int submit_run(struct submit *sb, struct qtomo_error *err)
{
    qtomo_conn *c = sb->c;
    size_t window = c->si.max_inflight > 1 ? SUBMIT_WINDOW : 1;
    int r;

    for (;;) {
        while (!sb->cancel && sb->sent < sb->n_parts && sb->inflight < window) {
            r = send_part(sb, err);
            if (r < 0)
                return r;
        }
        if (sb->inflight == 0)
            return 0;
        r = qtc_recv(c, c->timeout_ms > 0 ? qtc_now_ms() + c->timeout_ms : 0,
                     sb->cb->cancel, err);
        if (r == -ECANCELED) {
            r = send_cancels(sb, err);
            if (r < 0)
                return r;
            continue;
        }
        if (r < 0)
            return r;
        if (c->msg.type == QP_NOTIFICATION)
            r = on_notification(sb, err);
        else if (c->msg.type == QP_RESPONSE)
            r = on_response(sb, err);
        if (r < 0)
            return r;
    }
}

int qtomo_submit(qtomo_conn *c, const qtomo_job *j, const double *values, size_t m, size_t n,
                 uint64_t first_index, const struct qtomo_callbacks *cb,
                 struct qtomo_totals *totals, struct qtomo_error *err)
{
    struct submit sb = {.c = c, .cb = cb, .values = values, .m = m, .n = n,
                        .first_index = first_index};
    int64_t t0 = qtc_now_ms();
    size_t fixed, by_frame;
    int r;

    if (totals)
        memset(totals, 0, sizeof(*totals));
    if (!values || m == 0 || n == 0 || !cb || !cb->result)
        return qtc_fail(err, -EINVAL, "submit needs values (m, n > 0) and a result callback");
    r = job_for(j, m, &sb.pj, err);
    if (r == 0 && sb.pj.boot.resamples && !c->feat_bootstrap)
        r = qtc_fail(err, -ENOTSUP, "the server does not compute error bars (its hello lists "
                                    "no 'bootstrap' feature)");
    if (r < 0)
        return r;
    /* Split the batch so that every part fits the server's frame and batch limits. */
    fixed = REQUEST_OVERHEAD + (sb.pj.target ? 16 * sb.pj.d * sb.pj.d : 0);
    by_frame = c->max_frame > fixed ? (c->max_frame - fixed) / (8 * m) : 0;
    if (by_frame == 0)
        return qtc_fail(err, QTOMO_E_TOO_LARGE,
                        "one sample of %zu values does not fit in a message of %u bytes", m,
                        c->max_frame);
    sb.per_part = c->si.max_batch && c->si.max_batch < by_frame ? c->si.max_batch : by_frame;
    sb.n_parts = (n + sb.per_part - 1) / sb.per_part;
    sb.parts = calloc(sb.n_parts, sizeof(*sb.parts));
    sb.s = calloc(1, sizeof(*sb.s));
    if (!sb.parts || !sb.s) {
        r = qtc_fail(err, -ENOMEM, "out of memory");
        goto out;
    }
    r = submit_run(&sb, err);
    if (r < 0)
        goto out;
    for (size_t i = sb.sent; i < sb.n_parts; i++) /* never sent: cancelled */
        sb.tot.n_cancelled += i + 1 < sb.n_parts ? sb.per_part : n - i * sb.per_part;
    if (sb.n_parts > 1 || sb.tot.elapsed_ms == 0)
        sb.tot.elapsed_ms = (double)(qtc_now_ms() - t0);
    if (totals)
        *totals = sb.tot;
    if (sb.first_err) {
        if (err)
            *err = sb.perr;
        r = sb.first_err;
    } else if (sb.cancel) {
        r = qtc_fail(err, QTOMO_E_CANCELLED, "cancelled after %llu of %zu samples",
                     (unsigned long long)(sb.tot.n_ok + sb.tot.n_err), n);
    }
out:
    c->cancelling = false;
    qtomo_sample_free(sb.s);
    free(sb.parts);
    return r;
}

/* ---- administration ---- */

static int simple_call(qtomo_conn *c, enum qp_method m, const char *design, size_t d,
                       struct qtomo_error *err)
{
    uint32_t id = qtc_next_id(c);
    int r = qp_pack_simple(&c->w, id, m, design, d, c->max_frame);

    if (r < 0)
        return pack_failed(err, r, 0, c);
    return qtc_call(c, &c->w, id, err);
}

static int u64_call(qtomo_conn *c, enum qp_method m, const char *design, size_t d,
                    const char *key, uint64_t *v, struct qtomo_error *err)
{
    struct qt_diag dg = {0};
    uint64_t x = 0;
    int r = simple_call(c, m, design, d, err);

    if (r < 0)
        return r;
    r = qp_decode_u64_result(c->msg.result, key, &x, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, qp_methods[m].name, r, &dg);
    if (v)
        *v = x;
    return 0;
}

int qtomo_status(qtomo_conn *c, bool stats, struct qtomo_status *st, struct qtomo_error *err)
{
    struct qp_status s;
    struct qt_diag dg = {0};
    int r;

    memset(st, 0, sizeof(*st));
    r = simple_call(c, stats ? QP_M_STATS : QP_M_STATUS, NULL, 0, err);
    if (r < 0)
        return r;
    r = qp_decode_status_result(c->msg.result, &s, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, stats ? "stats" : "status", r, &dg);
    *st = (struct qtomo_status){s.uptime_s, s.queue_interactive, s.queue_batch, s.inflight,
                                s.n_workers, s.cache_bytes, s.cache_files, s.cache_budget,
                                s.items, s.errors, s.timeouts, s.crashes, s.recycled, NULL, 0};
    if (s.n_worker_info) {
        st->workers = calloc(s.n_worker_info, sizeof(*st->workers));
        if (!st->workers) {
            qp_status_done(&s);
            return qtc_fail(err, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < s.n_worker_info; i++) {
            st->workers[i].pid = s.workers[i].pid;
            memcpy(st->workers[i].state, s.workers[i].state, sizeof(st->workers[i].state));
            st->workers[i].jobs = s.workers[i].jobs;
            st->workers[i].rss_kb = s.workers[i].rss_kb;
        }
        st->n_workers_info = s.n_worker_info;
    }
    qp_status_done(&s);
    return 0;
}

void qtomo_status_free(struct qtomo_status *st)
{
    if (!st)
        return;
    free(st->workers);
    st->workers = NULL;
    st->n_workers_info = 0;
}

int qtomo_ping(qtomo_conn *c, double *rtt_ms, struct qtomo_error *err)
{
    struct timespec a, b;
    int r;

    (void)clock_gettime(CLOCK_MONOTONIC, &a);
    r = simple_call(c, QP_M_STATUS, NULL, 0, err);
    (void)clock_gettime(CLOCK_MONOTONIC, &b);
    if (r < 0)
        return r;
    if (rtt_ms)
        *rtt_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    return 0;
}

int qtomo_design_put(qtomo_conn *c, const char *json, size_t len, char *id, size_t id_len,
                     struct qtomo_error *err)
{
    struct qt_diag dg = {0};
    char buf[64];
    uint32_t rid = qtc_next_id(c);
    int r;

    if (!json || !len)
        return qtc_fail(err, -EINVAL, "empty design");
    r = qp_pack_design_put(&c->w, rid, json, len, c->max_frame);
    if (r < 0)
        return pack_failed(err, r, 0, c);
    r = qtc_call(c, &c->w, rid, err);
    if (r < 0)
        return r;
    r = qp_decode_id_result(c->msg.result, buf, sizeof(buf), &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "design.put", r, &dg);
    if (strlen(buf) >= id_len)
        return qtc_fail(err, -ENAMETOOLONG, "design id needs %zu bytes", strlen(buf) + 1);
    memcpy(id, buf, strlen(buf) + 1);
    return 0;
}

int qtomo_detector_put(qtomo_conn *c, const char *json, size_t len, const char *design, size_t d,
                       const char *design_id, struct qtomo_detector_ref *ref,
                       struct qtomo_error *err)
{
    struct qt_diag dg = {0};
    struct qp_detector_put p = {json, len, "", "", d};
    struct qp_detector_put_result res;
    uint32_t rid;
    int r;

    if (!json || !len || !design || !ref)
        return qtc_fail(err, -EINVAL, "empty detector model or no design");
    if (strlen(design) >= sizeof(p.design) ||
        (design_id && strlen(design_id) >= sizeof(p.design_id)))
        return qtc_fail(err, -EINVAL, "design name or id too long");
    if (!c->feat_detector)
        return qtc_fail(err, -ENOTSUP, "the server does not take detector models (its hello "
                                       "lists no 'detector' feature)");
    (void)snprintf(p.design, sizeof(p.design), "%s", design);
    (void)snprintf(p.design_id, sizeof(p.design_id), "%s", design_id ? design_id : "");
    rid = qtc_next_id(c);
    r = qp_pack_detector_put(&c->w, rid, &p, c->max_frame);
    if (r < 0)
        return pack_failed(err, r, 0, c);
    r = qtc_call(c, &c->w, rid, err);
    if (r < 0)
        return r;
    r = qp_decode_detector_put_result(c->msg.result, &res, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "detector.put", r, &dg);
    memset(ref, 0, sizeof(*ref));
    (void)snprintf(ref->design, sizeof(ref->design), "%s", res.design);
    (void)snprintf(ref->design_id, sizeof(ref->design_id), "%s", res.design_id);
    (void)snprintf(ref->detector, sizeof(ref->detector), "%s", res.detector);
    ref->d = res.d;
    ref->m = res.m;
    return 0;
}

int qtomo_cache_list(qtomo_conn *c, struct qtomo_cache_entry **ret, size_t *n,
                     struct qtomo_error *err)
{
    struct qt_cache_entry *e = NULL;
    struct qt_diag dg = {0};
    size_t k = 0;
    int r;

    *ret = NULL;
    *n = 0;
    r = simple_call(c, QP_M_CACHE_LIST, NULL, 0, err);
    if (r < 0)
        return r;
    r = qp_decode_cache_list_result(c->msg.result, &e, &k, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "cache.list", r, &dg);
    if (k) {
        *ret = calloc(k, sizeof(**ret));
        if (!*ret) {
            free(e);
            return qtc_fail(err, -ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < k; i++) {
        struct qtomo_cache_entry *o = &(*ret)[i];

        memcpy(o->name, e[i].name, sizeof(o->name));
        memcpy(o->id, e[i].id, sizeof(o->id));
        memcpy(o->design, e[i].design, sizeof(o->design));
        o->d = e[i].d;
        o->m = e[i].m;
        o->bytes = e[i].bytes;
        o->last_use_ns = e[i].last_use_ns;
        o->mapped_by = e[i].mapped_by;
    }
    free(e);
    *n = k;
    return 0;
}

int qtomo_cache_warm(qtomo_conn *c, const char *const *designs, const size_t *dims, size_t n,
                     uint64_t *warmed, struct qtomo_error *err)
{
    struct qp_design_d *items;
    struct qt_diag dg = {0};
    uint32_t id;
    int r;

    if (n == 0 || n > QP_MAX_WARM_ITEMS)
        return qtc_fail(err, -EINVAL, "cache warm takes 1 to %u items", QP_MAX_WARM_ITEMS);
    items = calloc(n, sizeof(*items));
    if (!items)
        return qtc_fail(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!designs[i] || strlen(designs[i]) >= sizeof(items[i].design)) {
            free(items);
            return qtc_fail(err, -EINVAL, "item %zu: bad design name", i);
        }
        memcpy(items[i].design, designs[i], strlen(designs[i]) + 1);
        items[i].d = dims[i];
    }
    id = qtc_next_id(c);
    r = qp_pack_cache_warm(&c->w, id, items, n, c->max_frame);
    free(items);
    if (r < 0)
        return pack_failed(err, r, 0, c);
    r = qtc_call(c, &c->w, id, err);
    if (r < 0)
        return r;
    uint64_t v = 0;
    r = qp_decode_u64_result(c->msg.result, "warmed", &v, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "cache.warm", r, &dg);
    if (warmed)
        *warmed = v;
    return 0;
}

int qtomo_cache_evict(qtomo_conn *c, const char *design, size_t d, uint64_t *bytes,
                      struct qtomo_error *err)
{
    if (!design || !d)
        return qtc_fail(err, -EINVAL, "cache evict needs a design and d");
    return u64_call(c, QP_M_CACHE_EVICT, design, d, "bytes", bytes, err);
}

int qtomo_cache_verify(qtomo_conn *c, const char *design, size_t d, uint64_t *checked,
                       struct qtomo_damaged **damaged, size_t *n_damaged,
                       struct qtomo_error *err)
{
    struct qp_damaged *dm = NULL;
    struct qt_diag dg = {0};
    uint64_t k = 0;
    size_t nd = 0;
    int r;

    *damaged = NULL;
    *n_damaged = 0;
    r = simple_call(c, QP_M_CACHE_VERIFY, design, design ? d : 0, err);
    if (r < 0)
        return r;
    r = qp_decode_verify_result(c->msg.result, &k, &dm, &nd, &dg);
    if (r < 0)
        return qtc_bad_result(c, err, "cache.verify", r, &dg);
    if (nd) {
        *damaged = calloc(nd, sizeof(**damaged));
        if (!*damaged) {
            free(dm);
            return qtc_fail(err, -ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < nd; i++) {
        memcpy((*damaged)[i].name, dm[i].name, sizeof(dm[i].name));
        memcpy((*damaged)[i].reason, dm[i].reason, sizeof(dm[i].reason));
    }
    free(dm);
    *n_damaged = nd;
    if (checked)
        *checked = k;
    return 0;
}

int qtomo_reload(qtomo_conn *c, uint64_t *generation, struct qtomo_error *err)
{
    return u64_call(c, QP_M_RELOAD, NULL, 0, "generation", generation, err);
}
