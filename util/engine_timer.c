/*
 * util/engine_timer.c — one timer per connection, a binary min-heap per worker; and the
 * layer's worker timers, a pairing heap per worker.
 *
 * The connection heap holds slot indices; each slot remembers its position, so arming,
 * re-arming and disarming are O(log n). The heap's capacity follows the slot table (every
 * slot can be in it at most once), so arming never allocates and never fails.
 *
 * Worker timers live in the layer's objects, in any number, so their heap is intrusive: a
 * pairing heap needs three pointers per timer and no array, and so never allocates (a
 * binary heap's array would have to grow, and could fail, inside engine_timer_arm). Each
 * timer links its first child (eng_child), its next sibling (eng_next), and its previous
 * sibling or, for a first child, its parent (eng_prev); the root's eng_prev is itself, so
 * a timer is armed exactly when eng_prev is set.
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
        void *ctx;
        const struct engine_conn_callbacks *cb =
            s->state == ENGINE_SLOT_OPEN ? engine_slot_callbacks(w, s, &ctx) : NULL;
        if (!cb)
            engine_conn_expire(w, idx);
        else if (cb->on_timer)
            cb->on_timer(ctx);
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

/* Deadline 0 stands for "no timer" in the loop's bookkeeping; a timer due at once is due
 * at 1, which is just as past. */
static uint64_t engine_timer_deadline(uint64_t deadline)
{
    return deadline ? deadline : 1;
}

/* Two heaps into one; `a` and `b` are roots (or NULL). The loser becomes the winner's first
 * child. The result's eng_next and eng_prev are the caller's to set. */
static struct engine_timer *engine_timer_meld(struct engine_timer *a, struct engine_timer *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->eng_deadline < a->eng_deadline) {
        struct engine_timer *t = a;
        a = b;
        b = t;
    }
    b->eng_next = a->eng_child;
    if (a->eng_child)
        a->eng_child->eng_prev = b;
    b->eng_prev = a;
    a->eng_child = b;
    a->eng_next = NULL;
    return a;
}

/* A list of siblings into one heap: meld them in pairs left to right, then the pairs right
 * to left (the two passes give the amortised O(log n)). */
static struct engine_timer *engine_timer_merge_pairs(struct engine_timer *first)
{
    struct engine_timer *pairs = NULL; /* melded pairs, the last one first */
    while (first) {
        struct engine_timer *a = first;
        struct engine_timer *b = a->eng_next;
        first = b ? b->eng_next : NULL;
        a->eng_next = NULL;
        if (b)
            b->eng_next = NULL;
        struct engine_timer *m = engine_timer_meld(a, b);
        m->eng_next = pairs;
        pairs = m;
    }
    struct engine_timer *root = NULL;
    while (pairs) {
        struct engine_timer *next = pairs->eng_next;
        pairs->eng_next = NULL;
        root = engine_timer_meld(root, pairs);
        pairs = next;
    }
    return root;
}

static void engine_timer_set_root(struct engine_worker *w, struct engine_timer *root)
{
    w->timers = root;
    if (root) {
        root->eng_prev = root;
        root->eng_next = NULL;
    }
}

bool engine_timer_armed(const struct engine_timer *t)
{
    return t->eng_prev != NULL;
}

void engine_timer_disarm(struct engine_worker *w, struct engine_timer *t)
{
    if (!t->eng_prev)
        return;
    struct engine_timer *sub = engine_timer_merge_pairs(t->eng_child);
    if (t == w->timers) {
        engine_timer_set_root(w, sub);
    } else {
        struct engine_timer *prev = t->eng_prev;
        if (prev->eng_child == t)
            prev->eng_child = t->eng_next;
        else
            prev->eng_next = t->eng_next;
        if (t->eng_next)
            t->eng_next->eng_prev = prev;
        engine_timer_set_root(w, engine_timer_meld(w->timers, sub));
    }
    t->eng_child = t->eng_next = t->eng_prev = NULL;
    w->ntimers--;
}

void engine_timer_arm(struct engine_worker *w, struct engine_timer *t, uint64_t deadline_ms)
{
    engine_timer_disarm(w, t);
    if (w->timers_off)
        return;
    t->eng_deadline = engine_timer_deadline(deadline_ms);
    t->eng_child = t->eng_next = NULL;
    engine_timer_set_root(w, engine_timer_meld(w->timers, t));
    w->ntimers++;
}

uint64_t engine_worker_timer_next(const struct engine_worker *w)
{
    return w->timers ? w->timers->eng_deadline : 0;
}

/* As for connections: at most as many as were armed on entry, so a timer re-armed at or
 * before now fires next turn instead of looping here. */
void engine_worker_timers_fire(struct engine_worker *w)
{
    for (uint32_t budget = w->ntimers; budget > 0 && w->timers; budget--) {
        struct engine_timer *t = w->timers;
        if (t->eng_deadline > w->now)
            break;
        engine_timer_disarm(w, t);
        t->fire(t);
    }
}

/* Disarmed one by one rather than forgotten: the layer may still disarm some of them in
 * worker_fini, which must not touch neighbours that are freed by then. */
void engine_worker_timers_drop(struct engine_worker *w)
{
    w->timers_off = true;
    while (w->timers)
        engine_timer_disarm(w, w->timers);
}
