/* qtomoctl: command-line client of the qtomo reconstruction service. Global options, the
 * command table, help, the generated man page and completion, and main(). The helpers every
 * command uses are in qctl_util.c. */
#define _GNU_SOURCE /* open_memstream */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "estopts.h"
#include "qp.h"
#include "qtomo/client.h"
#include "qctl.h"
#include "recon.h"

static int cmd_version(int argc, char **argv, struct qctl_global *g);
static int cmd_help(int argc, char **argv, struct qctl_global *g);

static void usage_status(FILE *out)
{
    fprintf(out, "Usage: qtomoctl status\n\nThe daemon's uptime, queues, requests in flight, "
                 "workers and cache use.\n");
}

static void usage_stats(FILE *out)
{
    fprintf(out, "Usage: qtomoctl stats\n\nstatus plus totals since start (items, errors, "
                 "timeouts, worker crashes,\nrecycled workers) and one line per worker.\n");
}

static void usage_workers(FILE *out)
{
    fprintf(out, "Usage: qtomoctl workers\n\nOne line per worker: pid, state, items done, "
                 "resident memory.\n");
}

static void usage_cache(FILE *out)
{
    fprintf(out, "Usage: qtomoctl cache list\n"
                 "       qtomoctl cache verify [DESIGN D]\n"
                 "       qtomoctl cache warm DESIGN D\n"
                 "       qtomoctl cache evict DESIGN D\n\n"
                 "The daemon's projector cache: list the files, verify their checksums (all, or\n"
                 "one design and dimension; exit 1 when a file is damaged), build a file ahead\n"
                 "of use, or remove one (administrators only; refused while a worker maps it).\n");
}

static void usage_design(FILE *out)
{
    fprintf(out, "Usage: qtomoctl design put FILE\n\nUpload a custom design (JSON) and print its "
                 "content id, for the acquisition\nsoftware's requests (reconstruct --design-file "
                 "does this by itself).\n");
}

static void usage_detector(FILE *out)
{
    fprintf(out, "Usage: qtomoctl detector put FILE DESIGN D [DESIGN_ID]\n\nUpload a detector "
                 "model (JSON, README \"Detectors\") for the base design DESIGN\nat dimension D "
                 "(a custom base also needs its design id) and print the design\nto reconstruct "
                 "against and the model's id (reconstruct --detector does this\nby itself).\n");
}

static void usage_ping(FILE *out)
{
    fprintf(out, "Usage: qtomoctl ping\n\nConnect, shake hands and time one round trip.\n");
}

static void usage_reload(FILE *out)
{
    fprintf(out, "Usage: qtomoctl reload\n\nMake the daemon re-read its configuration and "
                 "replace its workers without\ndropping a request (administrators only). Returns "
                 "when the new configuration\nis in effect; a bad file is refused and the old one "
                 "kept (exit 2).\n");
}

static void usage_version(FILE *out)
{
    fprintf(out, "Usage: qtomoctl version\n\nPrint qtomoctl's version, and the daemon's when it "
                 "is reachable.\n");
}

static void usage_help(FILE *out)
{
    fprintf(out, "Usage: qtomoctl help [COMMAND]\n\nShow the command list, or a command's "
                 "options.\n");
}

const struct qctl_cmd qctl_cmds[] = {
    {"reconstruct", "FILE [options]",
     "reconstruct every sample (column) of a CSV/TXT file, or --live from stdin",
     qctl_cmd_reconstruct, qctl_reconstruct_usage,
     "--local --live -o --output-dir --resume --hdf5 --design --design-file --detector --dim "
     "--columns "
     "--method --physical --target --bell --spectral --json --bootstrap --resample --seed "
     "--confidence --shots --plots --help",
     true},
    {"calibrate", "COUNTS --states F [options]",
     "fit detector efficiencies and crosstalk to counts on known states (detector file)",
     qctl_cmd_calibrate, qctl_calibrate_usage,
     "--states --design --design-file --dim --background --qubit -o --output --help", false},
    {"plot", "DIR [--plots SEL]", "draw a run's figures and DIR/report.html from its records",
     qctl_cmd_plot, qctl_plot_usage, "--plots --help", false},
    {"status", "", "daemon uptime, queues, workers, cache use", qctl_cmd_status, usage_status, "",
     true},
    {"stats", "", "status plus totals and per-worker detail", qctl_cmd_stats, usage_stats, "",
     true},
    {"workers", "", "the daemon's workers: pid, state, items, memory", qctl_cmd_workers,
     usage_workers, "", true},
    {"cache", "list|verify|warm|evict [DESIGN D]", "inspect and manage the projector cache",
     qctl_cmd_cache, usage_cache, "list verify warm evict", true},
    {"design", "put FILE", "upload a custom design, print its id", qctl_cmd_design, usage_design,
     "put", true},
    {"detector", "put FILE DESIGN D [ID]", "upload a detector model, print its design's id",
     qctl_cmd_detector, usage_detector, "put", true},
    {"ping", "", "check that the daemon answers, and how fast", qctl_cmd_ping, usage_ping, "",
     true},
    {"reload", "", "re-read the daemon's configuration, roll its workers", qctl_cmd_reload,
     usage_reload, "", true},
    {"fidelity", "A B [--json]", "fidelity and trace distance between two states or records",
     qctl_cmd_fidelity, qctl_fidelity_usage, "--json --help", false},
    {"summarize", "DIR|summary.csv [--compare-methods] [--json]",
     "statistics of a run's metrics per method, and paired method differences",
     qctl_cmd_summarize, qctl_summarize_usage, "--compare-methods --json --help", false},
    {"bell", "DIR [--json]", "Bell-state analysis of a run's records (bell_summary.csv)",
     qctl_cmd_bell, qctl_bell_usage, "--json --help", false},
    {"version", "", "print the version", cmd_version, usage_version, "", false},
    {"help", "[COMMAND]", "show help for qtomoctl or a command", cmd_help, usage_help, "", false},
    {NULL, NULL, NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: qtomoctl [-s PATH] [--json] [--timeout SECS] [-q|-v] COMMAND [ARGS]\n\n"
                 "Commands:\n");
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nGlobal options:\n"
                 "  -s, --socket PATH   daemon socket\n"
                 "      --json          machine-readable output (JSON lines)\n"
                 "      --timeout SECS  give up after SECS seconds\n"
                 "  -q, --quiet         only errors on stderr\n"
                 "  -v, --verbose       more diagnostics on stderr\n"
                 "  -h, --help          this help\n\n"
                 "Run 'qtomoctl help COMMAND' for a command's options.\n");
}

const struct qctl_cmd *qctl_find_cmd(const char *name)
{
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* A command's only option is --help (version, help). Returns 1 when help was printed, -1 for a
 * bad argument, 0 otherwise. */
static int help_only(int argc, char **argv, const char *name, int max_args)
{
    const struct qctl_cmd *c = qctl_find_cmd(name);

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            c->usage(stdout);
            return 1;
        }
    if (argc - 1 > max_args || (argc > 1 && argv[1][0] == '-')) {
        qctl_err("%s: unexpected argument '%s'", name, argv[argc > 1 ? 1 : 0]);
        c->usage(stderr);
        return -1;
    }
    return 0;
}

static int cmd_version(int argc, char **argv, struct qctl_global *g)
{
    struct qtomo_server_info si = {0};
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    char path[108];
    int r = argv ? help_only(argc, argv, "version", 0) : 0;

    if (r)
        return r > 0 ? QCTL_EXIT_OK : QCTL_EXIT_USAGE;
    /* The daemon's version too, when one answers quickly on the socket qtomoctl would use. */
    if (g->socket || qtomo_default_socket(path, sizeof(path)) == 0)
        r = qtomo_connect(&c, g->socket ? g->socket : path, "qtomoctl/" QTOMO_VERSION,
                          g->timeout > 0 ? (int)(g->timeout * 1e3) : 2000, &e);
    if (c)
        qtomo_server_info(c, &si);
    qtomo_close(c);
    if (g->json) {
        printf("{\"qtomoctl\":\"%s\",\"protocol\":[%d,%d]", QTOMO_VERSION, QP_VERSION_MAJOR,
               QP_VERSION_MINOR);
        if (si.server[0])
            printf(",\"server\":\"%s\",\"server_protocol\":[%u,%u]", si.server,
                   si.proto_major, si.proto_minor);
        printf("}\n");
    } else {
        printf("qtomoctl %s (protocol %d.%d)\n", QTOMO_VERSION, QP_VERSION_MAJOR,
               QP_VERSION_MINOR);
        if (si.server[0])
            printf("server %s (protocol %u.%u)\n", si.server, si.proto_major, si.proto_minor);
    }
    return QCTL_EXIT_OK;
}

static int cmd_help(int argc, char **argv, struct qctl_global *g)
{
    const struct qctl_cmd *c;
    int r = help_only(argc, argv, "help", 1);

    (void)g;
    if (r)
        return r > 0 ? QCTL_EXIT_OK : QCTL_EXIT_USAGE;
    if (argc < 2) {
        usage(stdout);
        return QCTL_EXIT_OK;
    }
    c = qctl_find_cmd(argv[1]);
    if (!c) {
        qctl_err("unknown command '%s'", argv[1]);
        return QCTL_EXIT_USAGE;
    }
    c->usage(stdout);
    return QCTL_EXIT_OK;
}

/* The man page qtomoctl(1), generated at build time from the command table and the commands'
 * own help, so it cannot drift from the program. */
static void gen_man(void)
{
    printf(".TH QTOMOCTL 1 \"\" \"qtomo %s\" \"User Commands\"\n"
           ".SH NAME\nqtomoctl \\- client of the qtomo quantum state reconstruction daemon\n"
           ".SH SYNOPSIS\n.B qtomoctl\n[\\fB\\-s\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] "
           "[\\fB\\-\\-timeout\\fR \\fISECS\\fR] [\\fB\\-q\\fR|\\fB\\-v\\fR] "
           "\\fICOMMAND\\fR [\\fIARGS\\fR]\n"
           ".SH DESCRIPTION\n"
           "qtomoctl sends tomography data to \\fBqtomod\\fR(8) and prints or stores the "
           "reconstructed states, and administers the daemon. With \\fBreconstruct \\-\\-local"
           "\\fR it computes in process, with the same records.\n"
           ".SH GLOBAL OPTIONS\n"
           ".TP\n\\fB\\-s\\fR, \\fB\\-\\-socket\\fR \\fIPATH\\fR\nThe daemon's socket "
           "(default: \\fB$QTOMO_SOCKET\\fR, else \\fB$XDG_RUNTIME_DIR/qtomo/qtomod.sock\\fR "
           "when it exists, else \\fB/run/qtomo/qtomod.sock\\fR).\n"
           ".TP\n\\fB\\-\\-json\\fR\nMachine-readable output: JSON lines.\n"
           ".TP\n\\fB\\-\\-timeout\\fR \\fISECS\\fR\nGive up when the daemon is silent "
           "this long.\n"
           ".TP\n\\fB\\-q\\fR, \\fB\\-\\-quiet\\fR\nOnly errors on stderr.\n"
           ".TP\n\\fB\\-v\\fR, \\fB\\-\\-verbose\\fR\nMore diagnostics on stderr.\n"
           ".SH COMMANDS\n",
           QTOMO_VERSION);
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        printf(".SS %s %s\n%s.\n", c->name, c->args, c->summary);
        if (!f)
            continue;
        c->usage(f);
        fclose(f);
        printf(".PP\n.nf\n");
        for (char *p = buf; p && *p; p++) {
            if (*p == '\\')
                fputs("\\e", stdout);
            else if ((*p == '.' || *p == '\'') && (p == buf || p[-1] == '\n'))
                fputs("\\&.", stdout);
            else if (*p == '-')
                fputs("\\-", stdout);
            else
                putchar(*p);
        }
        printf(".fi\n");
        free(buf);
    }
    printf(".SH EXIT STATUS\n"
           ".TP\n0\nSuccess: every sample was reconstructed.\n"
           ".TP\n1\nSome samples failed (their records say why), or outputs could not be "
           "written, or the run was interrupted (finish it with \\fB\\-\\-resume\\fR).\n"
           ".TP\n2\nUsage error or unreadable input; a request the daemon refused as invalid.\n"
           ".TP\n3\nThe daemon is not reachable (start it, or use \\fB\\-\\-local\\fR).\n"
           ".TP\n4\nProtocol or server error.\n"
           ".SH ENVIRONMENT\n.TP\n\\fBQTOMO_SOCKET\\fR\nThe daemon's socket.\n"
           ".TP\n\\fBOPENBLAS_CORETYPE\\fR\nWith \\fB\\-\\-local\\fR, qtomoctl sets it when "
           "OpenBLAS would pick slower kernels than the CPU supports.\n"
           ".SH SEE ALSO\n\\fBqtomod\\fR(8), \\fBqtomod.conf\\fR(5)\n");
}

/* bash completion, generated from the same table. */
static void gen_completion(void)
{
    printf("# bash completion for qtomoctl (generated by qtomoctl --gen-completion)\n"
           "_qtomoctl()\n{\n"
           "    local cur prev cmd i\n"
           "    cur=${COMP_WORDS[COMP_CWORD]}\n"
           "    prev=${COMP_WORDS[COMP_CWORD-1]}\n"
           "    case $prev in\n"
           "        -s|--socket|--design-file|--detector|--target|-o|--output-dir|--output|"
           "--states) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
           "        --method) COMPREPLY=($(compgen -W 'linear mle wls rhor linear,mle' -- "
           "\"$cur\")); return ;;\n"
           "        --design) COMPREPLY=($(compgen -W 'nopovm mub sic pauli custom' -- "
           "\"$cur\")); return ;;\n"
           "        --physical) COMPREPLY=($(compgen -W 'clip smolin' -- \"$cur\")); return ;;\n"
           "    esac\n"
           "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
           "        case ${COMP_WORDS[i]} in\n"
           "            -s|--socket|--timeout) ((i++)) ;;\n"
           "            -*) ;;\n"
           "            *) cmd=${COMP_WORDS[i]}; break ;;\n"
           "        esac\n"
           "    done\n"
           "    case $cmd in\n"
           "        '') COMPREPLY=($(compgen -W '");
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++)
        printf("%s%s", c == qctl_cmds ? "" : " ", c->name);
    printf(" -s --socket --json --timeout -q --quiet -v --verbose -h --help --version' -- "
           "\"$cur\")) ;;\n");
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++) {
        printf("        %s) COMPREPLY=($(compgen -W '%s", c->name, c->words);
        if (strcmp(c->name, "reconstruct") == 0) {
            size_t n = qctl_estopt_count();
            struct option o[64];

            n = 0;
            qctl_estopts_getopt(o, &n);
            for (size_t k = 0; k < n; k++)
                printf(" --%s", o[k].name);
        }
        if (strcmp(c->name, "help") == 0)
            for (const struct qctl_cmd *h = qctl_cmds; h->name; h++)
                printf(" %s", h->name);
        /* Commands whose arguments are files or directories. */
        bool files = strcmp(c->name, "reconstruct") == 0 || c->run == qctl_cmd_calibrate ||
                     c->run == qctl_cmd_fidelity || c->run == qctl_cmd_summarize ||
                     c->run == qctl_cmd_bell;

        printf("' -- \"$cur\"))%s ;;\n",
               files ? "; [[ $cur != -* ]] && COMPREPLY+=($(compgen -f -- \"$cur\"))" : "");
    }
    printf("    esac\n}\ncomplete -F _qtomoctl qtomoctl\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {"gen-man", no_argument, NULL, 'M'},
        {"gen-completion", no_argument, NULL, 'C'}, {NULL, 0, NULL, 0},
    };
    struct qctl_global g = {NULL, false, 0.0, 0, argv};
    const struct qctl_cmd *c;
    int opt;

    /* Into a pipe or file, records go out in 64 kB writes, not stdio's 4 kB (see recon.h);
     * glibc ignores the size unless it is given the buffer. */
    static char stdout_buf[QCTL_OUT_BUFFER];

    if (!isatty(STDOUT_FILENO))
        (void)setvbuf(stdout, stdout_buf, _IOFBF, sizeof(stdout_buf));

    /* '+': stop at the first non-option, the command name. */
    while ((opt = getopt_long(argc, argv, "+s:qvh", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            g.socket = optarg;
            break;
        case 'j':
            g.json = true;
            break;
        case 't': {
            char *end;

            g.timeout = strtod(optarg, &end);
            if (*end || !(g.timeout >= 0)) {
                qctl_err("--timeout needs a non-negative number of seconds, got '%s'", optarg);
                return QCTL_EXIT_USAGE;
            }
            break;
        }
        case 'q':
            g.verbosity = -1;
            break;
        case 'v':
            g.verbosity = 1;
            break;
        case 'h':
            usage(stdout);
            return QCTL_EXIT_OK;
        case 'V':
            return cmd_version(0, NULL, &g);
        case 'M':
            gen_man();
            return QCTL_EXIT_OK;
        case 'C':
            gen_completion();
            return QCTL_EXIT_OK;
        default:
            usage(stderr);
            return QCTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    c = qctl_find_cmd(argv[optind]);
    if (!c) {
        qctl_err("unknown command '%s' (see 'qtomoctl --help')", argv[optind]);
        return QCTL_EXIT_USAGE;
    }
    argv += optind;
    argc -= optind;
    optind = 0; /* reset getopt for the subcommand */
    int rc = c->run(argc, argv, &g);

    /* Output still buffered goes out here, not silently in exit(): a full disk or a closed
     * pipe is an error of the command. */
    if (fflush(stdout) != 0 && rc == QCTL_EXIT_OK) {
        qctl_err("cannot write to standard output: %s", strerror(errno));
        rc = QCTL_EXIT_FAILED;
    }
    return rc;
}
