#include "core/connlimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/netaddr.h"

/* Clients are keyed by netaddr_key(): ::ffff:1.2.3.4 and 1.2.3.4 count as one client; local
 * callers by uid (connlimit_uid_key), in a table of their own. */
struct connlimit_entry {
    struct connlimit_entry *next;
    uint8_t key[16];
    unsigned count;
};

#define CONNLIMIT_BUCKETS 4096

struct connlimit {
    pthread_mutex_t lock;
    unsigned total;
    struct connlimit_entry *buckets[CONNLIMIT_BUCKETS];
};

static struct connlimit_entry **connlimit_find(struct connlimit *cl, const uint8_t key[16])
{
    struct connlimit_entry **pp = &cl->buckets[netaddr_key_hash(key) % CONNLIMIT_BUCKETS];
    while (*pp && memcmp((*pp)->key, key, 16) != 0)
        pp = &(*pp)->next;
    return pp;
}

struct connlimit *connlimit_new(void)
{
    struct connlimit *cl = calloc(1, sizeof(*cl));
    if (cl)
        pthread_mutex_init(&cl->lock, NULL);
    return cl;
}

void connlimit_free(struct connlimit *cl)
{
    if (!cl)
        return;
    for (unsigned i = 0; i < CONNLIMIT_BUCKETS; i++) {
        while (cl->buckets[i]) {
            struct connlimit_entry *e = cl->buckets[i];
            cl->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

static enum connlimit_verdict connlimit_acquire_key(struct connlimit *cl, const uint8_t key[16],
                                                    unsigned max_total, unsigned max_per_client)
{
    enum connlimit_verdict v = CONNLIMIT_OK;

    pthread_mutex_lock(&cl->lock);
    struct connlimit_entry **pp = connlimit_find(cl, key);
    if (max_total && cl->total >= max_total) {
        v = CONNLIMIT_TOTAL;
    } else if (max_per_client && *pp && (*pp)->count >= max_per_client) {
        v = CONNLIMIT_CLIENT;
    } else if (!*pp && !(*pp = calloc(1, sizeof(**pp)))) {
        v = CONNLIMIT_TOTAL; /* out of memory: refusing is the safe answer */
    } else {
        memcpy((*pp)->key, key, 16);
        (*pp)->count++;
        cl->total++;
    }
    pthread_mutex_unlock(&cl->lock);
    return v;
}

static void connlimit_release_key(struct connlimit *cl, const uint8_t key[16])
{
    pthread_mutex_lock(&cl->lock);
    struct connlimit_entry **pp = connlimit_find(cl, key);
    if (*pp) {
        cl->total--;
        if (--(*pp)->count == 0) {
            struct connlimit_entry *e = *pp;
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&cl->lock);
}

/* A uid fills the key's first octets, the rest zero: uid tables never hold addresses. */
static void connlimit_uid_key(uid_t uid, uint8_t key[16])
{
    memset(key, 0, 16);
    memcpy(key, &uid, sizeof(uid));
}

enum connlimit_verdict connlimit_acquire(struct connlimit *cl, const struct sockaddr *client,
                                         unsigned max_total, unsigned max_per_client)
{
    uint8_t key[16];
    netaddr_key(client, key);
    return connlimit_acquire_key(cl, key, max_total, max_per_client);
}

void connlimit_release(struct connlimit *cl, const struct sockaddr *client)
{
    uint8_t key[16];
    netaddr_key(client, key);
    connlimit_release_key(cl, key);
}

enum connlimit_verdict connlimit_acquire_uid(struct connlimit *cl, uid_t uid, unsigned max_total,
                                             unsigned max_per_uid)
{
    uint8_t key[16];
    connlimit_uid_key(uid, key);
    return connlimit_acquire_key(cl, key, max_total, max_per_uid);
}

void connlimit_release_uid(struct connlimit *cl, uid_t uid)
{
    uint8_t key[16];
    connlimit_uid_key(uid, key);
    connlimit_release_key(cl, key);
}

unsigned connlimit_count_uid(struct connlimit *cl, uid_t uid)
{
    uint8_t key[16];
    connlimit_uid_key(uid, key);
    pthread_mutex_lock(&cl->lock);
    struct connlimit_entry **pp = connlimit_find(cl, key);
    unsigned n = *pp ? (*pp)->count : 0;
    pthread_mutex_unlock(&cl->lock);
    return n;
}

unsigned connlimit_total(struct connlimit *cl)
{
    pthread_mutex_lock(&cl->lock);
    unsigned n = cl->total;
    pthread_mutex_unlock(&cl->lock);
    return n;
}
