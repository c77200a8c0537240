/* Removes a file or a directory tree (test and benchmark scratch directories); errors are
 * ignored. Shared by the unit tests (qtomo_testsupport) and the benchmarks. */
#pragma once

void qt_rm_rf(const char *path);
