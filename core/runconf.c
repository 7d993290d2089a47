#include "core/runconf.h"

#include "core/localrcpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/tlsconf.h"

/* delivery/ reaches the maps of compat/ through these (it may not include them). */
static const char *runconf_mailertable(void *arg, const char *key)
{
    const struct map_simple_entry *e = map_simple_get(arg, key);
    return e ? e->value : NULL;
}

struct route_settings runconf_route_settings(const struct config *cfg)
{
    return (struct route_settings){
        .local_domains = (const char *const *)cfg->local_domains,
        .n_local_domains = cfg->n_local_domains,
        .local_users = (const char *const *)cfg->later.routing.local_users.v,
        .n_local_users = cfg->later.routing.local_users.n,
        .smart_host = cfg->delivery.smart_host,
        .mail_hub = cfg->delivery.mail_hub,
        .mailertable = cfg->maps.mailertable ? runconf_mailertable : NULL,
        .mailertable_arg = (void *)&cfg->map.mailertable,
    };
}

/* "TLS_Srv:mx.example.com": the entry with exactly that tag and key. */
static const char *runconf_access(void *arg, const char *key)
{
    const struct access_map *m = arg;
    const char *colon = strchr(key, ':');
    if (!colon)
        return NULL;
    size_t taglen = (size_t)(colon - key);
    for (size_t i = m->n; i-- > 0;) {
        const struct access_entry *e = &m->v[i];
        if (e->tag && strlen(e->tag) == taglen && strncasecmp(e->tag, key, taglen) == 0 &&
            strcasecmp(e->key, colon + 1) == 0)
            return e->value;
    }
    return NULL;
}

static const struct smtp_client_auth *runconf_authinfo(void *arg, const char *host,
                                                       const char *addr)
{
    return authinfo_lookup(arg, host, addr);
}

/* sendmail's masquerading for the SMTP mailers; each output stays empty when unchanged. */
static int runconf_rewrite(void *arg, const char *sender, const char *header, size_t len,
                           struct buf *sender_out, struct buf *header_out)
{
    const struct masquerade_settings *ms = arg;
    int rs = masquerade_sender(ms, MASQUERADE_SMTP, sender, sender_out);
    int rh = rs < 0 ? -1 : masquerade_headers(ms, MASQUERADE_SMTP, header, len, header_out);
    if (rs == 0)
        buf_free(sender_out);
    if (rh == 0)
        buf_free(header_out);
    return rs < 0 || rh < 0 ? -ENOMEM : 0;
}

/* Masquerading is on when the configuration asks for it: MASQUERADE_AS or a genericstable
 * (sendmail qualifies bare addresses on every SMTP mailer even without; ringmail's own
 * submission already writes qualified ones, and mail relayed for others passes unchanged). */
static void runconf_masquerade(struct runconf *rc)
{
    const struct config *cfg = rc->cfg;
    const struct config_masquerade *mq = &cfg->masquerade;
    const char *always =
        cfg->later.features.always_add_domain.n ? cfg->later.features.always_add_domain.v[0] : NULL;
    rc->masq = (struct masquerade_settings){
        .as = mq->as,
        .hostname = cfg->hostname,
        .domains = {mq->domains.v, mq->domains.n},
        .exceptions = {mq->exceptions.v, mq->exceptions.n},
        .exposed_users = {mq->exposed_users.v, mq->exposed_users.n},
        .generics_domains = {mq->generics_domains.v, mq->generics_domains.n},
        .local_domains = {cfg->local_domains, cfg->n_local_domains},
        .genericstable = cfg->maps.genericstable ? &cfg->map.genericstable : NULL,
        .always_add_domain = !always || strcmp(always, "false") == 0 ? NULL
                             : strcmp(always, "true") == 0           ? ""
                                                                     : always,
        .envelope = mq->envelope,
        .entire_domain = mq->entire_domain,
        .all_headers = mq->all_headers,
        .limited = mq->limited,
        .not_local = mq->not_local,
        .generics_entire_domain = mq->generics_entire_domain,
    };
    if (mq->as || cfg->maps.genericstable) {
        rc->qmgr.rewrite = runconf_rewrite;
        rc->qmgr.rewrite_arg = &rc->masq;
    }
}

static int runconf_delivery(struct runconf *rc, unsigned workers, char *err, size_t errlen)
{
    const struct config *cfg = rc->cfg;
    size_t n = cfg->delivery.n_tls_policy;
    if (!(rc->tls_policy_entries = calloc(n ? n : 1, sizeof(*rc->tls_policy_entries))) ||
        !(rc->outbound = calloc(workers, sizeof(*rc->outbound)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct config_tls_policy *p = &cfg->delivery.tls_policy[i];
        struct tlspolicy_entry *e = &rc->tls_policy_entries[i];
        e->dest = p->destination;
        e->match = p->match;
        tlspolicy_level_parse(p->level, &e->level); /* checked by config_load */
    }
    rc->tls_policy = (struct tlspolicy_settings){
        .entries = rc->tls_policy_entries,
        .n_entries = n,
        .access = cfg->maps.access ? runconf_access : NULL,
        .access_arg = (void *)&cfg->map.access,
    };
    rc->qmgr = (struct qmgr_settings){
        .hostname = cfg->hostname,
        .retry =
            {
                .interval = cfg->queue.interval / 1000,
                .min_queue_age = cfg->queue.min_queue_age / 1000,
                .minimal_backoff = cfg->queue.minimal_backoff / 1000,
                .maximal_backoff = cfg->queue.maximal_backoff / 1000,
                .queuewarn = cfg->queue.queuewarn / 1000,
                .queuereturn = cfg->queue.queuereturn / 1000,
            },
        .max_active = cfg->queue.max_active,
        .route = runconf_route_settings(cfg),
        .bounce_return_max = cfg->limits.max_message_size ? cfg->limits.max_message_size : 0,
    };
    /* checked by config_load: cannot fail here */
    if (localrcpt_qmgr_settings(cfg, &rc->local, &rc->lmtp, err, errlen) < 0)
        return -1;
    rc->qmgr.local = &rc->local;
    runconf_masquerade(rc);
    const struct smtp_server_timeouts *t = &cfg->timeouts;
    for (unsigned i = 0; i < workers; i++)
        rc->outbound[i] = (struct outbound_settings){
            .helo_name = cfg->hostname,
            .timeouts =
                {
                    .initial = t->initial,
                    .helo = t->helo,
                    .mail = t->mail,
                    .rcpt = t->rcpt,
                    .datainit = t->datainit,
                    .datablock = t->datablock,
                    .datafinal = t->datafinal,
                    .rset = t->rset,
                    .quit = t->quit,
                    .misc = t->misc,
                    .starttls = cfg->starttls_timeout_ms,
                },
            .iconnect_ms = cfg->delivery.iconnect,
            .connect_ms = cfg->delivery.connect,
            .cache_size = cfg->delivery.cache_size,
            .cache_timeout_ms = cfg->delivery.cache_timeout,
            .family = AF_UNSPEC,
            .tls = rc->tls_client ? rc->tls_client[i] : NULL,
            .tls_policy = &rc->tls_policy,
            .authinfo = cfg->map.authinfo.n ? runconf_authinfo : NULL,
            .authinfo_arg = (void *)&cfg->map.authinfo,
            .auth_without_tls = cfg->delivery.auth_without_tls,
            .try_null_mx_list = cfg->delivery.try_null_mx_list,
        };
    return 0;
}

/* A live FEATURE's words: absent or "false" is off; anything else is on. */
static bool runconf_feature_on(const struct config_words *w)
{
    return w->n > 0 && strcmp(w->v[0], "false") != 0;
}

static void runconf_policy(const struct config *cfg, struct runconf *rc)
{
    const struct config_words *dc = &cfg->policy.delay_checks;
    struct policy_settings *p = &rc->policy;
    p->access = &cfg->map.access;
    p->relay = &rc->relay;
    p->trust_mechs = (const char *const *)cfg->policy.trust_mechanisms.v;
    p->n_trust_mechs = cfg->policy.trust_mechanisms.n;
    p->delay_checks = runconf_feature_on(dc);
    p->spam = !p->delay_checks                  ? POLICY_SPAM_ALL
              : strcmp(dc->v[0], "friend") == 0 ? POLICY_SPAM_FRIEND
              : strcmp(dc->v[0], "hater") == 0  ? POLICY_SPAM_HATER
                                                : POLICY_SPAM_ALL;
    p->blocklist_recipients = runconf_feature_on(&cfg->policy.blocklist_recipients);
    /* checked by config_load (config.c) */
    clientlimit_mode_parse((const char *const *)cfg->policy.ratecontrol.v,
                           cfg->policy.ratecontrol.n, &p->ratecontrol);
    clientlimit_mode_parse((const char *const *)cfg->policy.conncontrol.v,
                           cfg->policy.conncontrol.n, &p->conncontrol);
}

struct runconf *runconf_new(struct config *cfg, unsigned generation, unsigned workers,
                            struct tls_lib **libs, struct fileset *files, char *err, size_t errlen)
{
    struct runconf *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        snprintf(err, errlen, "out of memory");
        config_free(cfg);
        return NULL;
    }
    atomic_init(&rc->refs, 1);
    rc->generation = generation;
    rc->cfg = cfg;
    rc->smtp.hostname = cfg->hostname;
    rc->smtp.limits = cfg->limits;
    rc->smtp.timeouts = cfg->timeouts;
    rc->smtp_starttls = rc->smtp;
    rc->smtp_starttls.starttls = true;
    rc->smtp_local = rc->smtp;
    rc->smtp_local.local = true;
    /* The domain lists are arrays of char *; the policy reads them as const. */
    rc->relay.local_domains = (const char *const *)cfg->local_domains;
    rc->relay.n_local_domains = cfg->n_local_domains;
    rc->relay.relay_domains = (const char *const *)cfg->relay_domains;
    rc->relay.n_relay_domains = cfg->n_relay_domains;
    rc->relay.relay_from = cfg->relay_from;
    rc->relay.n_relay_from = cfg->n_relay_from;
    runconf_policy(cfg, rc);
    if (tlsconf_server(cfg, workers, libs, files, &rc->tls, err, errlen) < 0) {
        runconf_unref(rc);
        return NULL;
    }
    rc->n_tls = rc->tls ? workers : 0;
    if (tlsconf_client(cfg, workers, libs, files, &rc->tls_client, err, errlen) < 0) {
        runconf_unref(rc);
        return NULL;
    }
    rc->n_tls_client = workers;
    if (runconf_delivery(rc, workers, err, errlen) < 0) {
        runconf_unref(rc);
        return NULL;
    }
    if (milterconf_resolve(cfg, &rc->milter_addrs, &rc->n_milter_addrs) < 0) {
        snprintf(err, errlen, "out of memory");
        runconf_unref(rc);
        return NULL;
    }
    return rc;
}

struct runconf *runconf_ref(struct runconf *rc)
{
    atomic_fetch_add_explicit(&rc->refs, 1, memory_order_relaxed);
    return rc;
}

void runconf_unref(struct runconf *rc)
{
    if (!rc || atomic_fetch_sub_explicit(&rc->refs, 1, memory_order_acq_rel) != 1)
        return;
    tlsconf_free(rc->tls, rc->n_tls);
    tlsconf_free(rc->tls_client, rc->n_tls_client);
    free(rc->outbound);
    free(rc->tls_policy_entries);
    free(rc->milter_addrs);
    config_free(rc->cfg);
    free(rc);
}

const struct smtp_server_settings *runconf_smtp(const struct runconf *rc, unsigned listener)
{
    bool offer = rc->tls && listener < rc->cfg->n_listen && rc->cfg->listen[listener].starttls;
    return offer ? &rc->smtp_starttls : &rc->smtp;
}
