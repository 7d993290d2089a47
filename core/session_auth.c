/*
 * core/session_auth.c — the session's side of SMTP AUTH: what a listener offers, the SASL
 * exchange through policy/sasl.h, and what an authentication changes afterwards
 * ({auth_authen} and the mechanism for Received:, the log and relaying).
 *
 * The exchange runs on policy/sasl's helper threads; each answer comes back on this worker
 * (session_auth_answer) and is handed to the parked state machine the way a commit result
 * is. A session that closes with a step in flight lets go of its exchange (sasl_auth_free
 * finishes it), so an answer never finds a freed session.
 */
#include "core/session.h"
#include "core/session_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/runconf.h"
#include "policy/auth_param.h"
#include "policy/sasl.h"
#include "util/log.h"
#include "util/netaddr.h"

struct session_auth {
    struct sasl_auth *sasl;
    char mech[24];
    char *authen; /* sendmail's {auth_authen}: who authenticated; NULL before */
    unsigned bits;
};

int session_auth_configure(struct runconf *rc, char *err, size_t errlen)
{
    const struct config_auth *a = &rc->cfg->auth;
    rc->auth_mechs[0][0] = rc->auth_mechs[1][0] = '\0';
    if (a->mechanisms.n == 0)
        return 0;
    char letters[64] = "";
    for (size_t i = 0; i < a->options.n; i++) {
        size_t n = strlen(letters);
        snprintf(letters + n, sizeof(letters) - n, "%s", a->options.v[i]);
    }
    rc->auth_flags = sasl_option_flags(letters);
    const char **want = calloc(a->mechanisms.n + 1, sizeof(*want));
    if (!want) {
        snprintf(err, errlen, "auth: out of memory");
        return -1;
    }
    for (size_t i = 0; i < a->mechanisms.n; i++)
        want[i] = a->mechanisms.v[i];
    /* Outside TLS only when auth.options is set (an .mc's confAUTH_OPTIONS, 'p' keeping the
     * plaintext mechanisms for TLS, as sendmail does); by default AUTH waits for STARTTLS,
     * so no password ever crosses the network in clear. */
    int r = sasl_offer(want, rc->auth_flags, true, rc->auth_mechs[1], sizeof(rc->auth_mechs[1]),
                       err, errlen);
    if (r == 0 && a->options.n)
        r = sasl_offer(want, rc->auth_flags, false, rc->auth_mechs[0], sizeof(rc->auth_mechs[0]),
                       err, errlen);
    free(want);
    if (r == 0 && !rc->auth_mechs[1][0])
        log_warn("auth: none of auth.mechanisms is offered by the SASL library (check its "
                 "plug-ins and Sendmail.conf's mech_list): AUTH is not offered");
    else if (r == 0)
        log_info("auth: offering %s%s%s", rc->auth_mechs[1],
                 rc->auth_mechs[0][0] ? "; before STARTTLS: " : " (after STARTTLS only)",
                 rc->auth_mechs[0]);
    return r;
}

/* What this listener offers now (io->auth_offer). */
static void session_auth_offer(void *arg, bool tls, struct smtp_auth_offer *o)
{
    struct session *s = arg;
    const struct config *cfg = s->rc->cfg;
    if (s->local || s->listener >= cfg->n_listen) /* the local socket: trusted, no AUTH */
        return;
    const struct config_listener *l = &cfg->listen[s->listener];
    o->mechs = l->auth ? s->rc->auth_mechs[tls] : NULL;
    o->required = l->auth_required;
}

/* "127.0.0.1;25", Cyrus SASL's address form. */
static void session_auth_ipport(const struct sockaddr *sa, char *out, size_t outlen)
{
    char addr[48];
    netaddr_format(sa, addr, sizeof(addr));
    snprintf(out, outlen, "%s;%u", addr, (unsigned)netaddr_port(sa));
}

static void session_auth_answer(void *arg, const struct sasl_result *r);

static struct session_auth *session_auth_get(struct session *s)
{
    if (s->auth)
        return s->auth;
    struct session_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    char rip[64];
    session_auth_ipport((const struct sockaddr *)&s->peer, rip, sizeof(rip));
    struct sasl_auth_settings set = {
        .hostname = s->rc->cfg->hostname,
        .local_ipport = "", /* only Kerberos 4 wants it */
        .remote_ipport = rip,
        .flags = s->rc->auth_flags,
        .tls_bits = session_tls_bits(s),
    };
    a->sasl =
        sasl_auth_new(s->dw->d->sasl, engine_worker_index(s->dw->w), &set, session_auth_answer, s);
    if (!a->sasl) {
        free(a);
        return NULL;
    }
    s->auth = a;
    return a;
}

static void session_auth_step(void *arg, const char *mech, const unsigned char *resp, size_t len,
                              bool has_resp)
{
    struct session *s = arg;
    struct session_auth *a = session_auth_get(s);
    if (!a) {
        log_error("%s: AUTH: out of memory; closing the connection from [%s]", s->qid, s->addr);
        session_close(s);
        return;
    }
    if (mech)
        snprintf(a->mech, sizeof(a->mech), "%s", mech);
    sasl_auth_step(a->sasl, mech, resp, len, has_resp);
}

/* A step's answer, on this worker, outside any call into the state machine. */
static void session_auth_answer(void *arg, const struct sasl_result *r)
{
    struct session *s = arg;
    struct session_auth *a = s->auth;
    char relay[80];
    enum smtp_auth_result res = SMTP_AUTH_TEMPFAIL;
    session_relay(s, relay, sizeof(relay));
    switch (r->status) {
    case SASL_STATUS_CONTINUE:
        res = SMTP_AUTH_CONTINUE;
        break;
    case SASL_STATUS_OK:
        free(a->authen);
        a->authen = strdup(r->authid);
        if (!a->authen)
            break; /* TEMPFAIL: never authenticated without a name */
        a->bits = r->ssf;
        res = SMTP_AUTH_OK;
        /* sendmail's line (srvrsmtp.c) */
        log_info("%s: AUTH=server, relay=%s, authid=%s, mech=%s, bits=%u", s->qid, relay, a->authen,
                 a->mech, a->bits);
        break;
    case SASL_STATUS_FAIL:
        res = SMTP_AUTH_FAIL;
        /* sendmail's words, which fail2ban's stock sendmail-auth filter reads: at info, as
         * a "warning: " tag in front of them would hide them from it */
        log_info("%s: AUTH failure (%s): %s, relay=%s", s->qid, a->mech, r->error, relay);
        break;
    case SASL_STATUS_TEMPFAIL:
        log_warn("%s: AUTH temporary failure (%s): %s, relay=%s", s->qid, a->mech, r->error, relay);
        break;
    }
    if (s->closing)
        return;
    s->in_smtp = true;
    smtp_server_auth_done(s->smtp, res, r->out, r->outlen, engine_now_ms(s->dw->w));
    /* held pipelined input was processed above; receiving may resume */
    engine_conn_resume_recv(s->dw->w, s->id);
    session_after_smtp(s);
}

void session_auth_io(struct session *s)
{
    if (!s->dw->d->sasl)
        return;
    s->io.auth_offer = session_auth_offer;
    /* no auth_abort: a new AUTH starts a new exchange (sasl_auth_step with a mechanism) */
    s->io.auth_step = session_auth_step;
}

void session_auth_free(struct session *s)
{
    if (!s->auth)
        return;
    sasl_auth_free(s->auth->sasl);
    free(s->auth->authen);
    free(s->auth);
    s->auth = NULL;
}

static bool session_auth_done(const struct session *s)
{
    return s->auth && s->auth->authen && smtp_server_authenticated(s->smtp);
}

void session_auth_client(const struct session *s, const char **mech, const char **authen)
{
    bool done = session_auth_done(s);
    *mech = done ? s->auth->mech : NULL;
    *authen = done ? s->auth->authen : NULL;
}

const char *session_auth_proto(const struct session *s, const char *proto)
{
    /* RFC 3848: ESMTPA, ESMTPSA (and RFC 6531's UTF8SMTPA, UTF8SMTPSA) */
    static const char *const with_a[][2] = {{"ESMTP", "ESMTPA"},
                                            {"ESMTPS", "ESMTPSA"},
                                            {"UTF8SMTP", "UTF8SMTPA"},
                                            {"UTF8SMTPS", "UTF8SMTPSA"}};
    if (!session_auth_done(s))
        return proto;
    for (size_t i = 0; i < sizeof(with_a) / sizeof(with_a[0]); i++)
        if (strcmp(proto, with_a[i][0]) == 0)
            return with_a[i][1];
    return proto;
}

const char *session_auth_param(const struct session *s, const char *given, char *out, size_t outlen)
{
    return auth_param_record(given, session_auth_done(s) ? s->auth->authen : NULL, out, outlen);
}

void session_auth_received(const struct session *s, struct buf *hdr)
{
    /* sendmail's Received: line for an authenticated client, between from and by */
    if (session_auth_done(s))
        buf_printf(hdr, "\r\n\t(authenticated bits=%u)", s->auth->bits);
}
