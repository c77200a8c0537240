/* An acquisition loop: read one sample per line (m comma-separated counts) from stdin, send
 * each to qtomod as soon as it is measured, print its purity. Build: cc acquire.c
 * $(pkg-config --cflags --libs libqtomo-client). Socket: $QTOMO_SOCKET or the default. */
#include <qtomo/client.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    struct qtomo_error err;
    qtomo_conn *c;
    qtomo_job *job = qtomo_job_new();
    char line[65536];

    if (!job || qtomo_connect(&c, NULL, "acquire-example", 10000, &err) < 0) {
        fprintf(stderr, "acquire: %s\n", job ? err.message : "out of memory");
        return 3;
    }
    (void)qtomo_job_set_methods(job, "linear");
    while (fgets(line, sizeof(line), stdin)) {
        double v[4096], purity = 0;
        size_t m = 0;
        qtomo_sample *s;

        for (char *p = line, *end; m < 4096; p = end + (*end == ',')) {
            v[m] = strtod(p, &end);
            if (end == p)
                break;
            m++;
        }
        if (qtomo_reconstruct(c, job, v, m, &s, &err) < 0) {
            fprintf(stderr, "acquire: %s\n", err.message);
            break;
        }
        const char *why;
        if (qtomo_sample_status(s, 0, &why) == 0 && qtomo_sample_metric(s, 0, "purity", &purity) == 0)
            printf("purity %.6f\n", purity);
        else
            printf("error: %s\n", why);
        fflush(stdout);
        qtomo_sample_free(s);
    }
    qtomo_job_free(job);
    qtomo_close(c);
    return 0;
}
