/*
 * core/session_proxy.c — a listener behind a load balancer: HAProxy's PROXY protocol
 * (docs/policy-connections.md).
 *
 * On a listener with proxy_protocol, a connection is first this small context: only
 * listen[].trusted_proxies may connect (anyone else could name any client and pass every
 * address check), and nothing but the header is read until it is complete. Then the
 * connection is handed over (engine_conn_set_ctx) to an SMTP session started exactly as
 * for a direct client at the address the header names: access map, rate and connection
 * limits, logs and Received: all see the real client. A proxy's health check (v2 LOCAL,
 * v1 UNKNOWN) is closed without a session and without a log line.
 */
#include "core/session_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/runconf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/netaddr.h"
#include "util/proxy_hdr.h"

/* haproxy writes the header with the connection's first bytes: a proxy that has not
 * sent it within this is not one, and the slot is not kept for it. */
#define SESSION_PROXY_TIMEOUT_MS 10000u
#define SESSION_PROXY_LOG_MS     10000u

/* Untrusted peers can connect at will: their lines are rate-limited per address. */
static struct log_limit session_proxy_log = LOG_LIMIT_INIT(SESSION_PROXY_LOG_MS);

struct session_proxy {
    struct daemon_conn conn; /* first: these callbacks (core/daemon.h) */
    struct daemon_worker *dw;
    engine_conn_id id;
    unsigned listener;
    bool closing;   /* refused: what still arrives is dropped */
    char proxy[48]; /* the proxy's address, for the log */
    size_t len;
    unsigned char buf[PROXY_HDR_MAX];
};

static const struct engine_conn_callbacks session_proxy_callbacks;

static bool session_proxy_trusted(const struct config_listener *l, const struct sockaddr *peer)
{
    for (size_t i = 0; i < l->n_trusted_proxies; i++)
        if (netaddr_prefix_match(&l->trusted_proxies[i], peer))
            return true;
    return false;
}

void *session_proxy_accept(struct daemon_worker *dw, engine_conn_id id, unsigned listener,
                           const struct sockaddr *proxy)
{
    const struct config_listener *l = &dw->rc->cfg->listen[listener];
    char addr[48];
    netaddr_format(proxy, addr, sizeof(addr));
    if (!session_proxy_trusted(l, proxy)) {
        log_limited(&session_proxy_log, LOG_LVL_WARN, addr,
                    "connection from [%s] on daemon %s refused: not a trusted proxy "
                    "(listen[].trusted_proxies)",
                    addr, l->name);
        metrics_connection(listener, METRICS_CONN_PROXY);
        return session_refuse(dw, id, "Not a trusted proxy");
    }
    struct session_proxy *p = malloc(sizeof(*p));
    if (!p)
        return session_refuse(dw, id, "Out of memory");
    p->conn.cb = &session_proxy_callbacks;
    p->dw = dw;
    p->id = id;
    p->listener = listener;
    p->len = 0;
    p->closing = false;
    snprintf(p->proxy, sizeof(p->proxy), "%s", addr);
    engine_conn_set_timer(dw->w, id, engine_now_ms(dw->w) + SESSION_PROXY_TIMEOUT_MS);
    return p;
}

/* The proxy broke the protocol: said on the wire (the client behind it may read it) and
 * in the log, then closed. */
static void session_proxy_fail(struct session_proxy *p, const char *why)
{
    log_limited(&session_proxy_log, LOG_LVL_WARN, p->proxy,
                "PROXY header from [%s] on daemon %s refused: %s", p->proxy,
                p->dw->d->listener_names[p->listener], why); /* fixed at start-up */
    metrics_connection(p->listener, METRICS_CONN_PROXY);
    session_refuse(p->dw, p->id, "Bad PROXY protocol header");
    p->closing = true;
    engine_conn_close(p->dw->w, p->id, true);
}

/* The header is complete: the session takes the connection and what came after the header
 * (head: the rest of buf; tail: the part of this receive that did not fit in it). */
static void session_proxy_done(struct session_proxy *p, const struct proxy_hdr *h, const char *tail,
                               size_t taillen)
{
    struct daemon_worker *dw = p->dw;
    p->closing = true;
    if (h->local) { /* a health check: no client, nothing to log */
        engine_conn_close(dw->w, p->id, false);
        return;
    }
    void *s = dw->draining ? session_refuse(dw, p->id, "Shutting down")
                           : session_accept_client(dw, p->id, p->listener,
                                                   (const struct sockaddr *)&h->src, h->srclen);
    if (!s) {
        engine_conn_close(dw->w, p->id, true);
        return;
    }
    engine_conn_set_ctx(dw->w, p->id, s);
    const struct engine_conn_callbacks *cb = ((struct daemon_conn *)s)->cb;
    if (p->len > h->len)
        cb->on_recv(s, (const char *)p->buf + h->len, p->len - h->len);
    if (taillen)
        cb->on_recv(s, tail, taillen);
    free(p);
}

static void session_proxy_recv(void *ctx, const char *data, size_t len)
{
    struct session_proxy *p = ctx;
    if (p->closing)
        return;
    size_t room = sizeof(p->buf) - p->len, take = len < room ? len : room;
    memcpy(p->buf + p->len, data, take);
    p->len += take;
    struct proxy_hdr h;
    const char *why;
    switch (proxy_hdr_parse(p->buf, p->len, &h, &why)) {
    case PROXY_HDR_MORE:
        return; /* the parser bounds the header below sizeof(buf): more will fit */
    case PROXY_HDR_ERROR:
        session_proxy_fail(p, why);
        return;
    case PROXY_HDR_DONE:
        /* p->len still counts the bytes taken from this receive: stop reading it after */
        session_proxy_done(p, &h, data + take, len - take);
        return;
    }
}

static void session_proxy_timer(void *ctx)
{
    struct session_proxy *p = ctx;
    session_proxy_fail(p, "no header within 10 s");
}

static void session_proxy_closed(void *ctx, int err)
{
    (void)err; /* a proxy (or its client) gone before the header: nothing to say */
    free(ctx);
}

static const struct engine_conn_callbacks session_proxy_callbacks = {
    .on_recv = session_proxy_recv,
    .on_timer = session_proxy_timer,
    .on_closed = session_proxy_closed,
};
