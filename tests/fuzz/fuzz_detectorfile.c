/* libFuzzer target for the detector-file parser. The first byte picks the design the file is
 * checked against (mub d = 2, pauli d = 2, pauli d = 4, nopovm d = 2, by byte % 4), the rest is
 * the file. An accepted model must be valid, and its effective design, when it builds, must come
 * back from its design file with the same id. */
#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "num/qt_detector.h"
#include "num/qt_design.h"
#include "base/qt_ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_model(const struct qt_detector *det)
{
    for (size_t a = 0; a < det->m; a++)
        if (!(det->eff[a] > 0.0) || !isfinite(det->eff[a]) || !(det->bg[a] >= 0.0) ||
            !isfinite(det->bg[a]))
            abort();
    for (size_t g = 0; g < det->n_groups; g++) {
        size_t k = det->gk[g];

        if (!(det->intensity[g] > 0.0) || !isfinite(det->intensity[g]))
            abort();
        for (size_t b = 0; b < k; b++) {
            double s = 0.0;

            for (size_t a = 0; a < k; a++)
                s += det->cross[det->goff[g] + a + k * b];
            if (!(fabs(s - 1.0) <= 1e-8))
                abort();
        }
    }
    if (strncmp(det->id, "det-", 4) != 0 || strlen(det->id) != 4 + 32)
        abort();
}

/* The effective design's map (structured for pauli and mub bases) is that of its elements. */
static void check_effective(const struct qt_design *des, const struct qt_detector *det)
{
    struct qt_design *eff = NULL, *dense = NULL;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_diag err;
    size_t d = des->d, m = des->m;
    double complex *E = malloc(m * d * d * sizeof(*E)), rho[16 * 16] = {0};
    double *q = malloc(2 * m * sizeof(double)), scale = 0.0;

    if (!E || !q)
        abort();
    if (qt_detector_design(des, det, &eff, &err) != 0)
        goto out; /* refused with a reason (e.g. an effective element that is zero) */
    if (eff->n_groups != 1 || eff->m != des->m || eff->d != des->d ||
        (eff->mix_base != NULL) != (des->kind == QT_DESIGN_PAULI || des->kind == QT_DESIGN_MUB))
        abort();
    struct qt_custom_spec spec = {.d = d, .m = m, .elems = E};
    if (qt_detector_elements(des, det, E) != 0 || qt_design_new_custom(&spec, &dense, &err) != 0)
        abort();
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] = 1.0 / (double)d;
    if (qt_design_forward(eff, &ws, rho, q) != 0 || qt_design_forward(dense, &ws, rho, q + m) != 0)
        abort();
    for (size_t a = 0; a < m; a++)
        scale = fmax(scale, fabs(q[m + a]));
    for (size_t a = 0; a < m; a++)
        if (!(fabs(q[a] - q[m + a]) <= 1e-12 * scale))
            abort();
out:
    qt_design_free(dense);
    qt_design_free(eff);
    qt_ws_done(&ws);
    free(E);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct qt_design *designs[4];

    static const enum qt_design_kind kinds[4] = {QT_DESIGN_MUB, QT_DESIGN_PAULI, QT_DESIGN_PAULI,
                                                 QT_DESIGN_NOPOVM};

    static const size_t dims[4] = {2, 2, 4, 2};
    struct qt_detector *det = NULL;
    struct qt_diag err;
    unsigned pick;

    if (size < 1)
        return 0;
    pick = data[0] % 4;
    if (!designs[pick] && qt_design_new(kinds[pick], dims[pick], &designs[pick], &err) != 0)
        abort();
    if (qt_detectorfile_parse((const char *)data + 1, size - 1, designs[pick], &det, &err) == 0) {
        check_model(det);
        check_effective(designs[pick], det);
        qt_detector_free(det);
    } else if (!err.msg[0] || det) {
        abort(); /* every refusal says why, and leaves the output alone */
    }
    return 0;
}
