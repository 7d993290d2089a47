/*
 * cli/queuectl.h — the queue tools' client of ringmaild's control socket
 * (submission.control_socket; the protocol is in docs/queue.md, "The control socket"):
 * sendmail -q/-qR/-qS/-qI, hoststat, purgestat, sendmail -v's WATCH, and ringmail-queue's
 * hold, release, delete and requeue (Postfix's postsuper -h, -H, -d, -r).
 *
 * One request per connection: a line "VERB ARG...", then data lines "+ TEXT" and one final
 * "OK TEXT" or "ERR CODE TEXT" (CODE is the sysexits value the tool exits with). A request
 * with more targets than fit in one 4096-octet line is sent as several.
 *
 * When the daemon is down (the socket is missing or refuses: ENOENT, ECONNREFUSED), hold,
 * release, delete and requeue work on the files themselves, under the spool's lock
 * (flock LOCK_EX|LOCK_NB on <spool>/ringmail.lock, the lock ringmaild holds while it
 * runs): a field rewritten in place at the offset the parser recorded, then fsync; a
 * delete unlinks the qf, then the df, then fsyncs their directory. If the lock is held the
 * daemon is running but not answering: EX_TEMPFAIL, nothing touched. Flush, hoststat,
 * purgestat and WATCH need the daemon: "ringmaild is not running", EX_UNAVAILABLE.
 *
 * Every function prints what the tool shows on `out` and its errors once on `err`, and
 * returns a sysexits value. Blocking; owns nothing beyond each call.
 */
#ifndef RINGMAIL_CLI_QUEUECTL_H
#define RINGMAIL_CLI_QUEUECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "cli/sendmail_args.h"
#include "core/config.h"
#include "queue/envelope.h"

/* The longest request line, its LF included (docs/queue.md). */
#define QUEUECTL_LINE_MAX 4096

enum queuectl_op { QUEUECTL_HOLD, QUEUECTL_RELEASE, QUEUECTL_DELETE, QUEUECTL_REQUEUE };

/* sendmail -q, -qR/-qS/-qI (with -q!X negations): FLUSH with the filters; silent on
 * success unless -v (sendmail -q says nothing either). With -Q (a->unquarantine): the
 * selected messages are released instead, as queuectl_change(QUEUECTL_RELEASE) says. */
int queuectl_flush(const struct config *cfg, const struct sendmail_args *a, FILE *out, FILE *err);
/* ringmail-queue flush [FILTER...]: the filters as the protocol takes them ("Rexample.com",
 * "!Sbounces"); prints the daemon's "N messages scheduled". `prog` prefixes errors. */
int queuectl_flush_filters(const struct config *cfg, const char *prog, const char *const *filters,
                           size_t n, bool quiet, FILE *out, FILE *err);
/* hoststat (sendmail's table, see queuectl_hoststat_line) or, with `purge`, purgestat. */
int queuectl_hoststat(const struct config *cfg, bool purge, FILE *out, FILE *err);
/* sendmail -v after a submission: the daemon's log lines about `qid` until its current
 * attempt ends, one per line on `out`. EX_UNAVAILABLE (nothing printed) when the daemon is
 * down. */
int queuectl_watch(const struct config *cfg, const char *qid, FILE *out);
/* ringmail-queue hold|release|delete|requeue TARGET...: one "<qid> held" (released,
 * deleted, requeued) line per message on `out`, then postsuper's summary on `err`
 * ("ringmail-queue: Placed on hold: 2 messages"). Offline when the daemon is down. */
int queuectl_change(const struct config *cfg, const char *prog, enum queuectl_op op,
                    const char *const *targets, size_t n, FILE *out, FILE *err);

/* --- pure parts, for the offline operations and the tests --- */

/* A target as the protocol allows it (core/control_proto.h): "ALL", a queue id, or a
 * filter: an optional '!', then 'R' (recipient), 'S' (sender) or 'I' (queue id), then a
 * non-empty substring; no white space or control octets anywhere. A token that starts
 * with R, S or I (after the '!') is a filter: queue ids start with a digit. */
bool queuectl_target_valid(const char *t);
/* Whether `e` is selected by `targets`, as the daemon's control_match() decides: listed
 * among the queue ids given (any of them; ALL or no id at all lists every message), and
 * every filter holds (like sendmail's -qR -qS together; substrings case-insensitive; a
 * recipient filter looks at the recipients still to be delivered). */
bool queuectl_matches(const struct envelope *e, const char *const *targets, size_t n);
/* -qR/-qS/-qI as targets ("R<text>", "!S<text>", ...), NULL-terminated, one per filter;
 * NULL when out of memory. Freed with queuectl_filter_tokens_free(). */
char **queuectl_filter_tokens(const struct sendmail_args *a);
void queuectl_filter_tokens_free(char **tokens);
/* One hoststat row as sendmail's mci_print_persistent() prints it: "%c%-39s %12s " (no
 * lock marker), how long ago as pintvl() ("01:02:03", "2+01:02:03"), then the reason cut
 * to 25 columns, or "OK" for a host that is up without one. `row` is a data line's text,
 * "host\tup|down\tunix time\treason"; false if it is not of that form. */
bool queuectl_hoststat_line(FILE *out, const char *row, time_t now);

#endif
