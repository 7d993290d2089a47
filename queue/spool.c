/*
 * The spool's message path: every file operation of a message being received or
 * committed is an io_uring operation on the worker's ring (docs/queue.md, "Commit").
 *
 * A message owns two files, df (data) and tf (envelope, later qf). Both are opened as
 * soon as the first data arrives, so at the end of DATA only writes, fsyncs, one rename
 * and a shared directory fsync remain. Data is gathered into write_chunk-sized chunks; a
 * full chunk is written at its own file offset (up to SPOOL_MAX_WRITES in flight), so a
 * small message leaves in exactly one write at commit. The two files are written and
 * fsynced in parallel; the journal commits of many messages merge in the file system.
 *
 * Lifetime: every submitted operation is counted in m->inflight and keeps the message
 * alive. Once the message is in the spool's hands (committed or aborted) and an error or
 * an abort has happened, the message waits for inflight to drain, unlinks the files it
 * created, and is freed (after `done` for a failed commit).
 */
#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool_int.h"
#include "util/buf.h"
#include "util/engine.h"
#include "util/log.h"

#define SPOOL_DEFAULT_CHUNK (64 * 1024)
/* A single write's result is an int; keep chunks far below that. */
#define SPOOL_MAX_CHUNK (1u << 30)
/* Enough parallel writes per message to keep a large message streaming, few enough that
 * one huge message cannot fill the ring. */
#define SPOOL_MAX_WRITES 4

#define spool_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct spool_chunk {
    struct engine_op op;
    struct spool_file *f;
    struct spool_chunk *next; /* in the file's queue of chunks not yet written */
    uint64_t off;             /* file offset of data[0] */
    size_t len;
    size_t done; /* bytes written so far (short writes re-issue the rest) */
    char data[];
};

enum spool_file_state {
    SPOOL_FILE_CLOSED,
    SPOOL_FILE_OPENING,
    SPOOL_FILE_OPEN,
    SPOOL_FILE_SYNCING,
    SPOOL_FILE_SYNCED,
};

struct spool_file {
    struct engine_op op; /* openat, then fsync: one at a time */
    struct spool_msg *m;
    char name[SPOOL_NAME_LEN + 1];
    int fd;
    enum spool_file_state state;
    bool created; /* our openat made it: remove it on failure */
    bool sealed;  /* commit queued the last chunk */
    struct spool_chunk *head, *tail;
    unsigned writing; /* chunks with a write in flight */
};

struct spool_msg {
    struct spool_worker *sw;
    char qid[QID_LEN + 1];
    struct spool_file df, tf;
    struct spool_chunk *fill; /* data being gathered, not yet queued */
    uint64_t size;            /* bytes accepted by spool_msg_write */
    unsigned inflight;
    int err; /* first error, an errno */
    bool started, committed, aborted, detached, renaming, renamed, cleaning;
    struct engine_op rename_op;
    struct engine_op cleanup_op; /* the unlinks of a failed or aborted message */
    char qfname[SPOOL_NAME_LEN + 1];
    void (*done)(void *arg, int err);
    void *arg;
    struct spool_msg *next; /* in the worker's directory-fsync batches */
};

struct spool_worker {
    struct spool *sp;
    struct engine_worker *w;
    struct engine_op gather_op, dirsync_op;
    bool dirsync_busy;         /* a gather or a directory fsync is in flight */
    struct spool_msg *waiting; /* renamed, for the next directory fsync */
    struct spool_msg *syncing; /* renamed before the fsync in flight started */
    unsigned live;             /* messages not yet freed */
    uint64_t commits, dir_syncs;
};

/* --- the spool --- */

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

struct spool *spool_open(const struct spool_settings *s, char *err, size_t errlen)
{
    struct stat st;
    const char *step = "mkdir";
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp || !(sp->dir = strdup(s->dir))) {
        free(sp);
        snprintf(err, errlen, "spool %s: out of memory", s->dir);
        return NULL;
    }
    sp->write_chunk = s->write_chunk ? s->write_chunk : SPOOL_DEFAULT_CHUNK;
    if (sp->write_chunk > SPOOL_MAX_CHUNK)
        sp->write_chunk = SPOOL_MAX_CHUNK;
    sp->dirfd = -1;
    if (spool_mkdirs(s->dir) < 0)
        goto fail;
    step = "open";
    sp->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0 || fstat(sp->dirfd, &st) < 0)
        goto fail;
    step = "chown";
    if (s->chown && (st.st_uid != s->owner || st.st_gid != s->group) &&
        fchown(sp->dirfd, s->owner, s->group) < 0)
        goto fail;
    /* Queue files name senders and recipients: nobody but the MTA may list them. */
    step = "chmod 0700";
    if ((st.st_mode & 07777) != 0700 && fchmod(sp->dirfd, 0700) < 0)
        goto fail;
    return sp;
fail:
    snprintf(err, errlen, "spool %s: %s: %s", s->dir, step, strerror(errno));
    spool_close(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    free(sp->dir);
    free(sp);
}

const char *spool_dir(const struct spool *sp)
{
    return sp->dir;
}

/* --- one message --- */

static void msg_step(struct spool_msg *m);

/* Remembers the first error and logs it once; an aborted message is not an error. */
static void msg_fail(struct spool_msg *m, int err, const char *what, const char *name)
{
    if (m->err || m->aborted)
        return;
    m->err = err;
    log_error("%s: spool %s %s: %s", m->qid, what, name, strerror(err));
}

static struct io_uring_sqe *msg_sqe(struct spool_msg *m, struct engine_op *op)
{
    m->inflight++;
    return engine_sqe(m->sw->w, op);
}

static void chunk_write_done(struct engine_op *op, int res);

static struct spool_chunk *chunk_new(struct spool_file *f, uint64_t off, size_t cap)
{
    struct spool_chunk *c = malloc(sizeof(*c) + cap);
    if (!c) {
        msg_fail(f->m, ENOMEM, "buffer for", f->name);
        return NULL;
    }
    *c = (struct spool_chunk){.op.complete = chunk_write_done, .f = f, .off = off};
    return c;
}

static void chunk_issue(struct spool_chunk *c)
{
    struct spool_file *f = c->f;
    struct io_uring_sqe *sqe = msg_sqe(f->m, &c->op);
    io_uring_prep_write(sqe, f->fd, c->data + c->done, (unsigned)(c->len - c->done),
                        c->off + c->done);
}

static void chunk_write_done(struct engine_op *op, int res)
{
    struct spool_chunk *c = spool_of(op, struct spool_chunk, op);
    struct spool_file *f = c->f;
    struct spool_msg *m = f->m;

    m->inflight--;
    if (res <= 0) {
        /* 0 from a regular file means no progress is possible: do not spin. */
        msg_fail(m, res < 0 ? -res : EIO, "write", f->name);
    } else if ((c->done += (size_t)res) < c->len && !m->err && !m->aborted) {
        chunk_issue(c);
        return;
    }
    free(c);
    f->writing--;
    msg_step(m);
}

static void file_queue(struct spool_file *f, struct spool_chunk *c)
{
    if (f->tail)
        f->tail->next = c;
    else
        f->head = c;
    f->tail = c;
}

static void file_op_done(struct engine_op *op, int res)
{
    struct spool_file *f = spool_of(op, struct spool_file, op);
    struct spool_msg *m = f->m;

    m->inflight--;
    if (res < 0) {
        msg_fail(m, -res, f->state == SPOOL_FILE_OPENING ? "create" : "fsync", f->name);
    } else if (f->state == SPOOL_FILE_OPENING) {
        f->fd = res;
        f->created = true;
        f->state = SPOOL_FILE_OPEN;
    } else {
        f->state = SPOOL_FILE_SYNCED;
    }
    msg_step(m);
}

/* Moves one file forward: open it, write what is queued, fsync once everything is. */
static void file_step(struct spool_file *f)
{
    struct spool_msg *m = f->m;
    struct io_uring_sqe *sqe;

    if (f->state == SPOOL_FILE_CLOSED && m->started) {
        f->state = SPOOL_FILE_OPENING;
        sqe = msg_sqe(m, &f->op);
        /* O_EXCL: an id collision fails the commit instead of overwriting a message. */
        io_uring_prep_openat(sqe, m->sw->sp->dirfd, f->name,
                             O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        return;
    }
    if (f->state != SPOOL_FILE_OPEN)
        return;
    while (f->head && f->writing < SPOOL_MAX_WRITES) {
        struct spool_chunk *c = f->head;
        if (!(f->head = c->next))
            f->tail = NULL;
        f->writing++;
        chunk_issue(c);
    }
    if (f->sealed && !f->head && !f->writing) {
        f->state = SPOOL_FILE_SYNCING;
        io_uring_prep_fsync(msg_sqe(m, &f->op), f->fd, 0);
    }
}

/* Closing needs no completion: only the descriptor travels in the SQE. */
static void file_close(struct spool_msg *m, struct spool_file *f)
{
    if (f->fd < 0)
        return;
    io_uring_prep_close(engine_sqe(m->sw->w, NULL), f->fd);
    f->fd = -1;
}

static void file_drop_queue(struct spool_file *f)
{
    while (f->head) {
        struct spool_chunk *c = f->head;
        f->head = c->next;
        free(c);
    }
    f->tail = NULL;
}

static void msg_free(struct spool_msg *m)
{
    struct spool_worker *sw = m->sw;
    free(m->fill);
    file_drop_queue(&m->df);
    file_drop_queue(&m->tf);
    sw->live--;
    free(m);
}

/* The end of a message that the spool owns: report, count, free. */
static void msg_finish(struct spool_msg *m)
{
    if (!m->err && !m->aborted)
        m->sw->commits++;
    if (m->committed && !m->detached && m->done)
        m->done(m->arg, -m->err);
    msg_free(m);
}

static void msg_cleanup_done(struct engine_op *op, int res)
{
    struct spool_msg *m = spool_of(op, struct spool_msg, cleanup_op);
    m->inflight--;
    if (res < 0 && res != -ENOENT)
        log_warn("%s: spool cannot remove a file: %s", m->qid, strerror(-res));
    if (!m->inflight)
        msg_finish(m);
}

static void msg_unlink(struct spool_msg *m, const char *name)
{
    io_uring_prep_unlinkat(msg_sqe(m, &m->cleanup_op), m->sw->sp->dirfd, name, 0);
}

/* A failed or aborted message with nothing in flight: remove what it created. */
static void msg_cleanup(struct spool_msg *m)
{
    if (m->cleaning)
        return;
    m->cleaning = true;
    file_close(m, &m->df);
    file_close(m, &m->tf);
    if (m->df.created)
        msg_unlink(m, m->df.name);
    if (m->tf.created)
        msg_unlink(m, m->renamed ? m->qfname : m->tf.name);
    if (m->inflight)
        return;
    if (!m->committed || m->detached) {
        msg_finish(m);
        return;
    }
    /* Report from a completion, never from inside spool_msg_commit itself. */
    io_uring_prep_nop(msg_sqe(m, &m->cleanup_op));
}

static void dirsync_kick(struct spool_worker *sw);

static void msg_rename_done(struct engine_op *op, int res)
{
    struct spool_msg *m = spool_of(op, struct spool_msg, rename_op);
    struct spool_worker *sw = m->sw;

    m->inflight--;
    if (res < 0) {
        msg_fail(m, -res, "rename", m->tf.name);
        msg_step(m);
        return;
    }
    m->renamed = true;
    m->next = sw->waiting;
    sw->waiting = m;
    dirsync_kick(sw);
}

static void msg_step(struct spool_msg *m)
{
    if (m->aborted || (m->err && m->committed)) {
        if (!m->inflight)
            msg_cleanup(m);
        return;
    }
    /* Before commit an error only stops the I/O; the owner still holds the message. */
    if (m->err || m->renaming)
        return;
    file_step(&m->df);
    file_step(&m->tf);
    if (m->df.state != SPOOL_FILE_SYNCED || m->tf.state != SPOOL_FILE_SYNCED)
        return;
    /* Both files are durable: the rename makes the message exist. */
    file_close(m, &m->df);
    file_close(m, &m->tf);
    m->renaming = true;
    io_uring_prep_renameat(msg_sqe(m, &m->rename_op), m->sw->sp->dirfd, m->tf.name,
                           m->sw->sp->dirfd, m->qfname, 0);
}

/* --- group commit of the directory --- */

/* A rename is durable once a directory fsync that started after it completed has
 * completed. One fsync runs at a time per worker; renames that complete meanwhile wait
 * for the next. Before each fsync a NOP lets the rest of the current loop turn's
 * completions (often many renames released by the same journal commit) join it. */
static void dirsync_kick(struct spool_worker *sw)
{
    if (sw->dirsync_busy || !sw->waiting)
        return;
    sw->dirsync_busy = true;
    io_uring_prep_nop(engine_sqe(sw->w, &sw->gather_op));
}

static void dirsync_gathered(struct engine_op *op, int res)
{
    (void)res;
    struct spool_worker *sw = spool_of(op, struct spool_worker, gather_op);
    sw->syncing = sw->waiting;
    sw->waiting = NULL;
    sw->dir_syncs++;
    io_uring_prep_fsync(engine_sqe(sw->w, &sw->dirsync_op), sw->sp->dirfd, 0);
}

static void dirsync_done(struct engine_op *op, int res)
{
    struct spool_worker *sw = spool_of(op, struct spool_worker, dirsync_op);
    struct spool_msg *m = sw->syncing, *next;

    sw->syncing = NULL;
    sw->dirsync_busy = false;
    for (; m; m = next) {
        next = m->next;
        if (res < 0) {
            msg_fail(m, -res, "fsync of", sw->sp->dir);
            msg_step(m);
        } else {
            msg_finish(m);
        }
    }
    dirsync_kick(sw);
}

/* --- the API --- */

struct spool_worker *spool_worker_new(struct spool *sp, struct engine_worker *w)
{
    struct spool_worker *sw = calloc(1, sizeof(*sw));
    if (!sw)
        return NULL;
    sw->sp = sp;
    sw->w = w;
    sw->gather_op.complete = dirsync_gathered;
    sw->dirsync_op.complete = dirsync_done;
    return sw;
}

void spool_worker_free(struct spool_worker *sw)
{
    if (!sw)
        return;
    /* Only after the loop ended can messages be left: their completions will never come.
     * Unacknowledged files are removed by the next spool_recover(). */
    if (sw->live)
        log_warn("spool: worker stopped with %u message(s) in flight", sw->live);
    free(sw);
}

struct spool_msg *spool_msg_new(struct spool_worker *sw, char qid_out[QID_LEN + 1])
{
    struct spool_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->sw = sw;
    qid_new(m->qid, engine_worker_index(sw->w));
    memcpy(qid_out, m->qid, QID_LEN + 1);
    struct spool_file *files[] = {&m->df, &m->tf};
    const char *kinds[] = {"df", "tf"};
    for (int i = 0; i < 2; i++) {
        *files[i] = (struct spool_file){.op.complete = file_op_done, .m = m, .fd = -1};
        snprintf(files[i]->name, sizeof(files[i]->name), "%s%s", kinds[i], m->qid);
    }
    snprintf(m->qfname, sizeof(m->qfname), "qf%s", m->qid);
    m->rename_op.complete = msg_rename_done;
    m->cleanup_op.complete = msg_cleanup_done;
    sw->live++;
    return m;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
    const char *p = data;
    size_t cap = m->sw->sp->write_chunk;

    if (m->err)
        return -1;
    if (len == 0)
        return 0;
    m->started = true;
    while (len) {
        if (!m->fill && !(m->fill = chunk_new(&m->df, m->size, cap)))
            return -1;
        size_t n = cap - m->fill->len < len ? cap - m->fill->len : len;
        memcpy(m->fill->data + m->fill->len, p, n);
        m->fill->len += n;
        m->size += n;
        p += n;
        len -= n;
        if (m->fill->len == cap) {
            file_queue(&m->df, m->fill);
            m->fill = NULL;
        }
    }
    msg_step(m);
    return 0;
}

/* Queues the envelope as the tf file's only chunk. */
static void msg_queue_envelope(struct spool_msg *m, const struct envelope *e)
{
    struct envelope copy = *e;
    struct buf b;
    struct spool_chunk *c;

    memcpy(copy.qid, m->qid, sizeof(copy.qid));
    copy.size = m->size;
    buf_init(&b, 0);
    if (envelope_write(&copy, &b) < 0) {
        msg_fail(m, ENOMEM, "envelope for", m->tf.name);
    } else if ((c = chunk_new(&m->tf, 0, b.len))) {
        memcpy(c->data, b.data, b.len);
        c->len = b.len;
        file_queue(&m->tf, c);
    }
    buf_free(&b);
}

void spool_msg_commit(struct spool_msg *m, const struct envelope *e,
                      void (*done)(void *arg, int err), void *arg)
{
    m->committed = true;
    m->done = done;
    m->arg = arg;
    if (!m->err) {
        m->started = true; /* an empty message still has an (empty) df */
        if (m->fill) {
            file_queue(&m->df, m->fill);
            m->fill = NULL;
        }
        msg_queue_envelope(m, e);
        m->df.sealed = m->tf.sealed = true;
    }
    msg_step(m);
}

void spool_msg_detach(struct spool_msg *m)
{
    m->detached = true;
}

void spool_msg_abort(struct spool_msg *m)
{
    m->aborted = true;
    msg_step(m);
}

void spool_worker_stats(const struct spool_worker *sw, uint64_t *commits, uint64_t *dir_syncs)
{
    *commits = sw->commits;
    *dir_syncs = sw->dir_syncs;
}
