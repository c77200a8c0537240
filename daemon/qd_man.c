/* qtomod(8) and qtomod.conf(5), generated at build time (`qtomod --gen-man 8|5`) from the
 * option table, so the pages cannot drift from the program. */
#include <stdio.h>

#include "qd.h"
#include "qd_conf.h"

static void header(const char *name, int section, const char *what)
{
    printf(".TH %s %d \"\" \"qtomo %s\" \"%s\"\n", name, section, QTOMO_VERSION,
           section == 8 ? "System Administration" : "File Formats");
    printf(".SH NAME\n%s \\- %s\n", section == 8 ? "qtomod" : "qtomod.conf", what);
}

static void man8(void)
{
    header("QTOMOD", 8, "the qtomo quantum state reconstruction daemon");
    printf(".SH SYNOPSIS\n.B qtomod\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] "
           "[\\fB\\-\\-\\fR\\fIoption\\fR \\fIvalue\\fR]... [\\fB\\-\\-dump\\-config\\fR]\n"
           ".SH DESCRIPTION\n"
           "qtomod reconstructs density matrices from tomography data for its clients "
           "(\\fBqtomoctl\\fR(1), libqtomo\\-client, the Python client). A supervisor process "
           "(one event loop, no numerics) listens on a Unix socket, queues requests, and "
           "dispatches samples to a pool of worker processes it starts by fork and exec; the "
           "workers map the projector cache files of each design and dimension and stream "
           "results back as each sample is done. Single samples (reconstruct) go ahead of "
           "batches (submit), which are cut into small chunks.\n.PP\n"
           "qtomod runs in the foreground and logs to standard error, with \\fB<N>\\fR "
           "priority prefixes when that is the journal and timestamps otherwise. As an "
           "ordinary user with no configuration it listens on "
           "\\fB$XDG_RUNTIME_DIR/qtomo/qtomod.sock\\fR and caches in "
           "\\fB$XDG_CACHE_HOME/qtomo\\fR; as root on \\fB/run/qtomo/qtomod.sock\\fR and "
           "\\fB/var/cache/qtomo\\fR. Under systemd it takes its socket from socket activation.\n"
           ".SH OPTIONS\n"
           ".TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\nRead \\fIFILE\\fR instead of "
           "\\fB%s\\fR (see \\fBqtomod.conf\\fR(5)). Command-line options override it.\n"
           ".TP\n\\fB\\-\\-dump\\-config\\fR\nPrint the effective configuration and exit.\n"
           ".TP\n\\fB\\-\\-version\\fR, \\fB\\-\\-help\\fR\nPrint the version or the help.\n",
           QD_CONF_DEFAULT_PATH);
    qd_conf_man(stdout, true);
    printf(".SH SIGNALS\n.TP\nSIGTERM, SIGINT\nStop accepting, let running work finish for up "
           "to \\fBdrain\\-timeout\\-ms\\fR, end the rest with a shutting_down error, exit 0.\n"
           ".TP\nSIGHUP\nRe-read the configuration (keep the old one when the file is bad) and "
           "replace the workers without dropping a request; the same as \\fBqtomoctl reload\\fR, "
           "but at most once a second: signals within a second of a reload are coalesced into "
           "one reload at the end of that second."
           "\n.SH SYSTEMD\nWith \\fBType=notify\\fR qtomod sends READY=1 once its workers are "
           "ready, STATUS= lines with live counts, WATCHDOG=1 at half of WatchdogSec, "
           "RELOADING=1 and READY=1 around reloads and STOPPING=1. It takes a listening socket "
           "named by FileDescriptorName= from socket activation. Workers get no systemd "
           "variables, OPENBLAS_NUM_THREADS=1, the OpenBLAS kernel choice for the CPU "
           "(OPENBLAS_CORETYPE, unless set), a parent-death signal and an OOM score of 500.\n"
           ".SH FAULTS\nA sample past its deadline gets a timeout error and its worker is "
           "killed (SIGABRT, then SIGKILL) and replaced; time the worker waited for a CPU "
           "behind other processes does not count (up to ten deadlines and "
           "\\fBmax\\-item\\-ms\\fR). "
           "A worker that dies mid-chunk is "
           "replaced and its samples retried once; a sample that kills two workers fails alone. "
           "Every sample of a batch gets exactly one result. Workers are recycled after "
           "\\fBworker\\-max\\-jobs\\fR samples or above \\fBworker\\-max\\-rss\\-mb\\fR.\n"
           ".SH ACCESS\nThe socket qtomod binds gets \\fBsocket\\-mode\\fR and "
           "\\fBsocket\\-group\\fR; each connection's peer uid, gid and pid are logged with its "
           "jobs. cache.evict and reload are allowed to root, the daemon's own user and members "
           "of \\fBadmin\\-group\\fR. The daemon never opens a path a client names.\n"
           ".SH EXIT STATUS\n.TP\n0\nStopped on request.\n.TP\n1\nFailure while running.\n"
           ".TP\n2\nStart-up error (configuration, socket, cache directory).\n.TP\n3\n"
           "Workers kept failing during start-up (crash loop); systemd's restart policy "
           "takes over.\n"
           ".SH FILES\n.TP\n%s\nConfiguration.\n.TP\n/var/cache/qtomo\nProjector cache "
           "(CacheDirectory=qtomo under systemd).\n.TP\n/run/qtomo/qtomod.sock\nThe system "
           "socket.\n"
           ".SH SEE ALSO\n\\fBqtomod.conf\\fR(5), \\fBqtomoctl\\fR(1), \\fBsystemd.socket\\fR(5)\n",
           QD_CONF_DEFAULT_PATH);
}

static void man5(void)
{
    header("QTOMOD.CONF", 5, "configuration of the qtomo daemon");
    printf(".SH SYNOPSIS\n%s\n.SH DESCRIPTION\nOne \\fIkey\\fR = \\fIvalue\\fR per line; "
           "blank lines and lines starting with # are ignored; an unknown key or a value out "
           "of range is an error naming the line (at start-up qtomod exits 2; on reload the old "
           "configuration stays). Every key is also a command-line option "
           "\\fB\\-\\-\\fR\\fIkey\\fR \\fIvalue\\fR of \\fBqtomod\\fR(8), which overrides the "
           "file. \\fBqtomod \\-\\-dump\\-config\\fR prints the effective values. Changes of "
           "\\fBsocket\\fR and \\fBcache\\-dir\\fR need a restart; the others apply at the "
           "next reload.\n.SH KEYS\n",
           QD_CONF_DEFAULT_PATH);
    qd_conf_man(stdout, false);
    printf(".SH EXAMPLE\n.nf\n# /etc/qtomo/qtomod.conf\nworkers = 4\ncache\\-budget\\-mb = 2048\n"
           "item\\-timeout\\-ms = 30000\nadmin\\-group = qtomo\\-admin\n.fi\n"
           ".SH SEE ALSO\n\\fBqtomod\\fR(8), \\fBqtomoctl\\fR(1)\n");
}

int qd_gen_man(const char *section)
{
    if (section[0] == '8' && !section[1])
        man8();
    else if (section[0] == '5' && !section[1])
        man5();
    else
        return -1;
    return 0;
}
