/*
 * smtp/smtp_addr.c — RFC 5321 4.1.2 paths and the ESMTP parameters of MAIL and RCPT.
 *
 * The input is (pointer, length) and never NUL-terminated: every read is bounded by the
 * cursor's end. The grammar is followed strictly (a relay that guesses is a relay that
 * can be tricked), with the two leniencies every deployed MTA has: spaces before '<' and
 * a bare address without angle brackets. Mailbox errors are 553 5.1.3 (RFC 5321 4.2.2:
 * "mailbox name not allowed (e.g., mailbox syntax incorrect)"); framing errors of the
 * command itself are 501 5.5.2; parameter errors are 501/555 5.5.4 (RFC 5321 4.1.1.11).
 */
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/xtext.h"

/* A cursor over the caller's bytes. */
struct cur {
    const unsigned char *p;
    const unsigned char *end;
};

static int addr_fail(struct smtp_addr_error *err, int code, const char *enh, const char *reason)
{
    err->code = code;
    err->enh = enh;
    err->reason = reason;
    return -1;
}

static int path_fail(struct smtp_addr_error *err, const char *reason)
{
    return addr_fail(err, 553, "5.1.3", reason);
}

static int param_fail(struct smtp_addr_error *err, const char *reason)
{
    return addr_fail(err, 501, "5.5.4", reason);
}

static bool cur_at(const struct cur *c, unsigned char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool addr_is_alpha(unsigned ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool addr_is_digit(unsigned ch)
{
    return ch >= '0' && ch <= '9';
}

static unsigned char addr_lower(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* ASCII case-insensitive comparison of two counted strings (no locale: RFC 5321 2.4). */
static bool addr_ieq(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (addr_lower(x[i]) != addr_lower(y[i]))
            return false;
    return true;
}

/* RFC 5322 3.2.3 atext. */
static bool addr_is_atext(unsigned ch)
{
    return addr_is_alpha(ch) || addr_is_digit(ch) ||
           (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", (int)ch) != NULL);
}

/* Overlong forms, surrogates and code points past U+10FFFF are refused, so two spellings
 * of one address cannot slip past a comparison made on bytes. */
size_t smtp_utf8_len(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static size_t addr_utf8_len(const struct cur *c)
{
    return smtp_utf8_len(c->p, (size_t)(c->end - c->p));
}

/*
 * Steps over one non-ASCII character (RFC 6531 3.3 UTF8-non-ascii) if SMTPUTF8 allows
 * it. Returns 1 when stepped, -1 with *err set when refused.
 */
static int addr_take_utf8(struct cur *c, unsigned flags, bool *utf8, struct smtp_addr_error *err)
{
    size_t n;
    if (!(flags & SMTP_PATH_ALLOW_UTF8))
        return addr_fail(err, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
    n = addr_utf8_len(c);
    if (n == 0)
        return path_fail(err, "Malformed UTF-8 in address");
    c->p += n;
    *utf8 = true;
    return 1;
}

/* RFC 5321 4.1.2 Dot-string: Atom *("." Atom). Stops at the first octet that is not
 * atext, a dot or (with SMTPUTF8) a UTF-8 character. */
static int addr_dot_string(struct cur *c, unsigned flags, bool *utf8, struct smtp_addr_error *err)
{
    const unsigned char *start = c->p;
    bool need_atom = true;
    while (c->p < c->end) {
        unsigned ch = *c->p;
        if (ch == '.') {
            if (need_atom)
                return path_fail(err, "Bad dot in local part");
            need_atom = true;
            c->p++;
        } else if (ch >= 0x80) {
            if (addr_take_utf8(c, flags, utf8, err) < 0)
                return -1;
            need_atom = false;
        } else if (addr_is_atext(ch)) {
            need_atom = false;
            c->p++;
        } else {
            break;
        }
    }
    if (need_atom) /* nothing at all, or a dot just before the end */
        return path_fail(err, c->p != start ? "Bad dot in local part" : "Bad local part syntax");
    return 0;
}

/* RFC 5321 4.1.2 Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE. */
static int addr_quoted_string(struct cur *c, unsigned flags, bool *utf8,
                              struct smtp_addr_error *err)
{
    c->p++; /* the opening quote */
    while (c->p < c->end) {
        unsigned ch = *c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch == '\\') {
            /* quoted-pairSMTP = %d92 %d32-126 */
            if (c->end - c->p < 2 || c->p[1] < 32 || c->p[1] > 126)
                return path_fail(err, "Bad quoted pair in local part");
            c->p += 2;
        } else if (ch >= 0x80) {
            if (addr_take_utf8(c, flags, utf8, err) < 0)
                return -1;
        } else if (ch >= 32 && ch <= 126) {
            c->p++;
        } else {
            return path_fail(err, "Bad character in quoted local part");
        }
    }
    return path_fail(err, "Unterminated quoted local part");
}

/*
 * RFC 5321 4.1.2 Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str],
 * with RFC 6531 U-labels when SMTPUTF8 is on. One trailing dot is tolerated (the
 * absolute form; the comparison helpers ignore it). The 63-octet label limit (RFC 1035
 * 2.3.4) is checked on ASCII labels only: it binds the A-label a U-label becomes, which
 * can be shorter than the U-label's UTF-8 octets.
 */
static int addr_domain(struct cur *c, unsigned flags, bool *utf8, struct smtp_addr_error *err)
{
    const unsigned char *start = c->p;
    for (;;) {
        const unsigned char *label = c->p;
        bool ascii = true;
        unsigned last = 0;
        while (c->p < c->end) {
            unsigned ch = *c->p;
            if (ch >= 0x80) {
                if (addr_take_utf8(c, flags, utf8, err) < 0)
                    return -1;
                ascii = false;
            } else if (addr_is_alpha(ch) || addr_is_digit(ch) || (ch == '-' && c->p != label)) {
                c->p++;
            } else {
                break;
            }
            last = ch;
        }
        if (c->p == label) {
            if (label != start && c->p == c->end)
                break; /* one trailing dot, ending the path */
            return path_fail(err, label == start && c->p == c->end ? "Missing domain"
                                                                   : "Bad domain name syntax");
        }
        if (last == '-')
            return path_fail(err, "Bad domain name syntax");
        if (ascii && c->p - label > 63)
            return path_fail(err, "Domain label too long");
        if (!cur_at(c, '.'))
            break;
        c->p++;
    }
    if (c->p - start > SMTP_DOMAIN_MAX)
        return path_fail(err, "Domain name too long");
    return 0;
}

/* RFC 5321 4.1.3 address-literal: "[" ( IPv4 / "IPv6:" IPv6 / General ) "]". The
 * addresses are checked with inet_pton, which accepts exactly the RFC 4291 2.2 forms. */
static int addr_literal(struct cur *c, struct smtp_addr_error *err)
{
    static const char v6tag[] = "IPv6:";
    const unsigned char *open = ++c->p, *close;
    char text[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    int family = AF_INET;
    size_t n;

    close = memchr(open, ']', (size_t)(c->end - open));
    if (close == NULL)
        return path_fail(err, "Unterminated address literal");
    n = (size_t)(close - open);
    if (n >= sizeof(v6tag) - 1 && addr_ieq(open, sizeof(v6tag) - 1, v6tag, sizeof(v6tag) - 1)) {
        family = AF_INET6;
        open += sizeof(v6tag) - 1;
        n -= sizeof(v6tag) - 1;
    } else if (n == 0 || !addr_is_digit(*open)) {
        /* General-address-literal: no standardised tag besides IPv6 is in use */
        return path_fail(err, "Unsupported address literal");
    }
    if (n >= sizeof(text))
        return path_fail(err, "Bad address literal");
    memcpy(text, open, n);
    text[n] = '\0';
    if (inet_pton(family, text, bin) != 1)
        return path_fail(err, "Bad address literal");
    c->p = close + 1;
    return 0;
}

/* A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 4.1.2). Parsed and thrown away, as
 * Appendix C tells servers to; the caller records that one was there. */
static int addr_source_route(struct cur *c, unsigned flags, bool *utf8, struct smtp_addr_error *err)
{
    for (;;) {
        c->p++; /* '@' */
        if (addr_domain(c, flags, utf8, err) < 0)
            return -1;
        if (cur_at(c, ':')) {
            c->p++;
            return 0;
        }
        if (!cur_at(c, ','))
            return path_fail(err, "Bad source route");
        c->p++;
        if (!cur_at(c, '@'))
            return path_fail(err, "Bad source route");
    }
}

/* The inside of a path: [A-d-l ":"] Mailbox, or nothing for "<>". `c` spans exactly
 * those bytes; anything left over is an error. */
static int addr_path_body(struct cur *c, size_t path_len, unsigned flags, struct smtp_path *out,
                          struct smtp_addr_error *err)
{
    const unsigned char *local, *domain;
    size_t local_len, domain_len;

    if (c->p == c->end) {
        if (!(flags & SMTP_PATH_ALLOW_NULL))
            return path_fail(err, "Null path not allowed here");
        out->null = true;
        return 0;
    }
    if (cur_at(c, '@')) {
        if (addr_source_route(c, flags, &out->utf8, err) < 0)
            return -1;
        out->source_route = true;
    }
    local = c->p;
    if (cur_at(c, '"')) {
        if (addr_quoted_string(c, flags, &out->utf8, err) < 0)
            return -1;
        out->quoted = true;
    } else if (addr_dot_string(c, flags, &out->utf8, err) < 0) {
        return -1;
    }
    local_len = (size_t)(c->p - local);
    if (local_len > SMTP_LOCAL_MAX)
        return path_fail(err, "Local part too long");

    if (c->p == c->end && !out->quoted && !out->source_route &&
        (flags & SMTP_PATH_ALLOW_POSTMASTER) && addr_ieq(local, local_len, "postmaster", 10)) {
        /* RFC 5321 4.5.1: <Postmaster> needs no domain; the name is case-insensitive */
        memcpy(out->local, local, local_len);
        memcpy(out->mailbox, "postmaster", sizeof("postmaster"));
        return 0;
    }
    if (c->p == c->end)
        return path_fail(err, "Domain name required");
    if (!cur_at(c, '@'))
        return path_fail(err, "Bad local part syntax");
    c->p++;
    domain = c->p;
    if (cur_at(c, '[')) {
        if (addr_literal(c, err) < 0)
            return -1;
        out->addr_literal = true;
    } else if (addr_domain(c, flags, &out->utf8, err) < 0) {
        return -1;
    }
    if (c->p != c->end)
        return path_fail(err,
                         *c->p == '@' ? "Unquoted '@' in local part" : "Bad domain name syntax");
    domain_len = (size_t)(c->p - domain);
    if (path_len > SMTP_PATH_MAX)
        return path_fail(err, "Path too long");
    memcpy(out->local, local, local_len);
    memcpy(out->domain, domain, domain_len);
    memcpy(out->mailbox, local, local_len);
    out->mailbox[local_len] = '@';
    memcpy(out->mailbox + local_len + 1, domain, domain_len);
    return 0;
}

/* Finds the '>' that closes a path opened at c->p[-1], skipping quoted strings and
 * quoted pairs so that "<\"a>b\"@example>" is one path. */
static const unsigned char *addr_find_close(const struct cur *c)
{
    bool quoted = false;
    for (const unsigned char *p = c->p; p < c->end; p++) {
        if (quoted && *p == '\\' && p + 1 < c->end)
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == '>' && !quoted)
            return p;
    }
    return NULL;
}

int smtp_path_parse(const char *s, size_t len, unsigned flags, struct smtp_path *out,
                    size_t *consumed, struct smtp_addr_error *err)
{
    struct cur line = {(const unsigned char *)s, (const unsigned char *)s + len};
    struct cur body;
    size_t path_len;
    const unsigned char *next;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    while (cur_at(&line, ' '))
        line.p++;
    if (line.p == line.end)
        return addr_fail(err, 501, "5.5.2", "Missing path");
    if (*line.p == '<') {
        body.p = line.p + 1;
        body.end = line.end;
        body.end = addr_find_close(&body);
        if (body.end == NULL)
            return addr_fail(err, 501, "5.5.2", "Syntax error in path");
        next = body.end + 1;
        path_len = (size_t)(next - line.p);
    } else {
        /* a bare address (broken clients) runs to the first space; counted as if the
         * brackets were there, so the length limit is the same either way */
        const unsigned char *sp = memchr(line.p, ' ', (size_t)(line.end - line.p));
        body.p = line.p;
        body.end = sp ? sp : line.end;
        if (body.p == body.end || *body.p == '>')
            return addr_fail(err, 501, "5.5.2", "Syntax error in path");
        next = body.end;
        path_len = (size_t)(body.end - body.p) + 2;
    }
    /* "<a@b>junk": the path must end at a parameter separator or the line's end */
    if (next < line.end && *next != ' ')
        return addr_fail(err, 501, "5.5.2", "Syntax error in path");
    if (addr_path_body(&body, path_len, flags, out, err) < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    *consumed = (size_t)(next - (const unsigned char *)s);
    return 0;
}

bool smtp_path_has_routing(const struct smtp_path *p)
{
    if (p->source_route)
        return true;
    if (strpbrk(p->local, "%!@") != NULL)
        return true;
    return p->quoted && strchr(p->local, ':') != NULL;
}

/* The length of a domain without one trailing dot (the absolute form "example.com."). */
static size_t addr_domain_len(const char *d)
{
    size_t n = strlen(d);
    return (n > 0 && d[n - 1] == '.') ? n - 1 : n;
}

bool smtp_domain_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    return addr_ieq(a, addr_domain_len(a), b, addr_domain_len(b));
}

bool smtp_domain_within(const char *domain, const char *parent)
{
    size_t dlen, plen;

    if (domain == NULL || parent == NULL)
        return false;
    /* ".example.com" in a relay list means the same as "example.com" */
    if (parent[0] == '.')
        parent++;
    dlen = addr_domain_len(domain);
    plen = addr_domain_len(parent);
    if (plen == 0 || dlen < plen)
        return false;
    if (dlen > plen && domain[dlen - plen - 1] != '.')
        return false;
    return addr_ieq(domain + dlen - plen, plen, parent, plen);
}

/* ---- ESMTP parameters (RFC 5321 4.1.2 Mail-parameters / Rcpt-parameters) ---- */

static bool addr_is_hex(unsigned ch)
{
    return addr_is_digit(ch) || (ch >= 'A' && ch <= 'F') || (ch >= 'a' && ch <= 'f');
}

bool smtp_xtext_valid(const char *s, size_t len)
{
    /* RFC 3461 4: xchar is %d33-126 except '+' and '='; hexchar is "+" two hex digits.
     * Lower-case hex is accepted too, as Postfix and sendmail do. */
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '+') {
            if (len - i < 3 || !addr_is_hex(p[i + 1]) || !addr_is_hex(p[i + 2]))
                return false;
            i += 2;
        } else if (p[i] < 33 || p[i] > 126 || p[i] == '=') {
            return false;
        }
    }
    return true;
}

/* One keyword=value parameter, as split by the driver below. */
struct param {
    const char *value; /* NULL when there was no '=' */
    size_t vlen;
};

static bool param_is(const struct param *v, const char *word)
{
    return v->value != NULL && addr_ieq(v->value, v->vlen, word, strlen(word));
}

static int param_size(const struct param *v, const struct smtp_ext *ext, void *out,
                      struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    uint64_t size = 0;

    /* RFC 1870 6: size-value ::= 1*20DIGIT; a value that overflows is not a size */
    if (v->value == NULL || v->vlen == 0 || v->vlen > 20)
        return param_fail(err, "Bad SIZE parameter");
    for (size_t i = 0; i < v->vlen; i++) {
        unsigned d = (unsigned char)v->value[i] - '0';
        if (d > 9 || size > (UINT64_MAX - d) / 10)
            return param_fail(err, "Bad SIZE parameter");
        size = size * 10 + d;
    }
    if (ext->max_size > 0 && size > ext->max_size)
        return addr_fail(err, 552, "5.3.4", "Message size exceeds fixed maximum message size");
    m->has_size = true;
    m->size = size;
    return 0;
}

static int param_body(const struct param *v, const struct smtp_ext *ext, void *out,
                      struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    (void)ext;
    if (param_is(v, "7BIT"))
        m->body = SMTP_BODY_7BIT;
    else if (param_is(v, "8BITMIME"))
        m->body = SMTP_BODY_8BITMIME;
    else if (param_is(v, "BINARYMIME"))
        return addr_fail(err, 555, "5.5.4", "BODY=BINARYMIME not supported"); /* RFC 3030 */
    else
        return param_fail(err, "Bad BODY parameter");
    return 0;
}

static int param_smtputf8(const struct param *v, const struct smtp_ext *ext, void *out,
                          struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    (void)ext;
    if (v->value != NULL) /* RFC 6531 3.4: the parameter has no value */
        return param_fail(err, "SMTPUTF8 takes no value");
    m->smtputf8 = true;
    return 0;
}

static int param_ret(const struct param *v, const struct smtp_ext *ext, void *out,
                     struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    (void)ext;
    if (param_is(v, "FULL"))
        m->ret = SMTP_RET_FULL;
    else if (param_is(v, "HDRS"))
        m->ret = SMTP_RET_HDRS;
    else
        return param_fail(err, "Bad RET parameter");
    return 0;
}

static int param_envid(const struct param *v, const struct smtp_ext *ext, void *out,
                       struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    (void)ext;
    if (v->value == NULL || v->vlen == 0 || !smtp_xtext_valid(v->value, v->vlen))
        return param_fail(err, "Bad ENVID parameter");
    if (v->vlen > SMTP_ENVID_MAX) /* RFC 3461 4.4 */
        return param_fail(err, "ENVID parameter too long");
    memcpy(m->envid, v->value, v->vlen);
    m->envid[v->vlen] = '\0';
    return 0;
}

/* RFC 4954 5: AUTH=<> or the xtext of the mailbox that submitted the message. */
static int param_auth(const struct param *v, const struct smtp_ext *ext, void *out,
                      struct smtp_addr_error *err)
{
    struct smtp_mail_params *m = out;
    (void)ext;
    if (v->value == NULL || v->vlen == 0 || v->vlen > SMTP_AUTH_PARAM_MAX ||
        (!(v->vlen == 2 && memcmp(v->value, "<>", 2) == 0) && !smtp_xtext_valid(v->value, v->vlen)))
        return param_fail(err, "Bad AUTH parameter");
    if (!(m->auth = strndup(v->value, v->vlen)))
        return addr_fail(err, 452, "4.3.1", "Insufficient system storage");
    return 0;
}

/* An xtext value decoded into a new string (*out, *outlen): 0, or -1 with *err set (`bad`
 * unless the value is xtext of 1 to `max` octets once decoded). */
static int param_xtext_dup(const struct param *v, size_t max, const char *bad, char **out,
                           size_t *outlen, struct smtp_addr_error *err)
{
    if (v->value == NULL || v->vlen == 0 || !smtp_xtext_valid(v->value, v->vlen))
        return param_fail(err, bad);
    char *d = malloc(v->vlen + 1);
    if (d == NULL)
        return addr_fail(err, 452, "4.3.1", "Insufficient system storage");
    ssize_t n = xtext_decode(v->value, v->vlen, d, v->vlen + 1); /* valid: never -1 */
    if (n < 0 || (size_t)n > max) {
        free(d);
        return param_fail(err, bad);
    }
    *out = d;
    *outlen = (size_t)n;
    return 0;
}

/* The name goes into a From: header: printable ASCII and well-formed UTF-8 only, so no
 * line end or escape sequence can ride along. */
static bool param_fullname_valid(const char *s, size_t len)
{
    struct cur c = {(const unsigned char *)s, (const unsigned char *)s + len};
    while (c.p < c.end) {
        size_t n = *c.p >= 0x80 ? addr_utf8_len(&c) : (*c.p >= 0x20 && *c.p < 0x7f ? 1 : 0);
        if (n == 0)
            return false;
        c.p += n;
    }
    return true;
}

static int param_fullname(const struct param *v, const struct smtp_ext *ext, void *out,
                          struct smtp_addr_error *err)
{
    static const char bad[] = "Bad FULLNAME parameter";
    struct smtp_mail_params *m = out;
    char *name;
    size_t n;
    (void)ext;
    if (param_xtext_dup(v, SMTP_FULLNAME_MAX, bad, &name, &n, err) < 0)
        return -1;
    if (!param_fullname_valid(name, n)) {
        free(name);
        return param_fail(err, bad);
    }
    m->fullname = name;
    return 0;
}

static int param_maildrop(const struct param *v, const struct smtp_ext *ext, void *out,
                          struct smtp_addr_error *err)
{
    static const char bad[] = "Bad XMAILDROP parameter";
    struct smtp_mail_params *m = out;
    char *name;
    size_t n;
    (void)ext;
    if (param_xtext_dup(v, SMTP_MAILDROP_MAX, bad, &name, &n, err) < 0)
        return -1;
    /* a file name inside the maildrop: no '/', and no leading '.' (".", "..", ".tmp-*") */
    bool ok = name[0] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned ch = (unsigned char)name[i];
        ok = addr_is_alpha(ch) || addr_is_digit(ch) || ch == '.' || ch == '_' || ch == '-';
    }
    if (!ok) {
        free(name);
        return param_fail(err, bad);
    }
    m->maildrop = name;
    return 0;
}

static int param_notify(const struct param *v, const struct smtp_ext *ext, void *out,
                        struct smtp_addr_error *err)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {
        {"NEVER", SMTP_NOTIFY_NEVER},
        {"SUCCESS", SMTP_NOTIFY_SUCCESS},
        {"FAILURE", SMTP_NOTIFY_FAILURE},
        {"DELAY", SMTP_NOTIFY_DELAY},
    };
    struct smtp_rcpt_params *r = out;
    unsigned notify = 0;
    const char *p, *end;
    (void)ext;

    if (v->value == NULL)
        return param_fail(err, "Bad NOTIFY parameter");
    p = v->value;
    end = v->value + v->vlen;
    /* RFC 3461 4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        size_t i;
        for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            if (addr_ieq(p, (size_t)(item_end - p), words[i].word, strlen(words[i].word)))
                break;
        if (i == sizeof(words) / sizeof(words[0]))
            return param_fail(err, "Bad NOTIFY parameter");
        notify |= words[i].bit;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER)
        return param_fail(err, "NOTIFY=NEVER cannot be combined with other values");
    r->notify = notify;
    return 0;
}

static int param_orcpt(const struct param *v, const struct smtp_ext *ext, void *out,
                       struct smtp_addr_error *err)
{
    struct smtp_rcpt_params *r = out;
    const char *semi;
    size_t type_len;
    (void)ext;

    /* RFC 3461 4.2: ORCPT=addr-type ";" xtext, addr-type an atom (usually rfc822) */
    if (v->value == NULL || (semi = memchr(v->value, ';', v->vlen)) == NULL)
        return param_fail(err, "Bad ORCPT parameter");
    type_len = (size_t)(semi - v->value);
    if (type_len == 0 || type_len + 1 == v->vlen)
        return param_fail(err, "Bad ORCPT parameter");
    for (size_t i = 0; i < type_len; i++)
        if (!addr_is_atext((unsigned char)v->value[i]))
            return param_fail(err, "Bad ORCPT address type");
    if (!smtp_xtext_valid(semi + 1, v->vlen - type_len - 1))
        return param_fail(err, "Bad ORCPT parameter");
    if (v->vlen > SMTP_ORCPT_MAX)
        return param_fail(err, "ORCPT parameter too long");
    memcpy(r->orcpt, v->value, v->vlen);
    r->orcpt[v->vlen] = '\0';
    return 0;
}

/* A keyword, the extension that must be on for it to be known, and its handler. */
struct param_def {
    const char *keyword;
    size_t ext_flag; /* offsetof(struct smtp_ext, <bool>), or PARAM_ALWAYS */
    int (*parse)(const struct param *v, const struct smtp_ext *ext, void *out,
                 struct smtp_addr_error *err);
    const char *duplicate; /* the reason for a second occurrence */
};

#define PARAM_ALWAYS SIZE_MAX

static const struct param_def mail_params[] = {
    {"SIZE", offsetof(struct smtp_ext, size), param_size, "Duplicate SIZE parameter"},
    {"BODY", offsetof(struct smtp_ext, eightbitmime), param_body, "Duplicate BODY parameter"},
    {"SMTPUTF8", offsetof(struct smtp_ext, smtputf8), param_smtputf8,
     "Duplicate SMTPUTF8 parameter"},
    {"RET", offsetof(struct smtp_ext, dsn), param_ret, "Duplicate RET parameter"},
    {"ENVID", offsetof(struct smtp_ext, dsn), param_envid, "Duplicate ENVID parameter"},
    {"AUTH", offsetof(struct smtp_ext, auth), param_auth, "Duplicate AUTH parameter"},
    /* last: only smtp_mail_params_parse_local() looks at them */
    {"FULLNAME", PARAM_ALWAYS, param_fullname, "Duplicate FULLNAME parameter"},
    {"XMAILDROP", PARAM_ALWAYS, param_maildrop, "Duplicate XMAILDROP parameter"},
};
#define MAIL_PARAMS_LOCAL 2 /* the entries above */

static const struct param_def rcpt_params[] = {
    {"NOTIFY", offsetof(struct smtp_ext, dsn), param_notify, "Duplicate NOTIFY parameter"},
    {"ORCPT", offsetof(struct smtp_ext, dsn), param_orcpt, "Duplicate ORCPT parameter"},
};

static bool param_enabled(const struct smtp_ext *ext, const struct param_def *d)
{
    bool on = true;
    if (d->ext_flag != PARAM_ALWAYS)
        memcpy(&on, (const char *)ext + d->ext_flag, sizeof(on));
    return on;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool param_keyword_valid(const char *k, size_t n)
{
    if (n == 0 || k[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = (unsigned char)k[i];
        if (!addr_is_alpha(ch) && !addr_is_digit(ch) && ch != '-')
            return false;
    }
    return true;
}

/* Splits "KEY[=VALUE] KEY[=VALUE] ..." at runs of spaces and hands each to its handler.
 * A table has at most a handful of entries, so a bit per entry tracks repeats. */
static int params_parse(const char *s, size_t len, const struct param_def *defs, size_t ndefs,
                        const struct smtp_ext *ext, void *out, struct smtp_addr_error *err)
{
    const char *p = s, *end = s + len;
    unsigned seen = 0;

    for (;;) {
        const char *tok, *tok_end, *eq;
        struct param v = {NULL, 0};
        size_t klen, i;

        while (p < end && *p == ' ')
            p++;
        if (p == end)
            return 0;
        tok = p;
        tok_end = memchr(p, ' ', (size_t)(end - p));
        if (tok_end == NULL)
            tok_end = end;
        p = tok_end;
        eq = memchr(tok, '=', (size_t)(tok_end - tok));
        klen = (size_t)((eq ? eq : tok_end) - tok);
        if (eq != NULL) {
            v.value = eq + 1;
            v.vlen = (size_t)(tok_end - eq - 1);
        }
        if (!param_keyword_valid(tok, klen))
            return param_fail(err, "Syntax error in parameters");
        for (i = 0; i < ndefs; i++)
            if (addr_ieq(tok, klen, defs[i].keyword, strlen(defs[i].keyword)))
                break;
        if (i == ndefs || !param_enabled(ext, &defs[i]))
            return addr_fail(err, 555, "5.5.4", "Unsupported parameter");
        if (seen & (1u << i))
            return param_fail(err, defs[i].duplicate);
        seen |= 1u << i;
        if (defs[i].parse(&v, ext, out, err) < 0)
            return -1;
    }
}

static int mail_params_parse(const char *s, size_t len, const struct smtp_ext *ext, bool local,
                             struct smtp_mail_params *out, struct smtp_addr_error *err)
{
    size_t n = sizeof(mail_params) / sizeof(mail_params[0]);
    memset(out, 0, sizeof(*out));
    if (params_parse(s, len, mail_params, local ? n : n - MAIL_PARAMS_LOCAL, ext, out, err) < 0) {
        smtp_mail_params_free(out);
        return -1;
    }
    return 0;
}

int smtp_mail_params_parse(const char *s, size_t len, const struct smtp_ext *ext,
                           struct smtp_mail_params *out, struct smtp_addr_error *err)
{
    return mail_params_parse(s, len, ext, false, out, err);
}

int smtp_mail_params_parse_local(const char *s, size_t len, const struct smtp_ext *ext,
                                 struct smtp_mail_params *out, struct smtp_addr_error *err)
{
    return mail_params_parse(s, len, ext, true, out, err);
}

void smtp_mail_params_free(struct smtp_mail_params *p)
{
    free(p->fullname);
    free(p->maildrop);
    free(p->auth);
    p->fullname = NULL;
    p->maildrop = NULL;
    p->auth = NULL;
}

int smtp_rcpt_params_parse(const char *s, size_t len, const struct smtp_ext *ext,
                           struct smtp_rcpt_params *out, struct smtp_addr_error *err)
{
    memset(out, 0, sizeof(*out));
    return params_parse(s, len, rcpt_params, sizeof(rcpt_params) / sizeof(rcpt_params[0]), ext, out,
                        err);
}
