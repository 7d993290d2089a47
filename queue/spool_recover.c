/*
 * Start-up scans of the spool: recovery after a crash and the list of queued messages.
 * Synchronous (plain system calls), on whatever thread calls them: the listing before the
 * engine starts, the reading of the envelopes on a thread of its own while it serves.
 *
 * The rule that makes recovery simple: a message exists exactly when its qf exists whole,
 * because the commit renames tf→qf only once the df is durable and the tf written, and
 * acknowledges only after the qf's fsync. Anything else is an unacknowledged leftover and
 * is removed: df and tf files without a qf, and an empty qf (what a power cut between the
 * rename and the qf's fsync leaves on a file system that allocates on write-back, as ext4
 * and XFS do). A qf that does not hold together otherwise — cut short with something in
 * it included, which may be an acknowledged message on a failing disk — is kept for a
 * person as "Qf<qid>" (sendmail's name), with its df if it has one. Nothing here follows
 * a symbolic link or reads anything but a regular file: the spool is ours, but what an
 * accident or a person put in it must neither redirect us nor hang the start-up.
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

/* Per-message lines at start-up: the first ones of each kind, then a count, so that a
 * queue of a million messages does not write a million lines before the daemon serves. */
#define SPOOL_RECOVER_LOG_MAX 1000

/* One of our files, found anywhere in the tree: kind, id and where. */
struct spool_entry {
    char qid[QID_LEN];
    char kind;      /* 'd', 't', 'q' or 'Q' */
    uint8_t depth;  /* the level it was found at: 0 (top) .. SPOOL_MAX_HASH_DEPTH */
    uint16_t shard; /* its leaf at that level (spool_shard_path) */
};

struct spool_entries {
    struct spool_entry *v;
    size_t n, cap;
};

/* By id (time), then kind: a message's files are next to each other. */
static int spool_entry_cmp(const void *a, const void *b)
{
    return memcmp(a, b, QID_LEN + 1);
}

static bool spool_is_hex_digit_name(const char *nm)
{
    return nm[0] && !nm[1] && strchr("0123456789abcdef", nm[0]);
}

/* Whether a directory entry is a directory, never through a symbolic link. */
static bool spool_entry_is_dir(DIR *dir, const struct dirent *d)
{
    struct stat st;
    if (d->d_type != DT_UNKNOWN)
        return d->d_type == DT_DIR;
    return fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Lists our files ("df", "tf", "qf", "Qf" + a valid id) in the directory `fd` (consumed)
 * at `depth`, and in its one-hex-digit subdirectories down to SPOOL_MAX_HASH_DEPTH,
 * whatever the current hash_depth: a depth change leaves files at another level. The
 * lock file and anything else not named so is never listed, so never touched. */
static int spool_list_dir(int fd, unsigned depth, unsigned shard, struct spool_entries *out)
{
    struct dirent *d;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return -1;
    }
    int r = 0;
    while (r == 0 && (errno = 0, d = readdir(dir))) {
        const char *nm = d->d_name;
        if (depth < SPOOL_MAX_HASH_DEPTH && spool_is_hex_digit_name(nm)) {
            if (!spool_entry_is_dir(dir, d))
                continue;
            int sub = openat(dirfd(dir), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            unsigned digit = (unsigned)(strchr("0123456789abcdef", nm[0]) - "0123456789abcdef");
            r = sub < 0 ? -1 : spool_list_dir(sub, depth + 1, shard * SPOOL_FANOUT + digit, out);
            continue;
        }
        if (strlen(nm) != SPOOL_NAME_LEN || nm[1] != 'f' || !strchr("dtqQ", nm[0]) ||
            !qid_valid(nm + 2))
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 1024;
            void *nv = realloc(out->v, cap * sizeof(*out->v));
            if (!nv) {
                errno = ENOMEM;
                r = -1;
                break;
            }
            out->v = nv;
            out->cap = cap;
        }
        struct spool_entry *e = &out->v[out->n++];
        memcpy(e->qid, nm + 2, QID_LEN);
        e->kind = nm[0];
        e->depth = (uint8_t)depth;
        e->shard = (uint16_t)shard;
    }
    if (r == 0 && errno)
        r = -1;
    int saved = errno;
    closedir(dir);
    errno = saved;
    return r;
}

/* Every one of our files in the spool, sorted by id then kind. */
static int spool_list(struct spool *sp, int dirfd, struct spool_entries *out, char *err,
                      size_t errlen)
{
    /* A fresh descriptor: readdir must not move the offset of the shared dirfd. */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *out = (struct spool_entries){0};
    if (fd < 0 || spool_list_dir(fd, 0, 0, out) < 0) {
        snprintf(err, errlen, "spool %s: reading the directory: %s", sp->dir, strerror(errno));
        free(out->v);
        *out = (struct spool_entries){0};
        return -1;
    }
    if (out->n) /* an empty spool has no array, and qsort(NULL, 0) is undefined */
        qsort(out->v, out->n, sizeof(*out->v), spool_entry_cmp);
    return 0;
}

/* The files of one message as found: where each kind is (its first copy, or the copy
 * already where the current depth wants it). */
struct spool_group {
    char qid[QID_LEN + 1];
    const struct spool_entry *q, *Q, *d;
    const struct spool_entry *all; /* every file of the id, tf ones included */
    size_t n;
};

static void spool_entry_path(const struct spool_entry *e, char out[SPOOL_PATH_LEN + 1])
{
    const char kind[3] = {e->kind, 'f', '\0'};
    char qid[QID_LEN + 1];
    memcpy(qid, e->qid, QID_LEN);
    qid[QID_LEN] = '\0';
    spool_path_at(e->shard, e->depth, kind, qid, out);
}

static bool spool_entry_wanted(const struct spool *sp, const struct spool_entry *e)
{
    return e->depth == sp->hash_depth && e->shard == spool_shard_of(e->qid, sp->hash_depth);
}

/* The entries v[*i ..] of one queue id into g; *i moves past them. A second copy of a
 * kind (left by a person: the spool itself never makes one) is logged and left alone. */
static void spool_group_next(const struct spool *sp, const struct spool_entries *ents, size_t *i,
                             struct spool_group *g)
{
    const struct spool_entry *first = &ents->v[*i];
    memset(g, 0, sizeof(*g));
    memcpy(g->qid, first->qid, QID_LEN);
    g->all = first;
    for (; *i < ents->n && memcmp(ents->v[*i].qid, first->qid, QID_LEN) == 0; ++*i, g->n++) {
        const struct spool_entry *e = &ents->v[*i], **slot;
        if (e->kind == 't')
            continue;
        slot = e->kind == 'q' ? &g->q : e->kind == 'Q' ? &g->Q : &g->d;
        if (!*slot) {
            *slot = e;
            continue;
        }
        const struct spool_entry *keep = spool_entry_wanted(sp, e) ? e : *slot;
        char left[SPOOL_PATH_LEN + 1];
        spool_entry_path(keep == e ? *slot : e, left);
        log_warn("%s: %s is a second copy: left alone", g->qid, left);
        *slot = keep;
    }
}

int spool_parse_qf(const char *data, size_t len, const char *qid, struct envelope *e, char *why,
                   size_t whylen)
{
    if (envelope_parse(data, len, e, why, whylen) < 0)
        return -1;
    if (strcmp(e->qid, qid) == 0)
        return 0;
    snprintf(why, whylen, "queue id %s inside does not match the file name", e->qid);
    envelope_free(e);
    return -1;
}

/* The file name without its subdirectories, for reasons: "qf<qid>". */
static const char *spool_base(const char *path)
{
    return path + strlen(path) - SPOOL_NAME_LEN;
}

/* Reads and checks one message: the qf parses, names its own id, and its data is there
 * with exactly the recorded size: in the qf (the parse checks its length), or the df (a
 * stat: the df's inode was written next to the qf's, so it is usually read with it). Both
 * must be regular files: a FIFO would block the read (and start-up with it) forever, a
 * symbolic link would read or later write a file outside the spool. `dpath` NULL: there
 * is no df. 0, SPOOL_CHECK_EMPTY for an empty qf, or -1 with the reason in `why`. */
#define SPOOL_CHECK_EMPTY (-2)
static int spool_check(int dirfd, const char *qid, const char *qpath, const char *dpath,
                       struct envelope *e, char *why, size_t whylen)
{
    const char *name = spool_base(qpath);
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int r = -1;

    int fd = openat(dirfd, qpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
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
    if (st.st_size == 0) {
        r = SPOOL_CHECK_EMPTY;
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
    if (spool_parse_qf(data, len, qid, e, why, whylen) < 0)
        goto out;
    if (e->data_inline) {
        r = 0;
        goto out;
    }
    char dname[SPOOL_NAME_LEN + 1];
    snprintf(dname, sizeof(dname), "df%s", qid);
    if (!dpath)
        snprintf(why, whylen, "%s: %s", dname, strerror(ENOENT));
    else if (fstatat(dirfd, dpath, &st, AT_SYMLINK_NOFOLLOW) < 0)
        snprintf(why, whylen, "%s: %s", dname, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, whylen, "%s is not a regular file", dname);
    else if ((uint64_t)st.st_size != e->size)
        snprintf(why, whylen, "%s has %lld bytes, the envelope says %" PRIu64, dname,
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

/* The directories recovery renamed files in or out of: fsynced at its end. Index 0 is
 * the top, then the 16 first-level and the 256 second-level subdirectories. */
struct spool_touched {
    bool dir[1 + SPOOL_FANOUT + SPOOL_FANOUT * SPOOL_FANOUT];
};

static void spool_touch(struct spool_touched *t, unsigned depth, unsigned shard)
{
    t->dir[depth == 0 ? 0 : depth == 1 ? 1 + shard : 1 + SPOOL_FANOUT + shard] = true;
}

static void spool_sync_touched(const struct spool *sp, int dirfd, const struct spool_touched *t)
{
    char path[2 * SPOOL_MAX_HASH_DEPTH];
    for (unsigned i = 0; i < sizeof(t->dir) / sizeof(t->dir[0]); i++) {
        if (!t->dir[i])
            continue;
        if (i == 0)
            snprintf(path, sizeof(path), ".");
        else if (i <= SPOOL_FANOUT)
            spool_shard_path(i - 1, 1, path);
        else
            spool_shard_path(i - 1 - SPOOL_FANOUT, 2, path);
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
            log_error("spool %s: fsync of %s after moving messages: %s", sp->dir, path,
                      strerror(errno));
        if (fd >= 0)
            close(fd);
    }
}

/* Moves a file of a message to where the current depth wants it (a hash_depth change).
 * Returns the entry now describing it: `to` if it moved, else the old one. */
static const struct spool_entry *spool_move(const struct spool *sp, int dirfd,
                                            const struct spool_entry *e, struct spool_entry *to,
                                            struct spool_touched *touched)
{
    char from[SPOOL_PATH_LEN + 1], dest[SPOOL_PATH_LEN + 1];
    if (!e || spool_entry_wanted(sp, e))
        return e;
    *to = *e;
    to->depth = (uint8_t)sp->hash_depth;
    to->shard = (uint16_t)spool_shard_of(e->qid, sp->hash_depth);
    spool_entry_path(e, from);
    spool_entry_path(to, dest);
    if (renameat(dirfd, from, dirfd, dest) < 0) {
        log_error("spool %s: cannot move %s to %s: %s", sp->dir, from, dest, strerror(errno));
        return e;
    }
    spool_touch(touched, e->depth, e->shard);
    spool_touch(touched, to->depth, to->shard);
    return to;
}

/* A message the listing found: where its qf is and whether (and where) its df is. */
struct spool_pending_msg {
    char qid[QID_LEN];
    uint8_t qdepth, ddepth;
    uint16_t qshard, dshard;
    bool df;
};

struct spool_pending {
    struct spool_pending_msg *v;
    size_t n, cap;
};

struct spool_recover_run {
    struct spool *sp;
    int dirfd;
    spool_listed_fn listed;
    void *arg;
    struct spool_recovery *out;
    struct spool_pending *pending;
    struct spool_touched touched;
};

static int spool_pending_add(struct spool_pending *p, const struct spool_entry *q,
                             const struct spool_entry *d)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        void *nv = realloc(p->v, cap * sizeof(*p->v));
        if (!nv)
            return -1;
        p->v = nv;
        p->cap = cap;
    }
    struct spool_pending_msg *m = &p->v[p->n++];
    memcpy(m->qid, q->qid, QID_LEN);
    m->qdepth = q->depth;
    m->qshard = q->shard;
    m->df = d != NULL;
    m->ddepth = d ? d->depth : 0;
    m->dshard = d ? d->shard : 0;
    return 0;
}

/* One id's files, without reading any: moved where the depth wants them, leftovers
 * removed, a qf noted for the read. -1 when memory for the note ran out. */
static int spool_recover_group(struct spool_recover_run *run, const struct spool_group *g)
{
    struct spool *sp = run->sp;
    struct spool_recovery *out = run->out;
    struct spool_entry qto, dto;
    char path[SPOOL_PATH_LEN + 1];

    if (g->q) {
        /* The df first: the qf is what makes the message exist, so while it has not moved
         * a crash in between finds it, and this run's logic finds its df anywhere. */
        const struct spool_entry *d = spool_move(sp, run->dirfd, g->d, &dto, &run->touched);
        const struct spool_entry *q = spool_move(sp, run->dirfd, g->q, &qto, &run->touched);
        out->moved += q != g->q || d != g->d;
        if (spool_pending_add(run->pending, q, d) < 0)
            return -1;
        if (run->listed)
            run->listed(run->arg, g->qid);
    }
    for (size_t i = 0; i < g->n; i++) {
        const struct spool_entry *f = &g->all[i];
        /* A tf is never acknowledged, even next to a qf (an interrupted rewrite); a df
         * is kept while a qf or a damaged Qf refers to it. */
        if (f->kind != 't' && (f->kind != 'd' || g->q || g->Q))
            continue;
        spool_entry_path(f, path);
        if (unlinkat(run->dirfd, path, 0) < 0 && errno != ENOENT) {
            log_error("%s: cannot remove %s: %s", g->qid, path, strerror(errno));
            continue;
        }
        if (++out->removed <= SPOOL_RECOVER_LOG_MAX)
            log_info("%s: removed %s (never acknowledged)", g->qid, path);
    }
    return 0;
}

int spool_recover_list(struct spool *sp, spool_listed_fn listed, void *arg,
                       struct spool_recovery *out, struct spool_pending **pending, char *err,
                       size_t errlen)
{
    struct spool_entries ents;
    struct spool_group g;
    int r = 0;

    memset(out, 0, sizeof(*out));
    *pending = NULL;
    struct spool_recover_run run = {.sp = sp, .listed = listed, .arg = arg, .out = out};
    if (!(run.pending = calloc(1, sizeof(*run.pending)))) {
        snprintf(err, errlen, "spool %s: %s", sp->dir, strerror(ENOMEM));
        return -1;
    }
    if ((run.dirfd = spool_dirfd_dup(sp)) < 0) {
        snprintf(err, errlen, "spool %s: %s", sp->dir, strerror(errno));
        free(run.pending);
        return -1;
    }
    if (spool_list(sp, run.dirfd, &ents, err, errlen) < 0) {
        close(run.dirfd);
        free(run.pending);
        return -1;
    }
    for (size_t i = 0; i < ents.n && r == 0;) {
        spool_group_next(sp, &ents, &i, &g);
        if ((r = spool_recover_group(&run, &g)) < 0)
            snprintf(err, errlen, "spool %s: recovery stopped at %s: out of memory", sp->dir,
                     g.qid);
    }
    spool_sync_touched(sp, run.dirfd, &run.touched);
    if (out->removed > SPOOL_RECOVER_LOG_MAX)
        log_info("spool %s: %u more partial file(s) removed, not listed one by one", sp->dir,
                 out->removed - SPOOL_RECOVER_LOG_MAX);
    if (out->moved)
        log_info("spool %s: %u message(s) moved to where hash_depth %u keeps them", sp->dir,
                 out->moved, sp->hash_depth);
    free(ents.v);
    close(run.dirfd);
    if (r < 0) {
        spool_pending_free(run.pending);
        return -1;
    }
    *pending = run.pending;
    return 0;
}

size_t spool_pending_count(const struct spool_pending *p)
{
    return p ? p->n : 0;
}

void spool_pending_free(struct spool_pending *p)
{
    if (p)
        free(p->v);
    free(p);
}

/* Reads one listed message: handed to fn, or set aside as damaged. fn's value. */
static int spool_recover_one(int dirfd, const struct spool_pending_msg *m, spool_recover_fn fn,
                             void *arg, struct spool_recovery *out)
{
    struct spool_entry q = {.kind = 'q', .depth = m->qdepth, .shard = m->qshard};
    struct spool_entry d = {.kind = 'd', .depth = m->ddepth, .shard = m->dshard};
    char qid[QID_LEN + 1], qpath[SPOOL_PATH_LEN + 1], dpath[SPOOL_PATH_LEN + 1], why[256];
    struct envelope e;

    memcpy(qid, m->qid, QID_LEN);
    qid[QID_LEN] = '\0';
    memcpy(q.qid, m->qid, QID_LEN);
    memcpy(d.qid, m->qid, QID_LEN);
    spool_entry_path(&q, qpath);
    spool_entry_path(&d, dpath);
    int checked = spool_check(dirfd, qid, qpath, m->df ? dpath : NULL, &e, why, sizeof(why));
    if (checked == 0) {
        if (++out->messages <= SPOOL_RECOVER_LOG_MAX)
            log_info("%s: recovered, from=<%s>, nrcpts=%zu, size=%" PRIu64, qid, e.sender,
                     e.n_rcpts, e.size);
        int r = fn ? fn(arg, &e) : 0;
        envelope_free(&e);
        return r;
    }
    if (checked == SPOOL_CHECK_EMPTY) {
        /* Its df (if any) goes first: a df left behind is removed by the next start, an
         * empty qf left without its df would be removed again. */
        if ((m->df && unlinkat(dirfd, dpath, 0) < 0 && errno != ENOENT) ||
            unlinkat(dirfd, qpath, 0) < 0)
            log_error("%s: cannot remove the empty %s: %s", qid, qpath, strerror(errno));
        else if (++out->empty <= SPOOL_RECOVER_LOG_MAX)
            log_warn("%s: removed the empty %s: a commit cut short by a crash before the "
                     "qf's fsync, never acknowledged",
                     qid, qpath);
        return 0;
    }
    char damaged[SPOOL_PATH_LEN + 1];
    q.kind = 'Q';
    spool_entry_path(&q, damaged);
    if (renameat(dirfd, qpath, dirfd, damaged) < 0)
        log_error("%s: cannot rename damaged %s: %s", qid, qpath, strerror(errno));
    if (++out->damaged <= SPOOL_RECOVER_LOG_MAX)
        log_warn("%s: damaged queue file moved to %s: %s", qid, damaged, why);
    return 0;
}

int spool_recover_read(struct spool *sp, const struct spool_pending *p, spool_recover_fn fn,
                       void *arg, struct spool_recovery *out, char *err, size_t errlen)
{
    int r = 0, dirfd = spool_dirfd_dup(sp);
    if (dirfd < 0) {
        snprintf(err, errlen, "spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; p && i < p->n && r == 0; i++)
        if ((r = spool_recover_one(dirfd, &p->v[i], fn, arg, out)) != 0)
            snprintf(err, errlen, "spool %s: recovery stopped at %.*s: the queue could not take it",
                     sp->dir, QID_LEN, p->v[i].qid);
    if (out->messages > SPOOL_RECOVER_LOG_MAX)
        log_info("spool %s: %u more message(s) recovered, not listed one by one", sp->dir,
                 out->messages - SPOOL_RECOVER_LOG_MAX);
    if (out->empty > SPOOL_RECOVER_LOG_MAX)
        log_warn("spool %s: %u more empty queue file(s) removed, not listed one by one", sp->dir,
                 out->empty - SPOOL_RECOVER_LOG_MAX);
    if (out->damaged > SPOOL_RECOVER_LOG_MAX)
        log_warn("spool %s: %u more damaged queue file(s) set aside, not listed one by one",
                 sp->dir, out->damaged - SPOOL_RECOVER_LOG_MAX);
    close(dirfd);
    return r ? -1 : 0;
}

int spool_recover(struct spool *sp, spool_recover_fn fn, void *arg, struct spool_recovery *out,
                  char *err, size_t errlen)
{
    struct spool_pending *p;
    if (spool_recover_list(sp, NULL, NULL, out, &p, err, errlen) < 0)
        return -1;
    int r = spool_recover_read(sp, p, fn, arg, out, err, errlen);
    spool_pending_free(p);
    return r;
}

int spool_scan(struct spool *sp, int (*fn)(void *arg, const struct envelope *e), void *arg)
{
    struct spool_entries ents;
    struct spool_group g;
    struct envelope e;
    char why[256], qpath[SPOOL_PATH_LEN + 1], dpath[SPOOL_PATH_LEN + 1];
    int r = 0;

    int dirfd = spool_dirfd_dup(sp);
    if (dirfd < 0) {
        log_error("spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    if (spool_list(sp, dirfd, &ents, why, sizeof(why)) < 0) {
        log_error("%s", why);
        close(dirfd);
        return -1;
    }
    for (size_t i = 0; i < ents.n && r == 0;) {
        spool_group_next(sp, &ents, &i, &g);
        if (!g.q)
            continue;
        spool_entry_path(g.q, qpath);
        const char *df = NULL;
        if (g.d) {
            spool_entry_path(g.d, dpath);
            df = dpath;
        }
        if (spool_check(dirfd, g.qid, qpath, df, &e, why, sizeof(why)) < 0)
            continue;
        r = fn(arg, &e);
        envelope_free(&e);
    }
    free(ents.v);
    close(dirfd);
    return r;
}
