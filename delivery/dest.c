#include "delivery/dest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rate tokens are counted in 1/60000 of a message, so that `rate` messages a minute add
 * exactly `rate` units a millisecond and nothing is lost to rounding. */
#define DEST_TOKEN       60000u
#define DEST_DEFAULT_MAX 100000u
#define DEST_BUSY_RETRY  1000u /* ms before a job that found no free slot tries again */

struct dest_entry {
    struct dest_entry *next;
    uint64_t hash;
    unsigned sessions;
    uint64_t tokens;    /* in DEST_TOKEN units */
    uint64_t tokens_at; /* when they were counted */
    uint64_t held_until;
    uint64_t failed_at; /* when the cached failure happened */
    uint64_t tls_broken_until;
    char *reason; /* the cached failure while held */
    char key[];
};

struct dest_table {
    pthread_mutex_t lock;
    struct dest_settings s;
    struct dest_entry **buckets;
    size_t n_buckets, n, sweep_at;
};

static uint64_t dest_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static uint64_t dest_capacity(const struct dest_settings *s)
{
    unsigned burst = s->rate / 60 ? s->rate / 60 : 1;
    return (uint64_t)burst * DEST_TOKEN;
}

static void dest_settings_copy(struct dest_table *t, const struct dest_settings *s)
{
    t->s = *s;
    if (!t->s.max_entries)
        t->s.max_entries = DEST_DEFAULT_MAX;
    if (t->sweep_at < t->s.max_entries)
        t->sweep_at = t->s.max_entries;
}

struct dest_table *dest_table_new(const struct dest_settings *s)
{
    struct dest_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->n_buckets = 64;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (!t->buckets || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    dest_settings_copy(t, s);
    return t;
}

static void dest_entry_free(struct dest_entry *e)
{
    free(e->reason);
    free(e);
}

void dest_table_free(struct dest_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_buckets; i++)
        for (struct dest_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            dest_entry_free(e);
        }
    free(t->buckets);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void dest_table_configure(struct dest_table *t, const struct dest_settings *s)
{
    pthread_mutex_lock(&t->lock);
    dest_settings_copy(t, s);
    pthread_mutex_unlock(&t->lock);
}

static void dest_refill(const struct dest_table *t, struct dest_entry *e, uint64_t now)
{
    uint64_t cap = dest_capacity(&t->s);
    if (now > e->tokens_at)
        e->tokens += (now - e->tokens_at) * t->s.rate;
    if (e->tokens > cap)
        e->tokens = cap;
    e->tokens_at = now > e->tokens_at ? now : e->tokens_at;
}

/* Nothing to remember: no session, no status in force, a full bucket. */
static bool dest_idle(const struct dest_table *t, struct dest_entry *e, uint64_t now)
{
    if (e->sessions || e->held_until > now || e->tls_broken_until > now)
        return false;
    if (!t->s.rate)
        return true;
    dest_refill(t, e, now);
    return e->tokens >= dest_capacity(&t->s);
}

static void dest_sweep(struct dest_table *t, uint64_t now)
{
    for (size_t i = 0; i < t->n_buckets; i++)
        for (struct dest_entry **pp = &t->buckets[i]; *pp;) {
            struct dest_entry *e = *pp;
            if (dest_idle(t, e, now)) {
                *pp = e->next;
                dest_entry_free(e);
                t->n--;
            } else {
                pp = &e->next;
            }
        }
    /* entries still in use stay; sweep again only once as many more have come */
    t->sweep_at = t->n * 2 > t->s.max_entries ? t->n * 2 : t->s.max_entries;
}

static void dest_grow(struct dest_table *t)
{
    size_t n = t->n_buckets * 2;
    struct dest_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->n_buckets; i++)
        for (struct dest_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

static struct dest_entry *dest_find(struct dest_table *t, const char *key)
{
    uint64_t h = dest_hash(key);
    for (struct dest_entry *e = t->buckets[h & (t->n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* NULL only when out of memory: the caller then goes on without limits for this one. */
static struct dest_entry *dest_get(struct dest_table *t, const char *key, uint64_t now)
{
    struct dest_entry *e = dest_find(t, key);
    if (e)
        return e;
    if (t->n >= t->sweep_at)
        dest_sweep(t, now);
    size_t len = strlen(key);
    if (!(e = calloc(1, sizeof(*e) + len + 1)))
        return NULL;
    memcpy(e->key, key, len + 1);
    e->hash = dest_hash(key);
    e->tokens = dest_capacity(&t->s);
    e->tokens_at = now;
    if (t->n >= t->n_buckets)
        dest_grow(t);
    e->next = t->buckets[e->hash & (t->n_buckets - 1)];
    t->buckets[e->hash & (t->n_buckets - 1)] = e;
    t->n++;
    return e;
}

enum dest_verdict dest_acquire(struct dest_table *t, const char *key, bool with_slot, uint64_t now,
                               struct dest_check *out)
{
    out->verdict = DEST_GO;
    out->retry_at = 0;
    out->reason[0] = '\0';
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = dest_get(t, key, now);
    if (!e) {
        pthread_mutex_unlock(&t->lock);
        return DEST_GO;
    }
    if (e->held_until > now) {
        out->verdict = DEST_HELD;
        out->retry_at = e->held_until;
        snprintf(out->reason, sizeof(out->reason), "%s", e->reason ? e->reason : "");
    } else if (with_slot && t->s.concurrency && e->sessions >= t->s.concurrency) {
        out->verdict = DEST_BUSY;
        out->retry_at = now + DEST_BUSY_RETRY;
        snprintf(out->reason, sizeof(out->reason),
                 "destination concurrency limit (%u) reached for %s", t->s.concurrency, key);
    } else if (t->s.rate && (dest_refill(t, e, now), e->tokens < DEST_TOKEN)) {
        out->verdict = DEST_BUSY;
        out->retry_at = now + (DEST_TOKEN - e->tokens + t->s.rate - 1) / t->s.rate;
        snprintf(out->reason, sizeof(out->reason),
                 "destination rate limit (%u messages a minute) reached for %s", t->s.rate, key);
    } else {
        if (with_slot)
            e->sessions++;
        if (t->s.rate)
            e->tokens -= DEST_TOKEN;
    }
    pthread_mutex_unlock(&t->lock);
    return out->verdict;
}

void dest_untake(struct dest_table *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = dest_find(t, key);
    if (e && t->s.rate) {
        e->tokens += DEST_TOKEN;
        if (e->tokens > dest_capacity(&t->s))
            e->tokens = dest_capacity(&t->s);
    }
    pthread_mutex_unlock(&t->lock);
}

void dest_release(struct dest_table *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = dest_find(t, key);
    if (e && e->sessions)
        e->sessions--;
    pthread_mutex_unlock(&t->lock);
}

void dest_failed(struct dest_table *t, const char *key, const char *reason, uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = t->s.host_status_timeout ? dest_get(t, key, now) : NULL;
    char *copy = e ? strdup(reason) : NULL;
    if (copy) {
        free(e->reason);
        e->reason = copy;
        e->failed_at = now;
        e->held_until = now + t->s.host_status_timeout;
    }
    pthread_mutex_unlock(&t->lock);
}

void dest_succeeded(struct dest_table *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = dest_find(t, key);
    if (e) {
        e->held_until = 0;
        free(e->reason);
        e->reason = NULL;
    }
    pthread_mutex_unlock(&t->lock);
}

void dest_tls_failed(struct dest_table *t, const char *key, uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    struct dest_entry *e = t->s.host_status_timeout ? dest_get(t, key, now) : NULL;
    if (e)
        e->tls_broken_until = now + t->s.host_status_timeout;
    pthread_mutex_unlock(&t->lock);
}

bool dest_tls_broken(struct dest_table *t, const char *key, uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    const struct dest_entry *e = dest_find(t, key);
    bool broken = e && e->tls_broken_until > now;
    pthread_mutex_unlock(&t->lock);
    return broken;
}

unsigned dest_sessions(struct dest_table *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    const struct dest_entry *e = dest_find(t, key);
    unsigned n = e ? e->sessions : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t dest_entries(struct dest_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t dest_status_list(struct dest_table *t, uint64_t now,
                        void (*fn)(void *arg, const struct dest_status *st), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n_buckets; i++)
        for (const struct dest_entry *e = t->buckets[i]; e; e = e->next) {
            if (!e->reason)
                continue;
            struct dest_status st = {e->key, e->held_until > now, e->failed_at, e->reason};
            fn(arg, &st);
            n++;
        }
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t dest_status_purge(struct dest_table *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n_buckets; i++)
        for (struct dest_entry *e = t->buckets[i]; e; e = e->next) {
            n += e->reason != NULL;
            e->held_until = 0;
            e->tls_broken_until = 0;
            free(e->reason);
            e->reason = NULL;
        }
    pthread_mutex_unlock(&t->lock);
    return n;
}
