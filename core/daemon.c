#include "core/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "core/listener.h"
#include "core/privdrop.h"
#include "core/session.h"
#include "core/tlsconf.h"
#include "core/version.h"
#include "util/log.h"

struct runconf *daemon_current(struct daemon *d)
{
    pthread_mutex_lock(&d->current_lock);
    struct runconf *rc = runconf_ref(d->current);
    pthread_mutex_unlock(&d->current_lock);
    return rc;
}

static struct config *daemon_load(const char *path, char *err, size_t errlen)
{
    return path ? config_load(path, err, errlen) : config_default(err, errlen);
}

/* Many connections each need a descriptor: use everything the hard limit allows. */
static void daemon_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open files limit: %s", strerror(errno));
    }
}

/* What a reload cannot change without a restart: say so rather than pretend. */
static void daemon_warn_restart_only(const struct config *old, const struct config *neu)
{
    bool listeners_same = old->n_listen == neu->n_listen;
    for (size_t i = 0; listeners_same && i < old->n_listen; i++)
        listeners_same = strcmp(old->listen[i].address, neu->listen[i].address) == 0 &&
                         old->listen[i].port == neu->listen[i].port &&
                         strcmp(old->listen[i].name, neu->listen[i].name) == 0;
    if (!listeners_same)
        log_warn("reload: changes to 'listen' take effect after a restart");
    if (old->workers != neu->workers)
        log_warn("reload: changes to 'workers' take effect after a restart");
    if (strcmp(old->run_as, neu->run_as) != 0)
        log_warn("reload: changes to 'run_as' take effect after a restart");
    if (strcmp(old->spool, neu->spool) != 0)
        log_warn("reload: changes to 'spool' take effect after a restart");
}

/* What the configuration asks for that the daemon does not do yet (config->warnings). */
static void daemon_log_warnings(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_warnings; i++)
        log_warn("%s", cfg->warnings[i]);
}

static void daemon_log_tls(const struct runconf *rc)
{
    if (!rc->tls) {
        log_info("tls: no certificates configured (tls.certificates): STARTTLS not offered");
        return;
    }
    struct tls_cert_info certs[8];
    size_t n = tls_ctx_certs(rc->tls[0], certs, 8);
    for (size_t i = 0; i < n && i < 8; i++)
        log_info("tls: certificate %s, subject=%s, file=%s", certs[i].type, certs[i].subject,
                 certs[i].file ? certs[i].file : "");
}

static void daemon_reload(struct daemon *d, const char *path, unsigned *generation)
{
    char err[1024];
    struct config *cfg = daemon_load(path, err, sizeof(err));
    if (!cfg) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    /* The TLS contexts are built here, before the swap: certificates that fail to load
     * leave the running generation (and its contexts) in place. */
    struct runconf *rc = runconf_new(cfg, ++*generation, d->workers, err, sizeof(err));
    if (!rc) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    daemon_log_warnings(rc->cfg);
    daemon_log_tls(rc);
    pthread_mutex_lock(&d->current_lock);
    struct runconf *old = d->current;
    d->current = rc;
    pthread_mutex_unlock(&d->current_lock);
    daemon_warn_restart_only(old->cfg, rc->cfg);
    runconf_unref(old);
    engine_post(d->engine, DAEMON_MSG_RELOAD);
    log_info("configuration reloaded from %s (generation %u)", rc->cfg->source, rc->generation);
}

static uint64_t daemon_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* SIGTERM: workers stop accepting and let transactions finish; after the grace period
 * whatever is left is closed (a message without its 250 may be sent again by its
 * client, which the no-loss contract allows). */
static void daemon_drain(struct daemon *d, const sigset_t *set, uint32_t grace_ms)
{
    log_info("stopping: no new connections, %u ms for transactions in flight", grace_ms);
    engine_post(d->engine, DAEMON_MSG_DRAIN);
    uint64_t deadline = daemon_now_ms() + grace_ms;
    while (atomic_load(&d->workers_running) > 0) {
        uint64_t now = daemon_now_ms();
        if (now >= deadline) {
            log_warn("grace period over: closing %u remaining connection(s)",
                     connlimit_total(d->conns));
            engine_post(d->engine, DAEMON_MSG_EXIT);
            break;
        }
        uint64_t wait = deadline - now < 100 ? deadline - now : 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait * 1000000};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            log_warn("second stop signal: closing now");
            engine_post(d->engine, DAEMON_MSG_EXIT);
            break;
        }
    }
}

static int daemon_open_listeners(struct daemon *d, const struct config *cfg, char *err,
                                 size_t errlen)
{
    int fds[256];
    d->listener_names = calloc(cfg->n_listen, sizeof(char *));
    if (!d->listener_names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct config_listener *l = &cfg->listen[i];
        d->listener_names[i] = strdup(l->name);
        if (!d->listener_names[i] || listener_open(l, cfg->workers, fds, err, errlen) < 0 ||
            engine_listen(d->engine, (unsigned)i, fds, cfg->workers) < 0) {
            if (!err[0])
                snprintf(err, errlen, "listener %s: cannot hand it to the engine", l->name);
            return -1;
        }
        log_info("listening: name=%s, address=%s, port=%u, workers=%u", l->name, l->address,
                 (unsigned)l->port, cfg->workers);
    }
    return 0;
}

static void daemon_free(struct daemon *d, size_t n_listeners)
{
    if (d->engine)
        engine_free(d->engine);
    if (d->listener_names) {
        for (size_t i = 0; i < n_listeners; i++)
            free(d->listener_names[i]);
        free(d->listener_names);
    }
    if (d->spool)
        spool_close(d->spool);
    connlimit_free(d->conns);
    runconf_unref(d->current);
    pthread_mutex_destroy(&d->current_lock);
}

/* Leaves the terminal once everything that can fail for a configuration reason has been
 * checked, so start-up errors still reach the operator who typed the command. */
static int daemon_detach(char *err, size_t errlen)
{
    if (daemon(0, 0) < 0) {
        snprintf(err, errlen, "cannot detach from the terminal: %s", strerror(errno));
        return -1;
    }
    log_open("ringmaild", false);
    return 0;
}

static int daemon_start(struct daemon *d, const struct config *cfg, bool foreground, char *err,
                        size_t errlen)
{
    struct privdrop_user user;
    if (engine_probe(err, errlen) < 0 || privdrop_resolve(cfg->run_as, &user, err, errlen) < 0)
        return EX_OSERR;
    if (cfg->workers > 256) {
        snprintf(err, errlen, "workers: at most 256");
        return EX_CONFIG;
    }

    struct engine_settings es = {
        .workers = cfg->workers,
        /* Room above the configured limit so extra clients still get a 421, not a RST. */
        .max_connections = cfg->max_connections ? cfg->max_connections + 256 : 0,
    };
    d->engine = engine_new(&es, &session_engine_callbacks, err, errlen);
    if (!d->engine)
        return EX_OSERR;
    if (daemon_open_listeners(d, cfg, err, errlen) < 0)
        return EX_OSERR;

    struct spool_settings ss = {
        .dir = cfg->spool,
        .owner = user.uid,
        .group = user.gid,
        .chown = user.switch_user,
    };
    d->spool = spool_open(&ss, err, errlen);
    if (!d->spool)
        return EX_CANTCREAT;
    if (privdrop_apply(&user, err, errlen) < 0)
        return EX_OSERR;
    log_info("running as user %s (uid %u)", user.name, (unsigned)getuid());

    struct spool_recovery rec;
    if (spool_recover(d->spool, &rec, err, errlen) < 0)
        return EX_IOERR;
    log_info("spool %s: %u message(s) queued, %u partial file(s) removed, %u damaged", cfg->spool,
             rec.messages, rec.removed, rec.damaged);

    if (!foreground && daemon_detach(err, errlen) < 0)
        return EX_OSERR;
    session_set_daemon(d);
    atomic_store(&d->workers_running, cfg->workers);
    if (engine_start(d->engine, err, errlen) < 0)
        return EX_OSERR;
    return 0;
}

int daemon_run(const char *config_path, bool foreground)
{
    char err[1024] = "";
    unsigned generation = 1;

    log_open("ringmaild", true);
    struct config *cfg = daemon_load(config_path, err, sizeof(err));
    if (!cfg) {
        log_error("%s", err);
        return EX_CONFIG;
    }
    struct daemon d;
    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.current_lock, NULL);
    d.conns = connlimit_new();
    d.workers = cfg->workers;
    d.current = runconf_new(cfg, generation, d.workers, err, sizeof(err));
    int status = !d.conns ? EX_OSERR : !d.current ? EX_CONFIG : EX_OK;
    if (status != EX_OK) {
        log_error("%s", d.conns ? err : "out of memory");
        daemon_free(&d, 0);
        return status;
    }
    cfg = d.current->cfg;
    daemon_log_warnings(cfg);
    daemon_log_tls(d.current);
    size_t n_listeners = cfg->n_listen;

    /* Signals are taken synchronously by this thread only; workers inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    daemon_raise_nofile();

    log_info("starting ringmaild %s: config=%s, hostname=%s, workers=%u", RINGMAIL_VERSION,
             cfg->source, cfg->hostname, cfg->workers);
    status = daemon_start(&d, cfg, foreground, err, sizeof(err));
    if (status != 0) {
        log_error("%s", err);
        daemon_free(&d, n_listeners);
        return status;
    }
    log_info("ready");

    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGHUP) {
            daemon_reload(&d, config_path, &generation);
        } else if (sig == SIGTERM || sig == SIGINT) {
            struct runconf *rc = daemon_current(&d);
            uint32_t grace = rc->cfg->shutdown_grace_ms;
            runconf_unref(rc);
            daemon_drain(&d, &set, grace);
            break;
        }
    }
    engine_join(d.engine);
    daemon_free(&d, n_listeners);
    tls_ctx_retired_free(); /* every worker has ended: see tls_ctx_unref() */
    log_info("stopped");
    log_close();
    return EX_OK;
}
