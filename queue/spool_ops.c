/*
 * The queue manager's operations on a committed message: load it, update it in place,
 * remove it (docs/queue.md, "Delivery: loading, updating and removing a message"). Every
 * file operation goes through the worker's backend (queue/spool_fs.h), like the commit,
 * and each operation calls back once, from a completion.
 *
 * Why an update is safe without a rewrite: the fields it changes have a fixed width
 * (queue/envelope.h), so each is one pwrite of the same number of bytes at the offset the
 * parser recorded. A recipient's state is one byte: it cannot tear. The attempt count, the
 * next attempt and the last reason sit next to each other in the qf's fourth to sixth
 * lines, within its first 240 bytes: one write, inside the file's first 512-byte sector,
 * which a disk writes whole or not at all. Until the fsync completes, a crash leaves each write old
 * or new (any mix of them across fields is a valid qf); the callback comes only after it.
 * spool_update_schedule issues no fsync: its fields may be old after a power cut.
 */
#include "queue/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/spool_fs.h"
#include "queue/spool_int.h"
#include "util/log.h"

#define spool_ops_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A qf holds an envelope: far below this, whatever the recipient limit. Beyond it the
 * file is not one of ours. */
#define SPOOL_QF_MAX (16u << 20)
/* Most messages are one file under this: one read and the one that finds the end. */
#define SPOOL_QF_FIRST_READ 16384
/* One read's length is an unsigned; a large df is read in pieces. */
#define SPOOL_READ_MAX           (1u << 30)
#define SPOOL_OPS_FAILURE_LOG_MS 10000

static struct log_limit spool_ops_failures = LOG_LIMIT_INIT(SPOOL_OPS_FAILURE_LOG_MS);

/* What every operation has: its worker, the directory it works in (a reference, so a
 * followed spool directory cannot close it under the operation) and its message. */
struct spool_op_base {
    struct spool_worker *sw;
    struct spool_dirref *dir;
    char qid[QID_LEN + 1];
    char qpath[SPOOL_PATH_LEN + 1], dpath[SPOOL_PATH_LEN + 1];
};

static bool op_base_init(struct spool_op_base *b, struct spool_worker *sw, const char *qid)
{
    if (!qid_valid(qid))
        return false;
    spool_worker_refresh(sw, false);
    b->sw = sw;
    b->dir = sw->dir;
    b->dir->refs++;
    memcpy(b->qid, qid, QID_LEN + 1);
    spool_msg_path(sw->sp, "qf", qid, b->qpath, sizeof(b->qpath));
    spool_msg_path(sw->sp, "df", qid, b->dpath, sizeof(b->dpath));
    sw->live++;
    return true;
}

static void op_base_fini(struct spool_op_base *b)
{
    spool_dirref_put(b->dir);
    b->sw->live--;
}

static void op_log_failure(const struct spool_op_base *b, const char *op, const char *what,
                           const char *path, int err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s %s: %s", op, what, strerror(err));
    log_limited(&spool_ops_failures, LOG_LVL_ERROR, key, "%s: queue file %s failed: %s %s: %s",
                b->qid, op, what, path, strerror(err));
}

/* --- load --- */

enum load_step { LOAD_OPEN_QF, LOAD_READ_QF, LOAD_OPEN_DF, LOAD_READ_DF, LOAD_ASIDE };

struct spool_loader {
    struct spool_op_base b;
    struct engine_op op;
    enum load_step step;
    bool qf_only; /* spool_load_envelope: the df is not read */
    spool_load_cb cb;
    void *arg;
    int fd;
    char *buf; /* the file being read */
    size_t len, cap;
    struct envelope e; /* its strings go to the caller with the callback */
    bool parsed;
    int err;
};

static void load_finish(struct spool_loader *l)
{
    struct spool_worker *sw = l->b.sw;
    if (l->fd >= 0)
        sw->fs->close(sw->ctx, l->fd);
    if (l->err) {
        if (l->parsed)
            envelope_free(&l->e);
        free(l->buf);
        l->cb(l->arg, -l->err, NULL, NULL, 0);
    } else {
        l->cb(l->arg, 0, &l->e, l->buf, l->len);
    }
    op_base_fini(&l->b);
    free(l);
}

static void load_fail(struct spool_loader *l, int err, const char *what, const char *path)
{
    l->err = err;
    if (err != ENOENT || l->step != LOAD_OPEN_QF)
        op_log_failure(&l->b, "load", what, path, err);
    load_finish(l);
}

/* The qf does not hold together: set it aside for a person, as recovery does. */
static void load_set_aside(struct spool_loader *l, const char *why)
{
    struct spool_worker *sw = l->b.sw;
    char aside[SPOOL_PATH_LEN + 1];
    spool_msg_path(sw->sp, "Qf", l->b.qid, aside, sizeof(aside));
    log_warn("%s: damaged queue file moved to %s: %s", l->b.qid, aside, why);
    l->err = EBADMSG;
    l->step = LOAD_ASIDE;
    if (l->fd >= 0) {
        sw->fs->close(sw->ctx, l->fd);
        l->fd = -1;
    }
    sw->fs->rename(sw->ctx, &l->op, l->b.dir->fd, l->b.qpath, aside);
}

static void load_read_more(struct spool_loader *l)
{
    size_t want = l->cap - l->len;
    if (want > SPOOL_READ_MAX)
        want = SPOOL_READ_MAX;
    l->b.sw->fs->read(l->b.sw->ctx, &l->op, l->fd, l->buf + l->len, (unsigned)want, l->len);
}

/* Reads a file into l->buf until its end or until cap bytes (one more than expected, so
 * a df longer than its envelope says is seen). */
static void load_start_read(struct spool_loader *l, int fd, size_t cap, enum load_step step)
{
    l->fd = fd;
    l->step = step;
    l->len = 0;
    l->cap = cap;
    if (!(l->buf = malloc(cap))) {
        load_fail(l, ENOMEM, "buffer for", step == LOAD_READ_QF ? l->b.qpath : l->b.dpath);
        return;
    }
    load_read_more(l);
}

static void load_qf_read(struct spool_loader *l)
{
    char why[256];
    struct spool_worker *sw = l->b.sw;

    sw->fs->close(sw->ctx, l->fd);
    l->fd = -1;
    if (spool_parse_qf(l->buf, l->len, l->b.qid, &l->e, why, sizeof(why)) < 0) {
        load_set_aside(l, why);
        return;
    }
    l->parsed = true;
    if (l->e.data_inline && !l->qf_only) {
        /* one file: the data is the qf's tail (its length checked by the parse), and a
         * read that reached the end left room for the NUL */
        memmove(l->buf, l->buf + l->e.data_offset, (size_t)l->e.size);
        l->len = (size_t)l->e.size;
        l->buf[l->len] = '\0';
        load_finish(l);
        return;
    }
    free(l->buf);
    l->buf = NULL;
    l->len = 0;
    if (l->qf_only) {
        load_finish(l);
        return;
    }
    l->step = LOAD_OPEN_DF;
    sw->fs->open(sw->ctx, &l->op, l->b.dir->fd, l->b.dpath, SPOOL_FS_READ);
}

static void load_df_read(struct spool_loader *l)
{
    char why[256];
    if (l->len != l->e.size) {
        snprintf(why, sizeof(why), "df%s has %s%zu bytes, the envelope says %" PRIu64, l->b.qid,
                 l->len == l->cap ? "more than " : "", l->len == l->cap ? l->len - 1 : l->len,
                 l->e.size);
        load_set_aside(l, why);
        return;
    }
    l->buf[l->len] = '\0';
    load_finish(l);
}

static void load_done(struct engine_op *op, int res)
{
    struct spool_loader *l = spool_ops_of(op, struct spool_loader, op);
    const char *path = l->step <= LOAD_READ_QF ? l->b.qpath : l->b.dpath;
    char why[128];

    switch (l->step) {
    case LOAD_OPEN_QF:
    case LOAD_OPEN_DF:
        if (res == -ENOENT && l->step == LOAD_OPEN_DF) {
            snprintf(why, sizeof(why), "df%s: %s", l->b.qid, strerror(ENOENT));
            load_set_aside(l, why);
        } else if (res < 0) {
            load_fail(l, -res, "open", path);
        } else if (l->step == LOAD_OPEN_QF) {
            load_start_read(l, res, SPOOL_QF_FIRST_READ, LOAD_READ_QF);
        } else {
            /* The size comes from the envelope: sizes beyond memory fail the malloc. */
            size_t cap = l->e.size < SIZE_MAX ? (size_t)l->e.size + 1 : SIZE_MAX;
            load_start_read(l, res, cap, LOAD_READ_DF);
        }
        return;
    case LOAD_READ_QF:
    case LOAD_READ_DF:
        if (res < 0) {
            load_fail(l, -res, "read", path);
            return;
        }
        l->len += (size_t)res;
        if (res > 0 && l->len < l->cap) {
            load_read_more(l);
            return;
        }
        if (res > 0 && l->step == LOAD_READ_QF) { /* full: grow and read on */
            char *nb = l->cap < SPOOL_QF_MAX ? realloc(l->buf, l->cap * 2) : NULL;
            if (!nb) {
                snprintf(why, sizeof(why), "qf%s is larger than %u bytes or memory ran out",
                         l->b.qid, SPOOL_QF_MAX);
                load_set_aside(l, why);
                return;
            }
            l->buf = nb;
            l->cap *= 2;
            load_read_more(l);
            return;
        }
        if (l->step == LOAD_READ_QF)
            load_qf_read(l);
        else
            load_df_read(l);
        return;
    case LOAD_ASIDE:
        if (res < 0)
            log_error("%s: cannot rename damaged %s: %s", l->b.qid, l->b.qpath, strerror(-res));
        load_finish(l);
        return;
    }
}

static int load_start(struct spool_worker *sw, const char *qid, bool qf_only, spool_load_cb cb,
                      void *arg)
{
    struct spool_loader *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->qf_only = qf_only;
    l->op.complete = load_done;
    l->cb = cb;
    l->arg = arg;
    l->fd = -1;
    if (!op_base_init(&l->b, sw, qid)) {
        free(l);
        return -EINVAL;
    }
    sw->fs->open(sw->ctx, &l->op, l->b.dir->fd, l->b.qpath, SPOOL_FS_READ);
    return 0;
}

int spool_load(struct spool_worker *sw, const char *qid, spool_load_cb cb, void *arg)
{
    return load_start(sw, qid, false, cb, arg);
}

int spool_load_envelope(struct spool_worker *sw, const char *qid, spool_load_cb cb, void *arg)
{
    return load_start(sw, qid, true, cb, arg);
}

/* --- update --- */

/* One pwrite of the update: a state byte, or the attempt count, next attempt and reason
 * (one run when they are adjacent, as the writer lays them out). */
struct spool_field_write {
    struct engine_op op;
    struct spool_updater *u;
    uint64_t off;
    unsigned len, done;
    char data[ENVELOPE_COUNT_WIDTH + 2 + ENVELOPE_TIME_WIDTH + 2 + ENVELOPE_REASON_WIDTH];
};

struct spool_updater {
    struct spool_op_base b;
    struct engine_op op; /* open, fsync, or the `later` of an invalid request */
    void (*cb)(void *arg, int err);
    void *arg;
    int fd;
    int err;
    const char *err_what;
    bool syncing;
    bool rcpts_only;  /* spool_update_rcpts */
    bool no_sync;     /* spool_update_schedule */
    unsigned writing; /* writes in flight */
    size_t n_writes;
    struct spool_field_write writes[];
};

static void update_finish(struct spool_updater *u)
{
    struct spool_worker *sw = u->b.sw;
    if (u->fd >= 0)
        sw->fs->close(sw->ctx, u->fd);
    if (u->err && u->err_what)
        op_log_failure(&u->b, "update", u->err_what, u->b.qpath, u->err);
    u->cb(u->arg, -u->err);
    op_base_fini(&u->b);
    free(u);
}

static void update_fail(struct spool_updater *u, int err, const char *what)
{
    if (!u->err) {
        u->err = err;
        u->err_what = what;
    }
}

static void field_issue(struct spool_field_write *w)
{
    struct spool_updater *u = w->u;
    u->writing++;
    u->b.sw->fs->write(u->b.sw->ctx, &w->op, u->fd, w->data + w->done, w->len - w->done,
                       w->off + w->done);
}

static void field_written(struct engine_op *op, int res)
{
    struct spool_field_write *w = spool_ops_of(op, struct spool_field_write, op);
    struct spool_updater *u = w->u;
    struct spool_worker *sw = u->b.sw;

    u->writing--;
    if (res <= 0)
        update_fail(u, res < 0 ? -res : EIO, "write");
    else if ((w->done += (unsigned)res) < w->len && !u->err) {
        field_issue(w);
        return;
    }
    if (u->writing)
        return;
    if (u->err || u->no_sync) {
        update_finish(u);
        return;
    }
    u->syncing = true;
    sw->fs->fsync(sw->ctx, &u->op, u->fd);
}

static void update_done(struct engine_op *op, int res)
{
    struct spool_updater *u = spool_ops_of(op, struct spool_updater, op);
    if (res == -ENOENT && !u->syncing && u->rcpts_only) {
        u->err = ENOENT; /* withdrawn meanwhile (a DELETE): the caller's to judge, unlogged */
    } else if (res < 0) {
        update_fail(u, -res, u->syncing ? "fsync" : "open");
    } else if (!u->syncing && !u->err) {
        u->fd = res;
        for (size_t i = 0; i < u->n_writes; i++)
            field_issue(&u->writes[i]);
        return;
    }
    update_finish(u);
}

static void field_set(struct spool_field_write *w, struct spool_updater *u, size_t off,
                      const char *data, size_t len)
{
    w->op.complete = field_written;
    w->u = u;
    w->off = off;
    w->len = (unsigned)len;
    memcpy(w->data, data, len);
}

/* The attempt count, next attempt and reason: one write when adjacent. False when the
 * envelope has no offsets (it was not parsed). */
static bool update_plan_schedule(struct spool_updater *u, const struct envelope *e)
{
    char count[ENVELOPE_COUNT_WIDTH + 1], when[ENVELOPE_TIME_WIDTH + 1];
    char reason[ENVELOPE_REASON_WIDTH], quarantine[ENVELOPE_REASON_WIDTH];
    char run[sizeof(((struct spool_field_write *)0)->data)];

    /* Offset 0 is the version line: a parsed envelope never has a field there. */
    if (!e->attempts_offset || !e->next_attempt_offset)
        return false;
    snprintf(count, sizeof(count), "%0*u", ENVELOPE_COUNT_WIDTH, e->attempts);
    snprintf(when, sizeof(when), "%0*" PRId64, ENVELOPE_TIME_WIDTH,
             e->next_attempt > 0 ? (int64_t)e->next_attempt : 0);
    envelope_reason_format(reason, e->last_reason);
    envelope_reason_format(quarantine, e->quarantine);
    /* A qf from before the reason record has no field for it (offset 0), nor one never
     * quarantined: not written. */
    const struct {
        size_t off;
        const char *data;
        size_t len;
        char tag;
    } f[] = {
        {e->attempts_offset, count, ENVELOPE_COUNT_WIDTH, 'N'},
        {e->next_attempt_offset, when, ENVELOPE_TIME_WIDTH, 'W'},
        {e->last_reason_offset, reason, ENVELOPE_REASON_WIDTH, 'E'},
        {e->quarantine_offset, quarantine, ENVELOPE_REASON_WIDTH, 'q'},
    };
    size_t run_off = f[0].off, run_len = 0;
    /* Adjacent fields, as the writer lays them out ("N...\nW...\nE..."), are one write. */
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (!f[i].off)
            continue;
        if (run_len && f[i].off == run_off + run_len + 2) {
            run[run_len++] = '\n';
            run[run_len++] = f[i].tag;
        } else if (run_len) {
            field_set(&u->writes[u->n_writes++], u, run_off, run, run_len);
            run_off = f[i].off;
            run_len = 0;
        }
        memcpy(run + run_len, f[i].data, f[i].len);
        run_len += f[i].len;
    }
    field_set(&u->writes[u->n_writes++], u, run_off, run, run_len);
    return true;
}

/* The writes of an update; false when the envelope has no offsets (it was not parsed) or
 * an index or a state is out of range. `states` (or NULL: the envelope's) are written. */
static bool update_plan(struct spool_updater *u, const struct envelope *e, const size_t *idx,
                        const char *states, size_t n, bool schedule)
{
    if (schedule && !update_plan_schedule(u, e))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= e->n_rcpts)
            return false;
        const struct envelope_rcpt *r = &e->rcpts[idx[i]];
        char state = states ? states[i] : (char)r->state;
        if (!r->state_offset || !envelope_rcpt_state_valid(state))
            return false;
        field_set(&u->writes[u->n_writes++], u, r->state_offset, &state, 1);
    }
    return true;
}

static int update_start(struct spool_worker *sw, const struct envelope *e, const size_t *rcpt_idx,
                        const char *states, size_t n, bool schedule, bool sync,
                        void (*cb)(void *arg, int err), void *arg)
{
    if (n > (SIZE_MAX - sizeof(struct spool_updater)) / sizeof(struct spool_field_write) - 3)
        return -ENOMEM;
    struct spool_updater *u = calloc(1, sizeof(*u) + (n + 3) * sizeof(struct spool_field_write));
    if (!u)
        return -ENOMEM;
    u->op.complete = update_done;
    u->cb = cb;
    u->arg = arg;
    u->fd = -1;
    u->rcpts_only = !schedule;
    u->no_sync = !sync;
    if (!op_base_init(&u->b, sw, e->qid)) {
        free(u);
        return -EINVAL;
    }
    if (!update_plan(u, e, rcpt_idx, states, n, schedule)) {
        /* A caller's mistake, reported like any failure: from a completion. */
        u->err = EINVAL;
        u->err_what = "fields of";
        sw->fs->later(sw->ctx, &u->op);
        return 0;
    }
    sw->fs->open(sw->ctx, &u->op, u->b.dir->fd, u->b.qpath, SPOOL_FS_WRITE);
    return 0;
}

int spool_update(struct spool_worker *sw, const struct envelope *e, const size_t *rcpt_idx,
                 size_t n, void (*cb)(void *arg, int err), void *arg)
{
    return update_start(sw, e, rcpt_idx, NULL, n, true, true, cb, arg);
}

int spool_update_schedule(struct spool_worker *sw, const struct envelope *e,
                          void (*cb)(void *arg, int err), void *arg)
{
    return update_start(sw, e, NULL, NULL, 0, true, false, cb, arg);
}

int spool_update_rcpts(struct spool_worker *sw, const struct envelope *e, const size_t *rcpt_idx,
                       const char *states, size_t n, void (*cb)(void *arg, int err), void *arg)
{
    return update_start(sw, e, rcpt_idx, states, n, false, true, cb, arg);
}

/* --- remove --- */

enum remove_step { REMOVE_QF, REMOVE_DF, REMOVE_SYNC_DIR };

struct spool_remover {
    struct spool_op_base b;
    struct engine_op op;
    enum remove_step step;
    bool sync_dir; /* spool_delete, spool_withdraw: the removal is made durable */
    bool keep_df;  /* spool_withdraw: an attempt in flight still reads it; or there is none */
    struct spool_dirsync_wait sync;
    void (*cb)(void *arg, int err);
    void *arg;
};

static void remove_finish(struct spool_remover *r, int err, const char *what, const char *path)
{
    if (err)
        op_log_failure(&r->b, "remove", what, path, err);
    r->cb(r->arg, -err);
    op_base_fini(&r->b);
    free(r);
}

static void remove_dir_synced(struct spool_dirsync_wait *w, int err, const char *what,
                              const char *path)
{
    remove_finish(spool_ops_of(w, struct spool_remover, sync), err, what, path);
}

/* The directory fsync of spool_delete: the message's subdirectory's (the spool's when it
 * is flat), in the group commit the commits' renames use, so removals and commits at the
 * same time share one fsync per subdirectory. */
static void remove_sync_dir(struct spool_remover *r)
{
    struct spool_worker *sw = r->b.sw;
    r->step = REMOVE_SYNC_DIR;
    r->sync = (struct spool_dirsync_wait){.dir = r->b.dir,
                                          .shard = spool_shard_of(r->b.qid, sw->sp->hash_depth),
                                          .done = remove_dir_synced};
    spool_dirsync_join(sw, &r->sync);
}

static void remove_done(struct engine_op *op, int res)
{
    struct spool_remover *r = spool_ops_of(op, struct spool_remover, op);
    struct spool_worker *sw = r->b.sw;

    if (res < 0 && res != -ENOENT) {
        remove_finish(r, -res, "unlink", r->step == REMOVE_QF ? r->b.qpath : r->b.dpath);
        return;
    }
    if (r->step == REMOVE_QF && !r->keep_df) {
        /* Never the df while its qf is there: that would be a message without its data. */
        r->step = REMOVE_DF;
        sw->fs->unlink(sw->ctx, &r->op, r->b.dir->fd, r->b.dpath);
        return;
    }
    if (r->sync_dir) {
        remove_sync_dir(r);
        return;
    }
    remove_finish(r, 0, "", "");
}

static int remove_start(struct spool_worker *sw, const char *qid, bool sync_dir, bool keep_df,
                        void (*cb)(void *arg, int err), void *arg)
{
    struct spool_remover *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->sync_dir = sync_dir;
    r->keep_df = keep_df;
    r->op.complete = remove_done;
    r->cb = cb;
    r->arg = arg;
    if (!op_base_init(&r->b, sw, qid)) {
        free(r);
        return -EINVAL;
    }
    sw->fs->unlink(sw->ctx, &r->op, r->b.dir->fd, r->b.qpath);
    return 0;
}

int spool_remove(struct spool_worker *sw, const char *qid, bool data_inline,
                 void (*cb)(void *arg, int err), void *arg)
{
    return remove_start(sw, qid, false, data_inline, cb, arg);
}

int spool_delete(struct spool_worker *sw, const char *qid, bool data_inline,
                 void (*cb)(void *arg, int err), void *arg)
{
    return remove_start(sw, qid, true, data_inline, cb, arg);
}

int spool_withdraw(struct spool_worker *sw, const char *qid, void (*cb)(void *arg, int err),
                   void *arg)
{
    return remove_start(sw, qid, true, true, cb, arg);
}

/* --- local delivery --- */

int spool_open_data(struct spool_worker *sw, const char *qid, bool data_inline)
{
    char path[SPOOL_PATH_LEN + 1];
    if (!sw->dir)
        return -ENOENT;
    spool_path_at(spool_shard_of(qid, sw->sp->hash_depth), sw->sp->hash_depth,
                  data_inline ? "qf" : "df", qid, path);
    int fd = openat(sw->dir->fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    return fd < 0 ? -errno : fd;
}
