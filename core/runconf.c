#include "core/runconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/tlsconf.h"

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
    /* The domain lists are arrays of char *; the policy reads them as const. */
    rc->relay.local_domains = (const char *const *)cfg->local_domains;
    rc->relay.n_local_domains = cfg->n_local_domains;
    rc->relay.relay_domains = (const char *const *)cfg->relay_domains;
    rc->relay.n_relay_domains = cfg->n_relay_domains;
    rc->relay.relay_from = cfg->relay_from;
    rc->relay.n_relay_from = cfg->n_relay_from;
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
    config_free(rc->cfg);
    free(rc);
}

const struct smtp_server_settings *runconf_smtp(const struct runconf *rc, unsigned listener)
{
    bool offer = rc->tls && listener < rc->cfg->n_listen && rc->cfg->listen[listener].starttls;
    return offer ? &rc->smtp_starttls : &rc->smtp;
}
