/*
 * Queue ids: 16 characters of base 62, most significant first, so ASCII order is time
 * order (docs/queue.md, "Queue ids"):
 *
 *   [0..5]   seconds since 2020-01-01 UTC   (62^6 s = 1,800 years)
 *   [6..8]   fraction of that second        (1/238328 s, about 4 us)
 *   [9..11]  process-wide counter           (unique within one process)
 *   [12]     worker index (mod 62)          (shows which thread accepted it)
 *   [13..15] per-process tag                (random ^ pid: two processes started in the
 *                                            same tick still differ)
 *
 * The spool creates files with O_EXCL, so the residual chance of a collision between two
 * processes (same tick, same counter, same tag) becomes a failed commit, never an
 * overwritten message.
 */
#include "queue/qid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define QID_EPOCH 1577836800 /* 2020-01-01T00:00:00Z */
#define QID_62_3  (62u * 62u * 62u)

static const char qid_digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static atomic_uint qid_counter;
static unsigned qid_tag;
static pthread_once_t qid_once = PTHREAD_ONCE_INIT;

static void qid_init(void)
{
    unsigned r = 0;
    struct timespec ts;
    /* Without entropy (very early boot) the pid and the clock still separate processes. */
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (unsigned)ts.tv_nsec * 2654435761u;
    }
    qid_tag = (r ^ (unsigned)getpid()) % QID_62_3;
}

/* Writes `v` as exactly `width` base-62 digits (the caller keeps v < 62^width). */
static void qid_put(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = qid_digits[v % 62];
        v /= 62;
    }
}

void qid_new(char out[QID_LEN + 1], unsigned worker)
{
    struct timespec ts;

    pthread_once(&qid_once, qid_init);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t secs = ts.tv_sec > QID_EPOCH ? (uint64_t)(ts.tv_sec - QID_EPOCH) : 0;
    uint64_t frac = (uint64_t)ts.tv_nsec * QID_62_3 / 1000000000u;
    unsigned seq = atomic_fetch_add_explicit(&qid_counter, 1, memory_order_relaxed);

    qid_put(out, secs, 6);
    qid_put(out + 6, frac, 3);
    qid_put(out + 9, seq % QID_62_3, 3);
    qid_put(out + 12, worker % 62, 1);
    qid_put(out + 13, qid_tag, 3);
    out[QID_LEN] = '\0';
}

bool qid_valid(const char *s)
{
    size_t i;
    for (i = 0; i < QID_LEN; i++) {
        char c = s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (!ok)
            return false;
    }
    return s[i] == '\0';
}

uint32_t qid_hash(const char *qid)
{
    uint32_t h = 2166136261u; /* FNV-1a, then a finalizer */
    for (size_t i = 0; i < QID_LEN && qid[i]; i++)
        h = (h ^ (unsigned char)qid[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    return h;
}
