/*
 * The qf format, version 1 (docs/queue.md has the reference an operator reads).
 *
 * One record per line: a tag character, then the value. The writer emits the records in
 * the order of env_fields[] below, then one "R" line per recipient, then "." alone, so a
 * qf cut short by a crash or a bad disk is detected rather than read as a message with
 * fewer recipients. Numbers are zero-padded decimal of fixed width so the delivery engine
 * can pwrite() a new attempt count, retry time or recipient state over the old one.
 *
 * Strings are xtext-like: '+', space, control characters, DEL and a leading '-' are
 * written as "+XX" (two upper-case hex digits). A value therefore never contains a line
 * end, so no sender, HELO name or address can inject a record (say, an extra recipient).
 * A raw space or control character on input means the file is garbled and is refused.
 */
#include "queue/envelope.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum env_kind {
    ENV_QID,     /* char[QID_LEN + 1], checked with qid_valid */
    ENV_TIME,    /* time_t, ENVELOPE_TIME_WIDTH digits */
    ENV_SIZE,    /* uint64_t, ENVELOPE_TIME_WIDTH digits */
    ENV_COUNT,   /* unsigned, ENVELOPE_COUNT_WIDTH digits */
    ENV_CHOICE,  /* int, one digit out of `choices` */
    ENV_FLAG,    /* bool, "0" or "1" */
    ENV_STR,     /* char *, always written (NULL as "") */
    ENV_OPT_STR, /* char *, record omitted when NULL */
    ENV_REASON,  /* char *, raw printable text, ENVELOPE_REASON_WIDTH octets, optional */
    ENV_QREASON, /* ENV_REASON, its record omitted when NULL (the quarantine) */
    ENV_NAME,    /* char *, a maildrop name, record omitted when NULL */
};

struct env_field {
    char tag;
    enum env_kind kind;
    size_t off;          /* offsetof(struct envelope, ...) */
    const char *choices; /* ENV_CHOICE: allowed digits, the first is the default */
    size_t at;           /* offsetof the size_t that parse sets to the value's file
                          * offset, for in-place updates; 0 = none */
};

/* The attempt count, the next-attempt time and the reason come first so their offsets do
 * not depend on any variable-length record. */
static const struct env_field env_fields[] = {
    {'I', ENV_QID, offsetof(struct envelope, qid), NULL, 0},
    {'T', ENV_TIME, offsetof(struct envelope, created), NULL, 0},
    {'N', ENV_COUNT, offsetof(struct envelope, attempts), NULL,
     offsetof(struct envelope, attempts_offset)},
    {'W', ENV_TIME, offsetof(struct envelope, next_attempt), NULL,
     offsetof(struct envelope, next_attempt_offset)},
    {'E', ENV_REASON, offsetof(struct envelope, last_reason), NULL,
     offsetof(struct envelope, last_reason_offset)},
    {'L', ENV_SIZE, offsetof(struct envelope, size), NULL, 0},
    {'B', ENV_CHOICE, offsetof(struct envelope, body), "078", 0},
    {'U', ENV_FLAG, offsetof(struct envelope, smtputf8), NULL, 0},
    {'X', ENV_CHOICE, offsetof(struct envelope, dsn_ret), "012", 0},
    {'S', ENV_STR, offsetof(struct envelope, sender), NULL, 0},
    {'H', ENV_OPT_STR, offsetof(struct envelope, helo), NULL, 0},
    {'A', ENV_OPT_STR, offsetof(struct envelope, client_addr), NULL, 0},
    {'C', ENV_OPT_STR, offsetof(struct envelope, client_name), NULL, 0},
    {'P', ENV_OPT_STR, offsetof(struct envelope, proto), NULL, 0},
    {'D', ENV_OPT_STR, offsetof(struct envelope, daemon), NULL, 0},
    {'M', ENV_OPT_STR, offsetof(struct envelope, msgid), NULL, 0},
    {'Z', ENV_OPT_STR, offsetof(struct envelope, envid), NULL, 0},
    {'O', ENV_NAME, offsetof(struct envelope, maildrop), NULL, 0},
    /* fixed width, so a release blanks it in place like the reason (docs/queue.md) */
    {'q', ENV_QREASON, offsetof(struct envelope, quarantine), NULL,
     offsetof(struct envelope, quarantine_offset)},
    {'a', ENV_OPT_STR, offsetof(struct envelope, auth), NULL, 0},
};
#define ENV_NFIELDS (sizeof(env_fields) / sizeof(env_fields[0]))

#define ENV_VERSION "V1"
/* The end markers: the data is in the df, or follows in this file. */
#define ENV_END        "."
#define ENV_END_INLINE "="
/* Marks an absent ORCPT; a real value starting with '-' has it escaped, so never equal. */
#define ENV_ABSENT "-"

static const char env_hex[] = "0123456789ABCDEF";

/* Optional on input: a qf written before the record existed is still read (a queue
 * survives an upgrade). */
static bool env_field_optional(const struct env_field *f)
{
    return f->kind == ENV_OPT_STR || f->kind == ENV_REASON || f->kind == ENV_QREASON ||
           f->kind == ENV_NAME;
}

static bool env_field_is_string(const struct env_field *f)
{
    return f->kind == ENV_STR || f->kind == ENV_OPT_STR || f->kind == ENV_REASON ||
           f->kind == ENV_QREASON || f->kind == ENV_NAME;
}

bool envelope_maildrop_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ENVELOPE_MAILDROP_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

void envelope_reason_format(char out[ENVELOPE_REASON_WIDTH], const char *text)
{
    size_t i = 0;
    for (; text && text[i] && i < ENVELOPE_REASON_WIDTH; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    memset(out + i, ' ', ENVELOPE_REASON_WIDTH - i);
}

/* --- writing --- */

static bool env_must_escape(unsigned char c, bool first)
{
    return c <= ' ' || c == 0x7f || c == '+' || (first && c == '-');
}

static int env_put_value(struct buf *out, const char *v)
{
    const char *run = v;
    int r = 0;
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!env_must_escape(c, p == v))
            continue;
        char esc[3] = {'+', env_hex[c >> 4], env_hex[c & 15]};
        r |= buf_append(out, run, (size_t)(p - run));
        r |= buf_append(out, esc, sizeof(esc));
        run = p + 1;
    }
    return r | buf_append(out, run, strlen(run));
}

static int env_put_number(struct buf *out, char tag, uint64_t v, int width)
{
    return buf_printf(out, "%c%0*" PRIu64 "\n", tag, width, v);
}

static int env_put_field(struct buf *out, const struct env_field *f, const struct envelope *e)
{
    const char *base = (const char *)e + f->off;
    const char *s;
    time_t t;

    switch (f->kind) {
    case ENV_QID:
        return buf_printf(out, "%c", f->tag) | env_put_value(out, base) | buf_append(out, "\n", 1);
    case ENV_TIME:
        memcpy(&t, base, sizeof(t));
        return env_put_number(out, f->tag, t > 0 ? (uint64_t)t : 0, ENVELOPE_TIME_WIDTH);
    case ENV_SIZE:
        return env_put_number(out, f->tag, *(const uint64_t *)(const void *)base,
                              ENVELOPE_TIME_WIDTH);
    case ENV_COUNT:
        return env_put_number(out, f->tag, *(const unsigned *)(const void *)base,
                              ENVELOPE_COUNT_WIDTH);
    case ENV_CHOICE: {
        int v = *(const int *)(const void *)base;
        char digit = f->choices[0];
        if (v >= 0 && v <= 9 && strchr(f->choices, '0' + v))
            digit = (char)('0' + v);
        return buf_printf(out, "%c%c\n", f->tag, digit);
    }
    case ENV_FLAG:
        return buf_printf(out, "%c%c\n", f->tag, *(const bool *)(const void *)base ? '1' : '0');
    case ENV_STR:
    case ENV_OPT_STR:
        memcpy(&s, base, sizeof(s));
        if (!s && f->kind == ENV_OPT_STR)
            return 0;
        return buf_printf(out, "%c", f->tag) | env_put_value(out, s ? s : "") |
               buf_append(out, "\n", 1);
    case ENV_REASON:
    case ENV_QREASON: {
        char field[ENVELOPE_REASON_WIDTH];
        memcpy(&s, base, sizeof(s));
        if (!s && f->kind == ENV_QREASON)
            return 0;
        envelope_reason_format(field, s);
        return buf_printf(out, "%c", f->tag) | buf_append(out, field, sizeof(field)) |
               buf_append(out, "\n", 1);
    }
    case ENV_NAME:
        memcpy(&s, base, sizeof(s));
        if (!s)
            return 0;
        if (!envelope_maildrop_name_valid(s))
            return -1;
        return buf_printf(out, "%c%s\n", f->tag, s);
    }
    return -1;
}

bool envelope_rcpt_state_valid(int state)
{
    return state == ENV_RCPT_PENDING || state == ENV_RCPT_WARNED || state == ENV_RCPT_DELIVERED ||
           state == ENV_RCPT_FAILED;
}

bool envelope_rcpt_open(enum envelope_rcpt_state state)
{
    return state == ENV_RCPT_PENDING || state == ENV_RCPT_WARNED;
}

/* The notify byte's low half holds the NOTIFY bits, its top bit the recipient's origin
 * (docs/queue.md): a qf written before local delivery existed reads the same. */
#define ENV_RCPT_NOTIFY_MASK 0x0fu
#define ENV_RCPT_EXPANDED    0x80u

static int env_put_rcpt(struct buf *out, const struct envelope_rcpt *r)
{
    char state = (char)r->state;
    if (!envelope_rcpt_state_valid(state))
        state = ENV_RCPT_PENDING;
    int res =
        buf_printf(out, "R%c %02X ", state,
                   (r->notify & ENV_RCPT_NOTIFY_MASK) | (r->expanded ? ENV_RCPT_EXPANDED : 0));
    if (r->orcpt)
        res |= env_put_value(out, r->orcpt);
    else
        res |= buf_append(out, ENV_ABSENT, strlen(ENV_ABSENT));
    return res | buf_append(out, " ", 1) | env_put_value(out, r->addr ? r->addr : "") |
           buf_append(out, "\n", 1);
}

int envelope_write(const struct envelope *e, struct buf *out)
{
    size_t mark = out->len;
    int r = buf_append(out, ENV_VERSION "\n", strlen(ENV_VERSION) + 1);

    for (size_t i = 0; i < ENV_NFIELDS; i++)
        r |= env_put_field(out, &env_fields[i], e);
    for (size_t i = 0; i < e->n_rcpts; i++)
        r |= env_put_rcpt(out, &e->rcpts[i]);
    r |= buf_append(out, e->data_inline ? ENV_END_INLINE "\n" : ENV_END "\n", 2);
    if (r) {
        out->len = mark;
        return -1;
    }
    return 0;
}

/* --- parsing --- */

struct env_parser {
    const char *line; /* current line, without its '\n' */
    size_t len;
    size_t start; /* offset of the line in the file */
    unsigned lineno;
    const char *why;  /* reason, set on failure */
    char missing[96]; /* storage for a reason with a value in it */
};

static int env_fail(struct env_parser *p, const char *why)
{
    p->why = why;
    return -1;
}

static int env_hexval(char c)
{
    const char *h = strchr(env_hex, c);
    return c && h ? (int)(h - env_hex) : -1;
}

/* Decodes value bytes [v, v+n) into a new string. */
static int env_decode(struct env_parser *p, const char *v, size_t n, char **out)
{
    char *s = malloc(n + 1);
    size_t o = 0;
    if (!s)
        return env_fail(p, "out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == 0x7f) {
            free(s);
            return env_fail(p, "raw space or control character in a value");
        }
        if (c == '+') {
            int hi = i + 2 < n ? env_hexval(v[i + 1]) : -1;
            int lo = hi >= 0 ? env_hexval(v[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                free(s);
                return env_fail(p, "bad +XX escape");
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        s[o++] = (char)c;
    }
    s[o] = '\0';
    *out = s;
    return 0;
}

static int env_number(struct env_parser *p, const char *v, size_t n, int width, uint64_t max,
                      uint64_t *out)
{
    uint64_t x = 0;
    if (n != (size_t)width)
        return env_fail(p, "fixed-width number has the wrong width");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return env_fail(p, "not a number");
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (max - d) / 10)
            return env_fail(p, "number out of range");
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* The padding is trimmed; an all-blank field is no reason (NULL). */
static int env_parse_reason(struct env_parser *p, const char *v, size_t n, char *base)
{
    char *s = NULL;
    if (n != ENVELOPE_REASON_WIDTH)
        return env_fail(p, "reason field has the wrong width");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            return env_fail(p, "control character in the reason");
    while (n > 0 && v[n - 1] == ' ')
        n--;
    if (n > 0 && !(s = strndup(v, n)))
        return env_fail(p, "out of memory");
    memcpy(base, &s, sizeof(s));
    return 0;
}

static int env_parse_field(struct env_parser *p, const struct env_field *f, struct envelope *e)
{
    char *base = (char *)e + f->off;
    const char *v = p->line + 1;
    size_t n = p->len - 1;
    uint64_t x;
    char *s;

    switch (f->kind) {
    case ENV_QID:
        if (n != QID_LEN)
            return env_fail(p, "bad queue id");
        memcpy(base, v, QID_LEN);
        base[QID_LEN] = '\0';
        return qid_valid(base) ? 0 : env_fail(p, "bad queue id");
    case ENV_TIME: {
        if (env_number(p, v, n, ENVELOPE_TIME_WIDTH, INT64_MAX, &x) < 0)
            return -1;
        time_t t = (time_t)x;
        memcpy(base, &t, sizeof(t));
        return 0;
    }
    case ENV_SIZE:
        return env_number(p, v, n, ENVELOPE_TIME_WIDTH, UINT64_MAX, (uint64_t *)(void *)base);
    case ENV_COUNT:
        if (env_number(p, v, n, ENVELOPE_COUNT_WIDTH, UINT32_MAX, &x) < 0)
            return -1;
        *(unsigned *)(void *)base = (unsigned)x;
        return 0;
    case ENV_CHOICE:
        if (n != 1 || v[0] == '\0' || !strchr(f->choices, v[0]))
            return env_fail(p, "value not allowed");
        *(int *)(void *)base = v[0] - '0';
        return 0;
    case ENV_FLAG:
        if (n != 1 || (v[0] != '0' && v[0] != '1'))
            return env_fail(p, "flag must be 0 or 1");
        *(bool *)(void *)base = v[0] == '1';
        return 0;
    case ENV_STR:
    case ENV_OPT_STR:
        if (env_decode(p, v, n, &s) < 0)
            return -1;
        memcpy(base, &s, sizeof(s));
        return 0;
    case ENV_REASON:
    case ENV_QREASON:
        return env_parse_reason(p, v, n, base);
    case ENV_NAME:
        s = strndup(v, n);
        if (!s)
            return env_fail(p, "out of memory");
        if (!envelope_maildrop_name_valid(s)) {
            free(s);
            return env_fail(p, "bad maildrop name");
        }
        memcpy(base, &s, sizeof(s));
        return 0;
    }
    return env_fail(p, "unknown field kind");
}

/* "R<state> <notify:2 hex> <orcpt or -> <address>" */
static int env_parse_rcpt(struct env_parser *p, struct envelope *e, size_t *cap)
{
    const char *l = p->line;
    struct envelope_rcpt r = {0};

    if (p->len < 7 || l[2] != ' ' || l[5] != ' ')
        return env_fail(p, "malformed recipient record");
    if (!envelope_rcpt_state_valid(l[1]))
        return env_fail(p, "bad recipient state");
    int hi = env_hexval(l[3]), lo = env_hexval(l[4]);
    if (hi < 0 || lo < 0)
        return env_fail(p, "bad recipient notify field");
    const char *orcpt = l + 6;
    const char *sp = memchr(orcpt, ' ', p->len - 6);
    if (!sp)
        return env_fail(p, "malformed recipient record");
    const char *addr = sp + 1;
    size_t olen = (size_t)(sp - orcpt), alen = p->len - (size_t)(addr - l);

    if (e->n_rcpts == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct envelope_rcpt *nr = realloc(e->rcpts, ncap * sizeof(*nr));
        if (!nr)
            return env_fail(p, "out of memory");
        e->rcpts = nr;
        *cap = ncap;
    }
    r.state = (enum envelope_rcpt_state)l[1];
    r.state_offset = p->start + 1;
    r.notify = (unsigned)(hi << 4 | lo) & ENV_RCPT_NOTIFY_MASK;
    r.expanded = hi & (ENV_RCPT_EXPANDED >> 4);
    bool absent = olen == strlen(ENV_ABSENT) && memcmp(orcpt, ENV_ABSENT, olen) == 0;
    if (!absent && env_decode(p, orcpt, olen, &r.orcpt) < 0)
        return -1;
    if (env_decode(p, addr, alen, &r.addr) < 0) {
        free(r.orcpt);
        return -1;
    }
    e->rcpts[e->n_rcpts++] = r;
    return 0;
}

static const struct env_field *env_field_for(char tag)
{
    for (size_t i = 0; i < ENV_NFIELDS; i++)
        if (env_fields[i].tag == tag)
            return &env_fields[i];
    return NULL;
}

/* Walks the lines; returns 0 or -1 with p->why / p->lineno describing the failure. */
static int env_parse_lines(struct env_parser *p, const char *data, size_t len, struct envelope *e)
{
    bool seen[ENV_NFIELDS] = {false};
    size_t cap = 0, pos = 0;

    for (p->lineno = 1;; p->lineno++) {
        if (pos == len)
            return env_fail(p, "truncated: no end marker");
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            return env_fail(p, "truncated: last line has no newline");
        p->line = data + pos;
        p->len = (size_t)(nl - p->line);
        p->start = pos;
        pos += p->len + 1;

        if (p->lineno == 1) {
            if (p->len != strlen(ENV_VERSION) || memcmp(p->line, ENV_VERSION, p->len) != 0)
                return env_fail(p, "not a version 1 queue file");
            continue;
        }
        if (p->len == 1 && (p->line[0] == ENV_END[0] || p->line[0] == ENV_END_INLINE[0])) {
            e->data_inline = p->line[0] == ENV_END_INLINE[0];
            break;
        }
        if (p->len == 0)
            return env_fail(p, "empty line");
        if (p->line[0] == 'R') {
            if (env_parse_rcpt(p, e, &cap) < 0)
                return -1;
            continue;
        }
        const struct env_field *f = env_field_for(p->line[0]);
        if (!f)
            return env_fail(p, "unknown record");
        if (seen[f - env_fields])
            return env_fail(p, "duplicate record");
        seen[f - env_fields] = true;
        if (env_parse_field(p, f, e) < 0)
            return -1;
        if (f->at)
            *(size_t *)(void *)((char *)e + f->at) = p->start + 1;
    }
    if (pos != len && !e->data_inline) {
        p->lineno++;
        return env_fail(p, "data after the end marker");
    }
    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        if (!seen[i] && !env_field_optional(&env_fields[i])) {
            snprintf(p->missing, sizeof(p->missing), "missing the %c record", env_fields[i].tag);
            return env_fail(p, p->missing);
        }
    }
    if (e->data_inline) {
        e->data_offset = pos;
        if (len - pos != e->size) {
            snprintf(p->missing, sizeof(p->missing),
                     "%s: %zu octets of data, the L record says %" PRIu64,
                     len - pos < e->size ? "truncated" : "damaged", len - pos, e->size);
            return env_fail(p, p->missing);
        }
    }
    return 0;
}

int envelope_parse(const char *data, size_t len, struct envelope *e, char *err, size_t errlen)
{
    struct env_parser p = {0};

    memset(e, 0, sizeof(*e));
    if (env_parse_lines(&p, data, len, e) == 0)
        return 0;
    snprintf(err, errlen, "line %u: %s", p.lineno, p.why);
    envelope_free(e);
    return -1;
}

void envelope_free(struct envelope *e)
{
    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        const struct env_field *f = &env_fields[i];
        if (env_field_is_string(f)) {
            char *s;
            memcpy(&s, (char *)e + f->off, sizeof(s));
            free(s);
        }
    }
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].addr);
        free(e->rcpts[i].orcpt);
    }
    free(e->rcpts);
    memset(e, 0, sizeof(*e));
}
