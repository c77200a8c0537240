/* qtomod: the qtomo reconstruction daemon. Runs in the foreground (systemd style); with
 * --worker it is one of the supervisor's workers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qd.h"
#include "qd_log.h"

#ifndef QTOMO_VERSION
#    define QTOMO_VERSION "0.0.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomod [--config FILE] [--OPTION VALUE]... [--dump-config]\n\n"
            "The qtomo reconstruction daemon: listens on a Unix socket, keeps a projector cache\n"
            "and a pool of worker processes. Runs in the foreground; logs to stderr.\n\n"
            "  --config FILE        configuration file (default %s, if it exists)\n"
            "  --dump-config        print the effective configuration and exit\n"
            "  --version            print the version and exit\n"
            "  -h, --help           this help\n\n"
            "Options (also 'key = value' lines of the configuration file):\n",
            QD_CONF_DEFAULT_PATH);
    qd_conf_help(out);
}

int main(int argc, char **argv)
{
    struct qd_conf c;
    const char *conf_path = NULL;
    bool worker = false, dump = false;
    char err[512];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--gen-man") == 0 && i + 1 < argc) /* for the build */
            return qd_gen_man(argv[i + 1]) == 0 ? 0 : QD_EXIT_INIT;
        if (strcmp(argv[i], "--version") == 0) {
            printf("qtomod %s\n", QTOMO_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--worker") == 0)
            worker = true;
        else if (strcmp(argv[i], "--dump-config") == 0)
            dump = true;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            conf_path = argv[++i];
    }
    if (worker) {
        /* Workers get every setting on the command line; they read no file. */
        qd_conf_defaults(&c);
        if (qd_conf_apply_args(&c, argc, argv, true) < 0 ||
            qd_conf_finish(&c, err, sizeof(err)) < 0)
            return QD_EXIT_INIT;
        qd_log_init("qtomod-worker", (int)c.log_level);
        return qd_worker_main(&c);
    }
    qd_conf_defaults(&c);
    if (qd_conf_apply_args(&c, argc, argv, true) < 0) {
        usage(stderr);
        return QD_EXIT_INIT;
    }
    if (qd_conf_build(&c, conf_path, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "qtomod: configuration: %s\n", err);
        return QD_EXIT_INIT;
    }
    if (dump) {
        qd_conf_dump(&c, stdout);
        return 0;
    }
    qd_log_init("qtomod", (int)c.log_level);
    return qd_sup_main(&c, conf_path, argc, argv);
}
