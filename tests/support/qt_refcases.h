/* The generated reference cases (refdata generated/cases.json) as the estimator tests read
 * them. */
#pragma once

#include <complex.h>
#include <jansson.h>
#include <stddef.h>

/* Loads the 13 cases (asserts that they are there); json_decref the result. */
json_t *qt_load_cases(void);
/* Row-major {"re": [[...]], "im": [[...]]} into a column-major d x d matrix. */
void qt_matrix_from(json_t *obj, size_t d, double complex *out);
