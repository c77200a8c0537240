/* qtomo-h5 DIR: writes DIR/results.h5 from DIR/records.jsonl and DIR/run.json (recon_h5.c).
 * qtomoctl runs it for `reconstruct -o DIR --hdf5` (helpers.c), so that qtomoctl does not link
 * HDF5; installed in libexec, not meant to be run by hand. Exit 0, or 1 after printing why. */
#include <stdio.h>

#include "qctl.h"
#include "recon.h"

int main(int argc, char **argv)
{
    qctl_progname = "qtomoctl"; /* its messages are qtomoctl's */
    if (argc != 2 || argv[1][0] == '\0') { /* no options: DIR may be any name */
        fprintf(stderr, "usage: qtomo-h5 DIR\n"
                        "writes DIR/results.h5 from DIR/records.jsonl and DIR/run.json; "
                        "qtomoctl reconstruct -o DIR --hdf5 runs it\n");
        return 2;
    }
    return qctl_write_h5(argv[1]) < 0 ? 1 : 0;
}
