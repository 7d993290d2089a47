/*
 * core/metrics_http.c — one HTTP request per connection on the metrics listener
 * (core/metrics_http.h).
 */
#include "core/metrics_http.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/http_req.h"
#include "util/log.h"
#include "util/metrics.h"

#define METRICS_HTTP_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
    struct daemon_conn conn; /* first: the daemon calls the callbacks through it */
    struct daemon_worker *dw;
    engine_conn_id id;
    size_t len;
    bool answered; /* what arrives from then on is read and dropped */
    char head[HTTP_REQ_MAX];
};

static void metrics_http_answer(struct metrics_http *c, const struct http_req *req)
{
    struct buf body = {0}, out = {0};
    int status = http_req_status(req, "/metrics");
    c->answered = true;
    if (status == 200 && metrics_render(&body) < 0) {
        log_error("metrics: cannot render the exposition: out of memory");
        buf_free(&body);
        engine_conn_close(c->dw->w, c->id, false);
        return;
    }
    if (http_req_respond(&out, req, status, METRICS_HTTP_TYPE, body.data, body.len) < 0)
        log_error("metrics: cannot answer: out of memory");
    else
        engine_conn_send(c->dw->w, c->id, out.data, out.len);
    buf_free(&body);
    buf_free(&out);
    /* the timer armed at accept bounds the flush too */
    engine_conn_close(c->dw->w, c->id, true);
}

static void metrics_http_recv(void *ctx, const char *data, size_t len)
{
    struct metrics_http *c = ctx;
    if (c->answered)
        return;
    size_t take = len < sizeof(c->head) - c->len ? len : sizeof(c->head) - c->len;
    memcpy(c->head + c->len, data, take);
    c->len += take;
    struct http_req req;
    switch (http_req_parse(c->head, c->len, &req)) {
    case HTTP_REQ_MORE:
        return;
    case HTTP_REQ_DONE:
        metrics_http_answer(c, &req);
        return;
    case HTTP_REQ_BAD:
        metrics_http_answer(c, NULL);
        return;
    }
}

/* The request never came whole: close without a word (a 408 would only feed a probe). */
static void metrics_http_timer(void *ctx)
{
    struct metrics_http *c = ctx;
    engine_conn_close(c->dw->w, c->id, false);
}

static void metrics_http_closed(void *ctx, int err)
{
    (void)err;
    free(ctx);
}

static const struct engine_conn_callbacks metrics_http_callbacks = {
    .on_recv = metrics_http_recv,
    .on_timer = metrics_http_timer,
    .on_closed = metrics_http_closed,
};

void *metrics_http_accept(struct daemon_worker *dw, engine_conn_id id)
{
    if (dw->draining)
        return NULL;
    struct metrics_http *c = malloc(sizeof(*c));
    if (!c) {
        log_error("metrics: cannot take a connection: out of memory");
        return NULL;
    }
    c->conn.cb = &metrics_http_callbacks;
    c->dw = dw;
    c->id = id;
    c->len = 0;
    c->answered = false;
    engine_conn_set_timer(dw->w, id, engine_now_ms(dw->w) + METRICS_HTTP_TIMEOUT_MS);
    return c;
}
