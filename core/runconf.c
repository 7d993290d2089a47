#include "core/runconf.h"

#include <stdlib.h>

struct runconf *runconf_new(struct config *cfg, unsigned generation)
{
    struct runconf *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        config_free(cfg);
        return NULL;
    }
    atomic_init(&rc->refs, 1);
    rc->generation = generation;
    rc->cfg = cfg;
    rc->smtp.hostname = cfg->hostname;
    rc->smtp.limits = cfg->limits;
    rc->smtp.timeouts = cfg->timeouts;
    /* The domain lists are arrays of char *; the policy reads them as const. */
    rc->relay.local_domains = (const char *const *)cfg->local_domains;
    rc->relay.n_local_domains = cfg->n_local_domains;
    rc->relay.relay_domains = (const char *const *)cfg->relay_domains;
    rc->relay.n_relay_domains = cfg->n_relay_domains;
    rc->relay.relay_from = cfg->relay_from;
    rc->relay.n_relay_from = cfg->n_relay_from;
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
    config_free(rc->cfg);
    free(rc);
}
