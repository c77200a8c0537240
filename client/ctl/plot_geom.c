/* Geometry of qtomoctl's figures: cityscape projection, painter's order, diverging colours and
 * axis ticks. No drawing library here (plot_draw.c draws what these functions compute). */
#include "plot_geom.h"

#include <math.h>
#include <stdlib.h>

#define COS30            0.86602540378443865 /* the floor axes point 30 degrees below the horizontal */
#define SIN30            0.5
#define HEIGHT_PER_FLOOR 0.6 /* bar height of vmax, in units of the floor's screen depth */

void pg_city_layout(struct pg_city *c, size_t d, double vmax, bool negative, double x0, double y0,
                    double w, double h)
{
    double dd = (double)(d ? d : 1);
    double span_u = 2.0 * COS30 * dd; /* floor width per unit */
    double span_v = dd * 2.0 * SIN30 * (1.0 + (negative ? 2.0 : 1.0) * HEIGHT_PER_FLOOR);

    c->d = d;
    c->vmax = vmax > 1e-12 ? vmax : 1e-12;
    c->unit = fmin(w / span_u, h / span_v);
    c->height = HEIGHT_PER_FLOOR * dd * 2.0 * SIN30 * c->unit;
    c->cx = x0 + w / 2.0;
    c->cy = y0 + (h - span_v * c->unit) / 2.0 + c->height;
    c->width = 0.7;
}

void pg_city_project(const struct pg_city *c, double x, double y, double z, double *ret_u,
                     double *ret_v)
{
    *ret_u = c->cx + (x - y) * COS30 * c->unit;
    *ret_v = c->cy + (x + y) * SIN30 * c->unit - z / c->vmax * c->height;
}

static void quad(const struct pg_city *c, double q[4][2], const double p[4][3])
{
    for (int k = 0; k < 4; k++)
        pg_city_project(c, p[k][0], p[k][1], p[k][2], &q[k][0], &q[k][1]);
}

void pg_city_bar(const struct pg_city *c, size_t row, size_t col, double value, struct pg_bar *b)
{
    double gap = (1.0 - c->width) / 2.0;
    double x0 = (double)col + gap, x1 = x0 + c->width;
    double y0 = (double)row + gap, y1 = y0 + c->width;
    double zt = value > 0 ? value : 0, zb = value < 0 ? value : 0, u;

    b->row = row;
    b->col = col;
    b->value = value;
    quad(c, b->top, (const double[4][3]){{x0, y0, zt}, {x1, y0, zt}, {x1, y1, zt}, {x0, y1, zt}});
    quad(c, b->side_x,
         (const double[4][3]){{x1, y0, zb}, {x1, y1, zb}, {x1, y1, zt}, {x1, y0, zt}});
    quad(c, b->side_y,
         (const double[4][3]){{x0, y1, zb}, {x1, y1, zb}, {x1, y1, zt}, {x0, y1, zt}});
    pg_city_project(c, x1, y1, 0, &u, &b->base_y);
    pg_city_project(c, x1, y1, value, &u, &b->tip_y);
}

void pg_city_order(size_t d, size_t *order)
{
    /* A bar can only be hidden by bars at larger row or column (nearer the viewer), so listing
     * the anti-diagonals row + col = 0, 1, ..., 2d - 2 in turn is back to front. Bars on one
     * anti-diagonal do not overlap on screen while the bar width is below a cell. */
    size_t k = 0;

    for (size_t s = 0; d && s + 1 < 2 * d; s++)
        for (size_t i = 0; i < d; i++)
            if (s >= i && s - i < d)
                order[k++] = i * d + (s - i);
}

double pg_sym_limit(const double *v, size_t n)
{
    double m = 1e-12;

    for (size_t k = 0; k < n; k++)
        if (isfinite(v[k]) && fabs(v[k]) > m)
            m = fabs(v[k]);
    return m;
}

struct pg_rgb pg_diverging(double v, double vmax)
{
    /* White at 0, a red (0.70, 0.09, 0.17) at +vmax and its mirror image, the blue with red and
     * blue swapped, at -vmax: opposite values get mirror-image colours of equal lightness. */
    static const struct pg_rgb pos = {0.70, 0.09, 0.17}, neg = {0.17, 0.09, 0.70};
    double t = vmax > 0 && isfinite(v) ? v / vmax : 0.0;
    const struct pg_rgb *end = t < 0 ? &neg : &pos;

    t = fmin(fabs(t), 1.0);
    return (struct pg_rgb){1.0 + t * (end->r - 1.0), 1.0 + t * (end->g - 1.0),
                           1.0 + t * (end->b - 1.0)};
}

size_t pg_ticks(double lo, double hi, double *ticks, size_t max_ticks)
{
    double span, step, mag, first;
    size_t n = 0;

    if (max_ticks < 2 || !(hi > lo) || !isfinite(lo) || !isfinite(hi)) {
        if (max_ticks >= 1)
            ticks[n++] = lo;
        return n;
    }
    span = hi - lo;
    mag = pow(10.0, floor(log10(span / (double)(max_ticks - 1))));
    step = mag;
    for (int k = 0; k < 4 && span / step > (double)(max_ticks - 1); k++)
        step = mag * (double[]){2, 5, 10, 20}[k];
    first = ceil(lo / step - 1e-9) * step;
    for (double t = first; t <= hi + step * 1e-9 && n < max_ticks; t += step)
        ticks[n++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    return n;
}
