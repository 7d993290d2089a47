/*
 * delivery/outbound.c — jobs: limits and host status, the connection cache, DNS, the
 * addresses tried in turn, and the results. The connection glue (engine, smtp_client,
 * TLS) is outbound_conn.c.
 */
#include "delivery/outbound.h"
#include "delivery/outbound_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "tls/tls_ctx.h"
#include "tls/tls_session.h"
#include "util/log.h"

#define OUTBOUND_MAX_ADDRESSES 20

void outbound_reply_local(struct smtp_client_reply *out, enum smtp_client_outcome o,
                          const char *enh, const char *fmt, ...)
{
    memset(out, 0, sizeof(*out));
    out->code = o == SMTP_CLIENT_TEMP ? 451 : o == SMTP_CLIENT_PERM ? 550 : 250;
    out->local = true;
    out->outcome = o;
    snprintf(out->enh, sizeof(out->enh), "%s", enh);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->text, sizeof(out->text), fmt, ap);
    va_end(ap);
}

static enum outbound_outcome outbound_outcome_of(enum smtp_client_outcome o)
{
    return o == SMTP_CLIENT_OK     ? OUTBOUND_DELIVERED
           : o == SMTP_CLIENT_PERM ? OUTBOUND_FAILED
                                   : OUTBOUND_DEFERRED;
}

void outbound_run_set_all(struct outbound_run *r, const struct smtp_client_reply *reply)
{
    for (size_t i = 0; i < r->job.msg.n_rcpts; i++) {
        r->rcpts[i].outcome = outbound_outcome_of(reply->outcome);
        r->rcpts[i].reply = *reply;
    }
}

static void outbound_settings_copy(struct outbound_worker *ow, const struct outbound_settings *s)
{
    struct tls_ctx *old = ow->s.tls;
    ow->s = *s;
    snprintf(ow->helo, sizeof(ow->helo), "%s", s->helo_name ? s->helo_name : "localhost");
    ow->s.helo_name = ow->helo;
    if (!ow->s.max_addresses)
        ow->s.max_addresses = OUTBOUND_MAX_ADDRESSES;
    ow->s.tls = s->tls ? tls_ctx_ref(s->tls) : NULL;
    if (old)
        tls_ctx_unref(old);
}

struct outbound_worker *outbound_worker_new(struct engine_worker *w, struct dns *dns,
                                            const struct outbound_settings *s)
{
    struct outbound_worker *ow = calloc(1, sizeof(*ow));
    if (!ow)
        return NULL;
    ow->w = w;
    ow->dns = dns;
    outbound_settings_copy(ow, s);
    return ow;
}

static void outbound_list_unlink(struct outbound_conn **head, struct outbound_conn *cn)
{
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        *head = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    cn->next = cn->prev = NULL;
}

static void outbound_list_push(struct outbound_conn **head, struct outbound_conn *cn)
{
    cn->prev = NULL;
    cn->next = *head;
    if (*head)
        (*head)->prev = cn;
    *head = cn;
}

static void outbound_resume_clear(struct outbound_worker *ow)
{
    for (size_t i = 0; i < OUTBOUND_RESUME_MAX; i++) {
        tls_resumption_free(ow->resume[i].r);
        ow->resume[i] = (struct outbound_resume){0};
    }
}

const struct tls_resumption *outbound_resume_get(struct outbound_worker *ow, const char *id)
{
    for (size_t i = 0; i < OUTBOUND_RESUME_MAX; i++)
        if (ow->resume[i].r && strcmp(ow->resume[i].id, id) == 0) {
            ow->resume[i].used = ++ow->resume_clock;
            return ow->resume[i].r;
        }
    return NULL;
}

void outbound_resume_put(struct outbound_worker *ow, const char *id, struct tls_resumption *r)
{
    struct outbound_resume *slot = &ow->resume[0];
    for (size_t i = 0; i < OUTBOUND_RESUME_MAX; i++) {
        struct outbound_resume *e = &ow->resume[i];
        if (e->r && strcmp(e->id, id) == 0) {
            slot = e;
            break;
        }
        if (!e->r || e->used < slot->used)
            slot = e;
        if (!e->r)
            break;
    }
    tls_resumption_free(slot->r);
    snprintf(slot->id, sizeof(slot->id), "%s", id);
    slot->r = r;
    slot->used = ++ow->resume_clock;
}

static void outbound_cache_close_all(struct outbound_worker *ow)
{
    while (ow->cache)
        outbound_conn_end(ow->cache, true);
}

void outbound_worker_configure(struct outbound_worker *ow, const struct outbound_settings *s)
{
    outbound_settings_copy(ow, s);
    outbound_cache_close_all(ow);
    outbound_resume_clear(ow);
}

static void outbound_run_free(struct outbound_run *r)
{
    free(r->targets);
    free(r->rcpts);
    free(r);
}

void outbound_worker_free(struct outbound_worker *ow)
{
    if (!ow)
        return;
    while (ow->runs) {
        struct outbound_run *r = ow->runs;
        ow->runs = r->next;
        engine_timer_disarm(ow->w, &r->finish);
        if (r->q)
            dns_cancel(r->q);
        if (r->conn)
            r->conn->run = NULL;
        outbound_run_free(r);
    }
    while (ow->cache) {
        struct outbound_conn *cn = ow->cache;
        outbound_list_unlink(&ow->cache, cn);
        outbound_conn_orphan(cn);
    }
    while (ow->conns) {
        struct outbound_conn *cn = ow->conns;
        outbound_list_unlink(&ow->conns, cn);
        outbound_conn_orphan(cn);
    }
    outbound_resume_clear(ow);
    if (ow->s.tls)
        tls_ctx_unref(ow->s.tls);
    free(ow);
}

unsigned outbound_jobs(const struct outbound_worker *ow)
{
    return ow->n_runs;
}

unsigned outbound_cached(const struct outbound_worker *ow)
{
    return ow->n_cached;
}

/* --- the connection cache --- */

void outbound_cache_remove(struct outbound_worker *ow, struct outbound_conn *cn)
{
    if (!cn->cached)
        return;
    if (ow->cache_old == cn)
        ow->cache_old = cn->prev;
    outbound_list_unlink(&ow->cache, cn);
    cn->cached = false;
    ow->n_cached--;
    outbound_list_push(&ow->conns, cn);
}

void outbound_cache_put(struct outbound_worker *ow, struct outbound_conn *cn)
{
    if (!ow->s.cache_size || !ow->s.cache_timeout_ms || engine_worker_exiting(ow->w)) {
        outbound_conn_end(cn, true);
        return;
    }
    outbound_list_unlink(&ow->conns, cn);
    outbound_list_push(&ow->cache, cn);
    if (!ow->cache_old)
        ow->cache_old = cn;
    cn->cached = true;
    cn->state = OUTBOUND_IDLE;
    outbound_conn_release_slot(cn); /* an idle connection delivers nothing */
    cn->idle_until = engine_now_ms(ow->w) + ow->s.cache_timeout_ms;
    engine_conn_set_timer(ow->w, cn->id, cn->idle_until);
    if (++ow->n_cached > ow->s.cache_size)
        outbound_conn_end(ow->cache_old, true); /* the least recently used */
}

/* An idle connection to the job's next hop, taken out of the cache. */
static struct outbound_conn *outbound_cache_take(struct outbound_worker *ow, const char *key)
{
    for (struct outbound_conn *cn = ow->cache; cn; cn = cn->next)
        if (strcmp(cn->key, key) == 0 && outbound_conn_auth_current(cn)) {
            outbound_cache_remove(ow, cn);
            return cn;
        }
    return NULL;
}

/* --- jobs --- */

static void outbound_run_fire(struct engine_timer *t)
{
    struct outbound_run *r =
        (struct outbound_run *)((char *)t - offsetof(struct outbound_run, finish));
    struct outbound_worker *ow = r->ow;
    if (r->prev)
        r->prev->next = r->next;
    else
        ow->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    ow->n_runs--;
    r->done(r->arg, &r->result);
    outbound_run_free(r);
}

void outbound_run_finish(struct outbound_run *r)
{
    struct outbound_worker *ow = r->ow;
    if (r->finished)
        return;
    r->finished = true;
    if (r->conn) {
        r->conn->run = NULL;
        r->conn = NULL;
    }
    if (r->slot && ow->s.dest) {
        if (!r->sent)
            dest_untake(ow->s.dest, r->key); /* no message went: the rate token is back */
        outbound_slot_release(ow, r->key);
    }
    r->slot = false;
    engine_timer_arm(ow->w, &r->finish, engine_now_ms(ow->w));
}

void outbound_slot_release(struct outbound_worker *ow, const char *key)
{
    dest_release(ow->s.dest, key);
    if (ow->slot_free)
        ow->slot_free(ow->slot_free_arg, key);
}

void outbound_on_slot_free(struct outbound_worker *ow, void (*fn)(void *arg, const char *key),
                           void *arg)
{
    ow->slot_free = fn;
    ow->slot_free_arg = arg;
}

static void outbound_run_exhausted(struct outbound_run *r)
{
    struct outbound_worker *ow = r->ow;
    if (r->backlog_full && !r->any_session) {
        /* no attempt either: the server is there, only too busy to take one more client
         * now (its listen backlog is full); tried again in a moment, no host status */
        r->result.throttled = true;
        r->result.retry_at = engine_now_ms(ow->w) + OUTBOUND_BACKLOG_RETRY_MS;
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.4.5", "listen queue of %s is full",
                             r->result.relay_addr);
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    }
    /* Only addresses that never got as far as EHLO make a host status (sendmail's
     * "host down"); our own shortage of descriptors or memory, or a worker shutting down,
     * says nothing about the destination. */
    if (!r->any_session && !r->local_trouble && ow->s.dest && !engine_worker_exiting(ow->w))
        dest_failed(ow->s.dest, r->key, r->last.text, engine_now_ms(ow->w));
    outbound_run_set_all(r, &r->last);
    outbound_run_finish(r);
}

static void outbound_run_try(struct outbound_run *r)
{
    while (r->next_target < r->n_targets || (r->plain_retry && r->next_target > 0)) {
        bool again = r->plain_retry;
        size_t i = again ? r->next_target - 1 : r->next_target++;
        struct smtp_client_reply why;
        int rc = outbound_conn_open(r, &r->targets[i], &why);
        r->plain_retry = false;
        if (rc == 0)
            return;
        r->last = why;
    }
    outbound_run_exhausted(r);
}

static void outbound_run_resolve(struct outbound_run *r);

void outbound_run_next(struct outbound_run *r, const struct smtp_client_reply *reply)
{
    if (r->finished)
        return;
    if (r->reused) {
        /* the cached connection had gone stale: as if the cache had missed */
        r->reused = false;
        outbound_run_resolve(r);
        return;
    }
    r->last = *reply;
    outbound_run_try(r);
}

/* Whether an MX host is this host: our own name (helo_name, the configuration's hostname),
 * compared without case and without a trailing dot. */
static bool outbound_is_me(const struct outbound_worker *ow, const char *host)
{
    const char *me = ow->s.helo_name;
    size_t hl = strlen(host), ml = me ? strlen(me) : 0;
    if (hl && host[hl - 1] == '.')
        hl--;
    if (ml && me[ml - 1] == '.')
        ml--;
    return ml && hl == ml && strncasecmp(host, me, hl) == 0;
}

static void outbound_run_dns(void *arg, const struct dns_mx_result *res);

/* Asks DNS for the route's host: its MX hosts and their addresses, or only its own. */
static void outbound_run_lookup(struct outbound_run *r, bool with_mx)
{
    struct outbound_worker *ow = r->ow;
    const struct route *rt = r->job.route;
    r->q = dns_resolve(ow->dns, rt->host, with_mx, ow->s.family, outbound_run_dns, r);
    if (!r->q) {
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory resolving %s",
                             rt->host);
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
    }
}

static void outbound_run_dns(void *arg, const struct dns_mx_result *res)
{
    struct outbound_run *r = arg;
    struct outbound_worker *ow = r->ow;
    const struct route *rt = r->job.route;
    r->q = NULL;
    switch (res->status) {
    case DNS_OK:
        break;
    case DNS_TEMPFAIL:
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.4.3",
                             "Name server: %s: host name lookup failure (%s)", rt->host,
                             res->error);
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    case DNS_NOTFOUND:
        outbound_reply_local(&r->last, SMTP_CLIENT_PERM, "5.1.2",
                             "Host unknown (Name server: %s: host not found)", rt->host);
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    case DNS_NULLMX:
        outbound_reply_local(&r->last, SMTP_CLIENT_PERM, "5.1.10",
                             "Domain %s does not accept mail (null MX)", rt->host);
        r->last.code = 556; /* RFC 7505 */
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    }
    /* sendmail's rule: we are an MX for the domain, so only hosts more preferred than we are
     * may take it; when there is none the MX list points back to us (a configuration
     * error: 5.3.5, bounced, as sendmail's "mail loops back to me"), unless TryNullMXList
     * says to try the domain's own addresses (a second lookup, whose one host is the domain
     * itself, never compared with us). */
    size_t n_hosts = res->n_hosts;
    for (size_t h = 0; !res->implicit && !r->own_addresses && h < res->n_hosts; h++)
        if (outbound_is_me(ow, res->hosts[h].name)) {
            n_hosts = h;
            while (n_hosts > 0 && res->hosts[n_hosts - 1].pref >= res->hosts[h].pref)
                n_hosts--;
            break;
        }
    if (n_hosts == 0 && ow->s.try_null_mx_list && !r->own_addresses) {
        r->own_addresses = true;
        outbound_run_lookup(r, false);
        return;
    }
    if (n_hosts == 0) {
        outbound_reply_local(&r->last, SMTP_CLIENT_PERM, "5.3.5",
                             "MX list for %s points back to %s (mail loops back to me)", rt->host,
                             ow->s.helo_name);
        r->last.code = 553;
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    }
    size_t n = 0;
    for (size_t h = 0; h < n_hosts; h++)
        n += res->hosts[h].n_addrs;
    if (n > ow->s.max_addresses)
        n = ow->s.max_addresses;
    free(r->targets);
    r->targets = calloc(n ? n : 1, sizeof(*r->targets));
    r->n_targets = r->next_target = 0;
    if (!r->targets) {
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory");
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return;
    }
    for (size_t h = 0; h < n_hosts && r->n_targets < n; h++)
        for (size_t a = 0; a < res->hosts[h].n_addrs && r->n_targets < n; a++) {
            struct outbound_target *t = &r->targets[r->n_targets++];
            snprintf(t->host, sizeof(t->host), "%s", res->hosts[h].name);
            t->addr = res->hosts[h].addrs[a];
            uint16_t port = htons(rt->port ? rt->port : 25);
            if (t->addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&t->addr)->sin6_port = port;
            else
                ((struct sockaddr_in *)&t->addr)->sin_port = port;
        }
    outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.4.3", "No address to connect to for %s",
                         rt->host);
    outbound_run_try(r);
}

/* An address literal ([192.0.2.1], [IPv6:::1]) or an LMTP server's unix socket is its own
 * and only target: no DNS. */
static bool outbound_run_direct(struct outbound_run *r)
{
    const struct route *rt = r->job.route;
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    uint16_t port = htons(rt->port ? rt->port : 25);
    if (rt->unix_socket) { /* outbound_deliver checked that the path fits */
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, rt->host, strlen(rt->host) + 1);
    } else if (inet_pton(AF_INET, rt->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = port;
    } else if (inet_pton(AF_INET6, rt->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
    } else {
        return false;
    }
    free(r->targets);
    if (!(r->targets = calloc(1, sizeof(*r->targets)))) {
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.3.0", "Out of memory");
        outbound_run_set_all(r, &r->last);
        outbound_run_finish(r);
        return true;
    }
    snprintf(r->targets[0].host, sizeof(r->targets[0].host), "%s",
             rt->unix_socket ? "localhost" : rt->host);
    r->targets[0].addr = ss;
    r->n_targets = 1;
    r->next_target = 0;
    outbound_run_try(r);
    return true;
}

static void outbound_run_resolve(struct outbound_run *r)
{
    if (outbound_run_direct(r))
        return;
    r->own_addresses = false;
    outbound_run_lookup(r, r->job.route->mx);
}

/* Limits and host status before anything else: 0 to go on, -1 when the job is decided. */
static int outbound_run_admit(struct outbound_run *r)
{
    struct outbound_worker *ow = r->ow;
    if (!ow->s.dest)
        return 0;
    struct dest_check dc;
    switch (dest_acquire(ow->s.dest, r->key, true, engine_now_ms(ow->w), &dc)) {
    case DEST_GO:
        r->slot = true;
        return 0;
    case DEST_HELD:
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.4.1", "%s (host status cached)",
                             dc.reason[0] ? dc.reason : "Host down");
        break;
    case DEST_BUSY:
        r->result.throttled = true;
        r->result.retry_at = dc.retry_at;
        outbound_reply_local(&r->last, SMTP_CLIENT_TEMP, "4.4.5", "%s", dc.reason);
        break;
    }
    outbound_run_set_all(r, &r->last);
    outbound_run_finish(r);
    return -1;
}

int outbound_deliver(struct outbound_worker *ow, const struct outbound_job *job,
                     outbound_done_cb done, void *arg)
{
    if (!job || !job->route || job->route->kind != ROUTE_SMTP || !job->msg.n_rcpts || !done ||
        (job->route->unix_socket &&
         strlen(job->route->host) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
        return -1;
    struct outbound_run *r = calloc(1, sizeof(*r));
    if (!r || !(r->rcpts = calloc(job->msg.n_rcpts, sizeof(*r->rcpts)))) {
        free(r);
        return -1;
    }
    r->ow = ow;
    r->job = *job;
    r->done = done;
    r->arg = arg;
    r->finish.fire = outbound_run_fire;
    r->result.rcpts = r->rcpts;
    r->result.n_rcpts = job->msg.n_rcpts;
    route_key(job->route, r->key, sizeof(r->key));
    if (job->route->unix_socket) /* a local socket: its permissions guard it, not TLS */
        r->policy = (struct tlspolicy){.level = TLSPOLICY_NONE, .source = "unix socket"};
    else
        tlspolicy_for_destination(ow->s.tls_policy, job->route->host, job->route->mx,
                                  job->route->port, &r->policy);
    r->next = ow->runs;
    if (ow->runs)
        ow->runs->prev = r;
    ow->runs = r;
    ow->n_runs++;
    if (outbound_run_admit(r) < 0)
        return 0;
    struct outbound_conn *cn = outbound_cache_take(ow, r->key);
    r->reused = cn != NULL;
    if (cn && outbound_conn_send(cn, r) == 0)
        return 0;
    r->reused = false;
    outbound_run_resolve(r);
    return 0;
}

const char *outbound_stat(const struct outbound_rcpt_result *r, char *out, size_t outlen)
{
    const struct smtp_client_reply *p = &r->reply;
    switch (r->outcome) {
    case OUTBOUND_DELIVERED:
        snprintf(out, outlen, "Sent (%s)", p->text);
        break;
    case OUTBOUND_DEFERRED:
        if (p->local)
            snprintf(out, outlen, "Deferred: %s", p->text);
        else
            snprintf(out, outlen, "Deferred: %d %s %s", p->code, p->enh, p->text);
        break;
    case OUTBOUND_FAILED:
        if (p->local)
            snprintf(out, outlen, "%s", p->text);
        else
            snprintf(out, outlen, "%d %s %s", p->code, p->enh, p->text);
        break;
    }
    return out;
}
