/* Error bars through the daemon (daemon/qd_boot.c): the cut into units, and units answered in
 * any order reduce to the numbers of one in-process qt_bootstrap call, bit for bit; a unit lost
 * to a crash counts its resamples as failed; a lost point estimate leaves no error bars; rows
 * that do not fit are refused and said. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_bootstrap.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qd_boot.h"
#include "qp.h"
#include "qt_test.h"

static void test_plan(void **state)
{
    uint32_t per, parts;

    (void)state;
    /* N = 1000 over 2 workers: at least two units per worker */
    assert_int_equal(qd_boot_plan(1000, 2, 4, 2, &per, &parts), 0);
    assert_true(parts >= 4 && (uint64_t)per * parts >= 1000 && (uint64_t)per * (parts - 1) < 1000);
    /* few resamples: units of at least 8 (each recomputes the point estimate) */
    assert_int_equal(qd_boot_plan(20, 1, 2, 8, &per, &parts), 0);
    assert_int_equal(per, 8);
    assert_int_equal(parts, 3);
    assert_int_equal(qd_boot_plan(2, 1, 2, 8, &per, &parts), 0);
    assert_int_equal(per, 2);
    assert_int_equal(parts, 1);
    /* rows of one unit stay within QD_BOOT_UNIT_BYTES even at d = 16 with 4 methods */
    assert_int_equal(qd_boot_plan(100000, 4, 16, 1, &per, &parts), -E2BIG);
    assert_int_equal(qd_boot_plan(2000, 4, 16, 1, &per, &parts), 0);
    uint64_t all = 0;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        if (qt_metric_descs[id].type == QT_MTYPE_F64 || qt_metric_descs[id].type == QT_MTYPE_F64V)
            all |= (uint64_t)1 << id;
    assert_true((size_t)per * 4 * qp_boot_stride(all, 16) * 8 <= QD_BOOT_UNIT_BYTES);
    assert_true(per < 2000 && parts > 1);
}

/* One sample (pauli d = 4, linear and mle) and the rows every unit would send. */
struct fixture {
    struct qt_design *des;
    struct qt_ws ws;
    struct qt_result point[2];
    double y[36];
    struct qt_boot_req req;
    struct qt_opts opts;
};

static void fixture_init(struct fixture *f, uint32_t N)
{
    double complex rho[16] = {0};
    struct qt_rng rng;
    enum qt_method m[2] = {QT_METHOD_LINEAR, QT_METHOD_MLE};

    memset(f, 0, sizeof(*f));
    f->ws = (struct qt_ws)QT_WS_INIT;
    assert_int_equal(qt_design_new(QT_DESIGN_PAULI, 4, &f->des, NULL), 0);
    for (size_t i = 0; i < 4; i++)
        rho[i * 5] = 0.25;
    rho[1] = rho[4] = 0.1;
    qt_rng_seed(&rng, 17);
    assert_int_equal(qt_rng_simulate(&rng, f->des, &f->ws, rho, 400, f->y), 0);
    qt_opts_init(&f->opts);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(qt_result_init(&f->point[k], 4), 0);
        assert_int_equal(qt_estimate(f->des, &f->ws, m[k], f->y, 36, &f->opts, &f->point[k]), 0);
    }
    f->req = (struct qt_boot_req){.resamples = N, .kind = QT_RESAMPLE_DATA, .has_seed = true,
                                  .seed = 2024, .confidence = 0.9};
}

static void fixture_done(struct fixture *f)
{
    for (int k = 0; k < 2; k++)
        qt_result_done(&f->point[k]);
    qt_design_free(f->des);
    qt_ws_done(&f->ws);
}

/* The w.result "boot" value of unit u as a worker packs it, unpacked into *obj (zone z). */
static void unit_rows(struct fixture *f, struct qd_boot *b, size_t unit, uint64_t sample,
                      msgpack_sbuffer *sb, msgpack_zone *z, msgpack_object *obj)
{
    struct qp_boot_rows rows[2];
    double *buf[2];
    size_t s;
    uint32_t k0, cnt;
    msgpack_packer pk;
    msgpack_object root;
    struct qt_boot_opts bo = {f->req.resamples, f->req.kind, f->req.seed, sample,
                              f->req.confidence};

    qd_boot_unit_range(b, unit, &s, &k0, &cnt);
    for (int k = 0; k < 2; k++) {
        uint64_t have = qt_boot_have(&f->point[k]);
        size_t stride = qt_boot_stride(have, 4);

        buf[k] = calloc((size_t)cnt * stride, sizeof(double));
        assert_non_null(buf[k]);
        assert_int_equal(qt_boot_run(f->des, &f->ws, f->point[k].method, f->y, &f->opts,
                                     &f->point[k], &bo, have, k0, cnt, buf[k]),
                         0);
        rows[k] = (struct qp_boot_rows){true, have, k0, cnt, buf[k], cnt * stride * 8, true,
                                        k == 0, 0.125};
    }
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    (void)msgpack_pack_map(&pk, 1);
    qp_pack_boot_rows(&pk, rows, 2);
    assert_int_equal(msgpack_unpack(sb->data, sb->size, NULL, z, &root), MSGPACK_UNPACK_SUCCESS);
    *obj = root.via.map.ptr[0].val;
    free(buf[0]);
    free(buf[1]);
}

/* Finishes sample 0 and decodes its uncertainty array into u[2] (has[k]: not nil). */
static void finish(struct qd_boot *b, struct qt_uncertainty *u, bool *has, bool *ok)
{
    const void *res;
    size_t len;
    double us;
    msgpack_sbuffer sb;
    msgpack_zone z;
    msgpack_object o;
    struct qt_diag dg = {0};

    msgpack_sbuffer_init(&sb);
    msgpack_zone_init(&z, 4096);
    assert_int_equal(qd_boot_finish(b, 0, &res, &len, ok, &sb, &us), 0);
    assert_int_equal(msgpack_unpack(sb.data, sb.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o.via.array.size, 2);
    for (int k = 0; k < 2; k++) {
        memset(&u[k], 0, sizeof(u[k]));
        has[k] = o.via.array.ptr[k].type != MSGPACK_OBJECT_NIL;
        if (has[k])
            assert_int_equal(qp_decode_uncertainty(&o.via.array.ptr[k], 4, &u[k], &dg), 0);
    }
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    qd_boot_release(b, 0);
}

static const char point_bytes[] = "\x92\x80\x80"; /* stands for the results array */

/* Units in reverse order give what one qt_bootstrap call gives. */
static void test_units_any_order(void **state)
{
    struct fixture f;
    struct qd_boot *b;
    uint32_t per, parts;
    struct qt_uncertainty u[2], ref;
    bool has[2], ok;

    (void)state;
    fixture_init(&f, 37);
    assert_int_equal(qd_boot_plan(37, 2, 4, 2, &per, &parts), 0);
    assert_true(parts >= 3);
    assert_int_equal(qd_boot_new(&b, 1, &f.req, 2, 4, per, parts), 0);
    for (size_t i = parts; i-- > 0;) {
        msgpack_sbuffer sb;
        msgpack_zone z;
        msgpack_object rows;
        char why[200];

        msgpack_zone_init(&z, 4096);
        unit_rows(&f, b, i, 5, &sb, &z, &rows);
        assert_int_equal(qd_boot_unit(b, i, point_bytes, 3, true, &rows, 10.0, why, sizeof(why)),
                         i == 0 ? 1 : 0);
        assert_string_equal(why, "");
        msgpack_zone_destroy(&z);
        msgpack_sbuffer_destroy(&sb);
    }
    finish(b, u, has, &ok);
    assert_true(ok && has[0] && has[1]);
    for (int k = 0; k < 2; k++) {
        struct qt_boot_opts bo = {37, QT_RESAMPLE_DATA, 2024, 5, 0.9};

        assert_int_equal(qt_bootstrap(f.des, &f.ws, f.point[k].method, f.y, &f.opts, &f.point[k],
                                      &bo, &ref),
                         0);
        assert_int_equal(u[k].resamples, 37);
        assert_int_equal(u[k].failed, 0);
        assert_int_equal(u[k].seed, 2024);
        assert_true(u[k].have == ref.have);
        for (int id = 0; id < _QT_MT_MAX; id++)
            if ((ref.have >> id) & 1u && qt_metric_descs[id].type == QT_MTYPE_F64)
                assert_memory_equal(&u[k].stats[id], &ref.stats[id], sizeof(ref.stats[id]));
        assert_memory_equal(u[k].veig, ref.veig, 4 * sizeof(*ref.veig));
        assert_memory_equal(u[k].rho_std_re, ref.rho_std_re, 16 * sizeof(double));
        assert_memory_equal(u[k].rho_std_im, ref.rho_std_im, 16 * sizeof(double));
        assert_true(u[k].warn & QT_BOOT_WARN_BOUNDARY); /* as unit 0 said */
        assert_int_equal(u[k].has_td_bound, k == 0);
        qt_uncertainty_done(&ref);
        qt_uncertainty_done(&u[k]);
    }
    qd_boot_free(b);
    fixture_done(&f);
}

/* A unit lost to a crash: its resamples are failed ones, said in the map; the rest stand.
 * Rows for the wrong range are refused with a reason. Unit 0 lost: no error bars at all. */
static void test_lost_units(void **state)
{
    struct fixture f;
    struct qd_boot *b;
    uint32_t per, parts, k0, cnt;
    struct qt_uncertainty u[2];
    bool has[2], ok;
    char why[200];
    size_t s;

    (void)state;
    fixture_init(&f, 40);
    assert_int_equal(qd_boot_plan(40, 2, 4, 2, &per, &parts), 0);
    assert_int_equal(qd_boot_new(&b, 1, &f.req, 2, 4, per, parts), 0);
    for (size_t i = 0; i < parts; i++) {
        msgpack_sbuffer sb;
        msgpack_zone z;
        msgpack_object rows;
        int r;

        msgpack_zone_init(&z, 4096);
        /* unit 2 sends the rows of unit 1: wrong range */
        unit_rows(&f, b, i == 2 ? 1 : i, 5, &sb, &z, &rows);
        if (i == 1) /* lost */
            r = qd_boot_unit(b, i, point_bytes, 3, false, NULL, 0.0, why, sizeof(why));
        else
            r = qd_boot_unit(b, i, point_bytes, 3, true, &rows, 0.0, why, sizeof(why));
        assert_int_equal(r, i + 1 == parts ? 1 : 0);
        if (i == 2)
            assert_non_null(strstr(why, "do not fit"));
        msgpack_zone_destroy(&z);
        msgpack_sbuffer_destroy(&sb);
    }
    finish(b, u, has, &ok);
    assert_true(ok && has[0] && has[1]);
    qd_boot_unit_range(b, 1, &s, &k0, &cnt);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(u[k].failed, 2 * cnt);
        assert_true(u[k].warn & QT_BOOT_WARN_FAILED);
        assert_int_equal(u[k].err, 0);
        qt_uncertainty_done(&u[k]);
    }
    qd_boot_free(b);

    /* unit 0 lost: the point estimate of record comes from another unit (all compute the
     * same), unit 0's resamples are failed ones, and the bound (unit 0's) is absent */
    assert_int_equal(qd_boot_new(&b, 1, &f.req, 2, 4, per, parts), 0);
    for (size_t i = 0; i < parts; i++) {
        msgpack_sbuffer sb;
        msgpack_zone z;
        msgpack_object rows;

        msgpack_zone_init(&z, 4096);
        unit_rows(&f, b, i, 5, &sb, &z, &rows);
        int r = qd_boot_unit(b, i, i ? point_bytes : "\x91\x80", i ? 3 : 2, i != 0,
                             i ? &rows : NULL, 0.0, why, sizeof(why));

        assert_int_equal(r, i + 1 == parts ? 1 : 0);
        msgpack_zone_destroy(&z);
        msgpack_sbuffer_destroy(&sb);
    }
    {
        const void *res;
        size_t len;
        double us;
        msgpack_sbuffer sb;

        msgpack_sbuffer_init(&sb);
        assert_int_equal(qd_boot_finish(b, 0, &res, &len, &ok, &sb, &us), 0);
        assert_int_equal(len, 3); /* a unit that ran, not unit 0's error maps */
        msgpack_sbuffer_destroy(&sb);
    }
    finish(b, u, has, &ok);
    assert_true(ok && has[0] && has[1]);
    qd_boot_unit_range(b, 0, &s, &k0, &cnt);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(u[k].failed, cnt);
        assert_false(u[k].has_td_bound);
        qt_uncertainty_done(&u[k]);
    }
    qd_boot_free(b);

    /* every unit lost: the error maps stand, no error bars */
    assert_int_equal(qd_boot_new(&b, 1, &f.req, 2, 4, per, parts), 0);
    for (size_t i = 0; i < parts; i++) {
        int r = qd_boot_unit(b, i, "\x91\x80", 2, false, NULL, 0.0, why, sizeof(why));

        assert_int_equal(r, i + 1 == parts ? 1 : 0);
    }
    finish(b, u, has, &ok);
    assert_false(ok);
    assert_false(has[0] || has[1]);
    qd_boot_free(b);
    fixture_done(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_plan),
    cmocka_unit_test(test_units_any_order),
    cmocka_unit_test(test_lost_units),
};

QT_TEST_MAIN(tests)
