#include "policy/clientrate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/netaddr.h"

#define CLIENTRATE_BUCKETS 4096u

struct clientrate_entry {
    struct clientrate_entry *next;
    uint8_t key[16];
    uint64_t bin_ms; /* the bin width the counts were taken with */
    uint64_t last;   /* the number (now / bin_ms) of the newest bin */
    unsigned count[CLIENTRATE_BINS];
};

struct clientrate {
    pthread_mutex_t lock;
    unsigned sweep; /* the next bucket to sweep */
    struct clientrate_entry *buckets[CLIENTRATE_BUCKETS];
};

struct clientrate *clientrate_new(void)
{
    struct clientrate *r = calloc(1, sizeof(*r));
    if (r)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

void clientrate_free(struct clientrate *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < CLIENTRATE_BUCKETS; i++) {
        while (r->buckets[i]) {
            struct clientrate_entry *e = r->buckets[i];
            r->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Moves the entry's bins forward to `now`, zeroing those that left the window. */
static void clientrate_advance(struct clientrate_entry *e, uint64_t now_ms, uint64_t bin_ms)
{
    uint64_t now = now_ms / bin_ms;
    if (e->bin_ms != bin_ms || now >= e->last + CLIENTRATE_BINS) {
        memset(e->count, 0, sizeof(e->count));
    } else {
        for (uint64_t b = e->last + 1; b <= now; b++)
            e->count[b % CLIENTRATE_BINS] = 0;
    }
    if (now > e->last || e->bin_ms != bin_ms)
        e->last = now;
    e->bin_ms = bin_ms;
}

static void clientrate_sweep(struct clientrate *r, uint64_t now_ms)
{
    struct clientrate_entry **pp = &r->buckets[r->sweep];
    r->sweep = (r->sweep + 1) % CLIENTRATE_BUCKETS;
    while (*pp) {
        struct clientrate_entry *e = *pp;
        if (now_ms / e->bin_ms >= e->last + CLIENTRATE_BINS) {
            *pp = e->next;
            free(e);
        } else {
            pp = &e->next;
        }
    }
}

unsigned clientrate_hit(struct clientrate *r, const struct sockaddr *client, uint64_t now_ms,
                        uint64_t window_ms)
{
    uint8_t key[16];
    netaddr_key(client, key);
    uint64_t bin_ms = window_ms / CLIENTRATE_BINS ? window_ms / CLIENTRATE_BINS : 1;
    unsigned total = 0;

    pthread_mutex_lock(&r->lock);
    clientrate_sweep(r, now_ms);
    clientrate_sweep(r, now_ms);
    struct clientrate_entry **pp = &r->buckets[netaddr_key_hash(key) % CLIENTRATE_BUCKETS];
    while (*pp && memcmp((*pp)->key, key, 16) != 0)
        pp = &(*pp)->next;
    if (!*pp && (*pp = calloc(1, sizeof(**pp))) != NULL)
        memcpy((*pp)->key, key, 16);
    if (*pp) {
        struct clientrate_entry *e = *pp;
        clientrate_advance(e, now_ms, bin_ms);
        e->count[e->last % CLIENTRATE_BINS]++;
        for (unsigned i = 0; i < CLIENTRATE_BINS; i++)
            total += e->count[i];
    }
    pthread_mutex_unlock(&r->lock);
    return total;
}
