/*
 * util/engine_timer.c — one timer per connection, a binary min-heap per worker.
 *
 * The heap holds slot indices; each slot remembers its position, so arming, re-arming
 * and disarming are O(log n). The heap's capacity follows the slot table (every slot can
 * be in it at most once), so arming never allocates and never fails.
 */
#include <stdlib.h>

#include "util/engine_int.h"

int engine_timer_reserve(struct engine_worker *w, uint32_t nslots)
{
    if (nslots <= w->heap_cap)
        return 0;
    uint32_t *h = realloc(w->heap, nslots * sizeof *h);
    if (!h)
        return -1;
    w->heap = h;
    w->heap_cap = nslots;
    return 0;
}

static uint64_t engine_heap_key(const struct engine_worker *w, uint32_t pos)
{
    return engine_slot_at(w, w->heap[pos])->deadline;
}

static void engine_heap_put(struct engine_worker *w, uint32_t pos, uint32_t idx)
{
    w->heap[pos] = idx;
    engine_slot_at(w, idx)->heap_pos = pos + 1;
}

static void engine_heap_up(struct engine_worker *w, uint32_t pos)
{
    uint32_t idx = w->heap[pos];
    uint64_t key = engine_slot_at(w, idx)->deadline;
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (engine_heap_key(w, parent) <= key)
            break;
        engine_heap_put(w, pos, w->heap[parent]);
        pos = parent;
    }
    engine_heap_put(w, pos, idx);
}

static void engine_heap_down(struct engine_worker *w, uint32_t pos)
{
    uint32_t idx = w->heap[pos];
    uint64_t key = engine_slot_at(w, idx)->deadline;
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= w->heap_len)
            break;
        if (child + 1 < w->heap_len && engine_heap_key(w, child + 1) < engine_heap_key(w, child))
            child++;
        if (key <= engine_heap_key(w, child))
            break;
        engine_heap_put(w, pos, w->heap[child]);
        pos = child;
    }
    engine_heap_put(w, pos, idx);
}

static void engine_heap_remove(struct engine_worker *w, struct engine_slot *s)
{
    uint32_t pos = s->heap_pos - 1;
    s->heap_pos = 0;
    uint32_t last = w->heap[--w->heap_len];
    if (pos == w->heap_len)
        return;
    w->heap[pos] = last;
    engine_heap_up(w, pos);
    engine_heap_down(w, engine_slot_at(w, last)->heap_pos - 1);
}

void engine_timer_set(struct engine_worker *w, uint32_t idx, uint64_t deadline)
{
    struct engine_slot *s = engine_slot_at(w, idx);
    /* Sessions re-arm after every command: move the entry where it stands rather than
     * remove and insert it. */
    if (s->heap_pos && deadline) {
        uint64_t old = s->deadline;
        s->deadline = deadline;
        if (deadline < old)
            engine_heap_up(w, s->heap_pos - 1);
        else if (deadline > old)
            engine_heap_down(w, s->heap_pos - 1);
        return;
    }
    if (s->heap_pos)
        engine_heap_remove(w, s);
    s->deadline = deadline;
    if (!deadline)
        return;
    w->heap[w->heap_len] = idx;
    s->heap_pos = ++w->heap_len;
    engine_heap_up(w, w->heap_len - 1);
}

uint64_t engine_timer_next(const struct engine_worker *w)
{
    return w->heap_len ? engine_slot_at(w, w->heap[0])->deadline : 0;
}

/* Fires at most as many timers as were armed on entry, so a callee that re-arms at or
 * before `now` runs again next turn instead of looping here. */
void engine_timers_fire(struct engine_worker *w)
{
    for (uint32_t budget = w->heap_len; budget > 0 && w->heap_len; budget--) {
        uint32_t idx = w->heap[0];
        struct engine_slot *s = engine_slot_at(w, idx);
        if (s->deadline > w->now)
            break;
        engine_timer_set(w, idx, 0);
        /* A closing connection's timer is the deadline of its close (and a refused one
         * has nobody to tell). */
        if (s->ctx && s->state == ENGINE_SLOT_OPEN)
            w->e->cb.on_timer(s->ctx);
        else
            engine_conn_expire(w, idx);
    }
}

void engine_conn_set_timer(struct engine_worker *w, engine_conn_id id, uint64_t deadline_ms)
{
    struct engine_slot *s = engine_slot_get(w, id);
    if (!s || (s->flags & ENGINE_F_CANCELLED))
        return;
    if (!deadline_ms && s->state == ENGINE_SLOT_CLOSING)
        return; /* every connection keeps a deadline */
    engine_timer_set(w, (uint32_t)id, deadline_ms);
}
