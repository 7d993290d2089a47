/*
 * core/session_milter.c — a session's mail filters on the worker's ring (core/session_milter.h).
 *
 * Every filter of the listener gets its own connection when the client connects and keeps
 * it for the session, as sendmail's do. A step goes to the filters one after the other: the
 * next filter is asked once the one before has answered, and the first refusal ends the
 * step. At the end of the message each filter reads the header and the body as the filters
 * before it left them (the header edited in memory, a replaced body in memory, the rest read
 * back from the spool chunk by chunk), and after the last filter the message is written
 * again, once, if anything in it changed.
 *
 * A filter's struct outlives the session while its connection closes (the engine's
 * on_closed frees it). A read of the stored message in flight when the session ends
 * never calls back: the message is aborted with the session (queue/spool.h).
 */
#include "core/session_milter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#include "core/milterconf.h"
#include "core/runconf.h"
#include "core/session_int.h"
#include "policy/milter.h"
#include "policy/milter_hdr.h"
#include "policy/milter_proto.h"
#include "queue/mailstats.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"

enum sm_step { SM_IDLE, SM_CONNECT, SM_HELO, SM_MAIL, SM_RCPT, SM_DATA, SM_EOM, SM_REWRITE };
/* Where the filter asked now is within the end of the message. */
enum sm_eom { EOM_HEADERS, EOM_EOH, EOM_BODY, EOM_END, EOM_ANSWERED };

struct session_milters;

struct session_filter {
    struct session_milters *sm; /* NULL once the session has gone */
    const struct milter_filter *f;
    struct milter *m;
    engine_conn_id id;
    bool open;       /* the connection exists (connecting, connected or closing) */
    bool negotiated; /* its negotiation reply came */
    bool failed;     /* unusable for the rest of the session (its F= applies) */
    bool waiting;    /* a reply is awaited */
    bool draining;   /* a body chunk that gets no reply is being written (T=S) */
    uint32_t wait_ms;
};

struct session_milters {
    struct session *s;
    enum sm_step step;
    size_t cur; /* the filter asked now */
    session_milter_done_fn done;
    bool in_start; /* inside the step's first call: an outcome goes to *now */
    bool finished_now;
    struct session_milter_outcome now;
    char *arg, *args; /* the step's address and ESMTP arguments */
    char *refusal;    /* the step's refusal: a complete reply */
    bool discard;
    bool shutdown; /* a filter said 421: the session ends */
    /* F=T or F=R of a filter that failed: every later step is refused so */
    const char *fail_reply;
    /* the end of the message */
    enum sm_eom eom;
    struct milter_hdrs hdrs;
    bool have_hdrs;
    size_t hdr_next;
    uint64_t body_off; /* where the body starts in the stored data */
    uint64_t read_off; /* the next octet of the body (stored or replaced) to send */
    struct buf body;   /* the body as a filter replaced it */
    bool body_replaced, head_changed;
    bool reading;    /* a read of the stored message is in flight */
    char *rbuf;      /* MILTER_CHUNK_MAX octets */
    struct buf head; /* the stored header section while it is read */
    /* the envelope as the filters changed it, for the commit */
    char *sender;
    struct session_milter_rcpt *added;
    char **removed;
    size_t n_added, n_removed;
    char *quarantine;
    size_t n;
    struct session_filter *f[];
};

static const struct engine_conn_callbacks sm_conn_callbacks;
static void sm_run(struct session_milters *sm);
static void sm_rewrite(struct session_milters *sm);

static const struct milter_settings *sm_settings(const struct session *s)
{
    if (s->local || s->listener >= s->rc->cfg->n_listen)
        return NULL;
    return &s->rc->cfg->listen[s->listener].milter;
}

/* --- what sendmail's macros hold for this session --- */

/* "<a@b>" -> "a@b", as the macros give addresses. */
static const char *sm_bare(const char *addr, char *out, size_t outlen)
{
    size_t len = strlen(addr);
    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
        snprintf(out, outlen, "%.*s", (int)(len - 2), addr + 1);
        return out;
    }
    return addr;
}

/* ${mail_*} at MAIL and ${rcpt_*} at RCPT: the address without its brackets, its domain, and
 * the mailer sendmail would pick for it (local for this host's domains). */
static const char *sm_addr_macro(struct session_milters *sm, const char *what, char *tmp,
                                 size_t tmplen)
{
    if (!sm->arg)
        return NULL;
    const char *addr = sm_bare(sm->arg, tmp, tmplen);
    const char *at = strrchr(addr, '@');
    if (strcmp(what, "addr}") == 0)
        return addr;
    if (strcmp(what, "host}") == 0)
        return at ? at + 1 : sm->s->rc->cfg->hostname;
    if (strcmp(what, "mailer}") == 0)
        return session_mailer_of(sm->s, addr);
    return NULL;
}

static const char *sm_macro(void *arg, const char *name)
{
    struct session_milters *sm = arg;
    struct session *s = sm->s;
    static __thread char tmp[SESSION_RELAY_MAX];
    const struct config_listener *l =
        s->listener < s->rc->cfg->n_listen ? &s->rc->cfg->listen[s->listener] : NULL;
    if (strcmp(name, "j") == 0 || strcmp(name, "{if_name}") == 0)
        return s->rc->cfg->hostname;
    if (strcmp(name, "{if_addr}") == 0)
        return l ? l->address : NULL;
    if (strcmp(name, "_") == 0)
        return session_relay(s, tmp, sizeof(tmp));
    if (strcmp(name, "{daemon_name}") == 0)
        return session_daemon_name(s);
    if (strcmp(name, "{client_addr}") == 0)
        return s->addr;
    if (strcmp(name, "{client_port}") == 0) {
        const struct sockaddr *sa = (const struct sockaddr *)&s->peer;
        unsigned port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
                        : sa->sa_family == AF_INET6
                            ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
                            : 0;
        snprintf(tmp, sizeof(tmp), "%u", port);
        return tmp;
    }
    if (strcmp(name, "{client_name}") == 0 || strcmp(name, "{client_ptr}") == 0)
        return s->client_name;
    if (strcmp(name, "i") == 0)
        return s->qid;
    if (strcmp(name, "{auth_type}") == 0 || strcmp(name, "{auth_authen}") == 0) {
        const char *mech, *authen;
        session_auth_client(s, &mech, &authen);
        return name[6] == 't' ? mech : authen;
    }
    if (sm->step == SM_MAIL && strncmp(name, "{mail_", 6) == 0)
        return sm_addr_macro(sm, name + 6, tmp, sizeof(tmp));
    if (sm->step == SM_RCPT && strncmp(name, "{rcpt_", 6) == 0)
        return sm_addr_macro(sm, name + 6, tmp, sizeof(tmp));
    if (strcmp(name, "{msg_id}") == 0)
        return s->msgid;
    return session_tls_macro(s, name, tmp, sizeof(tmp));
}

/* --- one filter's connection --- */

/* Queues `out` (emptied) to the filter: -1 when the connection cannot take it (gone). */
static int sm_filter_send(struct session_filter *sf, struct buf *out)
{
    int rc = 0;
    if (out->len && engine_conn_send(sf->sm->s->dw->w, sf->id, out->data, out->len) < 0)
        rc = -1;
    buf_free(out);
    return rc;
}

static void sm_filter_wait(struct session_filter *sf, uint32_t ms)
{
    struct engine_worker *w = sf->sm->s->dw->w;
    sf->waiting = true;
    sf->wait_ms = ms;
    engine_conn_set_timer(w, sf->id, ms ? engine_now_ms(w) + ms : 0);
}

/* Moves the step on to the next filter (the one asked now is done with it). */
static void sm_next_filter(struct session_milters *sm)
{
    sm->cur++;
    sm->eom = EOM_HEADERS;
    sm->hdr_next = 0;
}

/* The filter cannot be used any more: logged once, its F= for the rest of the session.
 * A step that waited for it goes on with the next filter. */
static void sm_filter_failed(struct session_filter *sf, const char *why)
{
    struct session_milters *sm = sf->sm;
    if (sf->failed || !sm)
        return;
    sf->failed = true;
    sf->waiting = false;
    bool current = sm->step != SM_IDLE && sm->cur < sm->n && sm->f[sm->cur] == sf;
    const char *qid = sm->s->qid;
    log_error("%s: Milter (%s): %s", qid, sf->f->name, why);
    switch (sf->f->on_fail) {
    case MILTER_FAIL_CONTINUE:
        break;
    case MILTER_FAIL_TEMPFAIL:
        log_info("%s: Milter (%s): to error state", qid, sf->f->name);
        sm->fail_reply = "451 4.3.2 Please try again later";
        break;
    case MILTER_FAIL_REJECT:
        log_info("%s: Milter (%s): to error state", qid, sf->f->name);
        sm->fail_reply = "550 5.7.1 Command rejected";
        break;
    }
    if (sf->open)
        engine_conn_close(sm->s->dw->w, sf->id, false);
    if (current && !sm->reading) {
        sm_next_filter(sm);
        sm_run(sm);
    }
}

static void sm_filter_timer(void *ctx)
{
    struct session_filter *sf = ctx;
    char why[120];
    if (!sf->negotiated)
        snprintf(why, sizeof(why), "timeout connecting to the filter");
    else if (sf->draining)
        snprintf(why, sizeof(why), "timeout writing data in eom");
    else
        snprintf(why, sizeof(why), "timeout before data read in %s",
                 sf->sm && sf->sm->step == SM_EOM ? "eom" : "reply");
    sm_filter_failed(sf, why);
}

static void sm_filter_closed(void *ctx, int err)
{
    struct session_filter *sf = ctx;
    sf->open = false;
    if (!sf->sm) {
        milter_free(sf->m);
        free(sf);
        return;
    }
    char why[160];
    if (err)
        snprintf(why, sizeof(why), "error connecting to filter: %s", strerror(err));
    else
        snprintf(why, sizeof(why), "the filter closed the connection");
    sm_filter_failed(sf, why); /* the session frees it */
}

static void sm_reply(struct session_filter *sf, const struct milter_result *r);

static void sm_filter_recv(void *ctx, const char *data, size_t len)
{
    struct session_filter *sf = ctx;
    while (len && sf->sm && !sf->failed) {
        struct milter_result r;
        size_t used = 0;
        enum milter_feed_status st = milter_feed(sf->m, data, len, &used, &r);
        data += used;
        len -= used;
        if (st == MILTER_FEED_ERROR) {
            sm_filter_failed(sf, milter_error(sf->m));
            return;
        }
        if (st == MILTER_FEED_MORE)
            return;
        sm_reply(sf, &r);
    }
}

/* A body chunk the filter gives no reply to (SMFIP_NR_BODY) was written: the next one may
 * go. So a filter that stops reading holds one chunk, not the whole body, and T=S bounds
 * the wait. */
static void sm_filter_drained(void *ctx)
{
    struct session_filter *sf = ctx;
    struct session_milters *sm = sf->sm;
    if (!sm || !sf->draining)
        return;
    sf->draining = false;
    engine_conn_set_timer(sm->s->dw->w, sf->id, 0);
    if (sm->step == SM_EOM && sm->cur < sm->n && sm->f[sm->cur] == sf)
        sm_run(sm);
}

/* Connected: the negotiation queued at the start goes out; its timer, armed then for the
 * connect and the reply together, keeps running. */
static void sm_filter_connected(void *ctx)
{
    (void)ctx;
}

static const struct engine_conn_callbacks sm_conn_callbacks = {
    .on_recv = sm_filter_recv,
    .on_drained = sm_filter_drained,
    .on_timer = sm_filter_timer,
    .on_closed = sm_filter_closed,
    .on_connected = sm_filter_connected,
};

/* --- a step through the filters --- */

static void sm_log_refusal(struct session_milters *sm, const char *reply);

static void sm_finish(struct session_milters *sm)
{
    struct session_milter_outcome o = {SESSION_MILTER_CONTINUE, NULL, false};
    if (sm->refusal) {
        o.verdict = SESSION_MILTER_REFUSE;
        o.reply = sm->refusal;
    } else if (sm->fail_reply) {
        o.verdict = SESSION_MILTER_REFUSE;
        o.reply = sm->fail_reply;
        sm_log_refusal(sm, sm->fail_reply);
    } else if (sm->discard && sm->step != SM_CONNECT && sm->step != SM_HELO) {
        o.verdict = SESSION_MILTER_DISCARD;
    }
    o.shutdown = sm->shutdown;
    session_milter_done_fn done = sm->done;
    sm->step = SM_IDLE;
    sm->done = NULL;
    if (sm->in_start) {
        sm->finished_now = true;
        sm->now = o;
        return;
    }
    done(sm->s, &o);
}

/* The mailer a filter's verdict is counted under: the sender's (at MAIL, the one checked). */
static const char *sm_stats_mailer(struct session_milters *sm)
{
    char tmp[SMTP_PATH_MAX + 3];
    return session_stats_mailer(
        sm->s, sm->step == SM_MAIL && sm->arg ? sm_bare(sm->arg, tmp, sizeof(tmp)) : NULL);
}

/* sendmail's line for a filter's refusal ("Milter: from=<a@b>, reject=550 5.7.1 ..."), and
 * for the refusals a failed filter's F= makes. */
static void sm_log_refusal(struct session_milters *sm, const char *reply)
{
    struct session *s = sm->s;
    char flat[600];
    snprintf(flat, sizeof(flat), "%s", reply);
    for (char *p = flat; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    if (sm->step == SM_CONNECT || sm->step == SM_HELO) /* no sender yet: the client refused */
        mailstats_conn(MAILSTATS_CONN_REJECT);
    else
        mailstats_msg(MAILSTATS_REJECT, sm_stats_mailer(sm), 0);
    switch (sm->step) {
    case SM_CONNECT:
        log_info("%s: Milter: connect: host=%s, addr=%s, reject=%s", s->qid,
                 s->client_name ? s->client_name : s->addr, s->addr, flat);
        break;
    case SM_HELO:
        log_info("%s: Milter: helo=%s, reject=%s", s->qid, sm->arg, flat);
        break;
    case SM_MAIL:
        log_info("%s: Milter: from=%s, reject=%s", s->qid, sm->arg, flat);
        break;
    case SM_RCPT:
        log_info("%s: Milter: to=%s, reject=%s", s->qid, sm->arg, flat);
        break;
    default:
        log_info("%s: Milter: data, reject=%s", s->qid, flat);
        break;
    }
}

static void sm_refuse(struct session_milters *sm, const char *reply)
{
    sm_log_refusal(sm, reply);
    free(sm->refusal);
    /* without memory for the filter's words the refusal still stands */
    if (!(sm->refusal = strdup(reply)))
        sm->refusal = strdup("451 4.3.0 Temporary failure");
}

static void sm_apply(struct session_milters *sm, struct session_filter *sf);

/* A filter's answer to the step it was asked. */
static void sm_reply(struct session_filter *sf, const struct milter_result *r)
{
    struct session_milters *sm = sf->sm;
    if (r->verdict == MILTER_PROGRESS) { /* the filter is alive: its timer starts again */
        if (sf->waiting)
            sm_filter_wait(sf, sf->wait_ms);
        return;
    }
    if (!sf->waiting) {
        sm_filter_failed(sf, "a reply that was not asked for");
        return;
    }
    sf->waiting = false;
    engine_conn_set_timer(sm->s->dw->w, sf->id, 0);
    bool current = sm->step != SM_IDLE && sm->cur < sm->n && sm->f[sm->cur] == sf;
    if (!sf->negotiated) {
        sf->negotiated = true;
        if (current)
            sm_run(sm);
        return;
    }
    bool next = true;
    switch (r->verdict) {
    case MILTER_CONTINUE:
        /* inside the end of the message: the next header, chunk or the end, same filter */
        next = sm->step != SM_EOM || sm->eom == EOM_ANSWERED;
        break;
    case MILTER_SKIP: /* no more body wanted */
        sm->eom = EOM_END;
        next = false;
        break;
    case MILTER_ACCEPT:
        break;
    case MILTER_REJECT:
        sm_refuse(sm,
                  sm->step == SM_EOM ? "554 5.7.1 Command rejected" : "550 5.7.1 Command rejected");
        break;
    case MILTER_TEMPFAIL:
        sm_refuse(sm, "451 4.7.1 Please try again later");
        break;
    case MILTER_REPLYCODE:
        sm_refuse(sm, r->reply);
        break;
    case MILTER_DISCARD:
        mailstats_msg(MAILSTATS_DISCARD, sm_stats_mailer(sm), 0);
        log_info("%s: milter=%s, discard", sm->s->qid, sf->f->name);
        sm->discard = true;
        break;
    case MILTER_SHUTDOWN:
        sm->shutdown = true;
        sm_refuse(sm, "421 4.7.0 Closing connection");
        break;
    case MILTER_CONN_FAIL:
        sm_filter_failed(sf, "the filter gave up the connection");
        return;
    case MILTER_PROGRESS:
        return;
    }
    if (sm->step == SM_EOM && sm->eom == EOM_ANSWERED &&
        (r->verdict == MILTER_CONTINUE || r->verdict == MILTER_ACCEPT))
        sm_apply(sm, sf);
    if (next)
        sm_next_filter(sm);
    if (current)
        sm_run(sm);
}

/* Sends an envelope step to `sf`: true when its reply is awaited. */
static bool sm_send_step(struct session_milters *sm, struct session_filter *sf)
{
    struct session *s = sm->s;
    struct buf out = {0};
    enum milter_wait w = MILTER_NOWAIT;
    /* the ESMTP parameters, one argument each */
    char *args[16], *save = NULL;
    size_t n_args = 0;
    char *copy = sm->args ? strdup(sm->args) : NULL;
    for (char *a = copy ? strtok_r(copy, " ", &save) : NULL; a && n_args < 16;
         a = strtok_r(NULL, " ", &save))
        args[n_args++] = a;
    switch (sm->step) {
    case SM_CONNECT: {
        char name[SESSION_RELAY_MAX];
        const char *host = s->client_name && !s->client_forged ? s->client_name : NULL;
        if (!host) {
            snprintf(name, sizeof(name), "[%s]", s->addr);
            host = name;
        }
        char family = MILTER_FAMILY_UNKNOWN;
        uint16_t port = 0;
        if (s->peer.ss_family == AF_INET) {
            family = MILTER_FAMILY_INET;
            port = ntohs(((const struct sockaddr_in *)&s->peer)->sin_port);
        } else if (s->peer.ss_family == AF_INET6) {
            family = MILTER_FAMILY_INET6;
            port = ntohs(((const struct sockaddr_in6 *)&s->peer)->sin6_port);
        }
        w = milter_connect(sf->m, &out, host, family, port, s->addr);
        break;
    }
    case SM_HELO:
        w = milter_helo(sf->m, &out, sm->arg);
        break;
    case SM_MAIL:
        w = milter_mail(sf->m, &out, sm->arg, (const char *const *)args, n_args);
        break;
    case SM_RCPT:
        w = milter_rcpt(sf->m, &out, sm->arg, (const char *const *)args, n_args, false);
        break;
    case SM_DATA:
        w = milter_data(sf->m, &out);
        break;
    default:
        break;
    }
    free(copy);
    if (sm_filter_send(sf, &out) < 0 || w == MILTER_FAILED) {
        sm_filter_failed(sf, w == MILTER_FAILED ? milter_error(sf->m) : "the connection is gone");
        return true; /* the failure moved the step on */
    }
    if (w != MILTER_WAIT)
        return false;
    sm_filter_wait(sf, sf->f->timeout_read);
    return true;
}

static bool sm_eom_filter(struct session_milters *sm, struct session_filter *sf);

/* Asks the filters from sm->cur on; ends the step when none is left to wait for. */
static void sm_run(struct session_milters *sm)
{
    while (!sm->refusal && !sm->discard && !sm->fail_reply && sm->cur < sm->n) {
        struct session_filter *sf = sm->f[sm->cur];
        if (sf->failed) {
            sm_next_filter(sm);
            continue;
        }
        if (!sf->negotiated)
            return; /* its negotiation reply (or its timeout) first */
        if (sm->step == SM_EOM ? sm_eom_filter(sm, sf) : sm_send_step(sm, sf))
            return;
        sm_next_filter(sm);
    }
    if (sm->step == SM_EOM && !sm->refusal && !sm->discard && !sm->fail_reply &&
        (sm->head_changed || sm->body_replaced)) {
        sm_rewrite(sm);
        return;
    }
    sm_finish(sm);
}

static void sm_reset_step(struct session_milters *sm, enum sm_step step,
                          session_milter_done_fn done)
{
    free(sm->refusal);
    sm->refusal = NULL;
    sm->step = step;
    sm->cur = 0;
    sm->eom = EOM_HEADERS;
    sm->hdr_next = 0;
    sm->done = done;
}

/* Runs `go` for a step just set up: 1 when the outcome comes later through sm->done, or 0
 * with it in *now when `go` reached it at once (the caller is inside a hook then). */
static int sm_go(struct session_milters *sm, void (*go)(struct session_milters *),
                 struct session_milter_outcome *now)
{
    sm->in_start = true;
    sm->finished_now = false;
    go(sm);
    sm->in_start = false;
    if (!sm->finished_now)
        return 1;
    *now = sm->now;
    return 0;
}

static int sm_start(struct session *s, enum sm_step step, const char *arg, const char *args,
                    session_milter_done_fn done, struct session_milter_outcome *now)
{
    struct session_milters *sm = s->milters;
    *now = (struct session_milter_outcome){SESSION_MILTER_CONTINUE, NULL, false};
    if (!sm)
        return 0;
    free(sm->arg);
    free(sm->args);
    sm->arg = arg ? strdup(arg) : NULL;
    sm->args = args && args[0] ? strdup(args) : NULL;
    sm_reset_step(sm, step, done);
    return sm_go(sm, sm_run, now);
}

static int sm_step_connect(struct session *s, session_milter_done_fn done,
                           struct session_milter_outcome *now)
{
    const struct milter_settings *set = sm_settings(s);
    *now = (struct session_milter_outcome){SESSION_MILTER_CONTINUE, NULL, false};
    if (!set || !set->n_filters)
        return 0;
    struct session_milters *sm = calloc(1, sizeof(*sm) + set->n_filters * sizeof(sm->f[0]));
    if (!sm) {
        log_error("%s: cannot start the mail filters: out of memory", s->qid);
        now->verdict = SESSION_MILTER_REFUSE;
        now->reply = "451 4.3.0 Temporary failure";
        return 0;
    }
    sm->s = s;
    milter_hdrs_init(&sm->hdrs);
    s->milters = sm;
    uint64_t max_mods = s->rc->cfg->limits.max_message_size;
    for (size_t i = 0; i < set->n_filters; i++) {
        struct session_filter *sf = calloc(1, sizeof(*sf));
        if (!sf) {
            log_error("%s: cannot start the mail filters: out of memory", s->qid);
            sm->fail_reply = "451 4.3.0 Temporary failure";
            break;
        }
        sm->f[sm->n++] = sf;
        sf->sm = sm;
        sf->f = &set->filters[i];
        /* a filter's changes are bounded as a message is (a replaced body above all) */
        sf->m = milter_new(sf->f, set->macros, sm_macro, sm,
                           max_mods ? (size_t)max_mods + 65536 : SIZE_MAX);
        if (!sf->m) {
            sm_filter_failed(sf, "out of memory");
            continue;
        }
        const struct milterconf_addr *a =
            milterconf_find(s->rc->milter_addrs, s->rc->n_milter_addrs, sf->f->name);
        if (!a || !a->len) {
            sm_filter_failed(sf, "error connecting to filter: its address did not resolve");
            continue;
        }
        if (engine_connect(s->dw->w, (const struct sockaddr *)&a->sa, a->len, NULL, 0,
                           &sm_conn_callbacks, sf, &sf->id) < 0) {
            char why[160];
            snprintf(why, sizeof(why), "error connecting to filter: %s", strerror(errno));
            sm_filter_failed(sf, why);
            continue;
        }
        sf->open = true;
        struct buf out = {0};
        if (milter_negotiate(sf->m, &out) == MILTER_FAILED || sm_filter_send(sf, &out) < 0) {
            sm_filter_failed(sf, milter_error(sf->m));
            continue;
        }
        /* sendmail's T=C bounds the connect; its negotiation then gets T=R */
        uint32_t c = sf->f->timeout_connect, r = sf->f->timeout_read;
        sm_filter_wait(sf, c && r ? c + r : 0);
    }
    return sm_start(s, SM_CONNECT, NULL, NULL, done, now);
}

static int sm_step_helo(struct session *s, const char *name, session_milter_done_fn done,
                        struct session_milter_outcome *now)
{
    return sm_start(s, SM_HELO, name, NULL, done, now);
}

/* A new message: what the filters changed in the last one is gone. */
static void sm_forget_message(struct session_milters *sm)
{
    free(sm->sender);
    sm->sender = NULL;
    for (size_t i = 0; i < sm->n_added; i++)
        free(sm->added[i].mailbox);
    for (size_t i = 0; i < sm->n_removed; i++)
        free(sm->removed[i]);
    free(sm->added);
    free(sm->removed);
    sm->added = NULL;
    sm->removed = NULL;
    sm->n_added = sm->n_removed = 0;
    free(sm->quarantine);
    sm->quarantine = NULL;
    sm->discard = false;
    milter_hdrs_free(&sm->hdrs);
    sm->have_hdrs = false;
    buf_free(&sm->body);
    buf_free(&sm->head);
    sm->body_replaced = sm->head_changed = false;
}

static int sm_step_mail(struct session *s, const char *sender, const char *args,
                        session_milter_done_fn done, struct session_milter_outcome *now)
{
    if (s->milters)
        sm_forget_message(s->milters);
    return sm_start(s, SM_MAIL, sender, args, done, now);
}

static int sm_step_rcpt(struct session *s, const char *rcpt, const char *args,
                        session_milter_done_fn done, struct session_milter_outcome *now)
{
    return sm_start(s, SM_RCPT, rcpt, args, done, now);
}

static int sm_step_data(struct session *s, session_milter_done_fn done,
                        struct session_milter_outcome *now)
{
    return sm_start(s, SM_DATA, NULL, NULL, done, now);
}

/* --- the end of the message --- */

static void sm_read_done(void *arg, ssize_t n);

/* Reads the stored message from `off` on; the read's callback goes on. */
static void sm_read(struct session_milters *sm, uint64_t off)
{
    if (!sm->rbuf && !(sm->rbuf = malloc(MILTER_CHUNK_MAX))) {
        sm_read_done(sm, -ENOMEM);
        return;
    }
    sm->reading = true;
    int err = spool_msg_read(sm->s->msg, off, sm->rbuf, MILTER_CHUNK_MAX, sm_read_done, sm);
    if (err < 0) {
        sm->reading = false;
        sm_read_done(sm, err);
    }
}

static void sm_free_all(struct session_milters *sm);

/* The end of the message starts with its header section. */
static void sm_read_head(struct session_milters *sm)
{
    sm_read(sm, 0);
}

/* The message could not be read back or written again: refused for now (the client keeps
 * it), never half-stored. */
static void sm_store_failed(struct session_milters *sm, int err)
{
    log_error("%s: Milter: cannot read or write the message: %s", sm->s->qid, strerror(-err));
    free(sm->refusal);
    sm->refusal = strdup("451 4.3.0 Error writing message to queue; try again later");
    sm->step = SM_EOM;
    sm_finish(sm);
}

/* Sends `sf` what is due of the end of the message: true when a reply, or a read of the
 * stored message, is awaited (or a failure moved the step on). */
static bool sm_eom_filter(struct session_milters *sm, struct session_filter *sf)
{
    for (;;) {
        struct buf out = {0};
        enum milter_wait w = MILTER_NOWAIT;
        uint32_t ms = sf->f->timeout_read;
        switch (sm->eom) {
        case EOM_HEADERS:
            if (sm->hdr_next >= sm->hdrs.n) {
                sm->eom = EOM_EOH;
                continue;
            }
            w = milter_header(sf->m, &out, sm->hdrs.v[sm->hdr_next].name,
                              sm->hdrs.v[sm->hdr_next].value);
            sm->hdr_next++;
            break;
        case EOM_EOH:
            w = milter_eoh(sf->m, &out);
            sm->eom = EOM_BODY;
            sm->read_off = 0;
            break;
        case EOM_BODY:
            if (milter_protocol(sf->m) & MILTER_P_NOBODY) {
                sm->eom = EOM_END;
                continue;
            }
            if (!sm->body_replaced) {
                sm_read(sm, sm->body_off + sm->read_off);
                return true;
            }
            if (sm->read_off >= sm->body.len) {
                sm->eom = EOM_END;
                continue;
            }
            {
                size_t n = sm->body.len - (size_t)sm->read_off;
                n = n < MILTER_CHUNK_MAX ? n : MILTER_CHUNK_MAX;
                w = milter_body(sf->m, &out, (const char *)sm->body.data + sm->read_off, n);
                sm->read_off += n;
            }
            break;
        case EOM_END:
            w = milter_eom(sf->m, &out);
            sm->eom = EOM_ANSWERED;
            ms = sf->f->timeout_eom;
            break;
        case EOM_ANSWERED:
            return false;
        }
        if (sm_filter_send(sf, &out) < 0 || w == MILTER_FAILED) {
            sm_filter_failed(sf,
                             w == MILTER_FAILED ? milter_error(sf->m) : "the connection is gone");
            return true;
        }
        if (w == MILTER_WAIT) {
            sm_filter_wait(sf, ms);
            return true;
        }
        if (w == MILTER_DONE)
            return false; /* the filter has decided for this message */
    }
}

/* A body chunk read back from the stored message, for the filter asked now. */
static void sm_body_chunk(struct session_milters *sm, const char *data, size_t n)
{
    struct session_filter *sf = sm->f[sm->cur];
    if (sf->failed) {
        sm_next_filter(sm);
        sm_run(sm);
        return;
    }
    if (!n) {
        sm->eom = EOM_END;
        sm_run(sm);
        return;
    }
    struct buf out = {0};
    enum milter_wait w = milter_body(sf->m, &out, data, n);
    sm->read_off += n;
    if (sm_filter_send(sf, &out) < 0 || w == MILTER_FAILED) {
        sm_filter_failed(sf, w == MILTER_FAILED ? milter_error(sf->m) : "the connection is gone");
        return;
    }
    if (w == MILTER_WAIT) {
        sm_filter_wait(sf, sf->f->timeout_read);
        return;
    }
    if (w == MILTER_NOWAIT) { /* no reply: the next chunk once this one is written */
        struct engine_worker *ew = sm->s->dw->w;
        uint32_t ms = sf->f->timeout_send;
        sf->draining = true;
        engine_conn_set_timer(ew, sf->id, ms ? engine_now_ms(ew) + ms : 0);
        return;
    }
    sm_next_filter(sm); /* DONE: the filter has decided for this message */
    sm_run(sm);
}

static void sm_head_chunk(struct session_milters *sm, const char *data, size_t n);
static void sm_rewrite_chunk(struct session_milters *sm, const char *data, size_t n);

static void sm_read_done(void *arg, ssize_t n)
{
    struct session_milters *sm = arg;
    sm->reading = false;
    if (n < 0)
        sm_store_failed(sm, (int)n);
    else if (sm->step == SM_REWRITE)
        sm_rewrite_chunk(sm, sm->rbuf, (size_t)n);
    else if (!sm->have_hdrs)
        sm_head_chunk(sm, sm->rbuf, (size_t)n);
    else
        sm_body_chunk(sm, sm->rbuf, (size_t)n);
}

/* Where the header section of `h` ends for sure: after its empty line. */
static bool sm_head_complete(const struct buf *h)
{
    if (h->len >= 2 && memcmp(h->data, "\r\n", 2) == 0)
        return true;
    return h->len >= 4 && memmem(h->data, h->len, "\r\n\r\n", 4) != NULL;
}

/* The stored header section, read until its empty line, the end of the message, or the
 * header limit (plus room for our own Received: field): what is beyond is body. */
static void sm_head_chunk(struct session_milters *sm, const char *data, size_t n)
{
    size_t limit = sm->s->rc->cfg->limits.max_header_size;
    limit = limit ? limit + 8192 : 1024 * 1024;
    if (n && buf_append(&sm->head, data, n) < 0) {
        sm_store_failed(sm, -ENOMEM);
        return;
    }
    if (n && !sm_head_complete(&sm->head) && sm->head.len < limit) {
        sm_read(sm, sm->head.len);
        return;
    }
    size_t body_off = 0;
    if (milter_hdrs_parse(&sm->hdrs, sm->head.data, sm->head.len, &body_off) < 0) {
        sm_store_failed(sm, -ENOMEM);
        return;
    }
    sm->have_hdrs = true;
    sm->body_off = body_off;
    buf_free(&sm->head);
    sm_run(sm);
}

int session_milter_eom(struct session *s, session_milter_done_fn done,
                       struct session_milter_outcome *now)
{
    struct session_milters *sm = s->milters;
    *now = (struct session_milter_outcome){SESSION_MILTER_CONTINUE, NULL, false};
    if (!sm)
        return 0;
    sm_reset_step(sm, SM_EOM, done);
    if (sm->fail_reply || sm->discard || !s->msg)
        return sm_go(sm, sm_finish, now);
    milter_hdrs_free(&sm->hdrs);
    sm->have_hdrs = false;
    return sm_go(sm, sm_read_head, now);
}

static int sm_push(char ***v, size_t *n, const char *s)
{
    char *copy = strdup(s);
    char **grown = copy ? realloc(*v, (*n + 1) * sizeof(**v)) : NULL;
    if (!grown) {
        free(copy);
        return -1;
    }
    grown[(*n)++] = copy;
    *v = grown;
    return 0;
}

/* The value of the nth field `name`, for the log; NULL when there is none. */
static const char *sm_hdr_value(const struct milter_hdrs *h, const char *name, uint32_t nth)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0 && --nth == 0)
            return h->v[i].value;
    return NULL;
}

/* A recipient a filter adds, with its ESMTP arguments when it gave some (ADDRCPT_PAR); one
 * whose arguments do not parse is not added (sendmail's milter_addrcpt_par). -1: memory. */
static int sm_add_rcpt(struct session_milters *sm, const char *filter, const char *mailbox,
                       const char *args)
{
    struct session_milter_rcpt r = {0};
    if (args && args[0]) {
        const struct smtp_ext ext = {.dsn = true};
        struct smtp_addr_error err;
        if (smtp_rcpt_params_parse(args, strlen(args), &ext, &r.params, &err) < 0) {
            log_info("%s: Milter (%s): recipient <%s> not added: %s: %s", sm->s->qid, filter,
                     mailbox, args, err.reason);
            return 0;
        }
    }
    struct session_milter_rcpt *grown = realloc(sm->added, (sm->n_added + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    sm->added = grown;
    if (!(r.mailbox = strdup(mailbox)))
        return -1;
    sm->added[sm->n_added++] = r;
    return 0;
}

/* An address a filter gives (CHGFROM, ADDRCPT, DELRCPT): its mailbox when it is one SMTP
 * would take, else NULL (logged; the change is skipped, the filter's others apply). */
static const char *sm_mod_addr(struct session_milters *sm, const char *name, const char *addr,
                               bool null_ok, struct smtp_path *p)
{
    size_t used;
    struct smtp_addr_error err;
    unsigned flags =
        SMTP_PATH_ALLOW_UTF8 | SMTP_PATH_ALLOW_POSTMASTER | (null_ok ? SMTP_PATH_ALLOW_NULL : 0);
    size_t len = strlen(addr);
    if (smtp_path_parse(addr, len, flags, p, &used, &err) == 0 && used == len)
        return p->mailbox;
    log_info("%s: Milter (%s): address %s refused: %s", sm->s->qid, name, addr,
             used == len ? err.reason : "text after the address");
    return NULL;
}

/* A filter's changes, in the order it sent them, in sendmail's words. */
static void sm_apply(struct session_milters *sm, struct session_filter *sf)
{
    const char *qid = sm->s->qid;
    size_t n = milter_mods_count(sf->m);
    bool failed = false;
    struct smtp_path p;
    const char *addr;
    for (size_t i = 0; i < n; i++) {
        const struct milter_mod *mod = milter_mod_at(sf->m, i);
        switch (mod->type) {
        case MILTER_MOD_ADDHDR:
            log_info("%s: Milter add: header: %s:%s", qid, mod->name, mod->value);
            break;
        case MILTER_MOD_INSHDR:
            log_info("%s: Milter insert (%u): header: %s:%s", qid, mod->index, mod->name,
                     mod->value);
            break;
        case MILTER_MOD_CHGHDR: {
            const char *old = sm_hdr_value(&sm->hdrs, mod->name, mod->index ? mod->index : 1);
            if (!old && !mod->value[0])
                log_info("%s: Milter delete (noop): header: %s", qid, mod->name);
            else if (!old)
                log_info("%s: Milter change (add): header: %s:%s", qid, mod->name, mod->value);
            else if (!mod->value[0])
                log_info("%s: Milter delete: header %s:%s", qid, mod->name, old);
            else
                log_info("%s: Milter change: header %s: from%s to%s", qid, mod->name, old,
                         mod->value);
            break;
        }
        case MILTER_MOD_CHGFROM:
            log_info("%s: Milter chgfrom: %s", qid, mod->name);
            if (!(addr = sm_mod_addr(sm, sf->f->name, mod->name, true, &p)))
                break;
            free(sm->sender);
            failed |= !(sm->sender = strdup(addr));
            break;
        case MILTER_MOD_ADDRCPT:
            log_info("%s: Milter add: rcpt: %s", qid, mod->name);
            if ((addr = sm_mod_addr(sm, sf->f->name, mod->name, false, &p)))
                failed |= sm_add_rcpt(sm, sf->f->name, addr, mod->value) < 0;
            break;
        case MILTER_MOD_DELRCPT:
            log_info("%s: Milter delete: rcpt %s", qid, mod->name);
            if ((addr = sm_mod_addr(sm, sf->f->name, mod->name, false, &p)))
                failed |= sm_push(&sm->removed, &sm->n_removed, addr) < 0;
            break;
        case MILTER_MOD_QUARANTINE:
            mailstats_msg(MAILSTATS_QUARANTINE, sm_stats_mailer(sm), 0);
            log_info("%s: milter=%s, quarantine=%s", qid, sf->f->name, mod->name);
            free(sm->quarantine);
            failed |= !(sm->quarantine = strdup(mod->name));
            break;
        }
        if (mod->type == MILTER_MOD_ADDHDR || mod->type == MILTER_MOD_INSHDR ||
            mod->type == MILTER_MOD_CHGHDR) {
            if (milter_hdrs_apply(&sm->hdrs, mod) < 0)
                log_info("%s: Milter (%s): header change refused (malformed or no memory)", qid,
                         sf->f->name);
            else
                sm->head_changed = true;
        }
    }
    const char *body;
    size_t blen;
    if (milter_body_replaced(sf->m, &body, &blen)) {
        log_info("%s: Milter message: body replaced", qid);
        buf_free(&sm->body);
        failed |= blen && buf_append(&sm->body, body, blen) < 0;
        sm->body_replaced = true;
    }
    if (failed) {
        log_error("%s: Milter (%s): cannot apply its changes: out of memory", qid, sf->f->name);
        free(sm->refusal);
        sm->refusal = strdup("451 4.3.0 Temporary failure");
    }
}

/* Appends a replaced body to the message with CRLF line ends (a filter may send bare LF). */
static int sm_write_body(struct spool_msg *msg, const char *data, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n' || (i > 0 && data[i - 1] == '\r'))
            continue;
        if ((i > start && spool_msg_write(msg, data + start, i - start) < 0) ||
            spool_msg_write(msg, "\r\n", 2) < 0)
            return -1;
        start = i + 1;
    }
    return len > start ? spool_msg_write(msg, data + start, len - start) : 0;
}

/* After the last filter: the message written again, the header as edited, then the body as
 * replaced or copied from the old data chunk by chunk. */
static void sm_rewrite(struct session_milters *sm)
{
    struct session *s = sm->s;
    sm->step = SM_REWRITE;
    struct buf head = {0};
    int err = spool_msg_restart(s->msg);
    if (!err && milter_hdrs_write(&sm->hdrs, &head) < 0)
        err = -ENOMEM;
    /* the empty line between header and body (a message that had none gains it) */
    if (!err && buf_append(&head, "\r\n", 2) < 0)
        err = -ENOMEM;
    if (!err && head.len && spool_msg_write(s->msg, head.data, head.len) < 0)
        err = -EIO;
    buf_free(&head);
    if (!err && sm->body_replaced && sm_write_body(s->msg, sm->body.data, sm->body.len) < 0)
        err = -EIO;
    if (err) {
        sm_store_failed(sm, err);
        return;
    }
    if (sm->body_replaced) {
        sm->step = SM_EOM;
        sm_finish(sm);
        return;
    }
    sm->read_off = sm->body_off;
    sm_read(sm, sm->read_off);
}

static void sm_rewrite_chunk(struct session_milters *sm, const char *data, size_t n)
{
    if (!n) {
        sm->step = SM_EOM;
        sm_finish(sm);
        return;
    }
    if (spool_msg_write(sm->s->msg, data, n) < 0) {
        sm_store_failed(sm, -EIO);
        return;
    }
    sm->read_off += n;
    sm_read(sm, sm->read_off);
}

/* --- the message's end without its end, the session's end --- */

void session_milter_abort(struct session *s)
{
    struct session_milters *sm = s->milters;
    if (!sm)
        return;
    for (size_t i = 0; i < sm->n; i++) {
        struct session_filter *sf = sm->f[i];
        if (sf->failed || !sf->negotiated)
            continue;
        struct buf out = {0};
        milter_abort(sf->m, &out);
        sm_filter_send(sf, &out);
    }
}

static void sm_free_all(struct session_milters *sm)
{
    sm_forget_message(sm);
    free(sm->rbuf);
    free(sm->arg);
    free(sm->args);
    free(sm->refusal);
    free(sm);
}

void session_milter_free(struct session *s)
{
    struct session_milters *sm = s->milters;
    if (!sm)
        return;
    s->milters = NULL;
    for (size_t i = 0; i < sm->n; i++) {
        struct session_filter *sf = sm->f[i];
        if (sf->open && !sf->failed && sf->negotiated) {
            struct buf out = {0};
            milter_quit(sf->m, &out);
            sm_filter_send(sf, &out);
        }
        sf->sm = NULL;
        if (sf->open) {
            engine_conn_close(s->dw->w, sf->id, true); /* on_closed frees it */
        } else {
            milter_free(sf->m);
            free(sf);
        }
    }
    /* a read in flight ends without its callback: the message is aborted right after */
    sm_free_all(sm);
}

void session_milter_envelope(const struct session *s, struct session_milter_envelope *out)
{
    const struct session_milters *sm = s->milters;
    *out = (struct session_milter_envelope){0};
    if (!sm)
        return;
    out->sender = sm->sender;
    out->added = sm->added;
    out->n_added = sm->n_added;
    out->removed = (const char *const *)sm->removed;
    out->n_removed = sm->n_removed;
    out->quarantine = sm->quarantine;
}

/* --- the session's side --- */

/* A refusal known at once, for a hook's *err: the reply's code, enhanced code and text,
 * kept in s->verdict until the state machine has sent it. */
static int sm_sync_refusal(struct session *s, const char *reply, struct smtp_addr_error *err)
{
    struct policy_verdict *v = &s->verdict;
    v->ruleset = NULL;
    s->reject_logged = true; /* the filter's line was; the refusal's own line is not wanted */
    v->code = atoi(reply);
    v->enh[0] = '\0';
    const char *p = reply + (strlen(reply) >= 4 ? 4 : strlen(reply));
    size_t e = strspn(p, "0123456789.");
    if (e && e < sizeof(v->enh) && p[e] == ' ') {
        memcpy(v->enh, p, e);
        v->enh[e] = '\0';
        p += e + 1;
    }
    snprintf(v->text, sizeof(v->text), "%.*s", (int)strcspn(p, "\r\n"), p);
    err->code = v->code;
    err->enh = v->enh[0] ? v->enh : NULL;
    err->reason = v->text;
    return -1;
}

static int sm_sync(struct session *s, int pending, const struct session_milter_outcome *o,
                   struct smtp_addr_error *err)
{
    if (pending)
        return 1;
    if (o->verdict == SESSION_MILTER_REFUSE)
        return sm_sync_refusal(s, o->reply, err);
    return 0;
}

/* A step that waited: its verdict into the state machine. */
static void sm_checked(struct session *s, const struct session_milter_outcome *o)
{
    if (s->closing)
        return;
    uint64_t now = engine_now_ms(s->dw->w);
    s->in_smtp = true;
    s->reject_logged = o->verdict == SESSION_MILTER_REFUSE;
    if (o->verdict == SESSION_MILTER_REFUSE)
        smtp_server_check_done_reply(s->smtp, o->reply, now);
    else
        smtp_server_check_done(s->smtp, NULL, now);
    engine_conn_resume_recv(s->dw->w, s->id);
    session_after_smtp(s);
    if (o->shutdown)
        session_close(s);
}

static int sm_check_helo(void *arg, const char *name, bool esmtp, struct smtp_addr_error *err)
{
    struct session *s = arg;
    struct session_milter_outcome now;
    (void)esmtp;
    return sm_sync(s, sm_step_helo(s, name, sm_checked, &now), &now, err);
}

static int sm_check_data(void *arg, struct smtp_addr_error *err)
{
    struct session *s = arg;
    struct session_milter_outcome now;
    return sm_sync(s, sm_step_data(s, sm_checked, &now), &now, err);
}

void session_milter_hooks(struct session *s)
{
    const struct milter_settings *set = sm_settings(s);
    if (!set || !set->n_filters)
        return;
    s->io.check_helo = sm_check_helo;
    s->io.check_data = sm_check_data;
}

int session_milter_check_mail(struct session *s, const char *sender, const char *args,
                              struct smtp_addr_error *err)
{
    struct session_milter_outcome now;
    session_milter_abort(s); /* a filter still in the last message forgets it */
    return sm_sync(s, sm_step_mail(s, sender, args, sm_checked, &now), &now, err);
}

int session_milter_check_rcpt(struct session *s, const char *rcpt, const char *args,
                              struct smtp_addr_error *err)
{
    struct session_milter_outcome now;
    return sm_sync(s, sm_step_rcpt(s, rcpt, args, sm_checked, &now), &now, err);
}

/* What the client sent before the greeting is kept while the filters decide on it: no
 * more than a command line's worth (a client that talks first gets no more). */
#define SM_EARLY_MAX 4096

void session_milter_early(struct session *s, const char *data, size_t len)
{
    size_t room = SM_EARLY_MAX - s->early_len;
    if (len > room)
        len = room;
    if (!len)
        return;
    char *grown = realloc(s->early, s->early_len + len);
    if (!grown)
        return;
    memcpy(grown + s->early_len, data, len);
    s->early = grown;
    s->early_len += len;
}

/* The connect step's outcome: the greeting, or a refusal in its place. */
static void sm_greet(struct session *s, const struct session_milter_outcome *o)
{
    if (s->closing)
        return;
    engine_conn_resume_recv(s->dw->w, s->id);
    if (o->verdict == SESSION_MILTER_REFUSE) {
        /* a greeting refuses with 554, or 421 for a temporary refusal (RFC 5321 3.1) */
        char text[300];
        bool temp = o->reply[0] == '4';
        snprintf(text, sizeof(text), "%s %s", s->rc->cfg->hostname,
                 temp ? "Service temporarily unavailable" : "Command rejected");
        char line[400];
        size_t n =
            smtp_reply_format(line, sizeof(line), temp ? 421 : 554, temp ? "4.7.0" : "5.7.1", text);
        engine_conn_send(s->dw->w, s->id, line, n);
        session_close(s);
        return;
    }
    char *early = s->early;
    size_t len = s->early_len;
    s->early = NULL;
    s->early_len = 0;
    session_greet_now(s, early, len);
    free(early);
}

bool session_milter_greeting(struct session *s, const char *early, size_t len)
{
    struct session_milter_outcome now;
    if (sm_step_connect(s, sm_greet, &now)) {
        session_milter_early(s, early, len);
        engine_conn_pause_recv(s->dw->w, s->id);
        return true;
    }
    if (now.verdict != SESSION_MILTER_REFUSE)
        return false;
    sm_greet(s, &now);
    return true;
}

bool session_milter_removed(const struct session_milter_envelope *e, const char *mailbox)
{
    for (size_t i = 0; i < e->n_removed; i++)
        if (strcasecmp(e->removed[i], mailbox) == 0)
            return true;
    return false;
}
