/* Small dense-matrix helpers shared by the numerics modules (column-major double complex). */
#pragma once

#include <complex.h>
#include <stddef.h>

/* dst = (src + src^H) / 2 for d x d matrices: exactly Hermitian, real diagonal. src and dst may
 * alias. */
void qt_mat_hermitise(size_t d, const double complex *src, double complex *dst);
