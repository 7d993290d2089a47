/*
 * The heap and its position map.
 *
 * Heap entries are 24 bytes (due + the id's 16 characters); a parallel array gives each
 * heap position its hash slot, and the hash table's slots hold heap position + 1 (0 =
 * empty). The two point at each other, so moving an entry during a sift updates its slot
 * without hashing the id again. The table has twice as many slots as the heap has room
 * for, so it is never more than half full and linear probing stays short; deletion
 * shifts the following run back instead of leaving tombstones, so a long-lived index
 * with millions of pushes and pops never degrades.
 */
#include "queue/queue_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define QI_MIN_CAP ((size_t)16)
/* Positions are stored as uint32_t + 1. */
#define QI_MAX_CAP ((size_t)1 << 31)

struct qi_entry {
    int64_t due;
    char qid[QID_LEN];
};

struct queue_index {
    struct qi_entry *heap;
    uint32_t *slot_of; /* heap position -> table slot */
    size_t count;
    size_t cap;      /* heap room; a power of two */
    uint32_t *table; /* 2 * cap slots: heap position + 1, 0 = empty */
    size_t table_mask;
};

static size_t qi_hash(const char *qid)
{
    uint64_t a, b;
    memcpy(&a, qid, 8);
    memcpy(&b, qid + 8, 8);
    /* Ids share their leading (time) characters; mix both halves through multiplies. */
    uint64_t h = a * 0x9e3779b97f4a7c15u ^ (b + 0x632be59bd9b4e019u) * 0xc2b2ae3d27d4eb4fu;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93u;
    h ^= h >> 29;
    return (size_t)h;
}

static bool qi_less(const struct qi_entry *x, const struct qi_entry *y)
{
    if (x->due != y->due)
        return x->due < y->due;
    return memcmp(x->qid, y->qid, QID_LEN) < 0;
}

/* The slot that holds qid, or SIZE_MAX. */
static size_t qi_find(const struct queue_index *qi, const char *qid)
{
    for (size_t s = qi_hash(qid) & qi->table_mask; qi->table[s]; s = (s + 1) & qi->table_mask)
        if (memcmp(qi->heap[qi->table[s] - 1].qid, qid, QID_LEN) == 0)
            return s;
    return SIZE_MAX;
}

static size_t qi_free_slot(const struct queue_index *qi, const char *qid)
{
    size_t s = qi_hash(qid) & qi->table_mask;
    while (qi->table[s])
        s = (s + 1) & qi->table_mask;
    return s;
}

static void qi_place(struct queue_index *qi, size_t pos, const struct qi_entry *e, uint32_t slot)
{
    qi->heap[pos] = *e;
    qi->slot_of[pos] = slot;
    qi->table[slot] = (uint32_t)(pos + 1);
}

static void qi_sift_up(struct queue_index *qi, size_t pos)
{
    struct qi_entry e = qi->heap[pos];
    uint32_t slot = qi->slot_of[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!qi_less(&e, &qi->heap[parent]))
            break;
        qi_place(qi, pos, &qi->heap[parent], qi->slot_of[parent]);
        pos = parent;
    }
    qi_place(qi, pos, &e, slot);
}

static void qi_sift_down(struct queue_index *qi, size_t pos)
{
    struct qi_entry e = qi->heap[pos];
    uint32_t slot = qi->slot_of[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= qi->count)
            break;
        if (child + 1 < qi->count && qi_less(&qi->heap[child + 1], &qi->heap[child]))
            child++;
        if (!qi_less(&qi->heap[child], &e))
            break;
        qi_place(qi, pos, &qi->heap[child], qi->slot_of[child]);
        pos = child;
    }
    qi_place(qi, pos, &e, slot);
}

/* New arrays of `cap` heap positions, the entries copied and re-hashed. Allocates all
 * three before touching the index, so a failure leaves it as it was. */
static int qi_resize(struct queue_index *qi, size_t cap)
{
    struct qi_entry *heap = malloc(cap * sizeof(*heap));
    uint32_t *slot_of = malloc(cap * sizeof(*slot_of));
    uint32_t *table = calloc(2 * cap, sizeof(*table));
    if (!heap || !slot_of || !table) {
        free(heap);
        free(slot_of);
        free(table);
        return -ENOMEM;
    }
    if (qi->count)
        memcpy(heap, qi->heap, qi->count * sizeof(*heap));
    free(qi->heap);
    free(qi->slot_of);
    free(qi->table);
    qi->heap = heap;
    qi->slot_of = slot_of;
    qi->table = table;
    qi->cap = cap;
    qi->table_mask = 2 * cap - 1;
    for (size_t pos = 0; pos < qi->count; pos++) {
        size_t s = qi_free_slot(qi, heap[pos].qid);
        slot_of[pos] = (uint32_t)s;
        table[s] = (uint32_t)(pos + 1);
    }
    return 0;
}

struct queue_index *queue_index_new(void)
{
    struct queue_index *qi = calloc(1, sizeof(*qi));
    if (qi && qi_resize(qi, QI_MIN_CAP) < 0) {
        free(qi);
        return NULL;
    }
    return qi;
}

void queue_index_free(struct queue_index *qi)
{
    if (!qi)
        return;
    free(qi->heap);
    free(qi->slot_of);
    free(qi->table);
    free(qi);
}

int queue_index_reserve(struct queue_index *qi, size_t n)
{
    if (n <= qi->cap)
        return 0;
    if (n > QI_MAX_CAP)
        return -ENOMEM;
    size_t cap = qi->cap;
    while (cap < n)
        cap *= 2;
    return qi_resize(qi, cap);
}

int queue_index_push(struct queue_index *qi, const char *qid, int64_t due)
{
    if (qi_find(qi, qid) != SIZE_MAX)
        return -EEXIST;
    if (qi->count == qi->cap) {
        if (qi->cap >= QI_MAX_CAP || qi_resize(qi, qi->cap * 2) < 0)
            return -ENOMEM;
    }
    struct qi_entry e = {.due = due};
    memcpy(e.qid, qid, QID_LEN);
    size_t pos = qi->count++;
    qi_place(qi, pos, &e, (uint32_t)qi_free_slot(qi, qid));
    qi_sift_up(qi, pos);
    return 0;
}

static void qi_out(const struct qi_entry *e, char qid_out[QID_LEN + 1], int64_t *due_out)
{
    if (qid_out) {
        memcpy(qid_out, e->qid, QID_LEN);
        qid_out[QID_LEN] = '\0';
    }
    if (due_out)
        *due_out = e->due;
}

bool queue_index_peek(const struct queue_index *qi, char qid_out[QID_LEN + 1], int64_t *due_out)
{
    if (!qi->count)
        return false;
    qi_out(&qi->heap[0], qid_out, due_out);
    return true;
}

/* Empties a table slot, then moves back each entry of the following run that may no
 * longer be found past the gap (its home slot is not cyclically within (gap, s]). */
static void qi_table_delete(struct queue_index *qi, size_t gap)
{
    qi->table[gap] = 0;
    for (size_t s = (gap + 1) & qi->table_mask; qi->table[s]; s = (s + 1) & qi->table_mask) {
        size_t pos = qi->table[s] - 1;
        size_t home = qi_hash(qi->heap[pos].qid) & qi->table_mask;
        bool stays = gap <= s ? (gap < home && home <= s) : (gap < home || home <= s);
        if (stays)
            continue;
        qi->table[gap] = qi->table[s];
        qi->slot_of[pos] = (uint32_t)gap;
        qi->table[s] = 0;
        gap = s;
    }
}

/* Removes the entry at heap position pos: the last entry takes its place and moves
 * whichever way the order needs. */
static void qi_remove_at(struct queue_index *qi, size_t pos)
{
    qi_table_delete(qi, qi->slot_of[pos]);
    size_t last = --qi->count;
    if (pos != last) {
        qi_place(qi, pos, &qi->heap[last], qi->slot_of[last]);
        if (pos > 0 && qi_less(&qi->heap[pos], &qi->heap[(pos - 1) / 2]))
            qi_sift_up(qi, pos);
        else
            qi_sift_down(qi, pos);
    }
    /* Giving memory back after a burst is best effort: a failed shrink keeps the room. */
    if (qi->cap > QI_MIN_CAP && qi->count < qi->cap / 4)
        (void)qi_resize(qi, qi->cap / 2);
}

bool queue_index_pop(struct queue_index *qi, char qid_out[QID_LEN + 1], int64_t *due_out)
{
    if (!qi->count)
        return false;
    qi_out(&qi->heap[0], qid_out, due_out);
    qi_remove_at(qi, 0);
    return true;
}

bool queue_index_contains(const struct queue_index *qi, const char *qid, int64_t *due_out)
{
    size_t s = qi_find(qi, qid);
    if (s == SIZE_MAX)
        return false;
    if (due_out)
        *due_out = qi->heap[qi->table[s] - 1].due;
    return true;
}

int queue_index_remove(struct queue_index *qi, const char *qid)
{
    size_t s = qi_find(qi, qid);
    if (s == SIZE_MAX)
        return -ENOENT;
    qi_remove_at(qi, qi->table[s] - 1);
    return 0;
}

int queue_index_reschedule(struct queue_index *qi, const char *qid, int64_t due)
{
    size_t s = qi_find(qi, qid);
    if (s == SIZE_MAX)
        return -ENOENT;
    size_t pos = qi->table[s] - 1;
    int64_t old = qi->heap[pos].due;
    qi->heap[pos].due = due;
    if (due < old)
        qi_sift_up(qi, pos);
    else
        qi_sift_down(qi, pos);
    return 0;
}

void queue_index_foreach(const struct queue_index *qi,
                         void (*fn)(void *arg, const char *qid, int64_t due), void *arg)
{
    for (size_t i = 0; i < qi->count; i++)
        fn(arg, qi->heap[i].qid, qi->heap[i].due);
}

size_t queue_index_count(const struct queue_index *qi)
{
    return qi->count;
}

size_t queue_index_memory(const struct queue_index *qi)
{
    return sizeof(*qi) + qi->cap * (sizeof(*qi->heap) + sizeof(*qi->slot_of)) +
           2 * qi->cap * sizeof(*qi->table);
}
