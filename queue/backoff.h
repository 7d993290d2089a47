/*
 * queue/backoff.h — when a deferred message is tried again, when it expires, and when its
 * sender is warned of the delay (docs/queue.md, "Retries", is the operator's reference).
 *
 * Pure arithmetic on wall-clock Unix seconds: no clock is read (now is passed in), no
 * state is kept. Whether a delay warning was already sent is the caller's to record
 * (one per message).
 */
#ifndef RINGMAIL_QUEUE_BACKOFF_H
#define RINGMAIL_QUEUE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Seconds. */
struct queue_retry_settings {
    uint32_t interval;        /* queue.interval: sendmail's -q30m; the retry delay when
                               * minimal_backoff is 0 (a fixed schedule, as sendmail's) */
    uint32_t min_queue_age;   /* queue.min_queue_age: confMIN_QUEUE_AGE, no retry sooner
                               * than this after an attempt; 0 = none */
    uint32_t minimal_backoff; /* queue.minimal_backoff: Postfix's minimal_backoff_time */
    uint32_t maximal_backoff; /* queue.maximal_backoff: Postfix's maximal_backoff_time */
    uint32_t queuewarn;       /* timeouts.queuewarn: confTO_QUEUEWARN; 0 = never warn */
    uint32_t queuereturn;     /* timeouts.queuereturn: confTO_QUEUERETURN, the message's
                               * lifetime; 0 = bounce at the first temporary failure */
};

/* interval 30m, min_queue_age 0, minimal_backoff 5m, maximal_backoff 1h, queuewarn 4h,
 * queuereturn 5d. */
struct queue_retry_settings queue_retry_defaults(void);

/* The wait after the attempts-th failed attempt (attempts >= 1; 0 gives 0):
 * minimal_backoff * 2^(attempts-1), at most max(maximal_backoff, minimal_backoff); when
 * minimal_backoff is 0, interval; never less than min_queue_age, never less than 1. */
uint32_t queue_backoff(unsigned attempts, const struct queue_retry_settings *s);
/* When to try again after an attempt made at `now` that left recipients pending;
 * `attempts` counts that attempt. now + queue_backoff(), but never later than the
 * expiry (created + queuereturn), so the last attempt is made when the message expires;
 * never earlier than now. */
time_t queue_next_attempt(time_t created, time_t now, unsigned attempts,
                          const struct queue_retry_settings *s);
/* The message has been queued for queuereturn: pending recipients fail (a bounce) after
 * the attempt made at now instead of being deferred again. */
bool queue_expired(time_t created, time_t now, const struct queue_retry_settings *s);
/* The message has been queued for queuewarn (and has not expired): a delay warning is
 * due, unless the caller already sent one for this message. */
bool queue_warn_due(time_t created, time_t now, const struct queue_retry_settings *s);

#endif
