/*
 * core/connlimit.h — connection counts across all workers: in total and per client
 * address (sendmail's MaxDaemonChildren and ClientConn), or, for the callers on
 * submission.socket, in total and per uid (submission.connections, connections_per_user).
 * One struct connlimit counts one kind: the daemon keeps one for TCP clients and one for
 * local callers, so neither can use up the other's slots.
 *
 * Thread-safe (one mutex, touched only at accept and close, never per command). Owns a
 * small hash table of client addresses with a live count; entries go away when their
 * count drops to zero, so the table is bounded by the number of open connections.
 */
#ifndef RINGMAIL_CORE_CONNLIMIT_H
#define RINGMAIL_CORE_CONNLIMIT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

struct connlimit;

enum connlimit_verdict { CONNLIMIT_OK, CONNLIMIT_TOTAL, CONNLIMIT_CLIENT };

struct connlimit *connlimit_new(void);
void connlimit_free(struct connlimit *cl);
/* Counts a new connection unless that would pass a limit (0 = no limit). Only an OK
 * verdict is counted and must be paired with connlimit_release(). */
enum connlimit_verdict connlimit_acquire(struct connlimit *cl, const struct sockaddr *client,
                                         unsigned max_total, unsigned max_per_client);
void connlimit_release(struct connlimit *cl, const struct sockaddr *client);
unsigned connlimit_total(struct connlimit *cl);
/* The same for a local caller, by uid: CONNLIMIT_CLIENT when that uid has max_per_uid. Never
 * mixed with the address calls on one struct connlimit. */
enum connlimit_verdict connlimit_acquire_uid(struct connlimit *cl, uid_t uid, unsigned max_total,
                                             unsigned max_per_uid);
void connlimit_release_uid(struct connlimit *cl, uid_t uid);
/* The connections `uid` holds now (for the refusal's log line). */
unsigned connlimit_count_uid(struct connlimit *cl, uid_t uid);

#endif
