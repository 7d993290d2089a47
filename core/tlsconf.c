#include "core/tlsconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The demo pairs' paths: ECDSA cert, key, RSA cert, key (tls_demo_certs_ensure). */
struct tlsconf_demo {
    char paths[4][512];
    struct tls_cert_pair pairs[2];
};

/* Next to the spool, not in it: the spool holds only queue files. */
static void tlsconf_demo_dir(const struct config *cfg, char *dir, size_t dirlen, bool tls)
{
    const char *slash = strrchr(cfg->spool, '/');
    int len = slash && slash != cfg->spool ? (int)(slash - cfg->spool) : 0;
    snprintf(dir, dirlen, "%.*s%s", len, cfg->spool, tls ? "/tls" : "");
}

/* `make`: create them when missing (the privileged parent, or a single process). */
static int tlsconf_demo(const struct config *cfg, bool make, struct tlsconf_demo *demo, char *err,
                        size_t errlen)
{
    static const char *const files[4] = {"ecdsa.pem", "ecdsa.key", "rsa.pem", "rsa.key"};
    char dir[sizeof(demo->paths[0]) - sizeof("/ecdsa.pem")];
    if (make) {
        /* The spool's parent may not exist yet on a first run (the spool is made later). */
        tlsconf_demo_dir(cfg, dir, sizeof(dir), false);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "demo certificates: cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    tlsconf_demo_dir(cfg, dir, sizeof(dir), true);
    if (make && tls_demo_certs_ensure(dir, cfg->hostname, demo->paths, err, errlen) < 0)
        return -1;
    for (int i = 0; i < 4; i++)
        snprintf(demo->paths[i], sizeof(demo->paths[i]), "%s/%s", dir, files[i]);
    for (int i = 0; i < 2; i++) {
        demo->pairs[i].cert = demo->paths[2 * i];
        demo->pairs[i].key = demo->paths[2 * i + 1];
    }
    return 0;
}

static bool tlsconf_uses_demo(const struct config *cfg)
{
    return cfg->tls.n_certificates == 0 && cfg->tls.demo_certs;
}

/* The outcome, failures too, is recorded for the engine, which reports it. */
static int tlsconf_record(struct fileset *files, const char *path, char *err, size_t errlen)
{
    if (!path || fileset_add(files, path, TLS_FILE_MAX) != -ENOMEM)
        return 0;
    snprintf(err, errlen, "out of memory");
    return -1;
}

int tlsconf_read_files(const struct config *cfg, struct fileset *files, char *err, size_t errlen)
{
    const struct config_tls *t = &cfg->tls;
    struct tlsconf_demo demo;
    if (tlsconf_uses_demo(cfg) && tlsconf_demo(cfg, true, &demo, err, errlen) < 0)
        return -1;
    for (int i = 0; tlsconf_uses_demo(cfg) && i < 4; i++)
        if (tlsconf_record(files, demo.paths[i], err, errlen) < 0)
            return -1;
    for (size_t i = 0; i < t->n_certificates; i++)
        if (tlsconf_record(files, t->certificates[i].cert, err, errlen) < 0 ||
            tlsconf_record(files, t->certificates[i].key, err, errlen) < 0)
            return -1;
    return tlsconf_record(files, t->client_cert, err, errlen) < 0 ||
                   tlsconf_record(files, t->client_key, err, errlen) < 0 ||
                   tlsconf_record(files, t->ca_file, err, errlen) < 0 ||
                   tlsconf_record(files, t->dh_params, err, errlen) < 0
               ? -1
               : 0;
}

/* Server contexts present the configured (or demo) certificates; client contexts the
 * delivery side's certificate when there is one, and trust tls.ca_file/ca_path only, as
 * Postfix's smtp_tls_CAfile and sendmail's CACertFile: no system store unless the
 * operator names it (ca_path: /etc/ssl/certs), which also keeps a reload from reading a
 * whole CA bundle once per worker. */
static int tlsconf_build(const struct config *cfg, bool client, unsigned n, struct tls_lib **libs,
                         struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen)
{
    const struct config_tls *t = &cfg->tls;
    struct tlsconf_demo demo;
    struct tls_cert_pair *pairs = NULL;
    char groups[1024] = "";
    size_t glen = 0;
    int rc = -1;

    *out = NULL;
    if (!client && t->n_certificates == 0 && !t->demo_certs)
        return 0;
    for (size_t i = 0; i < t->n_groups && glen < sizeof(groups); i++)
        glen += (size_t)snprintf(groups + glen, sizeof(groups) - glen, "%s%s", i ? ":" : "",
                                 t->groups[i]);
    if (glen >= sizeof(groups)) {
        snprintf(err, errlen, "tls.groups: longer than %zu characters", sizeof(groups) - 1);
        return -1;
    }
    struct tls_settings s = {
        .providers = (const char *const *)t->providers,
        .n_providers = t->n_providers,
        .groups = glen ? groups : NULL,
        .min_version = t->min_version,
        .max_version = t->max_version,
        .ciphersuites = t->ciphersuites,
        .cipher_list = t->cipher_list,
        .dh_params = t->dh_params,
        .ca_file = t->ca_file,
        .ca_path = t->ca_path,
        .request_client_cert = t->request_client_cert,
        .session_tickets = t->session_tickets,
        .ticket_rotate = t->ticket_rotate_ms / 1000,
        .files = files,
    };
    struct tls_cert_pair client_pair = {t->client_cert, t->client_key};
    if (client) {
        s.certs = t->client_cert ? &client_pair : NULL;
        s.n_certs = t->client_cert ? 1 : 0;
    } else if (t->n_certificates) {
        if (!(pairs = calloc(t->n_certificates, sizeof(*pairs)))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < t->n_certificates; i++)
            pairs[i] = (struct tls_cert_pair){t->certificates[i].cert, t->certificates[i].key};
        s.certs = pairs;
        s.n_certs = t->n_certificates;
    } else {
        if (tlsconf_demo(cfg, !files, &demo, err, errlen) < 0)
            goto out;
        s.certs = demo.pairs;
        s.n_certs = 2;
    }
    struct tls_ctx **ctxs = calloc(n, sizeof(*ctxs));
    if (!ctxs) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        s.lib = libs ? libs[i] : NULL;
        ctxs[i] =
            client ? tls_ctx_new_client(&s, err, errlen) : tls_ctx_new_server(&s, err, errlen);
        if (!ctxs[i]) {
            tlsconf_free(ctxs, i);
            goto out;
        }
    }
    *out = ctxs;
    rc = 0;
out:
    free(pairs);
    return rc;
}

void tlsconf_free(struct tls_ctx **ctxs, unsigned n)
{
    if (!ctxs)
        return;
    for (unsigned i = 0; i < n; i++)
        tls_ctx_unref(ctxs[i]);
    free(ctxs);
}

struct tlsconf_job {
    const struct config *cfg;
    bool client;
    unsigned n;
    struct tls_lib **libs;
    struct fileset *files;
    struct tls_ctx ***out;
    char *err;
    size_t errlen;
    int rc;
};

static void *tlsconf_thread(void *arg)
{
    struct tlsconf_job *j = arg;
    j->rc = tlsconf_build(j->cfg, j->client, j->n, j->libs, j->files, j->out, j->err, j->errlen);
    return NULL;
}

/* Built on a thread of its own: OpenSSL keeps per-thread state (DRBGs) for every library
 * context a thread has used, and runs its clean-up when the thread ends, against a context
 * that must still exist (openssl/openssl#16778). The builder thread ends at once, while the
 * libraries it used live on; the main thread never holds such state. */
static int tlsconf_run(const struct config *cfg, bool client, unsigned n, struct tls_lib **libs,
                       struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen)
{
    struct tlsconf_job j = {cfg, client, n, libs, files, out, err, errlen, -1};
    pthread_t t;
    *out = NULL;
    if (pthread_create(&t, NULL, tlsconf_thread, &j) != 0) {
        snprintf(err, errlen, "cannot start a thread to load the certificates");
        return -1;
    }
    pthread_join(t, NULL);
    return j.rc;
}

int tlsconf_server(const struct config *cfg, unsigned n, struct tls_lib **libs,
                   struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen)
{
    return tlsconf_run(cfg, false, n, libs, files, out, err, errlen);
}

int tlsconf_client(const struct config *cfg, unsigned n, struct tls_lib **libs,
                   struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen)
{
    return tlsconf_run(cfg, true, n, libs, files, out, err, errlen);
}
