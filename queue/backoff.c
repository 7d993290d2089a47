/*
 * Retry schedule: Postfix's doubling backoff between two bounds, sendmail's
 * MinQueueAge as a floor, and a final attempt at the expiry time so a message that
 * could still be delivered gets its last chance before it bounces.
 */
#include "queue/backoff.h"

struct queue_retry_settings queue_retry_defaults(void)
{
    return (struct queue_retry_settings){
        .interval = 30 * 60,
        .min_queue_age = 0,
        .minimal_backoff = 5 * 60,
        .maximal_backoff = 60 * 60,
        .queuewarn = 4 * 3600,
        .queuereturn = 5 * 86400,
    };
}

uint32_t queue_backoff(unsigned attempts, const struct queue_retry_settings *s)
{
    if (attempts == 0)
        return 0;
    uint64_t wait;
    if (s->minimal_backoff == 0) {
        wait = s->interval;
    } else {
        uint64_t cap =
            s->maximal_backoff > s->minimal_backoff ? s->maximal_backoff : s->minimal_backoff;
        wait = s->minimal_backoff;
        for (unsigned i = 1; i < attempts && wait < cap; i++)
            wait *= 2;
        if (wait > cap)
            wait = cap;
    }
    if (wait < s->min_queue_age)
        wait = s->min_queue_age;
    /* A zero wait would retry in a tight loop against a destination that is failing. */
    return wait ? (uint32_t)wait : 1;
}

static time_t queue_expiry(time_t created, const struct queue_retry_settings *s)
{
    return created + (time_t)s->queuereturn;
}

time_t queue_next_attempt(time_t created, time_t now, unsigned attempts,
                          const struct queue_retry_settings *s)
{
    time_t next = now + (time_t)queue_backoff(attempts, s);
    time_t expiry = queue_expiry(created, s);
    if (next > expiry)
        next = expiry;
    return next < now ? now : next;
}

bool queue_expired(time_t created, time_t now, const struct queue_retry_settings *s)
{
    return now >= queue_expiry(created, s);
}

bool queue_warn_due(time_t created, time_t now, const struct queue_retry_settings *s)
{
    return s->queuewarn > 0 && s->queuewarn < s->queuereturn &&
           now >= created + (time_t)s->queuewarn && !queue_expired(created, now, s);
}
