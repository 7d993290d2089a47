/*
 * queue/spool.h — the durable spool: where an accepted message lives until delivery.
 *
 * Layout (docs/queue.md): one directory, mode 0700, owned by the run-as user, split into
 * subdirectories by a hash of the queue id (hash_depth 1: "0" .. "f", 2: "0/0" .. "f/f",
 * 0: none; Postfix's hash_queue_depth), made at spool_open(). A message is named by its
 * queue id in its subdirectory: "qf<qid>" (the envelope, queue/envelope.h) and the message
 * data (headers and body, CRLF line ends, exactly as accepted plus our Received: header),
 * which is either "df<qid>" or, for a message smaller than write_chunk, the qf's own tail
 * after the envelope (one file: envelope.data_inline). spool_msg_path() is the one place
 * that knows where a file is. While a message is being received its files are "df<qid>"
 * (once write_chunk bytes arrived) and "tf<qid>" (at the commit); the commit fsyncs the
 * df, renames tf→qf, then fsyncs the qf and the subdirectory. A message exists (is
 * acknowledged) exactly when its qf exists whole; the recovery scan removes df/tf files
 * that have no qf, and a qf that a power cut left empty.
 *
 * One daemon per spool: spool_open() takes an exclusive flock() on "ringmail.lock" in
 * the directory (holding the pid as text) and keeps it until spool_close(); a child that
 * inherits the descriptor across fork() keeps it too.
 *
 * All I/O of a message in flight goes through the worker's file operations (the io_uring
 * backend in the daemon, queue/spool_fs.h): data is written in large chunks once there
 * is a chunk to write, and many commits run at once so the file system shares journal
 * commits; directory fsyncs are batched: every rename that completed before a round of
 * directory fsyncs started is covered by it, one fsync per subdirectory that had a
 * rename, in parallel (group commit). A message holds no file descriptor until it has
 * write_chunk bytes or is committed, and its buffer grows with the data. spool_open() and
 * the recovery (spool_recover_list, spool_recover_read) are synchronous: the listing runs
 * at start-up before the engine starts, the reading on a thread of its own. The
 * queue manager's operations on a committed message (spool_load, spool_update,
 * spool_remove) go through the same file operations.
 *
 * The directory is followed by its configured path: at most once a second per worker
 * (and after a create fails with ENOENT) a worker checks that the path still names the
 * directory it writes to; if not (deleted, recreated, renamed) the spool reopens it —
 * recreating it and its subdirectories and locking it if missing — logs it once, and
 * new messages go there.
 *
 * Ownership: struct spool is shared by all workers (thread-safe). A spool_worker belongs
 * to one engine worker thread. A spool_msg belongs to its caller until spool_msg_commit()
 * or spool_msg_abort(); after commit the spool owns it and frees it after calling `done`
 * exactly once (or never, after spool_msg_detach()). Errors of a message are logged by
 * the spool, once per message ("<qid>: queue commit failed: write 3/df<qid>: ..."; at most
 * one line per kind of failure per 10 s, then a count), so the caller need not log the
 * err it gets in `done` again; the same holds for spool_load, spool_update and
 * spool_remove (except ENOENT from spool_load, which is the caller's to judge).
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
    /* Subdirectory levels: 0 (flat), 1 (16 subdirectories, the default), 2 (256);
     * spool_open refuses more. Postfix's hash_queue_depth. A change takes effect at the
     * next start: recovery moves every message to where the new depth wants it. */
    unsigned hash_depth;
};

#define SPOOL_HASH_DEPTH_DEFAULT 1

/* NULL with `err` on failure; errno is EWOULDBLOCK when another process holds the spool's
 * lock (a second daemon), so the caller can tell that from a spool it cannot create. */
struct spool *spool_open(const struct spool_settings *s, char *err, size_t errlen);
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);

/* Where the file of `kind` ("df", "qf", "tf" or "Qf") of message `qid` is, relative to the
 * spool directory: "qf<qid>" (hash_depth 0), "7/qf<qid>" (1), "7/c/qf<qid>" (2). The
 * subdirectory is a hash of the whole id, so messages spread evenly. The length written
 * (without the NUL), or -1 if `len` is too small. */
int spool_msg_path(const struct spool *sp, const char *kind, const char *qid, char *buf,
                   size_t len);

struct spool_recovery {
    unsigned messages; /* complete messages (qf present and parseable, df present) */
    unsigned removed;  /* partial files removed (df/tf without qf) */
    unsigned damaged;  /* qf unreadable or without df: renamed to "Qf<qid>" and logged */
    unsigned empty;    /* empty qf (a crash before its fsync): removed with its df */
    unsigned moved;    /* messages moved to the subdirectory the hash_depth wants */
};
/* Called for every complete message, oldest first, once its files are where
 * spool_msg_path says; `e` (parsed, with its field offsets) is valid during the call
 * only. Messages whose recipients are all done (delivered or failed: a crash before
 * their removal) are passed too: the queue manager finishes them. Non-zero stops the
 * recovery, which then fails (say, the queue index is out of memory, or the daemon
 * stops). */
typedef int (*spool_recover_fn)(void *arg, const struct envelope *e);

/* Start-up recovery in two steps, so that the daemon can serve between them (docs/queue.md,
 * "Recovery"): spool_recover_list() reads directories only, spool_recover_read() reads
 * every listed envelope. Nothing but the recovery may touch a listed message's files
 * until spool_recover_read() has handed it to `fn` (or set it aside): the queue manager
 * learns of it only then. Messages committed after the listing are not in it. */
struct spool_pending; /* the listed messages whose envelopes are still to be read */
/* Called for every message the listing found (a qf), oldest first: its envelope is not
 * read yet (the count of what is queued is known from here). */
typedef void (*spool_listed_fn)(void *arg, const char *qid);
/* Scans every subdirectory and any level (files left by another hash_depth are moved where
 * the current one wants them), removes what was never acknowledged (df/tf without qf, any
 * tf), fsyncs the directories it moved files in, calls `listed` (may be NULL) for every qf
 * and keeps them in *pending, oldest first (24 bytes each), for spool_recover_read. Sets
 * `out` (removed, moved; messages and damaged stay 0). Logs each removal ("<qid>: removed
 * <file> (never acknowledged)") up to the first 1,000, then one line with the count of
 * the others, and one line with the count of moved messages. -1 with `err` if the spool
 * cannot be read or memory ran out (nothing in *pending then). */
int spool_recover_list(struct spool *sp, spool_listed_fn listed, void *arg,
                       struct spool_recovery *out, struct spool_pending **pending, char *err,
                       size_t errlen);
size_t spool_pending_count(const struct spool_pending *p);
void spool_pending_free(struct spool_pending *p);
/* Reads each listed message in order: a qf that parses, names its id and has its df (of
 * the recorded size) is handed to `fn` (may be NULL) and counted in out->messages; an
 * empty qf (never acknowledged) is removed with its df and counted in out->empty; any
 * other is set aside as "Qf<qid>" with its df and counted in out->damaged. Logs each
 * message ("<qid>: recovered, from=<...>, nrcpts=N, size=N"), each removed and each
 * damaged one up to the first 1,000 of each, then one line with the count of the others.
 * Reads every qf; of a df only its directory entry and size (fstatat). Any thread; `p` is
 * only read. -1 with `err` if `fn` failed or the spool cannot be opened. */
int spool_recover_read(struct spool *sp, const struct spool_pending *p, spool_recover_fn fn,
                       void *arg, struct spool_recovery *out, char *err, size_t errlen);
/* Both steps at once (tests and tools): the listing, then every envelope. */
int spool_recover(struct spool *sp, spool_recover_fn fn, void *arg, struct spool_recovery *out,
                  char *err, size_t errlen);

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
 * yet: the df is created when write_chunk bytes have arrived, the tf at the commit (with
 * the data in it when no df was needed). NULL on allocation failure only. */
struct spool_msg *spool_msg_new(struct spool_worker *sw, char qid_out[QID_LEN + 1]);
/* Appends message data. Never blocks; a write error is remembered and reported by the
 * commit. -1 if the message already failed (the caller may stop sending data). */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len);

/* --- before the commit: reading the data back, writing it again (mail filters) ---
 * A filter is sent the whole message at its end and may change its headers or replace
 * its body; the message is never held whole in memory for that (docs/queue.md, "Reading
 * a message back and writing it again"). */

/* n octets were read (1 .. len; fewer than asked is not the end), 0 at the end of the
 * data, or -errno. */
typedef void (*spool_read_fn)(void *arg, ssize_t n);
/* Reads up to `len` (at most 64 KiB) octets of the data at offset `off` into `buf`, then
 * done(arg, n) later on the worker's thread, never from inside this call. Every
 * spool_msg_write before the call is seen: what is still in memory is copied from there,
 * the rest is read from the df through the worker's file operations (never a
 * synchronous read). After spool_msg_restart it reads the data as it was before the
 * restart ("the old data"), never the new. `buf` is written only right before `done`.
 * 0 when `done` will come. One read at a time: -EBUSY while one is in flight; -EINVAL
 * after the commit or abort, or for len 0 (no `done` then). A message that failed (spool_msg_write
 * returned -1) gives done(arg, -errno of its failure). A read in flight when the message is
 * committed or aborted ends without `done` and without touching `buf`. */
int spool_msg_read(struct spool_msg *m, uint64_t off, void *buf, size_t len, spool_read_fn done,
                   void *arg);
/* The data is written again from its start: what was written so far stays readable with
 * spool_msg_read until the commit or the abort (which release it), and spool_msg_write
 * starts new data at offset 0, which the commit stores (its size is the qf's). On disk:
 * the old df is unlinked as soon as it exists, its descriptor kept for the reads, and a
 * new df is created as for a fresh message once that unlink completed, so there is never
 * more than one df<qid> and recovery needs nothing new. Memory: the old data keeps what
 * it held in memory (its last partial chunk; chunks still to be written are freed as
 * their writes complete), besides the new data's.
 * Once per message: -EBUSY the second time. -EINVAL after the commit or abort; -errno
 * (the message's failure) when it already failed. A failure of the unlink or of the new
 * data is reported by the commit as any other. */
int spool_msg_restart(struct spool_msg *m);
/* Octets written so far with spool_msg_write (since the restart, after one). */
uint64_t spool_msg_size(const struct spool_msg *m);

/* Writes the rest, the envelope (e->qid, e->size and e->data_inline are the spool's), fsyncs,
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

/* --- a committed message, for the queue manager (spool_ops.c) ---
 * Each runs on the worker's file operations and, when it returns 0, calls back exactly
 * once, later, on the worker's thread, never from inside the call. -ENOMEM (memory ran
 * out) or -EINVAL (not a queue id) instead: nothing was done and no callback comes. One
 * operation per message at a time (the caller's rule: the spool does not serialise
 * them). `qid` is copied. They work in the directory the spool is in now, where
 * spool_msg_path says. */

/* Reads the qf and the df (or only the qf, when the data is in it: e->data_inline). On
 * success err is 0, `e` is the parsed envelope with its field offsets and `data`/`len`
 * the data (malloc'ed, NUL-terminated beyond len: the caller frees
 * it). The struct `e` points to is the spool's and valid during the call only, but what
 * it holds (its strings and recipients) is the caller's: copy the struct (`mine = *e`)
 * and release it later with envelope_free(&mine), or call envelope_free(e) at once. On
 * failure e and data are NULL and err is -errno: -ENOENT when the message is gone (not
 * logged); -EBADMSG when the qf does not parse, names another id, or its df is missing
 * or has another size than the qf says: the qf is then renamed "Qf<qid>" (set aside for
 * a person, as recovery does: a later load finds ENOENT) and the reason logged once;
 * anything else is logged once. */
/* The file that holds the message's data, read-only and close-on-exec, for a local
 * delivery that hands it to another process: the df, or with `data_inline` (the envelope's)
 * the qf, whose data starts at the envelope's data_offset. The descriptor (the caller
 * closes it), or -errno. A synchronous openat on the worker's thread: local deliveries are
 * few beside the SMTP traffic. */
int spool_open_data(struct spool_worker *sw, const char *qid, bool data_inline);

typedef void (*spool_load_cb)(void *arg, int err, struct envelope *e, char *data, size_t len);
int spool_load(struct spool_worker *sw, const char *qid, spool_load_cb cb, void *arg);
/* spool_load without the df: the qf only (data NULL, len 0), for the queue tools' requests
 * (a filter on sender or recipients, an in-place rewrite of the schedule). A missing df is
 * not noticed here. */
int spool_load_envelope(struct spool_worker *sw, const char *qid, spool_load_cb cb, void *arg);

/* Writes, in place, the state byte (e->rcpts[i].state) of each recipient listed in
 * rcpt_idx, the attempt count (e->attempts), the next attempt (e->next_attempt) and the
 * last reason (e->last_reason, when the qf has its record) at the offsets envelope_parse
 * recorded in `e`, fsyncs the qf and closes it; only then
 * cb(arg, 0): from then on the new states survive kill -9 and power loss (a recipient
 * marked delivered is never sent again). Before cb each field is, after a crash, either
 * its old or its new value, never a mix (docs/queue.md, "Delivery: loading, updating
 * and removing a message").
 * `e` and `rcpt_idx` are read during the call only. cb(arg, -errno) on failure (logged
 * once); cb(arg, -EINVAL) for an envelope without offsets (not from envelope_parse), an
 * index out of range or a state that is not P, W, D or F. */
int spool_update(struct spool_worker *sw, const struct envelope *e, const size_t *rcpt_idx,
                 size_t n, void (*cb)(void *arg, int err), void *arg);

/* spool_update of the schedule alone (attempt count, next attempt, last reason), without an
 * fsync: for an attempt that changed no recipient's state. The schedule only says when to
 * try again: after a power cut the file holds the old or the new one, a whole envelope
 * either way, and an older schedule only brings the next attempt forward; nothing is lost
 * or sent twice. So the writes are left to the page cache, and each deferral of a message
 * to a next hop that is down costs no fsync. Never for a hold (ENVELOPE_NEXT_HELD), which
 * must survive a power cut: spool_update. */
int spool_update_schedule(struct spool_worker *sw, const struct envelope *e,
                          void (*cb)(void *arg, int err), void *arg);

/* spool_update of the recipients' state bytes alone: states[k] for recipient
 * rcpt_idx[k] (the envelope's own states are not read). The schedule and the reason are
 * not touched, so this may run while a queue tool's request rewrites them (other bytes of
 * the qf). For the recipients one next hop of an attempt finished while others are still
 * under way. A qf withdrawn meanwhile (spool_withdraw) gives cb(arg, -ENOENT), not logged. */
int spool_update_rcpts(struct spool_worker *sw, const struct envelope *e, const size_t *rcpt_idx,
                       const char *states, size_t n, void (*cb)(void *arg, int err), void *arg);

/* Removes the message: unlinks its qf, then its df (a crash in between leaves a df alone,
 * which recovery removes); with `data_inline` (the envelope's: the message is one file)
 * there is no df to unlink. No directory fsync: after a power cut a removed message may
 * reappear and be delivered again (at least once, never lost). A file already gone is not
 * an error. cb(arg, -errno) on failure (logged once). */
int spool_remove(struct spool_worker *sw, const char *qid, bool data_inline,
                 void (*cb)(void *arg, int err), void *arg);
/* spool_remove, then an fsync of the message's directory before cb: a delivered message,
 * or one an operator deleted (the queue tools' DELETE), never comes back after a power
 * cut. */
int spool_delete(struct spool_worker *sw, const char *qid, bool data_inline,
                 void (*cb)(void *arg, int err), void *arg);
/* spool_delete without the df: unlinks the qf and fsyncs its directory, so the message is
 * gone for good (a DELETE of a message whose attempt is in flight), while the attempt may
 * still open and read the df. The caller removes the df later (spool_remove: its qf is
 * already gone, which is not an error); a crash first leaves a df alone, which recovery
 * removes. A qf already gone is not an error. */
int spool_withdraw(struct spool_worker *sw, const char *qid, void (*cb)(void *arg, int err),
                   void *arg);

#endif
