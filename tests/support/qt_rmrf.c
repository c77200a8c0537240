#include "qt_rmrf.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void qt_rm_rf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dh = opendir(path);
        struct dirent *de;

        if (dh) {
            while ((de = readdir(dh))) {
                char sub[4096];

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                (void)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                qt_rm_rf(sub);
            }
            closedir(dh);
        }
        (void)rmdir(path);
    } else {
        (void)unlink(path);
    }
}
