/*
 * The spool's message path: every file operation of a message being received or
 * committed goes through the worker's backend (queue/spool_fs.h; io_uring in the daemon),
 * see docs/queue.md, "Commit".
 *
 * A message owns up to two files, df (data) and tf (envelope, later qf), and holds neither
 * while it is small: data is gathered in a buffer that grows (from 4 KiB, doubling) up
 * to write_chunk; only a full chunk creates the df and is written at its own file offset
 * (up to SPOOL_MAX_WRITES in flight), so a session that stalls in DATA holds no spool
 * descriptor and a buffer the size of what it sent. The commit of a message that never
 * needed a df writes envelope and data into the tf in one write (one file: half the
 * creates, fsyncs and unlinks of the file system's busiest work); otherwise it creates
 * what is missing (the df first, then the tf), writes the rest and the envelope, and
 * fsyncs the df. Once the tf is written (and the df durable) it renames tf→qf, then
 * fsyncs the qf and joins the worker's next directory fsync, both at once: a journalling
 * file system carries the qf's data and its new name in one commit, where fsyncing the
 * tf before the rename took two in a row (docs/benchmarks.md). The journal commits of
 * many messages merge in the file system.
 *
 * The order is what makes a 250 survive a power cut: `done` comes only after the qf's
 * fsync and a directory fsync that started after the rename completed, and the df (the
 * one file written in several pieces) is durable before the rename. A cut before that
 * can leave a qf that is empty (never acknowledged: recovery removes it) or, on a file
 * system that wrote part of it back, cut short (set aside as damaged;
 * queue/spool_recover.c). tests/unit/test_spool_power.c checks it against a model of a
 * file system that loses everything not fsynced, at every point of a commit.
 *
 * Lifetime: every submitted operation is counted in m->inflight and keeps the message
 * alive. Once the message is in the spool's hands (committed or aborted) and an error or
 * an abort has happened, the message waits for inflight to drain, unlinks the files it
 * created, and is freed (after `done` for a failed commit).
 *
 * Reading back and writing again (for mail filters, docs/queue.md "Reading a message back
 * and writing it again"): every byte of the data is either in a chunk still in memory
 * (being filled, queued, or with its write in flight) or in the df, written: a read is
 * served from the chunk that holds it, or from the df up to the next chunk in memory, so
 * it always sees every spool_msg_write before it without waiting for the disk. A restart
 * leaves the first data where it is (data[0]: its df keeps writing what it was given)
 * and starts data[1]; the first df's name is unlinked, its descriptor kept for reading,
 * and only then is the new df created under the same name, so at any time at most one
 * df<qid> exists and recovery sees nothing new.
 */
#include "queue/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "queue/spool_fs.h"
#include "queue/spool_int.h"
#include "util/buf.h"
#include "util/log.h"

/* Enough parallel writes per message to keep a large message streaming, few enough that
 * one huge message cannot fill the ring. */
#define SPOOL_MAX_WRITES 4
/* The first buffer of a message: a Received: header and a few packets. */
#define SPOOL_FIRST_BUFFER 4096
/* How often a worker looks at the directory (still the one at the configured path?) and
 * at its free space: cheap enough to do from MAIL, rare enough to cost nothing. */
#define SPOOL_CHECK_MS 1000
/* A full or broken disk fails every commit: one line per kind of failure per interval,
 * then a count (util/log.h). */
#define SPOOL_FAILURE_LOG_MS 10000
/* One spool_msg_read: what a mail filter takes in one body chunk (65,535 octets), and
 * the bounce buffer a read of the df holds while it runs. */
#define SPOOL_MSG_READ_MAX (64u * 1024)

static struct log_limit spool_log_failures = LOG_LIMIT_INIT(SPOOL_FAILURE_LOG_MS);

#define spool_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct spool_chunk {
    struct engine_op op;
    struct spool_file *f;
    struct spool_chunk *next; /* in the file's queue of chunks not yet written */
    uint64_t off;             /* file offset of data[0] */
    size_t len, cap;
    size_t done; /* bytes written so far (short writes re-issue the rest) */
    char data[];
};

/* In this order: a file is "open or further" from SPOOL_FILE_OPEN on. */
enum spool_file_state {
    SPOOL_FILE_CLOSED,
    SPOOL_FILE_OPENING,
    SPOOL_FILE_OPEN,
    SPOOL_FILE_SYNCING,
    SPOOL_FILE_SYNCED,
};

struct spool_file {
    struct engine_op op; /* create, then fsync: one at a time */
    struct spool_msg *m;
    char name[SPOOL_PATH_LEN + 1]; /* relative to the spool directory */
    int fd;
    enum spool_file_state state;
    bool created; /* our create made it: remove it on failure */
    bool sealed;  /* commit queued the last chunk */
    struct spool_chunk *head, *tail;
    struct spool_chunk *busy; /* chunks with a write in flight: still readable here */
    unsigned writing;         /* ... and how many */
};

/* One version of a message's data: the df, the chunks on their way to it and the one
 * being filled. */
struct spool_data {
    struct spool_file file;
    struct spool_chunk *fill; /* data being gathered, not yet queued */
    uint64_t size;            /* bytes accepted by spool_msg_write */
};

/* The one spool_msg_read a message has at a time. A read of the df goes into `bounce`,
 * not the caller's buffer, so that an abort during it leaves that buffer alone. */
struct spool_read {
    struct engine_op op; /* the `later` that resolves it, then the df's read */
    bool active;
    char *bounce; /* the df's read in flight, when not NULL */
    void *buf;
    size_t len;
    uint64_t off;
    spool_read_fn done;
    void *arg;
};

struct spool_msg {
    struct spool_worker *sw;
    struct spool_dirref *dir; /* where its files are: taken at the first create */
    char qid[QID_LEN + 1];
    unsigned shard; /* its subdirectory (spool_shard_of) */
    /* [0] the data as received; [1] the data written again after spool_msg_restart */
    struct spool_data data[2];
    struct spool_data *cur; /* what spool_msg_write appends to and the commit stores */
    struct spool_file tf;
    unsigned inflight;
    int err;                         /* first error, an errno */
    const char *err_what, *err_name; /* ... and what failed on which file, for the log */
    bool committed, aborted, detached, renaming, renamed, cleaning, retried;
    bool dir_synced;      /* renamed, and a directory fsync after it completed */
    bool first_unlinking; /* restarted: the first df's unlink was issued */
    bool data_inline;     /* the commit writes the data into the tf: no df (below) */
    struct engine_op rename_op;
    struct engine_op first_unlink_op;
    struct spool_read rd;
    struct engine_op cleanup_op; /* the unlinks of a failed or aborted message */
    char qfname[SPOOL_PATH_LEN + 1];
    void (*done)(void *arg, int err);
    void *arg;
    struct spool_dirsync_wait sync; /* renamed: its directory's fsync (in inflight) */
};

/* The directory fsync of one leaf subdirectory (or of the flat spool) in a round of the
 * group commit: opened (unless flat), fsynced, closed. */
struct spool_dirsync {
    struct engine_op op;
    struct spool_worker *sw;
    int fd;       /* the subdirectory, open during its fsync; -1 otherwise */
    bool opening; /* op is the open, not yet the fsync */
    char path[2 * SPOOL_MAX_HASH_DEPTH];
    struct spool_dirsync_wait *syncing; /* covered by the fsync in flight */
};

/* --- the worker's directory and free space --- */

void spool_dirref_put(struct spool_dirref *d)
{
    if (--d->refs)
        return;
    close(d->fd);
    free(d);
}

static uint64_t spool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Makes the directory the configured path names the worker's. False if it cannot. */
static bool worker_follow(struct spool_worker *sw)
{
    struct spool_dirref d, *n;
    if (spool_dirref_get(sw->sp, true, &d) < 0)
        return false;
    if (d.generation == sw->dir->generation) {
        close(d.fd);
        return true;
    }
    if (!(n = malloc(sizeof(*n)))) {
        close(d.fd);
        return false;
    }
    *n = d;
    n->refs = 1;
    spool_dirref_put(sw->dir);
    sw->dir = n;
    return true;
}

/* At most once per SPOOL_CHECK_MS, or now when forced (a create found no directory). */
void spool_worker_refresh(struct spool_worker *sw, bool force)
{
    struct stat st;
    struct statvfs vfs;
    uint64_t now = spool_now_ms();

    if (!force && sw->checked && now - sw->checked_ms < SPOOL_CHECK_MS)
        return;
    sw->checked = true;
    sw->checked_ms = now;
    bool moved = force || stat(sw->sp->dir, &st) < 0 || st.st_dev != sw->dir->dev ||
                 st.st_ino != sw->dir->ino;
    sw->lost = moved && !worker_follow(sw);
    sw->space_known = fstatvfs(sw->dir->fd, &vfs) == 0 && (vfs.f_frsize || vfs.f_bsize);
    if (sw->space_known) {
        sw->space_blocks = vfs.f_bavail;
        sw->block_size = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
    }
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

bool spool_space_check(struct spool_worker *sw, uint64_t size_hint)
{
    struct spool *sp = sw->sp;

    spool_worker_refresh(sw, false);
    if (!sw->space_known)
        return true;
    bool low = sw->space_blocks < sp->min_free_blocks;
    if (atomic_exchange(&sp->low_space, low) != low) {
        if (low)
            log_warn("spool %s: %llu blocks free, fewer than min_free_blocks (%llu): new mail "
                     "gets a temporary failure",
                     sp->dir, (unsigned long long)sw->space_blocks,
                     (unsigned long long)sp->min_free_blocks);
        else
            log_info("spool %s: %llu blocks free again (min_free_blocks %llu)", sp->dir,
                     (unsigned long long)sw->space_blocks, (unsigned long long)sp->min_free_blocks);
    }
    /* sendmail's enoughdiskspace(): a message of N bytes needs N / blocksize + 1 blocks. */
    uint64_t need = sp->min_free_blocks;
    if (size_hint)
        need = add_sat(need, size_hint / sw->block_size + 1);
    return sw->space_blocks >= need;
}

/* --- one message --- */

static void msg_step(struct spool_msg *m);

/* Remembers the first error; msg_finish logs it. An aborted message is not an error. */
static void msg_fail(struct spool_msg *m, int err, const char *what, const char *name)
{
    if (m->err || m->aborted)
        return;
    m->err = err;
    m->err_what = what;
    m->err_name = name;
}

static void msg_op(struct spool_msg *m)
{
    m->inflight++;
}

static bool msg_restarted(const struct spool_msg *m)
{
    return m->cur != &m->data[0];
}

static void chunk_write_done(struct engine_op *op, int res);

static struct spool_chunk *chunk_new(struct spool_file *f, uint64_t off, size_t cap)
{
    struct spool_chunk *c = malloc(sizeof(*c) + cap);
    if (!c) {
        msg_fail(f->m, ENOMEM, "buffer for", f->name);
        return NULL;
    }
    *c = (struct spool_chunk){.op.complete = chunk_write_done, .f = f, .off = off, .cap = cap};
    return c;
}

static void chunk_issue(struct spool_chunk *c)
{
    struct spool_file *f = c->f;
    struct spool_worker *sw = f->m->sw;
    msg_op(f->m);
    sw->fs->write(sw->ctx, &c->op, f->fd, c->data + c->done, (unsigned)(c->len - c->done),
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
    struct spool_chunk **p = &f->busy;
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
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

/* The df is created by its first full chunk or the commit; the tf at the commit, once
 * the df exists: a message whose first create finds no directory has no file anywhere
 * and can follow a recreated spool directory instead of failing. After a restart the
 * first df is never created anew, and the new one waits until the first one's name is
 * gone (created, then unlinked). */
static bool file_wanted(const struct spool_file *f)
{
    const struct spool_msg *m = f->m;
    const struct spool_file *df = &m->cur->file, *first = &m->data[0].file;
    if (f == &m->tf)
        return f->sealed && (m->data_inline || df->state >= SPOOL_FILE_OPEN);
    if (f != df)
        return false;
    if (f != first && (first->state == SPOOL_FILE_OPENING || first->created))
        return false;
    return f->head || f->sealed;
}

/* A create that found no directory: the spool directory was deleted or replaced, or a
 * person removed the message's subdirectory. If the worker now follows another spool
 * directory, the message (which has no file yet) starts over there; in the same one, the
 * subdirectories are made again and the create is tried once more. */
static bool file_retry_create(struct spool_file *f)
{
    struct spool_msg *m = f->m;
    struct spool_worker *sw = m->sw;

    if (m->retried || m->aborted || f != (m->data_inline ? &m->tf : &m->cur->file))
        return false;
    m->retried = true;
    spool_worker_refresh(sw, true);
    if (sw->dir == m->dir) {
        if (sw->lost || !sw->sp->hash_depth || spool_repair_shards(sw->sp) < 0)
            return false;
    } else {
        spool_dirref_put(m->dir);
        m->dir = NULL;
    }
    f->state = SPOOL_FILE_CLOSED;
    return true;
}

static void file_op_done(struct engine_op *op, int res)
{
    struct spool_file *f = spool_of(op, struct spool_file, op);
    struct spool_msg *m = f->m;

    m->inflight--;
    if (res == -ENOENT && f->state == SPOOL_FILE_OPENING && file_retry_create(f)) {
        /* msg_step below creates it again, in the directory now at the configured path */
    } else if (res < 0) {
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

/* Before its first file: the message's directory is the worker's, if that is still the
 * spool (a directory renamed away must not collect acknowledged mail). */
static bool msg_pin(struct spool_msg *m)
{
    struct spool_worker *sw = m->sw;
    spool_worker_refresh(sw, false);
    if (sw->lost) {
        msg_fail(m, ESTALE, "create (the spool directory is gone)", m->cur->file.name);
        return false;
    }
    m->dir = sw->dir;
    m->dir->refs++;
    return true;
}

static bool file_written(const struct spool_file *f)
{
    return f->state == SPOOL_FILE_OPEN && f->sealed && !f->head && !f->writing;
}

/* Moves one file forward: create it, write what is queued, fsync once everything is (the
 * tf: once it is the qf). */
static void file_step(struct spool_file *f)
{
    struct spool_msg *m = f->m;
    struct spool_worker *sw = m->sw;

    if (f->state == SPOOL_FILE_CLOSED) {
        if (!file_wanted(f))
            return;
        f->state = SPOOL_FILE_OPENING;
        msg_op(m);
        sw->fs->create(sw->ctx, &f->op, m->dir->fd, f->name);
        return;
    }
    if (f->state != SPOOL_FILE_OPEN)
        return;
    while (f->head && f->writing < SPOOL_MAX_WRITES) {
        struct spool_chunk *c = f->head;
        if (!(f->head = c->next))
            f->tail = NULL;
        c->next = f->busy;
        f->busy = c;
        f->writing++;
        chunk_issue(c);
    }
    if (file_written(f) && (f != &m->tf || m->renamed)) {
        f->state = SPOOL_FILE_SYNCING;
        msg_op(m);
        sw->fs->fsync(sw->ctx, &f->op, f->fd);
    }
}

static void file_close(struct spool_msg *m, struct spool_file *f)
{
    if (f->fd < 0)
        return;
    m->sw->fs->close(m->sw->ctx, f->fd);
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

/* The data before a restart, once committed or aborted: what is not in the df yet is
 * never needed again (writes in flight finish on their own). */
static void data_release(struct spool_data *d)
{
    free(d->fill);
    d->fill = NULL;
    file_drop_queue(&d->file);
}

static void msg_free(struct spool_msg *m)
{
    struct spool_worker *sw = m->sw;
    data_release(&m->data[0]);
    data_release(&m->data[1]);
    file_drop_queue(&m->tf);
    free(m->rd.bounce);
    if (m->dir)
        spool_dirref_put(m->dir);
    sw->live--;
    free(m);
}

/* The end of a message that the spool owns: log a failure (the one line it gets, limited
 * per kind), report, count, free. */
static void msg_finish(struct spool_msg *m)
{
    if (m->err) {
        char key[128];
        snprintf(key, sizeof(key), "%s: %s", m->err_what, strerror(m->err));
        log_limited(&spool_log_failures, LOG_LVL_ERROR, key, "%s: %s: %s %s: %s", m->qid,
                    m->committed ? "queue commit failed" : "queue file dropped", m->err_what,
                    m->err_name, strerror(m->err));
    } else if (!m->aborted)
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
    msg_op(m);
    m->sw->fs->unlink(m->sw->ctx, &m->cleanup_op, m->dir->fd, name);
}

/* A failed or aborted message with nothing in flight: remove what it created. */
static void msg_cleanup(struct spool_msg *m)
{
    if (m->cleaning)
        return;
    m->cleaning = true;
    /* At most one df exists: the new one is created after the first one's unlink. */
    for (int i = 0; i < 2; i++) {
        file_close(m, &m->data[i].file);
        if (m->data[i].file.created)
            msg_unlink(m, m->data[i].file.name);
    }
    file_close(m, &m->tf);
    if (m->tf.created)
        msg_unlink(m, m->renamed ? m->qfname : m->tf.name);
    if (m->inflight)
        return;
    if (!m->committed || m->detached) {
        msg_finish(m);
        return;
    }
    /* Report from a completion, never from inside spool_msg_commit itself. */
    msg_op(m);
    m->sw->fs->later(m->sw->ctx, &m->cleanup_op);
}

static void msg_dir_synced(struct spool_dirsync_wait *w, int err, const char *what,
                           const char *path)
{
    struct spool_msg *m = spool_of(w, struct spool_msg, sync);
    m->inflight--;
    if (err)
        msg_fail(m, err, what, path);
    else
        m->dir_synced = true;
    msg_step(m);
}

static void msg_rename_done(struct engine_op *op, int res)
{
    struct spool_msg *m = spool_of(op, struct spool_msg, rename_op);

    m->inflight--;
    if (res < 0) {
        msg_fail(m, -res, "rename", m->tf.name);
        msg_step(m);
        return;
    }
    m->renamed = true;
    m->sync = (struct spool_dirsync_wait){.dir = m->dir, .shard = m->shard, .done = msg_dir_synced};
    msg_op(m);
    spool_dirsync_join(m->sw, &m->sync);
    msg_step(m);
}

static void msg_first_unlinked(struct engine_op *op, int res)
{
    struct spool_msg *m = spool_of(op, struct spool_msg, first_unlink_op);
    struct spool_file *first = &m->data[0].file;

    m->inflight--;
    if (res < 0 && res != -ENOENT)
        msg_fail(m, -res, "unlink of the replaced", first->name);
    else
        first->created = false; /* its descriptor still reads the first data */
    msg_step(m);
}

/* After a restart: the first df gives up its name as soon as it has one. */
static void msg_unlink_first(struct spool_msg *m)
{
    struct spool_file *first = &m->data[0].file;
    if (!msg_restarted(m) || !first->created || m->first_unlinking)
        return;
    m->first_unlinking = true;
    msg_op(m);
    m->sw->fs->unlink(m->sw->ctx, &m->first_unlink_op, m->dir->fd, first->name);
}

static void msg_step(struct spool_msg *m)
{
    struct spool_worker *sw = m->sw;
    struct spool_file *df = &m->cur->file;

    if (m->aborted || (m->err && m->committed)) {
        if (!m->inflight)
            msg_cleanup(m);
        return;
    }
    /* Before commit an error only stops the I/O; the owner still holds the message. */
    if (m->err || (m->renaming && !m->renamed))
        return;
    if (!m->dir && (file_wanted(df) || file_wanted(&m->tf)) && !msg_pin(m)) {
        msg_step(m);
        return;
    }
    msg_unlink_first(m);
    file_step(&m->data[0].file);
    file_step(&m->data[1].file);
    file_step(&m->tf);
    if (m->renamed) {
        if (m->tf.state == SPOOL_FILE_SYNCED && m->dir_synced) {
            file_close(m, &m->tf);
            msg_finish(m);
        }
        return;
    }
    /* A read or the first data's last writes may still be in flight after the commit:
     * the message must outlive them. */
    if ((!m->data_inline && df->state != SPOOL_FILE_SYNCED) || !file_written(&m->tf) ||
        m->rd.active || m->data[0].file.writing)
        return;
    /* The df is durable and the tf written: the rename makes the message exist once the qf
     * and the directory are durable — but not in a directory that is no longer the spool
     * (renamed away): the client gets 4xx and sends it again. */
    if (m->dir != sw->dir || sw->lost) {
        msg_fail(m, ESTALE, "rename (the spool directory was replaced)", m->tf.name);
        msg_step(m);
        return;
    }
    file_close(m, &m->data[0].file);
    file_close(m, &m->data[1].file);
    m->renaming = true;
    msg_op(m);
    sw->fs->rename(sw->ctx, &m->rename_op, m->dir->fd, m->tf.name, m->qfname);
}

/* --- group commit of the directories --- */

/* A rename (or an unlink) is durable once an fsync of its subdirectory that started after
 * it completed has completed. One round of fsyncs runs at a time per worker: one per subdirectory
 * that had a rename, in parallel; renames that complete meanwhile wait for the next
 * round. Before each round a `later` lets the rest of the current loop turn's
 * completions (often many renames released by the same journal commit) join it. */
static void dirsync_kick(struct spool_worker *sw)
{
    if (sw->dirsync_busy || !sw->waiting)
        return;
    sw->dirsync_busy = true;
    sw->fs->later(sw->ctx, &sw->gather_op);
}

void spool_dirsync_join(struct spool_worker *sw, struct spool_dirsync_wait *w)
{
    w->next = sw->waiting;
    sw->waiting = w;
    dirsync_kick(sw);
}

/* A round covers one spool directory: renames made in a directory the spool has since
 * left wait for their own round. */
static void dirsync_gathered(struct engine_op *op, int res)
{
    (void)res;
    struct spool_worker *sw = spool_of(op, struct spool_worker, gather_op);
    struct spool_dirsync_wait *w = sw->waiting, *next, *other = NULL;
    struct spool_dirref *dir = w->dir;

    for (; w; w = next) {
        next = w->next;
        struct spool_dirsync_wait **list = w->dir == dir ? &sw->shards[w->shard].syncing : &other;
        w->next = *list;
        *list = w;
    }
    sw->waiting = other;
    for (unsigned i = 0; i < sw->n_shards; i++) {
        struct spool_dirsync *ds = &sw->shards[i];
        if (!ds->syncing)
            continue;
        sw->dirsyncs_running++;
        sw->dir_syncs++;
        ds->opening = sw->sp->hash_depth > 0;
        if (ds->opening)
            sw->fs->open(sw->ctx, &ds->op, dir->fd, ds->path, SPOOL_FS_DIR);
        else
            sw->fs->fsync_dir(sw->ctx, &ds->op, dir->fd);
    }
}

static void dirsync_done(struct engine_op *op, int res)
{
    struct spool_dirsync *ds = spool_of(op, struct spool_dirsync, op);
    struct spool_worker *sw = ds->sw;
    struct spool_dirsync_wait *w = ds->syncing, *next;

    if (ds->opening) {
        ds->opening = false;
        if (res >= 0) {
            ds->fd = res;
            sw->fs->fsync_dir(sw->ctx, &ds->op, ds->fd);
            return;
        }
    }
    if (ds->fd >= 0) {
        sw->fs->close(sw->ctx, ds->fd);
        ds->fd = -1;
    }
    ds->syncing = NULL;
    for (; w; w = next) {
        next = w->next;
        if (sw->sp->hash_depth)
            w->done(w, res < 0 ? -res : 0, "fsync of subdirectory", ds->path);
        else
            w->done(w, res < 0 ? -res : 0, "fsync of", sw->sp->dir);
    }
    if (--sw->dirsyncs_running)
        return;
    sw->dirsync_busy = false;
    dirsync_kick(sw);
}

/* --- the API --- */

struct spool_worker *spool_worker_new_fs(struct spool *sp, const struct spool_fs_ops *fs, void *ctx,
                                         unsigned index)
{
    struct spool_dirref d;
    struct spool_worker *sw = calloc(1, sizeof(*sw));
    if (!sw || !(sw->dir = malloc(sizeof(*sw->dir))) || spool_dirref_get(sp, false, &d) < 0) {
        if (sw)
            free(sw->dir);
        free(sw);
        return NULL;
    }
    *sw->dir = d;
    sw->dir->refs = 1;
    sw->n_shards = spool_shard_count(sp->hash_depth);
    if (!(sw->shards = calloc(sw->n_shards, sizeof(*sw->shards)))) {
        spool_dirref_put(sw->dir);
        free(sw);
        return NULL;
    }
    for (unsigned i = 0; i < sw->n_shards; i++) {
        struct spool_dirsync *ds = &sw->shards[i];
        *ds = (struct spool_dirsync){.op.complete = dirsync_done, .sw = sw, .fd = -1};
        spool_shard_path(i, sp->hash_depth, ds->path);
    }
    sw->sp = sp;
    sw->fs = fs;
    sw->ctx = ctx;
    sw->index = index;
    sw->gather_op.complete = dirsync_gathered;
    return sw;
}

void spool_worker_free(struct spool_worker *sw)
{
    if (!sw)
        return;
    /* Only after the loop ended can messages be left: their completions will never come.
     * Unacknowledged files are removed by the next spool_recover(). */
    if (sw->live)
        log_warn("spool: worker stopped with %u message(s) or operation(s) in flight", sw->live);
    log_limit_flush(&spool_log_failures); /* no count is lost */
    spool_dirref_put(sw->dir);
    free(sw->shards);
    free(sw);
}

struct spool_msg *spool_msg_new(struct spool_worker *sw, char qid_out[QID_LEN + 1])
{
    struct spool_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->sw = sw;
    qid_new(m->qid, sw->index);
    memcpy(qid_out, m->qid, QID_LEN + 1);
    m->shard = spool_shard_of(m->qid, sw->sp->hash_depth);
    struct spool_file *files[] = {&m->data[0].file, &m->data[1].file, &m->tf};
    const char *kinds[] = {"df", "df", "tf"};
    for (int i = 0; i < 3; i++) {
        *files[i] = (struct spool_file){.op.complete = file_op_done, .m = m, .fd = -1};
        spool_path_at(m->shard, sw->sp->hash_depth, kinds[i], m->qid, files[i]->name);
    }
    spool_path_at(m->shard, sw->sp->hash_depth, "qf", m->qid, m->qfname);
    m->cur = &m->data[0];
    m->rename_op.complete = msg_rename_done;
    m->cleanup_op.complete = msg_cleanup_done;
    m->first_unlink_op.complete = msg_first_unlinked;
    sw->live++;
    return m;
}

/* Room in the buffer being filled: it starts small and doubles up to write_chunk, so a
 * message holds about as much memory as it has data waiting. False on ENOMEM. */
static bool msg_fill_room(struct spool_msg *m, size_t want)
{
    size_t chunk = m->sw->sp->write_chunk;
    struct spool_data *d = m->cur;
    struct spool_chunk *c = d->fill, *grown;
    size_t used = c ? c->len : 0;
    size_t cap = c ? c->cap : SPOOL_FIRST_BUFFER / 2;

    if (c && c->len < c->cap)
        return true;
    do
        cap *= 2;
    while (cap < used + want && cap < chunk);
    if (cap > chunk)
        cap = chunk;
    if (!c)
        return (d->fill = chunk_new(&d->file, d->size, cap)) != NULL;
    if (!(grown = realloc(c, sizeof(*c) + cap))) {
        msg_fail(m, ENOMEM, "buffer for", d->file.name);
        return false;
    }
    grown->cap = cap;
    d->fill = grown;
    return true;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
    const char *p = data;
    struct spool_data *d = m->cur;

    if (m->err)
        return -1;
    while (len) {
        if (!msg_fill_room(m, len))
            return -1;
        struct spool_chunk *c = d->fill;
        size_t n = c->cap - c->len < len ? c->cap - c->len : len;
        memcpy(c->data + c->len, p, n);
        c->len += n;
        d->size += n;
        p += n;
        len -= n;
        if (c->len == m->sw->sp->write_chunk) {
            file_queue(&d->file, c);
            d->fill = NULL;
        }
    }
    msg_step(m);
    return 0;
}

/* Whether the commit can write the data into the qf: all of it is still in memory (no
 * df was ever created, not even before a restart), so the message is one file. A larger
 * one has its df already, and its data stays there. */
static bool msg_fits_inline(const struct spool_msg *m)
{
    return m->data[0].file.state == SPOOL_FILE_CLOSED &&
           m->data[1].file.state == SPOOL_FILE_CLOSED && !m->cur->file.head;
}

/* Queues the envelope, and with data_inline the data after it, as the tf file's only
 * chunk: one write. */
static void msg_queue_envelope(struct spool_msg *m, const struct envelope *e)
{
    struct envelope copy = *e;
    const struct spool_chunk *fill = m->data_inline ? m->cur->fill : NULL;
    size_t data_len = fill ? fill->len : 0;
    struct buf b;
    struct spool_chunk *c;

    memcpy(copy.qid, m->qid, sizeof(copy.qid));
    copy.size = m->cur->size;
    copy.data_inline = m->data_inline;
    buf_init(&b, 0);
    if (envelope_write(&copy, &b) < 0) {
        msg_fail(m, ENOMEM, "envelope for", m->tf.name);
    } else if ((c = chunk_new(&m->tf, 0, b.len + data_len))) {
        memcpy(c->data, b.data, b.len);
        if (data_len)
            memcpy(c->data + b.len, fill->data, data_len);
        c->len = b.len + data_len;
        file_queue(&m->tf, c);
    }
    buf_free(&b);
}

void spool_msg_commit(struct spool_msg *m, const struct envelope *e,
                      void (*done)(void *arg, int err), void *arg)
{
    struct spool_data *d = m->cur;

    m->committed = true;
    m->done = done;
    m->arg = arg;
    if (msg_restarted(m))
        data_release(&m->data[0]);
    if (!m->err) {
        m->data_inline = msg_fits_inline(m);
        msg_queue_envelope(m, e);
        if (m->data_inline) {
            free(d->fill);
        } else if (d->fill) {
            file_queue(&d->file, d->fill);
        }
        d->fill = NULL;
        m->tf.sealed = true;
        /* an empty message that is not inline still has an (empty) df */
        d->file.sealed = !m->data_inline;
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

/* --- reading back and writing again --- */

/* The chunk of `d` still in memory that holds `off`, or NULL; then *next is the offset of
 * the first chunk in memory after `off` (or the end of the data): everything from `off`
 * up to there is in the df, written. */
static const struct spool_chunk *data_find(const struct spool_data *d, uint64_t off, uint64_t *next)
{
    const struct spool_chunk *lists[] = {d->file.busy, d->file.head, d->fill};

    *next = d->size;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        for (const struct spool_chunk *c = lists[i]; c; c = c->next) {
            if (off >= c->off && off - c->off < c->len)
                return c;
            if (c->off > off && c->off < *next)
                *next = c->off;
        }
    return NULL;
}

/* `done` may commit, abort or read again: the read is over before it runs. */
static void read_finish(struct spool_msg *m, ssize_t n)
{
    struct spool_read *r = &m->rd;
    r->active = false;
    r->done(r->arg, n);
}

/* Runs from a completion, so every write issued before the read is accounted for: a
 * byte is either in a chunk in memory or already in the df. */
static void read_resolve(struct spool_msg *m)
{
    struct spool_read *r = &m->rd;
    const struct spool_data *d = &m->data[0];
    uint64_t next;

    if (m->err) {
        read_finish(m, -m->err);
        return;
    }
    if (r->off >= d->size) {
        read_finish(m, 0);
        return;
    }
    const struct spool_chunk *c = data_find(d, r->off, &next);
    size_t len = r->len;
    if (c) {
        size_t at = (size_t)(r->off - c->off);
        if (len > c->len - at)
            len = c->len - at;
        memcpy(r->buf, c->data + at, len);
        read_finish(m, (ssize_t)len);
        return;
    }
    if (len > next - r->off)
        len = (size_t)(next - r->off);
    if (!(r->bounce = malloc(len))) {
        read_finish(m, -ENOMEM);
        return;
    }
    msg_op(m);
    m->sw->fs->read(m->sw->ctx, &r->op, d->file.fd, r->bounce, (unsigned)len, r->off);
}

static void read_done(struct engine_op *op, int res)
{
    struct spool_msg *m = spool_of(op, struct spool_msg, rd.op);
    struct spool_read *r = &m->rd;
    char *bounce = r->bounce;

    m->inflight--;
    r->bounce = NULL;
    if (m->aborted || m->committed) { /* the caller gave the message up: no `done` */
        free(bounce);
        r->active = false;
        msg_step(m);
        return;
    }
    if (!bounce) {
        read_resolve(m);
        return;
    }
    if (res == 0)
        res = -EIO; /* the df ends before what was written to it */
    if (res > 0)
        memcpy(r->buf, bounce, (size_t)res);
    else
        log_limited(&spool_log_failures, LOG_LVL_ERROR, "read back",
                    "%s: queue file read failed: read %s: %s", m->qid, m->data[0].file.name,
                    strerror(-res));
    free(bounce);
    read_finish(m, res);
}

int spool_msg_read(struct spool_msg *m, uint64_t off, void *buf, size_t len, spool_read_fn done,
                   void *arg)
{
    if (m->committed || m->aborted || !len)
        return -EINVAL;
    if (m->rd.active)
        return -EBUSY;
    m->rd = (struct spool_read){
        .op.complete = read_done,
        .active = true,
        .buf = buf,
        .len = len < SPOOL_MSG_READ_MAX ? len : SPOOL_MSG_READ_MAX,
        .off = off,
        .done = done,
        .arg = arg,
    };
    msg_op(m);
    m->sw->fs->later(m->sw->ctx, &m->rd.op);
    return 0;
}

int spool_msg_restart(struct spool_msg *m)
{
    if (m->committed || m->aborted)
        return -EINVAL;
    if (msg_restarted(m))
        return -EBUSY;
    if (m->err)
        return -m->err;
    m->cur = &m->data[1];
    msg_step(m);
    return 0;
}

uint64_t spool_msg_size(const struct spool_msg *m)
{
    return m->cur->size;
}

void spool_worker_stats(const struct spool_worker *sw, uint64_t *commits, uint64_t *dir_syncs)
{
    *commits = sw->commits;
    *dir_syncs = sw->dir_syncs;
}
