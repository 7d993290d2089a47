#include "core/filewatch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct filewatch_file {
    char *path;
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct filewatch {
    struct filewatch_file *v;
    size_t n;
};

struct filewatch *filewatch_new(void)
{
    return calloc(1, sizeof(struct filewatch));
}

static void filewatch_clear(struct filewatch *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i].path);
    free(w->v);
    w->v = NULL;
    w->n = 0;
}

void filewatch_free(struct filewatch *w)
{
    if (!w)
        return;
    filewatch_clear(w);
    free(w);
}

/* The file's state now into `now`; whether it differs from `f`'s. */
static bool filewatch_look(const struct filewatch_file *f, struct filewatch_file *now)
{
    struct stat st;
    *now = (struct filewatch_file){.path = f->path};
    if (stat(f->path, &st) == 0)
        *now = (struct filewatch_file){.path = f->path,
                                       .exists = true,
                                       .dev = st.st_dev,
                                       .ino = st.st_ino,
                                       .size = st.st_size,
                                       .mtime = st.st_mtim};
    return now->exists != f->exists ||
           (now->exists &&
            (now->dev != f->dev || now->ino != f->ino || now->size != f->size ||
             now->mtime.tv_sec != f->mtime.tv_sec || now->mtime.tv_nsec != f->mtime.tv_nsec));
}

int filewatch_set(struct filewatch *w, const char *const *paths, size_t n)
{
    filewatch_clear(w);
    if (n && !(w->v = calloc(n, sizeof(*w->v))))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct filewatch_file *f = &w->v[w->n];
        if (!(f->path = strdup(paths[i]))) {
            filewatch_clear(w);
            return -1;
        }
        w->n++;
        filewatch_look(f, f);
    }
    return 0;
}

bool filewatch_changed(struct filewatch *w, const char **which)
{
    bool changed = false;
    for (size_t i = 0; i < w->n; i++) {
        struct filewatch_file now;
        if (!filewatch_look(&w->v[i], &now))
            continue;
        if (!changed && which)
            *which = w->v[i].path;
        changed = true;
        w->v[i] = now;
    }
    return changed;
}
