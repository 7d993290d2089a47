#include "core/localrcpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/local_forward.h"
#include "util/xtext.h"

static bool localrcpt_user_exists(void *arg, const char *login)
{
    return config_user_exists(arg, login);
}

/* The aliases' :include: files as the parent read them (with the errno of a failed read).
 * A .forward's (`owner`) must be read as that user, which the engine cannot: outside a
 * .forward the agent sent (localrcpt_hook_forward), deferred. */
static int localrcpt_include(void *arg, const char *path, const char *owner, char **text,
                             size_t *len)
{
    const char *t;
    if (owner)
        return EAGAIN;
    int rc = config_include_text(arg, path, &t, len);
    if (rc < 0)
        return -rc;
    if (!(*text = malloc(*len + 1)))
        return ENOMEM;
    memcpy(*text, t, *len);
    (*text)[*len] = '\0';
    return 0;
}

static void localrcpt_settings(const struct config *cfg, struct alias_expand_settings *s)
{
    *s = (struct alias_expand_settings){
        .aliases = cfg->map.aliases,
        .n_aliases = cfg->map.n_aliases,
        .virtusertable = cfg->maps.virtusertable ? &cfg->map.virtusertable : NULL,
        .local_domains = (const char *const *)cfg->local_domains,
        .n_local_domains = cfg->n_local_domains,
        .luser_relay = cfg->local.luser_relay,
        .preserve_luser_host = cfg->local.preserve_luser_host,
        .user_exists = localrcpt_user_exists,
        .include = localrcpt_include,
        .arg = (void *)cfg,
    };
}

/* RFC 5321 4.5.1: postmaster must be accepted. Where no alias names it and no user has
 * that name, it is root's (sendmail's and Postfix's shipped aliases say the same, and
 * root's own alias then applies). Returns `rcpt` or, rewritten, `buf`. */
static const char *localrcpt_postmaster(const struct config *cfg, const char *rcpt, char *buf,
                                        size_t len)
{
    const char *at = strrchr(rcpt, '@');
    size_t n = at ? (size_t)(at - rcpt) : strlen(rcpt);
    if (n != 10 || strncasecmp(rcpt, "postmaster", 10) != 0 ||
        config_user_exists(cfg, "postmaster"))
        return rcpt;
    for (size_t i = 0; i < cfg->map.n_aliases; i++)
        if (aliases_lookup(&cfg->map.aliases[i], "postmaster"))
            return rcpt;
    snprintf(buf, len, "root%s", at ? at : "");
    return buf;
}

bool localrcpt_is_local(const struct config *cfg, const char *mailbox)
{
    const char *at = strrchr(mailbox, '@');
    if (!at)
        return true;
    for (size_t i = 0; i < cfg->n_local_domains; i++)
        if (strcasecmp(at + 1, cfg->local_domains[i]) == 0)
            return true;
    return false;
}

bool localrcpt_check(const struct config *cfg, const char *mailbox, struct alias_refusal *why)
{
    struct alias_expand_settings s;
    localrcpt_settings(cfg, &s);
    char pm[300];
    if (alias_known(&s, localrcpt_postmaster(cfg, mailbox, pm, sizeof(pm)), why))
        return true;
    /* with a mail hub, a name that is no alias is the hub's to know; an alias's own error
     * still refuses */
    return cfg->delivery.mail_hub && cfg->delivery.mail_hub[0] && strcmp(why->dsn, "5.1.1") == 0;
}

static int localrcpt_own(struct localrcpt_list *l, char *s)
{
    if (!s)
        return -ENOMEM;
    if (l->n_owned == l->cap_owned) {
        size_t cap = l->cap_owned ? 2 * l->cap_owned : 8;
        char **v = realloc(l->owned, cap * sizeof(*v));
        if (!v) {
            free(s);
            return -ENOMEM;
        }
        l->owned = v;
        l->cap_owned = cap;
    }
    l->owned[l->n_owned++] = s;
    return 0;
}

static int localrcpt_add(struct localrcpt_list *l, const struct envelope_rcpt *r)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct envelope_rcpt *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *r;
    return 0;
}

/* What the envelope can hold of a leaf: a mailbox as "login+detail@hostname", the aliases'
 * programs and files as sendmail's qf writes them, a remote address as is. */
static char *localrcpt_leaf_address(const struct config *cfg, const struct alias_leaf *lf)
{
    char *out = NULL;
    int n = -1;
    switch (lf->kind) {
    case ALIAS_LEAF_MAILBOX:
        n = asprintf(&out, "%s%s%s@%s", lf->value, lf->detail ? "+" : "",
                     lf->detail ? lf->detail : "", cfg->hostname);
        break;
    case ALIAS_LEAF_PROGRAM:
        n = asprintf(&out, "|%s", lf->value);
        break;
    case ALIAS_LEAF_FILE:
    case ALIAS_LEAF_REMOTE:
        n = asprintf(&out, "%s", lf->value);
        break;
    case ALIAS_LEAF_ERROR:
        break;
    }
    return n < 0 ? NULL : out;
}

/* Leaves the envelope cannot say as plain recipients: the queue manager expands again. */
static bool localrcpt_deferred_expansion(const struct alias_leaves *lv)
{
    for (size_t i = 0; i < lv->n; i++) {
        const struct alias_leaf *lf = &lv->v[i];
        if (lf->kind == ALIAS_LEAF_ERROR || lf->relay || lf->owner || lf->sender || lf->no_forward)
            return true;
    }
    return lv->n == 0;
}

int localrcpt_envelope(const struct config *cfg, const char *addr, const char *orcpt,
                       unsigned notify, struct localrcpt_list *out)
{
    struct envelope_rcpt as_given = {
        .addr = (char *)addr, .orcpt = (char *)orcpt, .notify = notify, .state = ENV_RCPT_PENDING};
    if (!localrcpt_is_local(cfg, addr))
        return localrcpt_add(out, &as_given);
    struct alias_expand_settings s;
    localrcpt_settings(cfg, &s);
    struct alias_leaves lv = {0};
    char pm[300];
    int rc =
        alias_expand(&s, localrcpt_postmaster(cfg, addr, pm, sizeof(pm)), &lv) < 0 ? -ENOMEM : 0;
    if (rc == 0 && localrcpt_deferred_expansion(&lv)) {
        rc = localrcpt_add(out, &as_given);
    } else if (rc == 0) {
        char *given = orcpt ? NULL : malloc(strlen(addr) * 3 + 8);
        if (given) {
            memcpy(given, "rfc822;", 7);
            xtext_encode(addr, given + 7, strlen(addr) * 3 + 1);
        }
        rc = orcpt ? 0 : localrcpt_own(out, given);
        for (size_t i = 0; rc == 0 && i < lv.n; i++) {
            char *a = localrcpt_leaf_address(cfg, &lv.v[i]);
            if ((rc = localrcpt_own(out, a)) < 0)
                break;
            struct envelope_rcpt r = {
                .addr = a,
                .orcpt = orcpt ? (char *)orcpt : given,
                .notify = notify,
                .state = ENV_RCPT_PENDING,
                .expanded = lv.v[i].kind != ALIAS_LEAF_REMOTE,
            };
            rc = localrcpt_add(out, &r);
        }
    }
    alias_leaves_free(&lv);
    return rc;
}

void localrcpt_list_free(struct localrcpt_list *l)
{
    for (size_t i = 0; i < l->n_owned; i++)
        free(l->owned[i]);
    free(l->owned);
    free(l->v);
    *l = (struct localrcpt_list){0};
}

/* --- the queue manager's hooks --- */

static int localrcpt_targets(const struct alias_leaves *lv, struct qmgr_local_targets *out)
{
    if (lv->n && !(out->v = calloc(lv->n, sizeof(*out->v))))
        return -ENOMEM;
    for (size_t i = 0; i < lv->n; i++) {
        const struct alias_leaf *lf = &lv->v[i];
        struct qmgr_local_target *t = &out->v[out->n++];
        static const enum qmgr_local_kind kinds[] = {[ALIAS_LEAF_MAILBOX] = QMGR_LOCAL_MAILBOX,
                                                     [ALIAS_LEAF_PROGRAM] = QMGR_LOCAL_PROGRAM,
                                                     [ALIAS_LEAF_FILE] = QMGR_LOCAL_FILE,
                                                     [ALIAS_LEAF_REMOTE] = QMGR_LOCAL_REMOTE,
                                                     [ALIAS_LEAF_ERROR] = QMGR_LOCAL_ERROR};
        t->kind = kinds[lf->kind];
        t->no_forward = lf->no_forward;
        snprintf(t->status, sizeof(t->status), "%s", lf->dsn);
        if (!(t->value = strdup(lf->value)) || (lf->detail && !(t->detail = strdup(lf->detail))) ||
            (lf->relay && !(t->relay = strdup(lf->relay))) ||
            (lf->sender && !(t->sender = strdup(lf->sender))))
            return -ENOMEM;
    }
    return 0;
}

static int localrcpt_hook_expand(void *arg, const char *rcpt, struct qmgr_local_targets *out)
{
    struct alias_expand_settings s;
    localrcpt_settings(arg, &s);
    struct alias_leaves lv = {0};
    char pm[300];
    int rc = alias_expand(&s, localrcpt_postmaster(arg, rcpt, pm, sizeof(pm)), &lv) < 0
                 ? -ENOMEM
                 : localrcpt_targets(&lv, out);
    alias_leaves_free(&lv);
    return rc;
}

/* A .forward as the agent sent it: its :include: files come with it. */
struct localrcpt_forward {
    const struct config *cfg;
    const char *packed;
};

static bool localrcpt_forward_user_exists(void *arg, const char *login)
{
    return config_user_exists(((const struct localrcpt_forward *)arg)->cfg, login);
}

static int localrcpt_forward_include(void *arg, const char *path, const char *owner, char **text,
                                     size_t *len)
{
    const struct localrcpt_forward *f = arg;
    if (!owner)
        return localrcpt_include((void *)f->cfg, path, owner, text, len);
    return local_forward_include(f->packed, path, text, len);
}

static int localrcpt_hook_forward(void *arg, const char *login, const char *detail,
                                  const char *text, struct qmgr_local_targets *out)
{
    struct alias_expand_settings s;
    localrcpt_settings(arg, &s);
    struct localrcpt_forward f = {.cfg = arg, .packed = text};
    s.user_exists = localrcpt_forward_user_exists;
    s.include = localrcpt_forward_include;
    s.arg = &f;
    struct alias_leaf from = {
        .kind = ALIAS_LEAF_MAILBOX, .value = (char *)login, .detail = (char *)detail};
    struct alias_leaves lv = {0};
    int rc =
        alias_expand_forward(&s, &from, ".forward", text, local_forward_text_len(text), &lv) < 0
            ? -ENOMEM
            : localrcpt_targets(&lv, out);
    alias_leaves_free(&lv);
    return rc;
}

int localrcpt_qmgr_settings(const struct config *cfg, struct qmgr_local_settings *out,
                            struct route *lmtp, char *err, size_t errlen)
{
    *out = (struct qmgr_local_settings){
        .timeout_ms = cfg->local.timeout_ms,
        .hostname = cfg->hostname,
        .expand = localrcpt_hook_expand,
        .forward = localrcpt_hook_forward,
        .arg = (void *)cfg,
    };
    if (!cfg->local.lmtp)
        return 0;
    /* mailers.lmtp takes what the lmtp mailer's host part does ("unix:/path", "/path",
     * "[host]:port") */
    char value[1100];
    snprintf(value, sizeof(value), "lmtp:%s", cfg->local.lmtp);
    if (route_parse(value, NULL, NULL, lmtp, err, errlen) < 0)
        return -1;
    out->lmtp = lmtp;
    return 0;
}
