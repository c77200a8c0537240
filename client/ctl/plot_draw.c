/* qtomoctl's figures, drawn with cairo (SVG, PDF and PNG from the same code, anti-aliased, with
 * text). The geometry (bar faces, painter's order, colours, ticks) is
 * in plot_geom.c. */
#include "plot_draw.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_geom.h"

typedef void (*paint_fn)(cairo_t *cr, double w, double h, const void *arg);

#define PNG_SCALE 2.0 /* PNG pixels per SVG unit, for sharp figures on high-density screens */

#define QT_NCOLOURS 6
static const struct pg_rgb series_colours[QT_NCOLOURS] = {
    {0.12, 0.47, 0.71}, {0.85, 0.37, 0.01}, {0.17, 0.63, 0.17},
    {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
};

static int finish_file(const char *tmp, const char *dst, cairo_status_t st)
{
    if (st != CAIRO_STATUS_SUCCESS) {
        (void)remove(tmp);
        return st == CAIRO_STATUS_NO_MEMORY ? -ENOMEM : -EIO;
    }
    if (rename(tmp, dst) != 0) {
        int r = -errno;

        (void)remove(tmp);
        return r;
    }
    return 0;
}

/* Paints one figure into a vector surface (SVG or PDF) written to BASE.ext via a temporary file. */
static int render_vector(const char *base, const char *ext, double w, double h, paint_fn paint,
                         const void *arg)
{
    char tmp[4096 + 8], dst[4096];
    cairo_surface_t *s;
    cairo_t *cr;
    cairo_status_t st;

    if ((size_t)snprintf(dst, sizeof(dst), "%s.%s", base, ext) >= sizeof(dst))
        return -ENAMETOOLONG;
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    s = ext[0] == 's' ? cairo_svg_surface_create(tmp, w, h) : cairo_pdf_surface_create(tmp, w, h);
    cr = cairo_create(s);
    paint(cr, w, h, arg);
    st = cairo_status(cr); /* a drawing error (bad text) leaves the figure blank: say so */
    cairo_destroy(cr);
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    return finish_file(tmp, dst, st);
}

/* Paints one figure into BASE.svg, BASE.pdf and BASE.png, each through a temporary file. */
static int render(const char *base, double w, double h, paint_fn paint, const void *arg)
{
    char tmp[4096 + 8], dst[4096];
    cairo_surface_t *s;
    cairo_t *cr;
    cairo_status_t st;
    int r;

    r = render_vector(base, "svg", w, h, paint, arg);
    if (r == 0)
        r = render_vector(base, "pdf", w, h, paint, arg);
    if (r < 0)
        return r;
    if ((size_t)snprintf(dst, sizeof(dst), "%s.png", base) >= sizeof(dst))
        return -ENAMETOOLONG;
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)(w * PNG_SCALE), (int)(h * PNG_SCALE));
    cr = cairo_create(s);
    cairo_scale(cr, PNG_SCALE, PNG_SCALE);
    paint(cr, w, h, arg);
    st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(s, tmp);
    cairo_surface_destroy(s);
    return finish_file(tmp, dst, st);
}

static void set_rgb(cairo_t *cr, struct pg_rgb c, double shade)
{
    cairo_set_source_rgb(cr, c.r * shade, c.g * shade, c.b * shade);
}

static void background(cairo_t *cr)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

/* Text with its anchor: ax = 0 left, 0.5 centre, 1 right; ay likewise from the top. */
static void text(cairo_t *cr, double x, double y, double size, double ax, double ay, const char *s)
{
    cairo_text_extents_t e;

    cairo_set_font_size(cr, size);
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - e.width * ax - e.x_bearing, y - e.height * ay - e.y_bearing);
    cairo_show_text(cr, s);
}

static void title(cairo_t *cr, double w, const char *s)
{
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, w / 2, 12, 15, 0.5, 0, s);
}

static void poly(cairo_t *cr, const double q[4][2])
{
    cairo_move_to(cr, q[0][0], q[0][1]);
    for (int k = 1; k < 4; k++)
        cairo_line_to(cr, q[k][0], q[k][1]);
    cairo_close_path(cr);
}

static void face(cairo_t *cr, const double q[4][2], struct pg_rgb c, double shade)
{
    poly(cr, q);
    set_rgb(cr, c, shade);
    cairo_fill_preserve(cr);
    cairo_set_source_rgba(cr, 0, 0, 0, 0.45);
    cairo_set_line_width(cr, 0.6);
    cairo_stroke(cr);
}

/* A vertical colour bar for [-vmax, vmax] at (x, y), size bw x bh, with tick labels. */
static void colour_bar(cairo_t *cr, double x, double y, double bw, double bh, double vmax)
{
    double ticks[7];
    size_t n;
    char buf[32];

    for (int k = 0; k < 64; k++) {
        double v = vmax * (1.0 - 2.0 * (k + 0.5) / 64.0);

        set_rgb(cr, pg_diverging(v, vmax), 1.0);
        cairo_rectangle(cr, x, y + bh * k / 64.0, bw, bh / 64.0 + 0.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x, y, bw, bh);
    cairo_stroke(cr);
    n = pg_ticks(-vmax, vmax, ticks, 7);
    for (size_t k = 0; k < n; k++) {
        double ty = y + bh * (vmax - ticks[k]) / (2 * vmax);

        cairo_move_to(cr, x + bw, ty);
        cairo_line_to(cr, x + bw + 4, ty);
        cairo_stroke(cr);
        (void)snprintf(buf, sizeof(buf), "%.3g", ticks[k]);
        text(cr, x + bw + 6, ty, 10, 0, 0.5, buf);
    }
}

static const struct pg_rgb bar_pos = {0.85, 0.33, 0.25}, bar_neg = {0.25, 0.45, 0.85},
                           bar_zero = {0.85, 0.85, 0.85};

/* The floor grid and, along its two front edges, row and column labels: every step-th for large
 * d (at most 8), a little away from the edge so that hanging bars do not cover them. */
static void city_floor(cairo_t *cr, const struct pg_city *c, bool labels)
{
    double d = (double)c->d, u, v, u2, v2;
    char buf[32];

    cairo_set_source_rgba(cr, 0, 0, 0, 0.25);
    cairo_set_line_width(cr, 0.6);
    for (size_t k = 0; k <= c->d && !labels; k++) {
        pg_city_project(c, (double)k, 0, 0, &u, &v);
        pg_city_project(c, (double)k, d, 0, &u2, &v2);
        cairo_move_to(cr, u, v);
        cairo_line_to(cr, u2, v2);
        pg_city_project(c, 0, (double)k, 0, &u, &v);
        pg_city_project(c, d, (double)k, 0, &u2, &v2);
        cairo_move_to(cr, u, v);
        cairo_line_to(cr, u2, v2);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    for (size_t k = 0, step = (c->d + 7) / 8; k < c->d && labels; k += step) {
        (void)snprintf(buf, sizeof(buf), "%zu", k);
        pg_city_project(c, d + 0.5, (double)k + 0.5, 0, &u, &v);
        text(cr, u + 4, v, 9, 0, 0.5, buf);
        pg_city_project(c, (double)k + 0.5, d + 0.5, 0, &u, &v);
        text(cr, u - 4, v, 9, 1, 0.5, buf);
    }
    if (labels) {
        pg_city_project(c, d + 1.5, d / 2, 0, &u, &v);
        text(cr, u + 10, v + 10, 10, 0, 0.5, "row");
        pg_city_project(c, d / 2, d + 1.5, 0, &u, &v);
        text(cr, u - 10, v + 10, 10, 1, 0.5, "column");
    }
}

/* Legend at the top right: bar colours and the |value| of full height. */
static void city_legend(cairo_t *cr, double w, double vmax)
{
    char buf[32];

    set_rgb(cr, bar_pos, 1);
    cairo_rectangle(cr, w - 105, 50, 10, 10);
    cairo_fill(cr);
    set_rgb(cr, bar_neg, 1);
    cairo_rectangle(cr, w - 105, 66, 10, 10);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text(cr, w - 91, 55, 10, 0, 0.5, "> 0");
    text(cr, w - 91, 71, 10, 0, 0.5, "< 0");
    (void)snprintf(buf, sizeof(buf), "max |v| %.3g", vmax);
    text(cr, w - 105, 88, 10, 0, 0.5, buf);
}

static void paint_city(cairo_t *cr, double w, double h, const void *arg)
{
    const struct pd_matrix *mx = arg;
    size_t d = mx->d, *order = calloc(d * d, sizeof(*order));
    bool negative = false;
    struct pg_city c;
    struct pg_bar b;

    background(cr);
    title(cr, w, mx->title);
    if (!order)
        return;
    for (size_t k = 0; k < d * d; k++)
        negative |= mx->m[k] < -1e-12 * mx->vmax;
    pg_city_layout(&c, d, mx->vmax, negative, 20, 40, w - 130, h - 60);
    city_floor(cr, &c, false);
    /* The bars back to front, each with its two visible sides and its top. */
    pg_city_order(d, order);
    for (size_t k = 0; k < d * d; k++) {
        size_t i = order[k] / d, j = order[k] % d;
        bool zero;

        pg_city_bar(&c, i, j, mx->m[i * d + j], &b);
        zero = fabs(b.value) <= 1e-12 * c.vmax; /* an exact zero (Im of a diagonal) */
        if (!zero) {
            face(cr, b.side_x, b.value < 0 ? bar_neg : bar_pos, 0.72);
            face(cr, b.side_y, b.value < 0 ? bar_neg : bar_pos, 0.86);
        }
        face(cr, b.top, zero ? bar_zero : b.value < 0 ? bar_neg : bar_pos, 1.0);
    }
    city_floor(cr, &c, true);
    city_legend(cr, w, c.vmax);
    free(order);
}

static void paint_heat(cairo_t *cr, double w, double h, const void *arg)
{
    const struct pd_matrix *mx = arg;
    size_t d = mx->d;
    double side = fmin(w - 140, h - 70), cell = side / (double)d, x0 = 40, y0 = 45;
    char buf[32];

    background(cr);
    title(cr, w, mx->title);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            set_rgb(cr, pg_diverging(mx->m[i * d + j], mx->vmax), 1.0);
            cairo_rectangle(cr, x0 + cell * (double)j, y0 + cell * (double)i, cell + 0.3,
                            cell + 0.3);
            cairo_fill(cr);
        }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x0, y0, side, side);
    cairo_stroke(cr);
    for (size_t k = 0; k < d && d <= 16; k++) {
        (void)snprintf(buf, sizeof(buf), "%zu", k);
        text(cr, x0 + cell * ((double)k + 0.5), y0 - 3, 9, 0.5, 1, buf);
        text(cr, x0 - 4, y0 + cell * ((double)k + 0.5), 9, 1, 0.5, buf);
    }
    if (d <= 8) /* values in the cells when they fit */
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++) {
                double v = mx->m[i * d + j];

                cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                if (fabs(v) > 0.6 * mx->vmax)
                    cairo_set_source_rgb(cr, 1, 1, 1);
                (void)snprintf(buf, sizeof(buf), "%.3f", v);
                text(cr, x0 + cell * ((double)j + 0.5), y0 + cell * ((double)i + 0.5),
                     fmin(11, cell / 4.5), 0.5, 0.5, buf);
            }
    colour_bar(cr, x0 + side + 25, y0, 16, side, mx->vmax);
}

/* Plot frame: data range [xl, xh] x [yl, yh] mapped into the box; draws axes and ticks. */
struct frame {
    double x0, y0, w, h, xl, xh, yl, yh;
};

static double fx(const struct frame *f, double x)
{
    return f->x0 + (x - f->xl) / (f->xh - f->xl) * f->w;
}

static double fy(const struct frame *f, double y)
{
    return f->y0 + f->h - (y - f->yl) / (f->yh - f->yl) * f->h;
}

static void axes(cairo_t *cr, const struct frame *f, const char *xlabel, const char *ylabel,
                 int integer_x)
{
    double t[8];
    size_t n;
    char buf[32];

    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    n = pg_ticks(f->yl, f->yh, t, 7);
    for (size_t k = 0; k < n; k++) {
        cairo_set_source_rgba(cr, 0, 0, 0, 0.12);
        cairo_move_to(cr, f->x0, fy(f, t[k]));
        cairo_line_to(cr, f->x0 + f->w, fy(f, t[k]));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        (void)snprintf(buf, sizeof(buf), "%.4g", t[k]);
        text(cr, f->x0 - 5, fy(f, t[k]), 10, 1, 0.5, buf);
    }
    n = pg_ticks(f->xl, f->xh, t, 8);
    for (size_t k = 0; k < n; k++) {
        if (integer_x && fabs(t[k] - round(t[k])) > 1e-9)
            continue;
        cairo_move_to(cr, fx(f, t[k]), f->y0 + f->h);
        cairo_line_to(cr, fx(f, t[k]), f->y0 + f->h + 4);
        cairo_stroke(cr);
        (void)snprintf(buf, sizeof(buf), "%.6g", t[k]);
        text(cr, fx(f, t[k]), f->y0 + f->h + 7, 10, 0.5, 0, buf);
    }
    text(cr, f->x0 + f->w / 2, f->y0 + f->h + 24, 11, 0.5, 0, xlabel);
    cairo_save(cr);
    cairo_translate(cr, 14, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, 11, 0.5, 0.5, ylabel);
    cairo_restore(cr);
}

static void legend(cairo_t *cr, double x, double y, const char *const *names, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        set_rgb(cr, series_colours[k % QT_NCOLOURS], 1);
        cairo_rectangle(cr, x, y + 14.0 * (double)k, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, x + 14, y + 14.0 * (double)k + 5, 10, 0, 0.5, names[k]);
    }
}

struct metric_arg {
    const char *title, *ylabel;
    const struct pd_series *s;
    size_t ns;
};

static void grow(double v, double *lo, double *hi)
{
    if (isfinite(v)) {
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
    }
}

/* The data range of the series (values and intervals), padded. */
static void metric_range(const struct metric_arg *a, struct frame *f)
{
    double pad;

    for (size_t i = 0; i < a->ns; i++)
        for (size_t k = 0; k < a->s[i].n; k++) {
            if (!isfinite(a->s[i].y[k]))
                continue;
            grow(a->s[i].x[k], &f->xl, &f->xh);
            grow(a->s[i].y[k], &f->yl, &f->yh);
            if (a->s[i].lo)
                grow(a->s[i].lo[k], &f->yl, &f->yh);
            if (a->s[i].hi)
                grow(a->s[i].hi[k], &f->yl, &f->yh);
        }
    if (!(f->xh >= f->xl)) {
        f->xl = f->yl = 0;
        f->xh = f->yh = 1;
    }
    pad = fmax(f->yh - f->yl, 1e-3) * 0.08;
    f->yl -= pad;
    f->yh += pad;
    f->xl -= 0.5;
    f->xh += 0.5;
}

static void paint_metric(cairo_t *cr, double w, double h, const void *arg)
{
    const struct metric_arg *a = arg;
    struct frame f = {60, 40, w - 170, h - 90, INFINITY, -INFINITY, INFINITY, -INFINITY};
    const char *names[16];

    background(cr);
    title(cr, w, a->title);
    metric_range(a, &f);
    axes(cr, &f, "sample", a->ylabel, 1);
    cairo_save(cr);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_clip(cr);
    for (size_t i = 0; i < a->ns; i++) {
        const struct pd_series *s = &a->s[i];
        struct pg_rgb c = series_colours[i % QT_NCOLOURS];
        /* Markers shrink and error bars thin out as the run grows, so 10,000 samples stay
         * readable (and the SVG stays small: one path per series). */
        double r = s->n > 200 ? 1.2 : 2.6;

        cairo_set_source_rgba(cr, c.r, c.g, c.b, s->n > 200 ? 0.35 : 0.8);
        cairo_set_line_width(cr, s->n > 200 ? 0.5 : 1.0);
        for (size_t k = 0; s->lo && s->hi && k < s->n; k++) {
            if (!isfinite(s->lo[k]) || !isfinite(s->hi[k]) || !isfinite(s->y[k]))
                continue;
            cairo_move_to(cr, fx(&f, s->x[k]), fy(&f, s->lo[k]));
            cairo_line_to(cr, fx(&f, s->x[k]), fy(&f, s->hi[k]));
        }
        cairo_stroke(cr);
        set_rgb(cr, c, 1);
        for (size_t k = 0; k < s->n; k++) {
            if (!isfinite(s->y[k]))
                continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, fx(&f, s->x[k]), fy(&f, s->y[k]), r, 0, 2 * M_PI);
        }
        cairo_fill(cr);
        names[i < 16 ? i : 15] = s->name;
    }
    cairo_restore(cr);
    legend(cr, f.x0 + f.w + 12, f.y0, names, a->ns < 16 ? a->ns : 16);
}

int pd_metric(const char *base, const char *ttl, const char *ylabel, const struct pd_series *s,
              size_t ns)
{
    struct metric_arg a = {ttl, ylabel, s, ns};

    return render(base, 720, 400, paint_metric, &a);
}

struct spectra_arg {
    const char *title;
    const struct pd_spectra *s;
    size_t ns;
};

static void paint_spectra(cairo_t *cr, double w, double h, const void *arg)
{
    const struct spectra_arg *a = arg;
    struct frame f = {60, 40, w - 170, h - 90, 0.7, 1.3, 0, 1};
    const char *names[16];
    size_t dmax = 1;

    background(cr);
    title(cr, w, a->title);
    for (size_t i = 0; i < a->ns; i++) {
        if (a->s[i].d > dmax)
            dmax = a->s[i].d;
        for (size_t k = 0; k < a->s[i].n * a->s[i].d; k++)
            grow(a->s[i].eig[k], &f.yl, &f.yh);
    }
    f.xh = (double)dmax + 0.3;
    f.yh += (f.yh - f.yl) * 0.05;
    f.yl -= (f.yh - f.yl) * 0.05;
    axes(cr, &f, "eigenvalue index (descending)", "eigenvalue", 1);
    cairo_save(cr);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_clip(cr);
    for (size_t i = 0; i < a->ns; i++) {
        const struct pd_spectra *s = &a->s[i];
        struct pg_rgb c = series_colours[i % QT_NCOLOURS];
        /* One translucent line per sample: where many samples agree the colour saturates. */
        double alpha = fmax(0.04, fmin(0.8, 3.0 / sqrt((double)(s->n ? s->n : 1))));

        cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha);
        cairo_set_line_width(cr, 1.0);
        for (size_t k = 0; k < s->n; k++) {
            const double *e = s->eig + k * s->d;

            if (!isfinite(e[0]))
                continue;
            cairo_move_to(cr, fx(&f, 1), fy(&f, e[0]));
            for (size_t j = 1; j < s->d; j++)
                cairo_line_to(cr, fx(&f, (double)j + 1), fy(&f, e[j]));
        }
        cairo_stroke(cr);
        names[i < 16 ? i : 15] = s->name;
    }
    cairo_restore(cr);
    legend(cr, f.x0 + f.w + 12, f.y0, names, a->ns < 16 ? a->ns : 16);
}

int pd_spectra(const char *base, const char *ttl, const struct pd_spectra *s, size_t ns)
{
    struct spectra_arg a = {ttl, s, ns};

    return render(base, 720, 400, paint_spectra, &a);
}

struct spectral_arg {
    const char *title;
    size_t d;
    const double *amp, *phase;
};

/* Bars of v[0..d) in frame f (from 0), in colour c. */
static void bars(cairo_t *cr, const struct frame *f, size_t d, const double *v, struct pg_rgb c)
{
    set_rgb(cr, c, 1);
    for (size_t i = 0; i < d; i++) {
        double x = (double)i + 1, y0 = fy(f, 0), y1 = fy(f, isfinite(v[i]) ? v[i] : 0);

        cairo_rectangle(cr, fx(f, x - 0.35), fmin(y0, y1), fx(f, x + 0.35) - fx(f, x - 0.35),
                        fabs(y1 - y0));
    }
    cairo_fill(cr);
}

static void paint_spectral(cairo_t *cr, double w, double h, const void *arg)
{
    const struct spectral_arg *a = arg;
    double ph = (h - 120) / 2, top = 0;
    struct frame fa = {60, 40, w - 90, ph, 0.3, (double)a->d + 0.7, 0, 1};
    struct frame fp = {60, 40 + ph + 45, w - 90, ph, 0.3, (double)a->d + 0.7, -1.1, 1.1};

    background(cr);
    title(cr, w, a->title);
    for (size_t i = 0; i < a->d; i++)
        top = fmax(top, isfinite(a->amp[i]) ? a->amp[i] : 0);
    fa.yh = top > 0 ? top * 1.1 : 1;
    axes(cr, &fa, "", "amplitude |c_i|", 1);
    bars(cr, &fa, a->d, a->amp, series_colours[0]);
    axes(cr, &fp, "component i", "phase / \xcf\x80", 1);
    bars(cr, &fp, a->d, a->phase, series_colours[1]);
}

int pd_spectral(const char *base, const char *ttl, size_t d, const double *amp,
                const double *phase_pi)
{
    struct spectral_arg a = {ttl, d, amp, phase_pi};

    return render(base, 720, 480, paint_spectral, &a);
}

int pd_city(const char *base, const struct pd_matrix *mx)
{
    return render(base, 560, 440, paint_city, mx);
}

int pd_heat(const char *base, const struct pd_matrix *mx)
{
    return render(base, 520, 440, paint_heat, mx);
}

void pd_done(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
