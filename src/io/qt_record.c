/* JSON formatting of result records, driven by the metric table. */
#include "qt_record.h"

#include <stdbool.h>
#include <stdint.h>

#include "base/qt_status.h"

static void write_matrix(struct qt_jw *w, size_t d, const double complex *rho)
{
    qt_jw_obj_begin(w);
    for (int part = 0; part < 2; part++) {
        qt_jw_key(w, part ? "im" : "re");
        qt_jw_arr_begin(w);
        for (size_t i = 0; i < d; i++) {
            qt_jw_arr_begin(w);
            for (size_t j = 0; j < d; j++)
                qt_jw_num(w, part ? cimag(rho[i + d * j]) : creal(rho[i + d * j]));
            qt_jw_arr_end(w);
        }
        qt_jw_arr_end(w);
    }
    qt_jw_obj_end(w);
}

static void write_metrics(struct qt_jw *w, const struct qt_metrics *mt)
{
    const char *base = (const char *)mt;

    qt_jw_obj_begin(w);
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        const struct qt_metric_desc *md = &qt_metric_descs[id];
        const void *p = base + md->offset;

        if (!qt_metrics_has(mt, (enum qt_metric_id)id))
            continue;
        qt_jw_key(w, md->name);
        switch (md->type) {
        case QT_MTYPE_F64:
            qt_jw_num(w, *(const double *)p);
            break;
        case QT_MTYPE_I64:
            qt_jw_int(w, *(const int64_t *)p);
            break;
        case QT_MTYPE_BOOL:
            qt_jw_bool(w, *(const bool *)p);
            break;
        case QT_MTYPE_STR:
            qt_jw_str(w, *(const char *const *)p ? *(const char *const *)p : "");
            break;
        case QT_MTYPE_F64V: {
            const double *v = *(const double *const *)p;
            size_t n = *(const size_t *)(base + md->count_offset);

            qt_jw_arr_begin(w);
            for (size_t i = 0; i < n; i++)
                qt_jw_num(w, v[i]);
            qt_jw_arr_end(w);
            break;
        }
        }
    }
    qt_jw_obj_end(w);
}

/* "warnings": [the names of the bits set], when any is. */
static void write_flags(struct qt_jw *w, unsigned bits, unsigned count,
                        const char *(*name)(unsigned))
{
    if (!bits)
        return;
    qt_jw_key(w, "warnings");
    qt_jw_arr_begin(w);
    for (unsigned i = 0; i < count; i++)
        if (bits & (1u << i))
            qt_jw_str(w, name(i));
    qt_jw_arr_end(w);
}

static void write_stats(struct qt_jw *w, const struct qt_boot_stat *st, size_t n, bool vec)
{
    static const char *const keys[] = {"std", "lo", "hi"};

    qt_jw_obj_begin(w);
    for (int k = 0; k < 3; k++) {
        qt_jw_key(w, keys[k]);
        if (vec)
            qt_jw_arr_begin(w);
        for (size_t i = 0; i < n; i++)
            qt_jw_num(w, k == 0 ? st[i].std : k == 1 ? st[i].lo : st[i].hi);
        if (vec)
            qt_jw_arr_end(w);
    }
    qt_jw_obj_end(w);
}

static void write_real_matrix(struct qt_jw *w, size_t d, const double *a)
{
    qt_jw_arr_begin(w);
    for (size_t i = 0; i < d; i++) {
        qt_jw_arr_begin(w);
        for (size_t j = 0; j < d; j++)
            qt_jw_num(w, a[i + d * j]);
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
}

static void write_uncertainty(struct qt_jw *w, const struct qt_uncertainty *u)
{
    qt_jw_obj_begin(w);
    qt_jw_key(w, "resamples");
    qt_jw_int(w, u->resamples);
    qt_jw_key(w, "kind");
    qt_jw_str(w, qt_resample_kind_name(u->kind) ? qt_resample_kind_name(u->kind) : "");
    qt_jw_key(w, "seed");
    qt_jw_int(w, (int64_t)u->seed);
    qt_jw_key(w, "confidence");
    qt_jw_num(w, u->confidence);
    if (u->shots) {
        qt_jw_key(w, "shots");
        qt_jw_int(w, (int64_t)u->shots);
    }
    qt_jw_key(w, "failed_resamples");
    qt_jw_int(w, u->failed);
    write_flags(w, u->warn, _QT_BOOT_WARN_COUNT, qt_boot_warn_name);
    if (u->err) {
        qt_jw_key(w, "error");
        qt_jw_obj_begin(w);
        qt_jw_key(w, "code");
        qt_jw_int(w, qt_status_from_err(u->err));
        qt_jw_key(w, "name");
        qt_jw_str(w, qt_errname(u->err));
        qt_jw_key(w, "message");
        qt_jw_str(w, u->errmsg);
        qt_jw_obj_end(w);
        qt_jw_obj_end(w);
        return;
    }
    qt_jw_key(w, "metrics");
    qt_jw_obj_begin(w);
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        const struct qt_boot_stat *vs = id == QT_MT_EIGENVALUES ? u->veig : u->vbell;

        if (!((u->have >> id) & 1u))
            continue;
        if (qt_metric_descs[id].type == QT_MTYPE_F64V && !vs)
            continue;
        qt_jw_key(w, qt_metric_descs[id].name);
        if (qt_metric_descs[id].type == QT_MTYPE_F64V)
            write_stats(w, vs, u->d, true);
        else
            write_stats(w, &u->stats[id], 1, false);
    }
    qt_jw_obj_end(w);
    if (u->rho_std_re && u->rho_std_im) {
        qt_jw_key(w, "rho_std");
        qt_jw_obj_begin(w);
        qt_jw_key(w, "re");
        write_real_matrix(w, u->d, u->rho_std_re);
        qt_jw_key(w, "im");
        write_real_matrix(w, u->d, u->rho_std_im);
        qt_jw_obj_end(w);
    }
    if (u->has_td_bound) {
        qt_jw_key(w, "trace_distance_bound");
        qt_jw_num(w, u->td_bound);
    }
    qt_jw_obj_end(w);
}

static void write_spectral(struct qt_jw *w, const struct qt_result *res)
{
    static const char *const keys[] = {"amplitudes", "phases_pi", "eigenvalues"};

    qt_jw_key(w, "spectral");
    qt_jw_obj_begin(w);
    qt_jw_key(w, "dominant_eigenvalue");
    qt_jw_num(w, res->spectral_dominant);
    for (size_t k = 0; k < 3; k++) {
        qt_jw_key(w, keys[k]);
        qt_jw_arr_begin(w);
        for (size_t i = 0; i < res->d; i++)
            qt_jw_num(w, res->spectral[k * res->d + i]);
        qt_jw_arr_end(w);
    }
    qt_jw_obj_end(w);
}

void qt_record_json(struct qt_jw *w, const struct qt_record_meta *meta, const struct qt_result *res)
{
    qt_jw_obj_begin(w);
    qt_jw_key(w, "sample");
    qt_jw_int(w, (int64_t)meta->sample);
    qt_jw_key(w, "column");
    qt_jw_int(w, (int64_t)meta->column);
    qt_jw_key(w, "method");
    qt_jw_str(w, qt_method_name(res->method));
    qt_jw_key(w, "design");
    qt_jw_str(w, meta->design);
    if (meta->design_id) {
        qt_jw_key(w, "design_id");
        qt_jw_str(w, meta->design_id);
    }
    if (meta->detector) {
        qt_jw_key(w, "detector");
        qt_jw_str(w, meta->detector);
    }
    qt_jw_key(w, "dim");
    qt_jw_int(w, (int64_t)res->d);
    qt_jw_key(w, "status");
    if (res->err) {
        qt_jw_str(w, "error");
        qt_jw_key(w, "error");
        qt_jw_obj_begin(w);
        qt_jw_key(w, "code");
        qt_jw_int(w, qt_status_from_err(res->err));
        qt_jw_key(w, "name");
        qt_jw_str(w, qt_errname(res->err));
        qt_jw_key(w, "message");
        qt_jw_str(w, res->errmsg);
        qt_jw_obj_end(w);
    } else {
        qt_jw_str(w, "ok");
        qt_jw_key(w, "rho");
        write_matrix(w, res->d, res->rho);
        qt_jw_key(w, "metrics");
        write_metrics(w, &res->mt);
        write_flags(w, res->warnings, _QT_WARN_COUNT, qt_warning_name);
        if (res->has_spectral)
            write_spectral(w, res);
        if (meta->unc) {
            qt_jw_key(w, "uncertainty");
            write_uncertainty(w, meta->unc);
        }
    }
    qt_jw_obj_end(w);
}
