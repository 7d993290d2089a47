/*
 * queue/spool_int.h — what the parts of the spool share. Private to queue/:
 * spool_dir.c (the directory: open, lock, follow, free space, the layout of its
 * subdirectories), spool.c (the message path), spool_ops.c (load, update and remove for
 * the queue manager) and spool_recover.c (start-up scans).
 */
#ifndef RINGMAIL_QUEUE_SPOOL_INT_H
#define RINGMAIL_QUEUE_SPOOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/qid.h"
#include "queue/spool_fs.h"
#include "util/engine.h"

/* The lock file that makes one daemon the owner of a spool; scans never list it. */
#define SPOOL_LOCK_NAME "ringmail.lock"

/* One opened spool directory: its descriptor (every file name is relative to it), the
 * lock held in it, and its identity, to notice when the configured path names another. */
struct spool_handle {
    int dirfd;
    int lockfd;
    dev_t dev;
    ino_t ino;
};

struct spool {
    char *dir;           /* as configured, for logs and to follow a replaced directory */
    unsigned hash_depth; /* 0 flat, 1 = "h/", 2 = "h1/h2/" (spool_msg_path) */
    uid_t owner;
    gid_t group;
    bool chown;
    size_t write_chunk;       /* bytes gathered before a data write */
    uint64_t min_free_blocks; /* spool_space_check's reserve */
    pthread_mutex_t lock;     /* guards cur, generation and last_error */
    struct spool_handle cur;
    unsigned generation; /* bumped each time cur is replaced */
    char last_error[256];
    atomic_bool low_space; /* logged once per crossing of min_free_blocks */
};

/* A worker's reference to one directory: messages keep theirs until they are freed, so a
 * message's files all live in one directory even if the spool follows a new one. */
struct spool_dirref {
    int fd; /* a duplicate of the spool's dirfd, owned here */
    dev_t dev;
    ino_t ino;
    unsigned generation;
    unsigned refs;
};

/* A descriptor (dup) of the current directory with its identity and generation; with
 * `follow`, first makes the current directory the one the configured path names, if it
 * is not (reopening or recreating it, logged once). -1 when that fails (logged once per
 * distinct error). */
int spool_dirref_get(struct spool *sp, bool follow, struct spool_dirref *out);
/* Drops a worker's reference (spool.c); the last one closes the descriptor. */
void spool_dirref_put(struct spool_dirref *d);
/* A duplicate of the current directory's descriptor, for the synchronous scans. */
int spool_dirfd_dup(struct spool *sp);

/* File names: a two-letter kind and the queue id, sendmail's names. */
#define SPOOL_NAME_LEN (2 + QID_LEN)
/* A file's path relative to the spool directory: up to two one-digit subdirectories. */
#define SPOOL_MAX_HASH_DEPTH 2
#define SPOOL_PATH_LEN       (2 * SPOOL_MAX_HASH_DEPTH + SPOOL_NAME_LEN)
/* Subdirectories of one level: the hex digits. */
#define SPOOL_FANOUT 16

/* Leaf subdirectories at `depth`: 16^depth (the flat spool counts as one). */
unsigned spool_shard_count(unsigned depth);
/* The leaf subdirectory a queue id belongs in at `depth`: 0 .. 16^depth - 1 (0 when flat). */
unsigned spool_shard_of(const char *qid, unsigned depth);
/* The leaf subdirectory's path relative to the spool ("", "a", "a/b"), in out[4]. */
void spool_shard_path(unsigned shard, unsigned depth, char out[2 * SPOOL_MAX_HASH_DEPTH]);
/* The path of a file of `kind` ("df", "qf", "tf", "Qf") in leaf `shard` at `depth`. */
void spool_path_at(unsigned shard, unsigned depth, const char *kind, const char *qid,
                   char out[SPOOL_PATH_LEN + 1]);
/* Makes every subdirectory of the layout (mode 0700, chowned like the spool) in the open
 * spool directory `dirfd` and, if any was missing, fsyncs the directories that gained
 * one, so that a file committed into a new subdirectory cannot lose it at a power cut.
 * How many were made in *made (may be NULL). -1 with errno and the failing step in
 * `what`. */
int spool_make_shards(const struct spool *sp, int dirfd, unsigned *made, char *what,
                      size_t whatlen);
/* The same for the current directory while the daemon runs (a person removed a
 * subdirectory): logged once when something was made or it fails. */
int spool_repair_shards(struct spool *sp);

/* Parses a qf image and checks that it names `qid`: 0, or -1 with the reason in `why`
 * (nothing to free then). */
struct envelope;
int spool_parse_qf(const char *data, size_t len, const char *qid, struct envelope *e, char *why,
                   size_t whylen);

/* A rename or an unlink that waits for the group commit of its subdirectory (spool.c):
 * a commit's rename, a removal that must survive a power cut (spool_delete). */
struct spool_dirsync_wait {
    struct spool_dirsync_wait *next;
    struct spool_dirref *dir; /* the directory it happened in */
    unsigned shard;           /* its subdirectory there (spool_shard_of) */
    /* A directory fsync that started after it completed: err 0, or the errno of `what`
     * on `path`, for the waiter to log. */
    void (*done)(struct spool_dirsync_wait *w, int err, const char *what, const char *path);
};
/* Joins the next round of directory fsyncs; `done` comes from its completion. */
void spool_dirsync_join(struct spool_worker *sw, struct spool_dirsync_wait *w);

/* A worker's side of the spool (spool.c). */
struct spool_dirsync;
struct spool_worker {
    struct spool *sp;
    const struct spool_fs_ops *fs;
    void *ctx;
    unsigned index;
    struct spool_dirref *dir; /* where new messages go */
    bool lost;    /* the configured path names another directory, which cannot be opened */
    bool checked; /* checked_ms is valid */
    uint64_t checked_ms;
    bool space_known; /* the last fstatvfs worked */
    uint64_t space_blocks, block_size;
    struct engine_op gather_op;
    bool dirsync_busy;                  /* a gather or a round of directory fsyncs is in flight */
    unsigned dirsyncs_running;          /* directory fsyncs (with their opens) of the round */
    struct spool_dirsync_wait *waiting; /* for the next round of directory fsyncs */
    struct spool_dirsync *shards;       /* one per leaf subdirectory (16^hash_depth) */
    unsigned n_shards;
    unsigned live; /* messages and operations not yet freed */
    uint64_t commits, dir_syncs;
};

/* At most once a second, or now when forced: does the configured path still name the
 * worker's directory (follow it if not), and how much room is there? */
void spool_worker_refresh(struct spool_worker *sw, bool force);

#endif
