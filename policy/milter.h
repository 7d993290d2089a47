/*
 * policy/milter.h — sendmail's milter protocol (version 6, as libmilter speaks it), the
 * MTA's side, for one filter and one SMTP session. Pure: bytes in, bytes out, no socket,
 * no clock (docs/milter-protocol.md). The session glue owns the filter's connection and
 * timers.
 *
 * (The settings below are shared with the configuration; the dialogue follows.)
 *
 * A struct milter is one filter's dialogue: each step appends the packets to send (the
 * step's macros in a 'D' packet, then the command) to the caller's buffer and says
 * whether the caller must now wait for the filter's reply; milter_feed() decodes what the
 * filter sent, collects the end-of-message modifications and returns the step's outcome.
 * A protocol error (bad packet, a reply not allowed at that step, an action the filter did
 * not negotiate, too much data) puts the dialogue in a failed state for good, with a short
 * reason for the log; the caller then applies the filter's F= (on_fail). Memory is bounded
 * by one packet (MILTER_PROTO_MAX_LEN) plus the modifications, which are capped by the
 * `max_mods` given at creation. Not thread-safe; one per session and filter.
 */
#ifndef RINGMAIL_POLICY_MILTER_H
#define RINGMAIL_POLICY_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/milter_proto.h" /* MILTER_FAMILY_*, MILTER_CHUNK_MAX, MILTER_P_* */
#include "util/buf.h"

/* sendmail's F= flags: what a session does when the filter cannot be used (not listening,
 * timed out, broke the protocol). */
enum milter_on_fail {
    MILTER_FAIL_CONTINUE, /* no flag: go on as if the filter were not there */
    MILTER_FAIL_TEMPFAIL, /* F=T: 451 4.3.2 (connection or message, as sendmail) */
    MILTER_FAIL_REJECT,   /* F=R: 550 5.7.1 */
};

/* sendmail's macro lists per step (confMILTER_MACROS_*), each a list of names as sendmail
 * writes them: "j", "_", "{daemon_name}". */
enum milter_macro_step {
    MILTER_MACROS_CONNECT,
    MILTER_MACROS_HELO,
    MILTER_MACROS_ENVFROM,
    MILTER_MACROS_ENVRCPT,
    MILTER_MACROS_DATA,
    MILTER_MACROS_EOH,
    MILTER_MACROS_EOM,
    MILTER_MACROS_N
};

struct milter_macro_list {
    const char *const *names;
    size_t n;
};

/* One filter: INPUT_MAIL_FILTER(`name', `S=...') with its F= and T= equates. */
struct milter_filter {
    const char *name;
    const char *socket; /* "unix:/path", "local:/path", "inet:port@host", "inet6:port@host" */
    enum milter_on_fail on_fail;
    /* T=C:S:R:E in milliseconds (sendmail's defaults 5m, 10s, 10s, 5m); 0 = no timeout */
    uint32_t timeout_connect, timeout_send, timeout_read, timeout_eom;
};

struct milter_settings {
    const struct milter_filter *filters; /* InputMailFilters, in the order they run */
    size_t n_filters;
    struct milter_macro_list macros[MILTER_MACROS_N];
};

/* sendmail 8.17's confMILTER_MACROS_* defaults (cf/m4/cfhead.m4); DATA and EOH are empty. */
extern const struct milter_macro_list milter_macros_default[MILTER_MACROS_N];

/* The value of macro `name` as written in the lists ("j", "{daemon_name}"), or NULL when
 * undefined (it is then not sent). Called during the step functions only. */
typedef const char *(*milter_macro_fn)(void *arg, const char *name);

struct milter;

/* What a step asks of the caller. */
enum milter_wait {
    MILTER_NOWAIT, /* nothing to wait for: disabled step (SMFIP_NO*), no-reply step
                      (SMFIP_NR*), abort, quit; packets may still have been appended */
    MILTER_WAIT,   /* send `out` and feed the filter's reply until a result */
    MILTER_DONE,   /* the filter has decided for this connection or message: not asked */
    MILTER_FAILED, /* the dialogue failed (milter_error() says why): apply on_fail */
};

enum milter_verdict {
    MILTER_CONTINUE,
    MILTER_ACCEPT, /* at EOM also what the filter's CONTINUE means there */
    MILTER_REJECT,
    MILTER_TEMPFAIL,
    MILTER_DISCARD,
    MILTER_REPLYCODE, /* reject or tempfail with the filter's own reply text */
    MILTER_SKIP,      /* after a body chunk: send no more body, go on with EOM */
    MILTER_PROGRESS,  /* not a verdict: the filter is alive, restart the timer, feed on */
    MILTER_SHUTDOWN,  /* 421: end the SMTP session */
    MILTER_CONN_FAIL, /* the filter asks to be treated as failed for this connection */
};

struct milter_result {
    enum milter_verdict verdict;
    /* REPLYCODE: the reply as the filter gave it, validated ("554 5.7.1 go away", or lines
     * "554-5.7.1 a\r\n554 5.7.1 b"); owned by the milter, valid until
     * the next call on it. NULL otherwise. */
    const char *reply;
    int code; /* REPLYCODE: 400..599 */
};

/* `lists` NULL = milter_macros_default. `max_mods`: the most bytes of modifications kept
 * from one EOM (the replaced body; and all other edits together, each also charged its
 * bookkeeping), e.g. the message size limit. The filter, the lists and `macro_arg` must
 * outlive the milter. NULL if out of memory. */
struct milter *milter_new(const struct milter_filter *f, const struct milter_macro_list *lists,
                          milter_macro_fn macro, void *macro_arg, size_t max_mods);
void milter_free(struct milter *m);
/* Why the dialogue failed ("" when it did not). */
const char *milter_error(const struct milter *m);
const struct milter_filter *milter_filter_of(const struct milter *m);
/* What the filter negotiated (0 before the negotiation reply). */
uint32_t milter_actions(const struct milter *m);
uint32_t milter_protocol(const struct milter *m);

/* The steps, in SMTP order. Each may append to `out` (whose own limit also fails the
 * step); a step called while another one waits for its reply is a caller error and fails
 * the dialogue. `family` is MILTER_FAMILY_* ('U': no port or address is sent). */
enum milter_wait milter_negotiate(struct milter *m, struct buf *out);
enum milter_wait milter_connect(struct milter *m, struct buf *out, const char *hostname,
                                char family, uint16_t port, const char *addr);
enum milter_wait milter_helo(struct milter *m, struct buf *out, const char *name);
/* `sender` with its angle brackets ("<a@b>", "<>"), then the ESMTP arguments. */
enum milter_wait milter_mail(struct milter *m, struct buf *out, const char *sender,
                             const char *const *args, size_t n_args);
/* `rejected`: the MTA already refused this RCPT; it is sent only to a filter that asked
 * for refused recipients (SMFIP_RCPT_REJ). */
enum milter_wait milter_rcpt(struct milter *m, struct buf *out, const char *rcpt,
                             const char *const *args, size_t n_args, bool rejected);
enum milter_wait milter_data(struct milter *m, struct buf *out);
/* `value` as stored by milter_hdr (the text after the colon, "\n" between folded lines);
 * its one leading space is dropped unless the filter negotiated SMFIP_HDR_LEADSPC. */
enum milter_wait milter_header(struct milter *m, struct buf *out, const char *name,
                               const char *value);
enum milter_wait milter_eoh(struct milter *m, struct buf *out);
/* At most MILTER_CHUNK_MAX octets, CRLF line ends as on the wire. */
enum milter_wait milter_body(struct milter *m, struct buf *out, const void *chunk, size_t len);
enum milter_wait milter_eom(struct milter *m, struct buf *out);
/* The message ends without EOM (RSET, a new MAIL, a refusal): tells a filter that is in
 * the message, clears the modifications; never waits. */
enum milter_wait milter_abort(struct milter *m, struct buf *out);
/* The connection ends: QUIT. Never waits; the dialogue is over afterwards (steps fail). */
enum milter_wait milter_quit(struct milter *m, struct buf *out);
/* An SMTP command the MTA does not know, as the client sent it (without CRLF). */
enum milter_wait milter_unknown(struct milter *m, struct buf *out, const char *line);

enum milter_feed_status {
    MILTER_FEED_MORE,   /* all of `data` consumed, no result yet */
    MILTER_FEED_RESULT, /* *res is the waiting step's outcome (or PROGRESS) */
    MILTER_FEED_ERROR,  /* the dialogue failed: milter_error() */
};

/* Feeds bytes the filter sent. *consumed says how many were used; on RESULT the rest
 * belongs to later calls (a filter never sends ahead, so leftovers after a final result
 * are an error at the next feed). Bytes when no step waits are an error. */
enum milter_feed_status milter_feed(struct milter *m, const void *data, size_t len,
                                    size_t *consumed, struct milter_result *res);

/* The modifications of the last EOM, in the order the filter sent them. Strings are owned
 * by the milter until the next message (milter_mail, milter_abort, milter_helo). Header
 * values are in milter_hdr's form: a leading space added unless the filter negotiated
 * SMFIP_HDR_LEADSPC, as sendmail does. */
enum milter_mod_type {
    MILTER_MOD_ADDHDR,     /* name, value: append */
    MILTER_MOD_INSHDR,     /* index (0 = top), name, value */
    MILTER_MOD_CHGHDR,     /* index (nth of that name, 1-based), name, value ("" = delete) */
    MILTER_MOD_CHGFROM,    /* name = sender, value = ESMTP arguments or NULL */
    MILTER_MOD_ADDRCPT,    /* name = recipient, value = ESMTP arguments or NULL */
    MILTER_MOD_DELRCPT,    /* name = recipient */
    MILTER_MOD_QUARANTINE, /* name = reason */
};

struct milter_mod {
    enum milter_mod_type type;
    uint32_t index;
    const char *name;
    const char *value;
};

size_t milter_mods_count(const struct milter *m);
const struct milter_mod *milter_mod_at(const struct milter *m, size_t i);
/* True when the filter replaced the body; *data and *len are the new body as it sent it. */
bool milter_body_replaced(const struct milter *m, const char **data, size_t *len);
/* Forgets the modifications (done by milter_mail, milter_abort and milter_helo too). */
void milter_mods_reset(struct milter *m);

#endif
