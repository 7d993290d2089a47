/*
 * Start-up scans of the spool: recovery after a crash and the list of queued messages.
 * Synchronous (plain system calls): they run before the engine starts.
 *
 * The rule that makes recovery simple: a message exists exactly when its qf exists,
 * because the commit renames tf→qf only after df and tf are durable. Anything else is an
 * unacknowledged leftover and is removed; a qf that does not hold together is kept for a
 * person as "Qf<qid>" (sendmail's name), with its df. Nothing here follows a symbolic
 * link or reads anything but a regular file: the spool is ours, but what an accident or
 * a person put in it must neither redirect us nor hang the start-up.
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

/* Our files ("df", "tf", "qf", "Qf" + a valid id), sorted: by kind, then id (time). The
 * lock file and anything else not named so is never listed, so never touched. */
static int spool_list(struct spool *sp, int dirfd, struct spool_names *out, char *err,
                      size_t errlen)
{
    size_t cap = 0;
    struct dirent *d;
    /* A fresh descriptor: readdir must not move the offset of the shared dirfd. */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

static bool spool_exists(int dirfd, char kind0, const char *qid)
{
    char name[SPOOL_NAME_LEN + 1];
    struct stat st;
    snprintf(name, sizeof(name), "%cf%s", kind0, qid);
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Reads and checks one message: the qf parses, names its own id, and its df is there
 * with exactly the recorded size. Both must be regular files: a FIFO would block the
 * read (and start-up with it) forever, a symbolic link would read or later write a file
 * outside the spool. 0, or -1 with the reason in `why`. */
static int spool_load(int dirfd, const char *qid, struct envelope *e, char *why, size_t whylen)
{
    char name[SPOOL_NAME_LEN + 1];
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int r = -1;

    snprintf(name, sizeof(name), "qf%s", qid);
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP) {
        snprintf(why, whylen, "%s is a symbolic link", name);
        goto out;
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, whylen, "cannot read %s: %s", name, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s is not a regular file", name);
        goto out;
    }
    if (!(data = malloc((size_t)st.st_size + 1))) {
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
    else if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        snprintf(why, whylen, "%s: %s", name, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, whylen, "%s is not a regular file", name);
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
    int dirfd = spool_dirfd_dup(sp);
    if (dirfd < 0) {
        snprintf(err, errlen, "spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    if (spool_list(sp, dirfd, &names, err, errlen) < 0) {
        close(dirfd);
        return -1;
    }
    /* First the qf files (they decide what the others are), then the leftovers. */
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i], *qid = name + 2;
        if (name[0] != 'q')
            continue;
        if (spool_load(dirfd, qid, &e, why, sizeof(why)) == 0) {
            log_info("%s: recovered, from=<%s>, nrcpts=%zu, size=%" PRIu64, qid, e.sender,
                     e.n_rcpts, e.size);
            envelope_free(&e);
            out->messages++;
            continue;
        }
        char damaged[SPOOL_NAME_LEN + 1];
        snprintf(damaged, sizeof(damaged), "Qf%s", qid);
        if (renameat(dirfd, name, dirfd, damaged) < 0)
            log_error("%s: cannot rename damaged %s: %s", qid, name, strerror(errno));
        log_warn("%s: damaged queue file moved to %s: %s", qid, damaged, why);
        out->damaged++;
    }
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i], *qid = name + 2;
        /* A tf is never acknowledged, even next to a qf (an interrupted rewrite); a df
         * is kept while a qf or a damaged Qf refers to it. */
        bool orphan = name[0] == 't' || (name[0] == 'd' && !spool_exists(dirfd, 'q', qid) &&
                                         !spool_exists(dirfd, 'Q', qid));
        if (!orphan)
            continue;
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
            log_error("%s: cannot remove %s: %s", qid, name, strerror(errno));
            continue;
        }
        log_info("%s: removed %s (never acknowledged)", qid, name);
        out->removed++;
    }
    free(names.v);
    close(dirfd);
    return 0;
}

int spool_scan(struct spool *sp, int (*fn)(void *arg, const struct envelope *e), void *arg)
{
    struct spool_names names;
    struct envelope e;
    char why[256];
    int r = 0;

    int dirfd = spool_dirfd_dup(sp);
    if (dirfd < 0) {
        log_error("spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    if (spool_list(sp, dirfd, &names, why, sizeof(why)) < 0) {
        log_error("%s", why);
        close(dirfd);
        return -1;
    }
    for (size_t i = 0; i < names.n && r == 0; i++) {
        if (names.v[i][0] != 'q' || spool_load(dirfd, names.v[i] + 2, &e, why, sizeof(why)) < 0)
            continue;
        r = fn(arg, &e);
        envelope_free(&e);
    }
    free(names.v);
    close(dirfd);
    return r;
}
