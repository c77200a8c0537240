/* Replays fuzz corpora through a libFuzzer entry point in ordinary (non-clang) builds, so every
 * test run exercises the seeds and every past finding. Arguments are files or directories. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;

    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0) {
        fclose(f);
        return 1;
    }
    rewind(f);
    buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return 1;
    }
    fclose(f);
    (void)LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0, n = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: not found\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            struct dirent **ents;
            int k = scandir(argv[i], &ents, NULL, alphasort);

            for (int j = 0; j < k; j++) {
                char path[4096];

                if (ents[j]->d_name[0] != '.') {
                    (void)snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
                    bad |= run_file(path);
                    n++;
                }
                free(ents[j]);
            }
            free(ents);
        } else {
            bad |= run_file(argv[i]);
            n++;
        }
    }
    fprintf(stderr, "replay: %d inputs\n", n);
    return bad || n == 0;
}
