/*
 * policy/clientrate.h — how many connections each client opened lately (the count behind
 * FEATURE(ratecontrol), sendmail's ${client_rate}).
 *
 * Each client's window is kept as CLIENTRATE_BINS bins of window/CLIENTRATE_BINS each, so
 * the count is exact to one bin's width (sendmail also counts in time slots). Memory stays
 * bounded by the clients seen within a window: every hit sweeps two buckets of the table
 * and frees the clients whose last connection left the window. Time is passed in (the
 * engine's monotonic milliseconds); no clock, no I/O.
 *
 * Thread-safe: one mutex, taken once per accepted connection.
 */
#ifndef RINGMAIL_POLICY_CLIENTRATE_H
#define RINGMAIL_POLICY_CLIENTRATE_H

#include <stdint.h>
#include <sys/socket.h>

#define CLIENTRATE_BINS 8u

struct clientrate;

struct clientrate *clientrate_new(void); /* NULL when out of memory */
void clientrate_free(struct clientrate *r);
/* Counts a connection from `client` at now_ms; returns how many it opened in the last
 * window_ms, this one included (0 only when out of memory: then nobody is limited). */
unsigned clientrate_hit(struct clientrate *r, const struct sockaddr *client, uint64_t now_ms,
                        uint64_t window_ms);

#endif
