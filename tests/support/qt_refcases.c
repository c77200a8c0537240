#include "qt_refcases.h"

#include "qt_test.h"

json_t *qt_load_cases(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(qt_refdata("generated/cases.json"), 0, &jerr);

    assert_non_null(root);
    assert_int_equal(json_array_size(root), 13);
    return root;
}

void qt_matrix_from(json_t *obj, size_t d, double complex *out)
{
    json_t *re = json_object_get(obj, "re"), *im = json_object_get(obj, "im");

    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            out[i + d * j] = json_real_value(json_array_get(json_array_get(re, i), j)) +
                             I * json_real_value(json_array_get(json_array_get(im, i), j));
}
