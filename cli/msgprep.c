/* Message preparation for local submission (see msgprep.h). The input is read one octet
 * at a time through a small state machine, so chunk boundaries cannot change the result;
 * only the header block is held, the body goes out in MSGPREP_OUT_CHUNK pieces. */
#include "cli/msgprep.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#define MSGPREP_OUT_CHUNK 65536

enum { ST_HEADER, ST_BODY, ST_DONE };

/* ---- RFC 5322 address lists ---------------------------------------------------------- */

/* Told apart from syntax errors by address (the caller's exit code differs). */
static const char addr_out_of_memory[] = "out of memory";

enum token_type { TOK_ATOM = 256, TOK_QSTRING, TOK_LITERAL };

struct token {
    int type; /* a special character itself, or TOK_* */
    const char *text;
    size_t len;
};

struct tokens {
    struct token *v;
    size_t n, cap;
};

static bool addr_is_special(unsigned char c)
{
    return strchr("()<>[]\":;@,.", c) != NULL && c != '\0';
}

static bool addr_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int tokens_push(struct tokens *t, int type, const char *text, size_t len)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct token *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = (struct token){type, text, len};
    return 0;
}

#define ADDR_BAD_OCTET SIZE_MAX

/* Index just past the delimited item starting at s[i] (a quoted string or a literal),
 * honouring quoted-pairs; 0 when it is not closed, ADDR_BAD_OCTET for a control octet
 * (folding white space aside), which no SMTP path could carry. */
static size_t addr_skip_delimited(const char *s, size_t len, size_t i, char close)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < len) {
            c = (unsigned char)s[++i];
            if (c == '\r' || c == '\n') /* unfolding would leave a lone backslash */
                return ADDR_BAD_OCTET;
        } else if (c == (unsigned char)close) {
            return i + 1;
        }
        if ((c < 32 && c != '\t' && c != '\r' && c != '\n') || c == 127)
            return ADDR_BAD_OCTET;
    }
    return 0;
}

/* Comments nest (RFC 5322 3.2.2); index just past it, 0 when not closed. */
static size_t addr_skip_comment(const char *s, size_t len, size_t i)
{
    size_t depth = 0;
    for (; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && --depth == 0)
            return i + 1;
    }
    return 0;
}

static int addr_tokenize(const char *s, size_t len, struct tokens *t, const char **why)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t end;
        if (addr_is_space(c)) {
            i++;
            continue;
        }
        if (c == '(') {
            if ((end = addr_skip_comment(s, len, i)) == 0) {
                *why = "unbalanced '('";
                return -1;
            }
            i = end;
            continue;
        }
        int type = c;
        if (c == '"' || c == '[') {
            end = addr_skip_delimited(s, len, i, c == '"' ? '"' : ']');
            if (end == 0 || end == ADDR_BAD_OCTET) {
                *why = end != 0   ? "control character"
                       : c == '"' ? "unbalanced '\"'"
                                  : "unbalanced '['";
                return -1;
            }
            type = c == '"' ? TOK_QSTRING : TOK_LITERAL;
        } else if (c == ')' || c == ']') {
            *why = c == ')' ? "unbalanced ')'" : "unbalanced ']'";
            return -1;
        } else if (addr_is_special(c)) {
            end = i + 1;
        } else {
            for (end = i; end < len; end++) {
                unsigned char a = (unsigned char)s[end];
                if (a == '\\' && end + 1 < len)
                    end++; /* sendmail's \user (no aliasing) stays one atom */
                else if (addr_is_space(a) || addr_is_special(a) || a < 32 || a == 127)
                    break;
            }
            if (end == i) {
                *why = "control character";
                return -1;
            }
            type = TOK_ATOM;
        }
        if (tokens_push(t, type, s + i, end - i)) {
            *why = addr_out_of_memory;
            return -1;
        }
        i = end;
    }
    return 0;
}

struct addr_parser {
    const struct token *t;
    size_t n, i;
    char ***list;
    size_t *n_list;
    const char **why;
};

static int addr_fail(struct addr_parser *p, const char *why)
{
    *p->why = why;
    return -1;
}

static bool addr_at(const struct addr_parser *p, int type)
{
    return p->i < p->n && p->t[p->i].type == type;
}

static bool addr_at_word(const struct addr_parser *p)
{
    return addr_at(p, TOK_ATOM) || addr_at(p, TOK_QSTRING);
}

/* addr-spec = local-part ["@" domain], written back without CFWS; the domain part is
 * optional because sendmail takes a bare user name ("root") in a header. */
static int addr_spec(struct addr_parser *p)
{
    size_t first = p->i;
    if (!addr_at_word(p))
        return addr_fail(p, "address expected");
    p->i++;
    while (addr_at(p, '.')) {
        p->i++;
        if (!addr_at_word(p))
            return addr_fail(p, "bad local part");
        p->i++;
    }
    if (addr_at(p, '@')) {
        p->i++;
        if (addr_at(p, TOK_LITERAL)) {
            p->i++;
        } else {
            if (!addr_at(p, TOK_ATOM))
                return addr_fail(p, "domain expected after '@'");
            p->i++;
            while (addr_at(p, '.')) {
                p->i++;
                if (!addr_at(p, TOK_ATOM))
                    return addr_fail(p, "bad domain");
                p->i++;
            }
        }
    }
    size_t len = 0;
    for (size_t k = first; k < p->i; k++)
        len += p->t[k].len; /* an upper bound: folding inside quotes is dropped */
    char *addr = malloc(len + 1);
    char **grown = addr != NULL ? realloc(*p->list, (*p->n_list + 1) * sizeof(char *)) : NULL;
    if (grown == NULL) {
        free(addr);
        return addr_fail(p, addr_out_of_memory);
    }
    *p->list = grown;
    len = 0;
    for (size_t k = first; k < p->i; k++)
        for (size_t j = 0; j < p->t[k].len; j++)
            if (p->t[k].text[j] != '\r' && p->t[k].text[j] != '\n') /* unfold */
                addr[len++] = p->t[k].text[j];
    addr[len] = '\0';
    grown[(*p->n_list)++] = addr;
    return 0;
}

/* angle-addr = "<" [obs-route] addr-spec ">", obs-route = "@" domain *("," "@" domain) ":" */
static int addr_angle(struct addr_parser *p)
{
    p->i++; /* '<' */
    if (addr_at(p, '@')) {
        while (p->i < p->n && !addr_at(p, ':') && !addr_at(p, '>'))
            p->i++;
        if (!addr_at(p, ':'))
            return addr_fail(p, "bad route in '<...>'");
        p->i++;
    }
    if (addr_at(p, '>'))
        return addr_fail(p, "empty '<>'");
    if (addr_spec(p))
        return -1;
    if (!addr_at(p, '>'))
        return addr_fail(p, "unbalanced '<'");
    p->i++;
    return 0;
}

/* mailbox = name-addr / addr-spec; the display name is a phrase (obs-phrase allows
 * dots: "John Q. Public <john@example.org>"). */
static int addr_mailbox(struct addr_parser *p)
{
    size_t start = p->i;
    while (addr_at_word(p) || addr_at(p, '.'))
        p->i++;
    if (addr_at(p, '<'))
        return addr_angle(p);
    p->i = start;
    return addr_spec(p);
}

/* Members up to `end` (';' in a group, -1 for the whole list), obs-addr-list style:
 * empty members between commas are allowed. */
static int addr_members(struct addr_parser *p, int end, bool groups)
{
    while (p->i < p->n && !addr_at(p, end)) {
        if (addr_at(p, ',')) {
            p->i++;
            continue;
        }
        size_t start = p->i;
        while (addr_at_word(p) || addr_at(p, '.'))
            p->i++;
        if (addr_at(p, ':')) {
            if (!groups || p->i == start)
                return addr_fail(p, groups ? "group without a name" : "group inside a group");
            p->i++;
            if (addr_members(p, ';', false))
                return -1;
            if (addr_at(p, ';')) /* a missing ';' at the end is tolerated, as sendmail does */
                p->i++;
        } else {
            p->i = start;
            if (addr_mailbox(p))
                return -1;
        }
        if (p->i < p->n && !addr_at(p, ',') && !addr_at(p, end))
            return addr_fail(p, "',' expected between addresses");
    }
    return 0;
}

int msgprep_address_list(const char *s, size_t len, char ***list, size_t *n, const char **why)
{
    struct tokens t = {0};
    int rc = addr_tokenize(s, len, &t, why);
    if (rc == 0) {
        struct addr_parser p = {t.v, t.n, 0, list, n, why};
        rc = addr_members(&p, -1, true);
    }
    free(t.v);
    return rc;
}

/* ---- recipient sets ----------------------------------------------------------------- */

/* Local part exact, domain case-insensitive (RFC 5321 2.4); the domain starts after the
 * last '@' (a quoted local part may hold one). */
static size_t addr_domain_at(const char *a)
{
    const char *at = strrchr(a, '@');
    return at != NULL ? (size_t)(at - a) : strlen(a);
}

static bool addr_same(const char *a, const char *b)
{
    size_t la = addr_domain_at(a), lb = addr_domain_at(b);
    return la == lb && memcmp(a, b, la) == 0 && strcasecmp(a + la, b + lb) == 0;
}

static uint64_t addr_hash(const char *a)
{
    size_t local = addr_domain_at(a);
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; a[i] != '\0'; i++) {
        unsigned char c = (unsigned char)a[i];
        if (i >= local && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ULL;
    }
    return h;
}

/* An open-addressing set of borrowed strings, enough to de-duplicate a header's worth of
 * addresses without the quadratic scan. */
struct addr_set {
    const char **slot;
    size_t mask;
};

static int addr_set_init(struct addr_set *s, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    s->slot = calloc(cap, sizeof(*s->slot));
    s->mask = cap - 1;
    return s->slot != NULL ? 0 : -1;
}

/* true if `a` was already in the set */
static bool addr_set_add(struct addr_set *s, const char *a)
{
    for (size_t i = (size_t)addr_hash(a) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == NULL) {
            s->slot[i] = a;
            return false;
        }
        if (addr_same(s->slot[i], a))
            return true;
    }
}

static void addr_list_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Moves the members of `list` not in `exclude` into m->rcpts, first occurrence only;
 * frees the rest and the list itself. */
static int rcpts_take(struct msgprep *m, char **list, size_t n, char **exclude, size_t n_exclude)
{
    struct addr_set seen;
    if (addr_set_init(&seen, n + n_exclude)) {
        addr_list_free(list, n);
        return -1;
    }
    for (size_t i = 0; i < n_exclude; i++)
        addr_set_add(&seen, exclude[i]);
    m->rcpts = malloc((n ? n : 1) * sizeof(*m->rcpts));
    if (m->rcpts == NULL) {
        free(seen.slot);
        addr_list_free(list, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (addr_set_add(&seen, list[i]))
            free(list[i]);
        else
            m->rcpts[m->n_rcpts++] = list[i];
    }
    free(seen.slot);
    free(list);
    return 0;
}

/* ---- the message -------------------------------------------------------------------- */

static int fail(struct msgprep *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct msgprep *m, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
    m->failed = code;
    return code;
}

static int out_of_memory(struct msgprep *m)
{
    return fail(m, EX_OSERR, "out of memory");
}

int msgprep_init(struct msgprep *m, const struct msgprep_settings *s)
{
    memset(m, 0, sizeof(*m));
    m->set = *s;
    m->set.cmdline_rcpts = NULL; /* parsed below; the strings are not kept */
    if (m->set.max_header == 0)
        m->set.max_header = MSGPREP_HEADER_DEFAULT;
    m->first_line = true;
    m->state = ST_HEADER;
    for (size_t i = 0; i < s->n_cmdline_rcpts; i++) {
        const char *why;
        const char *r = s->cmdline_rcpts[i];
        if (msgprep_address_list(r, strlen(r), &m->cmdline, &m->n_cmdline, &why) != 0) {
            if (why == addr_out_of_memory)
                return out_of_memory(m);
            return fail(m, EX_DATAERR, "%s... %s", r, why);
        }
    }
    if (s->read_recipients)
        return 0;
    char **list = m->cmdline;
    size_t n = m->n_cmdline;
    m->cmdline = NULL;
    m->n_cmdline = 0;
    if (rcpts_take(m, list, n, NULL, 0))
        return out_of_memory(m);
    if (m->n_rcpts == 0)
        return fail(m, EX_USAGE, "Recipient names must be specified");
    return 0;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static int flush(struct msgprep *m)
{
    if (m->out.len == 0)
        return 0;
    int rc = m->set.on_body != NULL ? m->set.on_body(m->set.arg, m->out.data, m->out.len) : 0;
    buf_consume(&m->out, m->out.len);
    if (rc != 0)
        m->failed = rc;
    return rc;
}

static int count(struct msgprep *m, size_t len)
{
    m->size += len;
    if (m->set.max_size != 0 && m->size > m->set.max_size)
        return fail(m, EX_DATAERR, "message too large (more than %llu octets)",
                    (unsigned long long)m->set.max_size);
    return 0;
}

static int emit(struct msgprep *m, const char *bytes, size_t len)
{
    if (count(m, len))
        return m->failed;
    if (buf_append(&m->out, bytes, len))
        return out_of_memory(m);
    return m->out.len >= MSGPREP_OUT_CHUNK ? flush(m) : 0;
}

/* One header field: `len` octets from `s`, CRLF lines, the first holding "name:". */
struct field {
    const char *s;
    size_t len, name_len;
};

static size_t field_name_len(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && s[n] != ':' && s[n] != ' ' && s[n] != '\t')
        n++;
    return n;
}

/* Next field of the raw header from offset *off; false at the end. */
static bool field_next(const struct buf *h, size_t *off, struct field *f)
{
    if (*off >= h->len)
        return false;
    const char *s = h->data + *off;
    size_t rest = h->len - *off, len = 0;
    do {
        const char *crlf = memchr(s + len, '\n', rest - len);
        len = (size_t)(crlf - s) + 1; /* every stored line ends in CRLF */
    } while (len < rest && (s[len] == ' ' || s[len] == '\t'));
    *f = (struct field){s, len, field_name_len(s, len)};
    *off += len;
    return true;
}

static int header_recipients(struct msgprep *m, const struct field *f, char ***list, size_t *n)
{
    const char *value = (const char *)memchr(f->s, ':', f->len) + 1;
    size_t len = f->len - (size_t)(value - f->s);
    const char *why;
    if (msgprep_address_list(value, len, list, n, &why) == 0)
        return 0;
    if (why == addr_out_of_memory)
        return out_of_memory(m);
    return fail(m, EX_DATAERR, "bad address in the %.*s: header: %s", (int)f->name_len, f->s, why);
}

static bool field_has_resent(const struct field *f)
{
    return f->name_len >= 7 && strncasecmp(f->s, "Resent-", 7) == 0;
}

/* sendmail takes To/Cc/Bcc, or only their Resent- forms in a resent message. */
static bool field_is_recipients(const struct field *f, bool resent)
{
    if (resent != field_has_resent(f))
        return false;
    const char *name = f->s + (resent ? 7 : 0);
    size_t len = f->name_len - (resent ? 7 : 0);
    return name_is(name, len, "To") || name_is(name, len, "Cc") || name_is(name, len, "Bcc");
}

/* The header block is complete: drop Bcc, take -t's recipients, hand it over. */
static int header_end(struct msgprep *m)
{
    bool resent = false;
    struct field f;
    for (size_t off = 0; field_next(&m->header, &off, &f);)
        resent |= field_has_resent(&f);

    struct buf kept;
    buf_init(&kept, 0);
    char **list = NULL;
    size_t n = 0;
    for (size_t off = 0; field_next(&m->header, &off, &f);) {
        if (m->set.read_recipients && field_is_recipients(&f, resent) &&
            header_recipients(m, &f, &list, &n)) {
            addr_list_free(list, n);
            buf_free(&kept);
            return m->failed;
        }
        if (name_is(f.s, f.name_len, "Bcc") || name_is(f.s, f.name_len, "Resent-Bcc"))
            continue;
        if (buf_append(&kept, f.s, f.len)) {
            addr_list_free(list, n);
            buf_free(&kept);
            return out_of_memory(m);
        }
    }
    buf_free(&m->header);
    m->header = kept;
    if (m->set.read_recipients) {
        if (rcpts_take(m, list, n, m->cmdline, m->n_cmdline))
            return out_of_memory(m);
        if (m->n_rcpts == 0)
            return fail(m, EX_USAGE, "No recipient addresses found in header");
    }
    if (count(m, m->header.len))
        return m->failed;
    int rc = m->set.on_header != NULL ? m->set.on_header(m->set.arg, m) : 0;
    if (rc != 0)
        m->failed = rc;
    return rc;
}

enum line_kind { LINE_EMPTY, LINE_FIELD, LINE_CONTINUATION, LINE_BODY, LINE_UNDECIDED };

/* What a header-block line is; `complete` says whether all of it has been read. */
static enum line_kind line_classify(const char *s, size_t len, bool complete, bool have_field)
{
    if (len == 0)
        return complete ? LINE_EMPTY : LINE_UNDECIDED;
    if (s[0] == ' ' || s[0] == '\t')
        return have_field ? LINE_CONTINUATION : LINE_BODY;
    size_t i = 0;
    while (i < len && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 && s[i] != ':')
        i++;
    size_t name = i;
    while (i < len && (s[i] == ' ' || s[i] == '\t')) /* RFC 5322 4.5.3: obs WSP before ':' */
        i++;
    if (i < len)
        return name > 0 && s[i] == ':' ? LINE_FIELD : LINE_BODY;
    return complete ? LINE_BODY : LINE_UNDECIDED;
}

static int body_line_end(struct msgprep *m)
{
    if (m->dot_pending && m->body_line_len == 1) {
        m->state = ST_DONE;
        m->done = true;
        return 0;
    }
    if (m->dot_pending && emit(m, ".", 1))
        return m->failed;
    m->dot_pending = false;
    m->body_line_len = 0;
    return emit(m, "\r\n", 2);
}

static int body_octet(struct msgprep *m, char c)
{
    if (m->set.max_line != 0 && m->body_line_len >= m->set.max_line)
        return fail(m, EX_DATAERR, "line longer than %zu octets", m->set.max_line);
    m->body_line_len++;
    if (m->body_line_len == 1 && c == '.' && !m->set.ignore_dots) {
        m->dot_pending = true;
        return 0;
    }
    if (m->dot_pending) {
        m->dot_pending = false;
        if (emit(m, ".", 1))
            return m->failed;
    }
    return emit(m, &c, 1);
}

/* The header-phase line turned out to be the first body line (complete or not). */
static int header_line_to_body(struct msgprep *m, bool complete)
{
    if (header_end(m))
        return m->failed;
    m->state = ST_BODY;
    m->body_line_len = m->line.len;
    if (emit(m, m->line.data, m->line.len))
        return m->failed;
    buf_consume(&m->line, m->line.len);
    return complete ? body_line_end(m) : 0;
}

static int header_line_end(struct msgprep *m)
{
    const char *s = m->line.data != NULL ? m->line.data : "";
    size_t len = m->line.len;
    bool first = m->first_line;
    m->first_line = false;
    if (first && len >= 5 && memcmp(s, "From ", 5) == 0) {
        buf_consume(&m->line, len);
        return 0;
    }
    if (len == 1 && s[0] == '.' && !m->set.ignore_dots) {
        buf_consume(&m->line, len);
        m->state = ST_DONE;
        m->done = true;
        return header_end(m);
    }
    switch (line_classify(s, len, true, m->header.len > 0)) {
    case LINE_EMPTY:
        if (header_end(m))
            return m->failed;
        m->state = ST_BODY;
        return emit(m, "\r\n", 2);
    case LINE_FIELD:
    case LINE_CONTINUATION:
        if (buf_append(&m->header, s, len) || buf_append(&m->header, "\r\n", 2))
            return out_of_memory(m);
        buf_consume(&m->line, len);
        return 0;
    default:
        return header_line_to_body(m, true);
    }
}

static int header_octet(struct msgprep *m, char c)
{
    if (m->set.max_line != 0 && m->line.len >= m->set.max_line)
        return fail(m, EX_DATAERR, "line longer than %zu octets", m->set.max_line);
    if (m->header.len + m->line.len + 3 > m->set.max_header) {
        /* a long first line may be body text already (no header at all): then it streams */
        enum line_kind kind = line_classify(m->line.data, m->line.len, false, m->header.len > 0);
        if (kind != LINE_BODY ||
            (m->first_line && m->line.len >= 5 && memcmp(m->line.data, "From ", 5) == 0))
            return fail(m, EX_DATAERR, "header longer than %zu octets", m->set.max_header);
        if (header_line_to_body(m, false))
            return m->failed;
        return body_octet(m, c);
    }
    if (buf_append(&m->line, &c, 1))
        return out_of_memory(m);
    return 0;
}

static int line_end(struct msgprep *m)
{
    return m->state == ST_HEADER ? header_line_end(m) : body_line_end(m);
}

int msgprep_feed(struct msgprep *m, const void *data, size_t len)
{
    const char *p = data;
    for (size_t i = 0; i < len && m->failed == 0 && m->state != ST_DONE; i++) {
        char c = p[i];
        if (c == '\0')
            return fail(m, EX_DATAERR, "message contains a NUL octet");
        if (c == '\n') {
            m->cr_pending = false;
            line_end(m);
            continue;
        }
        if (c == '\r') {
            m->cr_pending = true;
            continue;
        }
        if (m->cr_pending) {
            m->cr_pending = false;
            if (line_end(m) || m->state == ST_DONE)
                break;
        }
        if (m->state == ST_HEADER)
            header_octet(m, c);
        else
            body_octet(m, c);
    }
    return m->failed;
}

int msgprep_finish(struct msgprep *m)
{
    if (m->failed != 0)
        return m->failed;
    if (m->state != ST_DONE && (m->cr_pending || m->line.len > 0 || m->body_line_len > 0)) {
        m->cr_pending = false;
        if (line_end(m))
            return m->failed;
    }
    if (m->state == ST_HEADER) {
        m->state = ST_DONE;
        if (header_end(m))
            return m->failed;
    }
    m->state = ST_DONE;
    return flush(m);
}

void msgprep_free(struct msgprep *m)
{
    buf_free(&m->header);
    buf_free(&m->line);
    buf_free(&m->out);
    addr_list_free(m->rcpts, m->n_rcpts);
    addr_list_free(m->cmdline, m->n_cmdline);
    m->rcpts = m->cmdline = NULL;
    m->n_rcpts = m->n_cmdline = 0;
}
