/*
 * The tools' synchronous walk of the spool (cli/spool_read.h). It mirrors the daemon's
 * recovery scan on purpose: both must find a message wherever a hash_depth put it, and
 * neither may be redirected by a link or hung by a FIFO someone left in the spool.
 */
#include "cli/spool_read.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/maildrop.h"
#include "queue/qid.h"

/* docs/queue.md: one hex digit per level, at most two levels. */
#define SPOOL_READ_MAX_DEPTH 2
/* A qf is a few hundred octets plus its recipients; this bounds what a garbled file costs. */
#define SPOOL_READ_QF_MAX (64u << 20)

struct spool_read_walk {
    struct spool_read_list *list;
    size_t cap;
    char *err;
    size_t errlen;
};

bool spool_read_allowed(const char *run_as, uid_t uid)
{
    if (uid == 0)
        return true;
    struct passwd pw, *found = NULL;
    char buf[4096];
    return run_as && getpwnam_r(run_as, &pw, buf, sizeof(buf), &found) == 0 && found &&
           pw.pw_uid == uid;
}

static bool spool_read_hex_dir(const char *name)
{
    return name[0] && !name[1] && strchr("0123456789abcdef", name[0]);
}

/* The whole regular file at `path` (relative to `dirfd`), NUL-terminated. NULL with errno
 * (ENOENT when it vanished, EINVAL when it is not a regular file or too large). */
static char *spool_read_file(int dirfd, const char *path, size_t *len)
{
    int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *data = NULL;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SPOOL_READ_QF_MAX) {
        errno = EINVAL;
        goto fail;
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data)
        goto fail;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break; /* shrank meanwhile: the parser will call it truncated */
        got += (size_t)r;
    }
    close(fd);
    data[got] = '\0';
    *len = got;
    return data;
fail:;
    int saved = errno;
    free(data);
    close(fd);
    errno = saved;
    return NULL;
}

/* The list's next entry (zeroed, not yet counted in n); NULL with errno and `err` set when
 * out of memory. */
static struct spool_read_msg *spool_read_slot(struct spool_read_walk *w)
{
    struct spool_read_list *l = w->list;
    if (l->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        struct spool_read_msg *v = realloc(l->msgs, cap * sizeof(*v));
        if (!v) {
            snprintf(w->err, w->errlen, "out of memory");
            errno = ENOMEM;
            return NULL;
        }
        l->msgs = v;
        w->cap = cap;
    }
    struct spool_read_msg *m = &l->msgs[l->n];
    memset(m, 0, sizeof(*m));
    return m;
}

static int spool_read_add(struct spool_read_walk *w, int topfd, const char *path)
{
    size_t len;
    char *data = spool_read_file(topfd, path, &len);
    if (!data) {
        if (errno == ENOENT || errno == EINVAL || errno == ELOOP) {
            /* gone (delivered meanwhile), or not a file we would ever read */
            w->list->damaged += errno != ENOENT;
            return 0;
        }
        snprintf(w->err, w->errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct spool_read_list *l = w->list;
    struct spool_read_msg *m = spool_read_slot(w);
    if (!m) {
        free(data);
        return -1;
    }
    char why[128];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (envelope_parse(data, len, &m->env, why, sizeof(why)) < 0) {
        l->damaged++;
    } else if (strcmp(m->env.qid, base + 2) != 0) {
        envelope_free(&m->env);
        l->damaged++;
    } else {
        snprintf(m->path, sizeof(m->path), "%s", path);
        l->n++;
    }
    free(data);
    return 0;
}

/* Both parts are short: a prefix is at most "h/h", a name "qf" and a queue id. */
static void spool_read_join(char out[SPOOL_READ_PATH_MAX], const char *prefix, const char *name)
{
    snprintf(out, SPOOL_READ_PATH_MAX, "%.3s%s%.*s", prefix, *prefix ? "/" : "", QID_LEN + 2, name);
}

/* `prefix` is the directory's path relative to the spool ("" at the top). */
static int spool_read_dir(struct spool_read_walk *w, int topfd, const char *prefix, int level)
{
    int fd = *prefix ? openat(topfd, prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                     : openat(topfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (*prefix && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
            return 0;
        snprintf(w->err, w->errlen, "%s: %s", *prefix ? prefix : ".", strerror(errno));
        return -1;
    }
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int saved = errno;
        close(fd);
        errno = saved;
        snprintf(w->err, w->errlen, "%s: %s", *prefix ? prefix : ".", strerror(errno));
        return -1;
    }
    int r = 0;
    struct dirent *d;
    while (r == 0 && (errno = 0, d = readdir(dir))) {
        char path[SPOOL_READ_PATH_MAX];
        if (level < SPOOL_READ_MAX_DEPTH && spool_read_hex_dir(d->d_name)) {
            spool_read_join(path, prefix, d->d_name);
            r = spool_read_dir(w, topfd, path, level + 1);
        } else if (!strncmp(d->d_name, "qf", 2) && qid_valid(d->d_name + 2)) {
            spool_read_join(path, prefix, d->d_name);
            r = spool_read_add(w, topfd, path);
        }
    }
    if (r == 0 && errno != 0) {
        snprintf(w->err, w->errlen, "%s: %s", *prefix ? prefix : ".", strerror(errno));
        r = -1;
    }
    int saved = errno;
    closedir(dir);
    errno = saved;
    return r;
}

static int spool_read_cmp(const void *a, const void *b)
{
    const struct spool_read_msg *x = a, *y = b;
    return strcmp(x->env.qid, y->env.qid);
}

int spool_read_all(const char *dir, struct spool_read_list *out, char *err, size_t errlen)
{
    *out = (struct spool_read_list){0};
    int topfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (topfd < 0) {
        int saved = errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(saved));
        errno = saved;
        return -1;
    }
    struct spool_read_walk w = {.list = out, .err = err, .errlen = errlen};
    int r = spool_read_dir(&w, topfd, "", 0);
    int saved = errno;
    close(topfd);
    if (r < 0) {
        spool_read_list_free(out);
        errno = saved;
        return -1;
    }
    if (out->n > 1)
        qsort(out->msgs, out->n, sizeof(out->msgs[0]), spool_read_cmp);
    return 0;
}

/* The owner's login for an empty S record; the uid in decimal without a passwd entry (the
 * pickup would then fail the file, but it is listed as it is). */
static void spool_read_login(uid_t uid, char *out, size_t outlen)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
        snprintf(out, outlen, "%s", pw.pw_name);
    else
        snprintf(out, outlen, "%lu", (unsigned long)uid);
}

/* A maildrop file's head as mailq shows it (spool_read.h). -1 when out of memory (`e` then
 * holds what was made, for envelope_free). */
static int spool_read_drop_env(struct envelope *e, const char *name,
                               const struct maildrop_envelope *d, const struct stat *st,
                               uint64_t head, const char *hostname)
{
    size_t n = strlen(name);
    snprintf(e->qid, sizeof(e->qid), "%s", name + (n > QID_LEN ? n - QID_LEN : 0));
    char login[256];
    spool_read_login(st->st_uid, login, sizeof(login));
    e->created = st->st_mtime;
    e->size = (uint64_t)st->st_size > head ? (uint64_t)st->st_size - head : 0;
    e->body = !d->body                               ? 0
              : strcasecmp(d->body, "8BITMIME") == 0 ? 8
              : strcasecmp(d->body, "7BIT") == 0     ? 7
                                                     : 0;
    if (!(e->sender = maildrop_sender_address(d->sender, login, hostname)) ||
        !(e->maildrop = strdup(name)) || (d->envid && !(e->envid = strdup(d->envid))) ||
        !(e->rcpts = calloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(*e->rcpts))))
        return -1;
    for (; e->n_rcpts < d->n_rcpts; e->n_rcpts++) {
        e->rcpts[e->n_rcpts].state = ENV_RCPT_PENDING;
        if (!(e->rcpts[e->n_rcpts].addr = strdup(d->rcpts[e->n_rcpts])))
            return -1;
    }
    return 0;
}

/* One maildrop file into the list; -1 only when out of memory. */
static int spool_read_drop(struct spool_read_walk *w, int dirfd, const char *name,
                           const char *hostname)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        w->list->damaged += errno != ENOENT; /* ENOENT: picked up meanwhile */
        return 0;
    }
    struct stat st;
    FILE *in = NULL;
    /* one link, as the pickup requires: a hard link to someone else's file is never taken */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || !(in = fdopen(fd, "r"))) {
        close(fd);
        w->list->damaged++;
        return 0;
    }
    struct maildrop_envelope d;
    char why[256];
    long head = maildrop_read_head(in, &d, why, sizeof(why)) == 0 ? ftell(in) : -1;
    fclose(in);
    struct spool_read_msg *m = head < 0 ? NULL : spool_read_slot(w);
    int rc = 0;
    if (head < 0) {
        w->list->damaged++;
    } else if (!m) {
        rc = -1;
    } else if (spool_read_drop_env(&m->env, name, &d, &st, (uint64_t)head, hostname) < 0) {
        envelope_free(&m->env);
        snprintf(w->err, w->errlen, "out of memory");
        errno = ENOMEM;
        rc = -1;
    } else {
        w->list->n++;
    }
    maildrop_envelope_free(&d);
    return rc;
}

static int spool_read_drop_cmp(const void *a, const void *b)
{
    const struct spool_read_msg *x = a, *y = b;
    return strcmp(x->env.maildrop, y->env.maildrop);
}

int spool_read_maildrop(const char *dir, const char *hostname, struct spool_read_list *out,
                        char *err, size_t errlen)
{
    *out = (struct spool_read_list){0};
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "%s: %s", dir, strerror(saved));
        errno = saved;
        return -1;
    }
    struct spool_read_walk w = {.list = out, .err = err, .errlen = errlen};
    int r = 0;
    struct dirent *e;
    while (r == 0 && (errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and ".tmp-" files ringmail-postdrop is writing */
        if (maildrop_name_valid(e->d_name))
            r = spool_read_drop(&w, dirfd(d), e->d_name, hostname);
        else
            out->damaged++;
    }
    if (r == 0 && errno != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        r = -1;
    }
    int saved = errno;
    closedir(d);
    if (r < 0) {
        spool_read_list_free(out);
        errno = saved;
        return -1;
    }
    if (out->n > 1)
        qsort(out->msgs, out->n, sizeof(out->msgs[0]), spool_read_drop_cmp);
    return 0;
}

void spool_read_list_free(struct spool_read_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        envelope_free(&l->msgs[i].env);
    free(l->msgs);
    *l = (struct spool_read_list){0};
}

void spool_read_sibling(const char *qf_path, const char *kind, char out[SPOOL_READ_PATH_MAX])
{
    snprintf(out, SPOOL_READ_PATH_MAX, "%s", qf_path);
    char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    memcpy(base, kind, 2);
}
