/*
 * queue/queue_index.h — the deferred messages of one queue manager, by next attempt.
 *
 * A binary min-heap of (due, qid) ordered by due time (Unix seconds), ties by queue id,
 * which is arrival order (queue/qid.h), so among messages due at the same second the
 * oldest goes first. A hash from queue id to heap position (open addressing, linear
 * probing) makes contains, remove and reschedule by id O(1) + O(log n); push and pop are
 * O(log n), peek O(1). Storage grows by doubling and shrinks by halving when less than a
 * quarter full: 36 bytes per unit of room, about 38 bytes per entry for a million
 * (queue_index_memory() says exactly).
 *
 * Owns its storage; copies the ids it is given. Holds no message data, does no I/O and
 * reads no clock. Not thread-safe: one index per worker, used by that worker only.
 * Every qid argument is QID_LEN characters (need not be NUL-terminated); each id is in
 * the index at most once.
 */
#ifndef RINGMAIL_QUEUE_QUEUE_INDEX_H
#define RINGMAIL_QUEUE_QUEUE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/qid.h"

struct queue_index;

/* NULL when memory ran out. */
struct queue_index *queue_index_new(void);
void queue_index_free(struct queue_index *qi);

/* Room for n entries at once (start-up recovery knows how many it found), so loading
 * them does not grow the storage step by step. 0, or -ENOMEM (index unchanged). */
int queue_index_reserve(struct queue_index *qi, size_t n);
/* 0; -EEXIST if the id is already there (index unchanged: see queue_index_reschedule);
 * -ENOMEM (index unchanged). */
int queue_index_push(struct queue_index *qi, const char *qid, int64_t due);
/* The entry due first: false when the index is empty. qid_out gets a NUL; either output
 * may be NULL. */
bool queue_index_peek(const struct queue_index *qi, char qid_out[QID_LEN + 1], int64_t *due_out);
/* Like peek, and removes that entry. */
bool queue_index_pop(struct queue_index *qi, char qid_out[QID_LEN + 1], int64_t *due_out);
/* Whether the id is in the index, and when it is due (due_out may be NULL). */
bool queue_index_contains(const struct queue_index *qi, const char *qid, int64_t *due_out);
/* 0, or -ENOENT. */
int queue_index_remove(struct queue_index *qi, const char *qid);
/* Moves an entry to a new due time (sendmail's -qI: now). 0, or -ENOENT. */
int queue_index_reschedule(struct queue_index *qi, const char *qid, int64_t due);
size_t queue_index_count(const struct queue_index *qi);
/* Calls fn for every entry, in no particular order (the queue tools' requests take a
 * snapshot of a manager's messages). `qid` is QID_LEN characters, not NUL-terminated, and
 * valid during the call only; fn must not change the index. */
void queue_index_foreach(const struct queue_index *qi,
                         void (*fn)(void *arg, const char *qid, int64_t due), void *arg);
/* Bytes of heap memory the index holds (for the million-message measurements). */
size_t queue_index_memory(const struct queue_index *qi);

#endif
