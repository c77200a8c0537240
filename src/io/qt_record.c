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
        if (res->warnings) {
            qt_jw_key(w, "warnings");
            qt_jw_arr_begin(w);
            for (unsigned i = 0; i < _QT_WARN_COUNT; i++)
                if (res->warnings & (1u << i))
                    qt_jw_str(w, qt_warning_name(i));
            qt_jw_arr_end(w);
        }
    }
    qt_jw_obj_end(w);
}
