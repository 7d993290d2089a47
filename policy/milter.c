#include "policy/milter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/milter_proto.h"

/* What ringmail offers: every action it can apply, and every protocol bit of version 6
 * except the larger packet sizes (sendmail's SMFI_CURR_ACTS / SMFI_CURR_PROT). */
#define MILTER_OFFER_ACTIONS                                                                       \
    (MILTER_ACT_ADDHDRS | MILTER_ACT_CHGBODY | MILTER_ACT_ADDRCPT | MILTER_ACT_DELRCPT |           \
     MILTER_ACT_CHGHDRS | MILTER_ACT_QUARANTINE | MILTER_ACT_CHGFROM | MILTER_ACT_ADDRCPT_PAR |    \
     MILTER_ACT_SETSYMLIST)
#define MILTER_OFFER_PROTOCOL                                                                      \
    (MILTER_P_NOCONNECT | MILTER_P_NOHELO | MILTER_P_NOMAIL | MILTER_P_NORCPT | MILTER_P_NOBODY |  \
     MILTER_P_NOHDRS | MILTER_P_NOEOH | MILTER_P_NR_HDR | MILTER_P_NOUNKNOWN | MILTER_P_NODATA |   \
     MILTER_P_SKIP | MILTER_P_RCPT_REJ | MILTER_P_NR_CONN | MILTER_P_NR_HELO | MILTER_P_NR_MAIL |  \
     MILTER_P_NR_RCPT | MILTER_P_NR_DATA | MILTER_P_NR_UNKN | MILTER_P_NR_EOH | MILTER_P_NR_BODY | \
     MILTER_P_HDR_LEADSPC)

static const char *const milter_def_connect[] = {"j", "_", "{daemon_name}", "{if_name}",
                                                 "{if_addr}"};
static const char *const milter_def_helo[] = {"{tls_version}", "{cipher}", "{cipher_bits}",
                                              "{cert_subject}", "{cert_issuer}"};
static const char *const milter_def_envfrom[] = {"i",           "{auth_type}",   "{auth_authen}",
                                                 "{auth_ssf}",  "{auth_author}", "{mail_mailer}",
                                                 "{mail_host}", "{mail_addr}"};
static const char *const milter_def_envrcpt[] = {"{rcpt_mailer}", "{rcpt_host}", "{rcpt_addr}"};
static const char *const milter_def_eom[] = {"{msg_id}"};

#define MILTER_LIST(a)                                                                             \
    {                                                                                              \
        a, sizeof(a) / sizeof(a[0])                                                                \
    }
const struct milter_macro_list milter_macros_default[MILTER_MACROS_N] = {
    [MILTER_MACROS_CONNECT] = MILTER_LIST(milter_def_connect),
    [MILTER_MACROS_HELO] = MILTER_LIST(milter_def_helo),
    [MILTER_MACROS_ENVFROM] = MILTER_LIST(milter_def_envfrom),
    [MILTER_MACROS_ENVRCPT] = MILTER_LIST(milter_def_envrcpt),
    [MILTER_MACROS_EOM] = MILTER_LIST(milter_def_eom),
};

enum milter_step {
    MILTER_ST_OPTNEG,
    MILTER_ST_CONNECT,
    MILTER_ST_HELO,
    MILTER_ST_MAIL,
    MILTER_ST_RCPT,
    MILTER_ST_DATA,
    MILTER_ST_HEADER,
    MILTER_ST_EOH,
    MILTER_ST_BODY,
    MILTER_ST_EOM,
    MILTER_ST_UNKNOWN,
};

struct milter_step_def {
    char cmd;
    uint32_t no, nr; /* the SMFIP_NO* flag that disables it, the SMFIP_NR* one */
    int macros;      /* enum milter_macro_step, or -1: sendmail sends none */
    bool msg;        /* part of a message: not sent once the filter decided for it */
    const char *name;
};

static const struct milter_step_def milter_steps[] = {
    [MILTER_ST_OPTNEG] = {MILTER_CMD_OPTNEG, 0, 0, -1, false, "negotiate"},
    [MILTER_ST_CONNECT] = {MILTER_CMD_CONNECT, MILTER_P_NOCONNECT, MILTER_P_NR_CONN,
                           MILTER_MACROS_CONNECT, false, "connect"},
    [MILTER_ST_HELO] = {MILTER_CMD_HELO, MILTER_P_NOHELO, MILTER_P_NR_HELO, MILTER_MACROS_HELO,
                        false, "helo"},
    [MILTER_ST_MAIL] = {MILTER_CMD_MAIL, MILTER_P_NOMAIL, MILTER_P_NR_MAIL, MILTER_MACROS_ENVFROM,
                        true, "mail"},
    [MILTER_ST_RCPT] = {MILTER_CMD_RCPT, MILTER_P_NORCPT, MILTER_P_NR_RCPT, MILTER_MACROS_ENVRCPT,
                        true, "rcpt"},
    [MILTER_ST_DATA] = {MILTER_CMD_DATA, MILTER_P_NODATA, MILTER_P_NR_DATA, MILTER_MACROS_DATA,
                        true, "data"},
    [MILTER_ST_HEADER] = {MILTER_CMD_HEADER, MILTER_P_NOHDRS, MILTER_P_NR_HDR, -1, true, "header"},
    [MILTER_ST_EOH] = {MILTER_CMD_EOH, MILTER_P_NOEOH, MILTER_P_NR_EOH, MILTER_MACROS_EOH, true,
                       "eoh"},
    [MILTER_ST_BODY] = {MILTER_CMD_BODY, MILTER_P_NOBODY, MILTER_P_NR_BODY, -1, true, "body"},
    [MILTER_ST_EOM] = {MILTER_CMD_BODYEOB, 0, 0, MILTER_MACROS_EOM, true, "eom"},
    [MILTER_ST_UNKNOWN] = {MILTER_CMD_UNKNOWN, MILTER_P_NOUNKNOWN, MILTER_P_NR_UNKN, -1, true,
                           "unknown"},
};

/* SMFIR_SETSYMLIST's stage numbers (SMFIM_*) in this module's order. */
static const int milter_sym_stage[] = {
    [MILTER_SYM_CONNECT] = MILTER_MACROS_CONNECT, [MILTER_SYM_HELO] = MILTER_MACROS_HELO,
    [MILTER_SYM_ENVFROM] = MILTER_MACROS_ENVFROM, [MILTER_SYM_ENVRCPT] = MILTER_MACROS_ENVRCPT,
    [MILTER_SYM_DATA] = MILTER_MACROS_DATA,       [MILTER_SYM_EOM] = MILTER_MACROS_EOM,
    [MILTER_SYM_EOH] = MILTER_MACROS_EOH,
};

enum milter_state { MILTER_S_NEW, MILTER_S_IDLE, MILTER_S_WAIT, MILTER_S_FAILED, MILTER_S_QUIT };

struct milter_symlist {
    bool set;
    char *store; /* the names, NUL-separated in place */
    const char **names;
    struct milter_macro_list list;
};

struct milter {
    const struct milter_filter *f;
    const struct milter_macro_list *lists;
    struct milter_symlist sym[MILTER_MACROS_N];
    milter_macro_fn macro;
    void *macro_arg;
    size_t max_mods;

    enum milter_state state;
    enum milter_step waiting;
    uint32_t version, actions, protocol;
    bool conn_done; /* decided for the connection: asked nothing more */
    bool msg_done;  /* decided for this message: asked nothing more until the next */
    bool in_msg;    /* a message is open at the filter (told ABORT if it ends early) */
    bool skip_body;

    struct buf in; /* one partial packet from the filter */
    char *reply;

    struct milter_mod *mods;
    size_t n_mods, cap_mods, mods_bytes;
    struct buf body;
    bool body_replaced;

    char why[128];
};

static void milter_fail(struct milter *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void milter_fail(struct milter *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    m->state = MILTER_S_FAILED;
    buf_free(&m->in);
}

struct milter *milter_new(const struct milter_filter *f, const struct milter_macro_list *lists,
                          milter_macro_fn macro, void *macro_arg, size_t max_mods)
{
    struct milter *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->f = f;
    m->lists = lists ? lists : milter_macros_default;
    m->macro = macro;
    m->macro_arg = macro_arg;
    m->max_mods = max_mods;
    buf_init(&m->in, MILTER_PROTO_HDR_LEN + MILTER_PROTO_MAX_LEN);
    buf_init(&m->body, 0);
    return m;
}

void milter_mods_reset(struct milter *m)
{
    for (size_t i = 0; i < m->n_mods; i++) {
        free((char *)m->mods[i].name);
        free((char *)m->mods[i].value);
    }
    free(m->mods);
    m->mods = NULL;
    m->n_mods = m->cap_mods = m->mods_bytes = 0;
    buf_free(&m->body);
    m->body_replaced = false;
}

void milter_free(struct milter *m)
{
    if (!m)
        return;
    milter_mods_reset(m);
    for (size_t i = 0; i < MILTER_MACROS_N; i++) {
        free(m->sym[i].store);
        free(m->sym[i].names);
    }
    buf_free(&m->in);
    free(m->reply);
    free(m);
}

const char *milter_error(const struct milter *m)
{
    return m->why;
}

const struct milter_filter *milter_filter_of(const struct milter *m)
{
    return m->f;
}

uint32_t milter_actions(const struct milter *m)
{
    return m->actions;
}

uint32_t milter_protocol(const struct milter *m)
{
    return m->protocol;
}

static bool milter_put_str(struct buf *out, const char *s)
{
    return buf_append(out, s, strlen(s) + 1) == 0;
}

/* sendmail sends a step's 'D' packet whenever the list is not empty, even with no value
 * defined: libmilter replaces the stage's macros with what it gets, so stale values from
 * an earlier message do not survive. */
static bool milter_put_macros(struct milter *m, struct buf *out, int stage, char cmd)
{
    const struct milter_macro_list *l = m->sym[stage].set ? &m->sym[stage].list : &m->lists[stage];
    if (l->n == 0)
        return true;
    long start = milter_proto_begin(out, MILTER_CMD_MACRO);
    if (start < 0 || buf_append(out, &cmd, 1) < 0)
        return false;
    for (size_t i = 0; i < l->n; i++) {
        const char *v = m->macro ? m->macro(m->macro_arg, l->names[i]) : NULL;
        if (v && (!milter_put_str(out, l->names[i]) || !milter_put_str(out, v)))
            return false;
    }
    return milter_proto_end(out, start) == 0;
}

/* A step's common part: refusal when out of order, DONE, the macros. Returns true when
 * the caller is to append the command's packet from *start. */
static bool milter_step_open(struct milter *m, struct buf *out, enum milter_step st, bool send,
                             enum milter_wait *w, size_t *mark, long *start)
{
    const struct milter_step_def *d = &milter_steps[st];
    *mark = out->len;
    if (m->state == MILTER_S_FAILED) {
        *w = MILTER_FAILED;
        return false;
    }
    if (m->state != (st == MILTER_ST_OPTNEG ? MILTER_S_NEW : MILTER_S_IDLE)) {
        milter_fail(m, "%s step out of order", d->name);
        *w = MILTER_FAILED;
        return false;
    }
    if (m->conn_done || (d->msg && m->msg_done)) {
        *w = MILTER_DONE;
        return false;
    }
    if (d->macros >= 0 && !milter_put_macros(m, out, d->macros, d->cmd)) {
        out->len = *mark;
        milter_fail(m, "%s macros do not fit in a packet or the output", d->name);
        *w = MILTER_FAILED;
        return false;
    }
    /* sendmail sends the macros even for a step the filter does not want */
    if (!send || (m->protocol & d->no) || (st == MILTER_ST_BODY && m->skip_body)) {
        *w = MILTER_NOWAIT;
        return false;
    }
    *start = milter_proto_begin(out, d->cmd);
    if (*start < 0) {
        out->len = *mark;
        milter_fail(m, "%s: output full", d->name);
        *w = MILTER_FAILED;
        return false;
    }
    return true;
}

static enum milter_wait milter_step_close(struct milter *m, struct buf *out, enum milter_step st,
                                          size_t mark, long start, bool ok)
{
    const struct milter_step_def *d = &milter_steps[st];
    if (!ok || milter_proto_end(out, start) < 0) {
        out->len = mark;
        milter_fail(m, "%s packet above %u octets or output full", d->name, MILTER_CHUNK_MAX);
        return MILTER_FAILED;
    }
    if (m->protocol & d->nr)
        return MILTER_NOWAIT;
    m->state = MILTER_S_WAIT;
    m->waiting = st;
    return MILTER_WAIT;
}

/* A step whose data is NUL-terminated strings: `first` (if any), then `rest`. */
static enum milter_wait milter_step_strs(struct milter *m, struct buf *out, enum milter_step st,
                                         bool send, const char *first, const char *const *rest,
                                         size_t n_rest)
{
    enum milter_wait w;
    size_t mark;
    long start;
    if (!milter_step_open(m, out, st, send, &w, &mark, &start))
        return w;
    bool ok = !first || milter_put_str(out, first);
    for (size_t i = 0; ok && i < n_rest; i++)
        ok = milter_put_str(out, rest[i]);
    return milter_step_close(m, out, st, mark, start, ok);
}

enum milter_wait milter_negotiate(struct milter *m, struct buf *out)
{
    enum milter_wait w;
    size_t mark;
    long start;
    if (!milter_step_open(m, out, MILTER_ST_OPTNEG, true, &w, &mark, &start))
        return w;
    const uint32_t v[3] = {MILTER_PROTO_VERSION, MILTER_OFFER_ACTIONS, MILTER_OFFER_PROTOCOL};
    unsigned char b[12];
    for (int i = 0; i < 3; i++) {
        b[i * 4] = (unsigned char)(v[i] >> 24);
        b[i * 4 + 1] = (unsigned char)(v[i] >> 16);
        b[i * 4 + 2] = (unsigned char)(v[i] >> 8);
        b[i * 4 + 3] = (unsigned char)v[i];
    }
    return milter_step_close(m, out, MILTER_ST_OPTNEG, mark, start,
                             buf_append(out, b, sizeof(b)) == 0);
}

enum milter_wait milter_connect(struct milter *m, struct buf *out, const char *hostname,
                                char family, uint16_t port, const char *addr)
{
    enum milter_wait w;
    size_t mark;
    long start;
    if (!milter_step_open(m, out, MILTER_ST_CONNECT, true, &w, &mark, &start))
        return w;
    bool ok = milter_put_str(out, hostname) && buf_append(out, &family, 1) == 0;
    if (ok && family != MILTER_FAMILY_UNKNOWN) {
        const unsigned char p[2] = {(unsigned char)(port >> 8), (unsigned char)port};
        ok = buf_append(out, p, 2) == 0 && milter_put_str(out, addr);
    }
    return milter_step_close(m, out, MILTER_ST_CONNECT, mark, start, ok);
}

/* A new message or HELO ends the current one at the filter, as sendmail does. */
static bool milter_end_message(struct milter *m, struct buf *out)
{
    if (m->state == MILTER_S_IDLE && m->in_msg && !m->msg_done && !m->conn_done &&
        milter_proto_put(out, MILTER_CMD_ABORT, NULL, 0) < 0) {
        milter_fail(m, "abort: output full");
        return false;
    }
    if (m->state != MILTER_S_WAIT) {
        m->in_msg = m->msg_done = m->skip_body = false;
        milter_mods_reset(m);
    }
    return true;
}

enum milter_wait milter_helo(struct milter *m, struct buf *out, const char *name)
{
    if (!milter_end_message(m, out))
        return MILTER_FAILED;
    return milter_step_strs(m, out, MILTER_ST_HELO, true, name, NULL, 0);
}

enum milter_wait milter_mail(struct milter *m, struct buf *out, const char *sender,
                             const char *const *args, size_t n_args)
{
    if (!milter_end_message(m, out))
        return MILTER_FAILED;
    enum milter_wait w = milter_step_strs(m, out, MILTER_ST_MAIL, true, sender, args, n_args);
    if (w == MILTER_WAIT || w == MILTER_NOWAIT)
        m->in_msg = true;
    return w;
}

enum milter_wait milter_rcpt(struct milter *m, struct buf *out, const char *rcpt,
                             const char *const *args, size_t n_args, bool rejected)
{
    bool send = !rejected || (m->protocol & MILTER_P_RCPT_REJ);
    return milter_step_strs(m, out, MILTER_ST_RCPT, send, rcpt, args, n_args);
}

enum milter_wait milter_data(struct milter *m, struct buf *out)
{
    return milter_step_strs(m, out, MILTER_ST_DATA, true, NULL, NULL, 0);
}

enum milter_wait milter_header(struct milter *m, struct buf *out, const char *name,
                               const char *value)
{
    if (!(m->protocol & MILTER_P_HDR_LEADSPC) && value[0] == ' ')
        value++;
    const char *v[1] = {value};
    return milter_step_strs(m, out, MILTER_ST_HEADER, true, name, v, 1);
}

enum milter_wait milter_eoh(struct milter *m, struct buf *out)
{
    return milter_step_strs(m, out, MILTER_ST_EOH, true, NULL, NULL, 0);
}

enum milter_wait milter_body(struct milter *m, struct buf *out, const void *chunk, size_t len)
{
    if (m->state == MILTER_S_FAILED)
        return MILTER_FAILED;
    if (len > MILTER_CHUNK_MAX) {
        milter_fail(m, "body chunk of %zu octets, above %u", len, MILTER_CHUNK_MAX);
        return MILTER_FAILED;
    }
    enum milter_wait w;
    size_t mark;
    long start;
    if (!milter_step_open(m, out, MILTER_ST_BODY, true, &w, &mark, &start))
        return w;
    return milter_step_close(m, out, MILTER_ST_BODY, mark, start, buf_append(out, chunk, len) == 0);
}

enum milter_wait milter_eom(struct milter *m, struct buf *out)
{
    if (m->state == MILTER_S_IDLE && !m->msg_done)
        milter_mods_reset(m);
    return milter_step_strs(m, out, MILTER_ST_EOM, true, NULL, NULL, 0);
}

enum milter_wait milter_abort(struct milter *m, struct buf *out)
{
    if (m->state == MILTER_S_FAILED)
        return MILTER_FAILED;
    if (m->state == MILTER_S_WAIT) {
        milter_fail(m, "abort while the %s step waits for its reply",
                    milter_steps[m->waiting].name);
        return MILTER_FAILED;
    }
    if (!milter_end_message(m, out))
        return MILTER_FAILED;
    return MILTER_NOWAIT;
}

enum milter_wait milter_quit(struct milter *m, struct buf *out)
{
    if (m->state == MILTER_S_FAILED)
        return MILTER_FAILED;
    if (m->state != MILTER_S_NEW && m->state != MILTER_S_QUIT &&
        milter_proto_put(out, MILTER_CMD_QUIT, NULL, 0) < 0) {
        milter_fail(m, "quit: output full");
        return MILTER_FAILED;
    }
    m->state = MILTER_S_QUIT;
    buf_free(&m->in);
    return MILTER_NOWAIT;
}

enum milter_wait milter_unknown(struct milter *m, struct buf *out, const char *line)
{
    return milter_step_strs(m, out, MILTER_ST_UNKNOWN, true, line, NULL, 0);
}

size_t milter_mods_count(const struct milter *m)
{
    return m->n_mods;
}

const struct milter_mod *milter_mod_at(const struct milter *m, size_t i)
{
    return i < m->n_mods ? &m->mods[i] : NULL;
}

bool milter_body_replaced(const struct milter *m, const char **data, size_t *len)
{
    *data = m->body.data ? m->body.data : "";
    *len = m->body.len;
    return m->body_replaced;
}

/* SETSYMLIST: names separated by spaces or commas, as sendmail's milter_set_macros. */
static int milter_symlist_set(struct milter *m, uint32_t stage, const char *names)
{
    if (stage >= sizeof(milter_sym_stage) / sizeof(milter_sym_stage[0]))
        return -1;
    struct milter_symlist *s = &m->sym[milter_sym_stage[stage]];
    if (s->set)
        return -1; /* libmilter sends each stage once */
    char *store = strdup(names);
    size_t n = 0, cap = strlen(names) / 2 + 1;
    const char **v = malloc(cap * sizeof(*v));
    if (!store || !v) {
        free(store);
        free(v);
        return -1;
    }
    for (char *p = store; *p;) {
        if (*p == ',' || *p == ' ' || *p == '\t') {
            *p++ = '\0';
            continue;
        }
        v[n++] = p;
        p += strcspn(p, ", \t");
    }
    s->set = true;
    s->store = store;
    s->names = v;
    s->list.names = v;
    s->list.n = n;
    return 0;
}

static int milter_on_optneg(struct milter *m, const struct milter_reply *r)
{
    if (r->version < 2 || r->version > MILTER_PROTO_VERSION) {
        milter_fail(m, "negotiation: filter version %u, not 2..6", r->version);
        return -1;
    }
    if (r->actions & ~(uint32_t)MILTER_OFFER_ACTIONS) {
        milter_fail(m, "negotiation: actions 0x%x beyond the offered 0x%x", r->actions,
                    MILTER_OFFER_ACTIONS);
        return -1;
    }
    if (r->protocol & ~(uint32_t)MILTER_OFFER_PROTOCOL) {
        milter_fail(m, "negotiation: protocol 0x%x beyond the offered 0x%x", r->protocol,
                    MILTER_OFFER_PROTOCOL);
        return -1;
    }
    m->version = r->version;
    m->actions = r->actions;
    m->protocol = r->protocol;
    /* steps that filters of older versions do not know, as sendmail */
    if (m->version <= 2)
        m->protocol |= MILTER_P_NOUNKNOWN;
    if (m->version <= 3)
        m->protocol |= MILTER_P_NODATA;
    size_t off = 0;
    uint32_t stage;
    const char *names;
    int k;
    while ((k = milter_proto_symlist_next(r, &off, &stage, &names)) > 0)
        if (milter_symlist_set(m, stage, names) < 0)
            break;
    if (k != 0) {
        milter_fail(m, "negotiation: malformed macro list");
        return -1;
    }
    return 0;
}

/* A reply text as SMTP will send it: every line "ddd-" but the last "ddd " (or "ddd"),
 * the same code throughout, 4xx or 5xx, no control characters but the CRLF between lines,
 * so a filter cannot make the SMTP server send a reply of its own. Kept as sent ("%%"
 * stays doubled, as sendmail shows it). */
static int milter_on_replycode(struct milter *m, const char *s, struct milter_result *res)
{
    size_t n = strlen(s);
    char *t = malloc(n + 1);
    if (!t) {
        milter_fail(m, "out of memory");
        return -1;
    }
    size_t o = 0;
    const char *p = s;
    bool ok = (s[0] == '4' || s[0] == '5');
    while (ok) {
        ok = p[0] == s[0] && p[1] == s[1] && p[2] == s[2] && p[1] >= '0' && p[1] <= '9' &&
             p[2] >= '0' && p[2] <= '9';
        if (!ok)
            break;
        const char *eol = strstr(p, "\r\n");
        const char *end = eol ? eol : p + strlen(p);
        ok = eol ? p[3] == '-' : (p[3] == ' ' || p[3] == '\0');
        for (const char *c = p; ok && c < end; c++) {
            unsigned char ch = (unsigned char)*c;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                ok = false;
            t[o++] = (char)ch;
        }
        if (!ok || !eol)
            break;
        t[o++] = '\r';
        t[o++] = '\n';
        p = eol + 2;
    }
    if (!ok) {
        free(t);
        milter_fail(m, "reply code text malformed");
        return -1;
    }
    t[o] = '\0';
    free(m->reply);
    m->reply = t;
    res->reply = t;
    res->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    return 0;
}

static char *milter_hdr_value(const struct milter *m, const char *v)
{
    if ((m->protocol & MILTER_P_HDR_LEADSPC) || v[0] == '\0')
        return strdup(v);
    size_t n = strlen(v);
    char *s = malloc(n + 2);
    if (s) {
        s[0] = ' ';
        memcpy(s + 1, v, n + 1);
    }
    return s;
}

static int milter_on_mod(struct milter *m, const struct milter_reply *r)
{
    static const struct {
        char code;
        uint32_t action;
        enum milter_mod_type type;
    } map[] = {
        {MILTER_R_ADDHEADER, MILTER_ACT_ADDHDRS, MILTER_MOD_ADDHDR},
        {MILTER_R_INSHEADER, MILTER_ACT_ADDHDRS, MILTER_MOD_INSHDR},
        {MILTER_R_CHGHEADER, MILTER_ACT_CHGHDRS, MILTER_MOD_CHGHDR},
        {MILTER_R_CHGFROM, MILTER_ACT_CHGFROM, MILTER_MOD_CHGFROM},
        {MILTER_R_ADDRCPT, MILTER_ACT_ADDRCPT, MILTER_MOD_ADDRCPT},
        {MILTER_R_ADDRCPT_PAR, MILTER_ACT_ADDRCPT_PAR, MILTER_MOD_ADDRCPT},
        {MILTER_R_DELRCPT, MILTER_ACT_DELRCPT, MILTER_MOD_DELRCPT},
        {MILTER_R_QUARANTINE, MILTER_ACT_QUARANTINE, MILTER_MOD_QUARANTINE},
    };
    uint32_t action = MILTER_ACT_CHGBODY;
    size_t i = 0;
    if (r->code != MILTER_R_REPLBODY) {
        while (map[i].code != r->code)
            i++;
        action = map[i].action;
    }
    if (!(m->actions & action)) {
        milter_fail(m, "modification '%c' the filter did not negotiate", r->code);
        return -1;
    }
    if (r->code == MILTER_R_REPLBODY) {
        if (r->raw_len > m->max_mods - m->body.len ||
            buf_append(&m->body, r->raw, r->raw_len) < 0) {
            milter_fail(m, "replaced body above %zu octets", m->max_mods);
            return -1;
        }
        m->body_replaced = true;
        return 0;
    }
    /* each edit is charged its bookkeeping too, so many tiny ones cannot amplify memory */
    size_t bytes = strlen(r->str) + (r->str2 ? strlen(r->str2) : 0) + 2 + sizeof(struct milter_mod);
    if (bytes > m->max_mods - m->mods_bytes) {
        milter_fail(m, "modifications above %zu octets", m->max_mods);
        return -1;
    }
    if (m->n_mods == m->cap_mods) {
        size_t cap = m->cap_mods ? m->cap_mods * 2 : 8;
        struct milter_mod *v = realloc(m->mods, cap * sizeof(*v));
        if (!v) {
            milter_fail(m, "out of memory");
            return -1;
        }
        m->mods = v;
        m->cap_mods = cap;
    }
    struct milter_mod *mod = &m->mods[m->n_mods];
    bool hdr = map[i].type <= MILTER_MOD_CHGHDR;
    mod->type = map[i].type;
    mod->index = r->index;
    mod->name = strdup(r->str);
    mod->value = !r->str2 ? NULL : hdr ? milter_hdr_value(m, r->str2) : strdup(r->str2);
    if (!mod->name || (r->str2 && !mod->value)) {
        free((char *)mod->name);
        free((char *)mod->value);
        milter_fail(m, "out of memory");
        return -1;
    }
    m->n_mods++;
    m->mods_bytes += bytes;
    return 0;
}

static bool milter_is_mod(char code)
{
    return code && strchr("+-2behimq", code) != NULL;
}

/* The step's outcome on the connection and message state, as sendmail's milter.c. */
static void milter_settle(struct milter *m, enum milter_verdict v)
{
    enum milter_step st = m->waiting;
    if (v == MILTER_SHUTDOWN || v == MILTER_CONN_FAIL ||
        (st == MILTER_ST_CONNECT && v != MILTER_CONTINUE) ||
        (st == MILTER_ST_HELO && v == MILTER_ACCEPT)) {
        m->conn_done = true;
        return;
    }
    if (st == MILTER_ST_UNKNOWN)
        return; /* the verdict is the reply to that command only */
    if (v == MILTER_SKIP)
        m->skip_body = true;
    else if (st == MILTER_ST_RCPT) /* a refusal is for that recipient only */
        m->msg_done = m->msg_done || v == MILTER_ACCEPT || v == MILTER_DISCARD;
    else if (st == MILTER_ST_EOM || (milter_steps[st].msg && v != MILTER_CONTINUE))
        m->msg_done = true;
    if (m->msg_done)
        m->in_msg = false;
}

/* 1: *res is a result; 0: keep reading; -1: failed. */
static int milter_on_reply(struct milter *m, const struct milter_reply *r,
                           struct milter_result *res)
{
    enum milter_step st = m->waiting;
    const char *name = milter_steps[st].name;
    if (st == MILTER_ST_OPTNEG) {
        if (r->code != MILTER_R_OPTNEG) {
            milter_fail(m, "negotiation answered with '%c'", r->code);
            return -1;
        }
        if (milter_on_optneg(m, r) < 0)
            return -1;
        res->verdict = MILTER_CONTINUE;
        m->state = MILTER_S_IDLE;
        return 1;
    }
    if (milter_is_mod(r->code)) {
        if (st != MILTER_ST_EOM) {
            milter_fail(m, "modification '%c' after %s, not at end of message", r->code, name);
            return -1;
        }
        return milter_on_mod(m, r);
    }
    switch (r->code) {
    case MILTER_R_CONTINUE:
        res->verdict = st == MILTER_ST_EOM ? MILTER_ACCEPT : MILTER_CONTINUE;
        break;
    case MILTER_R_ACCEPT:
        res->verdict = MILTER_ACCEPT;
        break;
    case MILTER_R_REJECT:
        res->verdict = MILTER_REJECT;
        break;
    case MILTER_R_TEMPFAIL:
        res->verdict = MILTER_TEMPFAIL;
        break;
    case MILTER_R_DISCARD:
        res->verdict = MILTER_DISCARD;
        break;
    case MILTER_R_SHUTDOWN:
        res->verdict = MILTER_SHUTDOWN;
        break;
    case MILTER_R_CONN_FAIL:
        res->verdict = MILTER_CONN_FAIL;
        break;
    case MILTER_R_REPLYCODE:
        if (milter_on_replycode(m, r->str, res) < 0)
            return -1;
        res->verdict = MILTER_REPLYCODE;
        break;
    case MILTER_R_SKIP:
        if (st != MILTER_ST_BODY || !(m->protocol & MILTER_P_SKIP)) {
            milter_fail(m, "skip after %s%s", name,
                        st == MILTER_ST_BODY ? " without negotiating it" : "");
            return -1;
        }
        res->verdict = MILTER_SKIP;
        break;
    case MILTER_R_PROGRESS:
        if (st != MILTER_ST_EOM) {
            milter_fail(m, "progress after %s, not at end of message", name);
            return -1;
        }
        res->verdict = MILTER_PROGRESS;
        return 1;
    default:
        milter_fail(m, "reply '%c' not allowed after %s", r->code, name);
        return -1;
    }
    milter_settle(m, res->verdict);
    m->state = MILTER_S_IDLE;
    buf_free(&m->in);
    return 1;
}

enum milter_feed_status milter_feed(struct milter *m, const void *data, size_t len,
                                    size_t *consumed, struct milter_result *res)
{
    const char *p = data;
    *consumed = 0;
    memset(res, 0, sizeof(*res));
    while (m->state != MILTER_S_FAILED && *consumed < len) {
        if (m->state != MILTER_S_WAIT) {
            milter_fail(m, "%zu octets from the filter when no reply is due", len - *consumed);
            break;
        }
        size_t need = MILTER_PROTO_HDR_LEN - m->in.len;
        if (m->in.len >= MILTER_PROTO_HDR_LEN)
            need = MILTER_PROTO_HDR_LEN + milter_proto_length((const unsigned char *)m->in.data) -
                   m->in.len;
        if (need > len - *consumed)
            need = len - *consumed;
        if (buf_append(&m->in, p + *consumed, need) < 0) {
            milter_fail(m, "out of memory");
            break;
        }
        *consumed += need;
        struct milter_reply r;
        size_t used;
        const char *why;
        enum milter_proto_status st = milter_proto_decode(m->in.data, m->in.len, &used, &r, &why);
        if (st == MILTER_PROTO_ERROR) {
            milter_fail(m, "after %s: %s", milter_steps[m->waiting].name, why);
            break;
        }
        if (st == MILTER_PROTO_MORE)
            continue;
        int k = milter_on_reply(m, &r, res);
        m->in.len = 0;
        if (k < 0)
            break;
        if (k > 0)
            return MILTER_FEED_RESULT;
    }
    return m->state == MILTER_S_FAILED ? MILTER_FEED_ERROR : MILTER_FEED_MORE;
}
