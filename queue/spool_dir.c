/*
 * The spool directory itself: creating it and its subdirectories with the right owner
 * and mode, where a queue id's files go (spool_msg_path), the lock that makes one daemon
 * its only user, and following the configured path when the directory
 * is deleted, recreated or renamed under a running daemon (docs/queue.md, "The spool
 * directory").
 *
 * Why a lock: a second daemon's recovery removes every df and tf without a qf — the
 * first daemon's messages in flight, one of which may be a rename away from its 250.
 * flock() belongs to the open file description, so a child that inherits the descriptor
 * (daemon(), a privileged parent's fork) keeps the lock after the parent exits, and the
 * kernel drops it when the last holder dies, even by kill -9.
 */
#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool_int.h"
#include "util/log.h"

#define SPOOL_DEFAULT_CHUNK (64 * 1024)
/* A single write's result is an int; keep chunks far below that. */
#define SPOOL_MAX_CHUNK (1u << 30)

/* mkdir -p: parents as 0755 (like mkdir(1)), the spool itself 0700. */
static int spool_mkdirs(const char *dir)
{
    char *path = strdup(dir);
    if (!path)
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            free(path);
            return -1;
        }
        *p = '/';
    }
    free(path);
    return mkdir(dir, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* --- the layout --- */

unsigned spool_shard_count(unsigned depth)
{
    return depth == 0 ? 1 : depth == 1 ? SPOOL_FANOUT : SPOOL_FANOUT * SPOOL_FANOUT;
}

unsigned spool_shard_of(const char *qid, unsigned depth)
{
    return qid_hash(qid) % spool_shard_count(depth);
}

static const char spool_hex[] = "0123456789abcdef";

void spool_shard_path(unsigned shard, unsigned depth, char out[2 * SPOOL_MAX_HASH_DEPTH])
{
    char *p = out;
    for (unsigned level = depth; level > 0; level--) {
        unsigned digit = level == 2 ? shard / SPOOL_FANOUT : shard % SPOOL_FANOUT;
        if (p != out)
            *p++ = '/';
        *p++ = spool_hex[digit];
    }
    *p = '\0';
}

void spool_path_at(unsigned shard, unsigned depth, const char *kind, const char *qid,
                   char out[SPOOL_PATH_LEN + 1])
{
    char dir[2 * SPOOL_MAX_HASH_DEPTH];
    spool_shard_path(shard, depth, dir);
    snprintf(out, SPOOL_PATH_LEN + 1, "%s%s%.2s%.*s", dir, depth ? "/" : "", kind, QID_LEN, qid);
}

int spool_msg_path(const struct spool *sp, const char *kind, const char *qid, char *buf, size_t len)
{
    char path[SPOOL_PATH_LEN + 1];
    spool_path_at(spool_shard_of(qid, sp->hash_depth), sp->hash_depth, kind, qid, path);
    size_t n = strlen(path);
    if (n >= len)
        return -1;
    memcpy(buf, path, n + 1);
    return (int)n;
}

/* One subdirectory: made if missing (then *made is set), chowned and 0700 as the spool. */
static int spool_make_shard(const struct spool *sp, int dirfd, const char *path, bool *made)
{
    struct stat st;
    if (mkdirat(dirfd, path, 0700) == 0)
        *made = true;
    else if (errno != EEXIST)
        return -1;
    if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    if (sp->chown && (st.st_uid != sp->owner || st.st_gid != sp->group) &&
        fchownat(dirfd, path, sp->owner, sp->group, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    if ((st.st_mode & 07777) != 0700 && fchmodat(dirfd, path, 0700, 0) < 0)
        return -1;
    return 0;
}

static int spool_fsync_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int spool_make_shards(const struct spool *sp, int dirfd, unsigned *made_out, char *what,
                      size_t whatlen)
{
    char path[2 * SPOOL_MAX_HASH_DEPTH];
    bool top_made = false;
    unsigned n_made = 0;

    for (unsigned i = 0; sp->hash_depth && i < SPOOL_FANOUT; i++) {
        bool made = false;
        spool_shard_path(i, 1, path);
        snprintf(what, whatlen, "mkdir %s", path);
        if (spool_make_shard(sp, dirfd, path, &made) < 0)
            return -1;
        top_made |= made;
        n_made += made;
        if (sp->hash_depth < 2)
            continue;
        made = false;
        for (unsigned j = 0; j < SPOOL_FANOUT; j++) {
            bool leaf = false;
            spool_shard_path(i * SPOOL_FANOUT + j, 2, path);
            snprintf(what, whatlen, "mkdir %s", path);
            if (spool_make_shard(sp, dirfd, path, &leaf) < 0)
                return -1;
            made |= leaf;
            n_made += leaf;
        }
        spool_shard_path(i, 1, path);
        snprintf(what, whatlen, "fsync %s", path);
        if (made && spool_fsync_at(dirfd, path) < 0)
            return -1;
    }
    if (made_out)
        *made_out = n_made;
    snprintf(what, whatlen, "fsync");
    return top_made && fsync(dirfd) < 0 ? -1 : 0;
}

int spool_repair_shards(struct spool *sp)
{
    char what[32];
    unsigned made = 0;
    pthread_mutex_lock(&sp->lock);
    int r = spool_make_shards(sp, sp->cur.dirfd, &made, what, sizeof(what));
    if (r < 0)
        log_error("spool %s: %s: %s", sp->dir, what, strerror(errno));
    else if (made)
        log_warn("spool %s: %u subdirectory(ies) were missing: made them again", sp->dir, made);
    pthread_mutex_unlock(&sp->lock);
    return r;
}

static void spool_handle_close(struct spool_handle *h)
{
    if (h->lockfd >= 0)
        close(h->lockfd);
    if (h->dirfd >= 0)
        close(h->dirfd);
    h->lockfd = h->dirfd = -1;
}

static int spool_write_pid(int fd)
{
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    return ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n ? -1 : 0;
}

/* The holder's pid as its lock file says, digits only (the file is ours, but a message
 * must not carry whatever bytes someone left in it). */
static void spool_read_pid(int fd, char *out, size_t outlen)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    size_t len = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && len + 1 < outlen; i++)
        out[len++] = buf[i];
    out[len] = '\0';
    if (!len)
        snprintf(out, outlen, "unknown");
}

static int spool_lock(const struct spool *sp, struct spool_handle *h, char *err, size_t errlen)
{
    struct stat st;
    const char *step = "open " SPOOL_LOCK_NAME;
    h->lockfd = openat(h->dirfd, SPOOL_LOCK_NAME,
                       O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (h->lockfd < 0 || fstat(h->lockfd, &st) < 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "spool %s: %s is not a regular file", sp->dir, SPOOL_LOCK_NAME);
        return -1;
    }
    step = "chown " SPOOL_LOCK_NAME;
    if (sp->chown && (st.st_uid != sp->owner || st.st_gid != sp->group) &&
        fchown(h->lockfd, sp->owner, sp->group) < 0)
        goto fail;
    if (flock(h->lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            goto fail;
        char pid[16];
        spool_read_pid(h->lockfd, pid, sizeof(pid));
        snprintf(err, errlen, "spool %s is in use by another ringmaild (pid %s)", sp->dir, pid);
        errno = EWOULDBLOCK; /* for spool_open's caller: another daemon, not a failure */
        return -1;
    }
    step = "write " SPOOL_LOCK_NAME;
    if (spool_write_pid(h->lockfd) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "spool %s: %s: %s", sp->dir, step, strerror(errno));
    return -1;
}

/* Opens (creating it if missing) and locks the directory the configured path names now. */
static int spool_handle_open(const struct spool *sp, struct spool_handle *h, char *err,
                             size_t errlen)
{
    struct stat st;
    char what[32];
    const char *step = "mkdir";

    *h = (struct spool_handle){.dirfd = -1, .lockfd = -1};
    if (spool_mkdirs(sp->dir) < 0)
        goto fail;
    step = "open";
    h->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (h->dirfd < 0 || fstat(h->dirfd, &st) < 0)
        goto fail;
    step = "chown";
    if (sp->chown && (st.st_uid != sp->owner || st.st_gid != sp->group) &&
        fchown(h->dirfd, sp->owner, sp->group) < 0)
        goto fail;
    /* Queue files name senders and recipients: nobody but the MTA may list them. */
    step = "chmod 0700";
    if ((st.st_mode & 07777) != 0700 && fchmod(h->dirfd, 0700) < 0)
        goto fail;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    if (spool_lock(sp, h, err, errlen) < 0) {
        spool_handle_close(h);
        return -1;
    }
    /* Only the lock's holder touches what is inside. */
    step = what;
    if (spool_make_shards(sp, h->dirfd, NULL, what, sizeof(what)) == 0)
        return 0;
fail:
    snprintf(err, errlen, "spool %s: %s: %s", sp->dir, step, strerror(errno));
    spool_handle_close(h);
    return -1;
}

struct spool *spool_open(const struct spool_settings *s, char *err, size_t errlen)
{
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp || !(sp->dir = strdup(s->dir))) {
        free(sp);
        snprintf(err, errlen, "spool %s: out of memory", s->dir);
        return NULL;
    }
    sp->owner = s->owner;
    sp->group = s->group;
    sp->chown = s->chown;
    sp->min_free_blocks = s->min_free_blocks;
    sp->hash_depth = s->hash_depth;
    if (s->hash_depth > SPOOL_MAX_HASH_DEPTH) {
        snprintf(err, errlen, "spool %s: hash_depth %u: at most %d levels of subdirectories",
                 s->dir, s->hash_depth, SPOOL_MAX_HASH_DEPTH);
        free(sp->dir);
        free(sp);
        errno = EINVAL;
        return NULL;
    }
    sp->write_chunk = s->write_chunk ? s->write_chunk : SPOOL_DEFAULT_CHUNK;
    if (sp->write_chunk > SPOOL_MAX_CHUNK)
        sp->write_chunk = SPOOL_MAX_CHUNK;
    pthread_mutex_init(&sp->lock, NULL);
    if (spool_handle_open(sp, &sp->cur, err, errlen) < 0) {
        int e = errno;
        spool_close(sp);
        errno = e;
        return NULL;
    }
    return sp;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    spool_handle_close(&sp->cur);
    pthread_mutex_destroy(&sp->lock);
    free(sp->dir);
    free(sp);
}

const char *spool_dir(const struct spool *sp)
{
    return sp->dir;
}

/* Under sp->lock: a failure to follow is logged once until it changes or succeeds, as
 * every message of every worker would otherwise repeat it. */
static void spool_follow_failed(struct spool *sp, const char *err)
{
    if (strcmp(err, sp->last_error) == 0)
        return;
    snprintf(sp->last_error, sizeof(sp->last_error), "%s", err);
    log_error("%s (new mail gets a temporary failure until this is fixed)", err);
}

int spool_dirref_get(struct spool *sp, bool follow, struct spool_dirref *out)
{
    struct stat st;
    struct spool_handle h;
    char err[sizeof(sp->last_error)];

    pthread_mutex_lock(&sp->lock);
    int found = follow ? stat(sp->dir, &st) : 0;
    if (follow && (found < 0 || st.st_dev != sp->cur.dev || st.st_ino != sp->cur.ino)) {
        bool missing = found < 0;
        if (spool_handle_open(sp, &h, err, sizeof(err)) < 0) {
            spool_follow_failed(sp, err);
            pthread_mutex_unlock(&sp->lock);
            return -1;
        }
        log_warn("spool %s: %s: new mail goes to the directory now at that path", sp->dir,
                 missing ? "the directory was deleted or renamed, recreated it"
                         : "the directory was replaced");
        spool_handle_close(&sp->cur);
        sp->cur = h;
        sp->generation++;
        sp->last_error[0] = '\0';
    }
    *out = (struct spool_dirref){.fd = fcntl(sp->cur.dirfd, F_DUPFD_CLOEXEC, 0),
                                 .dev = sp->cur.dev,
                                 .ino = sp->cur.ino,
                                 .generation = sp->generation};
    if (out->fd < 0) {
        snprintf(err, sizeof(err), "spool %s: cannot duplicate its descriptor: %s", sp->dir,
                 strerror(errno));
        spool_follow_failed(sp, err);
    }
    pthread_mutex_unlock(&sp->lock);
    return out->fd < 0 ? -1 : 0;
}

int spool_dirfd_dup(struct spool *sp)
{
    pthread_mutex_lock(&sp->lock);
    int fd = fcntl(sp->cur.dirfd, F_DUPFD_CLOEXEC, 0);
    pthread_mutex_unlock(&sp->lock);
    return fd;
}
