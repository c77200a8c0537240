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

static void check_effective(const struct qt_design *des, const struct qt_detector *det)
{
    struct qt_design *eff = NULL, *back = NULL;
    struct qt_diag err;
    char *text = NULL;
    size_t len = 0;

    if (qt_detector_design(des, det, &eff, &err) != 0)
        return; /* refused with a reason (e.g. an effective element that is zero) */
    if (eff->n_groups != 1 || eff->m != des->m || eff->d != des->d)
        abort();
    if (qt_detectorfile_design_json(des, det, &text, &len) != 0)
        abort();
    if (qt_designfile_parse(text, len, &back, &err) != 0 || strcmp(back->id, eff->id) != 0)
        abort();
    free(text);
    qt_design_free(back);
    qt_design_free(eff);
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
