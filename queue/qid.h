/*
 * queue/qid.h — queue ids: unique, fixed length, and sortable by time.
 *
 * In the spirit of sendmail's ids (time encoded first, then a sequence): QID_LEN
 * characters from [0-9A-Za-z], whose ASCII order is time order, so `ls` of the spool and
 * a string sort of ids both list messages oldest first. Unique across worker threads and
 * across restarts of one host (time, a per-process counter and the worker index are all
 * in the id). Thread-safe.
 */
#ifndef RINGMAIL_QUEUE_QID_H
#define RINGMAIL_QUEUE_QID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QID_LEN 16

/* Writes QID_LEN characters and a NUL into out[QID_LEN + 1]. */
void qid_new(char out[QID_LEN + 1], unsigned worker);
bool qid_valid(const char *s);
/* A hash of the whole id with every character reaching the low bits (an id's leading
 * characters are the time and barely change): for spreading messages over spool
 * subdirectories and workers. */
uint32_t qid_hash(const char *qid);

#endif
