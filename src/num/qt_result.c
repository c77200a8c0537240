/* Method and warning names, the estimator options' defaults, the metric table, and result
 * records (qt_result.h). No numerics: this file is part of qtomo_rec. */
#include "qt_result.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const method_names[_QT_METHOD_MAX] = {"linear", "mle", "wls", "rhor"};

static const char *const warning_names[_QT_WARN_COUNT] = {
    "negative_input", "negative_eigenvalues_clipped", "not_converged"};

#define QT_MT_DESC_F64(f)  QT_MTYPE_F64, offsetof(struct qt_metrics, f), 0
#define QT_MT_DESC_I64(f)  QT_MTYPE_I64, offsetof(struct qt_metrics, f), 0
#define QT_MT_DESC_BOOL(f) QT_MTYPE_BOOL, offsetof(struct qt_metrics, f), 0
#define QT_MT_DESC_STR(f)  QT_MTYPE_STR, offsetof(struct qt_metrics, f), 0
#define QT_MT_DESC_F64V(f) \
    QT_MTYPE_F64V, offsetof(struct qt_metrics, f), offsetof(struct qt_metrics, f##_n)
#define QT_MT_DESC_(E, f, t) [QT_MT_##E] = {#f, QT_MT_DESC_##t(f)},

const struct qt_metric_desc qt_metric_descs[_QT_MT_MAX] = {QT_METRICS(QT_MT_DESC_)};

int qt_method_from_name(const char *name)
{
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (name && strcasecmp(name, method_names[m]) == 0)
            return m;
    return QT_EMETHOD;
}

int qt_metric_from_name(const char *name)
{
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (strcmp(qt_metric_descs[i].name, name) == 0)
            return i;
    return -1;
}

const char *qt_method_name(enum qt_method m)
{
    return (unsigned)m < _QT_METHOD_MAX ? method_names[m] : "unknown";
}

const char *qt_warning_name(unsigned i)
{
    return i < _QT_WARN_COUNT ? warning_names[i] : "unknown";
}

void qt_opts_init(struct qt_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->tolerance = 1e-9;
    o->metrics = QT_MG_ALL;
    o->physical = QT_PHYS_CLIP;
    o->mle.gap_tol = 1e-10;
    o->mle.max_iterations = 500;
    o->wls.max_iterations = 2000;
    o->wls.ftol = 1e-9;
    o->wls.gtol = 1e-9;
    o->wls.min_expected_clip = 1e-12;
    o->rhor.max_iterations = 5000;
    o->rhor.tol_state = 1e-8;
    o->rhor.tol_ll = 1e-9;
    o->rhor.eps_prob = 1e-12;
    o->rhor.eig_rel_thresh = 1e-10;
    o->rhor.eig_abs_thresh = 0.0;
    o->rhor.use_diluted = false;
    o->rhor.diluted_mu = 0.9;
    o->rhor.warm_start = false;
}

int qt_result_init(struct qt_result *res, size_t d)
{
    memset(res, 0, sizeof(*res));
    res->rho = calloc(d * d, sizeof(double complex));
    res->eigenvalues = calloc(d, sizeof(double));
    res->bell = calloc(d, sizeof(double));
    res->spectral = calloc(3 * d, sizeof(double));
    if (!res->rho || !res->eigenvalues || !res->bell || !res->spectral) {
        qt_result_done(res);
        return -ENOMEM;
    }
    res->cap = d;
    res->d = d;
    return 0;
}

void qt_result_reset(struct qt_result *res, enum qt_method method)
{
    res->method = method;
    res->err = 0;
    res->errmsg[0] = '\0';
    res->warnings = 0;
    res->has_spectral = false;
    res->spectral_dominant = 0.0;
    memset(&res->mt, 0, sizeof(res->mt));
}

void qt_result_done(struct qt_result *res)
{
    if (!res)
        return;
    free(res->rho);
    free(res->eigenvalues);
    free(res->bell);
    free(res->spectral);
    res->spectral = NULL;
    res->rho = NULL;
    res->eigenvalues = NULL;
    res->bell = NULL;
    res->cap = 0;
}

int qt_result_fail(struct qt_result *res, int err, const char *fmt, ...)
{
    va_list ap;

    res->err = err;
    va_start(ap, fmt);
    (void)vsnprintf(res->errmsg, sizeof(res->errmsg), fmt, ap);
    va_end(ap);
    return err;
}
