/* Unit tests for the figure geometry of qtomoctl (client/ctl/plot_geom.c), checked from the data:
 * bar heights proportional to values, negative bars going down, back-to-front order, the
 * symmetric diverging colour scale and axis ticks. No pixels. */
#include <math.h>
#include <stdlib.h>

#include "plot_geom.h"
#include "qt_test.h"

static void layout(struct pg_city *c, size_t d, double vmax)
{
    pg_city_layout(c, d, vmax, true, 10, 20, 400, 300);
}

/* The screen height of a bar (base to tip) is proportional to its value, with the sign. */
static void bar_height_proportional(void **state)
{
    struct pg_city c;
    struct pg_bar b1, b2, bn, b0;

    (void)state;
    layout(&c, 4, 0.5);
    pg_city_bar(&c, 1, 2, 0.2, &b1);
    pg_city_bar(&c, 1, 2, 0.4, &b2);
    pg_city_bar(&c, 1, 2, -0.2, &bn);
    pg_city_bar(&c, 1, 2, 0.0, &b0);
    assert_true(b1.base_y - b1.tip_y > 0); /* up the screen */
    qt_assert_close(b2.base_y - b2.tip_y, 2.0 * (b1.base_y - b1.tip_y), 1e-12, 1e-12);
    qt_assert_close(bn.base_y - bn.tip_y, -(b1.base_y - b1.tip_y), 1e-12, 1e-12);
    qt_assert_close(b0.tip_y, b0.base_y, 0, 1e-12);
    /* vmax reaches the layout's full height. */
    pg_city_bar(&c, 1, 2, 0.5, &b2);
    qt_assert_close(b2.base_y - b2.tip_y, c.height, 1e-12, 1e-12);
}

/* A positive bar's top face is above its floor and its sides span floor to top; a negative
 * bar's top face lies on the floor and its sides hang below it. */
static void negative_bars_go_down(void **state)
{
    struct pg_city c;
    struct pg_bar p, n, z;

    (void)state;
    layout(&c, 3, 1.0);
    pg_city_bar(&c, 2, 0, 0.6, &p);
    pg_city_bar(&c, 2, 0, -0.6, &n);
    pg_city_bar(&c, 2, 0, 0.0, &z);
    for (int k = 0; k < 4; k++) {
        /* The top face of the negative bar is the floor cell (the zero bar's top). */
        qt_assert_close(n.top[k][1], z.top[k][1], 0, 1e-9);
        qt_assert_close(n.top[k][0], z.top[k][0], 0, 1e-9);
        assert_true(p.top[k][1] < z.top[k][1]);
    }
    /* Side corners 0, 1 are the bottom, 2, 3 the top. */
    qt_assert_close(p.side_y[1][1], p.base_y, 0, 1e-9);
    qt_assert_close(p.side_y[2][1], p.tip_y, 0, 1e-9);
    qt_assert_close(n.side_y[2][1], n.base_y, 0, 1e-9);
    qt_assert_close(n.side_y[1][1], n.tip_y, 0, 1e-9);
    assert_true(n.side_y[1][1] > n.base_y);
    assert_true(n.side_x[0][1] > n.side_x[3][1]);
}

/* Every bar is listed after each bar behind it (smaller or equal row and column), and bars
 * whose screen boxes overlap are listed in depth order. */
static void painter_order_back_to_front(void **state)
{
    for (size_t d = 1; d <= 9; d++) {
        size_t n = d * d, *order = calloc(n, sizeof(*order)), *pos = calloc(n, sizeof(*pos));
        struct pg_city c;

        (void)state;
        assert_non_null(order);
        assert_non_null(pos);
        for (size_t k = 0; k < n; k++)
            pos[k] = SIZE_MAX;
        pg_city_order(d, order);
        for (size_t k = 0; k < n; k++) {
            assert_true(order[k] < n);
            assert_int_equal(pos[order[k]], SIZE_MAX); /* a permutation */
            pos[order[k]] = k;
        }
        layout(&c, d, 1.0);
        for (size_t a = 0; a < n; a++)
            for (size_t b = 0; b < n; b++) {
                size_t ra = a / d, ca = a % d, rb = b / d, cb = b % d;
                struct pg_bar ba, bb;
                double la, ha, lb, hb;

                if (a == b)
                    continue;
                if (ra <= rb && ca <= cb)
                    assert_true(pos[a] < pos[b]); /* a is behind b */
                /* Same depth (anti-diagonal): no horizontal overlap, so order does not matter. */
                if (ra + ca == rb + cb) {
                    pg_city_bar(&c, ra, ca, 1.0, &ba);
                    pg_city_bar(&c, rb, cb, -1.0, &bb);
                    la = fmin(ba.side_y[0][0], ba.top[0][0]);
                    ha = ba.side_x[0][0];
                    lb = fmin(bb.side_y[0][0], bb.top[0][0]);
                    hb = bb.side_x[0][0];
                    assert_true(ha <= lb + 1e-9 || hb <= la + 1e-9);
                }
            }
        free(order);
        free(pos);
    }
}

/* The whole [-vmax, vmax] range stays inside the layout box, and [0, vmax] when no value is
 * negative. */
static void layout_fits_box(void **state)
{
    struct pg_city c;
    struct pg_bar b;

    (void)state;
    for (int neg = 0; neg <= 1; neg++)
        for (size_t i = 0; i < 5; i++)
            for (size_t j = 0; j < 5; j++)
                for (int s = -neg; s <= 1; s += 2) {
                    pg_city_layout(&c, 5, 0.3, neg, 10, 20, 400, 300);
                    pg_city_bar(&c, i, j, 0.3 * s, &b);
                    for (int k = 0; k < 4; k++) {
                        assert_true(b.side_x[k][0] >= 10 - 1e-9 && b.side_x[k][0] <= 410 + 1e-9);
                        assert_true(b.side_y[k][0] >= 10 - 1e-9);
                        assert_true(b.side_y[k][1] >= 20 - 1e-9 && b.side_y[k][1] <= 320 + 1e-9);
                        assert_true(b.top[k][1] >= 20 - 1e-9);
                    }
                }
}

/* Colour scale: white at 0, mirror images for opposite values, monotone saturation, clamping,
 * and a symmetric limit taken from the largest |value|. */
static void colour_scale_symmetric(void **state)
{
    double vals[] = {0.1, -0.7, 0.3, NAN, 0.0};
    struct pg_rgb w = pg_diverging(0, 1), prev = w;

    (void)state;
    qt_assert_close(pg_sym_limit(vals, 5), 0.7, 0, 1e-15);
    assert_true(pg_sym_limit(vals + 4, 1) > 0);
    qt_assert_close(w.r, 1, 0, 1e-15);
    qt_assert_close(w.g, 1, 0, 1e-15);
    qt_assert_close(w.b, 1, 0, 1e-15);
    for (int k = 1; k <= 10; k++) {
        double v = 0.07 * k;
        struct pg_rgb p = pg_diverging(v, 0.7), n = pg_diverging(-v, 0.7);

        qt_assert_close(p.r, n.b, 0, 1e-12);
        qt_assert_close(p.g, n.g, 0, 1e-12);
        qt_assert_close(p.b, n.r, 0, 1e-12);
        assert_true(p.r > p.b);    /* positive is red */
        assert_true(n.b > n.r);    /* negative is blue */
        assert_true(p.g < prev.g); /* more saturated as |v| grows */
        prev = p;
    }
    {
        struct pg_rgb a = pg_diverging(5, 0.7), b = pg_diverging(0.7, 0.7);

        qt_assert_close(a.r, b.r, 0, 1e-15);
        qt_assert_close(a.g, b.g, 0, 1e-15);
    }
}

static void ticks_nice(void **state)
{
    double t[10];
    size_t n;

    (void)state;
    n = pg_ticks(0, 1, t, 6);
    assert_true(n >= 2 && n <= 6);
    qt_assert_close(t[0], 0, 0, 1e-12);
    qt_assert_close(t[n - 1], 1, 0, 1e-12);
    n = pg_ticks(-0.37, 0.52, t, 6);
    assert_true(n >= 2 && n <= 6);
    for (size_t k = 0; k < n; k++)
        assert_true(t[k] >= -0.37 && t[k] <= 0.52);
    assert_int_equal(pg_ticks(1, 1, t, 6), 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bar_height_proportional),     cmocka_unit_test(negative_bars_go_down),
        cmocka_unit_test(painter_order_back_to_front), cmocka_unit_test(layout_fits_box),
        cmocka_unit_test(colour_scale_symmetric),      cmocka_unit_test(ticks_nice),
    };

    return qt_test_main(argc, argv, __FILE__, tests, sizeof(tests) / sizeof(tests[0]));
}
