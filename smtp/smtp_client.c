/*
 * smtp/smtp_client.c — the outbound ESMTP client: reading replies, the session (greeting,
 * EHLO/HELO, STARTTLS, QUIT) and the transaction (RSET, MAIL, RCPT, DATA/BDAT).
 *
 * A reply is never stored whole: its lines are checked and folded into one bounded
 * struct smtp_client_reply as they complete (capabilities too), so a hostile server costs
 * at most one partial line (max_reply_line) however much it sends. Every command sent
 * counts one awaited reply; a reply that completes when none is awaited is unsolicited,
 * which is how a server answering ahead of its commands (or injecting replies) is caught
 * in every state with one rule.
 *
 * AUTH is a session step between the last EHLO and READY; the mechanisms' lines are
 * smtp_client_auth.c's, and every buffer that held one is wiped once it is sent.
 *
 * LMTP (RFC 2033) is the same machine with three differences: LHLO for EHLO (and no HELO
 * to fall back to), DATA even when CHUNKING is offered, and after the final dot one reply
 * per accepted recipient instead of one for all.
 */
#include "smtp/smtp_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_addr.h"
#include "smtp/smtp_client_auth.h"
#include "util/buf.h"

enum client_state {
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,  /* STARTTLS sent, waiting for 220 */
    ST_TLS_WAIT,  /* 220 received, the glue is handshaking */
    ST_AUTH,      /* AUTH sent: 334 challenges until 235 */
    ST_IDLE,      /* after READY or DONE */
    ST_RSET,      /* RSET before the next MAIL */
    ST_MAIL,      /* MAIL and RCPT replies (pipelined or one by one) */
    ST_DATA,      /* DATA sent, waiting for 354 */
    ST_BODY,      /* sending the dot-stuffed body */
    ST_DATA_END,  /* final dot sent */
    ST_BDAT,      /* sending a BDAT chunk's octets */
    ST_BDAT_WAIT, /* a chunk sent, waiting for its reply */
    ST_QUIT,
    ST_OVER, /* FAILED or CLOSED: nothing more */
};

struct smtp_client {
    const struct smtp_client_settings *set;
    const struct smtp_client_io *io;
    enum client_state state;
    uint64_t now, deadline;
    size_t max_line;
    unsigned max_lines;
    unsigned awaiting;  /* replies still owed for the commands sent */
    bool discard;       /* after the 220 to STARTTLS: input is untrusted plain text */
    unsigned tls_epoch; /* counts 220s to STARTTLS: the feed that holds one ends there */
    bool waiting_drain; /* long output paused until smtp_client_drained() */
    bool need_rset;     /* MAIL was accepted and the transaction did not end */
    unsigned auth_mech; /* SMTP_AUTH_* being used */
    unsigned auth_step; /* 334 challenges answered */
    bool tls_refused;   /* STARTTLS got 4xx/5xx: READY says so (after AUTH too) */
    struct smtp_client_reply refused;
    struct buf line; /* a partial reply line */
    struct buf out;  /* commands being assembled; empty between calls */
    /* the reply being read */
    unsigned cur_lines;
    char cur_enh_raw[12]; /* the enhanced status as written in the reply, "" = none yet */
    size_t cur_text_len;
    struct smtp_client_reply cur;
    struct smtp_client_caps caps, new_caps;
    /* the transaction */
    const struct smtp_client_msg *msg;
    struct smtp_client_reply *rcpts;    /* outcome per recipient; code 0 = none yet */
    struct smtp_client_reply txn_reply; /* what decides the recipients without their own */
    size_t rcpt_next;                   /* next recipient to send RCPT for */
    size_t rcpt_reply;                  /* next recipient whose reply is awaited */
    bool mail_replied, mail_ok;
    size_t rcpts_final; /* LMTP: recipients before this index have their final reply */
    size_t off;         /* data octets sent (DATA: consumed from the df) */
    size_t chunk_end;   /* BDAT: where the current chunk ends in the df */
    bool at_line_start; /* DATA: next octet starts a line (dot-stuffing) */
    bool pending_cr;    /* DATA: a CR was read, its LF not yet */
    char *scratch;      /* DATA: the stuffed piece being pushed */
};

static const char *const state_waiting_for[] = {
    [ST_GREETING] = "greeting",
    [ST_EHLO] = "EHLO reply",
    [ST_HELO] = "HELO reply",
    [ST_STARTTLS] = "STARTTLS reply",
    [ST_TLS_WAIT] = "TLS handshake",
    [ST_AUTH] = "AUTH reply",
    [ST_IDLE] = "command",
    [ST_RSET] = "RSET reply",
    [ST_MAIL] = "MAIL reply",
    [ST_DATA] = "DATA reply",
    [ST_BODY] = "message data to be written",
    [ST_DATA_END] = "end of data reply",
    [ST_BDAT] = "message data to be written",
    [ST_BDAT_WAIT] = "BDAT reply",
    [ST_QUIT] = "QUIT reply",
    [ST_OVER] = "nothing",
};

static const char *client_waiting_for(const struct smtp_client *c)
{
    if (c->state == ST_EHLO && c->set->lmtp)
        return "LHLO reply";
    return c->state == ST_MAIL && c->mail_replied ? "RCPT reply" : state_waiting_for[c->state];
}

const char *smtp_client_phase_name(enum smtp_client_phase phase)
{
    static const char *const names[] = {
        [SMTP_CLIENT_PHASE_GREETING] = "greeting",
        [SMTP_CLIENT_PHASE_HELO] = "EHLO",
        [SMTP_CLIENT_PHASE_STARTTLS] = "STARTTLS",
        [SMTP_CLIENT_PHASE_AUTH] = "AUTH",
        [SMTP_CLIENT_PHASE_IDLE] = "idle",
        [SMTP_CLIENT_PHASE_RSET] = "RSET",
        [SMTP_CLIENT_PHASE_MAIL] = "MAIL",
        [SMTP_CLIENT_PHASE_RCPT] = "RCPT",
        [SMTP_CLIENT_PHASE_DATA] = "DATA",
        [SMTP_CLIENT_PHASE_DATABLOCK] = "data",
        [SMTP_CLIENT_PHASE_DATAFINAL] = "end of data",
        [SMTP_CLIENT_PHASE_QUIT] = "QUIT",
        [SMTP_CLIENT_PHASE_OVER] = "over",
    };
    return (unsigned)phase < sizeof(names) / sizeof(names[0]) ? names[phase] : "?";
}

enum smtp_client_phase smtp_client_phase(const struct smtp_client *c)
{
    switch (c->state) {
    case ST_GREETING:
        return SMTP_CLIENT_PHASE_GREETING;
    case ST_EHLO:
    case ST_HELO:
        return SMTP_CLIENT_PHASE_HELO;
    case ST_STARTTLS:
    case ST_TLS_WAIT:
        return SMTP_CLIENT_PHASE_STARTTLS;
    case ST_AUTH:
        return SMTP_CLIENT_PHASE_AUTH;
    case ST_RSET:
        return SMTP_CLIENT_PHASE_RSET;
    case ST_MAIL:
        return c->mail_replied ? SMTP_CLIENT_PHASE_RCPT : SMTP_CLIENT_PHASE_MAIL;
    case ST_DATA:
        return SMTP_CLIENT_PHASE_DATA;
    case ST_BODY:
    case ST_BDAT:
        return SMTP_CLIENT_PHASE_DATABLOCK;
    case ST_DATA_END:
    case ST_BDAT_WAIT:
        return SMTP_CLIENT_PHASE_DATAFINAL;
    case ST_QUIT:
        return SMTP_CLIENT_PHASE_QUIT;
    case ST_OVER:
        return SMTP_CLIENT_PHASE_OVER;
    case ST_IDLE:
        break;
    }
    return SMTP_CLIENT_PHASE_IDLE;
}

const struct smtp_client_caps *smtp_client_caps(const struct smtp_client *c)
{
    return &c->caps;
}

uint64_t smtp_client_deadline(const struct smtp_client *c)
{
    return c->deadline;
}

/* ---- replies ------------------------------------------------------------------------ */

static enum smtp_client_outcome outcome_of(int code)
{
    return code >= 500 ? SMTP_CLIENT_PERM : code >= 400 ? SMTP_CLIENT_TEMP : SMTP_CLIENT_OK;
}

/* A reply text is shown (logs, a bounce's Diagnostic-Code, which RFC 3464 keeps ASCII)
 * with its control and non-ASCII octets as '?'. */
static char printable(char ch)
{
    return (unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f ? '?' : ch;
}

static void reply_set_text(struct smtp_client_reply *r, const char *text)
{
    size_t n = 0;
    for (; n < SMTP_CLIENT_TEXT_MAX && text[n]; n++)
        r->text[n] = printable(text[n]);
    r->text[n] = '\0';
}

static void local_reply(struct smtp_client_reply *r, int code, const char *enh, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* A reply this client makes itself, with the code and enhanced status sendmail uses. */
static void local_reply(struct smtp_client_reply *r, int code, const char *enh, const char *fmt,
                        ...)
{
    char text[SMTP_CLIENT_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    memset(r, 0, sizeof(*r));
    r->code = code;
    r->local = true;
    r->outcome = outcome_of(code);
    snprintf(r->enh, sizeof(r->enh), "%s", enh);
    reply_set_text(r, text);
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Length of an RFC 3463 status "c.sss.ddd" of class `cls` at the start of `p` followed by a
 * space or the end, else 0 (sendmail's isenhsc). */
static size_t enh_length(const char *p, size_t n, char cls)
{
    if (n < 5 || p[0] != cls || p[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < n && is_digit(p[i]) && digits < 4) {
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n || p[i] == ' ' ? i : 0;
}

static void reply_append_text(struct smtp_client *c, const char *p, size_t n)
{
    struct smtp_client_reply *r = &c->cur;
    if (n && c->cur_text_len && c->cur_text_len < SMTP_CLIENT_TEXT_MAX)
        r->text[c->cur_text_len++] = ' ';
    for (size_t i = 0; i < n && c->cur_text_len < SMTP_CLIENT_TEXT_MAX; i++)
        r->text[c->cur_text_len++] = printable(p[i]);
    r->text[c->cur_text_len] = '\0';
}

/* One EHLO keyword line (RFC 5321 4.1.1.1: ehlo-keyword *(SP ehlo-param)). */
static void caps_parse_line(struct smtp_client_caps *caps, const char *p, size_t n)
{
    size_t kw = 0;
    while (kw < n && p[kw] != ' ')
        kw++;
    static const struct {
        const char *name;
        size_t offset;
    } flags[] = {
        {"PIPELINING", offsetof(struct smtp_client_caps, pipelining)},
        {"8BITMIME", offsetof(struct smtp_client_caps, eightbitmime)},
        {"SMTPUTF8", offsetof(struct smtp_client_caps, smtputf8)},
        {"DSN", offsetof(struct smtp_client_caps, dsn)},
        {"CHUNKING", offsetof(struct smtp_client_caps, chunking)},
        {"STARTTLS", offsetof(struct smtp_client_caps, starttls)},
        {"ENHANCEDSTATUSCODES", offsetof(struct smtp_client_caps, enhancedstatuscodes)},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strlen(flags[i].name) == kw && strncasecmp(p, flags[i].name, kw) == 0)
            *(bool *)((char *)caps + flags[i].offset) = true;
    /* "AUTH PLAIN LOGIN", or the draft form "AUTH=PLAIN LOGIN" old servers still send */
    if (n >= 4 && strncasecmp(p, "AUTH", 4) == 0 && (n == 4 || p[4] == ' ' || p[4] == '=')) {
        caps->auth_offered = true;
        caps->auth |= smtp_client_auth_offer(p + (n > 4 ? 5 : 4), n > 4 ? n - 5 : 0);
    }
    if (kw == 4 && strncasecmp(p, "SIZE", 4) == 0) {
        caps->size = true;
        caps->max_size = 0;
        size_t i = kw;
        while (i < n && p[i] == ' ')
            i++;
        /* A value that does not fit is as good as no limit. */
        for (; i < n && is_digit(p[i]); i++) {
            unsigned d = (unsigned)(p[i] - '0');
            if (caps->max_size > (UINT64_MAX - d) / 10) {
                caps->max_size = 0;
                break;
            }
            caps->max_size = caps->max_size * 10 + d;
        }
    }
}

static void client_fail(struct smtp_client *c, const struct smtp_client_reply *r, bool temporary);
static void client_protocol_error(struct smtp_client *c, const char *what, const char *p, size_t n);
static void client_reply(struct smtp_client *c);

/* One complete line (without its CRLF). */
static void client_line(struct smtp_client *c, const char *p, size_t n)
{
    if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' || !is_digit(p[2]) ||
        (n > 3 && p[3] != ' ' && p[3] != '-')) {
        client_protocol_error(c, "malformed reply", p, n);
        return;
    }
    int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (c->cur_lines && code != c->cur.code) {
        client_protocol_error(c, "reply code changed within a multi-line reply", p, n);
        return;
    }
    if (++c->cur_lines > c->max_lines) {
        client_protocol_error(c, "too many lines in a reply", p, n);
        return;
    }
    bool more = n > 3 && p[3] == '-';
    const char *text = n > 4 ? p + 4 : p + n;
    size_t tlen = n > 4 ? n - 4 : 0;
    if (c->cur_lines == 1)
        c->cur.code = code;
    else if (c->state == ST_EHLO)
        caps_parse_line(&c->new_caps, text, tlen);
    if (!c->cur_enh_raw[0]) { /* the first line that carries one ("554-host\r\n554 5.7.1") */
        size_t e = enh_length(text, tlen, p[0]);
        memcpy(c->cur_enh_raw, text, e);
        c->cur_enh_raw[e] = '\0';
    }
    size_t e = strlen(c->cur_enh_raw);
    if (e && tlen >= e && memcmp(text, c->cur_enh_raw, e) == 0 && (tlen == e || text[e] == ' ')) {
        text += e;
        tlen -= e;
        while (tlen && *text == ' ') {
            text++;
            tlen--;
        }
    }
    reply_append_text(c, text, tlen);
    if (more)
        return;
    struct smtp_client_reply *r = &c->cur;
    r->local = false;
    r->outcome = outcome_of(code);
    if (c->cur_enh_raw[0])
        memcpy(r->enh, c->cur_enh_raw, sizeof(r->enh));
    else if (p[0] == '3')
        r->enh[0] = '\0';
    else
        snprintf(r->enh, sizeof(r->enh), "%c.0.0", p[0]);
    c->cur_lines = 0;
    c->cur_text_len = 0;
    c->cur_enh_raw[0] = '\0';
    client_reply(c);
}

void smtp_client_feed(struct smtp_client *c, const char *data, size_t len, uint64_t now_ms)
{
    c->now = now_ms;
    /* Even when the glue starts TLS inside the STARTTLS event, what followed the 220 in
     * this plain-text read is never read. */
    unsigned epoch = c->tls_epoch;
    while (len && c->state != ST_OVER && !c->discard && c->tls_epoch == epoch) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) + 1 : len;
        if (c->line.len + take > c->max_line) {
            client_protocol_error(c, "reply line too long", c->line.len ? c->line.data : data,
                                  c->line.len ? c->line.len : take);
            return;
        }
        const char *p = data;
        size_t n = take;
        if (!nl || c->line.len) {
            if (buf_append(&c->line, data, take) != 0) {
                struct smtp_client_reply r;
                local_reply(&r, 451, "4.3.0", "out of memory reading a reply");
                client_fail(c, &r, true);
                return;
            }
            p = c->line.data;
            n = c->line.len;
        }
        data += take;
        len -= take;
        if (!nl)
            return;
        n--; /* the LF */
        if (n && p[n - 1] == '\r')
            n--;
        client_line(c, p, n);
        buf_free(&c->line);
    }
}

/* ---- events and endings ------------------------------------------------------------- */

static void client_emit(struct smtp_client *c, struct smtp_client_event *ev)
{
    ev->phase = smtp_client_phase(c);
    c->io->event(c->io->arg, ev);
}

static void client_arm(struct smtp_client *c, uint32_t timeout_ms)
{
    c->deadline = timeout_ms ? c->now + timeout_ms : 0;
}

static void client_send(struct smtp_client *c, const void *data, size_t len)
{
    c->io->send(c->io->arg, data, len);
}

/* Every recipient without an outcome of its own, or accepted, gets `r` (forced to a
 * temporary outcome when the session broke, since nothing was delivered). LMTP recipients
 * that already had their reply to the data keep it: that delivery happened. */
static size_t client_settle_rcpts(struct smtp_client *c, const struct smtp_client_reply *r,
                                  bool temporary)
{
    size_t accepted = 0;
    for (size_t i = 0; i < c->msg->n_rcpts; i++) {
        struct smtp_client_reply *x = &c->rcpts[i];
        if (i >= c->rcpts_final && (x->code == 0 || x->outcome == SMTP_CLIENT_OK)) {
            *x = *r;
            if (temporary && x->outcome != SMTP_CLIENT_TEMP)
                x->outcome = SMTP_CLIENT_TEMP;
        }
        accepted += x->outcome == SMTP_CLIENT_OK;
    }
    return accepted;
}

static void client_end_transaction(struct smtp_client *c)
{
    free(c->rcpts);
    c->rcpts = NULL;
    free(c->scratch);
    c->scratch = NULL;
    c->msg = NULL;
    c->waiting_drain = false;
}

static void client_over(struct smtp_client *c)
{
    c->state = ST_OVER;
    c->deadline = 0;
    c->awaiting = 0;
    buf_free(&c->line);
    buf_free(&c->out);
}

/* The last event: the client is over before it goes out, so a call from the callback
 * finds it over and does nothing. */
static void client_closed(struct smtp_client *c, const struct smtp_client_reply *r)
{
    struct smtp_client_event ev = {
        .type = SMTP_CLIENT_EV_CLOSED, .phase = smtp_client_phase(c), .reply = r};
    client_over(c);
    c->io->event(c->io->arg, &ev);
}

static void client_fail(struct smtp_client *c, const struct smtp_client_reply *r, bool temporary)
{
    if (c->state == ST_OVER)
        return;
    if (c->state == ST_QUIT) { /* whatever goes wrong after QUIT, the session is closed */
        client_closed(c, r);
        return;
    }
    struct smtp_client_event ev = {.type = SMTP_CLIENT_EV_FAILED,
                                   .phase = smtp_client_phase(c),
                                   .reply = r,
                                   .temporary = temporary};
    struct smtp_client_reply *rcpts = NULL;
    if (c->msg) {
        client_settle_rcpts(c, r, temporary);
        ev.rcpts = rcpts = c->rcpts;
        ev.n_rcpts = c->msg->n_rcpts;
        c->rcpts = NULL;
    }
    client_end_transaction(c);
    client_over(c); /* before the event, as in client_closed */
    c->io->event(c->io->arg, &ev);
    free(rcpts);
}

static void client_protocol_error(struct smtp_client *c, const char *what, const char *p, size_t n)
{
    char shown[81];
    size_t k = n < sizeof(shown) - 1 ? n : sizeof(shown) - 1;
    for (size_t i = 0; i < k; i++) /* a NUL too, which would end the quote */
        shown[i] = printable(p[i]);
    shown[k] = '\0';
    struct smtp_client_reply r;
    local_reply(&r, 451, "4.5.0", "protocol error: %s while waiting for %s: \"%s\"", what,
                client_waiting_for(c), shown);
    client_fail(c, &r, true);
}

/* The transaction is over: every recipient has its outcome. `phase` is the command whose
 * reply decided it (MAIL for a local refusal: it stands for the refused MAIL). */
static void client_done(struct smtp_client *c, const struct smtp_client_reply *r,
                        enum smtp_client_phase phase)
{
    c->txn_reply = *r;
    struct smtp_client_event ev = {.type = SMTP_CLIENT_EV_DONE,
                                   .phase = phase,
                                   .reply = &c->txn_reply,
                                   .n_rcpts = c->msg->n_rcpts,
                                   .dsn = c->caps.dsn};
    ev.n_accepted = client_settle_rcpts(c, r, false);
    struct smtp_client_reply *rcpts = c->rcpts;
    ev.rcpts = rcpts;
    c->rcpts = NULL;
    client_end_transaction(c);
    /* Idle before the event: its callback may start the next transaction or quit. */
    c->state = ST_IDLE;
    c->deadline = 0;
    c->io->event(c->io->arg, &ev);
    free(rcpts);
}

/* ---- session ------------------------------------------------------------------------ */

static void client_command(struct smtp_client *c, enum client_state next, uint32_t timeout,
                           const char *line)
{
    c->state = next;
    c->awaiting++;
    client_arm(c, timeout);
    client_send(c, line, strlen(line));
}

static void client_ehlo(struct smtp_client *c, bool ehlo)
{
    char line[SMTP_DOMAIN_MAX + 16];
    const char *name = c->set->helo_name && *c->set->helo_name ? c->set->helo_name : "localhost";
    const char *verb = c->set->lmtp ? "LHLO" : ehlo ? "EHLO" : "HELO";
    snprintf(line, sizeof(line), "%s %.*s\r\n", verb, SMTP_DOMAIN_MAX, name);
    memset(&c->new_caps, 0, sizeof(c->new_caps));
    client_command(c, ehlo ? ST_EHLO : ST_HELO, c->set->timeouts.helo, line);
}

static void client_ready(struct smtp_client *c)
{
    c->state = ST_IDLE;
    c->deadline = 0;
    struct smtp_client_event ev = {.type = SMTP_CLIENT_EV_READY,
                                   .reply = c->tls_refused ? &c->refused : NULL,
                                   .tls_refused = c->tls_refused};
    client_emit(c, &ev);
}

/* Forgets c->out, which held credentials: wiped before it is freed. */
static void client_wipe_out(struct smtp_client *c)
{
    if (c->out.data)
        explicit_bzero(c->out.data, c->out.cap);
    buf_free(&c->out);
}

/* Sends what c->out holds (credentials among it) and wipes it. */
static void client_flush_secret(struct smtp_client *c)
{
    if (c->out.len)
        client_send(c, c->out.data, c->out.len);
    client_wipe_out(c);
}

/* A failure in AUTH: always temporary (see the header), the reply kept for the log. */
static void client_auth_fail(struct smtp_client *c, const struct smtp_client_reply *r)
{
    struct smtp_client_reply t = *r;
    t.outcome = SMTP_CLIENT_TEMP;
    client_fail(c, &t, true);
}

static void client_auth_local_fail(struct smtp_client *c, const char *why)
{
    struct smtp_client_reply r;
    local_reply(&r, 451, "4.7.0", "AUTH %s with the server failed: %s",
                smtp_client_auth_name(c->auth_mech), why);
    client_fail(c, &r, true);
}

/* Sends the AUTH line just built into c->out (`rc` is its builder's result), or on -1 fails
 * with `why`. Each reply in AUTH has the helo timeout. */
static void client_auth_send(struct smtp_client *c, int rc, const char *why)
{
    if (rc < 0) {
        client_wipe_out(c);
        client_auth_local_fail(c, why);
        return;
    }
    c->awaiting++;
    client_arm(c, c->set->timeouts.helo);
    client_flush_secret(c);
}

/* After the last EHLO: AUTH when there are credentials and a mechanism in common, else
 * READY. */
static void client_auth_or_ready(struct smtp_client *c)
{
    const struct smtp_client_auth *a = c->set->auth;
    unsigned mech = a && !c->set->lmtp ? smtp_client_auth_choose(a, c->caps.auth) : 0;
    if (!mech) {
        client_ready(c);
        return;
    }
    c->state = ST_AUTH; /* a failure from here on is AUTH's */
    if (!c->caps.in_tls && !a->allow_plaintext) {
        struct smtp_client_reply r;
        local_reply(&r, 451, "4.7.0",
                    "AUTH credentials are not sent over a connection without TLS");
        client_fail(c, &r, true);
        return;
    }
    const char *why = NULL;
    c->auth_mech = mech;
    c->auth_step = 0;
    c->caps.auth_mech = smtp_client_auth_name(mech);
    client_auth_send(c, smtp_client_auth_start(a, mech, &c->out, &why), why);
}

static void client_auth_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
    if (r->code == 235) {
        c->caps.authenticated = true;
        client_ready(c);
        return;
    }
    if (r->code != 334) {
        client_auth_fail(c, r);
        return;
    }
    const char *why = NULL;
    int rc = smtp_client_auth_respond(c->set->auth, c->auth_mech, c->auth_step++, r->text, &c->out,
                                      &why);
    client_auth_send(c, rc, why);
}

struct smtp_client *smtp_client_new(const struct smtp_client_settings *settings,
                                    const struct smtp_client_io *io, uint64_t now_ms)
{
    struct smtp_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->set = settings;
    c->io = io;
    c->now = now_ms;
    c->max_line = settings->max_reply_line ? settings->max_reply_line : SMTP_CLIENT_MAX_REPLY_LINE;
    c->max_lines =
        settings->max_reply_lines ? settings->max_reply_lines : SMTP_CLIENT_MAX_REPLY_LINES;
    buf_init(&c->line, c->max_line);
    buf_init(&c->out, 0);
    c->state = ST_GREETING;
    c->awaiting = 1;
    client_arm(c, settings->timeouts.initial);
    return c;
}

void smtp_client_free(struct smtp_client *c)
{
    if (!c)
        return;
    client_end_transaction(c);
    buf_free(&c->line);
    buf_free(&c->out);
    free(c);
}

void smtp_client_tls_started(struct smtp_client *c, uint64_t now_ms)
{
    if (c->state != ST_TLS_WAIT)
        return;
    c->now = now_ms;
    c->discard = false;
    memset(&c->caps, 0, sizeof(c->caps));
    c->caps.in_tls = true;
    client_ehlo(c, true);
}

static void client_session_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
    int cls = r->code / 100;
    switch (c->state) {
    case ST_GREETING:
        if (cls == 2)
            client_ehlo(c, true);
        else if (cls == 3)
            client_protocol_error(c, "unexpected greeting", r->text, strlen(r->text));
        else
            client_fail(c, r, cls == 4);
        return;
    case ST_EHLO:
        if (cls == 2) {
            bool in_tls = c->caps.in_tls;
            c->caps = c->new_caps;
            c->caps.esmtp = true;
            c->caps.in_tls = in_tls;
            if (!in_tls && c->set->starttls && c->caps.starttls)
                client_command(c, ST_STARTTLS, c->set->timeouts.starttls, "STARTTLS\r\n");
            else
                client_auth_or_ready(c);
        } else if (cls == 5 && !c->set->lmtp) { /* RFC 5321 3.2: an old server; HELO */
            client_ehlo(c, false);
        } else if (cls == 4 || cls == 5) { /* LMTP has no HELO (RFC 2033 4.1) */
            client_fail(c, r, cls == 4);
        } else {
            client_protocol_error(c, "unexpected reply to EHLO", r->text, strlen(r->text));
        }
        return;
    case ST_HELO:
        if (cls == 2) {
            bool in_tls = c->caps.in_tls;
            memset(&c->caps, 0, sizeof(c->caps));
            c->caps.in_tls = in_tls;
            client_ready(c);
        } else if (cls == 3) {
            client_protocol_error(c, "unexpected reply to HELO", r->text, strlen(r->text));
        } else {
            client_fail(c, r, cls == 4);
        }
        return;
    case ST_STARTTLS:
        if (cls == 2) {
            /* RFC 3207 5: whatever follows the 220 in plain text could be a man in the
             * middle's; it is dropped, never read as a reply after the handshake. */
            c->state = ST_TLS_WAIT;
            c->discard = true;
            c->tls_epoch++;
            buf_free(&c->line);
            client_arm(c, c->set->timeouts.starttls);
            struct smtp_client_event ev = {.type = SMTP_CLIENT_EV_STARTTLS};
            client_emit(c, &ev);
        } else if (cls == 3) {
            client_protocol_error(c, "unexpected reply to STARTTLS", r->text, strlen(r->text));
        } else {
            c->tls_refused = true;
            c->refused = *r;
            client_auth_or_ready(c);
        }
        return;
    case ST_AUTH:
        client_auth_reply(c, r);
        return;
    case ST_QUIT:
        client_closed(c, r);
        return;
    default:
        return;
    }
}

void smtp_client_quit(struct smtp_client *c, uint64_t now_ms)
{
    c->now = now_ms;
    if (c->state == ST_OVER || c->state == ST_QUIT)
        return;
    if (c->state != ST_IDLE) { /* the transaction's memory goes with smtp_client_free */
        client_closed(c, NULL);
        return;
    }
    client_command(c, ST_QUIT, c->set->timeouts.quit, "QUIT\r\n");
}

void smtp_client_eof(struct smtp_client *c, uint64_t now_ms)
{
    c->now = now_ms;
    if (c->state == ST_OVER)
        return;
    if (c->state == ST_QUIT) {
        client_closed(c, NULL);
        return;
    }
    struct smtp_client_reply r;
    if (c->state == ST_IDLE)
        local_reply(&r, 421, "4.4.2", "connection closed by the server");
    else
        local_reply(&r, 421, "4.4.2", "connection closed by the server while waiting for %s",
                    client_waiting_for(c));
    client_fail(c, &r, true);
}

void smtp_client_tick(struct smtp_client *c, uint64_t now_ms)
{
    if (c->state == ST_OVER || !c->deadline || now_ms < c->deadline)
        return;
    c->now = now_ms;
    if (c->state == ST_QUIT) {
        client_closed(c, NULL);
        return;
    }
    struct smtp_client_reply r;
    if (c->state == ST_BODY || c->state == ST_BDAT)
        local_reply(&r, 451, "4.4.2", "timeout writing message data");
    else
        local_reply(&r, 451, "4.4.2", "timeout waiting for %s", client_waiting_for(c));
    client_fail(c, &r, true);
}

/* ---- transaction -------------------------------------------------------------------- */

static bool text_is_clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* ORCPT is "addr-type;xtext" (RFC 3461 4.2); anything else is left out rather than sent. */
static bool orcpt_valid(const char *s)
{
    const char *semi = strchr(s, ';');
    if (!semi || semi == s || strlen(s) > SMTP_ORCPT_MAX)
        return false;
    for (const char *p = s; p < semi; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit(*p) || *p == '-'))
            return false;
    return smtp_xtext_valid(semi + 1, strlen(semi + 1));
}

static int client_append_rcpt(struct smtp_client *c, const struct smtp_client_rcpt *r)
{
    int rc = buf_printf(&c->out, "RCPT TO:<%s>", r->addr);
    if (c->caps.dsn && r->notify) {
        if (r->notify & SMTP_NOTIFY_NEVER) {
            rc |= buf_printf(&c->out, " NOTIFY=NEVER");
        } else {
            static const struct {
                unsigned bit;
                const char *name;
            } kinds[] = {{SMTP_NOTIFY_SUCCESS, "SUCCESS"},
                         {SMTP_NOTIFY_FAILURE, "FAILURE"},
                         {SMTP_NOTIFY_DELAY, "DELAY"}};
            const char *sep = " NOTIFY=";
            for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (r->notify & kinds[i].bit) {
                    rc |= buf_printf(&c->out, "%s%s", sep, kinds[i].name);
                    sep = ",";
                }
        }
    }
    if (c->caps.dsn && r->orcpt && orcpt_valid(r->orcpt))
        rc |= buf_printf(&c->out, " ORCPT=%s", r->orcpt);
    return rc | buf_append(&c->out, "\r\n", 2);
}

static size_t client_next_rcpt(const struct smtp_client *c, size_t i)
{
    while (i < c->msg->n_rcpts && c->rcpts[i].code != 0) /* refused before sending */
        i++;
    return i;
}

static void client_out_of_memory(struct smtp_client *c)
{
    buf_free(&c->out);
    struct smtp_client_reply r;
    local_reply(&r, 451, "4.3.0", "out of memory");
    client_fail(c, &r, true);
}

/* Sends what is assembled in c->out and forgets it. */
static void client_flush(struct smtp_client *c)
{
    if (c->out.len)
        client_send(c, c->out.data, c->out.len);
    buf_free(&c->out);
}

/* RCPT commands: with PIPELINING as many as fit in one push (the rest after drained),
 * else the next one only. */
static void client_push_rcpts(struct smtp_client *c)
{
    if (c->mail_replied && !c->mail_ok) /* a refused MAIL: the rest would be refused too */
        return;
    do {
        size_t i = client_next_rcpt(c, c->rcpt_next);
        if (i >= c->msg->n_rcpts)
            break;
        if (client_append_rcpt(c, &c->msg->rcpts[i]) != 0) {
            client_out_of_memory(c);
            return;
        }
        c->awaiting++;
        c->rcpt_next = i + 1;
    } while (c->caps.pipelining && c->out.len < SMTP_CLIENT_PUSH_MAX);
    c->waiting_drain = client_next_rcpt(c, c->rcpt_next) < c->msg->n_rcpts && c->caps.pipelining;
    client_flush(c);
}

/* RFC 4954 5: "<>" or the xtext of a mailbox, as the server side accepts it. */
static bool auth_param_valid(const char *v)
{
    size_t n = strlen(v);
    return strcmp(v, "<>") == 0 || (n && n <= SMTP_AUTH_PARAM_MAX && smtp_xtext_valid(v, n));
}

static void client_mail(struct smtp_client *c)
{
    const struct smtp_client_msg *m = c->msg;
    int rc = buf_printf(&c->out, "MAIL FROM:<%s>", m->sender);
    if (c->caps.size)
        rc |= buf_printf(&c->out, " SIZE=%zu", m->len);
    if (c->caps.eightbitmime && (m->body == 7 || m->body == 8))
        rc |= buf_printf(&c->out, " BODY=%s", m->body == 8 ? "8BITMIME" : "7BIT");
    if (m->smtputf8)
        rc |= buf_printf(&c->out, " SMTPUTF8");
    if (c->caps.dsn && (m->dsn_ret == 1 || m->dsn_ret == 2))
        rc |= buf_printf(&c->out, " RET=%s", m->dsn_ret == 1 ? "FULL" : "HDRS");
    if (c->caps.dsn && m->envid && *m->envid && strlen(m->envid) <= SMTP_ENVID_MAX &&
        smtp_xtext_valid(m->envid, strlen(m->envid)))
        rc |= buf_printf(&c->out, " ENVID=%s", m->envid);
    if (c->caps.auth_offered && m->auth && auth_param_valid(m->auth))
        rc |= buf_printf(&c->out, " AUTH=%s", m->auth);
    rc |= buf_append(&c->out, "\r\n", 2);
    if (rc != 0) {
        client_out_of_memory(c);
        return;
    }
    c->state = ST_MAIL;
    c->awaiting++;
    client_arm(c, c->set->timeouts.mail);
    if (c->caps.pipelining)
        client_push_rcpts(c); /* MAIL and the RCPTs leave in one write */
    else
        client_flush(c);
}

static void client_push_body(struct smtp_client *c);

/* The first recipient from index `i` on whose RCPT was accepted; n_rcpts if none. */
static size_t client_next_accepted(const struct smtp_client *c, size_t i)
{
    while (i < c->msg->n_rcpts && !(c->rcpts[i].code != 0 && c->rcpts[i].outcome == SMTP_CLIENT_OK))
        i++;
    return i;
}

static unsigned client_count_accepted(const struct smtp_client *c)
{
    unsigned n = 0;
    for (size_t i = client_next_accepted(c, 0); i < c->msg->n_rcpts;
         i = client_next_accepted(c, i + 1))
        n++;
    return n;
}

static void client_start_bdat_chunk(struct smtp_client *c)
{
    size_t n = c->msg->len - c->off;
    bool last = n <= SMTP_CLIENT_BDAT_CHUNK;
    if (!last)
        n = SMTP_CLIENT_BDAT_CHUNK;
    c->chunk_end = c->off + n;
    char line[64];
    snprintf(line, sizeof(line), "BDAT %zu%s\r\n", n, last ? " LAST" : "");
    c->state = ST_BDAT;
    c->awaiting++;
    client_send(c, line, strlen(line));
    client_push_body(c);
}

static void client_start_data(struct smtp_client *c)
{
    /* LMTP's BDAT LAST would owe a reply per recipient, its other chunks one each; DATA
     * keeps that to one place (client_lmtp_data_reply) */
    if (c->caps.chunking && !c->set->lmtp) {
        client_start_bdat_chunk(c);
        return;
    }
    client_command(c, ST_DATA, c->set->timeouts.datainit, "DATA\r\n");
}

/* DATA content: dot-stuffed, every line ending CRLF, into the scratch buffer. Returns true
 * when the whole df is in it (with the final CRLF and the terminating dot). */
static bool client_stuff(struct smtp_client *c, size_t *outlen)
{
    const char *d = c->msg->data;
    size_t len = c->msg->len, o = 0;
    char *s = c->scratch;
    /* Each input octet writes at most 4 ("\r\n.." after a bare CR); the end 5. */
    while (c->off < len && o + 4 <= SMTP_CLIENT_PUSH_MAX) {
        char ch = d[c->off++];
        if (c->pending_cr) {
            c->pending_cr = false;
            s[o++] = '\r';
            s[o++] = '\n';
            c->at_line_start = true;
            if (ch == '\n')
                continue;
        }
        if (ch == '\r') {
            c->pending_cr = true;
        } else if (ch == '\n') { /* a bare LF: never sent bare (RFC 5321 2.3.8) */
            s[o++] = '\r';
            s[o++] = '\n';
            c->at_line_start = true;
        } else {
            if (c->at_line_start && ch == '.')
                s[o++] = '.';
            s[o++] = ch;
            c->at_line_start = false;
        }
    }
    if (c->off < len) {
        *outlen = o;
        return false;
    }
    if (c->pending_cr || !c->at_line_start) {
        s[o++] = '\r';
        s[o++] = '\n';
    }
    c->pending_cr = false;
    memcpy(s + o, ".\r\n", 3);
    *outlen = o + 3;
    return true;
}

/* Pushes the next piece of data (DATA content or the current BDAT chunk). */
static void client_push_body(struct smtp_client *c)
{
    c->waiting_drain = false;
    if (c->state == ST_BODY) {
        size_t n;
        bool end = client_stuff(c, &n);
        if (end) {
            c->state = ST_DATA_END;
            c->awaiting += c->set->lmtp ? client_count_accepted(c) : 1;
            client_arm(c, c->set->timeouts.datafinal);
        } else {
            c->waiting_drain = true;
            client_arm(c, c->set->timeouts.datablock);
        }
        client_send(c, c->scratch, n);
        return;
    }
    size_t n = c->chunk_end - c->off;
    if (n > SMTP_CLIENT_PUSH_MAX)
        n = SMTP_CLIENT_PUSH_MAX;
    const char *p = c->msg->data + c->off;
    c->off += n;
    if (c->off == c->chunk_end) {
        c->state = ST_BDAT_WAIT;
        client_arm(c, c->set->timeouts.datafinal);
    } else {
        c->waiting_drain = true;
        client_arm(c, c->set->timeouts.datablock);
    }
    if (n)
        client_send(c, p, n);
}

void smtp_client_drained(struct smtp_client *c, uint64_t now_ms)
{
    if (!c->waiting_drain)
        return;
    c->now = now_ms;
    c->waiting_drain = false;
    if (c->state == ST_MAIL)
        client_push_rcpts(c);
    else if (c->state == ST_BODY || c->state == ST_BDAT)
        client_push_body(c);
}

/* MAIL's and RCPT's replies, in the order the commands went. */
static void client_mail_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
    int cls = r->code / 100;
    if (cls == 3) {
        client_protocol_error(c, "unexpected reply to MAIL or RCPT", r->text, strlen(r->text));
        return;
    }
    if (!c->mail_replied) {
        c->mail_replied = true;
        c->mail_ok = cls == 2;
        if (c->mail_ok)
            c->need_rset = true;
        else
            c->txn_reply = *r;
    } else {
        size_t i = client_next_rcpt(c, c->rcpt_reply);
        c->rcpt_reply = i + 1;
        if (c->mail_ok) { /* after a refused MAIL the RCPT replies mean nothing */
            c->rcpts[i] = *r;
            if (cls != 2)
                c->txn_reply = *r;
            struct smtp_client_event ev = {
                .type = SMTP_CLIENT_EV_RCPT, .rcpt_index = i, .reply = &c->rcpts[i]};
            client_emit(c, &ev);
            if (c->state != ST_MAIL)
                return;
        }
    }
    if (c->awaiting) {
        client_arm(c, c->set->timeouts.rcpt);
        return;
    }
    if (!c->mail_ok) { /* RCPTs not sent yet never will be */
        client_done(c, &c->txn_reply, SMTP_CLIENT_PHASE_MAIL);
        return;
    }
    if (client_next_rcpt(c, c->rcpt_next) < c->msg->n_rcpts) {
        client_arm(c, c->set->timeouts.rcpt);
        if (!c->waiting_drain) /* else smtp_client_drained() pushes the rest */
            client_push_rcpts(c);
        return;
    }
    for (size_t i = 0; i < c->msg->n_rcpts; i++)
        if (c->rcpts[i].outcome == SMTP_CLIENT_OK && c->rcpts[i].code) {
            client_start_data(c);
            return;
        }
    client_done(c, &c->txn_reply, SMTP_CLIENT_PHASE_RCPT); /* none accepted: the last refusal */
}

/* RFC 2033 4.2: after the final dot one reply per accepted recipient, in RCPT order. Each is
 * final at once: if the session breaks before the rest, the recipients already answered
 * keep their reply (a 250 there was a delivery; retrying it would deliver twice). */
static void client_lmtp_data_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
    /* within bounds: `awaiting` counted the accepted recipients, and a reply beyond it is
     * unsolicited (client_reply) */
    size_t i = client_next_accepted(c, c->rcpts_final);
    c->rcpts[i] = *r;
    c->rcpts_final = i + 1;
    if (c->awaiting) {
        client_arm(c, c->set->timeouts.datafinal);
        return;
    }
    c->rcpts_final = c->msg->n_rcpts;
    client_done(c, r, SMTP_CLIENT_PHASE_DATAFINAL);
}

static void client_data_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
    int cls = r->code / 100;
    switch (c->state) {
    case ST_DATA:
        if (r->code == 354) {
            c->state = ST_BODY;
            c->at_line_start = true;
            c->pending_cr = false;
            c->scratch = malloc(SMTP_CLIENT_PUSH_MAX + 8);
            if (!c->scratch) {
                client_out_of_memory(c);
                return;
            }
            client_push_body(c);
        } else if (cls == 4 || cls == 5) {
            client_done(c, r, SMTP_CLIENT_PHASE_DATA);
        } else {
            client_protocol_error(c, "unexpected reply to DATA", r->text, strlen(r->text));
        }
        return;
    case ST_DATA_END:
        if (cls == 3) {
            client_protocol_error(c, "unexpected reply to the end of data", r->text,
                                  strlen(r->text));
            return;
        }
        c->need_rset = false; /* the final reply ends the transaction either way */
        if (c->set->lmtp)
            client_lmtp_data_reply(c, r);
        else
            client_done(c, r, SMTP_CLIENT_PHASE_DATAFINAL);
        return;
    case ST_BDAT:
        /* RFC 3030 2: the reply comes after the chunk's last octet; one before it
         * leaves both sides unsure where the chunk ends */
        client_protocol_error(c, "reply before the end of a BDAT chunk", r->text, strlen(r->text));
        return;
    case ST_BDAT_WAIT:
        if (cls == 2) {
            if (c->off < c->msg->len) {
                client_start_bdat_chunk(c);
                return;
            }
            c->need_rset = false;
            client_done(c, r, SMTP_CLIENT_PHASE_DATAFINAL);
        } else if (cls == 4 || cls == 5) {
            /* the chunk's refusal ends the message; RSET before the next one */
            c->need_rset = c->off < c->msg->len;
            client_done(c, r, SMTP_CLIENT_PHASE_DATAFINAL);
        } else {
            client_protocol_error(c, "unexpected reply to BDAT", r->text, strlen(r->text));
        }
        return;
    default:
        return;
    }
}

static void client_reply(struct smtp_client *c)
{
    struct smtp_client_reply r = c->cur;
    memset(&c->cur, 0, sizeof(c->cur));
    if (c->awaiting == 0) {
        if (r.code == 421) {
            client_fail(c, &r, true);
            return;
        }
        char text[SMTP_CLIENT_TEXT_MAX + 8];
        snprintf(text, sizeof(text), "%d %s", r.code, r.text);
        client_protocol_error(c, "unsolicited reply", text, strlen(text));
        return;
    }
    c->awaiting--;
    if (r.code == 421 && c->state != ST_QUIT) { /* RFC 5321 3.8: the server is closing */
        client_fail(c, &r, true);
        return;
    }
    switch (c->state) {
    case ST_RSET:
        if (r.code / 100 == 2) {
            c->need_rset = false;
            client_mail(c);
        } else {
            client_fail(c, &r, true);
        }
        return;
    case ST_MAIL:
        client_mail_reply(c, &r);
        return;
    case ST_DATA:
    case ST_DATA_END:
    case ST_BDAT:
    case ST_BDAT_WAIT:
        client_data_reply(c, &r);
        return;
    default:
        client_session_reply(c, &r);
        return;
    }
}

/* Refusals decided here, without a command: they need no round trip to be certain. */
static bool client_refuse_locally(struct smtp_client *c)
{
    const struct smtp_client_msg *m = c->msg;
    struct smtp_client_reply r;
    if (c->caps.size && c->caps.max_size && m->len > c->caps.max_size)
        local_reply(&r, 552, "5.3.4", "Message is too large; %llu bytes max",
                    (unsigned long long)c->caps.max_size);
    else if (m->smtputf8 && !c->caps.smtputf8)
        local_reply(&r, 553, "5.6.7", "Remote server does not support SMTPUTF8");
    else if (!m->sender || !text_is_clean(m->sender))
        local_reply(&r, 553, "5.1.7", "Bad sender address syntax");
    else
        return false;
    client_done(c, &r, SMTP_CLIENT_PHASE_MAIL);
    return true;
}

int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg, uint64_t now_ms)
{
    if (c->state != ST_IDLE || !msg || msg->n_rcpts == 0 || (!msg->data && msg->len))
        return -1;
    c->rcpts = calloc(msg->n_rcpts, sizeof(*c->rcpts));
    if (!c->rcpts)
        return -1;
    c->now = now_ms;
    c->msg = msg;
    c->rcpt_next = c->rcpt_reply = c->rcpts_final = 0;
    c->mail_replied = c->mail_ok = false;
    c->off = 0;
    if (client_refuse_locally(c))
        return 0;
    size_t usable = 0;
    for (size_t i = 0; i < msg->n_rcpts; i++) {
        if (msg->rcpts[i].addr && text_is_clean(msg->rcpts[i].addr))
            usable++;
        else
            local_reply(&c->rcpts[i], 553, "5.1.3", "Bad recipient address syntax");
    }
    if (usable == 0) {
        client_done(c, &c->rcpts[msg->n_rcpts - 1], SMTP_CLIENT_PHASE_RCPT);
        return 0;
    }
    if (c->need_rset)
        client_command(c, ST_RSET, c->set->timeouts.rset, "RSET\r\n");
    else
        client_mail(c);
    return 0;
}
