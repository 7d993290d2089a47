/*
 * Start-up scans of the spool: recovery after a crash and the list of queued messages.
 * Synchronous (plain system calls): they run before the engine starts.
 *
 * The rule that makes recovery simple: a message exists exactly when its qf exists,
 * because the commit renames tf→qf only after df and tf are durable. Anything else is an
 * unacknowledged leftover and is removed; a qf that does not hold together is kept for a
 * person as "Qf<qid>" (sendmail's name), with its df.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool_int.h"
#include "util/log.h"

struct spool_names {
    char (*v)[SPOOL_NAME_LEN + 1];
    size_t n;
};

static int spool_name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Our files ("df", "tf", "qf", "Qf" + a valid id), sorted: by kind, then id (time). */
static int spool_list(struct spool *sp, struct spool_names *out, char *err, size_t errlen)
{
    size_t cap = 0;
    struct dirent *d;
    /* A fresh descriptor: readdir must not move the offset of the shared dirfd. */
    int fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

    out->v = NULL;
    out->n = 0;
    if (!dir) {
        snprintf(err, errlen, "spool %s: %s", sp->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((errno = 0, d = readdir(dir))) {
        const char *nm = d->d_name;
        if (strlen(nm) != SPOOL_NAME_LEN || nm[1] != 'f' || !strchr("dtqQ", nm[0]) ||
            !qid_valid(nm + 2))
            continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            void *nv = realloc(out->v, cap * sizeof(*out->v));
            if (!nv) {
                errno = ENOMEM;
                break;
            }
            out->v = nv;
        }
        memcpy(out->v[out->n++], nm, SPOOL_NAME_LEN + 1);
    }
    int saved = errno;
    closedir(dir);
    if (saved) {
        snprintf(err, errlen, "spool %s: reading the directory: %s", sp->dir, strerror(saved));
        free(out->v);
        out->v = NULL;
        return -1;
    }
    if (out->n) /* an empty spool has no array, and qsort(NULL, 0) is undefined */
        qsort(out->v, out->n, sizeof(*out->v), spool_name_cmp);
    return 0;
}

static bool spool_exists(struct spool *sp, char kind0, const char *qid)
{
    char name[SPOOL_NAME_LEN + 1];
    struct stat st;
    snprintf(name, sizeof(name), "%cf%s", kind0, qid);
    return fstatat(sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Reads and checks one message: the qf parses, names its own id, and its df is there
 * with exactly the recorded size. 0, or -1 with the reason in `why`. */
static int spool_load(struct spool *sp, const char *qid, struct envelope *e, char *why,
                      size_t whylen)
{
    char name[SPOOL_NAME_LEN + 1];
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int r = -1;

    snprintf(name, sizeof(name), "qf%s", qid);
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !(data = malloc((size_t)st.st_size + 1))) {
        snprintf(why, whylen, "cannot read %s: %s", name, strerror(errno));
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, data + len, (size_t)st.st_size - len);
        if (n <= 0) {
            snprintf(why, whylen, "cannot read %s: %s", name, n ? strerror(errno) : "short");
            goto out;
        }
        len += (size_t)n;
    }
    if (envelope_parse(data, len, e, why, whylen) < 0)
        goto out;
    snprintf(name, sizeof(name), "df%s", qid);
    if (strcmp(e->qid, qid) != 0)
        snprintf(why, whylen, "queue id %s inside does not match the file name", e->qid);
    else if (fstatat(sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        snprintf(why, whylen, "%s: %s", name, strerror(errno));
    else if ((uint64_t)st.st_size != e->size)
        snprintf(why, whylen, "%s has %lld bytes, the envelope says %" PRIu64, name,
                 (long long)st.st_size, e->size);
    else
        r = 0;
    if (r < 0)
        envelope_free(e);
out:
    free(data);
    if (fd >= 0)
        close(fd);
    return r;
}

int spool_recover(struct spool *sp, struct spool_recovery *out, char *err, size_t errlen)
{
    struct spool_names names;
    struct envelope e;
    char why[256];

    memset(out, 0, sizeof(*out));
    if (spool_list(sp, &names, err, errlen) < 0)
        return -1;
    /* First the qf files (they decide what the others are), then the leftovers. */
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i], *qid = name + 2;
        if (name[0] != 'q')
            continue;
        if (spool_load(sp, qid, &e, why, sizeof(why)) == 0) {
            log_info("%s: recovered, from=<%s>, nrcpts=%zu, size=%" PRIu64, qid, e.sender,
                     e.n_rcpts, e.size);
            envelope_free(&e);
            out->messages++;
            continue;
        }
        char damaged[SPOOL_NAME_LEN + 1];
        snprintf(damaged, sizeof(damaged), "Qf%s", qid);
        if (renameat(sp->dirfd, name, sp->dirfd, damaged) < 0)
            log_error("%s: cannot rename damaged %s: %s", qid, name, strerror(errno));
        log_warn("%s: damaged queue file moved to %s: %s", qid, damaged, why);
        out->damaged++;
    }
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i], *qid = name + 2;
        /* A tf is never acknowledged, even next to a qf (an interrupted rewrite); a df
         * is kept while a qf or a damaged Qf refers to it. */
        bool orphan = name[0] == 't' || (name[0] == 'd' && !spool_exists(sp, 'q', qid) &&
                                         !spool_exists(sp, 'Q', qid));
        if (!orphan)
            continue;
        if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT) {
            log_error("%s: cannot remove %s: %s", qid, name, strerror(errno));
            continue;
        }
        log_info("%s: removed %s (never acknowledged)", qid, name);
        out->removed++;
    }
    free(names.v);
    return 0;
}

int spool_scan(struct spool *sp, int (*fn)(void *arg, const struct envelope *e), void *arg)
{
    struct spool_names names;
    struct envelope e;
    char why[256];
    int r = 0;

    if (spool_list(sp, &names, why, sizeof(why)) < 0) {
        log_error("%s", why);
        return -1;
    }
    for (size_t i = 0; i < names.n && r == 0; i++) {
        if (names.v[i][0] != 'q' || spool_load(sp, names.v[i] + 2, &e, why, sizeof(why)) < 0)
            continue;
        r = fn(arg, &e);
        envelope_free(&e);
    }
    free(names.v);
    return r;
}
