/*
 * delivery/dest.h — the per-destination table shared by every worker: how many sessions
 * deliver to a destination now (concurrency), how fast messages may go to it (rate), and
 * whether it failed recently (sendmail's host status, confTO_HOSTSTATUS).
 *
 * A destination is a next hop as delivery/route.h's route_key() names it
 * ("esmtp:example.com", "relay:[relay.example]:2525"). Concurrency counts sessions that
 * are delivering (connecting, talking, sending), as Postfix's destination concurrency
 * does: an idle connection waiting in a worker's cache holds no slot; taking it out of the
 * cache for the next message takes one again. Rate is a token bucket per destination:
 * `rate` messages a minute, with a burst of rate/60 (at least 1). Host status: a
 * destination whose every address failed (no connection, or a refusing greeting) is held
 * back until host_status_timeout has passed, with the reason kept for the log.
 *
 * Bounded: entries with nothing to remember (no session, no status, a full bucket) are
 * dropped when the table passes max_entries; entries still in use are never dropped, so a
 * table can only pass max_entries by as many destinations as there are sessions.
 *
 * Thread-safe: one mutex around the table (every call is a few hash-map steps). Times are
 * engine_now_ms() values (monotonic milliseconds), the same clock on every worker.
 */
#ifndef RINGMAIL_DELIVERY_DEST_H
#define RINGMAIL_DELIVERY_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dest_settings {
    unsigned concurrency;         /* sessions per destination, all workers; 0 = no limit */
    unsigned rate;                /* messages per minute per destination; 0 = no limit */
    uint64_t host_status_timeout; /* ms a failed destination is held back; 0 = not held */
    size_t max_entries;           /* 0 = 100000 */
};

struct dest_table;

/* NULL when out of memory. The settings are copied. */
struct dest_table *dest_table_new(const struct dest_settings *s);
void dest_table_free(struct dest_table *t);
/* New limits (a reload): sessions above a lowered concurrency finish; no new one starts
 * until the count is under it. */
void dest_table_configure(struct dest_table *t, const struct dest_settings *s);

enum dest_verdict {
    DEST_GO,   /* a slot and a token were taken: call dest_release() when the session ends */
    DEST_BUSY, /* at the concurrency limit or out of tokens: nothing taken, try at retry_at */
    DEST_HELD, /* host status: failed recently, nothing taken; reason says why */
};

struct dest_check {
    enum dest_verdict verdict;
    uint64_t retry_at; /* BUSY: when a token is due (rate), or now + 1 s (concurrency);
                          HELD: when the status expires */
    char reason[256];  /* BUSY: which limit; HELD: the failure that was cached */
};

/* Before a session to `key` delivers a message: checks the host status, then takes a
 * concurrency slot and a rate token. `with_slot` false takes only a token (the caller
 * already holds the slot: the next message on the same session). */
enum dest_verdict dest_acquire(struct dest_table *t, const char *key, bool with_slot, uint64_t now,
                               struct dest_check *out);
/* Takes back what a rate token took (the message was never sent, e.g. no connection). */
void dest_untake(struct dest_table *t, const char *key);
/* The session that took a slot ended (or went idle into a cache). */
void dest_release(struct dest_table *t, const char *key);

/* Every address of `key` failed: hold it back for host_status_timeout with `reason`
 * ("Connection refused by mx.example.com."). */
void dest_failed(struct dest_table *t, const char *key, const char *reason, uint64_t now);
/* A session to `key` worked: forget its failure. */
void dest_succeeded(struct dest_table *t, const char *key);

/* STARTTLS to `key` failed under the "may" policy: until host_status_timeout has passed,
 * dest_tls_broken() says to go in plain text at once (sendmail retries the same host
 * without STARTTLS). */
void dest_tls_failed(struct dest_table *t, const char *key, uint64_t now);
bool dest_tls_broken(struct dest_table *t, const char *key, uint64_t now);

/* --- the host status report (sendmail's hoststat and purgestat) --- */
struct dest_status {
    const char *key;    /* "esmtp:example.com" */
    bool down;          /* still held back */
    uint64_t failed_at; /* when it failed (engine_now_ms clock) */
    const char *reason; /* "Connection refused by mx.example.com." */
};
/* Calls fn, under the table's lock (fn must not call into the table), for every
 * destination with a failure on record: held back now, or its hold over but not yet
 * forgotten by a success. Returns how many. */
size_t dest_status_list(struct dest_table *t, uint64_t now,
                        void (*fn)(void *arg, const struct dest_status *st), void *arg);
/* Forgets every failure (and every STARTTLS failure): held destinations are tried at
 * once. Returns how many failures were forgotten. */
size_t dest_status_purge(struct dest_table *t);

/* For tests and the status report: sessions and entries now. */
unsigned dest_sessions(struct dest_table *t, const char *key);
size_t dest_entries(struct dest_table *t);

#endif
