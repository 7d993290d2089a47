/*
 * core/session_milter.h — a session's mail filters (docs/milter.md): one connection per
 * filter per SMTP session on the worker's ring, the protocol (policy/milter.h) driven step
 * by step, the filters asked in order, and their verdicts and changes handed back to the
 * session. Private to core/session*.c.
 *
 * Owns the filters' connections and their timers. A step runs asynchronously: the session
 * says "pending" to the state machine and gets the outcome through the callback it gave,
 * later, never from inside the call. A filter that cannot be used (not listening, timed out,
 * broke the protocol, went away) gets its F= (on_fail): skipped, or every later step of the
 * session refused with 451 4.3.2 (T) or 550 5.7.1 (R), as sendmail's milter.c does.
 */
#ifndef RINGMAIL_CORE_SESSION_MILTER_H
#define RINGMAIL_CORE_SESSION_MILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp/smtp_addr.h"

struct session;

/* What the filters said of a step. */
enum session_milter_verdict {
    SESSION_MILTER_CONTINUE, /* go on (every filter continued or accepted) */
    SESSION_MILTER_REFUSE,   /* `reply` is the complete reply to give ("550 5.7.1 ...") */
    SESSION_MILTER_DISCARD,  /* accept and drop the message (a 250 to the client) */
};

struct session_milter_outcome {
    enum session_milter_verdict verdict;
    const char *reply; /* REFUSE: valid during the callback only */
    bool shutdown;     /* a filter said 421: the session ends after the reply */
};

typedef void (*session_milter_done_fn)(struct session *s, const struct session_milter_outcome *o);

/* The end of the message returns 1 when a filter is asked: `done` is called later, never
 * from inside the call; or 0 with the outcome in *now when it is known at once (no filter
 * to ask, or a failed filter's F= refuses). The other steps go through the hooks below. */

/* The end of the message (s->msg holds it, not committed): the header, the body and the end
 * go to each filter in turn, each filter's changes are applied before the next one reads the
 * message (as sendmail does); then the changed message is written again to the spool and the
 * envelope changes wait in the session for the commit (session_milter_envelope). */
int session_milter_eom(struct session *s, session_milter_done_fn done,
                       struct session_milter_outcome *now);
/* The message ended without its end (RSET, HELO, refused, client gone): the filters forget
 * it (SMFIC_ABORT). Nothing is waited for. */
void session_milter_abort(struct session *s);
/* The session ends: QUIT to each filter, connections closed; steps in flight are dropped
 * without their callback. */
void session_milter_free(struct session *s);

/* --- the session's side (the state machine's hooks and what they wait for) --- */

/* Sets the state machine's HELO and DATA hooks when the listener has filters. */
void session_milter_hooks(struct session *s);
/* Before the greeting: true when the filters decide on it (the greeting, or a refusal in
 * its place, comes later; what the client sends meanwhile is kept: session_milter_early). */
bool session_milter_greeting(struct session *s, const char *early, size_t len);
/* Bytes a client sends while the filters decide on its greeting (bounded: the rest is
 * dropped, as a client that does not wait for the greeting earns). */
void session_milter_early(struct session *s, const char *data, size_t len);
/* MAIL and RCPT, once the policy accepted them: 0 goes on, -1 refuses with *err (its
 * text kept in the session until sent), 1 pending (the state machine hears later). The
 * sender's step runs after the sender's domain lookup, when that answers later. `sender`
 * and `rcpt` with their angle brackets, `args` MAIL's ESMTP parameters ("" for none). */
int session_milter_check_mail(struct session *s, const char *sender, const char *args,
                              struct smtp_addr_error *err);
int session_milter_check_rcpt(struct session *s, const char *rcpt, const char *args,
                              struct smtp_addr_error *err);

/* The envelope as the filters left it, for the commit: the sender (NULL: unchanged), the
 * recipients added and removed, the quarantine reason (NULL: none). Valid until the next
 * message. */
struct session_milter_rcpt {
    char *mailbox;
    struct smtp_rcpt_params params; /* smfi_addrcpt_par's ESMTP arguments (NOTIFY=, ORCPT=) */
};
struct session_milter_envelope {
    const char *sender;
    const struct session_milter_rcpt *added;
    size_t n_added;
    const char *const *removed;
    size_t n_removed;
    const char *quarantine;
};
void session_milter_envelope(const struct session *s, struct session_milter_envelope *out);
/* Whether a filter removed `mailbox` (compared as sendmail does: case-insensitively). */
bool session_milter_removed(const struct session_milter_envelope *e, const char *mailbox);

#endif
