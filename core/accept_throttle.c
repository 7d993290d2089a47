#include "core/accept_throttle.h"

#include <pthread.h>
#include <stdlib.h>

struct accept_slot {
    uint64_t sec;  /* the latest second given out */
    unsigned used; /* places taken in it */
};

struct accept_throttle {
    pthread_mutex_t lock;
    size_t n;
    struct accept_slot slot[];
};

struct accept_throttle *accept_throttle_new(size_t n_listeners)
{
    struct accept_throttle *t = calloc(1, sizeof(*t) + n_listeners * sizeof(t->slot[0]));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    t->n = n_listeners;
    return t;
}

void accept_throttle_free(struct accept_throttle *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

uint64_t accept_throttle_wait(struct accept_throttle *t, size_t listener, uint64_t now_ms,
                              unsigned per_sec)
{
    if (!per_sec || listener >= t->n)
        return 0;
    uint64_t now_sec = now_ms / 1000;
    pthread_mutex_lock(&t->lock);
    struct accept_slot *s = &t->slot[listener];
    if (s->sec < now_sec) { /* a quiet spell: the current second starts afresh */
        s->sec = now_sec;
        s->used = 0;
    }
    if (s->used >= per_sec) { /* this second is full: the next one */
        s->sec++;
        s->used = 0;
    }
    s->used++;
    uint64_t sec = s->sec;
    pthread_mutex_unlock(&t->lock);
    return sec > now_sec ? sec * 1000 - now_ms : 0;
}
