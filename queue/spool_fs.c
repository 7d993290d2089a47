/*
 * The io_uring backend of the spool's file operations: each one is an SQE on the worker's
 * ring, submitted with everything else at the end of the loop turn (util/engine.h), so
 * the file operations of many messages reach the kernel in one io_uring_enter.
 */
#include "queue/spool_fs.h"

#include <fcntl.h>
#include <liburing.h>

static void uring_create(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    /* O_EXCL: an id collision fails the commit instead of overwriting a message.
     * O_NOFOLLOW: never write through a link planted in the spool. O_RDWR: a message's
     * data is read back before its commit (spool_msg_read), also after its df is
     * unlinked by a restart, when no name is left to open it by. */
    io_uring_prep_openat(engine_sqe(ctx, op), dirfd, name,
                         O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static void uring_open(void *ctx, struct engine_op *op, int dirfd, const char *name,
                       enum spool_fs_open how)
{
    /* No O_NONBLOCK on queue files: io_uring would then answer a read that misses the
     * page cache with EAGAIN instead of waiting for the disk. A FIFO named like a queue
     * file only comes from someone who may write the 0700 spool, and recovery sets any
     * aside at start-up. */
    static const int flags[] = {
        [SPOOL_FS_READ] = O_RDONLY,
        [SPOOL_FS_WRITE] = O_WRONLY,
        [SPOOL_FS_DIR] = O_RDONLY | O_DIRECTORY | O_NONBLOCK,
    };
    io_uring_prep_openat(engine_sqe(ctx, op), dirfd, name, flags[how] | O_NOFOLLOW | O_CLOEXEC, 0);
}

static void uring_read(void *ctx, struct engine_op *op, int fd, void *buf, unsigned len,
                       uint64_t off)
{
    io_uring_prep_read(engine_sqe(ctx, op), fd, buf, len, off);
}

static void uring_write(void *ctx, struct engine_op *op, int fd, const void *data, unsigned len,
                        uint64_t off)
{
    io_uring_prep_write(engine_sqe(ctx, op), fd, data, len, off);
}

static void uring_fsync(void *ctx, struct engine_op *op, int fd)
{
    io_uring_prep_fsync(engine_sqe(ctx, op), fd, 0);
}

/* Only the descriptor travels in the SQE: nothing to keep alive, no completion wanted. */
static void uring_close(void *ctx, int fd)
{
    io_uring_prep_close(engine_sqe(ctx, NULL), fd);
}

static void uring_rename(void *ctx, struct engine_op *op, int dirfd, const char *from,
                         const char *to)
{
    io_uring_prep_renameat(engine_sqe(ctx, op), dirfd, from, dirfd, to, 0);
}

static void uring_unlink(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    io_uring_prep_unlinkat(engine_sqe(ctx, op), dirfd, name, 0);
}

static void uring_later(void *ctx, struct engine_op *op)
{
    io_uring_prep_nop(engine_sqe(ctx, op));
}

const struct spool_fs_ops spool_fs_uring = {
    .create = uring_create,
    .open = uring_open,
    .read = uring_read,
    .write = uring_write,
    .fsync = uring_fsync,
    .close = uring_close,
    .rename = uring_rename,
    .unlink = uring_unlink,
    .fsync_dir = uring_fsync,
    .later = uring_later,
};

struct spool_worker *spool_worker_new(struct spool *sp, struct engine_worker *w)
{
    return spool_worker_new_fs(sp, &spool_fs_uring, w, engine_worker_index(w));
}
