#include "compat/alias_expand.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_named_error.h"

#include "compat/map_text.h"

/* An address or local part longer than this matches no map and no user. */
#define ALIAS_EXPAND_ADDR_MAX  512
#define ALIAS_EXPAND_VALUE_MAX 1024

/* Where a target comes from: what its leaves inherit. */
struct alias_origin {
    const struct alias *parent; /* the alias whose list this is (self-reference test) */
    const char *self;           /* a .forward's login: its own name is its mailbox */
    const char *self_detail;    /* the +detail of the recipient whose .forward this is */
    const char *name;           /* the alias, file or login that named the target */
    const char *owner;          /* a .forward's login, NULL for the aliases */
    const char *include;        /* the :include: file, or NULL */
    const char *sender;         /* owner-NAME's sender, or NULL */
    unsigned depth;
    bool luser; /* already sent to luser_relay: no second time */
};

struct alias_expander {
    const struct alias_expand_settings *s;
    struct alias_leaves *out;
    const struct alias *stack[ALIAS_EXPAND_DEPTH_MAX + 1]; /* aliases being expanded */
    size_t n_stack;
    const struct alias **done; /* aliases expanded once already */
    size_t n_done, cap_done;
    struct map_strings includes; /* :include: files read once already (sendmail's sameaddr) */
    size_t reading[ALIAS_EXPAND_DEPTH_MAX + 2]; /* indices of those being read now */
    size_t n_reading;
    char luser[2 * ALIAS_EXPAND_ADDR_MAX]; /* an unknown name rewritten for luser_relay */
    bool loop; /* a target named an alias or file still being expanded above it */
    bool oom;
};

static bool alias_str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* sendmail's sameaddr: one delivery per mailer, target, detail and identity. */
static bool alias_leaf_same(const struct alias_leaf *l, enum alias_leaf_kind kind,
                            const char *value, const struct alias_leaf *n)
{
    return l->kind == kind && strcmp(l->value, value) == 0 && alias_str_eq(l->detail, n->detail) &&
           alias_str_eq(l->owner, n->owner) && alias_str_eq(l->relay, n->relay) &&
           l->no_forward == n->no_forward &&
           (kind != ALIAS_LEAF_ERROR || alias_str_eq(l->address, n->address));
}

static char *alias_dup(struct alias_expander *x, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        x->oom = true;
    return d;
}

static void alias_leaf_clear(struct alias_leaf *l)
{
    free(l->value);
    free(l->address);
    free(l->detail);
    free(l->owner);
    free(l->include);
    free(l->sender);
    free(l->relay);
}

/* Appends a leaf unless an identical one is there; `proto` gives the optional fields. */
static void alias_leaf_add(struct alias_expander *x, enum alias_leaf_kind kind, const char *value,
                           const struct alias_leaf *proto)
{
    struct alias_leaves *out = x->out;
    struct alias_leaf p = *proto;
    if (kind != ALIAS_LEAF_PROGRAM && kind != ALIAS_LEAF_FILE)
        p.owner = NULL; /* a mailbox or an address is the same whoever's .forward named it */
    proto = &p;
    for (size_t i = 0; i < out->n; i++)
        if (alias_leaf_same(&out->v[i], kind, value, proto))
            return;
    if (map_grow((void **)&out->v, &out->cap, out->n, sizeof(*out->v)) < 0) {
        x->oom = true;
        return;
    }
    struct alias_leaf *l = &out->v[out->n];
    *l = *proto;
    l->kind = kind;
    l->value = alias_dup(x, value);
    l->address = alias_dup(x, proto->address);
    l->detail = alias_dup(x, proto->detail);
    l->owner = alias_dup(x, proto->owner);
    l->include = alias_dup(x, proto->include);
    l->sender = alias_dup(x, proto->sender);
    l->relay = alias_dup(x, proto->relay);
    if (x->oom)
        alias_leaf_clear(l);
    else
        out->n++;
}

static struct alias_leaf alias_proto(const struct alias_origin *o, const char *address)
{
    return (struct alias_leaf){.address = (char *)address,
                               .owner = (char *)o->owner,
                               .include = (char *)o->include,
                               .sender = (char *)o->sender,
                               .depth = o->depth};
}

static void alias_error(struct alias_expander *x, const struct alias_origin *o, const char *address,
                        const char *code, const char *dsn, const char *text)
{
    struct alias_leaf p = alias_proto(o, address);
    snprintf(p.code, sizeof(p.code), "%s", code);
    snprintf(p.dsn, sizeof(p.dsn), "%s", dsn);
    alias_leaf_add(x, ALIAS_LEAF_ERROR, text, &p);
}

static void alias_loop_error(struct alias_expander *x, const struct alias_origin *o,
                             const char *address)
{
    char text[96];
    snprintf(text, sizeof(text), "aliasing/forwarding loop broken (%u aliases deep; %d max)",
             o->depth, ALIAS_EXPAND_DEPTH_MAX);
    alias_error(x, o, address, "554", "5.4.6", text);
}

static void alias_refuse(struct alias_refusal *why, const char *code, const char *dsn,
                         const char *text)
{
    snprintf(why->code, sizeof(why->code), "%s", code);
    snprintf(why->dsn, sizeof(why->dsn), "%s", dsn);
    snprintf(why->text, sizeof(why->text), "%s", text);
}

/* The enhanced status of an "error:" target written without one. */
static const char *alias_target_dsn(const struct alias_target *t)
{
    return t->dsn[0] ? t->dsn : t->code[0] == '4' ? "4.0.0" : "5.0.0";
}

/* A virtusertable "error:" value: named ("nouser", "nouser text") or a reply. */
static void alias_error_value(const char *after, struct alias_refusal *r)
{
    size_t w = strspn(after, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    const struct smtp_named_error *ne = smtp_named_error(after, w);
    if (ne) {
        const char *text = after + w + strspn(after + w, " \t:");
        alias_refuse(r, ne->code, ne->dsn, *text ? text : ne->text);
        return;
    }
    char code[4], dsn[16];
    const char *msg, *why;
    if (map_parse_error(after, code, dsn, &msg, &why) < 0) {
        /* the map was checked at load; a value that still fails is a configuration error */
        alias_refuse(r, "451", "4.3.5", "bad error: value in the virtusertable");
        return;
    }
    if (!dsn[0])
        snprintf(dsn, sizeof(dsn), "%c.0.0", code[0]);
    alias_refuse(r, code, dsn, msg);
}

static bool alias_domain_local(const struct alias_expand_settings *s, const char *domain)
{
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    for (size_t i = 0; i < s->n_local_domains; i++)
        if (strlen(s->local_domains[i]) == n && strncasecmp(s->local_domains[i], domain, n) == 0)
            return true;
    return false;
}

static const struct alias *alias_lookup(const struct alias_expand_settings *s, const char *name)
{
    for (size_t i = 0; i < s->n_aliases; i++) {
        const struct alias *a = aliases_lookup(&s->aliases[i], name);
        if (a)
            return a;
    }
    return NULL;
}

/* sendmail's ruleset 5 order: "user+detail", "user+*", then "user". */
static const struct alias *alias_find(const struct alias_expand_settings *s, const char *user,
                                      const char *detail)
{
    char key[ALIAS_EXPAND_ADDR_MAX + 4];
    const struct alias *a = NULL;
    if (detail) {
        snprintf(key, sizeof(key), "%s+%s", user, detail);
        a = alias_lookup(s, key);
        if (!a) {
            snprintf(key, sizeof(key), "%s+*", user);
            a = alias_lookup(s, key);
        }
    }
    return a ? a : alias_lookup(s, user);
}

/* The login as the system knows it: as written, else lower-cased (sendmail's finduser). */
static bool alias_login(const struct alias_expand_settings *s, const char *user, char *login,
                        size_t loginlen)
{
    if (!s->user_exists || strlen(user) >= loginlen)
        return false;
    snprintf(login, loginlen, "%s", user);
    if (s->user_exists(s->arg, login))
        return true;
    bool upper = false;
    for (char *p = login; *p; p++) {
        upper |= isupper((unsigned char)*p) != 0;
        *p = (char)tolower((unsigned char)*p);
    }
    return upper && s->user_exists(s->arg, login);
}

/* "user+detail@domain" split into a NUL-terminated user and detail (NULL when none) in buf;
 * *domain is NULL without '@'. False when it does not fit. */
static bool alias_split(const char *addr, char *buf, size_t buflen, char **user, char **detail,
                        char **domain)
{
    if (strlen(addr) >= buflen)
        return false;
    snprintf(buf, buflen, "%s", addr);
    char *at = strrchr(buf, '@');
    *domain = NULL;
    if (at) {
        *at = '\0';
        *domain = at + 1;
    }
    char *plus = strchr(buf, '+');
    *detail = NULL;
    if (plus) {
        *plus = '\0';
        *detail = plus + 1;
    }
    *user = buf;
    return true;
}

static void alias_address(struct alias_expander *x, const char *addr, const struct alias_origin *o);

static bool alias_all_digits(const char *s)
{
    return *s && s[strspn(s, "0123456789")] == '\0';
}

/* What a luser_relay host gets for an unknown name: sendmail's Localaddr ruleset makes it
 * user+detail<@host> (host: the relay without its "mailer:" and, in ringmail's form of a
 * mailertable value, its ":port"), or, with FEATURE(preserve_luser_host), keeps the
 * recipient's own domain ({Host}; a recipient without one gets the relay's). */
static const char *alias_luser_address(struct alias_expander *x, const char *user,
                                       const char *detail, const char *address)
{
    const char *relay = x->s->luser_relay;
    if (x->s->preserve_luser_host && strchr(address, '@'))
        return address;
    size_t m = strspn(relay, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    const char *host =
        m && relay[m] == ':' && !alias_all_digits(relay + m + 1) ? relay + m + 1 : relay;
    const char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    int hl = (int)strlen(host);
    if (host[0] == '[' && end)
        hl = (int)(end + 1 - host);
    else if (host[0] != '[' && end && alias_all_digits(end + 1))
        hl = (int)(end - host);
    snprintf(x->luser, sizeof(x->luser), "%s%s%s@%.*s", user, detail ? "+" : "",
             detail ? detail : "", hl, host);
    return x->luser;
}

static void alias_mailbox(struct alias_expander *x, const char *user, const char *detail,
                          const char *address, bool no_forward, const struct alias_origin *o)
{
    const struct alias_expand_settings *s = x->s;
    char login[256];
    if (alias_login(s, user, login, sizeof(login))) {
        struct alias_leaf p = alias_proto(o, address);
        p.detail = (char *)detail;
        p.no_forward = no_forward;
        alias_leaf_add(x, ALIAS_LEAF_MAILBOX, login, &p);
        return;
    }
    const char *relay = s->luser_relay;
    if (!relay || !*relay || o->luser) {
        alias_error(x, o, address, "550", "5.1.1", "User unknown");
        return;
    }
    struct alias_origin next = *o;
    next.luser = true;
    next.depth++;
    struct alias_leaf p = alias_proto(o, address);
    if (strncasecmp(relay, "local:", 6) == 0) {
        alias_address(x, relay + 6, &next);
    } else if (strchr(relay, '@')) {
        alias_leaf_add(x, ALIAS_LEAF_REMOTE, relay, &p);
    } else {
        p.relay = (char *)relay;
        alias_leaf_add(x, ALIAS_LEAF_REMOTE, alias_luser_address(x, user, detail, address), &p);
    }
}

static void alias_target(struct alias_expander *x, const struct alias_target *t,
                         const struct alias_origin *o);

static bool alias_seen(const struct alias *const *v, size_t n, const struct alias *a)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == a)
            return true;
    return false;
}

/* owner-NAME's value when it is one plain address, else "owner-NAME" (sendmail's alias()). */
static void alias_owner(const struct alias_expand_settings *s, const struct alias *a, char *out,
                        size_t outlen)
{
    char key[ALIAS_EXPAND_ADDR_MAX + 8];
    if (strncmp(a->name, "owner-", 6) == 0)
        snprintf(key, sizeof(key), "owner-owner");
    else
        snprintf(key, sizeof(key), "owner-%s", a->name);
    const struct alias *owner = alias_lookup(s, key);
    out[0] = '\0';
    if (!owner)
        return;
    const struct alias_target *t = &owner->targets[0];
    if (owner->n_targets == 1 && t->kind == ALIAS_ADDRESS && !strpbrk(t->value, ",:/|\"\\"))
        snprintf(out, outlen, "%s", t->value);
    else
        snprintf(out, outlen, "%s", key);
}

static void alias_alias(struct alias_expander *x, const struct alias *a,
                        const struct alias_origin *o)
{
    if (alias_seen(x->stack, x->n_stack, a)) {
        x->loop = true;
        return;
    }
    if (alias_seen(x->done, x->n_done, a)) /* sendmail: "duplicate suppressed" */
        return;
    if (x->n_stack >= sizeof(x->stack) / sizeof(x->stack[0])) {
        alias_loop_error(x, o, a->name);
        return;
    }
    if (map_grow((void **)&x->done, &x->cap_done, x->n_done, sizeof(*x->done)) < 0) {
        x->oom = true;
        return;
    }
    x->done[x->n_done++] = a;
    char owner[ALIAS_EXPAND_ADDR_MAX + 8];
    alias_owner(x->s, a, owner, sizeof(owner));
    struct alias_origin next = {.parent = a,
                                .name = a->name,
                                .sender = owner[0] ? owner : o->sender,
                                .depth = o->depth + 1,
                                .luser = o->luser};
    x->stack[x->n_stack++] = a;
    for (size_t i = 0; i < a->n_targets && !x->oom; i++)
        alias_target(x, &a->targets[i], &next);
    x->n_stack--;
}

static void alias_virtuser(struct alias_expander *x, const char *addr, const char *value,
                           const struct alias_origin *o)
{
    if (strncasecmp(value, "error:", 6) == 0) {
        struct alias_refusal r = {0};
        alias_error_value(value + 6, &r);
        alias_error(x, o, addr, r.code, r.dsn, r.text);
        return;
    }
    struct alias_origin next = *o;
    next.depth++;
    next.parent = NULL;
    alias_address(x, value, &next);
}

static void alias_address(struct alias_expander *x, const char *addr, const struct alias_origin *o)
{
    const struct alias_expand_settings *s = x->s;
    if (o->depth > ALIAS_EXPAND_DEPTH_MAX) {
        alias_loop_error(x, o, addr);
        return;
    }
    bool quoted = addr[0] == '\\';
    const char *a = addr + quoted;
    size_t n = strlen(a);
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
        a++;
        n -= 2;
    }
    char written[ALIAS_EXPAND_ADDR_MAX], buf[ALIAS_EXPAND_ADDR_MAX], *user, *detail, *domain;
    if (n < sizeof(written))
        snprintf(written, sizeof(written), "%.*s", (int)n, a);
    if (n >= sizeof(written) || !alias_split(written, buf, sizeof(buf), &user, &detail, &domain) ||
        !*user || (domain && !*domain)) {
        alias_error(x, o, addr, "550", "5.1.3", "Bad recipient address syntax");
        return;
    }
    if (domain && !alias_domain_local(s, domain)) {
        struct alias_leaf p = alias_proto(o, written);
        alias_leaf_add(x, ALIAS_LEAF_REMOTE, written, &p);
        return;
    }
    if (domain && !quoted && s->virtusertable) {
        char value[ALIAS_EXPAND_VALUE_MAX];
        int rc = virtuser_lookup(s->virtusertable, written, value, sizeof(value));
        if (rc < 0) {
            alias_error(x, o, written, "451", "4.3.5", "virtusertable value too long");
            return;
        }
        if (rc > 0) {
            alias_virtuser(x, written, value, o);
            return;
        }
    }
    if (o->self && strcasecmp(user, o->self) == 0) {
        /* a .forward naming its own user, with or without a backslash: the mailbox, keeping
         * the recipient's +detail for $h unless the line gives one */
        alias_mailbox(x, user, detail ? detail : o->self_detail, written, true, o);
        return;
    }
    if (quoted) {
        alias_mailbox(x, user, detail, written, true, o);
        return;
    }
    const struct alias *al = alias_find(s, user, detail);
    if (al && al == o->parent) /* "root: root, ops": QSELFREF, the user's own mailbox */
        alias_mailbox(x, user, detail, written, false, o);
    else if (al)
        alias_alias(x, al, o);
    else
        alias_mailbox(x, user, detail, written, false, o);
}

static void alias_include(struct alias_expander *x, const char *path, const struct alias_origin *o)
{
    const struct alias_expand_settings *s = x->s;
    char address[ALIAS_EXPAND_ADDR_MAX + 16];
    snprintf(address, sizeof(address), ":include:%s", path);
    if (o->depth > ALIAS_EXPAND_DEPTH_MAX) {
        alias_loop_error(x, o, address);
        return;
    }
    for (size_t i = 0; i < x->includes.n; i++) {
        if (strcmp(x->includes.v[i], path) == 0) {
            /* a file included twice counts once; one that includes itself is a loop */
            for (size_t r = 0; r < x->n_reading; r++)
                x->loop |= x->reading[r] == i;
            return;
        }
    }
    if (x->n_reading >= sizeof(x->reading) / sizeof(x->reading[0])) {
        alias_loop_error(x, o, address);
        return;
    }
    if (map_strings_add(&x->includes, path) < 0) {
        x->oom = true;
        return;
    }
    char *text = NULL;
    size_t len = 0;
    int err = s->include ? s->include(s->arg, path, o->owner, &text, &len) : ENOENT;
    if (err != 0) {
        /* sendmail's include(): a transient error defers, a missing or unreadable file bounces */
        bool lasting = err == ENOENT || err == EACCES || err == EPERM || err == ENOTDIR ||
                       err == ELOOP || err == EISDIR;
        char text_err[ALIAS_EXPAND_ADDR_MAX + 64];
        snprintf(text_err, sizeof(text_err), "Cannot open %s: %s", path,
                 err > 0 ? strerror(err) : "cannot be read");
        alias_error(x, o, address, lasting ? "550" : "451", lasting ? "5.2.4" : "4.2.4", text_err);
        return;
    }
    struct alias_list list = {0};
    if (aliases_parse_targets(path, text, len, &list) < 0)
        x->oom = true;
    free(text);
    struct alias_origin next = *o;
    next.parent = NULL;
    next.self = NULL;
    next.name = path;
    next.include = path;
    next.depth++;
    x->reading[x->n_reading++] = x->includes.n - 1;
    for (size_t i = 0; i < list.n && !x->oom; i++)
        alias_target(x, &list.v[i], &next);
    x->n_reading--;
    alias_list_free(&list);
}

static void alias_target(struct alias_expander *x, const struct alias_target *t,
                         const struct alias_origin *o)
{
    switch (t->kind) {
    case ALIAS_ADDRESS:
        alias_address(x, t->value, o);
        break;
    case ALIAS_INCLUDE:
        alias_include(x, t->value, o);
        break;
    case ALIAS_PROGRAM:
    case ALIAS_FILE: {
        bool prog = t->kind == ALIAS_PROGRAM;
        char address[ALIAS_EXPAND_VALUE_MAX + 2];
        snprintf(address, sizeof(address), "%s%s", prog ? "|" : "", t->value);
        struct alias_leaf p = alias_proto(o, address);
        alias_leaf_add(x, prog ? ALIAS_LEAF_PROGRAM : ALIAS_LEAF_FILE, t->value, &p);
        break;
    }
    case ALIAS_ERROR:
        alias_error(x, o, o->name, t->code, alias_target_dsn(t), t->value);
        break;
    }
}

static int alias_finish(struct alias_expander *x, size_t before, const struct alias_origin *o,
                        const char *address)
{
    if (!x->oom && x->loop && x->out->n == before)
        alias_error(x, o, address, "554", "5.4.6", "aliasing/forwarding loop broken");
    free(x->done);
    map_strings_free(&x->includes);
    return x->oom ? -1 : 0;
}

int alias_expand(const struct alias_expand_settings *s, const char *rcpt, struct alias_leaves *out)
{
    struct alias_expander x = {.s = s, .out = out};
    struct alias_origin o = {.name = rcpt};
    size_t before = out->n;
    alias_address(&x, rcpt, &o);
    return alias_finish(&x, before, &o, rcpt);
}

int alias_expand_forward(const struct alias_expand_settings *s, const struct alias_leaf *from,
                         const char *file, const char *text, size_t len, struct alias_leaves *out)
{
    struct alias_expander x = {.s = s, .out = out};
    struct alias_origin o = {.self = from->value,
                             .self_detail = from->detail,
                             .name = from->value,
                             .owner = from->value,
                             .sender = from->sender,
                             .depth = from->depth + 1};
    size_t before = out->n;
    struct alias_list list = {0};
    if (aliases_parse_targets(file, text, len, &list) < 0) {
        alias_list_free(&list);
        return -1;
    }
    if (list.n == 0) { /* sendmail: nothing included, the address stays deliverable */
        struct alias_leaf p = *from;
        p.no_forward = true;
        alias_leaf_add(&x, ALIAS_LEAF_MAILBOX, from->value, &p);
    } else if (o.depth > ALIAS_EXPAND_DEPTH_MAX) {
        alias_loop_error(&x, &o, from->address ? from->address : from->value);
    }
    for (size_t i = 0; o.depth <= ALIAS_EXPAND_DEPTH_MAX && i < list.n && !x.oom; i++)
        alias_target(&x, &list.v[i], &o);
    alias_list_free(&list);
    return alias_finish(&x, before, &o, from->value);
}

void alias_leaves_free(struct alias_leaves *l)
{
    for (size_t i = 0; i < l->n; i++)
        alias_leaf_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static bool alias_known_at(const struct alias_expand_settings *s, const char *rcpt, unsigned depth,
                           struct alias_refusal *why)
{
    char buf[ALIAS_EXPAND_ADDR_MAX], *user, *detail, *domain;
    bool quoted = rcpt[0] == '\\';
    const char *a = rcpt + quoted;
    if (depth > ALIAS_EXPAND_DEPTH_MAX) {
        alias_refuse(why, "554", "5.4.6", "aliasing/forwarding loop broken");
        return false;
    }
    if (!alias_split(a, buf, sizeof(buf), &user, &detail, &domain) || !*user) {
        alias_refuse(why, "550", "5.1.3", "Bad recipient address syntax");
        return false;
    }
    if (domain && !alias_domain_local(s, domain))
        return true;
    if (domain && s->virtusertable && !quoted) {
        char value[ALIAS_EXPAND_VALUE_MAX];
        int rc = virtuser_lookup(s->virtusertable, a, value, sizeof(value));
        if (rc > 0 && strncasecmp(value, "error:", 6) == 0) {
            alias_error_value(value + 6, why);
            return false;
        }
        if (rc != 0)
            return rc > 0 ? alias_known_at(s, value, depth + 1, why) : true;
    }
    const struct alias *al = quoted ? NULL : alias_find(s, user, detail);
    if (al) {
        const struct alias_target *t = &al->targets[0];
        if (al->n_targets != 1 || t->kind != ALIAS_ERROR)
            return true;
        alias_refuse(why, t->code, alias_target_dsn(t), t->value);
        return false;
    }
    char login[256];
    if (alias_login(s, user, login, sizeof(login)) || (s->luser_relay && *s->luser_relay))
        return true;
    alias_refuse(why, "550", "5.1.1", "User unknown");
    return false;
}

bool alias_known(const struct alias_expand_settings *s, const char *rcpt, struct alias_refusal *why)
{
    return alias_known_at(s, rcpt, 0, why);
}
