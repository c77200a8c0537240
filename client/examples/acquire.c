/* Acquisition loop: one sample per stdin line (m comma-separated counts), sent to qtomod as soon
 * as it is measured; prints its purity. cc acquire.c $(pkg-config --cflags --libs libqtomo-client) */
#include <qtomo/client.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    static char line[1 << 16];
    static double v[4096];
    struct qtomo_error err;
    qtomo_conn *c;
    qtomo_job *job = qtomo_job_new(); /* design inferred from m; methods linear,mle */

    if (!job || qtomo_connect(&c, NULL, "acquire-example", 10000, &err) < 0)
        return fprintf(stderr, "acquire: %s\n", job ? err.message : "out of memory"), 3;
    while (fgets(line, sizeof(line), stdin)) {
        size_t m = 0;
        char *p = line, *end;
        qtomo_sample *s;
        double purity;
        const char *why;

        for (; m < 4096 && (v[m] = strtod(p, &end), end != p); p = end + (*end == ','))
            m++;
        if (qtomo_reconstruct(c, job, v, m, &s, &err) < 0)
            return fprintf(stderr, "acquire: %s\n", err.message), 4;
        if (qtomo_sample_status(s, 1, &why) == 0 && qtomo_sample_metric(s, 1, "purity", &purity) == 0)
            printf("mle purity %.6f\n", purity);
        else
            printf("error: %s\n", why);
        fflush(stdout);
        qtomo_sample_free(s);
    }
    qtomo_job_free(job);
    qtomo_close(c);
    return 0;
}
