/* proto/SCHEMA.md and the method table in proto/qp.h cannot drift apart: the spec's method
 * headings ("### `name`") must be exactly the table's methods, in the table's order, and each
 * method's section must say whether it is an admin method as the table does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp.h"
#include "qt_test.h"

#ifndef QT_PROTO_SCHEMA
#    define QT_PROTO_SCHEMA "proto/SCHEMA.md"
#endif

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_schema_lists_every_method_in_order(void **state)
{
    char *doc = slurp(QT_PROTO_SCHEMA), *p = doc;
    size_t k = 0;

    (void)state;
    while ((p = strstr(p, "\n### `"))) {
        char *name = p + 6, *end = strchr(name, '`');

        assert_non_null(end);
        if (k >= _QP_M_MAX)
            fail_msg("SCHEMA.md documents a method the table lacks: %.*s", (int)(end - name), name);
        if ((size_t)(end - name) != strlen(qp_methods[k].name) ||
            memcmp(name, qp_methods[k].name, (size_t)(end - name)) != 0)
            fail_msg("SCHEMA.md method %zu is '%.*s', the table has '%s'", k, (int)(end - name),
                     name, qp_methods[k].name);
        /* The section up to the next heading states admin-ness. */
        {
            char *next = strstr(end, "\n#"), saved = 0;
            bool says_admin;

            if (next) {
                saved = *next;
                *next = '\0';
            }
            says_admin = strstr(end, "Admin: yes") != NULL;
            if (next)
                *next = saved;
            if (says_admin != qp_methods[k].admin)
                fail_msg("SCHEMA.md: '%s' must say \"Admin: %s\"", qp_methods[k].name,
                         qp_methods[k].admin ? "yes" : "no");
        }
        k++;
        p = end;
    }
    if (k != _QP_M_MAX)
        fail_msg("SCHEMA.md documents %zu methods, the table has %d", k, _QP_M_MAX);
    free(doc);
}

static void test_method_find(void **state)
{
    (void)state;
    for (int i = 0; i < _QP_M_MAX; i++)
        assert_int_equal(qp_method_find(qp_methods[i].name, strlen(qp_methods[i].name)), i);
    assert_int_equal(qp_method_find("hell", 4), -1);
    assert_int_equal(qp_method_find("hello!", 6), -1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_schema_lists_every_method_in_order),
    cmocka_unit_test(test_method_find),
};

QT_TEST_MAIN(tests)
