/* Small dense-matrix helpers shared by the numerics modules. */
#include "qt_mat.h"

void qt_mat_hermitise(size_t d, const double complex *src, double complex *dst)
{
    for (size_t j = 0; j < d; j++) {
        dst[j + d * j] = creal(src[j + d * j]);
        for (size_t i = j + 1; i < d; i++) {
            double complex z = 0.5 * (src[i + d * j] + conj(src[j + d * i]));

            dst[i + d * j] = z;
            dst[j + d * i] = conj(z);
        }
    }
}
