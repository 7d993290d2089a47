/*
 * core/accept_throttle.h — sendmail's ConnectionRateThrottle (limits.connection_rate_throttle):
 * at most N new connections per second on each listener, over all clients; the ones beyond
 * wait for a later second, never refused. sendmail sleeps before accepting them; ringmaild
 * accepts and holds the greeting (core/session_checks.c), so the client sees the same wait.
 *
 * Each listener hands out its seconds in order: a connection takes a place in the current
 * second if it has room, else in the first later second that has (a burst of 3N in one
 * second is greeted over three seconds). Time is passed in (the engine's monotonic
 * milliseconds); no clock, no I/O. Thread-safe: one mutex, taken once per connection.
 * Owns one small counter per listener, fixed at start-up as the listeners are.
 */
#ifndef RINGMAIL_CORE_ACCEPT_THROTTLE_H
#define RINGMAIL_CORE_ACCEPT_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct accept_throttle;

struct accept_throttle *accept_throttle_new(size_t n_listeners); /* NULL: out of memory */
void accept_throttle_free(struct accept_throttle *t);
/* Counts a new connection on `listener` at now_ms; returns how many ms it waits for its
 * place (0: greet now). per_sec 0 (no limit) or a listener out of range: 0, uncounted. */
uint64_t accept_throttle_wait(struct accept_throttle *t, size_t listener, uint64_t now_ms,
                              unsigned per_sec);

#endif
