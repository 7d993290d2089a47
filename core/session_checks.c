/*
 * core/session_checks.c — what happens between accepting a TCP client and greeting it:
 * its reverse DNS with forward confirmation, the DNSBL zones (policy/dnsbl.h) and the
 * greet_pause (policy/greet_pause.h), all at once on the worker's resolver (util/dns.h).
 *
 * The greeting goes out when every lookup has answered and the pause has ended. A DNSBL
 * zone that lists the client (or fails with its temp-failure option) refuses it in the
 * greeting's place, as the access map's Connect: REJECT does (session_refuse_greeting); a
 * client that sends anything while a pause is in effect gets sendmail's "554 <host> ESMTP
 * not accepting messages" and nothing else. Bytes a client sends while only lookups run
 * (no pause) are kept and given to the state machine after the greeting, as sendmail reads
 * them after its lookups. limits.connection_rate_throttle (core/accept_throttle.h) holds
 * the greeting the same way, input kept: the client did nothing wrong. Local
 * (submission.socket) callers are never checked.
 *
 * Lifetime: struct session_checks lives from session_checks_start until the greeting or
 * the end of the connection; its queries are cancelled then. The worker's resolver is
 * freed when the worker drains (queuerun_worker_stop), which frees every query with it:
 * with dw->dns gone, nothing is cancelled twice.
 */
#include "core/session_int.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/dnsbl.h"
#include "core/accept_throttle.h"
#include "policy/greet_pause.h"
#include "util/dns.h"
#include "util/log.h"
#include "util/metrics.h"

/* Lookups that have not answered by then are given up (c-ares' own timeouts end sooner
 * with the default dns.timeout and dns.tries): the client is greeted without them. */
#define SESSION_CHECKS_MAX_MS 60000

enum session_dnsbl_state { DNSBL_PENDING, DNSBL_CLEAR, DNSBL_LISTED, DNSBL_TEMPFAIL };

struct session_dnsbl {
    struct session_checks *c;
    struct dns_query *q;
    enum session_dnsbl_state state;
};

struct session_checks {
    struct session *s;
    struct dns_query *ptr, *fwd;
    char *ptr_name; /* while its forward lookup runs */
    struct session_dnsbl *bl;
    size_t n_bl;
    unsigned pending; /* lookups not answered */
    uint64_t start;
    uint32_t pause;   /* ms from start; 0 = none */
    uint32_t hold;    /* ms from start: the throttle's wait; 0 = none */
    struct buf early; /* what a client sent before the greeting, with no pause in effect */
};

static bool session_checks_pausing(const struct session_checks *c, uint64_t now)
{
    return c->pause && now < c->start + c->pause;
}

/* When the greeting may go out, lookups aside: after the pause and the throttle's wait. */
static uint64_t session_checks_ready(const struct session_checks *c)
{
    return c->start + (c->pause > c->hold ? c->pause : c->hold);
}

/* No callback of this session's lookups runs after this. */
static void session_checks_cancel(struct session *s)
{
    struct session_checks *c = s->checks;
    if (s->dw->dns) { /* else dns_free has freed the queries already */
        dns_cancel(c->ptr);
        dns_cancel(c->fwd);
        for (size_t i = 0; i < c->n_bl; i++)
            dns_cancel(c->bl[i].q);
    }
    c->ptr = c->fwd = NULL;
    for (size_t i = 0; i < c->n_bl; i++)
        c->bl[i].q = NULL;
    c->pending = 0;
}

static void session_checks_end(struct session *s)
{
    struct session_checks *c = s->checks;
    session_checks_cancel(s);
    free(c->ptr_name);
    free(c->bl);
    buf_free(&c->early);
    free(c);
    s->checks = NULL;
}

void session_checks_free(struct session *s)
{
    if (s->checks)
        session_checks_end(s);
}

/* The first zone in the configured order that refuses the client, as sendmail's rules run
 * in the order of the FEATUREs. */
static bool session_checks_refuse_dnsbl(struct session *s)
{
    struct session_checks *c = s->checks;
    for (size_t i = 0; i < c->n_bl; i++) {
        const struct config_dnsbl *z = &s->rc->cfg->checks.dnsbl[i];
        bool temp = c->bl[i].state == DNSBL_TEMPFAIL && z->tempfail;
        if (c->bl[i].state != DNSBL_LISTED && !temp)
            continue;
        struct dnsbl_reply r;
        char reject[600];
        dnsbl_reply(z->message, z->zone, s->addr, temp, &r);
        snprintf(reject, sizeof(reject), "%d %s %s", r.code, r.enh, r.text);
        session_checks_end(s);
        session_refuse_greeting(s, r.code, r.enh, r.text, reject);
        return true;
    }
    return false;
}

/* Greets (or refuses) once every lookup has answered and the pause is over. */
static void session_checks_settle(struct session *s)
{
    struct session_checks *c = s->checks;
    uint64_t now = engine_now_ms(s->dw->w);
    if (s->closing) /* going away: on_closed ends the checks */
        return;
    if (c->pending == 0 && session_checks_refuse_dnsbl(s))
        return;
    if (c->pending || now < session_checks_ready(c)) {
        engine_conn_set_timer(s->dw->w, s->id, session_checks_deadline(s));
        return;
    }
    struct buf early = c->early;
    c->early = (struct buf){0};
    session_checks_end(s);
    if (!session_connect_named(s))
        session_greet(s, early.data, early.len); /* sent before the greeting, read after it */
    buf_free(&early);
    if (!s->closing)
        engine_conn_resume_recv(s->dw->w, s->id);
}

/* sendmail's answer to pre-greeting traffic: the 554 greeting, the log line fail2ban's
 * sendmail-reject filter reads, and (as ringmail refuses at connect) the end. */
static void session_checks_early_talker(struct session *s)
{
    struct session_checks *c = s->checks;
    uint64_t elapsed = engine_now_ms(s->dw->w) - c->start;
    char bracketed[SESSION_RELAY_MAX], reply[400];
    /* sendmail's peerhostname: the name, or the bracketed address when there is none; no
     * id, as sendmail's and ringmail's other connect-time refusals (docs/logs.md) */
    log_info("rejecting commands from %s [%s%s] due to pre-greeting traffic after %llu seconds",
             s->client_name ? s->client_name : session_relay(s, bracketed, sizeof(bracketed)),
             strchr(s->addr, ':') ? "IPv6:" : "", s->addr,
             (unsigned long long)((elapsed + 500) / 1000));
    session_checks_end(s);
    snprintf(reply, sizeof(reply), "554 %s ESMTP not accepting messages\r\n", s->rc->cfg->hostname);
    engine_conn_send(s->dw->w, s->id, reply, strlen(reply));
    session_close(s);
}

void session_checks_input(struct session *s, const char *data, size_t len)
{
    struct session_checks *c = s->checks;
    if (session_checks_pausing(c, engine_now_ms(s->dw->w))) {
        session_checks_early_talker(s);
        return;
    }
    /* Only lookups run: kept for after the greeting, within the input bound. */
    if (buf_append(&c->early, data, len) < 0 || c->early.len >= s->rc->cfg->limits.max_input_buffer)
        engine_conn_pause_recv(s->dw->w, s->id);
}

uint64_t session_checks_deadline(const struct session *s)
{
    const struct session_checks *c = s->checks;
    uint64_t pause_end = session_checks_ready(c);
    if (!c->pending)
        return pause_end;
    uint64_t give_up = c->start + SESSION_CHECKS_MAX_MS;
    return pause_end > give_up ? pause_end : give_up;
}

void session_checks_timer(struct session *s)
{
    struct session_checks *c = s->checks;
    uint64_t now = engine_now_ms(s->dw->w);
    if (c->pending && now >= c->start + SESSION_CHECKS_MAX_MS) {
        log_info("%s: %s: DNS lookups before the greeting gave no answer in %d s", s->qid, s->addr,
                 SESSION_CHECKS_MAX_MS / 1000);
        session_checks_cancel(s); /* the zones not answered count as not listing it */
    }
    session_checks_settle(s);
}

/* The pause may depend on the client's name (GreetPause:host entries). */
static void session_checks_named(struct session *s, const char *name, bool forged)
{
    struct session_checks *c = s->checks;
    s->client_name = strdup(name);
    s->client_forged = forged;
    if (!s->client_name || forged)
        return;
    const struct config *cfg = s->rc->cfg;
    c->pause = greet_pause_for(&cfg->map.access, name, s->addr, cfg->checks.greet_pause);
    if (c->early.len && session_checks_pausing(c, engine_now_ms(s->dw->w)))
        session_checks_early_talker(s); /* it talked while we looked it up */
}

static bool session_checks_same_addr(const struct sockaddr_storage *a,
                                     const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* Forward confirmation: the name's addresses must include the client's; otherwise (no
 * address, or a failed lookup) the name is shown "(may be forged)" as sendmail does. */
static void session_checks_forward(void *arg, const struct dns_mx_result *r)
{
    struct session *s = arg;
    struct session_checks *c = s->checks;
    c->fwd = NULL;
    c->pending--;
    bool confirmed = false;
    for (size_t i = 0; r->status == DNS_OK && i < r->n_hosts; i++)
        for (size_t j = 0; j < r->hosts[i].n_addrs && !confirmed; j++)
            confirmed = session_checks_same_addr(&r->hosts[i].addrs[j], &s->peer);
    char *name = c->ptr_name;
    c->ptr_name = NULL;
    session_checks_named(s, name, !confirmed);
    free(name);
    if (s->checks)
        session_checks_settle(s);
}

static void session_checks_ptr(void *arg, const struct dns_mx_result *r)
{
    struct session *s = arg;
    struct session_checks *c = s->checks;
    c->ptr = NULL;
    if (r->status == DNS_OK && r->n_hosts && (c->ptr_name = strdup(r->hosts[0].name))) {
        c->fwd = dns_resolve(s->dw->dns, c->ptr_name, false, AF_UNSPEC, session_checks_forward, s);
        if (c->fwd)
            return; /* still pending: the forward lookup's */
    }
    /* No name: sendmail shows the bare address (a failed lookup included). */
    free(c->ptr_name);
    c->ptr_name = NULL;
    c->pending--;
    session_checks_settle(s);
}

static void session_checks_dnsbl(void *arg, const struct dns_mx_result *r)
{
    struct session_dnsbl *b = arg;
    struct session_checks *c = b->c;
    struct session *s = c->s;
    const struct config_dnsbl *z = &s->rc->cfg->checks.dnsbl[b - c->bl];
    b->q = NULL;
    c->pending--;
    if (r->status == DNS_OK)
        b->state = r->n_hosts && dnsbl_listed(r->hosts[0].addrs, r->hosts[0].n_addrs,
                                              (const char *const *)z->results, z->n_results)
                       ? DNSBL_LISTED
                       : DNSBL_CLEAR;
    else
        b->state = r->status == DNS_TEMPFAIL ? DNSBL_TEMPFAIL : DNSBL_CLEAR;
    if (b->state == DNSBL_TEMPFAIL)
        log_info("%s: %s: DNSBL lookup at %s failed: %s", s->qid, s->addr, z->zone, r->error);
    session_checks_settle(s);
}

/* sendmail's dnsbl rules match IPv4 clients only ($-.$-.$-.$-). */
static void session_checks_start_dnsbl(struct session *s)
{
    struct session_checks *c = s->checks;
    const struct config *cfg = s->rc->cfg;
    if (!cfg->checks.n_dnsbl || s->peer.ss_family != AF_INET)
        return;
    if (!(c->bl = calloc(cfg->checks.n_dnsbl, sizeof(*c->bl))))
        return; /* out of memory: greeted unchecked, as with a failed lookup */
    c->n_bl = cfg->checks.n_dnsbl;
    for (size_t i = 0; i < c->n_bl; i++) {
        char name[300];
        c->bl[i].c = c;
        c->bl[i].state = DNSBL_CLEAR;
        if (dns_reverse_name((const struct sockaddr *)&s->peer, cfg->checks.dnsbl[i].zone, name,
                             sizeof(name)) < 0)
            continue;
        c->bl[i].state = DNSBL_PENDING;
        c->pending++;
        if (!(c->bl[i].q =
                  dns_resolve(s->dw->dns, name, false, AF_INET, session_checks_dnsbl, &c->bl[i]))) {
            c->pending--;
            c->bl[i].state = DNSBL_CLEAR;
        }
    }
}

bool session_checks_start(struct session *s)
{
    const struct config *cfg = s->rc->cfg;
    if (s->local)
        return false;
    struct dns *dns = s->dw->dns;
    uint32_t pause = greet_pause_for(&cfg->map.access, NULL, s->addr, cfg->checks.greet_pause);
    bool lookups = dns && (cfg->checks.peername_lookup ||
                           (cfg->checks.n_dnsbl && s->peer.ss_family == AF_INET));
    uint64_t hold = accept_throttle_wait(s->dw->d->throttle, s->listener, engine_now_ms(s->dw->w),
                                         cfg->connection_rate_throttle);
    if (hold)
        metrics_connection(s->listener, METRICS_CONN_THROTTLED);
    if (!pause && !lookups && !hold)
        return false;
    struct session_checks *c = calloc(1, sizeof(*c));
    if (!c)
        return false; /* greeted at once, unchecked: as when the resolver is down */
    c->s = s;
    c->start = engine_now_ms(s->dw->w);
    c->pause = pause;
    c->hold = hold > UINT32_MAX ? UINT32_MAX : (uint32_t)hold;
    buf_init(&c->early, 0);
    s->checks = c;
    if (dns && cfg->checks.peername_lookup) {
        c->pending++;
        if (!(c->ptr =
                  dns_resolve_ptr(dns, (const struct sockaddr *)&s->peer, session_checks_ptr, s)))
            c->pending--;
    }
    if (dns)
        session_checks_start_dnsbl(s);
    if (!c->pending && !c->pause && !c->hold) {
        session_checks_end(s);
        return false;
    }
    return true;
}
