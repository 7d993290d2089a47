/*
 * queue/spool_fs.h — the spool's file system seam: every file operation the message path
 * and the queue manager's operations issue (queue/spool.c, queue/spool_ops.c) goes
 * through this table, so the order of creates, writes, fsyncs, renames and directory
 * fsyncs can be recorded and checked, and a file system that loses what was not fsynced
 * can be modelled (tests/unit/test_spool_power.c). The daemon uses spool_fs_uring: each
 * operation is an SQE on the worker's ring.
 *
 * Contract of every operation but close: it never completes inside the call; later, on
 * the worker's thread, op->complete(op, res) runs exactly once with the system call's
 * result (negative errno on failure). Names are paths relative to `dirfd`, the spool
 * directory ("7/qf<qid>", spool_msg_path); they and the data must stay valid until the
 * completion. Start-up work (spool_open, spool_recover, spool_scan), following a replaced
 * spool directory and remaking a removed subdirectory are plain synchronous system calls
 * and do not pass through here.
 *
 * Thread-safety: a table's context belongs to one worker thread.
 */
#ifndef RINGMAIL_QUEUE_SPOOL_FS_H
#define RINGMAIL_QUEUE_SPOOL_FS_H

#include <stdint.h>

#include "queue/spool.h"
#include "util/engine.h"

/* What spool_fs_ops.open opens an existing file for. */
enum spool_fs_open {
    SPOOL_FS_READ,  /* a queue file, to read it */
    SPOOL_FS_WRITE, /* a queue file, to update it in place (no create, no truncation) */
    SPOOL_FS_DIR,   /* a subdirectory, to fsync it */
};

struct spool_fs_ops {
    /* Creates a new regular file `name` in the directory for writing and reading back,
     * mode 0600; fails if the name exists (O_EXCL) and never follows a symbolic link.
     * res = descriptor. */
    void (*create)(void *ctx, struct engine_op *op, int dirfd, const char *name);
    /* Opens an existing file or subdirectory, never through a symbolic link.
     * res = descriptor. */
    void (*open)(void *ctx, struct engine_op *op, int dirfd, const char *name,
                 enum spool_fs_open how);
    /* res = bytes read (a short read is possible; 0 at the end of the file). */
    void (*read)(void *ctx, struct engine_op *op, int fd, void *buf, unsigned len, uint64_t off);
    /* res = bytes written (a short write is possible). */
    void (*write)(void *ctx, struct engine_op *op, int fd, const void *data, unsigned len,
                  uint64_t off);
    void (*fsync)(void *ctx, struct engine_op *op, int fd);
    /* No completion: the descriptor is released, nothing is made durable. */
    void (*close)(void *ctx, int fd);
    void (*rename)(void *ctx, struct engine_op *op, int dirfd, const char *from, const char *to);
    void (*unlink)(void *ctx, struct engine_op *op, int dirfd, const char *name);
    /* Makes the directory's entries (creates, renames, unlinks) durable: the spool's
     * descriptor when it is flat, else one opened with SPOOL_FS_DIR. */
    void (*fsync_dir)(void *ctx, struct engine_op *op, int dirfd);
    /* Completes with 0 after the completions already waiting: lets them join a batch. */
    void (*later)(void *ctx, struct engine_op *op);
};

/* The daemon's backend; ctx is the struct engine_worker. */
extern const struct spool_fs_ops spool_fs_uring;

/* A spool worker over any backend; `index` goes into its queue ids (qid.h).
 * spool_worker_new(sp, w) is spool_worker_new_fs(sp, &spool_fs_uring, w, index of w). */
struct spool_worker *spool_worker_new_fs(struct spool *sp, const struct spool_fs_ops *fs, void *ctx,
                                         unsigned index);

#endif
