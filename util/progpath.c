#include "util/progpath.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int progpath_sibling(const char *name, char *out, size_t outlen)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int len = snprintf(out, outlen, "%s/%s", self, name);
    return len < 0 || (size_t)len >= outlen ? -1 : 0;
}
