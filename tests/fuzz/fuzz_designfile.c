/* libFuzzer target for the design-file and target-file parsers. The first byte picks the parser
 * (even: design file; odd: target file for d = 2 + byte % 7), the rest is the file. */
#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_designfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Invariants of every design the parser accepts. */
static void check_design(const struct qt_design *des)
{
    size_t dd = des->d * des->d;

    if (des->kind != QT_DESIGN_CUSTOM || des->d < 2 || des->m < dd || des->rank != dd)
        abort();
    if (strncmp(des->id, "custom-", 7) != 0 || strlen(des->id) != 7 + 32)
        abort();
    if (!(des->cond >= 1.0) || !isfinite(des->cond) || des->n_groups < 1 || des->n_groups > des->m)
        abort();
    for (size_t a = 0; a < des->m; a++)
        if (des->groups[a] >= des->n_groups)
            abort();
}

/* Invariants of every target the parser accepts: unit trace, Hermitian, finite. */
static void check_target(size_t d, const double complex *rho)
{
    double tr = 0.0;

    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            double complex z = rho[i + d * j], diff = z - conj(rho[j + d * i]);

            if (!isfinite(creal(z)) || !isfinite(cimag(z)) || cabs(diff) > 1e-12)
                abort();
        }
    for (size_t i = 0; i < d; i++)
        tr += creal(rho[i + d * i]);
    if (!(fabs(tr - 1.0) <= 1e-6))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qt_diag err;
    const char *text;
    size_t len;

    if (size < 1)
        return 0;
    text = (const char *)data + 1;
    len = size - 1;
    if (data[0] % 2 == 0) {
        struct qt_design *des = NULL;

        if (qt_designfile_parse(text, len, &des, &err) == 0) {
            check_design(des);
            qt_design_free(des);
        } else if (des || memchr(err.msg, '\0', sizeof(err.msg)) == NULL) {
            abort();
        }
    } else {
        size_t d = 2 + (size_t)data[0] % 7;
        double complex rho[64];

        if (qt_targetfile_parse(text, len, d, rho, NULL, &err) == 0)
            check_target(d, rho);
        else if (memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
            abort();
    }
    return 0;
}
