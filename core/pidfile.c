#include "core/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pidfile_write(const char *path, char *err, size_t errlen)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    /* A stale file of a crashed instance is replaced; its lock (the spool's) is long gone. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, (size_t)len) != len || fsync(fd) < 0) {
        snprintf(err, errlen, "pid_file: cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

void pidfile_remove(const char *path)
{
    char text[32] = "";
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(text, sizeof(text), f) && strtol(text, NULL, 10) == (long)getpid())
        unlink(path);
    fclose(f);
}
