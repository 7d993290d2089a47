/*
 * queue/spool_int.h — what the parts of the spool share. Private to queue/:
 * spool_dir.c (the directory: open, lock, follow, free space), spool.c (the message path)
 * and spool_recover.c (start-up scans).
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
    char *dir; /* as configured, for logs and to follow a replaced directory */
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
/* A duplicate of the current directory's descriptor, for the synchronous scans. */
int spool_dirfd_dup(struct spool *sp);

/* File names: a two-letter kind and the queue id, sendmail's names. */
#define SPOOL_NAME_LEN (2 + QID_LEN)

#endif
