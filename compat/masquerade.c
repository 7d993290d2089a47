/* sendmail's rulesets MasqSMTP, MasqHdr (93), MasqEnv (94) and the mailers' S=/R= sets,
 * over one parsed address instead of a token list; see the header for the steps. */
#include "compat/masquerade.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

/* Which of a mailer's rulesets an address goes through. */
enum masq_use { MASQ_ENV_SENDER, MASQ_HDR_SENDER, MASQ_HDR_RCPT };

/* An address as the rulesets see it: BARE is "user" with no domain, LOCAL is sendmail's
 * "user<@*LOCAL*>" (to be qualified), NAMED has a domain. `final` is a qualified
 * genericstable value, which ends the rewriting. */
enum masq_kind { MASQ_BARE, MASQ_LOCAL, MASQ_NAMED };

struct masq_addr {
    const char *local, *domain;
    size_t local_len, domain_len;
    enum masq_kind kind;
    const char *final;
};

struct masq_ctx {
    const struct masquerade_settings *s;
    enum masquerade_mailer mailer;
    struct buf key, value; /* genericstable key and its value (%n substituted) */
};

static const char *const masq_sender_fields[] = {
    "from", "sender", "reply-to", "errors-to", "resent-from", "resent-sender", "resent-reply-to"};
static const char *const masq_rcpt_fields[] = {
    "to", "cc", "bcc", "apparently-to", "resent-to", "resent-cc", "resent-bcc"};

static bool masq_name_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && strncasecmp(name, s, len) == 0;
}

/* Class membership; with `below` also a subdomain of an entry (sendmail's "$* $=X"). */
static bool masq_class_has(const struct masquerade_class *c, const char *s, size_t len, bool below)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *e = c->v[i];
        size_t elen = strlen(e);
        if (elen == len && strncasecmp(e, s, len) == 0)
            return true;
        if (below && elen > 0 && len > elen && s[len - elen - 1] == '.' &&
            strncasecmp(e, s + len - elen, elen) == 0)
            return true;
    }
    return false;
}

/* Class w: sendmail always puts $j in it. */
static bool masq_is_local_domain(const struct masquerade_settings *s, const char *d, size_t len)
{
    return masq_name_is(s->hostname, d, len) || masq_class_has(&s->local_domains, d, len, false);
}

/* sendmail's map_rewrite: %0 is the key, %1 the argument (%2-%9: nothing), %% and a
 * trailing % are '%', any other %c stays as written. */
static int masq_substitute(struct buf *out, const char *value, const char *key, const char *arg,
                           size_t arg_len)
{
    out->len = 0;
    for (const char *p = value; *p != '\0'; p++) {
        int rc;
        if (*p != '%' || p[1] == '\0')
            rc = buf_append(out, p, 1);
        else if (*++p == '%')
            rc = buf_append(out, p, 1);
        else if (*p < '0' || *p > '9')
            rc = buf_append(out, p - 1, 2);
        else if (*p == '0')
            rc = buf_append(out, key, strlen(key));
        else
            rc = *p == '1' && arg != NULL ? buf_append(out, arg, arg_len) : 0;
        if (rc != 0)
            return -1;
    }
    return buf_append(out, "", 1);
}

/* One genericstable lookup of the key built from `fmt`: 1 found (value in ctx->value),
 * 0 not, -1 out of memory. */
static int masq_generics_try(struct masq_ctx *ctx, const char *arg, size_t arg_len, const char *fmt,
                             ...) __attribute__((format(printf, 4, 5)));
static int masq_generics_try(struct masq_ctx *ctx, const char *arg, size_t arg_len, const char *fmt,
                             ...)
{
    va_list ap;
    ctx->key.len = 0;
    va_start(ap, fmt);
    int rc = buf_vprintf(&ctx->key, fmt, ap);
    va_end(ap);
    if (rc != 0 || buf_append(&ctx->key, "", 1) != 0)
        return -1;
    const struct map_simple_entry *e = map_simple_get(ctx->s->genericstable, ctx->key.data);
    if (e == NULL)
        return 0;
    return masq_substitute(&ctx->value, e->value, ctx->key.data, arg, arg_len) == 0 ? 1 : -1;
}

/* MasqHdr's genericstable part: the address, then user+*, user, @domain, then the local
 * part alone the same way. `domain` is the domain or $j for *LOCAL*. */
static int masq_generics(struct masq_ctx *ctx, const struct masq_addr *a, const char *domain,
                         int domain_len)
{
    int ll = (int)a->local_len;
    const char *plus = a->local_len > 1 ? memchr(a->local + 1, '+', a->local_len - 1) : NULL;
    int ul = plus != NULL ? (int)(plus - a->local) : 0;
    const char *detail = plus != NULL ? plus + 1 : NULL;
    size_t dl = plus != NULL ? a->local_len - (size_t)ul - 1 : 0;
    int rc = masq_generics_try(ctx, NULL, 0, "%.*s@%.*s", ll, a->local, domain_len, domain);
    if (rc == 0 && plus != NULL) {
        rc = masq_generics_try(ctx, detail, dl, "%.*s+*@%.*s", ul, a->local, domain_len, domain);
        if (rc == 0)
            rc = masq_generics_try(ctx, NULL, 0, "%.*s@%.*s", ul, a->local, domain_len, domain);
    }
    if (rc == 0 && a->kind == MASQ_NAMED)
        rc = masq_generics_try(ctx, a->local, a->local_len, "@%.*s", domain_len, domain);
    if (rc == 0)
        rc = masq_generics_try(ctx, NULL, 0, "%.*s", ll, a->local);
    if (rc == 0 && plus != NULL) {
        rc = masq_generics_try(ctx, detail, dl, "%.*s+*", ul, a->local);
        if (rc == 0)
            rc = masq_generics_try(ctx, NULL, 0, "%.*s", ul, a->local);
    }
    return rc;
}

static void masq_set_domain(struct masq_addr *a, const char *domain)
{
    a->kind = MASQ_NAMED;
    a->domain = domain;
    a->domain_len = strlen(domain);
}

/* Ruleset MasqHdr. -1 only when memory ran out. */
static int masq_hdr(struct masq_ctx *ctx, struct masq_addr *a)
{
    const struct masquerade_settings *s = ctx->s;
    if (a->kind == MASQ_BARE)
        return 0;
    if (s->genericstable != NULL &&
        (a->kind == MASQ_LOCAL || masq_class_has(&s->generics_domains, a->domain, a->domain_len,
                                                 s->generics_entire_domain))) {
        const char *d = a->kind == MASQ_NAMED ? a->domain : s->hostname;
        size_t dlen = a->kind == MASQ_NAMED ? a->domain_len : strlen(s->hostname);
        int rc = masq_generics(ctx, a, d, (int)dlen);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            const char *v = ctx->value.data;
            if (strchr(v, '@') != NULL) {
                a->final = v;
                return 0;
            }
            a->local = v;
            a->local_len = strlen(v);
            a->kind = MASQ_LOCAL;
        }
    }
    if (a->kind == MASQ_NAMED && masq_class_has(&s->exceptions, a->domain, a->domain_len, true))
        return 0;
    if (s->as == NULL)
        return 0;
    bool in_m = a->kind == MASQ_NAMED &&
                masq_class_has(&s->domains, a->domain, a->domain_len, s->entire_domain);
    bool in_w =
        a->kind == MASQ_NAMED && !s->limited && masq_is_local_domain(s, a->domain, a->domain_len);
    if (masq_class_has(&s->exposed_users, a->local, a->local_len, false)) {
        if (a->kind == MASQ_LOCAL)
            masq_set_domain(a, s->hostname);
        return 0;
    }
    if (*s->as != '\0' && (a->kind == MASQ_LOCAL || in_m || in_w))
        masq_set_domain(a, s->as);
    return 0;
}

/* Ruleset Canonify2's names for this host: localhost, localhost.$m ($m: $j's parent
 * domain) and an address literal in class w all become $j. */
static void masq_canonify(const struct masquerade_settings *s, struct masq_addr *a)
{
    const char *parent = strchr(s->hostname, '.');
    size_t plen = parent != NULL ? strlen(parent) : 0;
    bool local =
        masq_name_is("localhost", a->domain, a->domain_len) ||
        (plen > 1 && a->domain_len == 9 + plen && strncasecmp(a->domain, "localhost", 9) == 0 &&
         strncasecmp(a->domain + 9, parent, plen) == 0) ||
        (a->domain[0] == '[' && masq_is_local_domain(s, a->domain, a->domain_len));
    if (local)
        masq_set_domain(a, s->hostname);
}

/* The mailer's rulesets for one address: canonify, qualification, masquerading when this
 * use of this mailer asks for it, then *LOCAL* becomes $j. */
static int masq_rewrite(struct masq_ctx *ctx, enum masq_use use, struct masq_addr *a)
{
    const struct masquerade_settings *s = ctx->s;
    if (a->kind == MASQ_NAMED)
        masq_canonify(s, a);
    bool local = ctx->mailer == MASQUERADE_LOCAL;
    bool masq = use == MASQ_HDR_SENDER || (use == MASQ_HDR_RCPT && s->all_headers) ||
                (use == MASQ_ENV_SENDER && s->envelope);
    if (local && s->not_local)
        masq = false;
    if (a->kind == MASQ_BARE && (!local || s->always_add_domain != NULL)) {
        a->kind = MASQ_LOCAL;
        /* AddDomain's "$1 < @ domain >" has no trailing dot: not canonical, so MasqHdr's
         * rules, which all want one, leave it alone. */
        if (local && *s->always_add_domain != '\0') {
            masq_set_domain(a, s->always_add_domain);
            masq = false;
        }
    }
    if (masq && masq_hdr(ctx, a) != 0)
        return -1;
    if (a->final == NULL && a->kind == MASQ_LOCAL)
        masq_set_domain(a, s->hostname);
    return 0;
}

/* Splits an addr-spec at its last '@' outside quotes. false for what the rulesets would
 * not see as one plain address: empty parts, white space, comments, specials. */
static bool masq_parse(const char *p, size_t n, struct masq_addr *a)
{
    const char *at = NULL;
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x21 && !(quoted && (c == ' ' || c == '\t'))) || c == 0x7f)
            return false;
        if (quoted && c == '\\' && i + 1 < n)
            i++;
        else if (c == '"')
            quoted = !quoted;
        else if (!quoted && strchr("()<>,;:\\", c) != NULL)
            return false;
        else if (!quoted && c == '@')
            at = p + i;
    }
    if (quoted || n == 0)
        return false;
    *a = (struct masq_addr){.local = p, .local_len = n, .kind = MASQ_BARE};
    if (at != NULL) {
        a->local_len = (size_t)(at - p);
        a->domain = at + 1;
        a->domain_len = n - a->local_len - 1;
        a->kind = MASQ_NAMED;
        if (a->local_len == 0 || a->domain_len == 0)
            return false;
        /* ruleset final drops the root's dot */
        if (a->domain_len > 1 && a->domain[a->domain_len - 1] == '.')
            a->domain_len--;
    }
    return true;
}

/* Appends the address in [p, p+n) as rewritten: 1, 0 (the same bytes), -1 (out full).
 * A source route ("@a,@b:user@c") is dropped as ruleset canonify does. */
static int masq_span(struct masq_ctx *ctx, enum masq_use use, const char *p, size_t n,
                     struct buf *out)
{
    const char *addr = p;
    if (*p == '@') {
        const char *colon = memchr(p, ':', n);
        addr = colon != NULL ? colon + 1 : p;
    }
    struct masq_addr a;
    if (!masq_parse(addr, n - (size_t)(addr - p), &a))
        return buf_append(out, p, n);
    if (masq_rewrite(ctx, use, &a) != 0)
        return -1;
    size_t before = out->len;
    int rc = a.final != NULL       ? buf_append(out, a.final, strlen(a.final))
             : a.kind == MASQ_BARE ? buf_append(out, a.local, a.local_len)
                                   : buf_printf(out, "%.*s@%.*s", (int)a.local_len, a.local,
                                                (int)a.domain_len, a.domain);
    if (rc != 0)
        return -1;
    return out->len - before != n || memcmp(out->data + before, p, n) != 0;
}

static bool masq_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Index after the quoted string or comment that starts at v[i] (its end, if unclosed). */
static size_t masq_skip(const char *v, size_t i, size_t n)
{
    char open = v[i];
    int depth = 1;
    for (i++; i < n; i++) {
        if (v[i] == '\\')
            i++;
        else if (open == '"' ? v[i] == '"' : (v[i] == ')' && --depth == 0))
            return i + 1;
        else if (open == '(' && v[i] == '(')
            depth++;
    }
    return n;
}

/* The address inside one list element [a, b): between its angle brackets, else the text
 * from the first to the last character outside white space and comments. */
static void masq_element_span(const char *v, size_t a, size_t b, size_t *start, size_t *end)
{
    size_t first = b, last = b;
    for (size_t i = a; i < b;) {
        if (v[i] == '(') {
            i = masq_skip(v, i, b);
            continue;
        }
        if (masq_wsp(v[i])) {
            i++;
            continue;
        }
        if (v[i] == '<') {
            size_t j = i + 1;
            while (j < b && v[j] != '>')
                j = v[j] == '"' || v[j] == '(' ? masq_skip(v, j, b) : j + 1;
            first = last = b; /* unclosed: no address, and never the display name */
            if (j < b) {
                for (first = i + 1; first < j && masq_wsp(v[first]); first++)
                    ;
                for (last = j; last > first && masq_wsp(v[last - 1]); last--)
                    ;
            }
            break;
        }
        if (first == b)
            first = i;
        i = v[i] == '"' ? masq_skip(v, i, b) : i + 1;
        last = i;
    }
    *start = first;
    *end = last;
}

/* An address field's value: its elements split at ',' and ';' outside quotes, comments and
 * angle brackets; a ':' there ends a group's name. */
static int masq_value(struct masq_ctx *ctx, enum masq_use use, const char *v, size_t n,
                      struct buf *out)
{
    size_t copied = 0, elem = 0;
    bool angle = false;
    int count = 0;
    for (size_t i = 0; i <= n;) {
        if (i < n && (v[i] == '"' || v[i] == '(')) {
            i = masq_skip(v, i, n);
            continue;
        }
        if (i < n && (v[i] == '<' || v[i] == '>'))
            angle = v[i] == '<';
        if (i < n && !angle && v[i] == ':')
            elem = i + 1;
        if (i == n || (!angle && (v[i] == ',' || v[i] == ';'))) {
            size_t start, end;
            masq_element_span(v, elem, i, &start, &end);
            if (end > start) {
                if (buf_append(out, v + copied, start - copied) != 0)
                    return -1;
                int rc = masq_span(ctx, use, v + start, end - start, out);
                if (rc < 0)
                    return -1;
                count += rc;
                copied = end;
            }
            elem = i + 1;
        }
        i++;
    }
    return buf_append(out, v + copied, n - copied) == 0 ? count : -1;
}

static bool masq_field_in(const char *const *names, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (masq_name_is(names[i], name, len))
            return true;
    return false;
}

/* The use of a field by its name, or -1 for a field that is not an address field. */
static int masq_field_use(const char *name, size_t len)
{
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
        len--;
    if (masq_field_in(masq_sender_fields, sizeof(masq_sender_fields) / sizeof(*masq_sender_fields),
                      name, len))
        return MASQ_HDR_SENDER;
    if (masq_field_in(masq_rcpt_fields, sizeof(masq_rcpt_fields) / sizeof(*masq_rcpt_fields), name,
                      len))
        return MASQ_HDR_RCPT;
    return -1;
}

static void masq_ctx_init(struct masq_ctx *ctx, const struct masquerade_settings *s,
                          enum masquerade_mailer m)
{
    *ctx = (struct masq_ctx){.s = s, .mailer = m};
    buf_init(&ctx->key, 0);
    buf_init(&ctx->value, 0);
}

static void masq_ctx_free(struct masq_ctx *ctx)
{
    buf_free(&ctx->key);
    buf_free(&ctx->value);
}

int masquerade_sender(const struct masquerade_settings *s, enum masquerade_mailer m,
                      const char *sender, struct buf *out)
{
    if (*sender == '\0')
        return 0;
    struct masq_ctx ctx;
    masq_ctx_init(&ctx, s, m);
    int rc = masq_span(&ctx, MASQ_ENV_SENDER, sender, strlen(sender), out);
    masq_ctx_free(&ctx);
    return rc;
}

int masquerade_headers(const struct masquerade_settings *s, enum masquerade_mailer m,
                       const char *block, size_t len, struct buf *out)
{
    struct masq_ctx ctx;
    masq_ctx_init(&ctx, s, m);
    int count = 0;
    for (size_t pos = 0; pos < len && count >= 0;) {
        size_t end = pos;
        do {
            const char *nl = memchr(block + end, '\n', len - end);
            end = nl != NULL ? (size_t)(nl - block) + 1 : len;
        } while (end < len && (block[end] == ' ' || block[end] == '\t'));
        const char *colon = memchr(block + pos, ':', end - pos);
        int use = colon != NULL ? masq_field_use(block + pos, (size_t)(colon - block) - pos) : -1;
        if (use < 0) {
            if (buf_append(out, block + pos, end - pos) != 0)
                count = -1;
        } else {
            size_t vstart = (size_t)(colon - block) + 1;
            int rc = buf_append(out, block + pos, vstart - pos);
            if (rc == 0)
                rc = masq_value(&ctx, (enum masq_use)use, block + vstart, end - vstart, out);
            count = rc < 0 ? -1 : count + rc;
        }
        pos = end;
    }
    masq_ctx_free(&ctx);
    return count;
}
