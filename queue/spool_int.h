/*
 * queue/spool_int.h — what spool.c (the message path) and spool_recover.c (start-up
 * scans) share. Private to queue/.
 */
#ifndef RINGMAIL_QUEUE_SPOOL_INT_H
#define RINGMAIL_QUEUE_SPOOL_INT_H

#include <stddef.h>

#include "queue/qid.h"

struct spool {
    char *dir;          /* as configured, for logs */
    int dirfd;          /* every file name is relative to it */
    size_t write_chunk; /* bytes gathered before a data write */
};

/* File names: a two-letter kind and the queue id, sendmail's names. */
#define SPOOL_NAME_LEN (2 + QID_LEN)

#endif
