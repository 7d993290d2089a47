/*
 * queue/spool.h — the durable spool: where an accepted message lives until delivery.
 *
 * Layout (docs/queue.md): one directory, mode 0700, owned by the run-as user. A message
 * is two files named by its queue id: "df<qid>" (the message data, headers and body,
 * CRLF line ends, exactly as accepted plus our Received: header) and "qf<qid>" (the
 * envelope, queue/envelope.h). While a message is being received its files are
 * "df<qid>" and "tf<qid>"; the commit fsyncs both, renames tf→qf and fsyncs the
 * directory. A message exists (is acknowledged) exactly when its qf exists; the recovery
 * scan removes df/tf files that have no qf.
 *
 * One daemon per spool: spool_open() takes an exclusive flock() on "ringmail.lock" in
 * the directory (holding the pid as text) and keeps it until spool_close(); a child that
 * inherits the descriptor across fork() keeps it too.
 *
 * All I/O of a message in flight goes through the worker's file operations (the io_uring
 * backend in the daemon, queue/spool_fs.h): data is written in large chunks once there
 * is a chunk to write, and many commits run at once so the file system shares journal
 * commits; directory fsyncs are batched: every rename that completed before a directory
 * fsync started is covered by that one fsync (group commit). A message holds no file
 * descriptor until it has write_chunk bytes or is committed, and its buffer grows with
 * the data. spool_open() and spool_recover() are synchronous and run at start-up, before
 * the engine starts.
 *
 * The directory is followed by its configured path: at most once a second per worker
 * (and after a create fails with ENOENT) a worker checks that the path still names the
 * directory it writes to; if not (deleted, recreated, renamed) the spool reopens it —
 * recreating and locking it if missing — logs it once, and new messages go there.
 *
 * Ownership: struct spool is shared by all workers (thread-safe). A spool_worker belongs
 * to one engine worker thread. A spool_msg belongs to its caller until spool_msg_commit()
 * or spool_msg_abort(); after commit the spool owns it and frees it after calling `done`
 * exactly once (or never, after spool_msg_detach()). Errors of a message are logged by
 * the spool, once per message ("<qid>: queue commit failed: write df<qid>: ..."; at most
 * one line per kind of failure per 10 s, then a count), so the caller need not log the
 * err it gets in `done` again.
 */
#ifndef RINGMAIL_QUEUE_SPOOL_H
#define RINGMAIL_QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/envelope.h"
#include "queue/qid.h"

struct engine_worker;
struct spool;
struct spool_worker;
struct spool_msg;

struct spool_settings {
    const char *dir; /* created (with parents) if missing, mode 0700 */
    uid_t owner;     /* chown the directory to owner:group when running as root */
    gid_t group;
    bool chown;
    size_t write_chunk; /* bytes buffered before a data write is issued; 0 = 64 KiB */
    /* Blocks (of the file system's fragment size) spool_space_check() keeps free; 0 = none.
     * sendmail's MinFreeBlocks (confMIN_FREE_BLOCKS, default 100). */
    uint64_t min_free_blocks;
};

/* NULL with `err` on failure; errno is EWOULDBLOCK when another process holds the spool's
 * lock (a second daemon), so the caller can tell that from a spool it cannot create. */
struct spool *spool_open(const struct spool_settings *s, char *err, size_t errlen);
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);

struct spool_recovery {
    unsigned messages; /* complete messages (qf present and parseable, df present) */
    unsigned removed;  /* partial files removed (df/tf without qf) */
    unsigned damaged;  /* qf unreadable or without df: renamed to "Qf<qid>" and logged */
};
/* Scans the spool at start-up: removes what was never acknowledged, logs each complete
 * message ("<qid>: recovered, from=<...>, nrcpts=N, size=N") and counts. */
int spool_recover(struct spool *sp, struct spool_recovery *out, char *err, size_t errlen);

/* Calls fn for every complete message (qf + df) in id order; stops when fn returns
 * non-zero and returns that value; 0 after the last message, -1 if the directory cannot
 * be read (logged). Damaged or partial messages are skipped. For the recovery report,
 * tests and (later) mailq. */
int spool_scan(struct spool *sp, int (*fn)(void *arg, const struct envelope *e), void *arg);

struct spool_worker *spool_worker_new(struct spool *sp, struct engine_worker *w);
void spool_worker_free(struct spool_worker *sw);

/* Whether the spool has room for a message of `size_hint` bytes (SIZE=, 0 if unknown):
 * the blocks free to the run-as user (statvfs f_bavail) minus min_free_blocks must hold
 * it, as sendmail's enoughdiskspace(). For MAIL, to answer 452 4.3.1 before the client
 * sends the data. Costs nothing per call: the file system is asked at most once a second
 * per worker. True when the free space cannot be read (the commit will tell). Logs once
 * when free space falls below min_free_blocks and once when it is back. */
bool spool_space_check(struct spool_worker *sw, uint64_t size_hint);

/* Starts a message: allocates its queue id (copied into qid_out). No file and no buffer
 * yet: the df is created when write_chunk bytes have arrived or at the commit, the tf at
 * the commit. NULL on allocation failure only. */
struct spool_msg *spool_msg_new(struct spool_worker *sw, char qid_out[QID_LEN + 1]);
/* Appends message data. Never blocks; a write error is remembered and reported by the
 * commit. -1 if the message already failed (the caller may stop sending data). */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len);
/* Writes the rest, the envelope (e->qid and e->size are filled in by the spool), fsyncs,
 * renames and fsyncs the directory, then calls done(arg, 0) — or done(arg, -errno) after
 * removing the partial files. `e` is only read during the call. `done` runs later on the
 * worker's thread, never from inside this call; the spool frees `m` right after it. */
void spool_msg_commit(struct spool_msg *m, const struct envelope *e,
                      void (*done)(void *arg, int err), void *arg);
/* After commit, before `done`: the caller went away (connection closed). The commit
 * still completes (the message is safe, the client may send it again: at-least-once),
 * `done` is not called. */
void spool_msg_detach(struct spool_msg *m);
/* Before commit: drops the message and removes its files (once the writes in flight
 * have completed; the spool keeps the object alive until then). */
void spool_msg_abort(struct spool_msg *m);

/* The directory fsync count and commits so far, for logs and benchmarks. */
void spool_worker_stats(const struct spool_worker *sw, uint64_t *commits, uint64_t *dir_syncs);

#endif
