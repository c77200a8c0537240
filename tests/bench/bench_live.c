/* The live client of tests/bench/bench_daemon.py section (d), in C, so that the round trips it
 * times are the daemon's and not a Python interpreter's (issue 19, target 3).
 *
 *   bench-live SOCKET DESIGN D METHODS N GAP_MS SEED < columns
 *
 * Reads samples from stdin (a line "count m", then count lines of m numbers), then makes N
 * reconstruct calls on one connection, sample k % count each, sleeping a uniform random
 * 0..GAP_MS ms before each (GAP_MS 0: back to back). Prints one line per call:
 * "t_start t_end queue_ms compute_ms status" (CLOCK_MONOTONIC seconds, the timing the server
 * reported, 0 when every result of the sample is ok). Exit status 1 on any failed call. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "qtomo/client.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench-live SOCKET DESIGN D METHODS N GAP_MS SEED < columns\n");
    return 2;
}

/* xorshift64*: a uniform double in [0, 1). */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) * 0x1p-53;
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)((ms - 1e3 * (double)(time_t)(ms / 1e3)) * 1e6)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    size_t count, m, d, n;
    double gap_ms, *vals;
    uint64_t seed;
    qtomo_conn *c = NULL;
    qtomo_job *j;
    struct qtomo_error err = {0};
    int r;

    if (argc != 8)
        return usage();
    d = strtoul(argv[3], NULL, 10);
    n = strtoul(argv[5], NULL, 10);
    gap_ms = strtod(argv[6], NULL);
    seed = strtoull(argv[7], NULL, 10) * 0x9e3779b97f4a7c15ull + 1;
    if (scanf("%zu %zu", &count, &m) != 2 || !count || !m || count > 1u << 20 || m > 1u << 20)
        return usage();
    vals = malloc(count * m * sizeof(*vals));
    if (!vals) {
        fprintf(stderr, "bench-live: out of memory for %zu x %zu values\n", count, m);
        return 1;
    }
    for (size_t i = 0; i < count * m; i++)
        if (scanf("%lf", &vals[i]) != 1) {
            fprintf(stderr, "bench-live: %zu numbers expected on stdin\n", count * m);
            return 2;
        }
    j = qtomo_job_new();
    if (!j || qtomo_job_set_design(j, argv[2], d) < 0 || qtomo_job_set_methods(j, argv[4]) < 0) {
        fprintf(stderr, "bench-live: bad design or methods\n");
        return 2;
    }
    if ((r = qtomo_connect(&c, argv[1], "qtomo-bench-live", 60000, &err)) < 0) {
        fprintf(stderr, "bench-live: connect: %s\n", err.message[0] ? err.message : qtomo_strerror(r));
        return 1;
    }
    for (size_t k = 0; k < n; k++) {
        qtomo_sample *s = NULL;
        double t0, t1, q = 0, cm = 0;

        if (gap_ms > 0)
            sleep_ms(uniform(&seed) * gap_ms);
        t0 = now_s();
        r = qtomo_reconstruct(c, j, vals + (k % count) * m, m, &s, &err);
        t1 = now_s();
        if (r < 0) {
            fprintf(stderr, "bench-live: call %zu: %s\n", k,
                    err.message[0] ? err.message : qtomo_strerror(r));
            return 1;
        }
        qtomo_sample_timing(s, &q, &cm);
        r = 0; /* the first failed result's status, 0: all ok */
        for (size_t i = 0; i < qtomo_sample_count(s) && !r; i++)
            r = qtomo_sample_status(s, i, NULL);
        printf("%.9f %.9f %.3f %.3f %d\n", t0, t1, q, cm, r);
        qtomo_sample_free(s);
    }
    fflush(stdout);
    qtomo_close(c);
    qtomo_job_free(j);
    free(vals);
    return 0;
}
