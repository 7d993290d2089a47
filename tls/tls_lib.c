/*
 * tls/tls_lib.c — library contexts (OSSL_LIB_CTX) and their providers.
 *
 * A context built with tls_settings.lib uses that shared library and never frees it; one
 * built without gets a library of its own, freed with it. A library context that carried
 * sessions cannot be freed while a thread that used it lives: OpenSSL keeps per-thread
 * state (DRBGs) for every library context a thread used and cleans it up when the thread
 * ends, against a context that must still exist (openssl/openssl#16778). Such a library
 * waits on the retired list until tls_ctx_retired_free().
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls_int.h"
#include "util/log.h"

struct tls_lib *tls_lib_new(char *err, size_t errlen)
{
    struct tls_lib *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    if (!(l->libctx = OSSL_LIB_CTX_new())) {
        tls_errf(err, errlen, "cannot create an OpenSSL library context");
        free(l);
        return NULL;
    }
    return l;
}

void tls_lib_free(struct tls_lib *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_providers; i++)
        OSSL_PROVIDER_unload(l->providers[i]);
    OSSL_LIB_CTX_free(l->libctx);
    free(l);
}

static OSSL_PROVIDER *tls_lib_provider(struct tls_lib *l, const char *name, char *err,
                                       size_t errlen)
{
    for (size_t i = 0; i < l->n_providers; i++)
        if (strcmp(OSSL_PROVIDER_get0_name(l->providers[i]), name) == 0)
            return l->providers[i];
    if (l->n_providers == TLS_MAX_PROVIDERS) {
        snprintf(err, errlen,
                 "tls.providers: cannot load provider '%s': %d providers were loaded since "
                 "start-up, the most a library holds; restart to drop the unused ones",
                 name, TLS_MAX_PROVIDERS);
        return NULL;
    }
    OSSL_PROVIDER *p = OSSL_PROVIDER_load(l->libctx, name);
    if (!p) {
        tls_errf(err, errlen, "tls.providers: cannot load provider '%s'", name);
        return NULL;
    }
    return l->providers[l->n_providers++] = p;
}

int tls_lib_providers(struct tls_ctx *c, const char *const *names, size_t n, char *err,
                      size_t errlen)
{
    if (n + 1 > TLS_MAX_PROVIDERS) {
        snprintf(err, errlen, "tls.providers: at most %d providers", TLS_MAX_PROVIDERS - 1);
        return -1;
    }
    for (size_t i = 0; i <= n; i++) {
        OSSL_PROVIDER *p = tls_lib_provider(c->lib, i == 0 ? "default" : names[i - 1], err, errlen);
        if (!p)
            return -1;
        c->providers[c->n_providers++] = p;
    }
    return 0;
}

struct tls_retired {
    struct tls_retired *next;
    struct tls_lib *lib;
};
static pthread_mutex_t tls_retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_retired *tls_retired_list;

void tls_lib_release(struct tls_ctx *c)
{
    if (!c->own_lib || !c->lib)
        return;
    if (!c->used) {
        tls_lib_free(c->lib);
        return;
    }
    struct tls_retired *r = calloc(1, sizeof(*r));
    if (!r) {
        /* Keeping it alive is the safe side of the two; it is only memory. */
        log_warn("tls: out of memory retiring a library context; it stays allocated");
        return;
    }
    r->lib = c->lib;
    pthread_mutex_lock(&tls_retired_lock);
    r->next = tls_retired_list;
    tls_retired_list = r;
    pthread_mutex_unlock(&tls_retired_lock);
}

void tls_ctx_retired_free(void)
{
    pthread_mutex_lock(&tls_retired_lock);
    struct tls_retired *r = tls_retired_list;
    tls_retired_list = NULL;
    pthread_mutex_unlock(&tls_retired_lock);
    while (r) {
        struct tls_retired *next = r->next;
        tls_lib_free(r->lib);
        free(r);
        r = next;
    }
}
